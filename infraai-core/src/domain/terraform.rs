//! Terraform-facing documents: generated files, diagnostics, the dry-run change set.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The Terraform files of a run: relative file name → content.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TerraformFiles {
    /// File name (e.g. `main.tf`) → HCL text.
    pub files: BTreeMap<String, String>,
}

impl TerraformFiles {
    /// Files with a single `main.tf`.
    pub fn single(main_tf: impl Into<String>) -> Self {
        let mut files = BTreeMap::new();
        files.insert("main.tf".to_string(), main_tf.into());
        Self { files }
    }
}

/// Severity of a Terraform diagnostic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DiagnosticSeverity {
    /// Blocks validate/plan/apply.
    Error,
    /// Informational.
    Warning,
}

/// A position in a Terraform file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SourceRange {
    /// File name relative to the work directory.
    pub filename: String,
    /// First line (1-based).
    pub start_line: u32,
    /// Last line (1-based).
    pub end_line: u32,
}

/// One diagnostic from `terraform validate -json` (or plan/apply).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: DiagnosticSeverity,
    /// One-line summary.
    pub summary: String,
    /// Longer explanation.
    #[serde(default)]
    pub detail: String,
    /// Where, when Terraform says.
    #[serde(default)]
    pub range: Option<SourceRange>,
}

/// Result of validating a configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ValidationReport {
    /// Whether the configuration is valid.
    pub valid: bool,
    /// Errors and warnings.
    pub diagnostics: Vec<Diagnostic>,
}

/// What a planned change does to one resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChangeAction {
    /// The resource is created.
    Create,
    /// The resource is updated in place.
    Update,
    /// The resource is destroyed.
    Delete,
    /// The resource is destroyed and re-created.
    Replace,
    /// A data source is read.
    Read,
    /// Nothing changes.
    NoOp,
}

/// One attribute that changes, before → after (JSON values; unknown-after-apply is `null`
/// with `after_unknown`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AttributeChange {
    /// Attribute path, e.g. `machine_type`.
    pub path: String,
    /// Value before the change.
    pub before: serde_json::Value,
    /// Value after the change.
    pub after: serde_json::Value,
    /// Whether the after value is only known after apply.
    #[serde(default)]
    pub after_unknown: bool,
}

/// The planned change to one resource address.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ResourceChange {
    /// Terraform address, e.g. `google_compute_instance.api`.
    pub address: String,
    /// What happens to it.
    pub action: ChangeAction,
    /// The attributes that change.
    #[serde(default)]
    pub attributes: Vec<AttributeChange>,
}

/// The dry-run preview of a plan: what apply would do. This is what users approve.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ChangeSet {
    /// Per-address changes (no-ops omitted).
    pub changes: Vec<ResourceChange>,
}

impl ChangeSet {
    /// A one-line summary such as `2 to create, 1 to replace`.
    pub fn summary(&self) -> String {
        let count = |a: ChangeAction| self.changes.iter().filter(|c| c.action == a).count();
        let parts: Vec<String> = [
            (ChangeAction::Create, "create"),
            (ChangeAction::Update, "update"),
            (ChangeAction::Replace, "replace"),
            (ChangeAction::Delete, "delete"),
        ]
        .into_iter()
        .filter_map(|(a, word)| match count(a) {
            0 => None,
            n => Some(format!("{n} to {word}")),
        })
        .collect();
        if parts.is_empty() {
            "no changes".into()
        } else {
            parts.join(", ")
        }
    }
}

/// One resource in a Terraform state (`terraform show -json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct StateResource {
    /// Terraform address, e.g. `terraform_data.api`.
    pub address: String,
    /// Resource type, e.g. `terraform_data`.
    pub resource_type: String,
    /// Whether Terraform marked it tainted (created, but its creation failed
    /// part-way; the next apply replaces it).
    #[serde(default)]
    pub tainted: bool,
}

/// Result of one HTTP check against a deployed endpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EndpointCheck {
    /// The URL that was requested.
    pub url: String,
    /// Whether the check passed.
    pub ok: bool,
    /// HTTP status, when a response arrived.
    pub status: Option<u16>,
    /// Round-trip time in milliseconds, when a response arrived.
    pub latency_ms: Option<u64>,
    /// What went wrong, when it did.
    pub error: Option<String>,
    /// The first bytes of the response body (at most 200 characters).
    #[serde(default)]
    pub body_prefix: Option<String>,
    /// How many attempts were made.
    #[serde(default)]
    pub attempts: u32,
}

/// Whether a deployment answers as expected.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct VerificationReport {
    /// All checks passed (and there was at least one).
    pub ok: bool,
    /// The individual checks.
    pub checks: Vec<EndpointCheck>,
    /// When the verification finished.
    pub checked_at: chrono::DateTime<chrono::Utc>,
    /// The product plan's summary: the same as `ok`.
    #[serde(default)]
    pub reachable: bool,
    /// The host of the check summarized (the first failing one, else the
    /// first), in the product plan's words.
    #[serde(default)]
    pub ip: Option<String>,
    /// The HTTP status of that check, when it answered.
    #[serde(default)]
    pub status_code: Option<u16>,
}

impl VerificationReport {
    /// The report of `checks`, finished now.
    pub fn new(checks: Vec<EndpointCheck>) -> Self {
        let ok = !checks.is_empty() && checks.iter().all(|c| c.ok);
        let summarized = checks.iter().find(|c| !c.ok).or(checks.first());
        Self {
            ok,
            reachable: ok,
            ip: summarized.map(|c| host(&c.url).to_owned()),
            status_code: summarized.and_then(|c| c.status),
            checks,
            checked_at: chrono::Utc::now(),
        }
    }
}

/// The host of `url` (`http://10.0.0.5:8080/x` → `10.0.0.5`, `http://[::1]/` → `::1`).
fn host(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let authority = authority.rsplit('@').next().unwrap_or_default();
    match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_set_summary() {
        let c = |action| ResourceChange {
            address: "x.y".into(),
            action,
            attributes: vec![],
        };
        let set = ChangeSet {
            changes: vec![
                c(ChangeAction::Create),
                c(ChangeAction::Create),
                c(ChangeAction::Replace),
            ],
        };
        assert_eq!(set.summary(), "2 to create, 1 to replace");
        assert_eq!(ChangeSet::default().summary(), "no changes");
    }

    #[test]
    fn a_report_summarizes_the_first_failing_check() {
        let check = |url: &str, ok, status| EndpointCheck {
            url: url.into(),
            ok,
            status,
            latency_ms: None,
            error: None,
            body_prefix: None,
            attempts: 1,
        };
        let report = VerificationReport::new(vec![
            check("http://10.0.0.5:8080/health", true, Some(200)),
            check("https://user@[::1]:9/x", false, Some(503)),
        ]);
        assert!(!report.ok && !report.reachable);
        assert_eq!(
            (report.ip.as_deref(), report.status_code),
            (Some("::1"), Some(503))
        );
        let fine = VerificationReport::new(vec![check("http://api.example/", true, Some(404))]);
        assert!(fine.reachable);
        assert_eq!(fine.ip.as_deref(), Some("api.example"));
        assert!(!VerificationReport::new(vec![]).reachable);
    }
}
