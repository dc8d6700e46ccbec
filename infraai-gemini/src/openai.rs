//! [`OpenAiCompatProvider`]: [`LlmProvider`] over OpenAI-compatible chat
//! completions (OpenAI, Ollama, vLLM, Groq, …).

use crate::client::HttpClient;
use crate::config::OpenAiCompatConfig;
use crate::error::ProviderError;
use crate::schema;
use crate::wire::{ChatCompletion, ChatMessage, ChatRequest, JsonSchemaFormat, ResponseFormat};
use async_trait::async_trait;
use infraai_core::{LlmProvider, LlmRequest, LlmResponse, Result, Secret, TokenUsage};
use reqwest::header::AUTHORIZATION;
use serde_json::Value;
use std::time::Duration;
use tracing::debug;

const OP: &str = "chat.completions";

/// Structured generation through `POST {base_url}/chat/completions` with
/// `response_format: {type: json_schema, json_schema: {strict: true, …}}`.
/// The schema is made strict-mode compatible (closed objects, every property
/// required, optional ones nullable) and the added `null`s are removed from
/// the answer again. A refusal, a `length` or `content_filter` finish and an
/// empty answer are typed errors ([`ProviderError`]); the same retry rules as
/// Gemini apply (429/5xx, honoring `Retry-After`).
pub struct OpenAiCompatProvider {
    client: HttpClient,
    config: OpenAiCompatConfig,
    url: String,
}

impl OpenAiCompatProvider {
    /// A provider for `config`.
    pub fn new(config: OpenAiCompatConfig) -> Result<Self> {
        let model = config.model.clone();
        let auth = config
            .api_key
            .as_ref()
            .filter(|k| !k.is_empty())
            .map(|k| (AUTHORIZATION, Secret::new(format!("Bearer {}", k.expose()))));
        let client = HttpClient::new(
            "openai",
            config.timeout_secs.map(Duration::from_secs),
            config.retry.clone(),
            auth,
        )
        .map_err(|e| e.into_core("openai", "new", &model))?;
        let url = format!("{}/chat/completions", config.base_url.trim_end_matches('/'));
        Ok(Self {
            client,
            config,
            url,
        })
    }

    async fn call(&self, request: &LlmRequest) -> std::result::Result<LlmResponse, ProviderError> {
        let simplified = schema::simplified(&request.schema)?;
        let name: String = request
            .schema_name
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
            .take(64)
            .collect();
        let body = ChatRequest {
            model: &self.config.model,
            messages: vec![
                ChatMessage {
                    role: "system",
                    content: &request.system,
                },
                ChatMessage {
                    role: "user",
                    content: &request.prompt,
                },
            ],
            response_format: ResponseFormat {
                kind: "json_schema",
                json_schema: JsonSchemaFormat {
                    name: if name.is_empty() { "answer" } else { &name },
                    strict: true,
                    schema: schema::for_openai_strict(&request.schema)?,
                },
            },
            temperature: request.temperature,
            max_completion_tokens: self.config.max_completion_tokens,
        };
        let completion: ChatCompletion = self.client.post(&self.url, &body).await?;
        let usage = completion.usage.unwrap_or_default();
        let usage = TokenUsage {
            prompt_tokens: usage.prompt_tokens,
            completion_tokens: usage.completion_tokens,
        };
        let choice = completion
            .choices
            .into_iter()
            .next()
            .ok_or(ProviderError::Empty)?;
        if let Some(refusal) = choice.message.refusal.filter(|r| !r.is_empty()) {
            return Err(ProviderError::Refused { refusal });
        }
        if let Some(reason) = choice.finish_reason.filter(|r| r != "stop") {
            return Err(ProviderError::Stopped { reason });
        }
        let text = choice
            .message
            .content
            .filter(|c| !c.trim().is_empty())
            .ok_or(ProviderError::Empty)?;
        let value = match serde_json::from_str::<Value>(&text) {
            Ok(mut v) => {
                schema::strip_added_nulls(&simplified, &mut v);
                v
            }
            Err(e) => {
                debug!(error = %e, "answer is not JSON; returning it as a string for repair");
                Value::String(text)
            }
        };
        Ok(LlmResponse {
            value,
            usage,
            model: completion
                .model
                .unwrap_or_else(|| self.config.model.clone()),
        })
    }
}

#[async_trait]
impl LlmProvider for OpenAiCompatProvider {
    fn name(&self) -> &str {
        "openai"
    }

    fn model(&self) -> Option<String> {
        Some(self.config.model.clone())
    }

    async fn generate(&self, request: &LlmRequest) -> Result<LlmResponse> {
        self.call(request)
            .await
            .map_err(|e| e.into_core("openai", OP, &self.config.model))
    }
}
