//! The policies the suite evaluates: the rule policy, the LLM policy on
//! recorded answers (replay), or the LLM policy on a live provider.

use crate::scenario::Scenario;
use crate::{EvalError, Result};
use async_trait::async_trait;
use infraai_core::llm::{LlmDecisionPolicy, RecordedExchange, ReplayProvider};
use infraai_core::rules::RulePolicy;
use infraai_core::{DecisionPolicy, LlmProvider, LlmRequest, LlmResponse};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Which policy decides.
#[derive(Clone)]
pub enum PolicyChoice {
    /// The offline rule policy.
    Rules,
    /// The LLM policy (its prompts and schema) on the answers recorded in
    /// `<dir>/<scenario id>.json`.
    Replay {
        /// Where the recorded answers are.
        dir: PathBuf,
    },
    /// The LLM policy on a live provider.
    Live(Arc<dyn LlmProvider>),
}

impl PolicyChoice {
    /// Its name in reports: `rules`, `replay`, or `live:<provider>`.
    pub fn name(&self) -> String {
        match self {
            PolicyChoice::Rules => "rules".into(),
            PolicyChoice::Replay { .. } => "replay".into(),
            PolicyChoice::Live(p) => {
                format!("live:{}", p.model().unwrap_or_else(|| p.name().into()))
            }
        }
    }

    /// A fresh policy for `scenario`, with the counter of its LLM calls.
    pub(crate) fn build(&self, scenario: &Scenario) -> Result<Built> {
        let provider: Arc<dyn LlmProvider> = match self {
            PolicyChoice::Rules => return Ok((Arc::new(RulePolicy), None)),
            PolicyChoice::Replay { dir } => {
                let path = dir.join(format!("{}.json", scenario.id));
                let text = std::fs::read_to_string(&path).map_err(|e| EvalError::io(&path, e))?;
                let exchanges: Vec<RecordedExchange> =
                    serde_json::from_str(&text).map_err(|e| EvalError::Scenario {
                        path: path.display().to_string(),
                        detail: e.to_string(),
                    })?;
                Arc::new(ReplayProvider::new(exchanges))
            }
            PolicyChoice::Live(p) => p.clone(),
        };
        let counted = Arc::new(Counted::new(provider));
        let policy =
            LlmDecisionPolicy::new(counted.clone()).with_cache_ttl(std::time::Duration::ZERO);
        Ok((Arc::new(policy), Some(counted)))
    }
}

/// A policy for one scenario, and the counter of its LLM calls (none for
/// the rules).
pub(crate) type Built = (Arc<dyn DecisionPolicy>, Option<Arc<Counted>>);

/// A provider that counts the calls and tokens of the one it wraps.
pub struct Counted {
    inner: Arc<dyn LlmProvider>,
    calls: AtomicU64,
    tokens: AtomicU64,
}

impl Counted {
    fn new(inner: Arc<dyn LlmProvider>) -> Self {
        Self {
            inner,
            calls: AtomicU64::new(0),
            tokens: AtomicU64::new(0),
        }
    }

    /// Calls and tokens so far.
    pub fn totals(&self) -> (u64, u64) {
        (
            self.calls.load(Ordering::SeqCst),
            self.tokens.load(Ordering::SeqCst),
        )
    }
}

#[async_trait]
impl LlmProvider for Counted {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn model(&self) -> Option<String> {
        self.inner.model()
    }

    async fn generate(&self, request: &LlmRequest) -> infraai_core::Result<LlmResponse> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let response = self.inner.generate(request).await?;
        let used = response.usage.prompt_tokens + response.usage.completion_tokens;
        self.tokens.fetch_add(used, Ordering::SeqCst);
        Ok(response)
    }
}
