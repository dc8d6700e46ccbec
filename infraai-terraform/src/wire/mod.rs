//! Terraform's machine-readable formats (private), and their translation into
//! the domain types of infraai-core.

use infraai_core::{
    AttributeChange, ChangeAction, ChangeSet, Diagnostic, DiagnosticSeverity, LogLevel, LogLine,
    ResourceChange, SourceRange, StateResource, ValidationReport,
};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// What replaces a sensitive value in change sets and redacted outputs.
pub const SENSITIVE: &str = "(sensitive value)";

#[derive(Deserialize)]
struct WireValidate {
    valid: bool,
    #[serde(default)]
    diagnostics: Vec<WireDiagnostic>,
}

#[derive(Deserialize)]
pub(crate) struct WireDiagnostic {
    severity: String,
    summary: String,
    #[serde(default)]
    detail: String,
    range: Option<WireRange>,
}

#[derive(Deserialize)]
struct WireRange {
    filename: String,
    start: WirePos,
    end: WirePos,
}

#[derive(Deserialize)]
struct WirePos {
    line: u32,
}

impl From<WireDiagnostic> for Diagnostic {
    fn from(d: WireDiagnostic) -> Self {
        Diagnostic {
            severity: if d.severity == "warning" {
                DiagnosticSeverity::Warning
            } else {
                DiagnosticSeverity::Error
            },
            summary: d.summary,
            detail: d.detail,
            range: d.range.map(|r| SourceRange {
                filename: r.filename,
                start_line: r.start.line,
                end_line: r.end.line,
            }),
        }
    }
}

/// Parses `terraform validate -json`.
pub(crate) fn parse_validate(json: &str) -> Result<ValidationReport, String> {
    let w: WireValidate = serde_json::from_str(json).map_err(|e| e.to_string())?;
    Ok(ValidationReport {
        valid: w.valid,
        diagnostics: w.diagnostics.into_iter().map(Diagnostic::from).collect(),
    })
}

/// One line of `-json` UI output (plan, apply, destroy), as a log line.
/// Lines that are not JSON become plain lines.
pub(crate) fn event_line(line: &str) -> LogLine {
    match serde_json::from_str::<Value>(line) {
        Ok(v @ Value::Object(_)) => {
            let level = match v.get("@level").and_then(Value::as_str) {
                Some("error") => LogLevel::Error,
                Some("warn") => LogLevel::Warn,
                _ => LogLevel::Info,
            };
            let message = v
                .get("@message")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            LogLine {
                level,
                source: "terraform".into(),
                message,
                fields: v,
            }
        }
        _ => LogLine::info("terraform", line),
    }
}

/// The error diagnostics in `-json` UI output, one per line of text.
pub(crate) fn error_diagnostics(stdout_lines: &[LogLine]) -> Vec<String> {
    stdout_lines
        .iter()
        .filter(|l| l.fields.get("type").and_then(Value::as_str) == Some("diagnostic"))
        .filter(|l| l.level == LogLevel::Error)
        .map(|l| {
            let d = &l.fields["diagnostic"];
            let summary = d["summary"].as_str().unwrap_or(&l.message);
            match d["detail"].as_str() {
                Some(detail) if !detail.is_empty() => format!("{summary}: {detail}"),
                _ => summary.to_string(),
            }
        })
        .collect()
}

/// The error diagnostics in `-json` UI output, structured.
pub(crate) fn error_diagnostic_list(stdout_lines: &[LogLine]) -> Vec<Diagnostic> {
    stdout_lines
        .iter()
        .filter(|l| l.fields.get("type").and_then(Value::as_str) == Some("diagnostic"))
        .filter(|l| l.level == LogLevel::Error)
        .filter_map(|l| {
            serde_json::from_value::<WireDiagnostic>(l.fields["diagnostic"].clone()).ok()
        })
        .map(Diagnostic::from)
        .collect()
}

#[derive(Deserialize)]
struct WireState {
    values: Option<WireStateValues>,
}

#[derive(Deserialize)]
struct WireStateValues {
    root_module: Option<WireModule>,
    /// The same shape as `terraform output -json`.
    #[serde(default)]
    outputs: BTreeMap<String, TfOutput>,
}

#[derive(Deserialize)]
struct WireModule {
    #[serde(default)]
    resources: Vec<WireStateResource>,
    #[serde(default)]
    child_modules: Vec<WireModule>,
}

#[derive(Deserialize)]
struct WireStateResource {
    address: String,
    #[serde(default)]
    mode: String,
    #[serde(rename = "type")]
    resource_type: String,
    #[serde(default)]
    tainted: bool,
}

fn collect_resources(m: WireModule, out: &mut Vec<StateResource>) {
    for r in m.resources {
        if r.mode == "managed" {
            out.push(StateResource {
                address: r.address,
                resource_type: r.resource_type,
                tainted: r.tainted,
            });
        }
    }
    for c in m.child_modules {
        collect_resources(c, out);
    }
}

/// Parses `terraform show -json` of a state: the managed resources (data
/// sources omitted, every module included) and the root module's outputs as
/// `terraform output -json` gives them (sensitive values included: never log
/// them).
pub(crate) fn parse_shown_state(json: &str) -> Result<ShownState, String> {
    let w: WireState = serde_json::from_str(json).map_err(|e| e.to_string())?;
    let mut resources = Vec::new();
    let Some(values) = w.values else {
        return Ok((resources, BTreeMap::new()));
    };
    if let Some(root) = values.root_module {
        collect_resources(root, &mut resources);
    }
    Ok((resources, values.outputs))
}

/// A state's managed resources and its outputs.
pub(crate) type ShownState = (Vec<StateResource>, BTreeMap<String, TfOutput>);

#[derive(Deserialize)]
struct WirePlan {
    #[serde(default)]
    resource_changes: Vec<WireResourceChange>,
    /// The state the plan leaves when applied (values not yet known are
    /// missing; the resources are all there).
    planned_values: Option<WireStateValues>,
}

#[derive(Deserialize)]
struct WireResourceChange {
    address: String,
    change: WireChange,
}

#[derive(Deserialize)]
struct WireChange {
    actions: Vec<String>,
    #[serde(default)]
    before: Value,
    #[serde(default)]
    after: Value,
    #[serde(default)]
    after_unknown: Value,
    #[serde(default)]
    before_sensitive: Value,
    #[serde(default)]
    after_sensitive: Value,
}

fn action(actions: &[String]) -> Result<ChangeAction, String> {
    let a: Vec<&str> = actions.iter().map(String::as_str).collect();
    Ok(match a.as_slice() {
        ["no-op"] => ChangeAction::NoOp,
        ["create"] => ChangeAction::Create,
        ["read"] => ChangeAction::Read,
        ["update"] => ChangeAction::Update,
        ["delete"] => ChangeAction::Delete,
        ["delete", "create"] | ["create", "delete"] => ChangeAction::Replace,
        other => return Err(format!("unknown change actions {other:?}")),
    })
}

/// The change set in `terraform plan -json`'s own stream: each
/// `planned_change`'s address and action, sorted by address as
/// `show -json` lists them, no-ops (and pure moves and imports) omitted.
/// The stream carries no attribute values; [`parse_plan_and_state`] of the saved plan
/// does.
pub(crate) fn parse_planned_changes(stream: &str) -> Result<ChangeSet, String> {
    #[derive(Deserialize)]
    struct Event {
        change: Planned,
    }
    #[derive(Deserialize)]
    struct Planned {
        resource: Resource,
        action: String,
    }
    #[derive(Deserialize)]
    struct Resource {
        addr: String,
    }
    let mut changes = Vec::new();
    // Only the lines that can be one are parsed: most of a large plan's
    // stream is progress.
    for line in stream
        .lines()
        .filter(|l| l.contains(r#""type":"planned_change""#))
    {
        let e: Event = serde_json::from_str(line).map_err(|e| format!("planned_change: {e}"))?;
        let action = match e.change.action.as_str() {
            "noop" | "move" | "import" => continue,
            "create" => ChangeAction::Create,
            "read" => ChangeAction::Read,
            "update" => ChangeAction::Update,
            "delete" => ChangeAction::Delete,
            "replace" => ChangeAction::Replace,
            other => return Err(format!("unknown planned action {other:?}")),
        };
        changes.push(ResourceChange {
            address: e.change.resource.addr,
            action,
            attributes: Vec::new(),
        });
    }
    changes.sort_by(|a, b| a.address.cmp(&b.address));
    Ok(ChangeSet { changes })
}

/// Parses `terraform show -json <planfile>` into a change set (no-ops
/// omitted; sensitive values replaced by [`SENSITIVE`]) and the managed
/// resources the state holds once the plan is applied in full (its
/// `planned_values`: unchanged resources included, deleted ones gone, none
/// tainted).
pub(crate) fn parse_plan_and_state(json: &str) -> Result<(ChangeSet, Vec<StateResource>), String> {
    let w: WirePlan = serde_json::from_str(json).map_err(|e| e.to_string())?;
    let mut planned = Vec::new();
    if let Some(root) = w.planned_values.and_then(|v| v.root_module) {
        collect_resources(root, &mut planned);
    }
    let mut changes = Vec::new();
    for rc in w.resource_changes {
        let action = action(&rc.change.actions)?;
        if action == ChangeAction::NoOp {
            continue;
        }
        let mut attributes = Vec::new();
        let c = &rc.change;
        diff(
            String::new(),
            Some(&c.before),
            Some(&c.after),
            Some(&c.after_unknown),
            Some(&c.before_sensitive),
            Some(&c.after_sensitive),
            &mut attributes,
        );
        changes.push(ResourceChange {
            address: rc.address,
            action,
            attributes,
        });
    }
    Ok((ChangeSet { changes }, planned))
}

fn child<'a>(v: Option<&'a Value>, key: &str) -> Option<&'a Value> {
    match v {
        // A whole-object `true` (unknown / sensitive) covers every child.
        Some(Value::Bool(true)) => v,
        Some(Value::Object(m)) => m.get(key),
        _ => None,
    }
}

fn flag(v: Option<&Value>) -> bool {
    matches!(v, Some(Value::Bool(true)))
}

fn is_object(v: Option<&Value>) -> bool {
    matches!(v, Some(Value::Object(_)))
}

/// Appends the leaf attributes that differ between before and after.
fn diff(
    path: String,
    before: Option<&Value>,
    after: Option<&Value>,
    unknown: Option<&Value>,
    before_sensitive: Option<&Value>,
    after_sensitive: Option<&Value>,
    out: &mut Vec<AttributeChange>,
) {
    let null = Value::Null;
    let before_is_container = is_object(before) || matches!(before, None | Some(Value::Null));
    let after_is_container = is_object(after) || matches!(after, None | Some(Value::Null));
    let recurse = (is_object(before) || is_object(after) || is_object(unknown))
        && before_is_container
        && after_is_container
        && !flag(unknown)
        && !flag(before_sensitive)
        && !flag(after_sensitive);
    if recurse {
        let mut keys: Vec<&String> = Vec::new();
        for v in [before, after, unknown].into_iter().flatten() {
            if let Value::Object(m) = v {
                keys.extend(m.keys());
            }
        }
        keys.sort();
        keys.dedup();
        for key in keys {
            let p = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            diff(
                p,
                child(before, key),
                child(after, key),
                child(unknown, key),
                child(before_sensitive, key),
                child(after_sensitive, key),
                out,
            );
        }
        return;
    }
    if path.is_empty() {
        return;
    }
    let after_unknown = flag(unknown);
    let b = before.unwrap_or(&null);
    let a = if after_unknown {
        &null
    } else {
        after.unwrap_or(&null)
    };
    // Sensitive flags on lists/objects may be nested structures: any `true`
    // inside hides the whole value here.
    let b_sensitive = contains_true(before_sensitive);
    let a_sensitive = contains_true(after_sensitive);
    if b == a && !after_unknown && b_sensitive == a_sensitive {
        return;
    }
    let mask = |sensitive: bool, v: &Value| {
        if sensitive && !v.is_null() {
            Value::String(SENSITIVE.into())
        } else {
            v.clone()
        }
    };
    out.push(AttributeChange {
        path,
        before: mask(b_sensitive, b),
        after: mask(a_sensitive, a),
        after_unknown,
    });
}

fn contains_true(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::Array(a)) => a.iter().any(|v| contains_true(Some(v))),
        Some(Value::Object(m)) => m.values().any(|v| contains_true(Some(v))),
        _ => false,
    }
}

/// One output of `terraform output -json`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct TfOutput {
    /// The value (missing in an apply's `outputs` event for a sensitive
    /// output: `null`).
    #[serde(default)]
    pub value: Value,
    /// Whether the configuration marks it sensitive.
    #[serde(default)]
    pub sensitive: bool,
    /// Terraform's type of the value (JSON encoding of the type constraint).
    #[serde(default, rename = "type")]
    pub value_type: Value,
}

/// Parses `terraform output -json`.
pub(crate) fn parse_outputs(json: &str) -> Result<BTreeMap<String, TfOutput>, String> {
    serde_json::from_str(json).map_err(|e| e.to_string())
}

/// The outputs in an apply's `outputs` event (its `outputs` field: the
/// shape of `terraform output -json` without the values of sensitive
/// outputs), masked as a run records them; `None` when it does not parse.
pub(crate) fn parse_outputs_event(outputs: &Value) -> Option<BTreeMap<String, Value>> {
    BTreeMap::<String, TfOutput>::deserialize(outputs)
        .ok()
        .map(masked)
}

/// Outputs as a run records them: sensitive values replaced by
/// [`SENSITIVE`].
pub(crate) fn masked(outputs: BTreeMap<String, TfOutput>) -> BTreeMap<String, Value> {
    (outputs.into_iter())
        .map(|(k, o)| {
            let v = if o.sensitive {
                Value::String(SENSITIVE.into())
            } else {
                o.value
            };
            (k, v)
        })
        .collect()
}

#[cfg(test)]
mod tests;
