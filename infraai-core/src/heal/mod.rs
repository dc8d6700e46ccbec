//! Self-healing deploys: classifying plan/apply failures.
//!
//! Validation catches only part of what goes wrong; real applies also fail on
//! eventual consistency, rate limits, quotas, disabled APIs, missing
//! permissions, name collisions and configuration the cloud refuses. The
//! [`ApplyFailureClassifier`] maps a failure's text (Terraform's `-json`
//! error diagnostics, or the error message when there are none) to a
//! [`FailureClass`] with a human-readable diagnosis; the deploy loop acts on
//! the class (see [`crate::DeployAgent`]).
//!
//! Patterns are data: regular expressions with named captures, each with the
//! class it means, why, what an operator must do (templates over the
//! captures) and the public error text it was built from. The built-in set
//! is `generic.json` (Terraform/HTTP); each cloud adapter adds its own
//! through [`crate::TerraformGenerator::failure_patterns`] (checked first),
//! so a new cloud is only a new adapter.
//!
//! ```
//! use infraai_core::heal::ApplyFailureClassifier;
//! use infraai_core::{Error, FailureClass, TerraformStep};
//!
//! let classifier = ApplyFailureClassifier::builtin();
//! let e = Error::backend("terraform", "apply", false,
//!     "Error: creating instance api: 403 Forbidden: permission denied");
//! let d = classifier.classify(&e, TerraformStep::Apply, 1);
//! assert_eq!(d.class, FailureClass::PermissionDenied);
//! assert_eq!(d.pattern.as_deref(), Some("generic.permission"));
//! ```

use crate::domain::{ApplyDiagnosis, Diagnostic, DiagnosticSeverity, FailureClass, TerraformStep};
use crate::{Error, Result};
use chrono::Utc;
use regex::Regex;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, OnceLock};

/// Longest error text kept as evidence.
const MAX_EVIDENCE: usize = 1500;
/// Longest value taken from an error text into a diagnosis.
const MAX_DETAIL: usize = 200;

/// Terraform's error diagnostics of a failed command, carried as the source
/// of an adapter's error so the deploy loop can classify each one and hand
/// them to the fixers ([`Error::diagnostics`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DiagnosticList(pub Vec<Diagnostic>);

impl fmt::Display for DiagnosticList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let texts: Vec<String> = self.0.iter().map(diagnostic_text).collect();
        f.write_str(&texts.join("; "))
    }
}

impl std::error::Error for DiagnosticList {}

impl Error {
    /// The structured diagnostics carried by this error's source chain (a
    /// [`DiagnosticList`]), or none.
    pub fn diagnostics(&self) -> Vec<Diagnostic> {
        let mut next: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(self);
        while let Some(e) = next {
            if let Some(list) = e.downcast_ref::<DiagnosticList>() {
                return list.0.clone();
            }
            next = e.source();
        }
        Vec::new()
    }
}

fn diagnostic_text(d: &Diagnostic) -> String {
    if d.detail.trim().is_empty() {
        d.summary.clone()
    } else {
        format!("{}: {}", d.summary, d.detail.trim())
    }
}

/// One pattern as written in the data files.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatternSpec {
    /// Stable id, `<cloud>.<what>` (recorded in diagnoses).
    pub id: String,
    /// The class a match means.
    pub class: FailureClass,
    /// The regular expression that must match the error text.
    pub pattern: String,
    /// More regular expressions whose named captures fill
    /// [`ApplyDiagnosis::details`] (the first capture of a name wins).
    #[serde(default)]
    pub extract: Vec<String>,
    /// Advice templates over the captures (`{api}`); the first whose
    /// placeholders all have values is used, else the class's default.
    #[serde(default)]
    pub advice: Vec<String>,
    /// Why a match means this class.
    pub reasoning: String,
    /// The public error texts the pattern was built from.
    pub source: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatternFile {
    #[allow(dead_code)]
    cloud: String,
    #[allow(dead_code)]
    note: String,
    patterns: Vec<PatternSpec>,
}

/// A compiled failure pattern.
#[derive(Clone, Debug)]
pub struct FailurePattern {
    spec: PatternSpec,
    regex: Regex,
    extract: Vec<Regex>,
}

impl FailurePattern {
    /// Compiles a pattern ([`Error::Invalid`] when a regular expression or
    /// an advice placeholder is bad).
    pub fn new(spec: PatternSpec) -> Result<Self> {
        let compile = |re: &str| {
            Regex::new(re)
                .map_err(|e| Error::invalid(format!("failure pattern {}", spec.id), e.to_string()))
        };
        let regex = compile(&spec.pattern)?;
        let extract = spec
            .extract
            .iter()
            .map(|r| compile(r))
            .collect::<Result<Vec<_>>>()?;
        for template in &spec.advice {
            if template.matches('{').count() != template.matches('}').count() {
                return Err(Error::invalid(
                    format!("failure pattern {}", spec.id),
                    format!("unbalanced braces in advice {template:?}"),
                ));
            }
        }
        Ok(Self {
            spec,
            regex,
            extract,
        })
    }

    /// Parses a pattern file compiled into a crate (covered by its tests,
    /// never input): an invalid one is logged and yields no patterns.
    pub fn compiled_in(name: &str, json: &str) -> Vec<Self> {
        Self::parse_file(json).unwrap_or_else(|e| {
            tracing::error!(file = name, error = %e, "compiled-in failure patterns are invalid");
            Vec::new()
        })
    }

    /// Parses a pattern file (`{"cloud", "note", "patterns": [...]}`).
    pub fn parse_file(json: &str) -> Result<Vec<Self>> {
        let file: PatternFile = serde_json::from_str(json)
            .map_err(|e| Error::invalid("failure pattern file", e.to_string()))?;
        file.patterns.into_iter().map(Self::new).collect()
    }

    /// The pattern as written.
    pub fn spec(&self) -> &PatternSpec {
        &self.spec
    }

    fn details(&self, text: &str) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for re in std::iter::once(&self.regex).chain(&self.extract) {
            if let Some(caps) = re.captures(text) {
                for name in re.capture_names().flatten() {
                    if let Some(m) = caps.name(name) {
                        let value = clean(m.as_str(), MAX_DETAIL);
                        if !value.is_empty() {
                            out.entry(name.to_string()).or_insert(value);
                        }
                    }
                }
            }
        }
        out
    }
}

/// Keeps a value printable and bounded (it ends up in chat messages).
fn clean(s: &str, max: usize) -> String {
    let s: String = s
        .chars()
        .map(|c| if c.is_control() && c != '\n' { ' ' } else { c })
        .collect();
    let s = s.trim();
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let cut: String = s.chars().take(max).collect();
        format!("{cut}…")
    }
}

/// Fills `{name}` placeholders; `None` when one has no value.
fn render(template: &str, details: &BTreeMap<String, String>) -> Option<String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let end = after.find('}')?;
        out.push_str(details.get(&after[..end])?);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

/// What the class means for the operator when no pattern advice applies.
fn default_advice(class: FailureClass) -> &'static str {
    match class {
        FailureClass::Transient => {
            "Nothing to do yet: the agent re-plans and re-applies after a backoff, a bounded number of times."
        }
        FailureClass::QuotaExceeded => {
            "A cloud quota is used up: raise it in the cloud console (or free capacity, or choose a smaller size or another region), then run the deploy again."
        }
        FailureClass::ApiNotEnabled => {
            "A cloud API is not enabled: enable the API named in the error for the project/account Terraform uses, wait a few minutes, then run the deploy again."
        }
        FailureClass::PermissionDenied => {
            "The credentials Terraform uses lack a permission: grant the permission named in the error, then run the deploy again."
        }
        FailureClass::NameInUse => {
            "The agent renames this run's own resources with a suffix and re-plans."
        }
        FailureClass::InvalidConfiguration => {
            "The agent runs the fix loop (deterministic fixers, then the LLM fixer) with these diagnostics."
        }
        FailureClass::Unknown => {
            "This failure is not recognized, so the agent did not retry it: read the error, fix the cause, then run the deploy again."
        }
    }
}

/// One text's classification.
struct Match<'a> {
    class: FailureClass,
    pattern: Option<&'a FailurePattern>,
    text: String,
}

/// Classifies plan/apply failures with an ordered list of patterns: the
/// first pattern that matches a diagnostic decides its class; across a
/// failure's diagnostics the class with the highest
/// [`FailureClass::precedence`] decides. Pure: no I/O.
#[derive(Clone, Debug)]
pub struct ApplyFailureClassifier {
    patterns: Arc<Vec<FailurePattern>>,
}

fn builtin_patterns() -> &'static Vec<FailurePattern> {
    static BUILTIN: OnceLock<Vec<FailurePattern>> = OnceLock::new();
    BUILTIN.get_or_init(|| FailurePattern::compiled_in("generic", include_str!("generic.json")))
}

impl Default for ApplyFailureClassifier {
    fn default() -> Self {
        Self::builtin()
    }
}

impl ApplyFailureClassifier {
    /// The built-in, cloud-neutral patterns.
    pub fn builtin() -> Self {
        Self {
            patterns: Arc::new(builtin_patterns().clone()),
        }
    }

    /// A classifier with only these patterns.
    pub fn with_patterns(patterns: Vec<FailurePattern>) -> Self {
        Self {
            patterns: Arc::new(patterns),
        }
    }

    /// Puts `patterns` (an adapter's own) before the current ones.
    pub fn prepend(self, patterns: Vec<FailurePattern>) -> Self {
        if patterns.is_empty() {
            return self;
        }
        let mut all = patterns;
        all.extend(self.patterns.iter().cloned());
        Self::with_patterns(all)
    }

    /// The patterns, in the order they are tried.
    pub fn patterns(&self) -> &[FailurePattern] {
        &self.patterns
    }

    fn classify_text(&self, text: &str) -> Match<'_> {
        match self.patterns.iter().find(|p| p.regex.is_match(text)) {
            Some(p) => Match {
                class: p.spec.class,
                pattern: Some(p),
                text: text.to_string(),
            },
            None => Match {
                class: FailureClass::Unknown,
                pattern: None,
                text: text.to_string(),
            },
        }
    }

    /// Classifies one error text (for tests and tools).
    pub fn classify_message(&self, text: &str) -> FailureClass {
        self.classify_text(text).class
    }

    /// Classifies the failure of `step` (`plan`/`apply`) on `attempt`: every
    /// error diagnostic it carries (else its message), the deciding class,
    /// the values taken from the text, the reasoning and the advice. The
    /// caller fills [`ApplyDiagnosis::decision`].
    pub fn classify(&self, error: &Error, step: TerraformStep, attempt: u32) -> ApplyDiagnosis {
        let texts: Vec<String> = {
            let diags: Vec<String> = error
                .diagnostics()
                .iter()
                .filter(|d| d.severity == DiagnosticSeverity::Error)
                .map(diagnostic_text)
                .collect();
            if diags.is_empty() {
                vec![error.to_string()]
            } else {
                diags
            }
        };
        let mut matches: Vec<Match<'_>> = if matches!(error, Error::Timeout { .. }) {
            vec![Match {
                class: FailureClass::Transient,
                pattern: None,
                text: error.to_string(),
            }]
        } else {
            texts.iter().map(|t| self.classify_text(t)).collect()
        };
        // An adapter that marks its error retryable (I/O, a busy directory)
        // knows more than "unknown".
        let retryable_unknown =
            error.is_retryable() && matches.iter().all(|m| m.class == FailureClass::Unknown);
        if retryable_unknown {
            for m in &mut matches {
                m.class = FailureClass::Transient;
            }
        }
        // Highest precedence first; stable, so the first such diagnostic decides.
        matches.sort_by_key(|m| std::cmp::Reverse(m.class.precedence()));
        let mut classes_seen: Vec<FailureClass> = Vec::new();
        for m in &matches {
            if !classes_seen.contains(&m.class) {
                classes_seen.push(m.class);
            }
        }
        let deciding = &matches[0];
        let class = deciding.class;
        let details = deciding
            .pattern
            .map(|p| p.details(&deciding.text))
            .unwrap_or_default();
        let advice = deciding
            .pattern
            .and_then(|p| p.spec.advice.iter().find_map(|t| render(t, &details)))
            .unwrap_or_else(|| default_advice(class).to_string());
        let reasoning = match (deciding.pattern, error) {
            (Some(p), _) => format!("matched {}: {}", p.spec.id, p.spec.reasoning),
            (None, Error::Timeout { .. }) => {
                "terraform itself ran past its timeout; the operation may finish on another attempt"
                    .to_string()
            }
            (None, _) if retryable_unknown => {
                "no known pattern matches, but the adapter marks this error as retryable"
                    .to_string()
            }
            (None, _) => "no known pattern matches this error text".to_string(),
        };
        ApplyDiagnosis {
            attempt,
            step,
            class,
            pattern: deciding.pattern.map(|p| p.spec.id.clone()),
            pattern_source: deciding.pattern.map(|p| p.spec.source.clone()),
            details,
            evidence: clean(&deciding.text, MAX_EVIDENCE),
            reasoning,
            advice,
            decision: String::new(),
            classes_seen,
            at: Utc::now(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_patterns_compile_and_have_sources() {
        let c = ApplyFailureClassifier::builtin();
        assert!(c.patterns().len() >= 8);
        let mut ids = std::collections::HashSet::new();
        for p in c.patterns() {
            assert!(
                ids.insert(p.spec().id.clone()),
                "duplicate id {}",
                p.spec().id
            );
            assert!(
                !p.spec().source.trim().is_empty(),
                "{} has no source",
                p.spec().id
            );
        }
    }

    #[test]
    fn advice_templates_need_every_placeholder() {
        let d = BTreeMap::from([("api".to_string(), "compute.googleapis.com".to_string())]);
        assert_eq!(
            render("enable {api}", &d).as_deref(),
            Some("enable compute.googleapis.com")
        );
        assert_eq!(render("enable {api} in {project}", &d), None);
        assert_eq!(
            render("no placeholders", &d).as_deref(),
            Some("no placeholders")
        );
    }

    #[test]
    fn bad_patterns_are_refused() {
        let spec = |pattern: &str| PatternSpec {
            id: "x.bad".into(),
            class: FailureClass::Transient,
            pattern: pattern.into(),
            extract: vec![],
            advice: vec![],
            reasoning: "r".into(),
            source: "s".into(),
        };
        assert!(matches!(
            FailurePattern::new(spec("(unclosed")),
            Err(Error::Invalid { .. })
        ));
        assert!(FailurePattern::parse_file("{\"patterns\": 3}").is_err());
    }

    #[test]
    fn operator_classes_outrank_retries_across_diagnostics() {
        let c = ApplyFailureClassifier::builtin();
        let list = DiagnosticList(vec![
            Diagnostic {
                severity: DiagnosticSeverity::Error,
                summary: "Error creating Router".into(),
                detail: "503 Service Unavailable".into(),
                range: None,
            },
            Diagnostic {
                severity: DiagnosticSeverity::Error,
                summary: "Error creating Instance".into(),
                detail: "403 Forbidden: permission denied on instances/api".into(),
                range: None,
            },
        ]);
        let e = Error::backend("terraform", "apply", false, list);
        assert_eq!(e.diagnostics().len(), 2);
        let d = c.classify(&e, TerraformStep::Apply, 1);
        assert_eq!(d.class, FailureClass::PermissionDenied);
        assert_eq!(
            d.classes_seen,
            [FailureClass::PermissionDenied, FailureClass::Transient]
        );
        assert_eq!(d.pattern.as_deref(), Some("generic.permission"));
        let timeout = Error::Timeout {
            component: "terraform".into(),
            op: "apply".into(),
            after: std::time::Duration::from_secs(1),
        };
        assert_eq!(
            c.classify(&timeout, TerraformStep::Apply, 1).class,
            FailureClass::Transient
        );
        assert_eq!(
            c.classify(
                &Error::invalid("x", "something odd"),
                TerraformStep::Apply,
                1
            )
            .class,
            FailureClass::Unknown
        );
    }

    #[test]
    fn adapter_patterns_come_first() {
        let local = FailurePattern::parse_file(
            r#"{"cloud":"local","note":"n","patterns":[{"id":"local.port","class":"name_in_use","pattern":"(?i)address already in use","reasoning":"r","source":"s"}]}"#,
        )
        .unwrap();
        let c = ApplyFailureClassifier::builtin();
        let text = "Error: bind: address already in use (service unavailable)";
        assert_eq!(c.classify_message(text), FailureClass::Transient);
        let c = c.prepend(local);
        assert_eq!(c.classify_message(text), FailureClass::NameInUse);
    }
}
