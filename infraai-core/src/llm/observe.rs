//! [`LlmObserver`]: a hook that sees the outcome and token usage of every
//! exchange the LLM components make, for counters and dashboards.

use crate::traits::TokenUsage;
use std::fmt;
use std::time::Duration;

/// How one exchange of an LLM component ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LlmCallOutcome {
    /// The provider answered with JSON that matches the schema (the
    /// component's own checks, e.g. a plan's invariants, may still refuse it).
    Ok,
    /// The provider answered, but not with schema-valid JSON (a repair
    /// request or the fallback follows).
    Invalid,
    /// The provider failed (network, quota, safety block, refusal).
    Error,
    /// No call: the hourly token budget was spent.
    OverBudget,
    /// No call: an identical incident context was decided within the TTL.
    Cached,
}

impl LlmCallOutcome {
    /// A label for metrics: `ok`, `invalid`, `error`, `over_budget`, `cached`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Invalid => "invalid",
            Self::Error => "error",
            Self::OverBudget => "over_budget",
            Self::Cached => "cached",
        }
    }
}

impl fmt::Display for LlmCallOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One exchange as an [`LlmObserver`] sees it. `usage` is zero when no call
/// was made or the provider failed (a failed call's tokens, e.g. the prompt
/// of a safety-blocked request, are not reported by the providers).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct LlmCallReport {
    /// `plan`, `fix` or `decision`.
    pub component: &'static str,
    /// The provider's name.
    pub provider: String,
    /// The model that answered, or the configured one when the call failed.
    pub model: Option<String>,
    /// How it ended.
    pub outcome: LlmCallOutcome,
    /// Tokens spent.
    pub usage: TokenUsage,
    /// Time spent in the provider (zero when no call was made).
    pub latency: Duration,
}

/// Sees every exchange of the LLM components it is given to
/// (`with_observer`). Called on the caller's task: keep it quick and
/// non-blocking (bump counters).
///
/// ```
/// use infraai_core::llm::{LlmCallReport, LlmObserver, LlmPlanner, ReplayProvider};
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use std::sync::Arc;
///
/// #[derive(Default)]
/// struct Tokens(AtomicU64);
/// impl LlmObserver for Tokens {
///     fn observe(&self, report: &LlmCallReport) {
///         let used = report.usage.prompt_tokens + report.usage.completion_tokens;
///         self.0.fetch_add(used, Ordering::Relaxed);
///     }
/// }
/// let catalog = infraai_core::rules::PlanningCatalog::new("lab", &["lab-1"], &[("small", 5.0)], &[]);
/// let planner = LlmPlanner::new(Arc::new(ReplayProvider::sequence(vec![])), catalog)
///     .with_observer(Arc::new(Tokens::default()));
/// # let _ = planner;
/// ```
pub trait LlmObserver: Send + Sync {
    /// Records one exchange.
    fn observe(&self, report: &LlmCallReport);
}
