//! The product plan's request/response contract, over real HTTP against the
//! server binary: `generate-graph` with `prompt`, run status with
//! `status`/`phase: verified`/`verification`, the webhook's
//! `received`/`decision_id`, a 404-serving service verified as reachable and
//! an unreachable one ending `deploy_success_verify_failed`.

mod common;

use common::*;
use reqwest::Method;
use serde_json::{json, Value};

/// Plans with the plan's `prompt`, executes without `dry_run`, and returns
/// the run's final status.
async fn prompt_to_status(s: &Server) -> Value {
    let planned = s
        .ok(
            Method::POST,
            "/generate-graph",
            Some(json!({"prompt": "a backend API for 10k users under $100/month"})),
            201,
        )
        .await;
    let policy = &planned["plan"]["monitoring"][0];
    assert_eq!(policy["duration"], format!("{}s", policy["duration_secs"]));
    assert_eq!(
        policy["resource_node"],
        format!("resource:{}", policy["resource_ref"].as_str().unwrap())
    );
    let nodes = planned["graph"]["nodes"].as_array().unwrap();
    assert!(
        nodes.iter().any(|n| n["id"] == policy["resource_node"]),
        "the policy's node is in the graph"
    );
    assert_eq!(planned["simulated"], true);
    let run_id = planned["run_id"].as_str().unwrap();
    s.ok(
        Method::POST,
        "/execute",
        Some(json!({"run_id": run_id})),
        202,
    )
    .await;
    s.events(run_id).await;
    s.ok(Method::GET, &format!("/runs/{run_id}/status"), None, 200)
        .await
}

/// A local HTTP service answering 404 to everything; its URL.
async fn not_found_service() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new()
        .fallback(|| async { (axum::http::StatusCode::NOT_FOUND, "nothing here yet") });
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plans_front_end_works_unchanged() {
    let s = Server::start("contract", &["--cloud", "simulated"], &[]).await;
    let status = prompt_to_status(&s).await;
    assert_eq!(
        (&status["status"], &status["phase"]),
        (&json!("completed"), &json!("verified")),
        "{status}"
    );
    let v = &status["verification"];
    assert_eq!(
        (&v["reachable"], &v["status_code"]),
        (&json!(true), &json!(200)),
        "{v}"
    );
    assert!(v["ip"].is_string(), "{v}");

    let ack = s.post_alert(&cpu_alert("contract-cpu")).await;
    assert_eq!(ack["received"], true);
    let id = ack["decision_id"].as_str().expect("decision_id");
    assert_eq!(ack["results"][0]["incident_id"], id);
    let url = ack["results"][0]["decision_url"].as_str().unwrap();
    assert_eq!(url, format!("/ops/alerts/{id}"));
    // The decision is made in the background: poll its URL.
    let mut decided = Value::Null;
    for _ in 0..100 {
        decided = s.ok(Method::GET, url, None, 200).await;
        if !decided["decision"].is_null() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        decided["decision"]["recommended_action"].is_object(),
        "{decided}"
    );
    let words = &decided["plan_vocabulary"];
    assert!(
        ["low", "medium", "high"].contains(&words["severity"].as_str().unwrap()),
        "{words}"
    );
}

/// A simulated-cloud server whose deployments serve `url`, with `args`.
async fn serving(name: &str, url: &str, args: &[&str]) -> Server {
    let args = [&["--cloud", "simulated"], args].concat();
    Server::start(name, &args, &[("INFRAAI_TEST_SERVICE_URL", url)]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_answering_404_is_verified_as_reachable() {
    let s = serving("contract-404", &not_found_service().await, &[]).await;
    assert!(s
        .startup
        .iter()
        .any(|l| l.contains("INFRAAI_TEST_SERVICE_URL")));
    let status = prompt_to_status(&s).await;
    assert_eq!(
        (&status["status"], &status["phase"]),
        (&json!("completed"), &json!("verified")),
        "{status}"
    );
    let v = &status["verification"];
    assert_eq!(
        (&v["reachable"], &v["status_code"], &v["ip"]),
        (&json!(true), &json!(404), &json!("127.0.0.1")),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_service_ends_deploy_success_verify_failed() {
    // A port nothing listens on (bound, then released).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let s = serving("contract-down", &format!("http://127.0.0.1:{port}/"), &[]).await;
    let status = prompt_to_status(&s).await;
    assert_eq!(status["status"], "deploy_success_verify_failed", "{status}");
    assert_eq!(status["phase"], "deploy_success_verify_failed");
    assert_eq!(status["verification"]["reachable"], false);
    assert!(
        status["deployment_id"].is_string(),
        "the deployment is stored"
    );
    assert!(
        status["error"]
            .as_str()
            .unwrap()
            .contains("verification failed"),
        "{status}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_xx_only_when_asked() {
    let url = not_found_service().await;
    let s = serving("contract-2xx", &url, &["--verify-reachable", "2xx"]).await;
    let status = prompt_to_status(&s).await;
    assert_eq!(status["status"], "deploy_success_verify_failed", "{status}");
    assert_eq!(status["verification"]["status_code"], 404);
}
