//! The kill-switch and authorization across channels: Telegram, Discord and
//! the web share one persistent switch and one approver allow-list.

use ed25519_dalek::{Signer, SigningKey};
use infraai::testing::*;
use infraai::*;
use infraai_discord::{DiscordApprover, DiscordConfig, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use infraai_telegram::{TelegramApprover, TelegramConfig, SECRET_HEADER};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

const ADA_TELEGRAM: i64 = 111111111;
const ONCALL_ROLE: &str = "1000000000000000100";

fn fixture(path: &str) -> Value {
    let p = format!("{}/../shared/fixtures/{path}", env!("CARGO_MANIFEST_DIR"));
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
    let v = fixture("discord/signed-vectors.json");
    let seed = v["secret_key_seed_hex_TEST_ONLY"].as_str().unwrap();
    let seed: Vec<u8> = (0..64)
        .step_by(2)
        .map(|i| u8::from_str_radix(&seed[i..i + 2], 16).unwrap())
        .collect();
    let key = SigningKey::from_bytes(&seed.try_into().unwrap());
    let mut press = fixture("discord/interaction-button.json");
    press["data"]["custom_id"] = json!(format!("approve:{incident}"));
    let body = serde_json::to_vec(&press).unwrap();
    let ts = "1764086460";
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
    r.headers.insert(TIMESTAMP_HEADER.into(), ts.into());
    r.headers.insert(SIGNATURE_HEADER.into(), sig);
    r
}

#[tokio::test]
async fn stop_from_telegram_blocks_discord_and_web_until_an_approver_resumes() {
    let api = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "ok": true, "result": fixture("telegram/sendMessage-ok.json")["result"], "id": "1"
        })))
        .mount(&api)
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

    let ops = TestOps::new(
        telegram.clone(),
        ApproverAllowList::none()
            .allow_user("telegram", ADA_TELEGRAM.to_string())
            .allow_role("discord", ONCALL_ROLE)
            .allow_all_authenticated("web"),
    )
    .await;
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
