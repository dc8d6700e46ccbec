//! Offline checks of Terraform files against the Google provider's schema.
//!
//! The Google provider binary is not available offline, so `terraform
//! validate` cannot check GCP configurations here. Its schema can be:
//! `schema/google-6.50.0.json` is extracted (by `schema/extract.py`) from the
//! jsii manifest of `@cdktf/provider-google` 16.12.1, which is generated from
//! hashicorp/google 6.50.0. It lists, for every resource type infraai emits,
//! each argument (type, required or not, documented "Possible values") and
//! each nested block (required or not, at most one or a list), plus the
//! duration rules the provider documents in prose (alert policy `duration`
//! in whole minutes, `alignment_period` at least 60 s).
//!
//! [`SchemaChecker`] parses `.tf` text with `hcl-rs` and reports every
//! [`SchemaIssue`]: missing required arguments and blocks, unknown arguments
//! and blocks (with a "did you mean"), an argument written as a block or the
//! reverse, too many blocks, literal values of the wrong shape, values outside
//! the documented enum, malformed or disallowed durations, duplicate
//! arguments or resources, references to undeclared variables or resources,
//! and references to attributes a resource type does not have (its arguments,
//! blocks and read-only attributes; paths inside nested blocks are not
//! followed). Values that are expressions (references, templates with
//! interpolations) are checked for shape only.
//!
//! ```
//! use infraai_gcp::SchemaChecker;
//!
//! let checker = SchemaChecker::google();
//! let tf = r#"
//! resource "google_monitoring_alert_policy" "cpu" {
//!   display_name = "cpu"
//!   combiner     = "OR"
//!   conditions {
//!     display_name = "cpu high"
//!     condition_threshold {
//!       comparison = "COMPARISON_GT"
//!       duration   = "90s"
//!       aggregation {
//!         per_series_aligner = "ALIGN_MEAN"
//!       }
//!     }
//!   }
//! }
//! "#;
//! let issues = checker.check_text("main.tf", tf);
//! let text: Vec<String> = issues.iter().map(ToString::to_string).collect();
//! assert!(text.iter().any(|i| i.contains(r#"unsupported block "aggregation"; did you mean "aggregations"?"#)));
//! assert!(text.iter().any(|i| i.contains("not a whole number of minutes")));
//! ```

use hcl::expr::{Expression, ObjectKey, TemplateExpr, TraversalOperator};
use hcl::template::{Element, Template};
use infraai_core::{Error, Result, TerraformFiles};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;
use std::sync::OnceLock;

/// The committed schema of hashicorp/google 6.50.0 (the resources infraai emits).
pub const GOOGLE_SCHEMA_JSON: &str = include_str!("../schema/google-6.50.0.json");

/// One problem found in a Terraform file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchemaIssue {
    /// The file, as given (e.g. `main.tf`).
    pub file: String,
    /// The top-level block, e.g. `google_monitoring_alert_policy.api_cpu_high`,
    /// `provider.google`, `variable.zone` (empty for file-level problems).
    pub address: String,
    /// The nested block path inside it, e.g.
    /// `conditions[0].condition_threshold` (empty at the top of the block).
    pub path: String,
    /// What is wrong, naming the argument or block.
    pub message: String,
}

impl fmt::Display for SchemaIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if !self.address.is_empty() {
            write!(f, ": {}", self.address)?;
        }
        if !self.path.is_empty() {
            write!(f, ": {}", self.path)?;
        }
        write!(f, ": {}", self.message)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SchemaFile {
    source: String,
    provider: BlockSchema,
    resources: BTreeMap<String, BlockSchema>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct BlockSchema {
    #[serde(default)]
    required: bool,
    max_items: Option<usize>,
    #[serde(default)]
    attributes: BTreeMap<String, AttrSchema>,
    #[serde(default)]
    blocks: BTreeMap<String, BlockSchema>,
    /// Read-only attributes (resources only), for reference checks.
    #[serde(default)]
    computed: BTreeSet<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AttrSchema {
    #[serde(rename = "type")]
    kind: String,
    required: bool,
    #[serde(default, rename = "enum")]
    values: Option<Vec<String>>,
    duration: Option<DurationRule>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DurationRule {
    multiple_of_secs: Option<u64>,
    min_secs: Option<u64>,
}

/// Validates Terraform files against a provider schema (see the module docs).
#[derive(Debug)]
pub struct SchemaChecker {
    schema: SchemaFile,
}

/// Which Terraform meta-arguments a body may hold besides its schema.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Meta {
    None,
    Resource,
    Provider,
}

const RESOURCE_META_ATTRS: &[&str] = &["count", "for_each", "depends_on", "provider"];
const RESOURCE_META_BLOCKS: &[&str] = &["lifecycle", "provisioner", "connection"];

/// What one file declares, for reference checks.
#[derive(Default)]
struct Declared {
    variables: BTreeSet<String>,
    resources: BTreeSet<(String, String)>,
    locals: BTreeSet<String>,
}

struct Ctx<'a> {
    file: &'a str,
    address: String,
    issues: &'a mut Vec<SchemaIssue>,
}

impl Ctx<'_> {
    fn issue(&mut self, path: &str, message: String) {
        self.issues.push(SchemaIssue {
            file: self.file.to_string(),
            address: self.address.clone(),
            path: path.to_string(),
            message,
        });
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// `; did you mean "x"?` for the closest known name, when one is close.
fn suggestion<'a>(name: &str, known: impl Iterator<Item = &'a String>) -> String {
    known
        .map(|k| (edit_distance(name, k), k))
        .filter(|(d, k)| *d <= 2.max(name.len().min(k.len()) / 4))
        .min()
        .map(|(_, k)| format!("; did you mean {k:?}?"))
        .unwrap_or_default()
}

/// `"60s"` / `"1.5s"` → seconds (fraction kept separately: whole, has fraction).
fn parse_duration(s: &str) -> Option<(u64, bool)> {
    let digits = s.strip_suffix('s')?;
    let (whole, frac) = match digits.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (digits, None),
    };
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let fractional = match frac {
        None => false,
        Some(f) if !f.is_empty() && f.len() <= 9 && f.bytes().all(|b| b.is_ascii_digit()) => {
            f.bytes().any(|b| b != b'0')
        }
        Some(_) => return None,
    };
    Some((whole.parse().ok()?, fractional))
}

fn shape(expr: &Expression) -> &'static str {
    match expr {
        Expression::Null => "null",
        Expression::Bool(_) => "a bool",
        Expression::Number(_) => "a number",
        Expression::String(_) | Expression::TemplateExpr(_) => "a string",
        Expression::Array(_) => "a list",
        Expression::Object(_) => "an object",
        _ => "an expression",
    }
}

impl SchemaChecker {
    /// The checker for the committed hashicorp/google 6.50.0 schema.
    pub fn google() -> &'static SchemaChecker {
        static GOOGLE: OnceLock<SchemaChecker> = OnceLock::new();
        GOOGLE.get_or_init(|| {
            // The file is committed and tested; failing here is a build defect.
            SchemaChecker::from_json(GOOGLE_SCHEMA_JSON)
                .expect("the committed Google provider schema parses")
        })
    }

    /// A checker for a schema file in the format of `schema/extract.py`.
    pub fn from_json(json: &str) -> Result<Self> {
        let schema: SchemaFile = serde_json::from_str(json)
            .map_err(|e| Error::invalid("provider schema", e.to_string()))?;
        Ok(Self { schema })
    }

    /// Where the schema came from (package, version, provider version).
    pub fn source(&self) -> &str {
        &self.schema.source
    }

    /// The resource types the schema knows.
    pub fn resource_types(&self) -> impl Iterator<Item = &str> {
        self.schema.resources.keys().map(String::as_str)
    }

    /// Checks every file of a run (references may cross files).
    pub fn check_files(&self, files: &TerraformFiles) -> Vec<SchemaIssue> {
        let mut issues = Vec::new();
        let mut parsed = Vec::new();
        for (name, text) in &files.files {
            if !name.ends_with(".tf") {
                continue;
            }
            match hcl::parse(text) {
                Ok(body) => parsed.push((name.as_str(), body)),
                Err(e) => issues.push(SchemaIssue {
                    file: name.clone(),
                    address: String::new(),
                    path: String::new(),
                    message: format!("is not valid HCL: {e}"),
                }),
            }
        }
        let mut declared = Declared::default();
        for (file, body) in &parsed {
            self.declare(file, body, &mut declared, &mut issues);
        }
        for (file, body) in &parsed {
            self.check_body_file(file, body, &declared, &mut issues);
        }
        issues
    }

    /// Checks one file's text.
    pub fn check_text(&self, file: &str, text: &str) -> Vec<SchemaIssue> {
        let mut files = TerraformFiles::default();
        files.files.insert(file.to_string(), text.to_string());
        self.check_files(&files)
    }

    /// Checks the `.tf` files a run wrote into `dir` (not its subdirectories).
    pub fn check_dir(&self, dir: &Path) -> Result<Vec<SchemaIssue>> {
        let io = |e: std::io::Error| {
            Error::invalid(
                format!("Terraform directory {}", dir.display()),
                e.to_string(),
            )
        };
        let mut files = TerraformFiles::default();
        for entry in std::fs::read_dir(dir).map_err(io)? {
            let path = entry.map_err(io)?.path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_string();
            if name.ends_with(".tf") && path.is_file() {
                files
                    .files
                    .insert(name, std::fs::read_to_string(&path).map_err(io)?);
            }
        }
        Ok(self.check_files(&files))
    }

    /// [`check_files`](Self::check_files) as a result: every issue, one per
    /// line, in an invalid-input error.
    pub fn validate(&self, files: &TerraformFiles) -> Result<()> {
        let issues = self.check_files(files);
        if issues.is_empty() {
            return Ok(());
        }
        let lines: Vec<String> = issues.iter().map(ToString::to_string).collect();
        Err(Error::invalid(
            "Terraform configuration",
            format!(
                "{} problem(s) against {}:\n{}",
                issues.len(),
                self.source(),
                lines.join("\n")
            ),
        ))
    }

    fn declare(
        &self,
        file: &str,
        body: &hcl::Body,
        declared: &mut Declared,
        issues: &mut Vec<SchemaIssue>,
    ) {
        for block in body.blocks() {
            let labels: Vec<&str> = block.labels().iter().map(|l| l.as_str()).collect();
            let dup = |what: String, issues: &mut Vec<SchemaIssue>| {
                issues.push(SchemaIssue {
                    file: file.to_string(),
                    address: what.clone(),
                    path: String::new(),
                    message: format!("{what} is declared more than once"),
                });
            };
            match (block.identifier(), labels.as_slice()) {
                ("variable", [name]) if !declared.variables.insert(name.to_string()) => {
                    dup(format!("variable.{name}"), issues)
                }
                ("resource", [kind, name])
                    if !declared
                        .resources
                        .insert((kind.to_string(), name.to_string())) =>
                {
                    dup(format!("{kind}.{name}"), issues)
                }
                ("locals", []) => {
                    for a in block.body().attributes() {
                        declared.locals.insert(a.key().to_string());
                    }
                }
                _ => {}
            }
        }
    }

    fn check_body_file(
        &self,
        file: &str,
        body: &hcl::Body,
        declared: &Declared,
        issues: &mut Vec<SchemaIssue>,
    ) {
        for attr in body.attributes() {
            issues.push(SchemaIssue {
                file: file.to_string(),
                address: String::new(),
                path: String::new(),
                message: format!("argument {:?} outside of any block", attr.key()),
            });
        }
        for block in body.blocks() {
            let labels: Vec<&str> = block.labels().iter().map(|l| l.as_str()).collect();
            let kind = block.identifier();
            let address = match (kind, labels.as_slice()) {
                ("resource", [t, n]) => format!("{t}.{n}"),
                (k, []) => k.to_string(),
                (k, ls) => format!("{k}.{}", ls.join(".")),
            };
            let mut ctx = Ctx {
                file,
                address,
                issues: &mut *issues,
            };
            match (kind, labels.as_slice()) {
                ("resource", [t, _]) => match self.schema.resources.get(*t) {
                    Some(schema) => check_body(schema, block.body(), Meta::Resource, "", &mut ctx),
                    None => ctx.issue(
                        "",
                        format!(
                            "resource type {t:?} is not in the schema{}",
                            suggestion(t, self.schema.resources.keys())
                        ),
                    ),
                },
                ("provider", ["google"]) => {
                    check_body(&self.schema.provider, block.body(), Meta::Provider, "", &mut ctx)
                }
                ("provider", [p]) => ctx.issue("", format!("provider {p:?} is not in the schema")),
                ("variable", [_]) => check_fixed(
                    block.body(),
                    &["type", "default", "description", "sensitive", "nullable", "ephemeral"],
                    &["validation"],
                    &[],
                    &mut ctx,
                ),
                ("output", [_]) => check_fixed(
                    block.body(),
                    &["value", "description", "sensitive", "depends_on", "ephemeral"],
                    &["precondition"],
                    &["value"],
                    &mut ctx,
                ),
                ("terraform", []) => check_fixed(
                    block.body(),
                    &["required_version", "experiments"],
                    &["required_providers", "backend", "cloud"],
                    &[],
                    &mut ctx,
                ),
                ("locals", []) => {}
                (k, ls) => ctx.issue(
                    "",
                    format!(
                        "top-level block {k:?} with {} label(s) is not checked by the schema checker; infraai does not generate it",
                        ls.len()
                    ),
                ),
            }
            let refs = Refs {
                declared,
                resources: &self.schema.resources,
            };
            walk_refs(block.body(), &refs, "", &mut ctx);
        }
    }
}

/// Blocks with a fixed set of arguments (variable, output, terraform).
fn check_fixed(
    body: &hcl::Body,
    attrs: &[&str],
    blocks: &[&str],
    required: &[&str],
    ctx: &mut Ctx<'_>,
) {
    for a in body.attributes() {
        if !attrs.contains(&a.key()) {
            ctx.issue("", format!("unsupported argument {:?}", a.key()));
        }
    }
    for b in body.blocks() {
        if !blocks.contains(&b.identifier()) {
            ctx.issue("", format!("unsupported block {:?}", b.identifier()));
        }
    }
    for r in required {
        if !body.attributes().any(|a| a.key() == *r) {
            ctx.issue("", format!("missing required argument {r:?}"));
        }
    }
}

fn join(path: &str, step: &str) -> String {
    if path.is_empty() {
        step.to_string()
    } else {
        format!("{path}.{step}")
    }
}

fn check_body(schema: &BlockSchema, body: &hcl::Body, meta: Meta, path: &str, ctx: &mut Ctx<'_>) {
    let mut seen = BTreeSet::new();
    for a in body.attributes() {
        let name = a.key();
        if !seen.insert(name) {
            ctx.issue(path, format!("argument {name:?} is set more than once"));
            continue;
        }
        if let Some(attr) = schema.attributes.get(name) {
            check_value(name, attr, a.expr(), path, ctx);
        } else if schema.blocks.contains_key(name) {
            ctx.issue(
                path,
                format!("{name:?} is a block, not an argument: write `{name} {{ … }}`"),
            );
        } else if (meta == Meta::Resource && RESOURCE_META_ATTRS.contains(&name))
            || (meta == Meta::Provider && name == "alias")
        {
        } else {
            ctx.issue(
                path,
                format!(
                    "unsupported argument {name:?}{}",
                    suggestion(name, schema.attributes.keys())
                ),
            );
        }
    }
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for b in body.blocks() {
        let name = b.identifier();
        if let Some(inner) = schema.blocks.get(name) {
            let index = counts.entry(name).or_default();
            let step = if inner.max_items == Some(1) {
                name.to_string()
            } else {
                format!("{name}[{index}]")
            };
            *index += 1;
            if !b.labels().is_empty() {
                ctx.issue(path, format!("block {name:?} takes no labels"));
            }
            check_body(inner, b.body(), Meta::None, &join(path, &step), ctx);
        } else if schema.attributes.contains_key(name) {
            ctx.issue(
                path,
                format!("{name:?} is an argument, not a block: write `{name} = …`"),
            );
        } else if meta == Meta::Resource && RESOURCE_META_BLOCKS.contains(&name) {
        } else {
            ctx.issue(
                path,
                format!(
                    "unsupported block {name:?}{}",
                    suggestion(name, schema.blocks.keys())
                ),
            );
        }
    }
    for (name, attr) in &schema.attributes {
        if attr.required && !seen.contains(name.as_str()) {
            ctx.issue(path, format!("missing required argument {name:?}"));
        }
    }
    for (name, inner) in &schema.blocks {
        let n = counts.get(name.as_str()).copied().unwrap_or(0);
        if inner.required && n == 0 {
            ctx.issue(path, format!("missing required block {name:?}"));
        }
        if let Some(max) = inner.max_items {
            if n > max {
                ctx.issue(
                    path,
                    format!("block {name:?} appears {n} times (at most {max})"),
                );
            }
        }
    }
}

fn check_value(name: &str, attr: &AttrSchema, expr: &Expression, path: &str, ctx: &mut Ctx<'_>) {
    let kind = attr.kind.as_str();
    let scalar = matches!(kind, "string" | "number" | "bool");
    let collection = kind.starts_with("list(") || kind.starts_with("set(");
    let wrong = match expr {
        Expression::Array(_) => scalar || kind.starts_with("map("),
        Expression::Object(_) => scalar || collection,
        Expression::String(_)
        | Expression::TemplateExpr(_)
        | Expression::Number(_)
        | Expression::Bool(_) => collection || kind.starts_with("map("),
        _ => false,
    };
    if wrong {
        ctx.issue(
            path,
            format!("argument {name:?} expects {kind}, got {}", shape(expr)),
        );
        return;
    }
    let Expression::String(value) = expr else {
        return;
    };
    match kind {
        "number" if value.parse::<f64>().is_err() => ctx.issue(
            path,
            format!("argument {name:?} expects a number, got {value:?}"),
        ),
        "bool" if value != "true" && value != "false" => ctx.issue(
            path,
            format!("argument {name:?} expects a bool, got {value:?}"),
        ),
        _ => {}
    }
    if let Some(values) = &attr.values {
        if !values.iter().any(|v| v == value) {
            ctx.issue(
                path,
                format!(
                    "invalid value {value:?} for {name:?}{}; expected one of {}",
                    suggestion(value, values.iter()),
                    values.join(", ")
                ),
            );
        }
    }
    if let Some(rule) = &attr.duration {
        match parse_duration(value) {
            None => ctx.issue(
                path,
                format!("{name:?} = {value:?} is not a duration in seconds such as \"60s\""),
            ),
            Some((secs, fractional)) => {
                if let Some(m) = rule.multiple_of_secs {
                    if fractional || secs % m != 0 {
                        ctx.issue(
                            path,
                            format!(
                                "{name:?} = {value:?} is not a whole number of minutes (the provider accepts multiples of {m}s: 0s, 60s, 120s, …)"
                            ),
                        );
                    }
                }
                if let Some(min) = rule.min_secs {
                    if secs < min {
                        ctx.issue(
                            path,
                            format!("{name:?} = {value:?} is below the minimum of {min}s"),
                        );
                    }
                }
            }
        }
    }
}

/// What references may point at.
struct Refs<'a> {
    declared: &'a Declared,
    resources: &'a BTreeMap<String, BlockSchema>,
}

/// Reports references to variables, locals and resources that no file
/// declares, and resource attributes the resource type does not have.
fn walk_refs(body: &hcl::Body, refs: &Refs<'_>, path: &str, ctx: &mut Ctx<'_>) {
    for a in body.attributes() {
        refs_in(a.expr(), refs, path, ctx);
    }
    for b in body.blocks() {
        walk_refs(b.body(), refs, &join(path, b.identifier()), ctx);
    }
}

fn get_attr(op: Option<&TraversalOperator>) -> Option<&str> {
    match op {
        Some(TraversalOperator::GetAttr(id)) => Some(id.as_str()),
        _ => None,
    }
}

fn refs_in(expr: &Expression, refs: &Refs<'_>, path: &str, ctx: &mut Ctx<'_>) {
    match expr {
        Expression::Array(items) => items.iter().for_each(|e| refs_in(e, refs, path, ctx)),
        Expression::Object(object) => {
            for (k, v) in object.iter() {
                if let ObjectKey::Expression(k) = k {
                    refs_in(k, refs, path, ctx);
                }
                refs_in(v, refs, path, ctx);
            }
        }
        Expression::TemplateExpr(t) => template_refs(t, refs, path, ctx),
        Expression::FuncCall(call) => call.args.iter().for_each(|e| refs_in(e, refs, path, ctx)),
        Expression::Parenthesis(e) => refs_in(e, refs, path, ctx),
        Expression::Traversal(t) => {
            if let (Expression::Variable(root), Some(first)) =
                (&t.expr, get_attr(t.operators.first()))
            {
                let declared = refs.declared;
                let root = root.as_str();
                let missing = match root {
                    "var" => (!declared.variables.contains(first))
                        .then(|| format!("reference to undeclared variable var.{first}")),
                    "local" => (!declared.locals.contains(first))
                        .then(|| format!("reference to undeclared local value local.{first}")),
                    r if r.starts_with("google_") => {
                        if !declared
                            .resources
                            .contains(&(r.to_string(), first.to_string()))
                        {
                            Some(format!("reference to undeclared resource {r}.{first}"))
                        } else {
                            // `type.name[index].attr`: the attribute must exist.
                            let attr = get_attr(t.operators[1..].iter().find(|op| {
                                !matches!(
                                    op,
                                    TraversalOperator::Index(_) | TraversalOperator::LegacyIndex(_)
                                )
                            }));
                            match (refs.resources.get(r), attr) {
                                (Some(schema), Some(attr))
                                    if !schema.attributes.contains_key(attr)
                                        && !schema.blocks.contains_key(attr)
                                        && !schema.computed.contains(attr) =>
                                {
                                    let known = schema
                                        .attributes
                                        .keys()
                                        .chain(schema.blocks.keys())
                                        .chain(schema.computed.iter());
                                    Some(format!(
                                        "reference to {r}.{first}.{attr}: {r} has no attribute {attr:?}{}",
                                        suggestion(attr, known)
                                    ))
                                }
                                _ => None,
                            }
                        }
                    }
                    _ => None,
                };
                if let Some(m) = missing {
                    ctx.issue(path, m);
                }
            }
            refs_in(&t.expr, refs, path, ctx);
        }
        _ => {}
    }
}

fn template_refs(t: &TemplateExpr, refs: &Refs<'_>, path: &str, ctx: &mut Ctx<'_>) {
    match Template::from_expr(t) {
        Ok(template) => {
            for element in template.elements() {
                if let Element::Interpolation(i) = element {
                    refs_in(&i.expr, refs, path, ctx);
                }
            }
        }
        Err(e) => ctx.issue(path, format!("invalid string template: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_committed_schema_has_what_we_emit() {
        let c = SchemaChecker::google();
        assert!(c.source().contains("6.50.0"), "{}", c.source());
        let policy = &c.schema.resources["google_monitoring_alert_policy"];
        let threshold = &policy.blocks["conditions"].blocks["condition_threshold"];
        assert!(threshold.blocks.contains_key("aggregations"));
        assert!(!threshold.blocks.contains_key("aggregation"));
        let aligner = &threshold.blocks["aggregations"].attributes["per_series_aligner"];
        let values = aligner.values.as_ref().unwrap();
        assert!(
            values.iter().any(|v| v == "ALIGN_MEAN") && values.iter().any(|v| v == "ALIGN_RATE")
        );
        assert_eq!(
            threshold.attributes["duration"]
                .duration
                .as_ref()
                .unwrap()
                .multiple_of_secs,
            Some(60)
        );
        assert!(c.resource_types().count() >= 8);
    }

    proptest::proptest! {
        /// Whatever the text, the checker answers with issues, never a panic.
        #[test]
        fn any_text_is_checked_without_panicking(text in "\\PC{0,200}", hostile in "[a-z_\"{}=\\[\\]$%.\n ]{0,120}") {
            let issues = SchemaChecker::google().check_text("fuzz.tf", &text);
            proptest::prop_assert!(issues.iter().all(|i| i.file == "fuzz.tf"));
            // An instance without its required arguments and blocks is never clean.
            let instance = format!("resource \"google_compute_instance\" \"x\" {{\n{hostile}\n}}\n");
            let issues = SchemaChecker::google().check_text("fuzz.tf", &instance);
            proptest::prop_assert!(!issues.is_empty(), "{instance}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("60s"), Some((60, false)));
        assert_eq!(parse_duration("1.5s"), Some((1, true)));
        assert_eq!(parse_duration("60.000s"), Some((60, false)));
        for bad in ["60", "1m", "s", "-1s", "1.s", "1.1234567890s", " 60s"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn suggestions_are_close_names_only() {
        let known = ["aggregations".to_string(), "trigger".to_string()];
        assert_eq!(
            suggestion("aggregation", known.iter()),
            "; did you mean \"aggregations\"?"
        );
        assert_eq!(suggestion("zzz", known.iter()), "");
    }
}
