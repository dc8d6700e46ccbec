//! The OpenAPI 3.1 document, built by hand from [`ROUTES`].
//!
//! What is checked: a unit test below compares [`ROUTES`] with the
//! `.route("…", get|post(…))` declarations in `app.rs` (same methods and
//! paths, both ways); the API tests (`tests/api.rs`) take their route lists
//! from [`ROUTES`], request every listed route (none is unknown to the
//! router) and send every `operator` route without and with a wrong token
//! (401). What is not: the request-body schemas, parameters and response
//! codes below are written by hand and not validated against the handlers
//! (only the `Alert` schema is generated, by schemars).

use serde_json::{json, Map, Value};

/// Every route: method, path, auth scheme (`operator`, `webhook`, `telegram`,
/// `discord` or none), summary.
pub const ROUTES: &[(&str, &str, Option<&str>, &str)] = &[
    ("post", "/generate-graph", Some("operator"), "Plan a goal: returns the run id, the plan and its resource/monitoring graph."),
    ("post", "/generate_terraform", Some("operator"), "The Terraform files of a planned run."),
    ("post", "/execute", Some("operator"), "Start the deploy loop of a run in the background (202). `dry_run: true` stops after `terraform plan`."),
    ("get", "/runs/{id}/status", Some("operator"), "Phase, history, fix attempts, diagnostics, change set and verification of a run; with the classified plan/apply failures (`apply_diagnoses`: class, reasoning, advice, what was done), the resources in its state after the last apply (`resources`) and the destroy record (`cleanup`)."),
    ("post", "/runs/{id}/destroy", Some("operator"), "\"Destroy what this run created\", for a failed run that stored no deployment. `dry_run: true` (the default, also for an empty body) previews: the resources in the run's Terraform state and the `terraform plan -destroy` change set; nothing changes. `dry_run: false` with that preview's `change_set` destroys exactly it and returns the cleanup record (what was destroyed, what is left). 409 when the run did not fail, stored a deployment, is executing, has nothing to destroy, or the destroy plan changed since the preview; 422 without a `change_set`."),
    ("get", "/runs/{id}/events", Some("operator"), "Server-Sent Events: the run's backlog, then live `phase` and `log` events; closes after a terminal phase."),
    ("post", "/ops/webhook", Some("webhook"), "Receive alerts: a GCP Cloud Monitoring webhook notification (schema 1.2, an object with `incident`; console test notifications are acknowledged and ignored), an Alertmanager webhook (version 4, an object with `alerts` and `receiver`), or the core `Alert` JSON (one object or an array) from any other source, in a body of up to 4 MiB. Token in header `X-Infraai-Webhook-Token` / `X-Infraai-Token`, `Authorization: Bearer` (Alertmanager's `http_config.authorization`) or query `token` (what a Cloud Monitoring channel URL can carry). Answered 200 only after every alert is durably recorded; new incidents are processed in the background."),
    ("post", "/ops/webhook/alertmanager", Some("webhook"), "Alertmanager's webhook receiver (payload version 4) only, with the same token as `/ops/webhook` (configure `http_config.authorization.credentials`). Firing alerts are deduplicated by Alertmanager fingerprint into one incident: repeat notifications and an HA peer's copies of an open incident, and late copies of an episode already resolved (same `startsAt`), decide nothing new. Bodies of up to 4 MiB: a whole group's alerts, recorded together. Answered 200 only after every alert is durably recorded."),
    ("get", "/ops/prometheus/rules", Some("operator"), "The deployments' monitoring policies as a Prometheus rules file (JSON, which Prometheus reads as YAML), with PromQL for the cloud's metrics. Query: `deployment_id` (one deployment)."),
    ("post", "/ops/telegram", Some("telegram"), "Telegram Bot API webhook (header `X-Telegram-Bot-Api-Secret-Token`). 404 when Telegram is not configured."),
    ("post", "/ops/discord", Some("discord"), "Discord interactions endpoint (Ed25519 signature headers). 404 when Discord is not configured."),
    ("get", "/ops/alerts", Some("operator"), "Incidents, newest first. Query: `status` (comma separated), `severity`, `resource`, `limit` (1–1000, default 100)."),
    ("get", "/ops/alerts/{id}", Some("operator"), "An incident with its decision, reasoning, confidence, approvals, actions and audit trail: the newest `audit_limit` records (query, 1–10000, default 200), oldest first; `audit_truncated` is true when older ones were left out."),
    ("get", "/ops/alerts/{id}/preview", Some("operator"), "Dry-run preview of the incident's proposed action (ActionHandler::preview)."),
    ("get", "/ops/alerts/{id}/series", Some("operator"), "The incident's metric for the dashboard chart: the alert's value when it fired, then one `MetricSource` sample per call (kept in memory while someone watches; lost on restart), with the threshold. A failed sample is reported in `sample_error`."),
    ("get", "/runs/{id}", Some("operator"), "The whole run record: plan, current files, fix attempts (each with its diagnostics and the fixed files), latest diagnostics, change set, phase history."),
    ("post", "/ops/alerts/{id}/approve", Some("operator"), "Approve the pending action as `web:<operator>`; it runs in the background. 409 when nothing was approved (not pending, or autonomy stopped)."),
    ("post", "/ops/alerts/{id}/reject", Some("operator"), "Reject the pending action. Optional body `{reason}`."),
    ("get", "/ops/autonomy", Some("operator"), "The kill-switch state."),
    ("post", "/ops/autonomy/stop", Some("operator"), "STOP AUTONOMY: nothing executes until resumed; pending/approved incidents become blocked. Optional body `{reason}`."),
    ("post", "/ops/autonomy/resume", Some("operator"), "Resume autonomy; blocked incidents return to pending and need a fresh approval."),
    ("get", "/healthz", None, "Liveness."),
    ("get", "/readyz", None, "Readiness: 200 when the store answers, 503 otherwise."),
    ("get", "/metrics", None, "Prometheus text exposition."),
    ("get", "/openapi.json", None, "This document."),
    ("get", "/", None, "The dashboard (HTML)."),
    ("get", "/assets/app.js", None, "Dashboard script."),
    ("get", "/assets/style.css", None, "Dashboard styles."),
    ("get", "/assets/views.js", None, "Dashboard views script (architecture canvas, Terraform view, run timeline, incident view)."),
    ("get", "/assets/vendor/codemirror.js", None, "Vendored CodeMirror 6 bundle of the dashboard's Terraform view (build output of examples/server/editor-build)."),
];

fn body_schema(method: &str, path: &str) -> Option<Value> {
    let obj = |props: Value, required: &[&str]| json!({"type": "object", "properties": props, "required": required, "additionalProperties": false});
    let reason = json!({"reason": {"type": "string", "maxLength": 1000}});
    Some(match (method, path) {
        ("post", "/generate-graph") => obj(
            json!({"goal": {"type": "string", "minLength": 1, "maxLength": 4000}}),
            &["goal"],
        ),
        ("post", "/generate_terraform") => obj(
            json!({"run_id": {"type": "string", "format": "uuid"}}),
            &["run_id"],
        ),
        ("post", "/execute") => obj(
            json!({"run_id": {"type": "string", "format": "uuid"}, "dry_run": {"type": "boolean"}}),
            &["run_id", "dry_run"],
        ),
        ("post", "/ops/webhook") => {
            json!({"oneOf": [{"$ref": "#/components/schemas/Alert"}, {"type": "array", "items": {"$ref": "#/components/schemas/Alert"}, "maxItems": 100}]})
        }
        ("post", "/ops/webhook/alertmanager") => {
            json!({"type": "object", "description": "An Alertmanager webhook notification (version 4).", "required": ["version", "alerts"]})
        }
        ("post", "/ops/telegram") => json!({"type": "object", "description": "A Telegram Update."}),
        ("post", "/ops/discord") => {
            json!({"type": "object", "description": "A Discord Interaction."})
        }
        ("post", "/ops/alerts/{id}/reject") | ("post", "/ops/autonomy/stop") => obj(reason, &[]),
        ("post", "/runs/{id}/destroy") => obj(
            json!({
                "dry_run": {"type": "boolean", "default": true},
                "change_set": {"type": "object", "description": "The `change_set` of the preview being approved (required when `dry_run` is false)."}
            }),
            &[],
        ),
        _ => return None,
    })
}

/// The document.
pub fn document() -> Value {
    let problem = json!({"description": "Problem details", "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}});
    let mut paths = Map::new();
    for (method, path, auth, summary) in ROUTES {
        let mut op = json!({
            "summary": summary,
            "responses": {
                "200": {"description": "OK"},
                "400": problem, "404": problem, "413": problem, "422": problem, "500": problem, "503": problem,
            },
        });
        if path.contains("{id}") {
            op["parameters"] = json!([{"name": "id", "in": "path", "required": true, "schema": {"type": "string", "format": "uuid"}}]);
        }
        if *path == "/ops/alerts" {
            op["parameters"] = json!([
                {"name": "status", "in": "query", "schema": {"type": "string"}},
                {"name": "severity", "in": "query", "schema": {"type": "string"}},
                {"name": "resource", "in": "query", "schema": {"type": "string"}},
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
            ]);
        }
        if let Some(schema) = body_schema(method, path) {
            op["requestBody"] = json!({"required": !matches!(*path, "/ops/alerts/{id}/reject" | "/ops/autonomy/stop" | "/runs/{id}/destroy"), "content": {"application/json": {"schema": schema}}});
        }
        if let Some(auth) = auth {
            op["security"] = json!([{ *auth: [] }]);
            op["responses"]["401"] = problem.clone();
        }
        match *path {
            "/execute" => {
                op["responses"]["202"] =
                    json!({"description": "Accepted; the run executes in the background"})
            }
            "/generate-graph" => op["responses"]["201"] = json!({"description": "Planned"}),
            "/runs/{id}/events" => {
                op["responses"]["200"] = json!({"description": "text/event-stream", "content": {"text/event-stream": {}}})
            }
            "/metrics" => {
                op["responses"]["200"] =
                    json!({"description": "Prometheus text", "content": {"text/plain": {}}})
            }
            _ => {}
        }
        if method == &"post" && auth == &Some("operator") {
            op["responses"]["409"] = problem.clone();
        }
        paths
            .entry(path.to_string())
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .map(|m| m.insert(method.to_string(), op));
    }
    let mut doc = json!({
        "openapi": "3.1.0",
        "info": {
            "title": "infraai server",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Plan, deploy and operate infrastructure with a human in the loop. Errors are problem details ({type,title,status,detail}). Request bodies are limited to 256 KiB (413), alert webhooks to 4 MiB.",
        },
        "paths": paths,
        "components": {
            "securitySchemes": {
                "operator": {"type": "http", "scheme": "bearer", "description": "Operator token (configured, or generated at first start into <data_dir>/operator-token)."},
                "webhook": {"type": "apiKey", "in": "header", "name": "X-Infraai-Webhook-Token", "description": "Also accepted as query parameter `token`."},
                "telegram": {"type": "apiKey", "in": "header", "name": "X-Telegram-Bot-Api-Secret-Token"},
                "discord": {"type": "apiKey", "in": "header", "name": "X-Signature-Ed25519", "description": "Ed25519 signature over X-Signature-Timestamp + body."},
            },
            "schemas": {
                "Problem": {"type": "object", "properties": {"type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"}, "detail": {"type": "string"}}, "required": ["type", "title", "status", "detail"]},
            },
        },
    });
    // The core's Alert schema, with its definitions lifted into components.
    let alert = serde_json::to_string(&schemars::schema_for!(infraai_core::Alert))
        .unwrap_or_default()
        .replace("#/$defs/", "#/components/schemas/");
    if let Ok(Value::Object(mut alert)) = serde_json::from_str::<Value>(&alert) {
        let schemas = &mut doc["components"]["schemas"];
        if let Some(Value::Object(defs)) = alert.remove("$defs") {
            for (k, v) in defs {
                schemas[k] = v;
            }
        }
        alert.remove("$schema");
        schemas["Alert"] = Value::Object(alert);
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// `(method, path)` of every `.route("path", method(…))` in `src`.
    fn declared(src: &str) -> BTreeSet<(String, String)> {
        let mut out = BTreeSet::new();
        for chunk in src.split(".route(").skip(1) {
            let Some((path, rest)) = chunk
                .trim_start()
                .strip_prefix('"')
                .and_then(|c| c.split_once('"'))
            else {
                continue;
            };
            let rest = rest.trim_start_matches(',').trim_start();
            let method: String = rest
                .chars()
                .take_while(|c| c.is_ascii_lowercase())
                .collect();
            assert!(
                rest[method.len()..].starts_with('('),
                "unparsed route declaration for {path}: {:?}",
                &rest[..rest.len().min(40)]
            );
            // A chained method (`get(a).post(b)`) would hide a route from this check.
            let call_end = rest.find(")\n").unwrap_or(rest.len());
            assert!(
                !rest[..call_end].contains(").post(") && !rest[..call_end].contains(").get("),
                "chained methods on {path}: list them separately"
            );
            out.insert((method, path.to_string()));
        }
        out
    }

    #[test]
    fn lists_exactly_the_routes_the_router_declares() {
        let served = declared(include_str!("app.rs"));
        assert!(served.len() > 20, "the parser found only {served:?}");
        let listed: BTreeSet<(String, String)> = ROUTES
            .iter()
            .map(|(m, p, _, _)| (m.to_string(), p.to_string()))
            .collect();
        assert_eq!(listed.len(), ROUTES.len(), "a route is listed twice");
        let missing: Vec<_> = served.difference(&listed).collect();
        let extra: Vec<_> = listed.difference(&served).collect();
        assert!(
            missing.is_empty(),
            "served but not in the document: {missing:?}"
        );
        assert!(
            extra.is_empty(),
            "in the document but not served: {extra:?}"
        );
    }

    #[test]
    fn the_parser_sees_a_route_the_document_lacks() {
        let src = "Router::new()\n    .route(\"/x\", get(x))\n    .route(\"/y/{id}\", post(y))\n";
        let found = declared(src);
        assert!(found.contains(&("get".to_string(), "/x".to_string())));
        assert!(found.contains(&("post".to_string(), "/y/{id}".to_string())));
    }
}
