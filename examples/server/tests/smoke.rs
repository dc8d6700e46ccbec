//! End to end against the real binary with the local cloud (real Terraform,
//! real processes): plan → files → dry run → deploy → alert → approval →
//! execution.

mod common;

use common::*;
use reqwest::Method;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_dry_run_deploy_alert_approve_execute() {
    if !terraform_available("smoke") {
        return;
    }
    let s = Server::start("smoke", &["--cloud", "local"], &[]).await;
    assert!(
        s.startup.iter().any(|l| l.starts_with("cloud: local")),
        "{:?}",
        s.startup
    );
    s.ok(Method::GET, "/healthz", None, 200).await;
    s.ok(Method::GET, "/readyz", None, 200).await;

    // Plan and graph.
    let planned = s
        .ok(
            Method::POST,
            "/generate-graph",
            Some(json!({"goal": "a web app for 500 users"})),
            201,
        )
        .await;
    let run_id = planned["run_id"].as_str().unwrap().to_string();
    assert_eq!(planned["plan"]["cloud"], "local");
    assert!(!planned["summary"].as_str().unwrap().is_empty());
    let nodes = planned["graph"]["nodes"].as_array().unwrap();
    assert!(nodes.iter().any(|n| n["id"] == "resource:web"), "{nodes:?}");
    assert!(nodes.iter().any(|n| n["type"] == "monitoring_policy"));
    let edges = planned["graph"]["edges"].as_array().unwrap();
    assert!(edges
        .iter()
        .any(|e| e["type"] == "monitors" && e["to"] == "resource:web"));

    // Terraform files.
    let files = s
        .ok(
            Method::POST,
            "/generate_terraform",
            Some(json!({"run_id": run_id})),
            200,
        )
        .await;
    let main_tf = files["files"]["main.tf"].as_str().unwrap();
    assert!(main_tf.contains("terraform_data"), "{main_tf}");

    // Dry run: validation and plan run, nothing is applied.
    let accepted = s
        .ok(
            Method::POST,
            "/execute",
            Some(json!({"run_id": run_id, "dry_run": true})),
            202,
        )
        .await;
    assert_eq!(accepted["run_id"], run_id);
    let events = s.events(&run_id).await;
    let phases: Vec<&str> = events
        .iter()
        .filter(|(n, _)| n == "phase")
        .filter_map(|(_, v)| v["phase"].as_str())
        .collect();
    for p in ["validating", "planning", "completed"] {
        assert!(phases.contains(&p), "{phases:?}");
    }
    assert!(!phases.contains(&"applying"), "{phases:?}");
    assert!(events.iter().any(|(n, _)| n == "log"));
    let status = s
        .ok(Method::GET, &format!("/runs/{run_id}/status"), None, 200)
        .await;
    assert_eq!(status["phase"], "completed");
    assert_eq!(status["dry_run"], true);
    assert!(status["change_set"]["changes"]
        .as_array()
        .is_some_and(|c| !c.is_empty()));
    assert!(status["deployment_id"].is_null());
    assert!(status["verification"].is_null());
    assert!(
        !s.data.join("local/instances/web/pid").exists(),
        "a dry run started an instance"
    );

    // Deploy for real.
    let events = s.apply(&run_id).await;
    let last = events.last().unwrap();
    assert_eq!(last.1["phase"], "verified", "{events:?}");
    let status = s
        .ok(Method::GET, &format!("/runs/{run_id}/status"), None, 200)
        .await;
    assert_eq!(status["verification"]["ok"], true, "{status:#}");
    assert!(status["deployment_id"].is_string());

    // A Cloud Monitoring notification (the recorded incident-open shape) for
    // the deployed instance: the policy's `infraai-resource` /
    // `infraai-resource-type` user labels (which `GcpCloud` writes on every
    // policy) and the metric's `instance_name` name it. The webhook
    // acknowledges after recording; a decision follows.
    let mut notification = gcp_incident_open();
    let started = now_secs();
    let i = &mut notification["incident"];
    i["incident_id"] = json!(format!("0.smoke{started}"));
    i["started_at"] = json!(started);
    i["resource_display_name"] = json!("web");
    i["resource_name"] = json!("local web");
    i["metric"]["type"] = json!("local/instance/cpu/utilization");
    i["metric"]["labels"] = json!({"instance_name": "web"});
    i["policy_user_labels"]["infraai-resource"] = json!("web");
    i["policy_user_labels"]["infraai-resource-type"] = json!("local_instance");
    i["threshold_value"] = json!("0.8");
    let r = s
        .http
        .post(s.url("/ops/webhook"))
        .header("x-infraai-webhook-token", WEBHOOK)
        .json(&notification)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let ack: Value = r.json().await.unwrap();
    assert_eq!(ack["results"][0]["outcome"], "opened", "{ack}");
    assert_eq!(
        ack["results"][0]["fingerprint"],
        format!("gcp:0.smoke{started}")
    );
    let id = ack["results"][0]["incident_id"]
        .as_str()
        .unwrap()
        .to_string();
    let recorded = s
        .ok(Method::GET, &format!("/ops/alerts/{id}"), None, 200)
        .await;
    let alert = &recorded["incident"]["alert"];
    assert_eq!(alert["source"], "gcp", "{alert:#}");
    assert_eq!(alert["resource"], "web", "{alert:#}");
    assert_eq!(alert["resource_type"], "local_instance", "{alert:#}");
    assert_eq!(alert["value"], 0.973, "{alert:#}");
    assert_eq!(alert["severity"], "critical", "{alert:#}");
    let pending = s
        .wait_incident(&id, |v| v["incident"]["status"] == "pending")
        .await;
    assert!(pending["confidence"].as_f64().unwrap() > 0.0);
    assert!(!pending["reasoning"].as_str().unwrap().is_empty());
    assert_eq!(
        pending["decision"]["recommended_action"]["type"], "scale_up",
        "{pending:#}"
    );
    let preview = s
        .ok(Method::GET, &format!("/ops/alerts/{id}/preview"), None, 200)
        .await;
    assert!(!preview["preview"]["summary"].as_str().unwrap().is_empty());

    // Approve: executed by the local cloud, re-checked.
    let approved = s
        .ok(
            Method::POST,
            &format!("/ops/alerts/{id}/approve"),
            None,
            200,
        )
        .await;
    assert_eq!(approved["effective"], true);
    let done = s
        .wait_incident(&id, |v| {
            matches!(
                v["incident"]["status"].as_str(),
                Some("executed" | "resolved" | "unresolved")
            )
        })
        .await;
    let actions = done["actions"].as_array().unwrap();
    assert_eq!(actions.len(), 1, "{done:#}");
    assert_eq!(actions[0]["success"], true, "{done:#}");
    assert!(
        done["approvals"][0]["actor"]["id"] == "operator",
        "{:#}",
        done["approvals"]
    );
    assert!(done["audit"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["actor"] == "web:operator"));
    let machine = std::fs::read_to_string(s.data.join("local/instances/web/machine_type"))
        .unwrap_or_default();
    assert_eq!(
        machine.trim(),
        "local-medium",
        "the scale-up did not happen"
    );
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// The recorded Cloud Monitoring notification (schema 1.2, incident open).
fn gcp_incident_open() -> Value {
    let p = format!(
        "{}/../../tests/fixtures/gcp-monitoring/incident-open.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}")))
        .unwrap()
}
