//! Validates LLM output against the JSON Schema it was asked to follow.
//!
//! A deliberately small validator for the subset of JSON Schema that
//! `schemars` emits for our types and that LLM providers accept: `type`,
//! `enum`, `const`, `properties`, `required`, `additionalProperties`,
//! `items`, `minItems`/`maxItems`, `minimum`/`maximum` (and the exclusive
//! forms), `minLength`/`maxLength`, `anyOf`, `oneOf`, `allOf` and local
//! `$ref`s into `$defs`/`definitions`. Other keywords (`pattern`, `format`,
//! `description`) are ignored here; the typed deserialization that follows
//! validation checks names, CIDRs and machine types.
//!
//! Why not the `jsonschema` crate: even with its default features off it
//! brings regex engines, big-number fractions and a reference resolver (about
//! twenty crates) into core, for a subset we can check in a page of code with
//! error messages written for the repair prompt.

use serde_json::{Map, Value};

/// Most errors reported for one value (the repair prompt stays short).
const MAX_ERRORS: usize = 20;
/// Deepest `$ref`/nesting followed before giving up (guards recursive schemas).
const MAX_DEPTH: usize = 64;

/// Checks `value` against `schema`. On failure returns one line per problem,
/// each starting with the JSON pointer of the offending value.
pub fn validate(schema: &Value, value: &Value) -> Result<(), Vec<String>> {
    let mut errors = Validator::run(schema, schema, value, "", 0).errors;
    errors.truncate(MAX_ERRORS);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// Resolves a local `$ref` such as `#/$defs/Action`.
pub(crate) fn resolve<'a>(root: &'a Value, reference: &str) -> Option<&'a Value> {
    let pointer = reference.strip_prefix('#')?;
    root.pointer(pointer)
}

fn type_matches(ty: &str, value: &Value) -> bool {
    match ty {
        "null" => value.is_null(),
        "boolean" => value.is_boolean(),
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "number" => value.is_number(),
        "integer" => {
            value.is_i64() || value.is_u64() || value.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        _ => true,
    }
}

fn short(value: &Value) -> String {
    let s = value.to_string();
    if s.chars().count() > 60 {
        format!("{}…", s.chars().take(60).collect::<String>())
    } else {
        s
    }
}

/// Whether `len` is outside the bounds under `min` and `max` (e.g. `minItems`).
fn length_out_of_range(obj: &Keywords, min: &str, max: &str, len: u64) -> bool {
    let bound = |k: &str| obj.get(k).and_then(Value::as_u64);
    bound(min).is_some_and(|m| len < m) || bound(max).is_some_and(|m| len > m)
}

/// A schema object: its keywords and their values.
type Keywords = Map<String, Value>;

/// One validation pass: the root schema (for `$ref`s) and the errors found.
struct Validator<'a> {
    root: &'a Value,
    errors: Vec<String>,
}

impl<'a> Validator<'a> {
    /// Checks `value` against `schema`, resolving `$ref`s in `root`.
    fn run(root: &'a Value, schema: &Value, value: &Value, path: &str, depth: usize) -> Self {
        let mut validator = Validator {
            root,
            errors: Vec::new(),
        };
        validator.check(schema, value, path, depth);
        validator
    }

    /// Records one problem, prefixed with the JSON pointer of the value.
    fn error(&mut self, path: &str, message: impl std::fmt::Display) {
        let at = if path.is_empty() { "/" } else { path };
        self.errors.push(format!("{at}: {message}"));
    }

    fn check(&mut self, schema: &Value, value: &Value, path: &str, depth: usize) {
        if self.errors.len() >= MAX_ERRORS {
            return;
        }
        if depth > MAX_DEPTH {
            return self.error(path, "schema nesting too deep");
        }
        let obj = match schema {
            Value::Bool(true) => return,
            Value::Bool(false) => return self.error(path, "no value is allowed here"),
            Value::Object(o) => o,
            _ => return,
        };
        if let Some(r) = obj.get("$ref").and_then(Value::as_str) {
            match resolve(self.root, r) {
                Some(target) => self.check(target, value, path, depth + 1),
                None => self.error(path, format!("schema reference {r} not found")),
            }
        }
        if let Some(ty) = obj.get("type") {
            let ok = match ty {
                Value::String(t) => type_matches(t, value),
                Value::Array(ts) => ts
                    .iter()
                    .filter_map(Value::as_str)
                    .any(|t| type_matches(t, value)),
                _ => true,
            };
            if !ok {
                return self.error(path, format!("expected type {ty}, got {}", short(value)));
            }
        }
        self.check_value(obj, value, path);
        match value {
            Value::Array(items) => self.check_array(obj, items, path, depth),
            Value::Object(map) => self.check_object(obj, map, path, depth),
            _ => {}
        }
        self.check_alternatives(obj, value, path, depth);
    }

    /// `const`, `enum`, the numeric bounds and the string length bounds.
    fn check_value(&mut self, obj: &Keywords, value: &Value, path: &str) {
        if let Some(c) = obj.get("const").filter(|c| *c != value) {
            self.error(path, format!("must be {c}, got {}", short(value)));
        }
        if let Some(Value::Array(options)) = obj.get("enum") {
            if !options.contains(value) {
                let options = Value::Array(options.clone());
                self.error(path, format!("{} is not one of {options}", short(value)));
            }
        }
        if let Some(n) = value.as_f64() {
            let bound = |k: &str| obj.get(k).and_then(Value::as_f64);
            if bound("minimum").is_some_and(|m| n < m)
                || bound("exclusiveMinimum").is_some_and(|m| n <= m)
                || bound("maximum").is_some_and(|m| n > m)
                || bound("exclusiveMaximum").is_some_and(|m| n >= m)
            {
                self.error(path, format!("{n} is out of range"));
            }
        }
        if let Some(s) = value.as_str() {
            let len = s.chars().count() as u64;
            if length_out_of_range(obj, "minLength", "maxLength", len) {
                self.error(path, format!("string length {len} is out of range"));
            }
        }
    }

    /// `minItems`/`maxItems`, then every item against `items`.
    fn check_array(&mut self, obj: &Keywords, items: &[Value], path: &str, depth: usize) {
        let len = items.len() as u64;
        if length_out_of_range(obj, "minItems", "maxItems", len) {
            self.error(path, format!("{len} items is out of range"));
        }
        if let Some(item_schema) = obj.get("items") {
            for (i, item) in items.iter().enumerate() {
                self.check(item_schema, item, &format!("{path}/{i}"), depth + 1);
            }
        }
    }

    /// `required`, then each property against `properties`/`additionalProperties`.
    fn check_object(&mut self, obj: &Keywords, map: &Map<String, Value>, path: &str, depth: usize) {
        let props = obj.get("properties").and_then(Value::as_object);
        if let Some(Value::Array(required)) = obj.get("required") {
            for r in required.iter().filter_map(Value::as_str) {
                if !map.contains_key(r) {
                    self.error(path, format!("missing required property {r:?}"));
                }
            }
        }
        for (k, v) in map {
            let sub = format!("{path}/{k}");
            match props.and_then(|p| p.get(k)) {
                Some(s) => self.check(s, v, &sub, depth + 1),
                None => match obj.get("additionalProperties") {
                    Some(Value::Bool(false)) => {
                        self.error(path, format!("property {k:?} is not allowed"))
                    }
                    Some(s @ Value::Object(_)) => self.check(s, v, &sub, depth + 1),
                    _ => {}
                },
            }
        }
    }

    /// `allOf`, then `anyOf` and `oneOf` (reporting the closest alternative).
    fn check_alternatives(&mut self, obj: &Keywords, value: &Value, path: &str, depth: usize) {
        if let Some(Value::Array(all)) = obj.get("allOf") {
            for s in all {
                self.check(s, value, path, depth + 1);
            }
        }
        for (key, exactly_one) in [("anyOf", false), ("oneOf", true)] {
            let Some(Value::Array(branches)) = obj.get(key) else {
                continue;
            };
            let results: Vec<Vec<String>> = branches
                .iter()
                .map(|s| Validator::run(self.root, s, value, path, depth + 1).errors)
                .collect();
            let matching = results.iter().filter(|e| e.is_empty()).count();
            if matching == 0 {
                // Report the closest alternative: that is what the model meant.
                let closest = results.into_iter().min_by_key(Vec::len).unwrap_or_default();
                let n = branches.len();
                self.error(
                    path,
                    format!("matches none of the {n} allowed alternatives"),
                );
                self.errors.extend(closest);
            } else if exactly_one && matching > 1 {
                self.error(
                    path,
                    format!("matches {matching} alternatives, expected exactly one"),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{InfraPlan, OpsDecision};
    use proptest::prelude::*;
    use serde_json::json;

    fn decision_schema() -> Value {
        serde_json::to_value(schemars::schema_for!(OpsDecision)).unwrap()
    }

    fn good() -> Value {
        json!({"severity": "warning", "recommended_action": {"type": "scale_up", "machine_type": "e2-standard-2"},
               "requires_approval": false, "confidence": 0.9, "reasoning": "cpu", "risk": "medium", "precedent": null})
    }

    #[test]
    fn accepts_a_valid_decision_and_rejects_broken_ones() {
        let schema = decision_schema();
        assert_eq!(validate(&schema, &good()), Ok(()));

        let mut v = good();
        v["recommended_action"] = json!({"type": "delete_everything"});
        let errs = validate(&schema, &v).unwrap_err();
        assert!(
            errs.iter().any(|e| e.contains("/recommended_action")),
            "{errs:?}"
        );

        let mut v = good();
        v.as_object_mut().unwrap().remove("confidence");
        v["approve_self"] = json!(true);
        let errs = validate(&schema, &v).unwrap_err();
        assert!(
            errs.iter()
                .any(|e| e.contains("missing required property \"confidence\"")),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.contains("\"approve_self\" is not allowed")),
            "{errs:?}"
        );

        let mut v = good();
        v["severity"] = json!("apocalyptic");
        assert!(validate(&schema, &v).is_err());
        let mut v = good();
        v["recommended_action"] = json!({"type": "restart", "machine_type": "e2-standard-2"});
        assert!(validate(&schema, &v).is_err());
        assert!(validate(&schema, &json!("just text")).is_err());
    }

    #[test]
    fn numbers_ranges_and_arrays() {
        let schema = json!({"type": "object", "properties": {
            "n": {"type": "integer", "minimum": 1, "maximum": 3},
            "xs": {"type": "array", "items": {"type": "string"}, "maxItems": 2}}});
        assert!(validate(&schema, &json!({"n": 2, "xs": ["a"]})).is_ok());
        assert!(validate(&schema, &json!({"n": 4})).is_err());
        assert!(validate(&schema, &json!({"n": 1.5})).is_err());
        assert!(validate(&schema, &json!({"xs": ["a", "b", "c"]})).is_err());
        assert!(validate(&schema, &json!({"xs": [1]})).is_err());
    }

    #[test]
    fn the_plan_schema_resolves_its_references() {
        let schema = serde_json::to_value(schemars::schema_for!(InfraPlan)).unwrap();
        let errs = validate(
            &schema,
            &json!({"resources": [{"name": "api", "kind": "spaceship"}]}),
        )
        .unwrap_err();
        assert!(
            errs.iter().any(|e| e.starts_with("/resources/0/kind")),
            "{errs:?}"
        );
    }

    proptest! {
        // Whatever JSON-ish text an LLM sends, validation terminates with a verdict
        // and never accepts something the typed parser then rejects structurally.
        #[test]
        fn never_panics_and_agrees_with_serde(s in "\\PC{0,120}") {
            let schema = decision_schema();
            let value = serde_json::from_str::<Value>(&s).unwrap_or(Value::String(s));
            if validate(&schema, &value).is_ok() {
                prop_assert!(serde_json::from_value::<OpsDecision>(value).is_ok());
            }
        }
    }
}
