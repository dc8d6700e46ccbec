//! Slack through the real server binary, against a mock Web API over real
//! HTTP: the start-up line, an alert's approval request posted as Block
//! Kit, a signed button press on `POST /ops/slack/interactions` approving
//! it once (a redelivery changes nothing), refusals with 401 problem
//! details, and the `/infraai` slash command on `POST /ops/slack/commands`.

mod common;

use common::*;
use infraai_slack::{SigningKey, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SECRET: &str = "server-test-signing-secret";

fn now() -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    now.unwrap().as_secs().to_string()
}

/// Posts a form body signed as Slack signs it (or with `signature`).
async fn post_signed(
    s: &Server,
    route: &str,
    body: &str,
    signature: Option<&str>,
) -> reqwest::Response {
    let ts = now();
    let sig = signature.map_or_else(
        || SigningKey::new(SECRET).sign(&ts, body.as_bytes()),
        str::to_string,
    );
    s.http
        .post(s.url(route))
        .header("content-type", "application/x-www-form-urlencoded")
        .header(TIMESTAMP_HEADER, ts)
        .header(SIGNATURE_HEADER, sig)
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

/// The bodies posted to Web API method `m`, waiting up to 10 s for `n`.
async fn posted(api: &MockServer, m: &str, n: usize) -> Vec<Value> {
    let mut found = Vec::new();
    for _ in 0..100 {
        found = (api.received_requests().await.unwrap().into_iter())
            .filter(|r| r.url.path() == format!("/{m}"))
            .map(|r| serde_json::from_slice(&r.body).unwrap())
            .collect();
        if found.len() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_approves_once_refuses_strangers_and_stops_autonomy() {
    let api = MockServer::start().await;
    for m in ["chat.postMessage", "chat.update", "chat.postEphemeral"] {
        Mock::given(method("POST"))
            .and(path(format!("/{m}")))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!({"ok": true, "ts": "1700000000.000100"})),
            )
            .mount(&api)
            .await;
    }
    let s = Server::start(
        "slack",
        &["--cloud", "simulated"],
        &[
            ("INFRAAI_SLACK_BOT_TOKEN", "xoxb-server-test"),
            ("INFRAAI_SLACK_SIGNING_SECRET", SECRET),
            ("INFRAAI_SLACK_CHANNEL_ID", "C0APPROVALS"),
            ("INFRAAI_SLACK_API_BASE", &api.uri()),
            ("INFRAAI_SLACK_APPROVERS", "U0ADA"),
        ],
    )
    .await;
    assert!(
        s.startup
            .iter()
            .any(|l| l.contains("Slack channel C0APPROVALS via POST /ops/slack/interactions")),
        "{:?}",
        s.startup
    );
    assert!(
        s.startup
            .iter()
            .all(|l| !l.contains("xoxb-server-test") && !l.contains(SECRET)),
        "a secret was printed"
    );

    // A critical alert on a deployed instance asks for approval in Slack.
    s.deploy().await;
    let ack = s.post_alert(&cpu_alert("slack-cpu")).await;
    let id = ack["results"][0]["incident_id"]
        .as_str()
        .unwrap()
        .to_string();
    let message = &posted(&api, "chat.postMessage", 1).await[0];
    assert_eq!(message["channel"], "C0APPROVALS");
    let buttons = message["blocks"].as_array().unwrap().last().unwrap()["elements"].clone();
    assert_eq!(buttons[0]["value"], format!("approve:{id}"));

    // A signed press approves it; the same press again changes nothing.
    let payload = json!({
        "type": "block_actions",
        "user": {"id": "U0ADA", "username": "ada"},
        "container": {"type": "message", "message_ts": "1700000000.000100", "channel_id": "C0APPROVALS"},
        "message": {"ts": "1700000000.000100", "blocks": message["blocks"]},
        "actions": [{"type": "button", "action_id": "infraai_approve", "value": format!("approve:{id}"), "action_ts": "1700000050.000001"}],
    });
    let form = serde_urlencoded::to_string([("payload", payload.to_string())]).unwrap();
    for _ in 0..2 {
        let r = post_signed(&s, "/ops/slack/interactions", &form, None).await;
        assert_eq!(r.status().as_u16(), 200);
    }
    let done = s
        .wait_incident(&id, |v| v["incident"]["status"] == "resolved")
        .await;
    assert_eq!(done["approvals"].as_array().unwrap().len(), 1, "{done:#}");
    assert_eq!(done["approvals"][0]["actor"]["id"], "U0ADA");
    let updates = posted(&api, "chat.update", 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(posted(&api, "chat.update", 1).await.len(), 1, "{updates:?}");
    let outcome = updates[0]["blocks"].as_array().unwrap().last().unwrap()["text"]["text"].clone();
    assert!(
        outcome.as_str().unwrap().contains("@ada (slack:U0ADA)"),
        "{outcome}"
    );

    // Bad signatures are 401 problem details (audited: see infraai-slack's tests).
    for route in ["/ops/slack/interactions", "/ops/slack/commands"] {
        let r = post_signed(&s, route, &form, Some("v0=00")).await;
        assert_eq!(r.status().as_u16(), 401, "{route}");
        let problem: Value = r.json().await.unwrap();
        assert_eq!(problem["status"], 401, "{problem}");
    }

    // The slash command: a stranger is refused, an approver stops autonomy.
    let command = |user: &str, text: &str| {
        serde_urlencoded::to_string([
            ("command", "/infraai"),
            ("text", text),
            ("user_id", user),
            ("user_name", user),
        ])
        .unwrap()
    };
    let r = post_signed(&s, "/ops/slack/commands", &command("U0EVE", "stop"), None).await;
    let refused: Value = r.json().await.unwrap();
    assert_eq!(refused["response_type"], "ephemeral", "{refused}");
    let state = s.ok(Method::GET, "/ops/autonomy", None, 200).await;
    assert_eq!(state["kill_switch"]["engaged"], false);
    let r = post_signed(
        &s,
        "/ops/slack/commands",
        &command("U0ADA", "stop incident review"),
        None,
    )
    .await;
    let stopped: Value = r.json().await.unwrap();
    assert_eq!(stopped["response_type"], "in_channel", "{stopped}");
    let state = s.ok(Method::GET, "/ops/autonomy", None, 200).await;
    assert_eq!(state["kill_switch"]["engaged"], true);
    assert_eq!(state["kill_switch"]["set_by"], "slack:U0ADA");
    let r = post_signed(&s, "/ops/slack/commands", &command("U0EVE", "status"), None).await;
    let status: Value = r.json().await.unwrap();
    assert!(
        status["text"]
            .as_str()
            .unwrap()
            .starts_with("AUTONOMY STOPPED by slack:U0ADA"),
        "{status}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_slack_the_routes_say_how_to_turn_it_on() {
    let s = Server::start(
        "slack-off",
        &["--cloud", "simulated"],
        &[("INFRAAI_SLACK_BOT_TOKEN", "xoxb-x")],
    )
    .await;
    assert!(
        s.startup
            .iter()
            .any(|l| l.contains("slack: needs all of bot token, signing secret and channel id")),
        "{:?}",
        s.startup
    );
    let r = post_signed(&s, "/ops/slack/commands", "text=status", None).await;
    assert_eq!(r.status().as_u16(), 404);
    let problem: Value = r.json().await.unwrap();
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("INFRAAI_SLACK_SIGNING_SECRET"),
        "{problem}"
    );
}
