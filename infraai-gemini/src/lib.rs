//! # infraai-gemini
//!
//! [`LlmProvider`](infraai_core::LlmProvider)s for infraai's LLM planner,
//! Terraform fixer and decision policy (`infraai_core::llm`):
//!
//! * [`GeminiProvider`]: Gemini `models/{model}:generateContent` with
//!   `responseMimeType: application/json` and a `responseJsonSchema`; works
//!   against the public Gemini API, Vertex AI (express mode) or a proxy
//!   through [`GeminiConfig::base_url`].
//! * [`OpenAiCompatProvider`]: OpenAI-compatible chat completions with
//!   `response_format: json_schema` (OpenAI, a local Ollama or vLLM, Groq).
//!
//! Both live in this crate because they share everything but the wire
//! format: the HTTP client, the retry policy (429/5xx retried, the server's
//! `RetryInfo`/`Retry-After` delay honored, jittered exponential backoff,
//! a cap), the error kinds and the schema conversion. The key travels in a
//! header only (`x-goog-api-key` or `Authorization`), is held in a
//! [`Secret`](infraai_core::Secret), marked sensitive, and redacted from any
//! text a server echoes back; it is never in a URL, a log line or an error.
//!
//! ```no_run
//! use infraai_core::llm::LlmDecisionPolicy;
//! use infraai_core::Secret;
//! use infraai_gemini::{GeminiConfig, GeminiProvider};
//! use std::sync::Arc;
//!
//! # fn main() -> infraai_core::Result<()> {
//! let mut config = GeminiConfig::new(Secret::new("your-api-key"));
//! config.model = "gemini-2.5-flash".into();
//! let provider = Arc::new(GeminiProvider::new(config)?);
//! let policy = LlmDecisionPolicy::new(provider);
//! # let _ = policy; Ok(()) }
//! ```

#![deny(missing_docs)]

mod client;
mod config;
mod error;
mod gemini;
mod openai;
mod schema;
mod wire;

pub use config::{
    GeminiConfig, OpenAiCompatConfig, RetryConfig, GEMINI_BASE_URL, GEMINI_DEFAULT_MODEL,
    OPENAI_BASE_URL,
};
pub use error::ProviderError;
pub use gemini::GeminiProvider;
pub use openai::OpenAiCompatProvider;
