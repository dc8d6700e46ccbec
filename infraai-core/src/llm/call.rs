//! One structured LLM exchange as every LLM component makes it: budget check,
//! call, schema validation, typed parse, one repair request, audit.

use super::budget::{BudgetStatus, TokenBudget};
use super::observe::{LlmCallOutcome, LlmCallReport, LlmObserver};
use super::prompts::{self, quote_json, REPAIR_PROMPT_VERSION};
use super::schema;
use crate::domain::{AuditRecord, AuditStep};
use crate::traits::{HistoryStore, LlmProvider, LlmRequest, LlmResponse, TokenUsage};
use crate::{Error, IncidentId, RunId};
use serde_json::{json, Value};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// What the LLM components share: the provider, the optional audit store and
/// token budget and observer, and the sampling temperature.
#[derive(Clone)]
pub(crate) struct LlmCaller {
    pub provider: Arc<dyn LlmProvider>,
    pub audit: Option<Arc<dyn HistoryStore>>,
    pub budget: Option<Arc<TokenBudget>>,
    pub observer: Option<Arc<dyn LlmObserver>>,
    pub temperature: Option<f32>,
}

/// The builder methods every LLM component shares, setting its `caller`.
macro_rules! caller_options {
    ($component:ty) => {
        impl $component {
            /// Writes an [`AuditStep::LlmCall`](crate::AuditStep::LlmCall)
            /// record for every call (and, for the policy, every cache hit and
            /// budget skip).
            pub fn with_audit(mut self, store: Arc<dyn HistoryStore>) -> Self {
                self.caller.audit = Some(store);
                self
            }

            /// Shares an hourly token budget (the planner, fixer and policy,
            /// typically).
            pub fn with_budget(mut self, budget: Arc<TokenBudget>) -> Self {
                self.caller.budget = Some(budget);
                self
            }

            /// Reports every exchange (outcome, tokens, latency) to `observer`.
            pub fn with_observer(mut self, observer: Arc<dyn super::LlmObserver>) -> Self {
                self.caller.observer = Some(observer);
                self
            }

            /// Sampling temperature (default 0.2; `None` for models that only
            /// accept their default).
            pub fn with_temperature(mut self, temperature: Option<f32>) -> Self {
                self.caller.temperature = temperature;
                self
            }
        }
    };
}
pub(crate) use caller_options;

/// One request of a component.
pub(crate) struct Call {
    pub component: &'static str,
    pub prompt_version: &'static str,
    pub system: String,
    pub prompt: String,
    pub schema_name: &'static str,
    pub schema: Value,
    pub incident_id: Option<IncidentId>,
    pub run_id: Option<RunId>,
    /// Rewrites an answer before it is validated (e.g. the product plan's
    /// decision words into ours).
    pub normalize: fn(&mut Value),
}

/// Why a component must take its fallback.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The hourly token budget is spent; no call was made.
    Budget(BudgetStatus),
    /// The provider failed (network, quota, safety block, refusal).
    Provider(Error),
    /// The answer was invalid twice (after one repair request).
    Invalid(Vec<String>),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Budget(s) => write!(
                f,
                "the hourly LLM token budget is spent ({} of {} tokens)",
                s.used, s.limit
            ),
            Failure::Provider(e) => write!(f, "the LLM call failed: {e}"),
            Failure::Invalid(errors) => {
                write!(f, "the LLM answer was invalid twice: {}", errors.join("; "))
            }
        }
    }
}

impl LlmCaller {
    pub fn new(provider: Arc<dyn LlmProvider>) -> Self {
        Self {
            provider,
            audit: None,
            budget: None,
            observer: None,
            temperature: Some(0.2),
        }
    }

    /// Tells the observer, if any, how an exchange ended.
    pub fn observe(
        &self,
        call: &Call,
        outcome: LlmCallOutcome,
        model: Option<String>,
        usage: TokenUsage,
        latency: Duration,
    ) {
        if let Some(observer) = &self.observer {
            observer.observe(&LlmCallReport {
                component: call.component,
                provider: self.provider.name().to_string(),
                model,
                outcome,
                usage,
                latency,
            });
        }
    }

    /// Writes an audit record (failures are logged, never fatal).
    pub async fn audit(&self, call: &Call, outcome: String, input: Value) {
        let Some(store) = &self.audit else { return };
        let mut record = AuditRecord::agent(AuditStep::LlmCall, outcome)
            .by(format!("llm:{}", self.provider.name()))
            .input(input);
        record.incident_id = call.incident_id;
        record.run_id = call.run_id;
        if let Err(e) = store.append_audit(&record).await {
            warn!(component = call.component, error = %e, "audit append failed");
        }
    }

    /// Calls the provider and returns the parsed answer, repairing once.
    /// `parse` turns a schema-valid value into `T` or says what is wrong.
    pub async fn run<T>(
        &self,
        call: &Call,
        parse: impl Fn(&Value) -> Result<T, Vec<String>>,
    ) -> Result<T, Failure> {
        let check = |v: &Value| {
            let mut v = v.clone();
            (call.normalize)(&mut v);
            schema::validate(&call.schema, &v).and_then(|()| parse(&v))
        };
        let answer = self.exchange(call, "initial", call.prompt.clone()).await?;
        let errors = match check(&answer) {
            Ok(t) => return Ok(t),
            Err(errors) => errors,
        };
        let repair = prompts::render(
            "repair",
            &json!({
                "original": call.prompt,
                "previous": quote_json(&answer),
                "errors": quote_json(&errors),
            }),
        )
        .map_err(Failure::Provider)?;
        let answer = self.exchange(call, "repair", repair).await?;
        check(&answer).map_err(Failure::Invalid)
    }

    async fn exchange(&self, call: &Call, attempt: &str, prompt: String) -> Result<Value, Failure> {
        let prompt_version = if attempt == "repair" {
            format!("{}+{REPAIR_PROMPT_VERSION}", call.prompt_version)
        } else {
            call.prompt_version.to_string()
        };
        if let Some(budget) = &self.budget {
            if budget.exhausted() {
                let status = budget.status();
                let failure = Failure::Budget(status);
                warn!(
                    component = call.component,
                    used = status.used,
                    limit = status.limit,
                    "LLM token budget spent; using the rule-based path"
                );
                self.audit(
                    call,
                    format!("skipped: {failure}; the rule-based path is used"),
                    json!({ "component": call.component, "attempt": attempt, "prompt_version": prompt_version,
                            "budget_used": status.used, "budget_limit": status.limit }),
                )
                .await;
                self.observe(
                    call,
                    LlmCallOutcome::OverBudget,
                    None,
                    TokenUsage::default(),
                    Duration::ZERO,
                );
                return Err(failure);
            }
        }
        let request = LlmRequest {
            system: call.system.clone(),
            prompt,
            schema_name: call.schema_name.to_string(),
            schema: call.schema.clone(),
            temperature: self.temperature,
        };
        let started = Instant::now();
        let result = self.provider.generate(&request).await;
        self.record(call, attempt, &prompt_version, result, started.elapsed())
            .await
    }

    /// Logs, observes and audits the provider's answer (spending its tokens) or failure.
    async fn record(
        &self,
        call: &Call,
        attempt: &str,
        prompt_version: &str,
        result: crate::Result<LlmResponse>,
        latency: Duration,
    ) -> Result<Value, Failure> {
        let latency_ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX);
        match result {
            Ok(LlmResponse {
                value,
                usage,
                model,
            }) => {
                if let Some(budget) = &self.budget {
                    budget.spend(usage);
                }
                let valid = schema::validate(&call.schema, &value).is_ok();
                info!(
                    component = call.component,
                    provider = self.provider.name(),
                    model = %model,
                    prompt_version = %prompt_version,
                    attempt,
                    prompt_tokens = usage.prompt_tokens,
                    completion_tokens = usage.completion_tokens,
                    latency_ms,
                    valid,
                    "LLM call"
                );
                let outcome = if valid {
                    LlmCallOutcome::Ok
                } else {
                    LlmCallOutcome::Invalid
                };
                self.observe(call, outcome, Some(model.clone()), usage, latency);
                self.audit(
                    call,
                    format!(
                        "{attempt} answer {}",
                        if valid { "matches the schema" } else { "does not match the schema" }
                    ),
                    json!({ "component": call.component, "attempt": attempt, "provider": self.provider.name(),
                            "model": model, "prompt_version": prompt_version, "schema": call.schema_name,
                            "prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
                            "latency_ms": latency_ms }),
                )
                .await;
                Ok(value)
            }
            Err(e) => {
                let model = self.provider.model();
                warn!(component = call.component, provider = self.provider.name(), model = ?model, attempt, latency_ms, error = %e, "LLM call failed");
                self.audit(
                    call,
                    format!("{attempt} call failed: {e}"),
                    json!({ "component": call.component, "attempt": attempt, "provider": self.provider.name(),
                            "model": model, "prompt_version": prompt_version, "schema": call.schema_name,
                            "latency_ms": latency_ms }),
                )
                .await;
                self.observe(
                    call,
                    LlmCallOutcome::Error,
                    model,
                    TokenUsage::default(),
                    latency,
                );
                Err(Failure::Provider(e))
            }
        }
    }
}

/// Deserializes a schema-valid value into `T`, turning serde's error into a
/// repair hint.
pub(crate) fn from_value<T: serde::de::DeserializeOwned>(v: &Value) -> Result<T, Vec<String>> {
    serde_json::from_value(v.clone()).map_err(|e| vec![format!("/: {e}")])
}
