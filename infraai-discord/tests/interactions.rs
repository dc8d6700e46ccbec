//! The Discord interactions endpoint against the signed vectors in
//! tests/fixtures/discord and a mock REST API, driving the real ops loop.

use ed25519_dalek::{Signer, SigningKey};
use infraai_core::testing::*;
use infraai_core::*;
use infraai_discord::*;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn fixture(name: &str) -> Value {
    let p = format!(
        "{}/../tests/fixtures/discord/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}")))
        .unwrap()
}

fn vectors() -> Value {
    fixture("signed-vectors.json")
}

fn config(api: &str) -> DiscordConfig {
    let mut c = DiscordConfig::new(
        vectors()["public_key_hex"].as_str().unwrap(),
        Secret::new("bot-token-TEST"),
        "1000000000000000010",
    );
    c.api_base = api.to_string();
    c
}

fn request(timestamp: &str, body: &[u8], signature: &str) -> InboundRequest {
    let mut r = InboundRequest {
        body: body.to_vec(),
        ..Default::default()
    };
    r.headers.insert(TIMESTAMP_HEADER.into(), timestamp.into());
    r.headers.insert(SIGNATURE_HEADER.into(), signature.into());
    r
}

/// Signs a body with the fixture's throwaway test key, as Discord would, now.
fn signed(body: &Value) -> InboundRequest {
    signed_at(body, unix_now())
}

fn unix_now() -> u64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    now.unwrap().as_secs()
}

/// Signs a body as Discord would, with the timestamp `ts` (Unix seconds).
fn signed_at(body: &Value, ts: u64) -> InboundRequest {
    let seed = vectors()["secret_key_seed_hex_TEST_ONLY"]
        .as_str()
        .unwrap()
        .to_string();
    let seed: Vec<u8> = (0..64)
        .step_by(2)
        .map(|i| u8::from_str_radix(&seed[i..i + 2], 16).unwrap())
        .collect();
    let key = SigningKey::from_bytes(&seed.try_into().unwrap());
    let raw = serde_json::to_vec(body).unwrap();
    let ts = ts.to_string();
    let mut message = ts.as_bytes().to_vec();
    message.extend_from_slice(&raw);
    let sig: String = key
        .sign(&message)
        .to_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    request(&ts, &raw, &sig)
}

/// Ada is allowed through her on-call role, not her id.
async fn ops(approver: Arc<dyn Notifier>) -> TestOps {
    TestOps::new(
        approver,
        ApproverAllowList::none().allow_role("discord", "1000000000000000100"),
    )
    .await
}

async fn discord_api() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/channels/1000000000000000010/messages"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"id": "1300000000000000000"})),
        )
        .mount(&server)
        .await;
    server
}

#[test]
fn every_signed_vector_gives_the_expected_verdict() {
    let v = vectors();
    let key = PublicKey::from_hex(v["public_key_hex"].as_str().unwrap()).unwrap();
    let cases = v["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 7);
    for c in cases {
        let verdict = key.verify(
            c["timestamp"].as_str().unwrap(),
            c["body"].as_str().unwrap().as_bytes(),
            c["signature_hex"].as_str().unwrap(),
        );
        assert_eq!(verdict, c["valid"].as_bool().unwrap(), "case {}", c["name"]);
    }
    assert!(PublicKey::from_hex("abcd").is_err());
    assert!(!key.verify("1", b"{}", "zz"));
}

#[tokio::test]
async fn ping_gets_pong_and_bad_signatures_are_401() {
    let server = discord_api().await;
    // The recorded vectors were signed in 2025: this checks signatures, not freshness.
    let mut config = config(&server.uri());
    config.replay_window = Duration::from_secs(100 * 365 * 24 * 3600);
    let approver = Arc::new(DiscordApprover::new(config).unwrap());
    let o = ops(approver.clone()).await;
    for c in vectors()["cases"].as_array().unwrap() {
        let r = request(
            c["timestamp"].as_str().unwrap(),
            c["body"].as_str().unwrap().as_bytes(),
            c["signature_hex"].as_str().unwrap(),
        );
        let result = approver.handle_interaction(&o.agent, &r).await;
        match (c["name"].as_str().unwrap(), c["valid"].as_bool().unwrap()) {
            ("valid_ping", true) => assert_eq!(result.unwrap(), fixture("response-pong.json")),
            (_, true) => assert!(result.is_ok()),
            (name, false) => assert!(
                matches!(result, Err(Error::Unauthenticated { .. })),
                "{name}"
            ),
        }
    }
    // Missing headers.
    let none = InboundRequest {
        body: b"{}".to_vec(),
        ..Default::default()
    };
    assert!(matches!(
        approver.handle_interaction(&o.agent, &none).await,
        Err(Error::Unauthenticated { .. })
    ));
    assert!(o.actions.executed().is_empty());
    // Every refusal is audited, with the route the server passes in.
    let mut from = none.clone();
    from.origin = RequestOrigin {
        route: Some("POST /ops/discord".into()),
        remote: Some("192.0.2.7:5555".into()),
    };
    assert!(approver.handle_interaction(&o.agent, &from).await.is_err());
    let invalid = vectors()["cases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["valid"] == false)
        .count();
    let audit = o.store.list_audit(&AuditQuery::default()).await.unwrap();
    let refused: Vec<&AuditRecord> = audit
        .iter()
        .filter(|r| r.step == AuditStep::AuthRefused)
        .collect();
    assert_eq!(refused.len(), invalid + 2, "{refused:?}");
    assert!(refused.iter().all(|r| r.actor == "discord:unauthenticated"
        && r.outcome == "refused: invalid Discord request signature"));
    let last = refused.last().unwrap();
    assert_eq!(last.input["route"], "POST /ops/discord");
    assert_eq!(last.input["remote"], "192.0.2.7:5555");
}

#[tokio::test]
async fn a_button_press_delivered_twice_approves_exactly_once() {
    let server = discord_api().await;
    let approver = Arc::new(DiscordApprover::new(config(&server.uri())).unwrap());
    let o = ops(approver.clone()).await;
    let incident = o.pending_incident("dc-cpu").await;

    // The request message: content, buttons, no mentions.
    let posted = server.received_requests().await.unwrap();
    let body: Value = serde_json::from_slice(&posted[0].body).unwrap();
    assert!(body["content"]
        .as_str()
        .unwrap()
        .starts_with(&format!("**Approval needed** — incident `{}`", incident.id)));
    // The cost change, markdown-escaped like every other field.
    let content = body["content"].as_str().unwrap();
    assert!(
        content.contains("Cost change: e2\\-medium → e2\\-standard\\-2: +$24.45/month"),
        "{content}"
    );
    assert_eq!(body["allowed_mentions"], json!({"parse": []}));
    let ids: Vec<&str> = body["components"][0]["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["custom_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            format!("approve:{}", incident.id).as_str(),
            &format!("reject:{}", incident.id),
            "stop"
        ]
    );
    assert_eq!(
        posted[0].headers.get("authorization").unwrap(),
        "Bot bot-token-TEST"
    );

    let mut press = fixture("interaction-button.json");
    press["data"]["custom_id"] = json!(format!("approve:{}", incident.id));
    let first = approver
        .handle_interaction(&o.agent, &signed(&press))
        .await
        .unwrap();
    assert_eq!(first["type"], 7);
    let content = first["data"]["content"].as_str().unwrap();
    assert!(
        content.contains("**Outcome** (<@1100000000000000042>): Approved; executing"),
        "{content}"
    );
    assert!(first["data"]["components"][0]["components"]
        .as_array()
        .unwrap()
        .iter()
        .all(|b| b["disabled"] == true));
    let second = approver
        .handle_interaction(&o.agent, &signed(&press))
        .await
        .unwrap();
    assert!(
        second["data"]["content"]
            .as_str()
            .unwrap()
            .contains("Nothing to approve"),
        "{second}"
    );
    o.settle_actions(1).await;
    assert_eq!(o.actions.executed().len(), 1);
    let approvals = o.store.list_approvals(incident.id).await.unwrap();
    assert_eq!(approvals.iter().filter(|a| a.effective).count(), 1);
    assert_eq!(approvals[0].actor.label(), "discord:1100000000000000042");
}

#[tokio::test]
async fn a_member_without_the_role_is_refused_ephemerally_and_audited() {
    let server = discord_api().await;
    let approver = Arc::new(DiscordApprover::new(config(&server.uri())).unwrap());
    let o = ops(approver.clone()).await;
    let incident = o.pending_incident("dc-cpu").await;
    let mut press = fixture("interaction-button.json");
    press["data"]["custom_id"] = json!(format!("approve:{}", incident.id));
    press["member"]["roles"] = json!(["999"]);
    let answer = approver
        .handle_interaction(&o.agent, &signed(&press))
        .await
        .unwrap();
    assert_eq!(answer["type"], 4);
    assert_eq!(answer["data"]["flags"], 64);
    assert!(answer["data"]["content"]
        .as_str()
        .unwrap()
        .contains("not on the approver list"));
    assert!(o.actions.executed().is_empty());
    let audit = o.store.list_audit(&AuditQuery::default()).await.unwrap();
    assert!(audit
        .iter()
        .any(|r| r.actor == "discord:1100000000000000042" && r.outcome.starts_with("refused")));
}

#[tokio::test]
async fn rate_limits_are_waited_out() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/channels/1000000000000000010/messages"))
        .respond_with(ResponseTemplate::new(429).set_body_json(
            json!({"message": "You are being rate limited.", "retry_after": 0.6, "global": false}),
        ))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/channels/1000000000000000010/messages"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "1"})))
        .mount(&server)
        .await;
    let approver = DiscordApprover::new(config(&server.uri())).unwrap();
    let n = Notification {
        incident_id: None,
        title: "@everyone look".into(),
        body: "b".into(),
    };
    let start = Instant::now();
    approver.notify(&n).await.unwrap();
    assert!(start.elapsed() >= Duration::from_millis(600));
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 2);
    let body: Value = serde_json::from_slice(&requests[1].body).unwrap();
    assert!(body["content"]
        .as_str()
        .unwrap()
        .starts_with("**\\@everyone look**"));
}

#[tokio::test]
async fn the_retry_after_header_is_honored_when_the_body_has_none() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/channels/1000000000000000010/messages"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "0.7"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/channels/1000000000000000010/messages"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "1"})))
        .mount(&server)
        .await;
    let approver = DiscordApprover::new(config(&server.uri())).unwrap();
    let n = Notification {
        incident_id: None,
        title: "t".into(),
        body: "b".into(),
    };
    let start = Instant::now();
    approver.notify(&n).await.unwrap();
    assert!(
        start.elapsed() >= Duration::from_millis(700),
        "waited {:?}",
        start.elapsed()
    );
    assert_eq!(server.received_requests().await.unwrap().len(), 2);

    // Neither a body nor a header: fails at once as retryable, no guessing.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/channels/1000000000000000010/messages"))
        .respond_with(ResponseTemplate::new(429))
        .mount(&server)
        .await;
    let err = DiscordApprover::new(config(&server.uri()))
        .unwrap()
        .notify(&n)
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_signed_interaction_outside_the_replay_window_is_401() {
    let server = discord_api().await;
    let approver = Arc::new(DiscordApprover::new(config(&server.uri())).unwrap());
    let o = ops(approver.clone()).await;
    let ping = json!({"type": 1, "id": "1", "application_id": "2", "token": "t", "version": 1});
    let fresh = approver.handle_interaction(&o.agent, &signed(&ping)).await;
    assert!(fresh.is_ok(), "{fresh:?}");
    let hours = |h: u64| h * 3600;
    // 10 s past the 300 s window: a second ticking between signing and
    // checking must not bring the request back inside it.
    for ts in [unix_now() - hours(72), unix_now() - 310, unix_now() + 310] {
        let result = approver
            .handle_interaction(&o.agent, &signed_at(&ping, ts))
            .await;
        match result {
            Err(Error::Unauthenticated { detail }) => {
                assert!(detail.contains("replay window"), "{detail}")
            }
            other => panic!("timestamp {ts}: {other:?}"),
        }
    }
}
