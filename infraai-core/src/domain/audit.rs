//! The append-only audit log.

use crate::{AuditId, IncidentId, RunId};
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Which step of a loop an audit record is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuditStep {
    /// A run changed phase.
    RunPhase,
    /// A deployment was stored.
    Deployment,
    /// An alert was received (new incident, repeat, or resolution).
    AlertReceived,
    /// The decision policy decided.
    Decision,
    /// The guardrails routed the decision.
    Guardrails,
    /// A human was asked.
    ApprovalRequested,
    /// A human command arrived.
    HumanCommand,
    /// The kill-switch changed.
    KillSwitch,
    /// An action was claimed and executed (or refused).
    Action,
    /// The metric was re-checked after an action.
    Feedback,
    /// A human was asked again because the problem remains.
    Escalation,
    /// One LLM call: model, prompt version, tokens, latency, outcome.
    LlmCall,
    /// A failed plan/apply was classified, with what the agent does about it.
    ApplyDiagnosis,
    /// A transient failure is retried (re-plan and re-apply after a backoff).
    ApplyRetry,
    /// "Destroy what this run created" was previewed or executed.
    RunCleanup,
    /// A request was refused because it could not be authenticated (forged
    /// webhook secret, bad signature, missing operator token).
    AuthRefused,
    /// A call from another agent over MCP: the client, the tool, its
    /// arguments, the outcome.
    McpCall,
    /// An (action, resource type) pair was promoted, demoted or pinned
    /// (earned autonomy), with why; or a deployment's guardrail overrides
    /// were set.
    Autonomy,
    /// A change window was created or deleted, or an alert was held by a
    /// maintenance window.
    ChangeWindow,
    /// Access changed: an API token was created or revoked.
    Access,
}

/// One audit record: what happened, on what input, why, with what confidence,
/// who did it and with what outcome. Never contains secrets.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AuditRecord {
    /// Record id (time-ordered).
    pub id: AuditId,
    /// When.
    pub at: DateTime<Utc>,
    /// Which step.
    pub step: AuditStep,
    /// The incident, for ops-loop records.
    pub incident_id: Option<IncidentId>,
    /// The run, for deploy-loop records.
    pub run_id: Option<RunId>,
    /// Who: `agent` or a human actor label such as `telegram:42`.
    pub actor: String,
    /// The input the step acted on.
    pub input: serde_json::Value,
    /// Why.
    pub reasoning: Option<String>,
    /// Confidence, for decisions.
    pub confidence: Option<f64>,
    /// What came of it.
    pub outcome: String,
    /// The replica that wrote it, when the agent runs as several replicas
    /// on one store (set by [`crate::OpsAgent`] from its configuration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica: Option<String>,
}

impl AuditRecord {
    /// A record by the agent itself.
    pub fn agent(step: AuditStep, outcome: impl Into<String>) -> Self {
        Self {
            id: AuditId::new(),
            at: Utc::now(),
            step,
            incident_id: None,
            run_id: None,
            actor: "agent".into(),
            input: serde_json::Value::Null,
            reasoning: None,
            confidence: None,
            outcome: outcome.into(),
            replica: None,
        }
    }

    /// Sets the incident.
    pub fn incident(mut self, id: IncidentId) -> Self {
        self.incident_id = Some(id);
        self
    }

    /// Sets the run.
    pub fn run(mut self, id: RunId) -> Self {
        self.run_id = Some(id);
        self
    }

    /// Sets the actor label.
    pub fn by(mut self, actor: impl Into<String>) -> Self {
        self.actor = actor.into();
        self
    }

    /// Sets the input.
    pub fn input(mut self, input: serde_json::Value) -> Self {
        self.input = input;
        self
    }

    /// Sets the replica that wrote it.
    pub fn replica(mut self, replica: impl Into<String>) -> Self {
        self.replica = Some(replica.into());
        self
    }

    /// Sets reasoning and confidence.
    pub fn reasoning(mut self, reasoning: impl Into<String>, confidence: Option<f64>) -> Self {
        self.reasoning = Some(reasoning.into());
        self.confidence = confidence;
        self
    }
}

/// Which audit records to list.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AuditQuery {
    /// Only this incident.
    pub incident_id: Option<IncidentId>,
    /// Only this run.
    pub run_id: Option<RunId>,
    /// At most this many (newest last); `None` for all.
    pub limit: Option<usize>,
    /// Only records older than this one (the next page back); none when it
    /// is not among the records the filters select.
    #[serde(default)]
    pub before: Option<AuditId>,
}

impl AuditQuery {
    /// Applies the query to `records`, oldest first, that match its filters
    /// (for stores that filter in memory).
    pub fn page(&self, mut records: Vec<AuditRecord>) -> Vec<AuditRecord> {
        if let Some(before) = self.before {
            let end = records.iter().position(|r| r.id == before).unwrap_or(0);
            records.truncate(end);
        }
        let skip = self.limit.map_or(0, |l| records.len().saturating_sub(l));
        records.drain(..skip);
        records
    }
}
