//! The wire formats against Terraform 1.11's own output.

use super::*;
use serde_json::json;

/// Lines of Terraform 1.11's `plan -json` stream (one resource of each
/// kind of change, one pure move, the summary and a log line).
const PLAN_STREAM: &str = r#"{"@level":"info","@message":"Terraform 1.11.4","type":"version","ui":"1.2"}
{"@level":"info","@message":"terraform_data.d: Plan to create","change":{"resource":{"addr":"terraform_data.d","module":"","resource":"terraform_data.d","implied_provider":"terraform","resource_type":"terraform_data","resource_name":"d","resource_key":null},"action":"create"},"type":"planned_change"}
{"@level":"info","@message":"terraform_data.a: Plan to update","change":{"resource":{"addr":"terraform_data.a","module":"","resource":"terraform_data.a","implied_provider":"terraform","resource_type":"terraform_data","resource_name":"a","resource_key":null},"action":"update"},"type":"planned_change"}
{"@level":"info","@message":"terraform_data.b: Plan to delete","change":{"resource":{"addr":"terraform_data.b","module":"","resource":"terraform_data.b","implied_provider":"terraform","resource_type":"terraform_data","resource_name":"b","resource_key":null},"action":"delete","reason":"delete_because_no_resource_config"},"type":"planned_change"}
{"@level":"info","@message":"terraform_data.e: Plan to move","change":{"resource":{"addr":"terraform_data.e","module":"","resource":"terraform_data.e","implied_provider":"terraform","resource_type":"terraform_data","resource_name":"e","resource_key":null},"previous_resource":{"addr":"terraform_data.old"},"action":"move"},"type":"planned_change"}
{"@level":"info","@message":"terraform_data.c: Plan to replace","change":{"resource":{"addr":"terraform_data.c","module":"","resource":"terraform_data.c","implied_provider":"terraform","resource_type":"terraform_data","resource_name":"c","resource_key":null},"action":"replace","reason":"cannot_update"},"type":"planned_change"}
{"@level":"info","@message":"Plan: 2 to add, 1 to change, 2 to destroy.","changes":{"add":2,"change":1,"import":0,"remove":2,"operation":"plan"},"type":"change_summary"}"#;

#[test]
fn a_plan_stream_gives_each_change_s_address_and_action_in_address_order() {
    let set = parse_planned_changes(PLAN_STREAM).unwrap();
    let got: Vec<(&str, ChangeAction)> = (set.changes.iter())
        .map(|c| (c.address.as_str(), c.action))
        .collect();
    use ChangeAction::*;
    assert_eq!(
        got,
        [
            ("terraform_data.a", Update),
            ("terraform_data.b", Delete),
            ("terraform_data.c", Replace),
            ("terraform_data.d", Create),
        ]
    );
    assert!(set.changes.iter().all(|c| c.attributes.is_empty()));
    assert_eq!(
        set.summary(),
        "1 to create, 1 to update, 1 to replace, 1 to delete"
    );
    let unknown = PLAN_STREAM.replace(r#""action":"create""#, r#""action":"explode""#);
    assert!(parse_planned_changes(&unknown)
        .unwrap_err()
        .contains("explode"));
    assert!(parse_planned_changes("not json\n")
        .unwrap()
        .changes
        .is_empty());
}

#[test]
fn a_shown_state_gives_the_outputs_as_output_json_does() {
    let output = r#"{"url":{"sensitive":false,"type":"string","value":"http://127.0.0.1:8080"},
            "password":{"sensitive":true,"type":"string","value":"hunter2"}}"#;
    let shown = format!(
        r#"{{"format_version":"1.0","values":{{"outputs":{output},"root_module":{{"resources":[
            {{"address":"terraform_data.a","mode":"managed","type":"terraform_data","name":"a"}}]}}}}}}"#
    );
    let (resources, outputs) = parse_shown_state(&shown).unwrap();
    assert_eq!(resources.len(), 1);
    assert_eq!(outputs, parse_outputs(output).unwrap());
    assert!(outputs["password"].sensitive);
    let (none, empty) = parse_shown_state(r#"{"format_version":"1.0"}"#).unwrap();
    assert!(none.is_empty() && empty.is_empty());
}

#[test]
fn state_lists_managed_resources_of_every_module() {
    let json = r#"{"format_version":"1.0","values":{"root_module":{"resources":[
            {"address":"terraform_data.a","mode":"managed","type":"terraform_data","name":"a","values":{"input":"secret"}},
            {"address":"data.external.x","mode":"data","type":"external","name":"x"},
            {"address":"terraform_data.b","mode":"managed","type":"terraform_data","name":"b","tainted":true}],
            "child_modules":[{"address":"module.m","resources":[
            {"address":"module.m.null_resource.c","mode":"managed","type":"null_resource","name":"c"}]}]}}}"#;
    let r = parse_shown_state(json).unwrap().0;
    let addrs: Vec<&str> = r.iter().map(|r| r.address.as_str()).collect();
    assert_eq!(
        addrs,
        [
            "terraform_data.a",
            "terraform_data.b",
            "module.m.null_resource.c"
        ]
    );
    assert!(!r[0].tainted && r[1].tainted);
    assert_eq!(r[2].resource_type, "null_resource");
    assert!(
        parse_shown_state(r#"{"format_version":"1.0"}"#)
            .unwrap()
            .0
            .is_empty(),
        "no state yet"
    );
    assert!(parse_shown_state("not json").is_err());
}

#[test]
fn plan_json_becomes_a_change_set() {
    let plan = json!({
        "resource_changes": [
            {"address": "terraform_data.a", "change": {
                "actions": ["create"], "before": null,
                "after": {"input": "x", "triggers_replace": null},
                "after_unknown": {"id": true, "output": true},
                "before_sensitive": false, "after_sensitive": {}}},
            {"address": "terraform_data.b", "change": {
                "actions": ["delete", "create"],
                "before": {"input": {"a": 1, "b": 2}, "id": "1"},
                "after": {"input": {"a": 1, "b": 3}},
                "after_unknown": {"id": true},
                "before_sensitive": {}, "after_sensitive": {}}},
            {"address": "terraform_data.c", "change": {
                "actions": ["update"],
                "before": {"pw": "old"}, "after": {"pw": "new"},
                "after_unknown": {}, "before_sensitive": {"pw": true}, "after_sensitive": {"pw": true}}},
            {"address": "terraform_data.d", "change": {"actions": ["no-op"], "before": {}, "after": {}}},
            {"address": "terraform_data.gone", "change": {"actions": ["delete"], "before": {}, "after": null}}
        ],
        "planned_values": {"root_module": {
            "resources": [
                {"address": "terraform_data.a", "mode": "managed", "type": "terraform_data", "name": "a"},
                {"address": "data.terraform_remote_state.r", "mode": "data", "type": "terraform_remote_state", "name": "r"},
                {"address": "terraform_data.d", "mode": "managed", "type": "terraform_data", "name": "d"}
            ],
            "child_modules": [{"address": "module.m", "resources": [
                {"address": "module.m.null_resource.n[0]", "mode": "managed", "type": "null_resource", "name": "n", "index": 0}
            ]}]
        }}
    });
    let (set, planned) = parse_plan_and_state(&plan.to_string()).unwrap();
    let left: Vec<_> = planned.iter().map(|r| r.address.as_str()).collect();
    assert_eq!(
        left,
        [
            "terraform_data.a",
            "terraform_data.d",
            "module.m.null_resource.n[0]"
        ],
        "unchanged resources stay, data sources are not state resources"
    );
    assert!(planned.iter().all(|r| !r.tainted));
    assert_eq!(planned[2].resource_type, "null_resource");
    let set = ChangeSet {
        changes: set.changes[..3].to_vec(),
    };
    assert_eq!(set.changes.len(), 3);
    let a = &set.changes[0];
    assert_eq!(a.action, ChangeAction::Create);
    let paths: Vec<_> = a.attributes.iter().map(|c| c.path.as_str()).collect();
    assert_eq!(paths, ["id", "input", "output"]);
    assert!(a.attributes[0].after_unknown);
    assert_eq!(a.attributes[1].after, json!("x"));
    let b = &set.changes[1];
    assert_eq!(b.action, ChangeAction::Replace);
    assert_eq!(b.attributes[0].path, "id");
    assert_eq!(b.attributes[1].path, "input.b");
    assert_eq!(
        (
            b.attributes[1].before.clone(),
            b.attributes[1].after.clone()
        ),
        (json!(2), json!(3))
    );
    let c = &set.changes[2];
    assert_eq!(c.attributes[0].before, json!(SENSITIVE));
    assert_eq!(c.attributes[0].after, json!(SENSITIVE));
    assert!(parse_plan_and_state(
        r#"{"resource_changes":[{"address":"x","change":{"actions":["explode"]}}]}"#
    )
    .is_err());
}

#[test]
fn an_apply_s_outputs_event_gives_the_outputs_masked() {
    // The `outputs` field of Terraform 1.11's event at the end of an apply.
    let event = json!({
        "obj": {"sensitive": false, "type": ["object", {"a": "number"}], "value": {"a": 1}},
        "secret": {"sensitive": true, "type": "string"},
        "url": {"sensitive": false, "type": "string", "value": "http://127.0.0.1:1/"}
    });
    let outputs = parse_outputs_event(&event).unwrap();
    assert_eq!(
        outputs,
        BTreeMap::from([
            ("obj".to_string(), json!({"a": 1})),
            ("secret".to_string(), json!(SENSITIVE)),
            ("url".to_string(), json!("http://127.0.0.1:1/")),
        ])
    );
    assert_eq!(parse_outputs_event(&json!({})), Some(BTreeMap::new()));
    assert_eq!(parse_outputs_event(&json!(["not", "outputs"])), None);
}

#[test]
fn events_and_diagnostics() {
    let l = event_line(
        r#"{"@level":"error","@message":"Error: boom","type":"diagnostic","diagnostic":{"severity":"error","summary":"boom","detail":"why"}}"#,
    );
    assert_eq!(l.level, LogLevel::Error);
    assert_eq!(l.message, "Error: boom");
    assert_eq!(error_diagnostics(&[l]), ["boom: why"]);
    let plain = event_line("not json");
    assert_eq!(plain.message, "not json");
    assert_eq!(plain.fields, Value::Null);
}

#[test]
fn validate_json() {
    let r = parse_validate(r#"{"valid":false,"diagnostics":[{"severity":"error","summary":"S","detail":"D","range":{"filename":"main.tf","start":{"line":2,"column":1,"byte":0},"end":{"line":3,"column":1,"byte":9}}}]}"#).unwrap();
    assert!(!r.valid);
    let d = &r.diagnostics[0];
    assert_eq!(d.severity, DiagnosticSeverity::Error);
    assert_eq!((d.summary.as_str(), d.detail.as_str()), ("S", "D"));
    assert_eq!(
        d.range
            .as_ref()
            .map(|r| (r.filename.as_str(), r.start_line, r.end_line)),
        Some(("main.tf", 2, 3))
    );
}
