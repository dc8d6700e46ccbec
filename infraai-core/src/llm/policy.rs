//! [`LlmDecisionPolicy`]: alert + deployment + precedent → [`OpsDecision`].

use super::budget::TokenBudget;
use super::call::{from_value, Call, Failure, LlmCaller};
use super::observe::LlmCallOutcome;
use super::prompts::{self, quote_json, DECISION_PROMPT_VERSION};
use crate::domain::{IncidentStatus, OpsDecision, Severity};
use crate::rules::RulePolicy;
use crate::traits::{DecisionContext, DecisionPolicy, HistoryStore, LlmProvider, TokenUsage};
use crate::Result;
use async_trait::async_trait;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use tracing::info;

/// Most cached decisions kept at once.
const MAX_CACHE_ENTRIES: usize = 1024;

/// A [`DecisionPolicy`] backed by an LLM. It only recommends: the guardrails
/// of the ops loop still check every decision it returns.
///
/// * The prompt carries the alert, its labels, the deployment and recent
///   incidents on the resource as quoted JSON data, never as instructions.
/// * The answer is validated against the [`OpsDecision`] schema; an invalid
///   answer gets one repair request, then the incident is escalated to a human.
/// * Identical incident contexts within the cache TTL reuse the earlier
///   decision without a call.
/// * Past the hourly token budget, the rule-based policy decides (audited).
pub struct LlmDecisionPolicy {
    caller: LlmCaller,
    name: String,
    schema: Value,
    cache_ttl: Duration,
    cache: Mutex<HashMap<String, (Instant, OpsDecision)>>,
    budget_fallback: Arc<dyn DecisionPolicy>,
}

super::call::caller_options!(LlmDecisionPolicy);

impl LlmDecisionPolicy {
    /// A policy asking `provider`, with a 10-minute decision cache, no
    /// budget, no audit store and [`RulePolicy`] as the over-budget path.
    pub fn new(provider: Arc<dyn LlmProvider>) -> Self {
        let name = format!("llm:{}", provider.name());
        let mut schema =
            serde_json::to_value(schemars::schema_for!(OpsDecision)).unwrap_or(Value::Bool(true));
        // Tell the model the bounds, so an out-of-range confidence is repaired
        // (the guardrails would refuse it anyway).
        if let Some(props) = schema.get_mut("properties") {
            props["confidence"] = json!({"type": "number", "minimum": 0, "maximum": 1,
                "description": "Confidence 0–1; below 0.7 a human must approve."});
        }
        Self {
            caller: LlmCaller::new(provider),
            name,
            schema,
            cache_ttl: Duration::from_secs(600),
            cache: Mutex::new(HashMap::new()),
            budget_fallback: Arc::new(RulePolicy),
        }
    }

    /// How long a decision is reused for an identical incident context
    /// (`Duration::ZERO` disables the cache).
    pub fn with_cache_ttl(mut self, ttl: Duration) -> Self {
        self.cache_ttl = ttl;
        self
    }

    /// The policy used when the token budget is spent (default [`RulePolicy`]).
    pub fn with_budget_fallback(mut self, policy: Arc<dyn DecisionPolicy>) -> Self {
        self.budget_fallback = policy;
        self
    }

    /// The part of the context that makes two incidents "the same situation":
    /// what the alert says, the state of the resource, and which earlier
    /// incidents on it ended badly — not ids of this incident, times, or the
    /// whole precedent list (which grows with each repeat, so no repeat would
    /// ever hit the cache). A decision whose action then failed (the incident
    /// is `unresolved`) or that a human rejected changes the key, so the next
    /// alert is decided afresh with that precedent in view instead of reusing
    /// the fix that just failed.
    fn cache_key(ctx: &DecisionContext) -> String {
        let a = &ctx.incident.alert;
        let went_wrong: Vec<_> = ctx
            .recent_incidents
            .iter()
            .filter(|i| {
                matches!(
                    i.status,
                    IncidentStatus::Unresolved | IncidentStatus::Rejected
                )
            })
            .map(|i| json!([i.id, i.status]))
            .collect();
        json!({
            "went_wrong": went_wrong,
            "policy": a.policy_name, "resource": a.resource, "resource_type": a.resource_type,
            "cloud": a.cloud, "metric": a.metric, "value": a.value, "threshold": a.threshold,
            "severity": a.severity, "state": a.state, "labels": a.labels,
            "deployment": ctx.deployment.as_ref().map(|d| d.deployment_id),
            "current": ctx.current_machine_type, "next": ctx.next_machine_type,
            "allowed": ctx.allowed_actions,
        })
        .to_string()
    }

    fn cached(&self, key: &str) -> Option<OpsDecision> {
        if self.cache_ttl.is_zero() {
            return None;
        }
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.retain(|_, (at, _)| at.elapsed() < self.cache_ttl);
        cache.get(key).map(|(_, d)| d.clone())
    }

    fn remember(&self, key: String, decision: &OpsDecision) {
        if self.cache_ttl.is_zero() {
            return;
        }
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= MAX_CACHE_ENTRIES {
            if let Some(oldest) = cache
                .iter()
                .min_by_key(|(_, (at, _))| *at)
                .map(|(k, _)| k.clone())
            {
                cache.remove(&oldest);
            }
        }
        cache.insert(key, (Instant::now(), decision.clone()));
    }

    /// The incident as the prompt shows it: data only, no raw payload.
    fn prompt_data(ctx: &DecisionContext) -> Value {
        let a = &ctx.incident.alert;
        json!({
            "alert": {
                "source": a.source, "policy_name": a.policy_name, "resource": a.resource,
                "resource_type": a.resource_type, "cloud": a.cloud, "metric": a.metric,
                "value": a.value, "threshold": a.threshold, "severity": a.severity,
                "state": a.state, "started_at": a.started_at, "labels": a.labels,
                "occurrences": ctx.incident.occurrences,
            },
            "deployment": ctx.deployment.as_ref().map(|d| json!({
                "region": d.region, "cloud": d.cloud,
                "resources": d.resources.iter().map(|r| json!({
                    "name": r.name, "kind": r.kind, "machine_type": r.machine_type, "count": r.count,
                })).collect::<Vec<_>>(),
            })),
            "current_machine_type": ctx.current_machine_type,
            "next_machine_type": ctx.next_machine_type,
            "allowed_actions": ctx.allowed_actions,
            "recent_incidents": ctx.recent_incidents.iter().map(|i| json!({
                "created_at": i.created_at, "policy_name": i.alert.policy_name, "metric": i.alert.metric,
                "value": i.alert.value, "status": i.status,
                "action": i.decision.as_ref().map(|d| d.recommended_action.describe()),
                "note": i.note,
            })).collect::<Vec<_>>(),
        })
    }
}

#[async_trait]
impl DecisionPolicy for LlmDecisionPolicy {
    fn name(&self) -> &str {
        &self.name
    }

    async fn decide(&self, ctx: &DecisionContext) -> Result<OpsDecision> {
        let severity: Severity = ctx.incident.alert.severity;
        let call = Call {
            component: "decision",
            prompt_version: DECISION_PROMPT_VERSION,
            system: prompts::render("decision.system", &json!({}))?,
            prompt: prompts::render(
                "decision.user",
                &json!({ "incident": quote_json(&Self::prompt_data(ctx)) }),
            )?,
            schema_name: "ops_decision",
            schema: self.schema.clone(),
            incident_id: Some(ctx.incident.id),
            run_id: None,
            normalize: crate::domain::decision_in_our_words,
        };
        let key = Self::cache_key(ctx);
        if let Some(mut decision) = self.cached(&key) {
            info!(incident_id = %ctx.incident.id, "identical incident context within the TTL; reusing the decision");
            self.caller
                .audit(
                    &call,
                    "cache hit: reused the decision for an identical incident context; no LLM call"
                        .into(),
                    json!({ "component": "decision", "prompt_version": DECISION_PROMPT_VERSION,
                            "cache_ttl_secs": self.cache_ttl.as_secs() }),
                )
                .await;
            self.caller.observe(
                &call,
                LlmCallOutcome::Cached,
                None,
                TokenUsage::default(),
                Duration::ZERO,
            );
            decision.reasoning = format!(
                "(reused: identical incident context decided within the last {}s) {}",
                self.cache_ttl.as_secs(),
                decision.reasoning
            );
            return Ok(decision);
        }
        match self.caller.run(&call, from_value::<OpsDecision>).await {
            Ok(decision) => {
                self.remember(key, &decision);
                Ok(decision)
            }
            Err(Failure::Budget(_)) => self.budget_fallback.decide(ctx).await,
            Err(failure) => Ok(OpsDecision::escalate(
                severity,
                format!("{failure}; a human must decide"),
            )),
        }
    }
}
