//! Configuration of the providers (plain structs; the embedding program
//! reads environment variables or flags, this crate never does).

use infraai_core::Secret;
use serde::Deserialize;
use std::time::Duration;

/// The Gemini API's public endpoint (API version included).
pub const GEMINI_BASE_URL: &str = "https://generativelanguage.googleapis.com/v1beta";
/// The default Gemini model.
pub const GEMINI_DEFAULT_MODEL: &str = "gemini-2.5-pro";
/// OpenAI's endpoint; Ollama is `http://localhost:11434/v1`, Groq
/// `https://api.groq.com/openai/v1`, vLLM `http://HOST:8000/v1`.
pub const OPENAI_BASE_URL: &str = "https://api.openai.com/v1";

/// How transient failures (HTTP 429, 500, 502, 503, 504, timeouts, connection
/// errors) are retried.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryConfig {
    /// Retries after the first attempt (default 3; 0 disables retrying).
    pub max_retries: u32,
    /// First backoff when the server gives no delay, in milliseconds
    /// (default 500); doubles each retry, jittered between half and all of it.
    pub initial_backoff_ms: u64,
    /// Longest single wait, in seconds (default 60). A server asking for a
    /// longer wait (`RetryInfo`, `Retry-After`) makes the call fail at once
    /// with a retryable error instead of blocking the caller.
    pub max_delay_secs: u64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_retries: 3,
            initial_backoff_ms: 500,
            max_delay_secs: 60,
        }
    }
}

impl RetryConfig {
    /// No retries at all.
    pub fn none() -> Self {
        Self {
            max_retries: 0,
            ..Self::default()
        }
    }

    pub(crate) fn max_delay(&self) -> Duration {
        Duration::from_secs(self.max_delay_secs)
    }
}

fn default_gemini_model() -> String {
    GEMINI_DEFAULT_MODEL.into()
}
fn default_gemini_url() -> String {
    GEMINI_BASE_URL.into()
}
fn default_openai_url() -> String {
    OPENAI_BASE_URL.into()
}
fn default_timeout() -> Option<u64> {
    Some(120)
}
fn default_max_output_tokens() -> Option<u32> {
    Some(32_768)
}

/// Settings of [`GeminiProvider`](crate::GeminiProvider).
///
/// ```
/// use infraai_gemini::GeminiConfig;
/// let config: GeminiConfig = serde_json::from_str(r#"{"api_key": "k", "model": "gemini-2.5-flash"}"#).unwrap();
/// assert_eq!(config.base_url, infraai_gemini::GEMINI_BASE_URL);
/// assert_eq!(format!("{:?}", config.api_key), "***");
/// ```
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeminiConfig {
    /// API key, sent in the `x-goog-api-key` header only.
    pub api_key: Secret,
    /// Model name (default `gemini-2.5-pro`).
    #[serde(default = "default_gemini_model")]
    pub model: String,
    /// Base URL up to and excluding `/models/…` (default the public Gemini
    /// API, `v1beta`). Point it at a proxy, or at
    /// `https://aiplatform.googleapis.com/v1/publishers/google` for Vertex AI
    /// in express mode (API key). Vertex AI with OAuth service-account
    /// tokens is not supported yet.
    #[serde(default = "default_gemini_url")]
    pub base_url: String,
    /// Per-attempt timeout in seconds (default 120; `null` for none).
    #[serde(default = "default_timeout")]
    pub timeout_secs: Option<u64>,
    /// `maxOutputTokens` (default 32768; `null` for the model's default). On
    /// thinking models (2.5) the thinking tokens count against it; an answer
    /// cut short fails with [`ProviderError::Stopped`](crate::ProviderError::Stopped) (`MAX_TOKENS`).
    #[serde(default = "default_max_output_tokens")]
    pub max_output_tokens: Option<u32>,
    /// Retries.
    #[serde(default)]
    pub retry: RetryConfig,
}

impl GeminiConfig {
    /// The defaults with this key.
    pub fn new(api_key: Secret) -> Self {
        Self {
            api_key,
            model: default_gemini_model(),
            base_url: default_gemini_url(),
            timeout_secs: default_timeout(),
            max_output_tokens: default_max_output_tokens(),
            retry: RetryConfig::default(),
        }
    }
}

/// Settings of [`OpenAiCompatProvider`](crate::OpenAiCompatProvider).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenAiCompatConfig {
    /// Bearer token; `None` for servers without auth (a local Ollama).
    pub api_key: Option<Secret>,
    /// Model name, e.g. `gpt-4o-mini`, `llama3.1`, `llama-3.3-70b-versatile`.
    pub model: String,
    /// Base URL up to and excluding `/chat/completions` (default OpenAI's).
    #[serde(default = "default_openai_url")]
    pub base_url: String,
    /// Per-attempt timeout in seconds (default 120; `null` for none).
    #[serde(default = "default_timeout")]
    pub timeout_secs: Option<u64>,
    /// `max_completion_tokens` (default none: the server's default).
    pub max_completion_tokens: Option<u32>,
    /// Retries.
    #[serde(default)]
    pub retry: RetryConfig,
}

impl OpenAiCompatConfig {
    /// The defaults for `model` on OpenAI's endpoint.
    pub fn new(api_key: Option<Secret>, model: impl Into<String>) -> Self {
        Self {
            api_key,
            model: model.into(),
            base_url: default_openai_url(),
            timeout_secs: default_timeout(),
            max_completion_tokens: None,
            retry: RetryConfig::default(),
        }
    }
}
