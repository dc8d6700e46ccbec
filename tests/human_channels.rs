//! The kill-switch and authorization across channels: Telegram, Discord,
//! Slack and the web share one persistent switch and one approver allow-list.

use ed25519_dalek::{Signer, SigningKey};
use infraai::testing::*;
use infraai::*;
use infraai_discord::{DiscordApprover, DiscordConfig, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use infraai_slack::{SigningKey as SlackKey, SlackApprover, SlackConfig};
use infraai_telegram::{TelegramApprover, TelegramConfig, SECRET_HEADER};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

const ADA_TELEGRAM: i64 = 111111111;
const ONCALL_ROLE: &str = "1000000000000000100";

fn fixture(path: &str) -> Value {
    let p = format!("{}/tests/fixtures/{path}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}")))
        .unwrap()
}

fn telegram_update(text: &str, from: i64) -> InboundRequest {
    let mut u = fixture("telegram/update-message.json");
    u["message"]["text"] = json!(text);
    u["message"]["from"]["id"] = json!(from);
    let mut r = InboundRequest {
        body: serde_json::to_vec(&u).unwrap(),
        ..Default::default()
    };
    r.headers.insert(SECRET_HEADER.into(), "tg-secret".into());
    r
}

fn discord_press(incident: IncidentId) -> InboundRequest {
    discord_button(&format!("approve:{incident}"), "1300000000000000002")
}

/// A signed press of the button `custom_id`, as interaction `interaction_id`.
fn discord_button(custom_id: &str, interaction_id: &str) -> InboundRequest {
    let v = fixture("discord/signed-vectors.json");
    let seed = v["secret_key_seed_hex_TEST_ONLY"].as_str().unwrap();
    let seed: Vec<u8> = (0..64)
        .step_by(2)
        .map(|i| u8::from_str_radix(&seed[i..i + 2], 16).unwrap())
        .collect();
    let key = SigningKey::from_bytes(&seed.try_into().unwrap());
    let mut press = fixture("discord/interaction-button.json");
    press["data"]["custom_id"] = json!(custom_id);
    press["id"] = json!(interaction_id);
    let body = serde_json::to_vec(&press).unwrap();
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
    let mut r = InboundRequest {
        body,
        ..Default::default()
    };
    r.headers.insert(TIMESTAMP_HEADER.into(), ts);
    r.headers.insert(SIGNATURE_HEADER.into(), sig);
    r
}

#[tokio::test]
async fn stop_from_telegram_blocks_discord_and_web_until_an_approver_resumes() {
    let api = MockServer::start().await;
    let (telegram, discord, _slack, ops) = four_channels(&api).await;
    let incident = ops.pending_incident("x-cpu").await;
    let (agent, store, actions) = (&ops.agent, &ops.store, &ops.actions);

    // STOP AUTONOMY from Telegram.
    let stop = agent
        .handle_inbound(
            telegram.as_ref(),
            &telegram_update("STOP AUTONOMY", ADA_TELEGRAM),
        )
        .await
        .unwrap();
    assert!(stop[0].as_ref().unwrap().effective);
    assert!(store.kill_switch().await.unwrap().engaged);

    // An approval from Discord executes nothing and says why.
    let answer = discord
        .handle_interaction(agent, &discord_press(incident.id))
        .await
        .unwrap();
    assert!(
        answer["data"]["content"]
            .as_str()
            .unwrap()
            .contains("Autonomy is stopped"),
        "{answer}"
    );
    // Nor from the web.
    let web = agent
        .handle_command(&HumanReply::new(
            HumanCommand::Approve {
                incident_id: incident.id,
            },
            Actor::new("web", "alice"),
        ))
        .await
        .unwrap();
    assert!(!web.effective);
    assert!(actions.executed().is_empty());

    // RESUME from someone who is only in the chat: refused, still stopped.
    let refused = agent
        .handle_inbound(telegram.as_ref(), &telegram_update("RESUME AUTONOMY", 222))
        .await
        .unwrap();
    assert!(matches!(refused[0], Err(Error::Forbidden { .. })));
    assert!(store.kill_switch().await.unwrap().engaged);

    // RESUME from the web operator; the Discord approval now runs, once.
    agent
        .handle_command(&HumanReply::new(
            HumanCommand::Resume,
            Actor::new("web", "alice"),
        ))
        .await
        .unwrap();
    assert!(!store.kill_switch().await.unwrap().engaged);
    let answer = discord
        .handle_interaction(agent, &discord_press(incident.id))
        .await
        .unwrap();
    assert!(
        answer["data"]["content"]
            .as_str()
            .unwrap()
            .contains("Approved; executing"),
        "{answer}"
    );
    for _ in 0..200 {
        if store
            .get_incident(incident.id)
            .await
            .unwrap()
            .unwrap()
            .status
            == IncidentStatus::Resolved
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        store
            .get_incident(incident.id)
            .await
            .unwrap()
            .unwrap()
            .status,
        IncidentStatus::Resolved
    );
    assert_eq!(actions.executed().len(), 1);
    let kill_switch_audit: Vec<String> = store
        .list_audit(&AuditQuery::default())
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.step == AuditStep::KillSwitch)
        .map(|r| format!("{} {}", r.actor, r.outcome))
        .collect();
    assert_eq!(
        kill_switch_audit,
        [
            format!("telegram:{ADA_TELEGRAM} engaged"),
            "web:alice released".to_string()
        ]
    );
}

fn telegram_update_numbered(text: &str, from: i64, update_id: i64) -> InboundRequest {
    let mut r = telegram_update(text, from);
    let mut u: Value = serde_json::from_slice(&r.body).unwrap();
    u["update_id"] = json!(update_id);
    r.body = serde_json::to_vec(&u).unwrap();
    r
}

#[tokio::test]
async fn a_redelivered_old_stop_cannot_re_engage_the_kill_switch_after_a_resume() {
    let api = MockServer::start().await;
    let (telegram, discord, _slack, ops) = four_channels(&api).await;
    let (agent, store) = (&ops.agent, &ops.store);
    let engaged = || async { store.kill_switch().await.unwrap().engaged };
    let web_resume = || async {
        let r = agent
            .handle_command(&HumanReply::new(
                HumanCommand::Resume,
                Actor::new("web", "alice"),
            ))
            .await
            .unwrap();
        assert!(r.effective);
    };
    let telegram_says = |text: &'static str, update_id: i64| {
        let telegram = telegram.clone();
        async move {
            agent
                .handle_inbound(
                    telegram.as_ref(),
                    &telegram_update_numbered(text, ADA_TELEGRAM, update_id),
                )
                .await
                .unwrap()
                .remove(0)
                .unwrap()
        }
    };

    // Telegram: STOP (update 500), RESUME from the web, then update 500 again.
    assert!(telegram_says("STOP AUTONOMY", 500).await.effective);
    assert!(engaged().await);
    web_resume().await;
    let again = telegram_says("STOP AUTONOMY", 500).await;
    assert!(!again.effective);
    assert!(
        again.message.contains("delivered again"),
        "{}",
        again.message
    );
    assert!(!engaged().await, "an old STOP re-engaged the kill-switch");
    // A new STOP still works; an older RESUME arriving late does not undo it.
    assert!(telegram_says("STOP AUTONOMY", 502).await.effective);
    assert!(engaged().await);
    assert!(!telegram_says("RESUME AUTONOMY", 501).await.effective);
    assert!(engaged().await);
    assert!(telegram_says("RESUME AUTONOMY", 503).await.effective);
    assert!(!engaged().await);
    assert_eq!(
        store
            .get_cursor(&infraai::ops::kill_switch_cursor("telegram"))
            .await
            .unwrap(),
        Some(503)
    );

    // After a day without kill-switch commands, ids are no longer compared
    // (Telegram may restart them): a STOP with a lower id is applied.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let day_ago = now - 25 * 3600;
    store
        .set_cursor(&infraai::ops::kill_switch_cursor_at("telegram"), day_ago)
        .await
        .unwrap();
    assert!(telegram_says("STOP AUTONOMY", 7).await.effective);
    assert!(engaged().await);
    web_resume().await;

    // Discord: the same signed STOP interaction delivered again after a RESUME.
    let stop = discord_button("stop", "1300000000000000900");
    let first = discord.handle_interaction(agent, &stop).await.unwrap();
    assert!(
        first["data"]["content"]
            .as_str()
            .unwrap()
            .contains("Autonomy stopped"),
        "{first}"
    );
    assert!(engaged().await);
    web_resume().await;
    let replayed = discord.handle_interaction(agent, &stop).await.unwrap();
    assert!(
        replayed["data"]["content"]
            .as_str()
            .unwrap()
            .contains("delivered again"),
        "{replayed}"
    );
    assert!(
        !engaged().await,
        "a replayed Discord STOP re-engaged the kill-switch"
    );
    let ignored = store
        .list_audit(&AuditQuery::default())
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.step == AuditStep::KillSwitch && r.outcome.contains("delivered again"))
        .count();
    assert_eq!(ignored, 3);
}

const SLACK_SECRET: &str = "slack-signing-secret";
const ADA_SLACK: &str = "U0ADA";

fn unix_now() -> u64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    now.unwrap().as_secs()
}

/// A form body signed as Slack signs it, now.
fn slack_signed(body: String) -> InboundRequest {
    let ts = unix_now().to_string();
    let mut r = InboundRequest {
        body: body.into_bytes(),
        ..Default::default()
    };
    let sig = SlackKey::new(SLACK_SECRET).sign(&ts, &r.body);
    r.headers.insert(infraai_slack::TIMESTAMP_HEADER.into(), ts);
    r.headers
        .insert(infraai_slack::SIGNATURE_HEADER.into(), sig);
    r
}

fn slack_press(value: &str, action_ts: &str) -> InboundRequest {
    let payload = json!({
        "type": "block_actions",
        "user": {"id": ADA_SLACK, "username": "ada"},
        "container": {"type": "message", "message_ts": "1700000000.000100", "channel_id": "C0OPS"},
        "actions": [{"type": "button", "action_id": "infraai_approve", "value": value, "action_ts": action_ts}],
    });
    let body = format!(
        "payload={}",
        payload
            .to_string()
            .replace('%', "%25")
            .replace('&', "%26")
            .replace('+', "%2B")
            .replace(' ', "+")
    );
    slack_signed(body)
}

fn telegram_press(incident: IncidentId) -> InboundRequest {
    let mut u = fixture("telegram/update-callback-query.json");
    u["callback_query"]["data"] = json!(format!("approve:{incident}"));
    let mut r = InboundRequest {
        body: serde_json::to_vec(&u).unwrap(),
        ..Default::default()
    };
    r.headers.insert(SECRET_HEADER.into(), "tg-secret".into());
    r
}

/// Telegram, Discord and Slack against one mock API, and the agent with
/// Ada allowed on each (and every web operator).
async fn four_channels(
    api: &MockServer,
) -> (
    Arc<TelegramApprover>,
    DiscordApprover,
    SlackApprover,
    TestOps,
) {
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "ok": true, "result": fixture("telegram/sendMessage-ok.json")["result"], "id": "1"
        })))
        .mount(api)
        .await;
    let mut tg = TelegramConfig::new(Secret::new("7000000001:TEST"), ADA_TELEGRAM);
    tg.api_base = api.uri();
    tg.webhook_secret = Some(Secret::new("tg-secret"));
    let telegram = Arc::new(TelegramApprover::new(tg).unwrap());
    let mut dc = DiscordConfig::new(
        fixture("discord/signed-vectors.json")["public_key_hex"]
            .as_str()
            .unwrap(),
        Secret::new("bot"),
        "1000000000000000010",
    );
    dc.api_base = api.uri();
    let discord = DiscordApprover::new(dc).unwrap();
    let mut sc = SlackConfig::new(Secret::new("xoxb-test"), Secret::new(SLACK_SECRET), "C0OPS");
    sc.api_base = api.uri();
    let slack = SlackApprover::new(sc).unwrap();
    let ops = TestOps::new(
        telegram.clone(),
        ApproverAllowList::none()
            .allow_user("telegram", ADA_TELEGRAM.to_string())
            .allow_role("discord", ONCALL_ROLE)
            .allow_user("slack", ADA_SLACK)
            .allow_all_authenticated("web"),
    )
    .await;
    (telegram, discord, slack, ops)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_approval_across_four_channels_executes_once() {
    let api = MockServer::start().await;
    let (telegram, discord, slack, ops) = four_channels(&api).await;
    let incident = ops.pending_incident("x-cpu").await;
    let agent = &ops.agent;
    let value = format!("approve:{}", incident.id);
    // The same approval from every channel at once.
    let web = HumanReply::new(
        HumanCommand::Approve {
            incident_id: incident.id,
        },
        Actor::new("web", "alice"),
    );
    let (tp, dp) = (telegram_press(incident.id), discord_press(incident.id));
    let sp = slack_press(&value, "1700000001.000001");
    let (t, d, s, w) = tokio::join!(
        agent.handle_inbound(telegram.as_ref(), &tp),
        discord.handle_interaction(agent, &dp),
        slack.handle_interaction(agent, &sp),
        agent.handle_command(&web),
    );
    let (t, d, s, w) = (t.unwrap(), d.unwrap(), s, w.unwrap());
    s.unwrap();
    ops.settle_actions(1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        ops.actions.executed().len(),
        1,
        "telegram {t:?} discord {d} web {w:?}"
    );
    let approvals = ops.store.list_approvals(incident.id).await.unwrap();
    assert_eq!(
        approvals.iter().filter(|a| a.effective).count(),
        1,
        "{approvals:?}"
    );
}

#[tokio::test]
async fn stop_from_slack_blocks_telegram_and_web_approvals() {
    let api = MockServer::start().await;
    let (telegram, _discord, slack, ops) = four_channels(&api).await;
    let incident = ops.pending_incident("x-cpu").await;
    let agent = &ops.agent;
    let stop = slack_signed(format!(
        "command=%2Finfraai&text=stop&user_id={ADA_SLACK}&user_name=ada"
    ));
    let answer = slack.handle_slash_command(agent, &stop).await.unwrap();
    assert_eq!(answer["response_type"], "in_channel", "{answer}");
    assert!(ops.store.kill_switch().await.unwrap().engaged);
    let from_telegram = agent
        .handle_inbound(telegram.as_ref(), &telegram_press(incident.id))
        .await
        .unwrap()
        .remove(0)
        .unwrap();
    assert!(!from_telegram.effective, "{}", from_telegram.message);
    let web = HumanReply::new(
        HumanCommand::Approve {
            incident_id: incident.id,
        },
        Actor::new("web", "alice"),
    );
    assert!(!agent.handle_command(&web).await.unwrap().effective);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(ops.actions.executed().is_empty());
    let status = ops
        .store
        .get_incident(incident.id)
        .await
        .unwrap()
        .unwrap()
        .status;
    assert_eq!(
        status,
        IncidentStatus::Pending,
        "refused: still awaiting approval"
    );
}
