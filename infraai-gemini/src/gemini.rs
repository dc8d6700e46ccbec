//! [`GeminiProvider`]: [`LlmProvider`] over Gemini `generateContent`.

use crate::client::HttpClient;
use crate::config::GeminiConfig;
use crate::error::ProviderError;
use crate::schema;
use crate::wire::{Content, GenerateContentRequest, GenerateContentResponse, GenerationConfig};
use async_trait::async_trait;
use infraai_core::{LlmProvider, LlmRequest, LlmResponse, Result, TokenUsage};
use reqwest::header::HeaderName;
use serde_json::Value;
use std::time::Duration;
use tracing::debug;

const OP: &str = "generateContent";

/// Structured generation with Gemini: the request carries the system
/// instruction, the prompt, `responseMimeType: application/json` and the
/// schema (converted to the subset Gemini accepts) as `responseJsonSchema`.
///
/// Answers that are not JSON text come back as a JSON string holding the
/// text, so the caller's schema validation rejects them and can ask for a
/// repair. Blocked prompts, non-`STOP` finishes (`SAFETY`, `MAX_TOKENS`, …)
/// and empty answers are typed errors ([`ProviderError`]).
pub struct GeminiProvider {
    client: HttpClient,
    config: GeminiConfig,
    url: String,
}

impl GeminiProvider {
    /// A provider for `config`.
    pub fn new(config: GeminiConfig) -> Result<Self> {
        let model = config.model.clone();
        Self::build(config).map_err(|e| e.into_core("gemini", "new", &model))
    }

    fn build(config: GeminiConfig) -> std::result::Result<Self, ProviderError> {
        if config.api_key.is_empty() {
            return Err(ProviderError::Config {
                detail: "api_key is empty".into(),
            });
        }
        let valid_model = !config.model.is_empty()
            && config
                .model
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
        if !valid_model {
            return Err(ProviderError::Config {
                detail: format!("model {:?} is not a model name", config.model),
            });
        }
        let url = format!(
            "{}/models/{}:generateContent",
            config.base_url.trim_end_matches('/'),
            config.model
        );
        let client = HttpClient::new(
            "gemini",
            config.timeout_secs.map(Duration::from_secs),
            config.retry.clone(),
            Some((
                HeaderName::from_static("x-goog-api-key"),
                config.api_key.clone(),
            )),
        )?;
        Ok(Self {
            client,
            config,
            url,
        })
    }

    /// The configured model.
    pub fn model(&self) -> &str {
        &self.config.model
    }

    async fn call(&self, request: &LlmRequest) -> std::result::Result<LlmResponse, ProviderError> {
        let body = GenerateContentRequest {
            system_instruction: Content::text(None, &request.system),
            contents: vec![Content::text(Some("user"), &request.prompt)],
            generation_config: GenerationConfig {
                response_mime_type: "application/json",
                response_json_schema: schema::simplified(&request.schema)?,
                temperature: request.temperature,
                max_output_tokens: self.config.max_output_tokens,
                candidate_count: 1,
            },
        };
        let response: GenerateContentResponse = self.client.post(&self.url, &body).await?;
        let usage = response.usage_metadata.unwrap_or_default();
        let usage = TokenUsage {
            prompt_tokens: usage.prompt_token_count,
            completion_tokens: usage.candidates_token_count + usage.thoughts_token_count,
        };
        let Some(candidate) = response.candidates.into_iter().next() else {
            return Err(
                match response.prompt_feedback.and_then(|f| f.block_reason) {
                    Some(reason) => ProviderError::PromptBlocked { reason },
                    None => ProviderError::Empty,
                },
            );
        };
        if let Some(reason) = candidate.finish_reason.filter(|r| r != "STOP") {
            return Err(ProviderError::Stopped { reason });
        }
        let text: String = candidate
            .content
            .map(|c| c.parts)
            .unwrap_or_default()
            .into_iter()
            .filter(|p| !p.thought)
            .filter_map(|p| p.text)
            .collect();
        if text.trim().is_empty() {
            return Err(ProviderError::Empty);
        }
        let value = serde_json::from_str(&text).unwrap_or_else(|e| {
            debug!(error = %e, "Gemini answer is not JSON; returning it as a string for repair");
            Value::String(text)
        });
        Ok(LlmResponse {
            value,
            usage,
            model: response
                .model_version
                .unwrap_or_else(|| self.config.model.clone()),
        })
    }
}

#[async_trait]
impl LlmProvider for GeminiProvider {
    fn name(&self) -> &str {
        "gemini"
    }

    fn model(&self) -> Option<String> {
        Some(self.config.model.clone())
    }

    async fn generate(&self, request: &LlmRequest) -> Result<LlmResponse> {
        self.call(request)
            .await
            .map_err(|e| e.into_core("gemini", OP, &self.config.model))
    }
}
