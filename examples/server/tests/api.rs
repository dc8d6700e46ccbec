//! Every endpoint over real HTTP against the real binary (simulated cloud, so
//! no Terraform is needed): success, bad input, unknown ids, oversize bodies,
//! missing authentication, the OpenAPI document, the chat webhooks, STOP
//! AUTONOMY and graceful shutdown.

mod common;

use common::*;
use ed25519_dalek::{Signer, SigningKey};
use reqwest::Method;
use serde_json::{json, Value};

const ZERO: &str = "00000000-0000-7000-8000-000000000000";

fn fixture(path: &str) -> Value {
    let p = format!("{}/../../tests/fixtures/{path}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}")))
        .unwrap()
}

fn alert(fingerprint: &str, severity: &str) -> Value {
    let cpu = "compute.googleapis.com/instance/cpu/utilization";
    api_alert(fingerprint, "High CPU", cpu, severity)
}

async fn simulated(name: &str) -> Server {
    Server::start(name, &["--cloud", "simulated"], &[]).await
}

/// A valid body for a route (no body where none is needed).
fn valid_body(method: &str, path: &str) -> Option<Value> {
    match (method, path) {
        ("post", "/generate-graph") => Some(json!({"goal": "an api"})),
        ("post", "/generate_terraform") => Some(json!({"run_id": ZERO})),
        ("post", "/execute") => Some(json!({"run_id": ZERO, "dry_run": true})),
        ("post", "/runs/{id}/destroy") => Some(json!({"dry_run": true})),
        ("put", "/ops/deployments/{id}/guardrails") => Some(json!({})),
        _ => None,
    }
}

fn method(m: &str) -> Method {
    Method::from_bytes(m.to_uppercase().as_bytes()).unwrap()
}

/// Every route of the served OpenAPI document (built from the router's own
/// declarations): method, path template, whether the operator token guards it.
async fn documented(s: &Server) -> Vec<(String, String, bool)> {
    let doc = s.ok(Method::GET, "/openapi.json", None, 200).await;
    let mut routes = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (m, op) in item.as_object().unwrap() {
            let operator = op["security"][0]["operator"].is_array();
            routes.push((m.clone(), path.clone(), operator));
        }
    }
    routes
}

/// Operator routes: method, path template, a valid body.
async fn operator_routes(s: &Server) -> Vec<(Method, String, Option<Value>)> {
    let routes: Vec<_> = documented(s)
        .await
        .into_iter()
        .filter(|(_, _, operator)| *operator)
        .map(|(m, p, _)| (method(&m), p.clone(), valid_body(&m, &p)))
        .collect();
    assert!(routes.len() >= 17, "{routes:?}");
    routes
}

/// Routes without the operator token: method and path.
async fn other_routes(s: &Server) -> Vec<(String, String)> {
    let routes: Vec<_> = documented(s)
        .await
        .into_iter()
        .filter(|(_, _, operator)| !*operator)
        .map(|(m, p, _)| (m, p))
        .collect();
    assert!(routes.len() >= 13, "{routes:?}");
    routes
}

fn is_problem(v: &Value, status: u16) -> bool {
    v["status"] == status
        && v["title"].is_string()
        && v["type"].is_string()
        && v["detail"].as_str().is_some_and(|d| !d.is_empty())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_protected_endpoint_refuses_missing_or_wrong_auth() {
    let s = simulated("auth").await;
    for (method, path, body) in operator_routes(&s).await {
        let path = path.replace("{id}", ZERO);
        for token in [None, Some("wrong")] {
            let mut r = s.http.request(method.clone(), s.url(&path));
            if let Some(t) = token {
                r = r.bearer_auth(t);
            }
            if let Some(b) = &body {
                r = r.json(b);
            }
            let r = r.send().await.unwrap();
            assert_eq!(r.status().as_u16(), 401, "{method} {path} with {token:?}");
            assert_eq!(r.headers()["www-authenticate"], "Bearer");
            let v: Value = r.json().await.unwrap();
            assert!(is_problem(&v, 401), "{v}");
        }
    }
    // Alert webhook: token header or query parameter.
    for url in [s.url("/ops/webhook"), s.url("/ops/webhook?token=wrong")] {
        let r = s
            .http
            .post(url)
            .json(&alert("a", "warning"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 401);
    }
    let r = s
        .http
        .post(s.url(&format!("/ops/webhook?token={WEBHOOK}")))
        .json(&alert("a", "warning"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    // Public routes need nothing (sign-in's own routes answer 404 while
    // single sign-on is off; tests/sso.rs drives them).
    for (m, p) in other_routes(&s).await {
        if m != "get" || p == "/auth/login" || p == "/auth/callback" {
            continue;
        }
        let r = s.http.get(s.url(&p)).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200, "{p}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_clear_4xx() {
    let s = simulated("bad-input").await;
    let send_raw = |method: Method, path: String, body: Vec<u8>| {
        let r = s
            .http
            .request(method, s.url(&path))
            .bearer_auth(OPERATOR)
            .header("content-type", "application/json")
            .body(body);
        async move {
            let r = r.send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let big = vec![b' '; 300 * 1024];
    // Malformed JSON, wrong shape and oversize bodies on every endpoint with a body.
    for (method, path, _) in operator_routes(&s)
        .await
        .into_iter()
        .filter(|(m, p, _)| *m == Method::POST && p != "/auth/logout")
    {
        let path = path.replace("{id}", ZERO);
        let (st, v) = send_raw(method.clone(), path.clone(), b"{not json".to_vec()).await;
        assert_eq!(st, 400, "{path}: {v}");
        assert!(
            v["detail"].as_str().unwrap().contains("malformed JSON"),
            "{v}"
        );
        let (st, v) = send_raw(method.clone(), path.clone(), big.clone()).await;
        assert_eq!(st, 413, "{path}: {v}");
        assert!(is_problem(&v, 413), "{v}");
        assert!(v["detail"].as_str().unwrap().contains("256 KiB"));
        let (st, v) = send_raw(
            method.clone(),
            path.clone(),
            br#"{"unexpected": 1}"#.to_vec(),
        )
        .await;
        assert_eq!(st, 422, "{path}: {v}");
    }
    // Alert webhooks take up to 4 MiB (a whole Alertmanager group).
    let huge = vec![b' '; 4 * 1024 * 1024 + 1];
    for path in ["/ops/webhook", "/ops/webhook?token=x"] {
        let r = s
            .http
            .post(s.url(path))
            .header("x-infraai-webhook-token", WEBHOOK)
            .body(huge.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 413, "{path}");
    }
    let hook = |body: Vec<u8>| {
        let r = s
            .http
            .post(s.url("/ops/webhook"))
            .header("x-infraai-webhook-token", WEBHOOK)
            .body(body);
        async move { r.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(hook(b"{".to_vec()).await, 400);
    assert_eq!(hook(b"{}".to_vec()).await, 422);
    let mut no_fp = alert("", "warning");
    no_fp["fingerprint"] = json!("");
    assert_eq!(hook(serde_json::to_vec(&no_fp).unwrap()).await, 422);
    assert_eq!(hook(b"[]".to_vec()).await, 422);

    // Empty goal, unknown ids, ids that are not UUIDs.
    let (st, _) = send_raw(
        Method::POST,
        "/generate-graph".into(),
        br#"{"goal": "  "}"#.to_vec(),
    )
    .await;
    assert_eq!(st, 422);
    let (st, _) = send_raw(Method::POST, "/generate-graph".into(), b"".to_vec()).await;
    assert_eq!(st, 400);
    let (st, _) = send_raw(
        Method::POST,
        "/execute".into(),
        format!(r#"{{"run_id": "{ZERO}"}}"#).into_bytes(),
    )
    .await;
    assert_eq!(st, 404, "dry_run defaults to false: the run is looked up");
    for (method, path, body) in operator_routes(&s).await {
        if !path.contains("{id}") && !matches!(path.as_str(), "/generate_terraform" | "/execute") {
            continue;
        }
        let p = path.replace("{id}", ZERO);
        let r = s.op(method.clone(), &p, body.clone()).await;
        assert_eq!(r.status().as_u16(), 404, "{method} {p}");
        let v: Value = r.json().await.unwrap();
        assert!(
            is_problem(&v, 404) && v["detail"].as_str().unwrap().contains("not found"),
            "{v}"
        );
        if path.contains("{id}") {
            let p = path.replace("{id}", "not-a-uuid");
            let r = s.op(method.clone(), &p, None).await;
            assert_eq!(r.status().as_u16(), 400, "{method} {p}");
        }
    }
    let r = s.op(Method::GET, "/ops/alerts?status=bogus", None).await;
    assert_eq!(r.status().as_u16(), 400);
    let r = s.op(Method::GET, "/ops/alerts?limit=0", None).await;
    assert_eq!(r.status().as_u16(), 400);
    let r = s.op(Method::GET, "/no/such/route", None).await;
    assert_eq!(r.status().as_u16(), 404);
    let r = s.op(Method::DELETE, "/ops/autonomy", None).await;
    assert_eq!(r.status().as_u16(), 405);
    // Chat endpoints that are not configured say so.
    let r = s
        .http
        .post(s.url("/ops/telegram"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let r = s
        .http
        .post(s.url("/ops/discord"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_lists_every_route_and_every_listed_route_is_served() {
    let s = simulated("openapi").await;
    let doc = s.ok(Method::GET, "/openapi.json", None, 200).await;
    assert_eq!(doc["openapi"], "3.1.0");
    let mut listed = 0;
    for (method, path, _) in operator_routes(&s).await {
        assert!(
            doc["paths"][&path][method.as_str().to_lowercase()].is_object(),
            "{method} {path} missing from /openapi.json"
        );
        assert!(
            doc["paths"][&path][method.as_str().to_lowercase()]["responses"]["401"].is_object()
        );
        listed += 1;
    }
    for (m, p) in other_routes(&s).await {
        assert!(doc["paths"][&p][&m].is_object(), "{m} {p} missing");
        listed += 1;
    }
    let total: usize = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_object().unwrap().len())
        .sum();
    assert_eq!(
        total, listed,
        "the document lists routes the tests do not know"
    );
    assert!(doc["paths"]["/ops/webhook"]["post"]["summary"]
        .as_str()
        .unwrap()
        .contains("GCP"));
    assert!(doc["components"]["schemas"]["Alert"]["properties"]["fingerprint"].is_object());
    // Every documented route exists (no 404/405 from the router).
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let r = s
                .http
                .request(m, s.url(&path.replace("{id}", ZERO)))
                .send()
                .await
                .unwrap();
            let st = r.status().as_u16();
            let v: Value = r.json().await.unwrap_or(Value::Null);
            assert!(
                st != 405
                    && !(st == 404
                        && v["detail"]
                            .as_str()
                            .is_some_and(|d| d.contains("no such route"))),
                "{method} {path}: {st}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destroy_what_a_run_created_is_only_for_failed_runs_and_needs_the_preview() {
    let s = simulated("destroy").await;
    let planned = s
        .ok(
            Method::POST,
            "/generate-graph",
            Some(json!({"goal": "a backend API for 100 users under $50/month"})),
            201,
        )
        .await;
    let run_id = planned["run_id"].as_str().unwrap();
    let path = format!("/runs/{run_id}/destroy");
    // A planned run is not failed: a preview (the default) is refused.
    let v = s.ok(Method::POST, &path, None, 409).await;
    assert!(
        v["detail"].as_str().unwrap().contains("only a failed run"),
        "{v}"
    );
    // Executing needs the previewed change set.
    let v = s
        .ok(Method::POST, &path, Some(json!({"dry_run": false})), 422)
        .await;
    assert!(v["detail"].as_str().unwrap().contains("change_set"), "{v}");
    s.ok(
        Method::POST,
        &format!("/runs/{ZERO}/destroy"),
        Some(json!({"dry_run": true})),
        404,
    )
    .await;
    // A completed run records what its state holds; it is not destroyed
    // as a failed run.
    s.ok(
        Method::POST,
        "/execute",
        Some(json!({"run_id": run_id, "dry_run": false})),
        202,
    )
    .await;
    let events = s.events(run_id).await;
    assert_eq!(events.last().unwrap().1["phase"], "verified");
    let status = s
        .ok(Method::GET, &format!("/runs/{run_id}/status"), None, 200)
        .await;
    assert_eq!(
        (&status["status"], &status["phase"]),
        (&json!("completed"), &json!("verified"))
    );
    assert_eq!(status["verification"]["reachable"], true, "{status}");
    assert_eq!(status["apply_diagnoses"], json!([]));
    assert_eq!(status["resources"].as_array().unwrap().len(), 1, "{status}");
    let v = s
        .ok(Method::POST, &path, Some(json!({"dry_run": true})), 409)
        .await;
    assert!(v["detail"].as_str().unwrap().contains("is verified"), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_decision_approval_rejection_and_stop_autonomy() {
    let s = simulated("ops").await;
    assert!(s.startup.iter().any(|l| l.starts_with("cloud: SIMULATED")));
    assert!(s.startup.iter().any(|l| l.starts_with("store: SQLite")));
    // Deploy (simulated) so the resource is known.
    let planned = s.deploy().await;
    let run_id = planned["run_id"].as_str().unwrap();
    let r = s
        .op(
            Method::POST,
            "/execute",
            Some(json!({"run_id": run_id, "dry_run": false})),
        )
        .await;
    assert_eq!(
        r.status().as_u16(),
        409,
        "a completed run cannot execute again"
    );

    let post_alert = |a: Value| {
        let r = s
            .http
            .post(s.url("/ops/webhook"))
            .header("x-infraai-webhook-token", WEBHOOK)
            .json(&a);
        async move {
            let r = r.send().await.unwrap();
            assert_eq!(r.status().as_u16(), 200);
            r.json::<Value>().await.unwrap()
        }
    };
    // Approve path.
    let ack = post_alert(alert("cpu-1", "critical")).await;
    let id = ack["results"][0]["incident_id"]
        .as_str()
        .unwrap()
        .to_string();
    let again = post_alert(alert("cpu-1", "critical")).await;
    assert_eq!(again["results"][0]["outcome"], "repeated");
    let pending = s
        .wait_incident(&id, |v| v["incident"]["status"] == "pending")
        .await;
    assert!(pending["confidence"].as_f64().unwrap() >= 0.7);
    let listed = s
        .ok(Method::GET, "/ops/alerts?status=pending", None, 200)
        .await;
    assert_eq!(listed["incidents"].as_array().unwrap().len(), 1);
    let preview = s
        .ok(Method::GET, &format!("/ops/alerts/{id}/preview"), None, 200)
        .await;
    assert!(preview["preview"]["summary"]
        .as_str()
        .unwrap()
        .contains("api"));
    s.approve(&id).await;
    let done = s
        .wait_incident(&id, |v| v["incident"]["status"] == "resolved")
        .await;
    assert_eq!(done["actions"][0]["success"], true);
    // A second approval changes nothing.
    let v = s
        .ok(
            Method::POST,
            &format!("/ops/alerts/{id}/approve"),
            None,
            409,
        )
        .await;
    assert!(
        v["detail"].as_str().unwrap().contains("Nothing to approve"),
        "{v}"
    );

    // Reject path.
    let ack = post_alert(alert("cpu-2", "critical")).await;
    let id2 = ack["results"][0]["incident_id"]
        .as_str()
        .unwrap()
        .to_string();
    s.wait_incident(&id2, |v| v["incident"]["status"] == "pending")
        .await;
    s.ok(
        Method::POST,
        &format!("/ops/alerts/{id2}/reject"),
        Some(json!({"reason": "not now"})),
        200,
    )
    .await;
    let rejected = s
        .ok(Method::GET, &format!("/ops/alerts/{id2}"), None, 200)
        .await;
    assert_eq!(rejected["incident"]["status"], "rejected");
    assert_eq!(rejected["actions"].as_array().unwrap().len(), 0);

    // STOP AUTONOMY: an approval executes nothing.
    let ack = post_alert(alert("cpu-3", "critical")).await;
    let id3 = ack["results"][0]["incident_id"]
        .as_str()
        .unwrap()
        .to_string();
    s.wait_incident(&id3, |v| v["incident"]["status"] == "pending")
        .await;
    let stopped = s
        .ok(
            Method::POST,
            "/ops/autonomy/stop",
            Some(json!({"reason": "test"})),
            200,
        )
        .await;
    assert_eq!(stopped["kill_switch"]["engaged"], true);
    assert_eq!(stopped["kill_switch"]["set_by"], "web:operator");
    let state = s.ok(Method::GET, "/ops/autonomy", None, 200).await;
    assert_eq!(state["kill_switch"]["engaged"], true);
    let v = s
        .ok(
            Method::POST,
            &format!("/ops/alerts/{id3}/approve"),
            None,
            409,
        )
        .await;
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .contains("Autonomy is stopped"),
        "{v}"
    );
    // Refused: it still awaits an approval, which RESUME makes possible.
    let held = s
        .ok(Method::GET, &format!("/ops/alerts/{id3}"), None, 200)
        .await;
    assert_eq!(held["incident"]["status"], "pending");
    assert_eq!(held["actions"].as_array().unwrap().len(), 0);
    s.ok(Method::POST, "/ops/autonomy/resume", None, 200).await;
    let state = s.ok(Method::GET, "/ops/autonomy", None, 200).await;
    assert_eq!(state["kill_switch"]["engaged"], false);
    s.wait_incident(&id3, |v| v["incident"]["status"] == "pending")
        .await;

    // Metrics saw it all.
    let text = s.metrics().await;
    for needle in [
        "infraai_alerts_received_total{outcome=\"opened\"} 3",
        "infraai_alerts_received_total{outcome=\"repeated\"} 1",
        "infraai_human_commands_total{command=\"approve\",effective=\"true\"} 1",
        "infraai_incidents{status=\"resolved\"} 1",
        "infraai_decisions{action=\"scale_up\"} 3",
        // Counted when committed, on every path: three decisions routed to
        // a human; one approved action executed and resolved by the re-check.
        "infraai_decisions_total{action=\"scale_up\",status=\"pending\"} 3",
        "infraai_executions_total{outcome=\"executed\"} 1",
        "infraai_executions_total{outcome=\"resolved\"} 1",
        "infraai_run_phases_total{phase=\"verified\"} 1",
        "infraai_http_request_duration_seconds_count{method=\"POST\",route=\"/ops/webhook\"}",
    ] {
        assert!(text.contains(needle), "{needle} not in\n{text}");
    }
    // The rejected and the held incident executed nothing.
    assert!(!text.contains("outcome=\"failed\""), "{text}");
    assert!(!text.contains("outcome=\"unresolved\""), "{text}");
}

fn discord_request(body: &Value) -> (Vec<u8>, String, String) {
    let v = fixture("discord/signed-vectors.json");
    let seed = v["secret_key_seed_hex_TEST_ONLY"].as_str().unwrap();
    let seed: Vec<u8> = (0..64)
        .step_by(2)
        .map(|i| u8::from_str_radix(&seed[i..i + 2], 16).unwrap())
        .collect();
    let key = SigningKey::from_bytes(&seed.try_into().unwrap());
    let body = serde_json::to_vec(body).unwrap();
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    let mut message = ts.as_bytes().to_vec();
    message.extend_from_slice(&body);
    let sig: String = key
        .sign(&message)
        .to_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    (body, ts, sig)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telegram_and_discord_webhooks_authenticate_with_their_own_schemes() {
    let public_key = fixture("discord/signed-vectors.json")["public_key_hex"]
        .as_str()
        .unwrap()
        .to_string();
    let s = Server::start(
        "chat",
        &["--cloud", "simulated"],
        &[
            ("INFRAAI_TELEGRAM_BOT_TOKEN", "7000000001:TEST"),
            ("INFRAAI_TELEGRAM_CHAT_ID", "111111111"),
            ("INFRAAI_TELEGRAM_WEBHOOK_SECRET", "tg-secret"),
            ("INFRAAI_TELEGRAM_API_BASE", "http://127.0.0.1:9"),
            ("INFRAAI_TELEGRAM_APPROVERS", "111111111"),
            ("INFRAAI_DISCORD_PUBLIC_KEY", &public_key),
            ("INFRAAI_DISCORD_BOT_TOKEN", "bot"),
            ("INFRAAI_DISCORD_CHANNEL_ID", "1000000000000000010"),
            ("INFRAAI_DISCORD_API_BASE", "http://127.0.0.1:9"),
        ],
    )
    .await;
    assert!(
        s.startup
            .iter()
            .any(|l| l.contains("Telegram chat 111111111 via webhook")),
        "{:?}",
        s.startup
    );
    assert!(
        s.startup.iter().all(|l| !l.contains("7000000001:TEST")),
        "a bot token was printed"
    );
    let update = fixture("telegram/update-message.json"); // "STOP AUTONOMY" from 111111111
    let r = s
        .http
        .post(s.url("/ops/telegram"))
        .json(&update)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = s
        .http
        .post(s.url("/ops/telegram"))
        .header("x-telegram-bot-api-secret-token", "nope")
        .json(&update)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let state = s.ok(Method::GET, "/ops/autonomy", None, 200).await;
    assert_eq!(state["kill_switch"]["engaged"], false);
    let r = s
        .http
        .post(s.url("/ops/telegram"))
        .header("x-telegram-bot-api-secret-token", "tg-secret")
        .json(&update)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let state = s.ok(Method::GET, "/ops/autonomy", None, 200).await;
    assert_eq!(state["kill_switch"]["engaged"], true);
    assert_eq!(state["kill_switch"]["set_by"], "telegram:111111111");

    // Discord: PING with a valid signature → PONG; bad signature → 401.
    let ping = fixture("discord/interaction-ping.json");
    let (body, ts, sig) = discord_request(&ping);
    let r = s
        .http
        .post(s.url("/ops/discord"))
        .header("x-signature-timestamp", &ts)
        .header("x-signature-ed25519", &sig)
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["type"], 1);
    let mut bad = sig.clone().into_bytes();
    bad[0] = if bad[0] == b'0' { b'1' } else { b'0' };
    let r = s
        .http
        .post(s.url("/ops/discord"))
        .header("x-signature-timestamp", &ts)
        .header("x-signature-ed25519", String::from_utf8(bad).unwrap())
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = s
        .http
        .post(s.url("/ops/discord"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
}

/// Signs raw bytes as Discord does (timestamp + body, ed25519).
fn discord_sign(body: &[u8]) -> (String, String) {
    let v = fixture("discord/signed-vectors.json");
    let seed = v["secret_key_seed_hex_TEST_ONLY"].as_str().unwrap();
    let seed: Vec<u8> = (0..64)
        .step_by(2)
        .map(|i| u8::from_str_radix(&seed[i..i + 2], 16).unwrap())
        .collect();
    let key = SigningKey::from_bytes(&seed.try_into().unwrap());
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    let mut message = ts.as_bytes().to_vec();
    message.extend_from_slice(body);
    let sig = key
        .sign(&message)
        .to_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    (ts, sig)
}

/// Alertmanager sends every alert of a group in one notification unless
/// `max_alerts` is set, and drops a notification answered with a 4xx: a
/// large group must be recorded whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alertmanager_notification_of_a_large_group_is_recorded_whole() {
    let s = simulated("am-large-group").await;
    let mut payload = fixture("alertmanager/webhook-firing.json");
    let template = payload["alerts"][0].clone();
    let alerts: Vec<Value> = (0..600)
        .map(|n| {
            let mut a = template.clone();
            a["fingerprint"] = json!(format!("large-group-{n:04}"));
            a["labels"]["instance"] = json!(format!("node-{n:04}:9100"));
            a["annotations"]["description"] = json!("x".repeat(400));
            a
        })
        .collect();
    payload["alerts"] = json!(alerts);
    let body = serde_json::to_vec(&payload).unwrap();
    assert!(body.len() > 256 * 1024, "larger than the API's own limit");
    let r = s
        .http
        .post(s.url("/ops/webhook/alertmanager"))
        .bearer_auth(WEBHOOK)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let answer: Value = r.json().await.unwrap();
    assert_eq!(answer["accepted"], 600, "{answer}");
    assert!(answer["results"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["outcome"] == "opened" && r["incident_id"].is_string()));
    let list = s.ok(Method::GET, "/ops/alerts?limit=1000", None, 200).await;
    assert_eq!(list["incidents"].as_array().unwrap().len(), 600);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alertmanager_telegram_and_discord_refuse_bad_input_with_a_clear_4xx() {
    let public_key = fixture("discord/signed-vectors.json")["public_key_hex"]
        .as_str()
        .unwrap()
        .to_string();
    let s = Server::start(
        "chat-bad-input",
        &["--cloud", "simulated"],
        &[
            ("INFRAAI_TELEGRAM_BOT_TOKEN", "7000000001:TEST"),
            ("INFRAAI_TELEGRAM_CHAT_ID", "111111111"),
            ("INFRAAI_TELEGRAM_WEBHOOK_SECRET", "tg-secret"),
            ("INFRAAI_TELEGRAM_API_BASE", "http://127.0.0.1:9"),
            ("INFRAAI_DISCORD_PUBLIC_KEY", &public_key),
            ("INFRAAI_DISCORD_BOT_TOKEN", "bot"),
            ("INFRAAI_DISCORD_CHANNEL_ID", "1000000000000000010"),
            ("INFRAAI_DISCORD_API_BASE", "http://127.0.0.1:9"),
        ],
    )
    .await;
    let padded = |n: usize| {
        let mut b = b"{\"pad\": \"".to_vec();
        b.extend(vec![b'x'; n]);
        b.extend(b"\"}");
        b
    };
    let (big, huge) = (padded(300 * 1024), padded(4 * 1024 * 1024));
    // Each request is correctly authenticated for its route.
    let send = |path: &'static str, body: Vec<u8>| {
        let mut r = s
            .http
            .post(s.url(path))
            .header("content-type", "application/json");
        r = match path {
            "/ops/webhook/alertmanager" => r.bearer_auth(WEBHOOK),
            "/ops/telegram" => r.header("x-telegram-bot-api-secret-token", "tg-secret"),
            _ => {
                let (ts, sig) = discord_sign(&body);
                r.header("x-signature-timestamp", ts)
                    .header("x-signature-ed25519", sig)
            }
        };
        let r = r.body(body);
        async move {
            let r = r.send().await.unwrap();
            let status = r.status().as_u16();
            let ct = r
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default();
            let v = r.json::<Value>().await.unwrap_or(Value::Null);
            (status, ct, v)
        }
    };
    for path in ["/ops/webhook/alertmanager", "/ops/telegram", "/ops/discord"] {
        let (st, ct, v) = send(path, b"{not json".to_vec()).await;
        assert_eq!(st, 400, "{path}: {v}");
        assert_eq!(ct, "application/problem+json", "{path}");
        assert!(is_problem(&v, 400), "{path}: {v}");
        assert!(
            v["detail"].as_str().unwrap().contains("malformed JSON"),
            "{path}: {v}"
        );
        let (too_big, limit) = match path {
            "/ops/webhook/alertmanager" => (huge.clone(), "4096 KiB"),
            _ => (big.clone(), "256 KiB"),
        };
        let (st, ct, v) = send(path, too_big).await;
        assert_eq!(st, 413, "{path}: {v}");
        assert_eq!(ct, "application/problem+json", "{path}");
        assert!(is_problem(&v, 413), "{path}: {v}");
        assert!(v["detail"].as_str().unwrap().contains(limit), "{v}");
    }
    // Well-formed JSON of the wrong shape is a 422, not a 400 or a 5xx.
    for (path, body) in [
        ("/ops/webhook/alertmanager", json!({"alerts": "nope"})),
        ("/ops/telegram", json!({"update_id": "nope"})),
    ] {
        let (st, _, v) = send(path, serde_json::to_vec(&body).unwrap()).await;
        assert_eq!(st, 422, "{path}: {v}");
        assert!(is_problem(&v, 422), "{path}: {v}");
    }
    // Nothing of it reached the ops loop.
    let listed = s.ok(Method::GET, "/ops/alerts", None, 200).await;
    assert_eq!(listed["incidents"].as_array().unwrap().len(), 0);
    let state = s.ok(Method::GET, "/ops/autonomy", None, 200).await;
    assert_eq!(state["kill_switch"]["engaged"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_in_flight_requests_and_exits_cleanly() {
    let mut s = simulated("shutdown").await;
    let planned = s
        .ok(
            Method::POST,
            "/generate-graph",
            Some(json!({"goal": "an api"})),
            201,
        )
        .await;
    let run_id = planned["run_id"].as_str().unwrap().to_string();
    // An open event stream (the run never executes) must not hold shutdown up.
    let stream = s
        .op(Method::GET, &format!("/runs/{run_id}/events"), None)
        .await;
    assert_eq!(stream.status().as_u16(), 200);
    let status = s.terminate().await;
    assert!(status.success(), "{status:?}");
    drop(stream);
    assert!(s.http.get(s.url("/healthz")).send().await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_data_dir_gets_a_generated_operator_token_printed_once() {
    let data = std::env::temp_dir().join(format!("infraai-server-token-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let run = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_infraai-server"))
            .args(["--listen", "127.0.0.1:0", "--cloud", "simulated", "--help"])
            .output()
            .unwrap()
    };
    // --help works without touching anything.
    assert!(String::from_utf8_lossy(&run().stdout).contains("INFRAAI_OPERATOR_TOKEN"));
    let nested = data.join("nested");
    let start = |d: &std::path::Path| {
        let d = d.to_path_buf();
        async move {
            let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_infraai-server"))
                .args([
                    "--listen",
                    "127.0.0.1:0",
                    "--cloud",
                    "simulated",
                    "--data-dir",
                ])
                .arg(&d)
                .env_remove("INFRAAI_OPERATOR_TOKEN")
                .env_remove("INFRAAI_WEBHOOK_TOKEN")
                .stdout(std::process::Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .unwrap();
            use tokio::io::AsyncBufReadExt;
            let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
            let mut out = Vec::new();
            while let Ok(Some(l)) = lines.next_line().await {
                let done = l.starts_with("listening on");
                out.push(l);
                if done {
                    break;
                }
            }
            let _ = child.kill().await;
            out
        }
    };
    let first = start(&nested).await;
    let token = std::fs::read_to_string(nested.join("operator-token")).unwrap();
    assert!(
        first
            .iter()
            .any(|l| l.contains("generated now") && l.contains(token.trim())),
        "{first:?}"
    );
    let second = start(&nested).await;
    assert!(
        second.iter().all(|l| !l.contains(token.trim())),
        "token printed again: {second:?}"
    );
    let _ = std::fs::remove_dir_all(&data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incidents_runs_and_the_kill_switch_survive_a_restart() {
    let data = Server::fresh_dir("restart");
    let mut s = Server::start_in(data.clone(), &["--cloud", "simulated"], &[]).await;
    s.remove_data = false;
    let planned = s
        .ok(
            Method::POST,
            "/generate-graph",
            Some(json!({"goal": "an api"})),
            201,
        )
        .await;
    let run_id = planned["run_id"].as_str().unwrap().to_string();
    let r = s
        .http
        .post(s.url("/ops/webhook"))
        .header("x-infraai-webhook-token", WEBHOOK)
        .json(&alert("restart-1", "critical"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let id = r.json::<Value>().await.unwrap()["results"][0]["incident_id"]
        .as_str()
        .unwrap()
        .to_string();
    let before = s
        .wait_incident(&id, |v| v["incident"]["status"] != "new")
        .await;
    s.ok(Method::POST, "/ops/autonomy/stop", None, 200).await;
    assert!(s.terminate().await.success());
    drop(s);

    let s = Server::start_in(data, &["--cloud", "simulated"], &[]).await;
    assert!(data_file_exists(&s));
    let state = s.ok(Method::GET, "/ops/autonomy", None, 200).await;
    assert_eq!(
        state["kill_switch"]["engaged"], true,
        "STOP AUTONOMY was forgotten"
    );
    let i = s
        .ok(Method::GET, &format!("/ops/alerts/{id}"), None, 200)
        .await;
    assert_eq!(i["incident"]["status"], before["incident"]["status"]);
    assert_eq!(i["decision"], before["decision"]);
    let run = s
        .ok(Method::GET, &format!("/runs/{run_id}/status"), None, 200)
        .await;
    assert_eq!(run["phase"], "starting");
}

fn data_file_exists(s: &Server) -> bool {
    s.data.join("infraai.db").exists()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_alert_webhook_takes_cloud_monitoring_notifications() {
    let s = simulated("gcp").await;
    let open = fixture("gcp-monitoring/incident-open.json");
    let hook = |url: String, body: Value| {
        let r = s.http.post(url).json(&body);
        async move {
            let r = r.send().await.unwrap();
            let st = r.status().as_u16();
            (st, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (st, _) = hook(s.url("/ops/webhook?token=wrong"), open.clone()).await;
    assert_eq!(st, 401);
    let (st, v) = hook(
        s.url(&format!("/ops/webhook?token={WEBHOOK}")),
        open.clone(),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["results"][0]["outcome"], "opened", "{v}");
    let id = v["results"][0]["incident_id"].as_str().unwrap().to_string();
    let i = s
        .ok(Method::GET, &format!("/ops/alerts/{id}"), None, 200)
        .await;
    assert_eq!(i["incident"]["alert"]["resource"], "web-1");
    assert_eq!(i["incident"]["alert"]["source"], "gcp");
    let closed = fixture("gcp-monitoring/incident-closed.json");
    let (st, v) = hook(s.url(&format!("/ops/webhook?token={WEBHOOK}")), closed).await;
    assert_eq!(st, 200, "{v}");
    let mut test = open.clone();
    test["version"] = json!("test");
    let (st, v) = hook(s.url(&format!("/ops/webhook?token={WEBHOOK}")), test).await;
    assert_eq!((st, v["accepted"].clone()), (200, json!(0)));
    let mut bad = open;
    bad["incident"] = json!({"state": 3});
    let (st, v) = hook(s.url(&format!("/ops/webhook?token={WEBHOOK}")), bad).await;
    assert_eq!(st, 422, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_alert_webhook_takes_alertmanager_notifications() {
    let s = simulated("alertmanager").await;
    let firing = fixture("alertmanager/webhook-firing.json");
    let r = s
        .http
        .post(s.url("/ops/webhook"))
        .bearer_auth("wrong")
        .json(&firing)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = s
        .http
        .post(s.url("/ops/webhook"))
        .bearer_auth(WEBHOOK)
        .json(&firing)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["results"][0]["outcome"], "opened", "{v}");
    let id = v["results"][0]["incident_id"].as_str().unwrap().to_string();
    let i = s
        .ok(Method::GET, &format!("/ops/alerts/{id}"), None, 200)
        .await;
    assert_eq!(i["incident"]["alert"]["resource"], "web-1");
    let resolved = fixture("alertmanager/webhook-resolved.json");
    let r = s
        .http
        .post(s.url("/ops/webhook"))
        .bearer_auth(WEBHOOK)
        .json(&resolved)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gemini_key_turns_on_the_llm_adapters_without_printing_the_key() {
    let s = Server::start(
        "gemini",
        &["--cloud", "simulated"],
        &[
            ("GEMINI_API_KEY", "fake-gemini-key-1234"),
            ("INFRAAI_GEMINI_MODEL", "gemini-2.5-flash"),
        ],
    )
    .await;
    assert!(
        s.startup
            .iter()
            .any(|l| l.starts_with("llm: Gemini (gemini-2.5-flash)")),
        "{:?}",
        s.startup
    );
    assert!(s
        .startup
        .iter()
        .all(|l| !l.contains("fake-gemini-key-1234")));
    s.ok(Method::GET, "/readyz", None, 200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_reads_a_whole_run_and_an_incident_metric_series() {
    let s = simulated("views").await;
    // Unknown ids are 404, malformed ones 400.
    for path in [
        format!("/runs/{ZERO}"),
        format!("/ops/alerts/{ZERO}/series"),
    ] {
        let r = s.op(Method::GET, &path, None).await;
        assert_eq!(r.status().as_u16(), 404, "{path}");
    }
    for path in ["/runs/nope", "/ops/alerts/nope/series"] {
        let r = s.op(Method::GET, path, None).await;
        assert_eq!(r.status().as_u16(), 400, "{path}");
    }
    let planned = s.plan().await;
    let run_id = planned["run_id"].as_str().unwrap();
    let run = s
        .ok(Method::GET, &format!("/runs/{run_id}"), None, 200)
        .await;
    assert_eq!(run["run"]["id"], run_id);
    assert_eq!(run["run"]["plan"], planned["plan"]);
    assert!(run["run"]["files"]["files"]["main.tf"].is_string());
    assert!(run["run"]["fix_attempts"].is_array());

    let r = s
        .http
        .post(s.url("/ops/webhook"))
        .header("x-infraai-webhook-token", WEBHOOK)
        .json(&alert("series-1", "warning"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let id = r.json::<Value>().await.unwrap()["results"][0]["incident_id"]
        .as_str()
        .unwrap()
        .to_string();
    let first = s
        .ok(Method::GET, &format!("/ops/alerts/{id}/series"), None, 200)
        .await;
    assert_eq!(first["threshold"], 0.8);
    assert_eq!(first["points"][0]["source"], "alert");
    assert_eq!(first["points"][0]["value"], 0.97);
    assert_eq!(first["points"][0]["at"], "2026-11-25T10:00:00Z");
    // Each call on an open incident reads the metric source once and serves
    // its history (here: the readings the server remembered): a sample is
    // added, or the failure is reported; never neither.
    let second = s
        .ok(Method::GET, &format!("/ops/alerts/{id}/series"), None, 200)
        .await;
    let samples = |v: &Value| {
        v["points"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["source"] == "sample")
            .count()
    };
    assert!(samples(&second) >= samples(&first));
    assert!(
        samples(&second) > 0 || second["sample_error"].is_string(),
        "{second}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alertmanager_route_takes_only_alertmanager_webhooks_with_the_webhook_token() {
    let s = simulated("am-route").await;
    let payload = fixture("alertmanager/webhook-firing.json");
    let post = |auth: Option<&'static str>, body: Value| {
        let mut r = s.http.post(s.url("/ops/webhook/alertmanager")).json(&body);
        if let Some(t) = auth {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    for auth in [None, Some("wrong")] {
        let r = post(auth, payload.clone()).await.unwrap();
        assert_eq!(r.status().as_u16(), 401, "{auth:?}");
    }
    // Not an Alertmanager webhook: refused, nothing recorded.
    let r = post(Some(WEBHOOK), alert("core", "warning")).await.unwrap();
    assert!(r.status().is_client_error(), "{}", r.status());
    let r = post(Some(WEBHOOK), json!({"version": "3", "alerts": []}))
        .await
        .unwrap();
    assert!(r.status().is_client_error(), "{}", r.status());
    let r = s
        .http
        .post(s.url("/ops/webhook/alertmanager"))
        .bearer_auth(WEBHOOK)
        .body("")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    // The fixture: acknowledged after recording; the same delivery again (a
    // second Alertmanager of an HA pair) lands on the same incidents.
    let first: Value = post(Some(WEBHOOK), payload.clone())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let n = first["accepted"].as_u64().unwrap();
    assert!(n >= 1, "{first}");
    assert!(first["results"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["outcome"] == "opened"));
    let again: Value = post(Some(WEBHOOK), payload)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for (a, b) in first["results"]
        .as_array()
        .unwrap()
        .iter()
        .zip(again["results"].as_array().unwrap())
    {
        assert_eq!(b["outcome"], "repeated", "{again}");
        assert_eq!(a["incident_id"], b["incident_id"]);
    }
    let list = s.ok(Method::GET, "/ops/alerts", None, 200).await;
    assert_eq!(
        list["incidents"].as_array().unwrap().len() as u64,
        n,
        "{list:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_rules_cover_every_deployment_and_refuse_bad_ids() {
    let s = simulated("prom-rules").await;
    let empty = s.ok(Method::GET, "/ops/prometheus/rules", None, 200).await;
    assert_eq!(empty["groups"], json!([]));
    let r = s
        .op(
            Method::GET,
            "/ops/prometheus/rules?deployment_id=nope",
            None,
        )
        .await;
    assert_eq!(r.status().as_u16(), 400);
    let r = s
        .op(
            Method::GET,
            &format!("/ops/prometheus/rules?deployment_id={ZERO}"),
            None,
        )
        .await;
    assert_eq!(r.status().as_u16(), 404);
}

/// Deploys the simulated plan and opens one pending incident on `api`.
async fn pending_incident(s: &Server, fingerprint: &str) -> String {
    s.deploy().await;
    s.incident_in(&alert(fingerprint, "critical"), "pending")
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incident_shows_its_newest_audit_records_and_says_when_older_are_left_out() {
    let s = simulated("audit-limit").await;
    let id = pending_incident(&s, "cpu-audit-limit").await;
    // The last record of the flow: nothing is appended after it.
    let all = s
        .wait_incident(&id, |v| {
            v["audit"]
                .as_array()
                .is_some_and(|a| a.iter().any(|r| r["step"] == "approval_requested"))
        })
        .await;
    let records = all["audit"].as_array().unwrap();
    assert!(records.len() >= 2, "{all:#}");
    assert_eq!(all["audit_truncated"], false);
    let newest = s
        .ok(
            Method::GET,
            &format!("/ops/alerts/{id}?audit_limit=1"),
            None,
            200,
        )
        .await;
    assert_eq!(newest["audit"], json!([records.last().unwrap()]));
    assert_eq!(newest["audit_truncated"], true);
    let exact = s
        .ok(
            Method::GET,
            &format!("/ops/alerts/{id}?audit_limit={}", records.len()),
            None,
            200,
        )
        .await;
    assert_eq!(
        (&exact["audit"], &exact["audit_truncated"]),
        (&all["audit"], &json!(false))
    );
    for bad in [
        "audit_limit=0",
        "audit_limit=10001",
        "audit_limit=many",
        "limit=1",
    ] {
        let v = s
            .ok(Method::GET, &format!("/ops/alerts/{id}?{bad}"), None, 400)
            .await;
        assert!(is_problem(&v, 400), "{bad}: {v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unauthenticated_approve_is_refused_audited_and_executes_nothing() {
    let s = simulated("unauth-approve").await;
    let id = pending_incident(&s, "cpu-unauth").await;
    let path = format!("/ops/alerts/{id}/approve");
    let r = s.http.post(s.url(&path)).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = s
        .http
        .post(s.url(&path))
        .bearer_auth("forged-token-Zq9")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);

    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let v = s
        .ok(Method::GET, &format!("/ops/alerts/{id}"), None, 200)
        .await;
    assert_eq!(v["incident"]["status"], "pending", "{v:#}");
    assert_eq!(v["actions"].as_array().unwrap().len(), 0);
    assert_eq!(v["approvals"].as_array().unwrap().len(), 0);
    let refused: Vec<&Value> = v["audit"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["step"] == "auth_refused")
        .collect();
    assert_eq!(refused.len(), 2, "{v:#}");
    assert_eq!(refused[0]["outcome"], "refused: missing operator token");
    assert_eq!(refused[1]["outcome"], "refused: wrong operator token");
    for r in &refused {
        assert_eq!(r["actor"], "web:unauthenticated");
        assert_eq!(r["incident_id"], id.as_str());
        assert_eq!(r["input"]["route"], "POST /ops/alerts/{id}/approve");
        assert!(
            r["input"]["remote"]
                .as_str()
                .is_some_and(|a| a.starts_with("127.0.0.1:")),
            "{r}"
        );
        assert!(!r.to_string().contains("forged-token-Zq9"), "{r}");
    }
    // The kill-switch routes are refused and audited too (no incident).
    let r = s
        .http
        .post(s.url("/ops/autonomy/stop"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let state = s.ok(Method::GET, "/ops/autonomy", None, 200).await;
    assert_eq!(state["kill_switch"]["engaged"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_without_a_bot_says_approvals_are_web_only() {
    let s = simulated("web-only").await;
    for expected in [
        "approvals: web dashboard/API (operator bearer token)",
        "approvals: Telegram off (needs INFRAAI_TELEGRAM_BOT_TOKEN and INFRAAI_TELEGRAM_CHAT_ID)",
        "approvals: Discord off (needs INFRAAI_DISCORD_PUBLIC_KEY, INFRAAI_DISCORD_BOT_TOKEN and INFRAAI_DISCORD_CHANNEL_ID)",
    ] {
        assert!(
            s.startup.iter().any(|l| l == expected),
            "{expected:?} not in {:#?}",
            s.startup
        );
    }
    assert!(
        !s.startup
            .iter()
            .any(|l| l.contains("via webhook") || l.contains("long polling")),
        "{:#?}",
        s.startup
    );
}
