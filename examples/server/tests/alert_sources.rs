//! An embedder's own alert source, defined here alone and added through the
//! public wiring API, receives its alerts through `/ops/webhook` over real
//! HTTP; the built-in sources keep theirs.

use async_trait::async_trait;
use infraai_core::testing::alert;
use infraai_core::{Alert, AlertSource, AlertState, Error, InboundRequest, Result};
use infraai_server::config::Config;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

const OPERATOR: &str = "toy-operator-token";
const WEBHOOK: &str = "toy-webhook-token";

/// A monitor that posts `<resource> <value>` as plain text, signed by a
/// header of its own.
struct ToyMonitor;

#[async_trait]
impl AlertSource for ToyMonitor {
    fn name(&self) -> &str {
        "toy"
    }

    fn accepts(&self, request: &InboundRequest) -> bool {
        request.header("x-toy-monitor").is_some()
    }

    async fn receive(&self, request: &InboundRequest) -> Result<Vec<Alert>> {
        if request.header("x-toy-monitor") != Some("toy-secret") {
            return Err(Error::Unauthenticated {
                detail: "not the toy monitor".into(),
            });
        }
        let text = String::from_utf8_lossy(&request.body);
        let (resource, value) = text
            .split_once(' ')
            .ok_or_else(|| Error::invalid("toy alert", "expected `<resource> <value>`"))?;
        let value: f64 = value
            .trim()
            .parse()
            .map_err(|_| Error::invalid("toy alert", "value is not a number"))?;
        let mut a = alert(&format!("toy:{resource}"), AlertState::Firing, value);
        a.source = "toy".into();
        a.resource = resource.into();
        Ok(vec![a])
    }
}

/// Starts the server in this process, on the simulated cloud, with the toy
/// source first in the list; returns its base URL.
async fn start() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let data = std::env::temp_dir().join(format!("infraai-toy-source-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let config = Config::load_from([
        "infraai-server",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--data-dir",
        data.to_str().expect("UTF-8 path"),
        "--cloud",
        "simulated",
        "--operator-token",
        OPERATOR,
        "--webhook-token",
        WEBHOOK,
    ])
    .expect("configuration");
    tokio::spawn(infraai_server::run_wired(config, |w| {
        w.alert_sources.insert(0, Arc::new(ToyMonitor));
    }));
    let base = format!("http://127.0.0.1:{port}");
    for _ in 0..300 {
        if reqwest::get(format!("{base}/healthz")).await.is_ok() {
            return base;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the server did not start");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_toy_alert_source_added_through_the_wiring_receives_its_alerts() {
    let base = start().await;
    let http = reqwest::Client::new();
    let post = |secret: &'static str, body: &'static str| {
        http.post(format!("{base}/ops/webhook"))
            .header("x-toy-monitor", secret)
            .body(body)
            .send()
    };
    let refused = post("forged", "api 0.97").await.unwrap();
    assert_eq!(refused.status().as_u16(), 401);
    let r = post("toy-secret", "api 0.97").await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["results"][0]["outcome"], "opened", "{v}");
    assert_eq!(v["results"][0]["fingerprint"], "toy:api", "{v}");
    let id = v["results"][0]["incident_id"].as_str().unwrap().to_string();
    let incident: Value = http
        .get(format!("{base}/ops/alerts/{id}"))
        .bearer_auth(OPERATOR)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(incident["incident"]["alert"]["source"], "toy", "{incident}");
    assert_eq!(incident["incident"]["alert"]["resource"], "api");

    // The built-in sources still take theirs: the core alert JSON, last.
    let mut core = serde_json::to_value(alert("core:api", AlertState::Firing, 0.9)).unwrap();
    core["resource"] = json!("api");
    let r = http
        .post(format!("{base}/ops/webhook?token={WEBHOOK}"))
        .json(&core)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["results"][0]["fingerprint"], "core:api", "{v}");
}
