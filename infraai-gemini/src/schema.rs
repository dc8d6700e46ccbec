//! Converts the JSON Schemas that `schemars` generates into the subsets the
//! APIs accept. The caller (infraai-core) still validates answers against
//! the original schema, so a conversion may loosen but never has to be exact.

use crate::error::ProviderError;
use serde_json::{Map, Value};

const MAX_DEPTH: usize = 32;

/// Keywords neither API needs (documentation, serde defaults, formats such as
/// `uint32` or `double` that Gemini rejects).
const DROP: &[&str] = &[
    "$schema",
    "$id",
    "$defs",
    "definitions",
    "default",
    "examples",
    "deprecated",
    "readOnly",
    "writeOnly",
    "format",
    "pattern",
    "minLength",
    "maxLength",
];

fn bad(detail: impl Into<String>) -> ProviderError {
    ProviderError::Config {
        detail: format!("response schema: {}", detail.into()),
    }
}

/// Inlines local `$ref`s, turns `const` into a one-value `enum` and `oneOf`
/// into `anyOf`, and drops keywords the APIs do not accept.
fn simplify(root: &Value, schema: &Value, depth: usize) -> Result<Value, ProviderError> {
    if depth > MAX_DEPTH {
        return Err(bad("nested too deeply (recursive $ref?)"));
    }
    let obj = match schema {
        Value::Object(o) => o,
        Value::Bool(_) => return Ok(Value::Object(Map::new())),
        other => return Ok(other.clone()),
    };
    if let Some(r) = obj.get("$ref").and_then(Value::as_str) {
        let target = r
            .strip_prefix('#')
            .and_then(|p| root.pointer(p))
            .ok_or_else(|| bad(format!("unresolved reference {r}")))?;
        let mut resolved = simplify(root, target, depth + 1)?;
        // Sibling keywords (a description next to the $ref) win.
        if let Value::Object(m) = &mut resolved {
            for (k, v) in obj {
                if k != "$ref" && !DROP.contains(&k.as_str()) {
                    m.insert(k.clone(), simplify(root, v, depth + 1)?);
                }
            }
        }
        return Ok(resolved);
    }
    let mut out = Map::new();
    for (k, v) in obj {
        if DROP.contains(&k.as_str()) {
            continue;
        }
        let v = match k.as_str() {
            "properties" => Value::Object(
                v.as_object()
                    .into_iter()
                    .flatten()
                    .map(|(name, s)| Ok((name.clone(), simplify(root, s, depth + 1)?)))
                    .collect::<Result<Map<_, _>, ProviderError>>()?,
            ),
            "items" | "additionalProperties" if v.is_object() => simplify(root, v, depth + 1)?,
            "anyOf" | "oneOf" | "allOf" => Value::Array(
                v.as_array()
                    .into_iter()
                    .flatten()
                    .map(|s| simplify(root, s, depth + 1))
                    .collect::<Result<_, _>>()?,
            ),
            _ => v.clone(),
        };
        match k.as_str() {
            "const" => out.insert("enum".into(), Value::Array(vec![v])),
            "oneOf" => out.insert("anyOf".into(), v),
            _ => out.insert(k.clone(), v),
        };
    }
    collapse_enum_branches(&mut out);
    Ok(Value::Object(out))
}

/// `anyOf` of documented unit variants (`{type: string, enum: [x]}` each)
/// becomes one string `enum`, which every API handles best.
fn collapse_enum_branches(out: &mut Map<String, Value>) {
    let Some(Value::Array(branches)) = out.get("anyOf") else {
        return;
    };
    let values: Option<Vec<Value>> = branches
        .iter()
        .map(|b| {
            let o = b.as_object()?;
            let e = o.get("enum")?.as_array()?;
            let only_doc = o
                .keys()
                .all(|k| matches!(k.as_str(), "enum" | "type" | "description" | "title"));
            (only_doc && e.len() == 1 && e[0].is_string()).then(|| e[0].clone())
        })
        .collect();
    if let Some(values) = values.filter(|v| !v.is_empty()) {
        out.remove("anyOf");
        out.insert("type".into(), Value::String("string".into()));
        out.insert("enum".into(), Value::Array(values));
    }
}

/// The schema for Gemini's `responseJsonSchema`: refs inlined, `const` →
/// `enum`, `oneOf` → `anyOf`, unsupported keywords dropped. The OpenAI
/// conversion starts from it too.
pub(crate) fn simplified(schema: &Value) -> Result<Value, ProviderError> {
    simplify(schema, schema, 0)
}

fn is_object_schema(o: &Map<String, Value>) -> bool {
    o.contains_key("properties") || o.get("type").and_then(Value::as_str) == Some("object")
}

fn nullable(schema: Value) -> Value {
    let Value::Object(mut o) = schema else {
        return schema;
    };
    let null = Value::String("null".into());
    match o.get_mut("type") {
        Some(Value::String(t)) if t != "null" => {
            let t = Value::String(t.clone());
            o.insert("type".into(), Value::Array(vec![t, null.clone()]));
            if let Some(Value::Array(e)) = o.get_mut("enum") {
                e.push(Value::Null);
            }
            return Value::Object(o);
        }
        Some(Value::Array(ts)) => {
            if !ts.contains(&null) {
                ts.push(null);
            }
            return Value::Object(o);
        }
        _ => {}
    }
    if let Some(Value::Array(branches)) = o.get_mut("anyOf") {
        if !branches.iter().any(|b| b.get("type") == Some(&null)) {
            branches.push(serde_json::json!({"type": "null"}));
        }
        return Value::Object(o);
    }
    serde_json::json!({"anyOf": [Value::Object(o), {"type": "null"}]})
}

fn strictify(schema: Value) -> Value {
    let Value::Object(mut o) = schema else {
        return schema;
    };
    for key in ["anyOf", "allOf"] {
        if let Some(Value::Array(bs)) = o.remove(key) {
            o.insert(
                key.into(),
                Value::Array(bs.into_iter().map(strictify).collect()),
            );
        }
    }
    if let Some(items) = o.remove("items") {
        o.insert("items".into(), strictify(items));
    }
    if is_object_schema(&o) {
        let required: Vec<String> = o
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(String::from))
            .collect();
        let props = match o.remove("properties") {
            Some(Value::Object(p)) => p,
            _ => Map::new(),
        };
        let mut all = Vec::new();
        let mut new_props = Map::new();
        for (name, s) in props {
            let s = strictify(s);
            let s = if required.contains(&name) {
                s
            } else {
                nullable(s)
            };
            all.push(Value::String(name.clone()));
            new_props.insert(name, s);
        }
        o.insert("type".into(), Value::String("object".into()));
        o.insert("properties".into(), Value::Object(new_props));
        o.insert("required".into(), Value::Array(all));
        o.insert("additionalProperties".into(), Value::Bool(false));
    }
    Value::Object(o)
}

/// The schema for OpenAI `response_format.json_schema` with `strict: true`:
/// every object closed and every property required; properties that were
/// optional become nullable (see [`strip_added_nulls`]).
pub(crate) fn for_openai_strict(schema: &Value) -> Result<Value, ProviderError> {
    Ok(strictify(simplified(schema)?))
}

/// Undoes [`for_openai_strict`]'s nullability on an answer: removes `null`
/// properties that the simplified original schema did not require, so the
/// answer matches the original schema again. `schema` is [`simplified`]'s output.
pub(crate) fn strip_added_nulls(schema: &Value, value: &mut Value) {
    let Some(o) = schema.as_object() else { return };
    if let Some(Value::Array(branches)) = o.get("anyOf") {
        if let Some(b) = branches.iter().find(|b| branch_fits(b, value)) {
            strip_added_nulls(b, value);
        }
        return;
    }
    match value {
        Value::Object(map) => {
            let required: Vec<&str> = o
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let props = o.get("properties").and_then(Value::as_object);
            map.retain(|k, v| !v.is_null() || required.contains(&k.as_str()));
            if let Some(props) = props {
                for (k, v) in map.iter_mut() {
                    if let Some(s) = props.get(k) {
                        strip_added_nulls(s, v);
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(s) = o.get("items") {
                for v in items {
                    strip_added_nulls(s, v);
                }
            }
        }
        _ => {}
    }
}

/// Whether an `anyOf` branch is the one a value was meant for: same JSON
/// type and, for tagged objects, the same `type` tag.
fn branch_fits(branch: &Value, value: &Value) -> bool {
    let Some(b) = branch.as_object() else {
        return false;
    };
    match value {
        Value::Object(map) => {
            let Some(props) = b.get("properties").and_then(Value::as_object) else {
                return false;
            };
            match (map.get("type"), props.get("type")) {
                (Some(tag), Some(s)) => s
                    .get("enum")
                    .and_then(Value::as_array)
                    .is_some_and(|e| e.contains(tag)),
                _ => map.keys().all(|k| props.contains_key(k)),
            }
        }
        Value::Null => false,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use infraai_core::OpsDecision;
    use serde_json::json;

    fn walk(v: &Value, f: &mut impl FnMut(&Map<String, Value>)) {
        match v {
            Value::Object(o) => {
                f(o);
                o.values().for_each(|c| walk(c, f));
            }
            Value::Array(a) => a.iter().for_each(|c| walk(c, f)),
            _ => {}
        }
    }

    fn decision_schema() -> Value {
        serde_json::to_value(schemars::schema_for!(OpsDecision)).unwrap()
    }

    #[test]
    fn gemini_schema_has_no_refs_consts_oneofs_or_formats() {
        let g = simplified(&decision_schema()).unwrap();
        walk(&g, &mut |o| {
            for k in [
                "$ref", "$defs", "const", "oneOf", "format", "$schema", "pattern",
            ] {
                assert!(!o.contains_key(k), "{k} left in {o:?}");
            }
        });
        assert_eq!(
            g["properties"]["severity"]["enum"],
            json!(["info", "warning", "critical"])
        );
        assert!(g["properties"]["recommended_action"]["anyOf"].is_array());
    }

    #[test]
    fn openai_strict_schema_closes_objects_and_round_trips_answers() {
        let original = decision_schema();
        let strict = for_openai_strict(&original).unwrap();
        walk(&strict, &mut |o| {
            if let Some(Value::Object(props)) = o.get("properties") {
                assert_eq!(o["additionalProperties"], json!(false));
                let req = o["required"].as_array().unwrap();
                assert_eq!(req.len(), props.len(), "{o:?}");
            }
        });
        // A strict-mode answer with the added nulls matches the original schema once stripped.
        let mut answer = json!({"severity": "warning", "recommended_action": {"type": "restart"},
            "requires_approval": true, "confidence": 0.8, "reasoning": "r", "risk": "low", "precedent": null});
        strip_added_nulls(&simplify(&original, &original, 0).unwrap(), &mut answer);
        assert!(serde_json::from_value::<OpsDecision>(answer).is_ok());
    }

    #[test]
    fn recursive_schemas_are_refused() {
        let s = json!({"$ref": "#/$defs/A", "$defs": {"A": {"type": "object",
            "properties": {"a": {"$ref": "#/$defs/A"}}}}});
        assert!(simplified(&s).is_err());
    }
}
