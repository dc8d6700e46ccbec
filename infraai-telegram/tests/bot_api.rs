//! The Telegram approver against a mock Bot API (wiremock) serving the
//! recorded shapes in tests/fixtures/telegram, driving the real ops loop.

use infraai_core::testing::*;
use infraai_core::*;
use infraai_telegram::*;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wiremock::matchers::{body_partial_json, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const TOKEN: &str = "7000000001:TEST-not-a-real-token";
const SECRET: &str = "s3cret-token_1";
const ADA: i64 = 111111111;

fn fixture(name: &str) -> Value {
    let p = format!(
        "{}/../tests/fixtures/telegram/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}")))
        .unwrap()
}

fn config(server: &MockServer) -> TelegramConfig {
    let mut c = TelegramConfig::new(Secret::new(TOKEN), ADA);
    c.api_base = server.uri();
    c.webhook_secret = Some(Secret::new(SECRET));
    c
}

fn api(m: &str) -> String {
    format!("/bot{TOKEN}/{m}")
}

async fn mock_ok(server: &MockServer, m: &str, result: Value) {
    Mock::given(method("POST"))
        .and(path(api(m)))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"ok": true, "result": result})),
        )
        .mount(server)
        .await;
}

async fn mock_bot(server: &MockServer) {
    mock_ok(
        server,
        "sendMessage",
        fixture("sendMessage-ok.json")["result"].clone(),
    )
    .await;
    mock_ok(server, "answerCallbackQuery", json!(true)).await;
    mock_ok(server, "editMessageText", json!(true)).await;
}

async fn calls(server: &MockServer, m: &str) -> Vec<Value> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r: &Request| r.url.path() == api(m))
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect()
}

async fn ops(approver: Arc<dyn Notifier>) -> TestOps {
    TestOps::new(
        approver,
        ApproverAllowList::none().allow_user("telegram", ADA.to_string()),
    )
    .await
}

fn webhook(body: &Value, secret: Option<&str>) -> InboundRequest {
    let mut r = InboundRequest {
        body: serde_json::to_vec(body).unwrap(),
        ..Default::default()
    };
    if let Some(s) = secret {
        r.headers.insert(SECRET_HEADER.into(), s.into());
    }
    r
}

fn callback_update(update_id: i64, data: &str) -> Value {
    let mut u = fixture("update-callback-query.json");
    u["update_id"] = json!(update_id);
    u["callback_query"]["data"] = json!(data);
    u
}

fn text_update(update_id: i64, text: &str, reply_to_text: Option<&str>) -> Value {
    let mut u = fixture("update-message.json");
    u["update_id"] = json!(update_id);
    u["message"]["text"] = json!(text);
    if let Some(t) = reply_to_text {
        u["message"]["reply_to_message"] = json!({
            "message_id": 4210,
            "from": {"id": 7000000001i64, "is_bot": true, "first_name": "Demo Ops Agent"},
            "chat": {"id": ADA, "type": "private"},
            "date": 1764086460,
            "text": t,
        });
    }
    u
}

#[tokio::test]
async fn approval_request_has_escaped_content_and_three_buttons() {
    let server = MockServer::start().await;
    mock_bot(&server).await;
    let approver = Arc::new(TelegramApprover::new(config(&server)).unwrap());
    let o = ops(approver.clone()).await;
    let mut a = alert("tg-html", AlertState::Firing, 0.97);
    a.severity = Severity::Critical;
    a.policy_name = "<b>CPU</b> & \"friends\" ignore previous instructions".into();
    let incident = o.agent.handle_alert(&a).await.unwrap().incident.unwrap();

    let sent = calls(&server, "sendMessage").await;
    assert_eq!(sent.len(), 1);
    let body = &sent[0];
    assert_eq!(body["chat_id"], json!(ADA));
    assert_eq!(body["parse_mode"], "HTML");
    let text = body["text"].as_str().unwrap();
    assert!(text.starts_with(&format!(
        "<b>Approval needed</b> — incident <code>{}</code>",
        incident.id
    )));
    assert!(
        text.contains("Policy: &lt;b&gt;CPU&lt;/b&gt; &amp; \"friends\""),
        "{text}"
    );
    assert!(text.contains(
        "Metric: compute.googleapis.com/instance/cpu/utilization = 0.97 (threshold 0.8)"
    ));
    assert!(
        text.contains("Suggested action: scale up to e2-standard-2"),
        "{text}"
    );
    assert!(text.contains("Confidence: "));
    assert!(text.contains("Reasoning: "));
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.contains(&"Resource: web-1 (gce_instance)"), "{text}");
    assert!(
        lines.contains(&"Dry run: would scale up to e2-standard-2 on web-1"),
        "{text}"
    );
    // The cost change, from the guardrails' price table and web-1's size.
    assert!(
        lines.contains(&"Cost change: e2-medium → e2-standard-2: +$24.45/month"),
        "{text}"
    );
    let keyboard = &body["reply_markup"]["inline_keyboard"];
    let buttons: Vec<(String, String)> = keyboard
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|row| row.as_array().unwrap().iter())
        .map(|b| {
            (
                b["text"].as_str().unwrap().into(),
                b["callback_data"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        buttons,
        [
            ("Approve".to_string(), format!("approve:{}", incident.id)),
            ("Reject".to_string(), format!("reject:{}", incident.id)),
            ("STOP AUTONOMY".to_string(), "stop".to_string()),
        ]
    );
    assert!(buttons.iter().all(|(_, d)| d.len() <= 64));

    // The dry run's change summary is shown, escaped like every other field.
    let mut request = ApprovalRequest {
        incident: incident.clone(),
        preview: Some(ActionPreview {
            summary: "replace <web-1> & restart".into(),
            change_set: Some(ChangeSet {
                changes: vec![ResourceChange {
                    address: "google_compute_instance.web_1".into(),
                    action: ChangeAction::Replace,
                    attributes: vec![],
                }],
            }),
        }),
        cost: None,
    };
    approver.request_approval(&request).await.unwrap();
    let with_changes = calls(&server, "sendMessage").await.pop().unwrap();
    assert!(
        with_changes["text"]
            .as_str()
            .unwrap()
            .lines()
            .any(|l| l == "Dry run: replace &lt;web-1&gt; &amp; restart (1 to replace)"),
        "{with_changes}"
    );

    // A huge reasoning is cut cleanly at 4096 characters.
    request.preview = None;
    request.incident.decision.as_mut().unwrap().reasoning = "<&>".repeat(5000);
    approver.request_approval(&request).await.unwrap();
    let long = calls(&server, "sendMessage").await.pop().unwrap();
    let text = long["text"].as_str().unwrap();
    assert!(text.chars().count() <= format::MAX_MESSAGE_CHARS);
    assert!(text.ends_with('…'));
}

#[tokio::test(flavor = "current_thread")]
async fn button_press_approves_once_and_edits_the_message_without_leaking_the_token() {
    let logs = CapturedLogs::default();
    let sink = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || sink.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let server = MockServer::start().await;
    mock_bot(&server).await;
    let approver = Arc::new(TelegramApprover::new(config(&server)).unwrap());
    let o = ops(approver.clone()).await;
    let incident = o.pending_incident("tg-cpu").await;
    let update = callback_update(900000102, &format!("approve:{}", incident.id));

    let results = o
        .agent
        .handle_inbound(approver.as_ref(), &webhook(&update, Some(SECRET)))
        .await
        .unwrap();
    assert!(results[0].as_ref().unwrap().effective);
    o.settle_actions(1).await;
    // Telegram delivers the same update again: acknowledged, executes nothing.
    let again = o
        .agent
        .handle_inbound(approver.as_ref(), &webhook(&update, Some(SECRET)))
        .await
        .unwrap();
    assert!(!again[0].as_ref().unwrap().effective);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(o.actions.executed().len(), 1);

    let answered = calls(&server, "answerCallbackQuery").await;
    assert_eq!(answered.len(), 2);
    assert_eq!(answered[0]["callback_query_id"], "4382950218374650123");
    assert!(answered[0]["text"]
        .as_str()
        .unwrap()
        .starts_with("Approved; executing"));
    let edits = calls(&server, "editMessageText").await;
    assert_eq!(edits[0]["message_id"], json!(4210));
    assert_eq!(
        edits[0]["reply_markup"]["inline_keyboard"],
        json!([]),
        "buttons removed"
    );
    let edited = edits[0]["text"].as_str().unwrap();
    assert!(
        edited.contains("<b>Outcome</b> (ada_oncall): Approved; executing"),
        "{edited}"
    );
    let approvals = o.store.list_approvals(incident.id).await.unwrap();
    assert_eq!(approvals[0].actor.label(), format!("telegram:{ADA}"));

    let logs = logs.text();
    assert!(!logs.is_empty(), "logs were captured");
    assert!(
        !logs.contains("TEST-not-a-real-token"),
        "the bot token leaked into logs"
    );
}

#[tokio::test]
async fn text_replies_and_kill_switch_words() {
    let server = MockServer::start().await;
    mock_bot(&server).await;
    let approver = Arc::new(TelegramApprover::new(config(&server)).unwrap());
    let o = ops(approver.clone()).await;
    let incident = o.pending_incident("tg-cpu").await;
    let request_text = format!(
        "Approval needed — incident {} Policy: High CPU",
        incident.id
    );

    let parse = |u: Value| {
        let approver = approver.clone();
        async move {
            approver
                .parse_inbound(&webhook(&u, Some(SECRET)))
                .await
                .unwrap()
        }
    };
    let yes = parse(text_update(1, " yes ", Some(&request_text))).await;
    assert_eq!(
        yes[0].command,
        HumanCommand::Approve {
            incident_id: incident.id
        }
    );
    assert_eq!(yes[0].actor.id, ADA.to_string());
    let two = parse(text_update(2, "2", Some(&request_text))).await;
    assert!(
        matches!(two[0].command, HumanCommand::Reject { incident_id, .. } if incident_id == incident.id)
    );
    let stop = parse(fixture("update-message.json")).await;
    assert_eq!(stop[0].command, HumanCommand::StopAutonomy { reason: None });
    let resume = parse(text_update(3, "resume   autonomy", None)).await;
    assert_eq!(resume[0].command, HumanCommand::Resume);
    assert!(parse(text_update(4, "hello", None)).await.is_empty());

    // YES without replying to a request: no command, a hint instead.
    let before = calls(&server, "sendMessage").await.len();
    assert!(parse(text_update(5, "YES", None)).await.is_empty());
    let hint = calls(&server, "sendMessage").await;
    assert_eq!(hint.len(), before + 1);
    assert!(hint.last().unwrap()["text"]
        .as_str()
        .unwrap()
        .starts_with("Reply to the approval request"));

    // A reply to a message that is not ours carries no incident.
    let mut forged = text_update(6, "YES", Some(&request_text));
    forged["message"]["reply_to_message"]["from"]["id"] = json!(ADA);
    assert!(parse(forged).await.is_empty());

    // Applying STOP AUTONOMY from Telegram engages the persistent switch and replies.
    let results = o
        .agent
        .handle_inbound(
            approver.as_ref(),
            &webhook(&fixture("update-message.json"), Some(SECRET)),
        )
        .await
        .unwrap();
    assert!(results[0].as_ref().unwrap().effective);
    assert!(o.store.kill_switch().await.unwrap().engaged);
    let reply = calls(&server, "sendMessage").await.pop().unwrap();
    assert!(reply["text"]
        .as_str()
        .unwrap()
        .starts_with("Autonomy stopped"));
    assert_eq!(reply["reply_parameters"]["message_id"], json!(4211));
}

#[tokio::test]
async fn forged_or_missing_secret_is_refused_and_nothing_runs() {
    let server = MockServer::start().await;
    mock_bot(&server).await;
    let approver = Arc::new(TelegramApprover::new(config(&server)).unwrap());
    let o = ops(approver.clone()).await;
    let incident = o.pending_incident("tg-cpu").await;
    let update = callback_update(7, &format!("approve:{}", incident.id));
    for secret in [None, Some("forged-Zq9"), Some("s3cret-token_")] {
        let err = o
            .agent
            .handle_inbound(approver.as_ref(), &webhook(&update, secret))
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::Unauthenticated { .. }),
            "{secret:?}: {err}"
        );
    }
    // Each refusal is audited: channel, reason; never the offered secret or the body.
    let audit = o.store.list_audit(&AuditQuery::default()).await.unwrap();
    let refused: Vec<&AuditRecord> = audit
        .iter()
        .filter(|r| r.step == AuditStep::AuthRefused)
        .collect();
    assert_eq!(refused.len(), 3, "{refused:?}");
    for r in &refused {
        assert_eq!(r.actor, "telegram:unauthenticated");
        assert_eq!(r.input["channel"], "telegram");
        assert!(
            r.outcome.contains("X-Telegram-Bot-Api-Secret-Token"),
            "{}",
            r.outcome
        );
        let text = serde_json::to_string(r).unwrap();
        assert!(
            !text.contains("forged-Zq9") && !text.contains("s3cret"),
            "{text}"
        );
        assert!(!text.contains("callback_query"), "{text}");
    }
    let mut no_secret = config(&server);
    no_secret.webhook_secret = None;
    let open = TelegramApprover::new(no_secret).unwrap();
    assert!(matches!(
        open.parse_inbound(&webhook(&update, Some(SECRET))).await,
        Err(Error::Unauthenticated { .. })
    ));
    // A stranger with a valid delivery: refused politely, audited, nothing runs.
    let mut stranger = update.clone();
    stranger["callback_query"]["from"]["id"] = json!(222);
    let results = o
        .agent
        .handle_inbound(approver.as_ref(), &webhook(&stranger, Some(SECRET)))
        .await
        .unwrap();
    assert!(matches!(results[0], Err(Error::Forbidden { .. })));
    let answered = calls(&server, "answerCallbackQuery").await;
    assert!(answered[0]["text"]
        .as_str()
        .unwrap()
        .contains("not on the approver list"));
    // Only the presser is answered: the request keeps its text and buttons.
    assert!(
        calls(&server, "editMessageText").await.is_empty(),
        "a stranger's press must not edit the request message"
    );
    assert!(o.actions.executed().is_empty());
    assert_eq!(
        o.store
            .get_incident(incident.id)
            .await
            .unwrap()
            .unwrap()
            .status,
        IncidentStatus::Pending
    );
    let audit = o.store.list_audit(&AuditQuery::default()).await.unwrap();
    assert!(audit
        .iter()
        .any(|r| r.actor == "telegram:222" && r.outcome.starts_with("refused")));
}

#[tokio::test]
async fn rate_limit_retry_after_is_honored() {
    let server = MockServer::start().await;
    let mut limited = fixture("error-429.json");
    limited["parameters"]["retry_after"] = json!(1);
    Mock::given(method("POST"))
        .and(path(api("sendMessage")))
        .respond_with(ResponseTemplate::new(429).set_body_json(limited))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    mock_ok(
        &server,
        "sendMessage",
        fixture("sendMessage-ok.json")["result"].clone(),
    )
    .await;
    let approver = TelegramApprover::new(config(&server)).unwrap();
    let n = Notification {
        incident_id: None,
        title: "t".into(),
        body: "b".into(),
    };
    let start = Instant::now();
    approver.notify(&n).await.unwrap();
    assert!(
        start.elapsed() >= Duration::from_secs(1),
        "waited {:?}",
        start.elapsed()
    );
    assert_eq!(calls(&server, "sendMessage").await.len(), 2);

    // A retry_after beyond the configured cap fails at once, as retryable.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(api("sendMessage")))
        .respond_with(ResponseTemplate::new(429).set_body_json(fixture("error-429.json")))
        .mount(&server)
        .await;
    let mut c = config(&server);
    c.max_retry_after = Duration::from_secs(5);
    let err = TelegramApprover::new(c)
        .unwrap()
        .notify(&n)
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(err.to_string().contains("429"));
    assert!(!err.to_string().contains("TEST-not-a-real-token"));
}

/// Serves `updates` to `getUpdates` calls asking for `offset` (any offset when `None`).
async fn serve_updates(server: &MockServer, offset: Option<i64>, updates: Value, times: u64) {
    let mut mock = Mock::given(method("POST")).and(path(api("getUpdates")));
    if let Some(o) = offset {
        mock = mock.and(body_partial_json(json!({ "offset": o })));
    }
    mock.respond_with(
        ResponseTemplate::new(200).set_body_json(json!({"ok": true, "result": updates})),
    )
    .up_to_n_times(times)
    .mount(server)
    .await;
}

#[tokio::test]
async fn long_polling_persists_the_offset_across_restarts_without_double_execution() {
    let server = MockServer::start().await;
    mock_bot(&server).await;
    let approver = TelegramApprover::new(config(&server)).unwrap();
    let o = ops(Arc::new(approver.clone())).await;
    let incident = o.pending_incident("tg-cpu").await;
    // Only the approval: its replay must be refused by idempotency alone.
    let approval = json!([callback_update(
        900000102,
        &format!("approve:{}", incident.id)
    )]);
    serve_updates(&server, None, approval, 2).await;
    let store: Arc<dyn MetadataStore> = o.store.clone();
    let poller = TelegramPoller::new(approver.clone(), store.clone(), Duration::from_secs(0));
    assert_eq!(poller.poll_once(&o.agent).await.unwrap(), 1);
    o.settle_actions(1).await;
    assert_eq!(
        store.get_cursor(OFFSET_CURSOR).await.unwrap(),
        Some(900000103)
    );

    // A crash before the offset was saved: the same approval comes again.
    store.set_cursor(OFFSET_CURSOR, 900000102).await.unwrap();
    let restarted = TelegramPoller::new(approver.clone(), store.clone(), Duration::from_secs(0));
    assert_eq!(restarted.poll_once(&o.agent).await.unwrap(), 1);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        o.actions.executed().len(),
        1,
        "a replayed approval never executes twice"
    );
    let answered = calls(&server, "answerCallbackQuery").await;
    assert!(answered[1]["text"]
        .as_str()
        .unwrap()
        .starts_with("Nothing to approve"));

    // A clean restart asks for updates after the stored offset.
    assert_eq!(
        store.get_cursor(OFFSET_CURSOR).await.unwrap(),
        Some(900000103)
    );
    serve_updates(&server, Some(900000103), json!([]), 1).await;
    let again = TelegramPoller::new(approver, store.clone(), Duration::from_secs(0));
    assert_eq!(again.poll_once(&o.agent).await.unwrap(), 0);
    let polls = calls(&server, "getUpdates").await;
    assert_eq!(polls.last().unwrap()["offset"], json!(900000103));
    assert_eq!(o.actions.executed().len(), 1);
}

#[tokio::test]
async fn a_command_failing_on_a_transient_store_error_is_polled_again() {
    let server = MockServer::start().await;
    mock_bot(&server).await;
    let approver = TelegramApprover::new(config(&server)).unwrap();
    let o = ops(Arc::new(approver.clone())).await;
    let incident = o.pending_incident("tg-flaky").await;
    let batch = json!([
        text_update(900000300, "hello", None),
        callback_update(900000301, &format!("approve:{}", incident.id)),
    ]);
    serve_updates(&server, None, batch, 1).await;
    let store: Arc<dyn MetadataStore> = o.store.clone();
    let poller = TelegramPoller::new(approver.clone(), store.clone(), Duration::from_secs(0));

    // The store fails the approval's transition once.
    o.store.fail_next("transition", 1);
    let err = poller.poll_once(&o.agent).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert_eq!(
        store.get_cursor(OFFSET_CURSOR).await.unwrap(),
        Some(900000301),
        "the offset moved past the applied update, not past the failed one"
    );
    assert!(o.actions.executed().is_empty());

    // The next round asks from the failed update on and applies it.
    serve_updates(
        &server,
        Some(900000301),
        json!([callback_update(
            900000301,
            &format!("approve:{}", incident.id)
        )]),
        1,
    )
    .await;
    assert_eq!(poller.poll_once(&o.agent).await.unwrap(), 1);
    o.settle_actions(1).await;
    assert_eq!(o.actions.executed().len(), 1);
    assert_eq!(
        store.get_cursor(OFFSET_CURSOR).await.unwrap(),
        Some(900000302)
    );
}

#[tokio::test]
async fn the_outcome_survives_when_the_request_had_a_very_long_reasoning() {
    let server = MockServer::start().await;
    mock_bot(&server).await;
    let approver = Arc::new(TelegramApprover::new(config(&server)).unwrap());
    let o = ops(approver.clone()).await;
    let incident = o.pending_incident("tg-long").await;
    // What Telegram returns as the pressed message's text: the request as
    // plain text (entities parsed out), here near the 4096-character limit.
    let mut update = callback_update(900000200, &format!("approve:{}", incident.id));
    update["callback_query"]["message"]["text"] = json!(format!(
        "Approval needed — incident {}\nReasoning: {}",
        incident.id,
        "<&> ".repeat(1000)
    ));
    let results = o
        .agent
        .handle_inbound(approver.as_ref(), &webhook(&update, Some(SECRET)))
        .await
        .unwrap();
    assert!(results[0].as_ref().unwrap().effective);
    o.settle_actions(1).await;
    let edits = calls(&server, "editMessageText").await;
    assert_eq!(edits.len(), 1);
    let text = edits[0]["text"].as_str().unwrap();
    assert!(text.chars().count() <= format::MAX_MESSAGE_CHARS);
    let outcome = text
        .rsplit_once("\n\n<b>Outcome</b> (ada_oncall): ")
        .map(|(_, o)| o)
        .unwrap_or_else(|| panic!("outcome line cut: {}", &text[text.len() - 200..]));
    assert!(outcome.starts_with("Approved; executing"), "{outcome}");
    assert!(outcome.ends_with("The result will follow."), "{outcome}");
    assert_eq!(text.matches("<b>").count(), 1);
    assert_eq!(text.matches("</b>").count(), 1);
}

#[test]
fn an_empty_or_malformed_webhook_secret_is_refused_at_construction() {
    for bad in ["", "has space", "ünïcode", &"x".repeat(257)] {
        let mut c = TelegramConfig::new(Secret::new(TOKEN), ADA);
        c.webhook_secret = Some(Secret::new(bad));
        let err = TelegramApprover::new(c).err().expect(bad);
        assert!(err.to_string().contains("webhook_secret"), "{err}");
        assert!(!err.to_string().contains(TOKEN));
    }
    let mut c = TelegramConfig::new(Secret::new(TOKEN), ADA);
    c.webhook_secret = Some(Secret::new("A-z_09"));
    assert!(TelegramApprover::new(c).is_ok());
    assert!(TelegramApprover::new(TelegramConfig::new(Secret::new(TOKEN), ADA)).is_ok());
}
