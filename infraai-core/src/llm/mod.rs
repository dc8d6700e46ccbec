//! LLM-backed planner, Terraform fixer and decision policy, generic over
//! [`LlmProvider`](crate::LlmProvider).
//!
//! The LLM recommends; code decides. Every component:
//! * renders its prompt from a versioned handlebars template (strict mode, no
//!   escaping) with untrusted input (goal, alert text and labels, Terraform
//!   diagnostics) passed as quoted JSON data inside a fence, never as
//!   instructions ([`quote_json`]);
//! * validates the answer against the JSON schema before deserializing it,
//!   sends one repair request with the validation errors, then falls back:
//!   the rule-based planner, no fix, or escalation to a human;
//! * writes an [`AuditStep::LlmCall`](crate::AuditStep::LlmCall) record per
//!   call (model, prompt version, tokens, latency; never the prompt) when
//!   given an audit store, and respects an optional hourly [`TokenBudget`];
//! * reports each exchange (outcome, tokens, latency) to an optional
//!   [`LlmObserver`], for counters.
//!
//! ```
//! use infraai_core::llm::{LlmDecisionPolicy, ReplayProvider, TokenBudget};
//! use infraai_core::DecisionPolicy;
//! use std::sync::Arc;
//!
//! let provider = Arc::new(ReplayProvider::sequence(vec![]));
//! let policy = LlmDecisionPolicy::new(provider)
//!     .with_budget(Arc::new(TokenBudget::per_hour(200_000)));
//! assert_eq!(policy.name(), "llm:replay");
//! ```

mod budget;
mod call;
mod fixer;
mod observe;
mod planner;
mod policy;
pub mod prompts;
mod replay;
pub mod schema;

pub use budget::{BudgetStatus, TokenBudget};
pub use fixer::LlmFixer;
pub use observe::{LlmCallOutcome, LlmCallReport, LlmObserver};
pub use planner::{LlmPlanner, LlmPlannerConfig};
pub use policy::LlmDecisionPolicy;
pub use prompts::{
    quote_json, DECISION_PROMPT_VERSION, FIX_PROMPT_VERSION, PLAN_PROMPT_VERSION,
    REPAIR_PROMPT_VERSION,
};
pub use replay::{RecordedExchange, ReplayProvider};
