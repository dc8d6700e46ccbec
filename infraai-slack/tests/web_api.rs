//! The Slack channel against a mock Web API, driving the real ops loop:
//! Block Kit requests, signed interactions applied once, refusals,
//! user-group approvers, slash commands, rate limits and API errors.
//! Payloads are the shapes kept in `tests/fixtures/slack` (Slack's
//! `block_actions` payload, its documented slash-command body), and the
//! signing scheme is checked against the vectors there, computed from
//! Slack's published example.

use infraai_core::testing::*;
use infraai_core::*;
use infraai_slack::*;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const SECRET: &str = "test-signing-secret";
const CHANNEL: &str = "C0APPROVALS";
/// Ada is allowed by id; Grace through the on-call user group; Eve is not.
const ADA: &str = "U0ADA";
const GRACE: &str = "U0GRACE";
const EVE: &str = "U0EVE";
const ONCALL: &str = "S0ONCALL";

fn config(api: &str) -> SlackConfig {
    let mut c = SlackConfig::new(Secret::new("xoxb-test"), Secret::new(SECRET), CHANNEL);
    c.api_base = api.to_string();
    c.approver_groups = vec![ONCALL.into()];
    c
}

async fn ops(approver: Arc<SlackApprover>) -> TestOps {
    let allow = ApproverAllowList::none()
        .allow_user("slack", ADA)
        .allow_role("slack", ONCALL);
    TestOps::new(approver, allow).await
}

fn fixture(name: &str) -> String {
    let p = format!(
        "{}/../tests/fixtures/slack/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

fn now() -> u64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    now.unwrap().as_secs()
}

/// A request signed as Slack signs it, at `ts`.
fn signed_at(body: &[u8], ts: u64) -> InboundRequest {
    let ts = ts.to_string();
    let mut r = InboundRequest {
        body: body.to_vec(),
        ..Default::default()
    };
    r.headers.insert(TIMESTAMP_HEADER.into(), ts.clone());
    let signature = SigningKey::new(SECRET).sign(&ts, body);
    r.headers.insert(SIGNATURE_HEADER.into(), signature);
    r
}

fn form(fields: &[(&str, &str)]) -> Vec<u8> {
    serde_urlencoded::to_string(fields).unwrap().into_bytes()
}

/// A `block_actions` payload: `user` pressed the button with `value` on the
/// request message, at `action_ts`.
fn press(user: &str, value: &str, action_ts: &str, message: &Value) -> InboundRequest {
    let fixture: Value = serde_json::from_str(&fixture("block-actions.json")).unwrap();
    let mut payload = fixture["payload"].clone();
    payload["user"]["id"] = json!(user);
    payload["user"]["username"] = json!(user.to_lowercase());
    payload["message"] = message.clone();
    payload["actions"][0]["value"] = json!(value);
    payload["actions"][0]["action_ts"] = json!(action_ts);
    signed_at(&form(&[("payload", &payload.to_string())]), now())
}

#[test]
fn every_signed_vector_gives_the_expected_verdict() {
    let v: Value = serde_json::from_str(&fixture("signed-vectors.json")).unwrap();
    let key = SigningKey::new(v["signing_secret"].as_str().unwrap());
    let cases = v["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 8);
    for c in cases {
        let s = |k: &str| c[k].as_str().unwrap();
        let verdict = key.verify(s("timestamp"), s("body").as_bytes(), s("signature"));
        assert_eq!(verdict, c["valid"].as_bool().unwrap(), "case {}", c["name"]);
    }
    // The published example is a slash command: the same bytes as the fixture.
    assert_eq!(
        cases[0]["body"].as_str().unwrap(),
        fixture("slash-command.txt").trim_end()
    );
}

async fn slack_api() -> MockServer {
    let server = MockServer::start().await;
    for m in ["chat.postMessage", "chat.update", "chat.postEphemeral"] {
        Mock::given(method("POST"))
            .and(path(format!("/{m}")))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(
                    json!({"ok": true, "channel": CHANNEL, "ts": "1700000000.000100"}),
                ),
            )
            .mount(&server)
            .await;
    }
    Mock::given(method("GET"))
        .and(path("/usergroups.users.list"))
        .and(query_param("usergroup", ONCALL))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"ok": true, "users": [GRACE]})),
        )
        .mount(&server)
        .await;
    server
}

/// The bodies of the calls to `m` so far, waiting up to 2 s for `n` of them.
async fn calls(server: &MockServer, m: &str, n: usize) -> Vec<(Request, Value)> {
    let mut found = Vec::new();
    for _ in 0..200 {
        found = server
            .received_requests()
            .await
            .unwrap()
            .into_iter()
            .filter(|r| r.url.path() == format!("/{m}"))
            .map(|r| {
                let body = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
                (r, body)
            })
            .collect();
        if found.len() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    found
}

#[tokio::test]
async fn an_approval_request_is_block_kit_with_buttons_and_escaped_alert_text() {
    let server = slack_api().await;
    let approver = Arc::new(SlackApprover::new(config(&server.uri())).unwrap());
    let o = ops(approver).await;
    let mut a = alert("sl-hostile", AlertState::Firing, 0.97);
    a.severity = Severity::Critical;
    a.policy_name = "<!channel> High CPU & <@U0BOSS> <https://evil.example|click>".into();
    let incident = o.agent.handle_alert(&a).await.unwrap().incident.unwrap();
    let posted = calls(&server, "chat.postMessage", 1).await;
    let (request, body) = &posted[0];
    assert_eq!(
        request.headers.get("authorization").unwrap(),
        "Bearer xoxb-test"
    );
    assert_eq!(body["channel"], CHANNEL);
    let blocks = body["blocks"].as_array().unwrap();
    assert!(blocks.len() <= MAX_BLOCKS);
    assert_eq!(
        blocks[0]["text"]["text"],
        format!("*Approval needed* — incident `{}`", incident.id)
    );
    let text: String = blocks
        .iter()
        .map(|b| b["text"]["text"].as_str().unwrap_or(""))
        .collect();
    for line in [
        "Policy: ",
        "Resource: web-1",
        "Metric: ",
        "Suggested action: scale up to e2-standard-2",
        "Cost change: e2-medium → e2-standard-2: +$24.45/month",
        "Confidence: 0.85",
        "Reasoning: ",
    ] {
        assert!(text.contains(line), "{line} missing from {text}");
    }
    assert!(
        text.contains(
            "&lt;!channel&gt; High CPU &amp; &lt;@U0BOSS&gt; &lt;https://evil.example|click&gt;"
        ),
        "{text}"
    );
    assert!(
        !text.contains("<!channel>") && !text.contains("<@U0BOSS>"),
        "a mention got through"
    );
    let buttons: Vec<(&str, &str)> = blocks.last().unwrap()["elements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["text"]["text"].as_str().unwrap(),
                b["value"].as_str().unwrap(),
            )
        })
        .collect();
    let (approve, reject) = (
        format!("approve:{}", incident.id),
        format!("reject:{}", incident.id),
    );
    assert_eq!(
        buttons,
        [
            ("Approve", approve.as_str()),
            ("Reject", reject.as_str()),
            ("STOP AUTONOMY", "stop")
        ]
    );
}

#[tokio::test]
async fn a_press_delivered_twice_approves_once_and_the_message_shows_who_decided() {
    let server = slack_api().await;
    let approver = Arc::new(SlackApprover::new(config(&server.uri())).unwrap());
    let o = ops(approver.clone()).await;
    let incident = o.pending_incident("sl-cpu").await;
    let message = json!({"ts": "1700000000.000100", "blocks": calls(&server, "chat.postMessage", 1).await[0].1["blocks"]});
    let value = format!("approve:{}", incident.id);
    let first = press(ADA, &value, "1700000100.000200", &message);
    approver.handle_interaction(&o.agent, &first).await.unwrap();
    // Slack delivers the same press again (same action_ts, newly signed).
    let again = press(ADA, &value, "1700000100.000200", &message);
    approver.handle_interaction(&o.agent, &again).await.unwrap();
    o.settle_actions(1).await;
    assert_eq!(o.actions.executed().len(), 1);
    let approvals = o.store.list_approvals(incident.id).await.unwrap();
    assert_eq!(approvals.len(), 1, "{approvals:?}");
    assert_eq!(approvals[0].actor.label(), "slack:U0ADA");

    let updates = calls(&server, "chat.update", 1).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        calls(&server, "chat.update", 1).await.len(),
        1,
        "the redelivery updated nothing"
    );
    let update = &updates[0].1;
    assert_eq!(
        (update["channel"].as_str(), update["ts"].as_str()),
        (Some(CHANNEL), Some("1700000000.000100"))
    );
    let blocks = update["blocks"].as_array().unwrap();
    assert!(
        blocks.iter().all(|b| b["type"] != "actions"),
        "the buttons are gone"
    );
    let last = blocks.last().unwrap()["text"]["text"].as_str().unwrap();
    assert!(
        last.starts_with("*Outcome* (@u0ada (slack:U0ADA)): Approved"),
        "{last}"
    );
    assert_eq!(
        blocks[0], message["blocks"][0],
        "the request stays above the outcome"
    );
}

#[tokio::test]
async fn bad_signatures_and_stale_timestamps_are_refused_and_audited() {
    let server = slack_api().await;
    let approver = Arc::new(SlackApprover::new(config(&server.uri())).unwrap());
    let o = ops(approver.clone()).await;
    let incident = o.pending_incident("sl-cpu").await;
    let good = press(
        ADA,
        &format!("approve:{}", incident.id),
        "1700000100.000200",
        &json!({}),
    );
    let mut tampered = good.clone();
    tampered.body.extend_from_slice(b"&x=1");
    let mut unsigned = good.clone();
    unsigned.headers.remove(SIGNATURE_HEADER);
    let stale = signed_at(&good.body, now() - 310);
    let future = signed_at(&good.body, now() + 310);
    for (name, r) in [
        ("tampered", &tampered),
        ("unsigned", &unsigned),
        ("stale", &stale),
        ("future", &future),
    ] {
        let e = approver.handle_interaction(&o.agent, r).await.unwrap_err();
        assert!(matches!(e, Error::Unauthenticated { .. }), "{name}: {e}");
        let e = approver
            .handle_slash_command(&o.agent, r)
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Unauthenticated { .. }), "{name}: {e}");
    }
    let audit = o.store.list_audit(&AuditQuery::default()).await.unwrap();
    let refused = audit
        .iter()
        .filter(|r| r.step == AuditStep::AuthRefused && r.actor == "slack:unauthenticated")
        .count();
    assert_eq!(refused, 8);
    assert!(o
        .store
        .list_approvals(incident.id)
        .await
        .unwrap()
        .is_empty());
    assert!(o.actions.executed().is_empty());
}

#[tokio::test]
async fn a_stranger_is_refused_to_themselves_and_a_group_member_may_approve() {
    let server = slack_api().await;
    let approver = Arc::new(SlackApprover::new(config(&server.uri())).unwrap());
    let o = ops(approver.clone()).await;
    let incident = o.pending_incident("sl-cpu").await;
    let value = format!("approve:{}", incident.id);
    approver
        .handle_interaction(
            &o.agent,
            &press(EVE, &value, "1700000100.000001", &json!({})),
        )
        .await
        .unwrap();
    let ephemeral = calls(&server, "chat.postEphemeral", 1).await;
    assert_eq!(ephemeral[0].1["user"], EVE);
    assert!(ephemeral[0].1["text"]
        .as_str()
        .unwrap()
        .contains("not on the approver list"));
    let still = o.store.get_incident(incident.id).await.unwrap().unwrap();
    assert_eq!(still.status, IncidentStatus::Pending);
    assert!(calls(&server, "chat.update", 0).await.is_empty());

    approver
        .handle_interaction(
            &o.agent,
            &press(GRACE, &value, "1700000100.000002", &json!({})),
        )
        .await
        .unwrap();
    o.settle_actions(1).await;
    let approvals = o.store.list_approvals(incident.id).await.unwrap();
    assert_eq!(approvals[0].actor.roles, [ONCALL]);
    // Two presses, one look-up of the group: its members are cached.
    assert_eq!(calls(&server, "usergroups.users.list", 1).await.len(), 1);
}

#[tokio::test]
async fn slash_commands_stop_resume_and_report_status() {
    let server = slack_api().await;
    let approver = Arc::new(SlackApprover::new(config(&server.uri())).unwrap());
    let o = ops(approver.clone()).await;
    let command = |user: &str, text: &str| {
        signed_at(
            &form(&[
                ("command", "/infraai"),
                ("text", text),
                ("user_id", user),
                ("user_name", "someone"),
                ("channel_id", CHANNEL),
            ]),
            now(),
        )
    };
    let stop = approver
        .handle_slash_command(&o.agent, &command(ADA, "stop deploy freeze"))
        .await
        .unwrap();
    assert_eq!(stop["response_type"], "in_channel", "{stop}");
    assert!(
        stop["text"].as_str().unwrap().contains("Autonomy stopped"),
        "{stop}"
    );
    let switch = o.store.kill_switch().await.unwrap();
    assert!(switch.engaged);
    assert_eq!(switch.reason.as_deref(), Some("deploy freeze"));
    let status = approver
        .handle_slash_command(&o.agent, &command(EVE, "status"))
        .await
        .unwrap();
    assert_eq!(status["response_type"], "ephemeral");
    assert!(
        status["text"]
            .as_str()
            .unwrap()
            .starts_with("AUTONOMY STOPPED by slack:U0ADA"),
        "{status}"
    );
    let refused = approver
        .handle_slash_command(&o.agent, &command(EVE, "resume"))
        .await
        .unwrap();
    assert_eq!(refused["response_type"], "ephemeral");
    assert!(
        refused["text"]
            .as_str()
            .unwrap()
            .contains("not on the approver list"),
        "{refused}"
    );
    assert!(
        o.store.kill_switch().await.unwrap().engaged,
        "a stranger changed nothing"
    );
    let resume = approver
        .handle_slash_command(&o.agent, &command(ADA, "resume"))
        .await
        .unwrap();
    assert_eq!(resume["response_type"], "in_channel", "{resume}");
    assert!(!o.store.kill_switch().await.unwrap().engaged);
    let help = approver
        .handle_slash_command(&o.agent, &command(ADA, ""))
        .await
        .unwrap();
    assert!(
        help["text"]
            .as_str()
            .unwrap()
            .starts_with("Usage: `/infraai stop [reason]`"),
        "{help}"
    );
}

#[tokio::test]
async fn rate_limits_are_waited_out_and_api_errors_carry_slacks_code() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/chat.postMessage"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "1"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/chat.postMessage"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true})))
        .mount(&server)
        .await;
    let approver = SlackApprover::new(config(&server.uri())).unwrap();
    let note = Notification {
        incident_id: None,
        title: "t".into(),
        body: "b".into(),
    };
    let started = Instant::now();
    approver.notify(&note).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After was not honoured"
    );
    assert_eq!(server.received_requests().await.unwrap().len(), 2);

    let failing = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/chat.postMessage"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"ok": false, "error": "channel_not_found"})),
        )
        .mount(&failing)
        .await;
    let approver = SlackApprover::new(config(&failing.uri())).unwrap();
    let e = approver.notify(&note).await.unwrap_err().to_string();
    assert!(
        e.contains("chat.postMessage failed: channel_not_found"),
        "{e}"
    );
}
