//! OpenAiCompatProvider against a mock chat-completions server (payload
//! shapes from tests/fixtures/openai-compat), alone and behind the core
//! LLM components.

mod common;

use common::*;
use infraai_core::testing::llm as scenarios;
use infraai_core::{Error, LlmProvider, LlmRequest, OpsDecision};
use infraai_gemini::*;
use serde_json::{json, Value};
use std::time::Duration;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const ROUTE: &str = "/v1/chat/completions";

fn request() -> LlmRequest {
    LlmRequest {
        system: "You are an SRE agent.".into(),
        prompt: "Decide.".into(),
        schema_name: "ops_decision".into(),
        schema: serde_json::to_value(schemars::schema_for!(OpsDecision)).unwrap(),
        temperature: Some(0.2),
    }
}

fn provider_error(e: &Error) -> &ProviderError {
    match e {
        Error::Backend { source, .. } => source.downcast_ref::<ProviderError>().unwrap(),
        other => panic!("expected a backend error, got {other:?}"),
    }
}

fn every_object_is_closed(v: &Value) {
    match v {
        Value::Object(o) => {
            if let Some(Value::Object(props)) = o.get("properties") {
                assert_eq!(o.get("additionalProperties"), Some(&json!(false)), "{o:?}");
                assert_eq!(
                    o["required"].as_array().map(Vec::len),
                    Some(props.len()),
                    "{o:?}"
                );
            }
            o.values().for_each(every_object_is_closed);
        }
        Value::Array(a) => a.iter().for_each(every_object_is_closed),
        _ => {}
    }
}

#[tokio::test]
async fn structured_success_uses_a_strict_json_schema_and_bearer_auth() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(ROUTE))
        .and(header("authorization", format!("Bearer {KEY}").as_str()))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(fixture("openai-compat/chat-completion-json.json")),
        )
        .expect(1)
        .mount(&server)
        .await;
    let provider = OpenAiCompatProvider::new(openai_config(&server)).unwrap();
    let response = provider.generate(&request()).await.unwrap();
    assert_eq!(response.value["action"], "set_machine_type");
    assert_eq!(response.usage.prompt_tokens, 431);
    assert_eq!(response.usage.completion_tokens, 88);
    assert_eq!(response.model, "gpt-4o-mini-2024-07-18");

    let sent = &server.received_requests().await.unwrap()[0];
    let body: Value = serde_json::from_slice(&sent.body).unwrap();
    assert_eq!(body["model"], "gpt-4o-mini");
    assert_eq!(body["messages"][0]["role"], "system");
    assert_eq!(body["messages"][1]["content"], "Decide.");
    let format = &body["response_format"];
    assert_eq!(format["type"], "json_schema");
    assert_eq!(format["json_schema"]["name"], "ops_decision");
    assert_eq!(format["json_schema"]["strict"], true);
    every_object_is_closed(&format["json_schema"]["schema"]);
}

#[tokio::test]
async fn a_refusal_is_a_typed_error() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(fixture("openai-compat/chat-completion-refusal.json")),
        )
        .expect(1)
        .mount(&server)
        .await;
    let provider = OpenAiCompatProvider::new(openai_config(&server)).unwrap();
    let err = provider.generate(&request()).await.unwrap_err();
    assert!(!err.is_retryable());
    assert!(
        matches!(provider_error(&err), ProviderError::Refused { refusal } if refusal.contains("can't help")),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_truncated_answer_is_a_typed_error() {
    let server = MockServer::start().await;
    let mut body = fixture("openai-compat/chat-completion-json.json");
    body["choices"][0]["finish_reason"] = json!("length");
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
        .mount(&server)
        .await;
    let provider = OpenAiCompatProvider::new(openai_config(&server)).unwrap();
    let err = provider.generate(&request()).await.unwrap_err();
    assert!(
        matches!(provider_error(&err), ProviderError::Stopped { reason } if reason == "length")
    );
}

#[tokio::test(start_paused = true)]
async fn rate_limits_honor_retry_after() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "2")
                .set_body_json(fixture("openai-compat/error-429.json")),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    script(
        &server,
        ROUTE,
        vec![fixture("openai-compat/chat-completion-json.json")],
    )
    .await;
    let provider = OpenAiCompatProvider::new(openai_config(&server)).unwrap();
    let started = tokio::time::Instant::now();
    provider.generate(&request()).await.unwrap();
    assert!(started.elapsed() >= Duration::from_secs(2));
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
}

#[tokio::test]
async fn local_servers_without_a_key_get_no_auth_header() {
    let server = MockServer::start().await;
    script(
        &server,
        ROUTE,
        vec![fixture("openai-compat/chat-completion-json.json")],
    )
    .await;
    let mut config = openai_config(&server);
    config.api_key = None;
    config.model = "llama3.1".into();
    let provider = OpenAiCompatProvider::new(config).unwrap();
    provider.generate(&request()).await.unwrap();
    let sent = &server.received_requests().await.unwrap()[0];
    assert!(sent.headers.get("authorization").is_none());
}

#[tokio::test]
async fn the_core_llm_scenarios_pass_with_the_openai_compatible_provider() {
    scenarios::run_all(&OpenAiScript::default()).await;
}

#[tokio::test]
async fn the_api_key_never_appears_in_logs() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(401).set_body_json(
            json!({"error": {"message": format!("Incorrect API key provided: {KEY}"), "type": "invalid_request_error"}}),
        ))
        .mount(&server)
        .await;
    let provider = OpenAiCompatProvider::new(openai_config(&server)).unwrap();
    let err = provider.generate(&request()).await.unwrap_err();
    assert!(matches!(err, Error::Unauthenticated { .. }));
    assert!(!format!("{err} {err:?}").contains(KEY));
    let logs = captured_logs().text();
    assert!(!logs.is_empty());
    assert!(!logs.contains(KEY), "key in logs:\n{logs}");
}
