//! [`ReplayProvider`]: serves recorded LLM answers, for deterministic tests
//! and offline demos.

use crate::traits::{LlmProvider, LlmRequest, LlmResponse, TokenUsage};
use crate::{Error, Result};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Mutex;

/// One recorded exchange.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecordedExchange {
    /// Serve this only for requests with this schema name (`ops_decision`,
    /// `infra_plan`, `terraform_fix`); any schema when absent.
    #[serde(default)]
    pub schema_name: Option<String>,
    /// Serve this only when the prompt contains this text.
    #[serde(default)]
    pub prompt_contains: Option<String>,
    /// The JSON answer.
    pub response: serde_json::Value,
    /// Tokens the recorded call spent.
    #[serde(default)]
    pub usage: TokenUsage,
    /// The model that answered (default `replay`).
    #[serde(default)]
    pub model: Option<String>,
}

/// Serves recorded answers: each request gets the first unused exchange that
/// matches its schema name and prompt. When none is left it fails with
/// [`Error::NotFound`], so a test notices an unexpected extra call.
///
/// ```
/// use infraai_core::llm::{RecordedExchange, ReplayProvider};
/// let provider = ReplayProvider::new(vec![RecordedExchange {
///     schema_name: Some("ops_decision".into()),
///     prompt_contains: None,
///     response: serde_json::json!({"severity": "warning"}),
///     usage: Default::default(),
///     model: None,
/// }]);
/// assert_eq!(provider.remaining(), 1);
/// ```
pub struct ReplayProvider {
    exchanges: Mutex<Vec<Option<RecordedExchange>>>,
    requests: Mutex<Vec<LlmRequest>>,
}

impl ReplayProvider {
    /// Serves these exchanges.
    pub fn new(exchanges: Vec<RecordedExchange>) -> Self {
        Self {
            exchanges: Mutex::new(exchanges.into_iter().map(Some).collect()),
            requests: Mutex::default(),
        }
    }

    /// Serves these answers in order, for any request.
    pub fn sequence(answers: Vec<serde_json::Value>) -> Self {
        Self::new(
            answers
                .into_iter()
                .map(|response| RecordedExchange {
                    schema_name: None,
                    prompt_contains: None,
                    response,
                    usage: TokenUsage::default(),
                    model: None,
                })
                .collect(),
        )
    }

    /// Reads a JSON array of [`RecordedExchange`]s.
    pub fn from_json(text: &str) -> Result<Self> {
        serde_json::from_str(text)
            .map(Self::new)
            .map_err(|e| Error::invalid("recorded LLM exchanges", e.to_string()))
    }

    /// Reads a JSON file of recorded exchanges.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::invalid(
                format!("recorded LLM exchanges {}", path.display()),
                e.to_string(),
            )
        })?;
        Self::from_json(&text)
    }

    /// Exchanges not served yet.
    pub fn remaining(&self) -> usize {
        self.exchanges
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|e| e.is_some())
            .count()
    }

    /// Requests received so far.
    pub fn requests(&self) -> Vec<LlmRequest> {
        self.requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

#[async_trait]
impl LlmProvider for ReplayProvider {
    fn name(&self) -> &str {
        "replay"
    }

    async fn generate(&self, request: &LlmRequest) -> Result<LlmResponse> {
        self.requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(request.clone());
        let mut exchanges = self.exchanges.lock().unwrap_or_else(|p| p.into_inner());
        let slot = exchanges.iter_mut().find(|e| {
            e.as_ref().is_some_and(|e| {
                e.schema_name
                    .as_ref()
                    .is_none_or(|s| *s == request.schema_name)
                    && e.prompt_contains
                        .as_ref()
                        .is_none_or(|p| request.prompt.contains(p.as_str()))
            })
        });
        let exchange = slot.and_then(Option::take).ok_or_else(|| {
            Error::not_found(format!(
                "recorded LLM exchange for schema {}",
                request.schema_name
            ))
        })?;
        Ok(LlmResponse {
            value: exchange.response,
            usage: exchange.usage,
            model: exchange.model.unwrap_or_else(|| "replay".into()),
        })
    }
}
