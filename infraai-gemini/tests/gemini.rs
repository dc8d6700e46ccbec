//! GeminiProvider against a mock Gemini API (recorded payload shapes from
//! tests/fixtures/gemini), alone and behind the core LLM components.

mod common;

use common::*;
use infraai_core::llm::LlmDecisionPolicy;
use infraai_core::testing::llm::{self as scenarios, llm_ops_with, restart_answer};
use infraai_core::testing::{alert, MemoryStore};
use infraai_core::{AlertState, AuditStep, Error, HistoryStore, LlmProvider, LlmRequest};
use infraai_gemini::*;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn request() -> LlmRequest {
    LlmRequest {
        system: "You are an SRE agent.".into(),
        prompt: "Decide.".into(),
        schema_name: "ops_decision".into(),
        schema: serde_json::to_value(schemars::schema_for!(infraai_core::OpsDecision)).unwrap(),
        temperature: Some(0.2),
    }
}

fn provider_error(e: &Error) -> &ProviderError {
    match e {
        Error::Backend { source, .. } => source
            .downcast_ref::<ProviderError>()
            .expect("a ProviderError source"),
        other => panic!("expected a backend error, got {other:?}"),
    }
}

#[tokio::test]
async fn structured_success_sends_the_documented_request_and_returns_json_and_usage() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(GEMINI_PATH))
        .and(header("x-goog-api-key", KEY))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(fixture("gemini/generateContent-json.json")),
        )
        .expect(1)
        .mount(&server)
        .await;
    let provider = GeminiProvider::new(gemini_config(&server)).unwrap();
    let response = provider.generate(&request()).await.unwrap();

    assert_eq!(response.value["action"], "set_machine_type");
    assert_eq!(response.value["machine_type"], "e2-standard-4");
    assert_eq!(response.value["confidence"], 0.78);
    assert_eq!(response.usage.prompt_tokens, 412);
    assert_eq!(
        response.usage.completion_tokens,
        96 + 120,
        "thought tokens count as output"
    );
    assert_eq!(response.model, "gemini-2.5-flash");

    let sent = &server.received_requests().await.unwrap()[0];
    assert!(
        !sent.url.as_str().contains(KEY) && sent.url.query().is_none(),
        "key never in the URL"
    );
    let body: Value = serde_json::from_slice(&sent.body).unwrap();
    assert_eq!(
        body["systemInstruction"]["parts"][0]["text"],
        "You are an SRE agent."
    );
    assert_eq!(body["contents"][0]["role"], "user");
    assert_eq!(body["contents"][0]["parts"][0]["text"], "Decide.");
    let config = &body["generationConfig"];
    assert_eq!(config["responseMimeType"], "application/json");
    assert_eq!(config["candidateCount"], 1);
    assert!((config["temperature"].as_f64().unwrap() - 0.2).abs() < 1e-6);
    let schema = &config["responseJsonSchema"];
    assert_eq!(schema["type"], "object");
    assert!(
        !schema.to_string().contains("$ref") && !schema.to_string().contains("\"const\""),
        "{schema}"
    );
}

/// Yields (so the paused clock does not auto-advance) until `done` holds or
/// ten real seconds pass.
async fn spin_until(mut done: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        if done() {
            return true;
        }
        tokio::task::yield_now().await;
    }
    done()
}

#[tokio::test(start_paused = true)]
async fn rate_limit_with_retry_info_waits_the_servers_delay_then_succeeds() {
    let server = MockServer::start().await;
    // A message of its own, to find this test's retry line among the
    // process-wide captured logs.
    let marker = "quota-marker-of-the-retry-info-test";
    let mut body = fixture("gemini/error-429.json");
    body["error"]["message"] = json!(format!("You exceeded your current quota ({marker})."));
    Mock::given(method("POST"))
        .and(path(GEMINI_PATH))
        .respond_with(ResponseTemplate::new(429).set_body_json(body))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    script(
        &server,
        GEMINI_PATH,
        vec![fixture("gemini/generateContent-json.json")],
    )
    .await;
    let provider = GeminiProvider::new(gemini_config(&server)).unwrap();
    let call = tokio::spawn(async move { provider.generate(&request()).await });
    let requests = || {
        let server = &server;
        async move { server.received_requests().await.unwrap().len() }
    };

    // The 429 arrived and the provider is asleep: its retry line is logged
    // in the same poll that starts the sleep.
    let retry_line = || {
        captured_logs()
            .text()
            .lines()
            .find(|l| l.contains("retrying") && l.contains(marker))
            .map(String::from)
    };
    assert!(
        spin_until(|| retry_line().is_some()).await,
        "no retry after the 429"
    );
    let line = retry_line().unwrap_or_default();
    let delay_ms: u64 = line
        .split("delay_ms=")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no delay in {line:?}"));
    assert!(
        (17_000..=18_000).contains(&delay_ms),
        "RetryInfo says 17s + ≤1s jitter; the provider sleeps {delay_ms} ms"
    );
    assert_eq!(requests().await, 1);

    // 16 s later it is still waiting: no second request.
    tokio::time::advance(Duration::from_secs(16)).await;
    for _ in 0..200 {
        tokio::task::yield_now().await;
    }
    assert_eq!(requests().await, 1, "retried before the server's 17 s");
    assert!(!call.is_finished());

    // 2 s more (18 s ≥ 17 s + jitter): the retry goes out and succeeds.
    tokio::time::advance(Duration::from_secs(2)).await;
    let mut n = 0;
    let mut retried = false;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        n = requests().await;
        if n == 2 && call.is_finished() {
            retried = true;
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(retried, "{n} request(s) 18 s after the 429");
    let response = call.await.unwrap().unwrap();
    assert_eq!(response.value["action"], "set_machine_type");
    assert_eq!(requests().await, 2);
}

#[tokio::test]
async fn a_rate_limit_longer_than_the_cap_fails_at_once_as_retryable() {
    let server = MockServer::start().await;
    let mut body = fixture("gemini/error-429.json");
    body["error"]["details"][2]["retryDelay"] = json!("3600s");
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).set_body_json(body))
        .expect(1)
        .mount(&server)
        .await;
    let provider = GeminiProvider::new(gemini_config(&server)).unwrap();
    let err = provider.generate(&request()).await.unwrap_err();
    assert!(err.is_retryable());
    assert!(matches!(
        provider_error(&err),
        ProviderError::RateLimited { retry_after: Some(d), .. } if *d == Duration::from_secs(3600)
    ));
    assert!(err.to_string().contains("gemini-2.5-pro"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn unavailable_is_retried_with_backoff_and_bad_requests_are_not() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503).set_body_string("overloaded"))
        .up_to_n_times(2)
        .mount(&server)
        .await;
    script(
        &server,
        GEMINI_PATH,
        vec![gemini_envelope(&restart_answer())],
    )
    .await;
    let provider = GeminiProvider::new(gemini_config(&server)).unwrap();
    assert!(provider.generate(&request()).await.is_ok());
    assert_eq!(server.received_requests().await.unwrap().len(), 3);

    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_json(
            json!({"error": {"code": 400, "message": "Invalid JSON payload", "status": "INVALID_ARGUMENT"}}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    let provider = GeminiProvider::new(gemini_config(&server)).unwrap();
    let err = provider.generate(&request()).await.unwrap_err();
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("Invalid JSON payload"), "{err}");
}

#[tokio::test]
async fn safety_blocks_are_typed_errors_in_both_forms() {
    for (fixture_name, expected) in [
        ("gemini/blocked-safety.json", "prompt"),
        ("gemini/candidate-finish-safety.json", "candidate"),
    ] {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_body_json(fixture(fixture_name)))
            .expect(1)
            .mount(&server)
            .await;
        let provider = GeminiProvider::new(gemini_config(&server)).unwrap();
        let err = provider.generate(&request()).await.unwrap_err();
        assert!(!err.is_retryable(), "{fixture_name}");
        match (provider_error(&err), expected) {
            (ProviderError::PromptBlocked { reason }, "prompt") => assert_eq!(reason, "SAFETY"),
            (ProviderError::Stopped { reason }, "candidate") => assert_eq!(reason, "SAFETY"),
            (other, _) => panic!("{fixture_name}: unexpected {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_blocked_decision_escalates_to_a_human() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(fixture("gemini/blocked-safety.json")),
        )
        .mount(&server)
        .await;
    let provider = Arc::new(GeminiProvider::new(gemini_config(&server)).unwrap());
    let store = Arc::new(MemoryStore::new());
    let o = llm_ops_with(
        store.clone(),
        Arc::new(LlmDecisionPolicy::new(provider).with_audit(store)),
    );
    let incident = o
        .incident(&alert("blocked", AlertState::Firing, 0.95))
        .await;
    assert_eq!(incident.status, infraai_core::IncidentStatus::Escalated);
    assert!(incident
        .decision
        .unwrap()
        .reasoning
        .contains("prompt blocked"));
    assert!(o.actions.executed().is_empty());
    let audit = o
        .store
        .list_audit(&infraai_core::AuditQuery {
            incident_id: Some(incident.id),
            ..Default::default()
        })
        .await
        .unwrap();
    let failed = audit
        .iter()
        .find(|r| r.step == AuditStep::LlmCall && r.outcome.contains("call failed"))
        .expect("the failed call is audited");
    assert_eq!(
        failed.input["model"], "gemini-2.5-pro",
        "the configured model: {failed:?}"
    );
    assert_eq!(failed.input["prompt_version"], "decision/v2");
    assert!(failed.input["latency_ms"].is_u64());
}

#[tokio::test]
async fn the_decisions_audit_record_has_the_calls_tokens_latency_and_model() {
    // The recorded response, answering with a valid decision.
    let mut body = fixture("gemini/generateContent-json.json");
    body["candidates"][0]["content"]["parts"][0]["text"] = json!(restart_answer().to_string());
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(GEMINI_PATH))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(body)
                .set_delay(Duration::from_millis(50)),
        )
        .expect(1)
        .mount(&server)
        .await;
    let mut config = gemini_config(&server);
    config.timeout_secs = Some(30);
    let provider = Arc::new(GeminiProvider::new(config).unwrap());
    let store = Arc::new(MemoryStore::new());
    let o = llm_ops_with(
        store.clone(),
        Arc::new(LlmDecisionPolicy::new(provider).with_audit(store.clone())),
    );
    let incident = o
        .incident(&alert("audited", AlertState::Firing, 0.95))
        .await;
    assert_eq!(
        incident.decision.unwrap().recommended_action,
        infraai_core::Action::Restart {}
    );
    let audit = store
        .list_audit(&infraai_core::AuditQuery {
            incident_id: Some(incident.id),
            ..Default::default()
        })
        .await
        .unwrap();
    let calls: Vec<_> = audit
        .iter()
        .filter(|r| r.step == AuditStep::LlmCall)
        .collect();
    assert_eq!(calls.len(), 1, "{calls:?}");
    let input = &calls[0].input;
    // usageMetadata of the fixture: 412 prompt, 96 candidates + 120 thoughts.
    assert_eq!(input["prompt_tokens"], 412, "{input}");
    assert_eq!(input["completion_tokens"], 96 + 120, "{input}");
    assert_eq!(
        input["model"], "gemini-2.5-flash",
        "the fixture's modelVersion"
    );
    assert_eq!(input["provider"], "gemini");
    assert_eq!(input["prompt_version"], "decision/v2");
    let latency = input["latency_ms"].as_u64().expect("latency_ms");
    assert!(
        (50..30_000).contains(&latency),
        "the mock answers after 50 ms: {latency}"
    );
}

#[tokio::test]
async fn a_slow_provider_times_out_with_a_retryable_error() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(gemini_envelope(&restart_answer()))
                .set_delay(Duration::from_secs(5)),
        )
        .expect(1)
        .mount(&server)
        .await;
    let mut config = gemini_config(&server);
    config.timeout_secs = Some(1);
    config.retry = RetryConfig::none();
    let provider = GeminiProvider::new(config).unwrap();
    let started = std::time::Instant::now();
    let err = provider.generate(&request()).await.unwrap_err();
    let took = started.elapsed();
    assert!(err.is_retryable(), "{err}");
    assert!(
        matches!(provider_error(&err), ProviderError::Timeout),
        "{err:?}"
    );
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(5),
        "gave up after {took:?}"
    );
    assert!(!err.to_string().contains(KEY));
}

#[tokio::test]
async fn no_candidates_is_a_typed_error() {
    for body in [
        json!({"candidates": [], "usageMetadata": {"promptTokenCount": 12, "totalTokenCount": 12}}),
        json!({"usageMetadata": {"promptTokenCount": 12, "totalTokenCount": 12}}),
        json!({"candidates": [{"content": {"parts": [{"text": "  "}], "role": "model"},
                               "finishReason": "STOP", "index": 0}]}),
    ] {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_body_json(body.clone()))
            .expect(1)
            .mount(&server)
            .await;
        let provider = GeminiProvider::new(gemini_config(&server)).unwrap();
        let err = provider.generate(&request()).await.unwrap_err();
        assert!(
            matches!(provider_error(&err), ProviderError::Empty),
            "{body}: {err:?}"
        );
        assert!(!err.is_retryable(), "{body}");
    }
}

#[tokio::test]
async fn text_that_is_not_json_is_repaired() {
    let server = MockServer::start().await;
    script(
        &server,
        GEMINI_PATH,
        vec![
            gemini_envelope(&json!("Sure! Restart it: {\"type\": restart")),
            gemini_envelope(&restart_answer()),
        ],
    )
    .await;
    let provider = Arc::new(GeminiProvider::new(gemini_config(&server)).unwrap());
    let store = Arc::new(MemoryStore::new());
    let o = llm_ops_with(store, Arc::new(LlmDecisionPolicy::new(provider)));
    let incident = o.incident(&alert("repair", AlertState::Firing, 0.95)).await;
    assert_eq!(
        incident.decision.unwrap().recommended_action,
        infraai_core::Action::Restart {}
    );
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 2);
    let repair: Value = serde_json::from_slice(&requests[1].body).unwrap();
    let text = repair["contents"][0]["parts"][0]["text"].as_str().unwrap();
    assert!(text.contains("<previous_answer>") && text.contains("Sure! Restart it"));
    assert!(text.contains("expected type"), "{text}");
}

#[tokio::test]
async fn the_core_llm_scenarios_pass_with_gemini() {
    scenarios::run_all(&GeminiScript::default()).await;
}

#[tokio::test]
async fn a_second_identical_alert_within_the_ttl_makes_no_second_request() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(GEMINI_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_json(gemini_envelope(&restart_answer())))
        .mount(&server)
        .await;
    let provider = Arc::new(GeminiProvider::new(gemini_config(&server)).unwrap());
    let store = Arc::new(MemoryStore::new());
    let policy = LlmDecisionPolicy::new(provider)
        .with_audit(store.clone())
        .with_cache_ttl(Duration::from_secs(600));
    let o = llm_ops_with(store, Arc::new(policy));
    // Two incidents (different fingerprints) with identical context.
    for fp in ["ttl-a", "ttl-b"] {
        let handled = o
            .agent
            .handle_alert(&alert(fp, AlertState::Firing, 0.95))
            .await
            .unwrap();
        assert!(handled.incident.unwrap().decision.is_some());
    }
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_api_key_never_appears_in_logs_or_errors() {
    let logs = captured_logs();
    let server = MockServer::start().await;
    // A server that echoes the key back in its error message.
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503).set_body_json(
            json!({"error": {"code": 503, "message": format!("overloaded for key {KEY}")}}),
        ))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(401).set_body_json(
            json!({"error": {"code": 401, "message": format!("API key not valid: {KEY}")}}),
        ))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    script(
        &server,
        GEMINI_PATH,
        vec![gemini_envelope(&json!("not json"))],
    )
    .await;
    script(
        &server,
        GEMINI_PATH,
        vec![gemini_envelope(&restart_answer())],
    )
    .await;
    let provider = Arc::new(GeminiProvider::new(gemini_config(&server)).unwrap());

    let err = provider.generate(&request()).await.unwrap_err();
    assert!(matches!(err, Error::Unauthenticated { .. }), "{err:?}");
    for text in [err.to_string(), format!("{err:?}")] {
        assert!(!text.contains(KEY), "key in error: {text}");
    }
    let store = Arc::new(MemoryStore::new());
    let o = llm_ops_with(
        store.clone(),
        Arc::new(LlmDecisionPolicy::new(provider.clone()).with_audit(store.clone())),
    );
    o.agent
        .handle_alert(&alert("keys", AlertState::Firing, 0.95))
        .await
        .unwrap();
    let config = gemini_config(&server);
    assert!(!format!("{config:?}").contains(KEY));

    let captured = logs.text();
    assert!(
        captured.contains("retrying") && captured.contains("LLM call"),
        "the logs were captured: {captured}"
    );
    assert!(!captured.contains(KEY), "key in logs:\n{captured}");
    let audit = store
        .list_audit(&infraai_core::AuditQuery::default())
        .await
        .unwrap();
    assert!(!serde_json::to_string(&audit).unwrap().contains(KEY));
}
