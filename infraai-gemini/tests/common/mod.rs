//! Shared helpers: fixtures, scripted mock servers, captured logs.

#![allow(dead_code)]

use async_trait::async_trait;
use infraai_core::testing::llm::ScriptedLlm;
pub use infraai_core::testing::CapturedLogs;
use infraai_core::{LlmProvider, Secret};
use infraai_gemini::*;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

pub const KEY: &str = "AIzaSy-TEST-KEY-never-log-me-3f2a";
pub const GEMINI_PATH: &str = "/v1beta/models/gemini-2.5-pro:generateContent";

pub fn fixture(rel: &str) -> Value {
    let p = format!("{}/../tests/fixtures/{rel}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("fixture {p}: {e}"));
    serde_json::from_str(&text).expect("fixture is JSON")
}

pub fn gemini_config(server: &MockServer) -> GeminiConfig {
    captured_logs();
    let mut c = GeminiConfig::new(Secret::new(KEY));
    c.base_url = format!("{}/v1beta", server.uri());
    // Paused-time tests: a request timeout would fire while the mock answers.
    c.timeout_secs = None;
    c
}

pub fn openai_config(server: &MockServer) -> OpenAiCompatConfig {
    captured_logs();
    let mut c = OpenAiCompatConfig::new(Some(Secret::new(KEY)), "gpt-4o-mini");
    c.base_url = format!("{}/v1", server.uri());
    c.timeout_secs = None;
    c
}

/// A Gemini response whose text is `answer` (a JSON string value is sent as
/// raw text, to script answers that are not JSON at all).
pub fn gemini_envelope(answer: &Value) -> Value {
    let text = match answer {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    json!({
        "candidates": [{"content": {"parts": [{"text": text}], "role": "model"},
                        "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 300, "candidatesTokenCount": 60, "totalTokenCount": 360},
        "modelVersion": "gemini-2.5-pro"
    })
}

pub fn openai_envelope(answer: &Value) -> Value {
    let text = match answer {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    json!({
        "id": "chatcmpl-test", "object": "chat.completion", "model": "gpt-4o-mini-2024-07-18",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text, "refusal": null},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 300, "completion_tokens": 60, "total_tokens": 360}
    })
}

/// Mounts one single-use 200 answer per value, served in order.
pub async fn script(server: &MockServer, route: &str, bodies: Vec<Value>) {
    for body in bodies {
        Mock::given(method("POST"))
            .and(path(route))
            .respond_with(ResponseTemplate::new(200).set_body_json(body))
            .up_to_n_times(1)
            .mount(server)
            .await;
    }
}

/// [`ScriptedLlm`] over a Gemini mock server per provider.
#[derive(Default)]
pub struct GeminiScript {
    servers: Mutex<Vec<MockServer>>,
}

#[async_trait]
impl ScriptedLlm for GeminiScript {
    async fn provider(&self, answers: Vec<Value>) -> Arc<dyn LlmProvider> {
        let server = MockServer::start().await;
        script(
            &server,
            GEMINI_PATH,
            answers.iter().map(gemini_envelope).collect(),
        )
        .await;
        let provider = GeminiProvider::new(gemini_config(&server)).expect("provider");
        self.servers.lock().unwrap().push(server);
        Arc::new(provider)
    }
}

/// [`ScriptedLlm`] over an OpenAI-compatible mock server per provider.
#[derive(Default)]
pub struct OpenAiScript {
    servers: Mutex<Vec<MockServer>>,
}

#[async_trait]
impl ScriptedLlm for OpenAiScript {
    async fn provider(&self, answers: Vec<Value>) -> Arc<dyn LlmProvider> {
        let server = MockServer::start().await;
        script(
            &server,
            "/v1/chat/completions",
            answers.iter().map(openai_envelope).collect(),
        )
        .await;
        let provider = OpenAiCompatProvider::new(openai_config(&server)).expect("provider");
        self.servers.lock().unwrap().push(server);
        Arc::new(provider)
    }
}

/// Everything `tracing` prints in this test binary, at every level, from
/// every test (all of them use [`KEY`]). A global subscriber: thread-local
/// ones miss events when tests run in parallel (callsite interest caching).
pub fn captured_logs() -> &'static CapturedLogs {
    static LOGS: std::sync::OnceLock<CapturedLogs> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = CapturedLogs::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer({
                let logs = logs.clone();
                move || logs.clone()
            })
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("the only global subscriber");
        logs
    })
}
