//! The ops loop: alert → incident → decision → guardrails → execute or ask a
//! human → act → re-check the metric → resolved or re-escalated.
//!
//! Plain async code: each method does its whole step and returns. Callers
//! choose what to spawn (the server acknowledges a webhook after
//! [`OpsAgent::record_alert`] and processes the incident in a task).

use crate::approvers::ApproverAllowList;
use crate::domain::*;
use crate::guardrails::Guardrails;
use crate::jobs::{Held, JobKey};
use crate::profiles::MetricProfileRegistry;
use crate::refusals::{RefusalAuditLimit, RefusalAuditor};
use crate::traits::*;
use crate::{Error, IncidentId, Result};
use std::sync::Arc;
use std::time::Duration;
use tracing::warn;

mod commands;
mod decide;
mod execute;
mod ingest;
mod recovery;

/// The store cursor holding the sequence id of the last STOP/RESUME applied
/// from `channel` (see [`HumanReply::delivery_seq`]).
pub fn kill_switch_cursor(channel: &str) -> String {
    format!("kill_switch_delivery:{channel}")
}

/// The store cursor holding when (Unix seconds) that STOP/RESUME was applied.
pub fn kill_switch_cursor_at(channel: &str) -> String {
    format!("kill_switch_delivery_at:{channel}")
}

/// How long a channel's delivery ids are trusted to keep growing: Telegram
/// drops undelivered updates after 24 hours (so nothing older is redelivered)
/// and may restart `update_id` at random after a week without updates, so an
/// older id is taken for a redelivery only within this window of the last
/// applied kill-switch command; after it, a STOP is always applied.
pub const KILL_SWITCH_REDELIVERY_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// Most `new` incidents one [`OpsAgent::recover`] pass takes.
pub const RECOVER_BATCH: usize = 256;

/// How many incidents [`OpsAgent::recover`] works on at once.
pub const RECOVER_CONCURRENCY: usize = 4;

/// Settings of the ops loop.
#[derive(Clone, Debug)]
pub struct OpsConfig {
    /// How long to wait after an action before re-reading the metric (default 30 s).
    pub feedback_delay: Duration,
    /// How far back the metric re-check looks, in seconds (default 120).
    pub feedback_lookback_secs: u64,
    /// Who may approve, reject, stop or resume (default: every authenticated
    /// web operator; chat users only when listed).
    pub approvers: ApproverAllowList,
    /// How many refused unauthenticated requests are audited one by one per
    /// window before they are only counted (default 20 a minute).
    pub refusal_audit_limit: RefusalAuditLimit,
    /// This replica's id: the holder of its jobs, and in its audit records.
    /// Must differ between replicas sharing a store (default `agent-` and a
    /// random suffix).
    pub replica_id: String,
    /// How long a job's lease runs without renewal (default 30 s): a replica
    /// that dies leaves its work to the others after at most this long.
    pub lease: Duration,
}

impl Default for OpsConfig {
    fn default() -> Self {
        Self {
            feedback_delay: Duration::from_secs(30),
            feedback_lookback_secs: 120,
            approvers: ApproverAllowList::none().allow_all_authenticated("web"),
            refusal_audit_limit: RefusalAuditLimit::default(),
            replica_id: {
                let random = uuid::Uuid::now_v7().simple().to_string();
                format!("agent-{}", &random[random.len() - 12..])
            },
            lease: crate::jobs::DEFAULT_LEASE,
        }
    }
}

/// The adapters the ops loop drives.
#[derive(Clone)]
pub struct OpsDeps {
    /// The agent's memory.
    pub store: Arc<dyn MetadataStore>,
    /// Recommends decisions.
    pub policy: Arc<dyn DecisionPolicy>,
    /// Asks humans.
    pub approver: Arc<dyn Approver>,
    /// Executes actions.
    pub actions: Arc<dyn ActionHandler>,
    /// Reads metrics for the re-check.
    pub metrics: Arc<dyn MetricSource>,
    /// Profiles (comparison and threshold of a metric when the alert lacks them).
    pub registry: Arc<MetricProfileRegistry>,
}

/// What processing an alert did.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertHandled {
    /// What recording it did.
    pub outcome: IngestOutcome,
    /// The incident after processing, when there is one.
    pub incident: Option<Incident>,
}

/// What a human command did.
#[derive(Clone, Debug, PartialEq)]
pub struct CommandOutcome {
    /// Whether the command changed anything (`false` for duplicates, late or
    /// refused commands).
    pub effective: bool,
    /// One line for the human.
    pub message: String,
    /// The incident afterwards, for incident commands.
    pub incident: Option<Incident>,
}

/// Runs the ops loop. Share it behind an `Arc`.
pub struct OpsAgent {
    deps: OpsDeps,
    guardrails: Guardrails,
    config: OpsConfig,
    refusals: RefusalAuditor,
}

impl OpsAgent {
    /// An ops agent.
    pub fn new(deps: OpsDeps, guardrails: Guardrails, config: OpsConfig) -> Self {
        Self {
            deps,
            guardrails,
            refusals: RefusalAuditor::new(config.refusal_audit_limit),
            config,
        }
    }

    /// The guardrails.
    pub fn guardrails(&self) -> &Guardrails {
        &self.guardrails
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn MetadataStore> {
        &self.deps.store
    }

    /// This replica's id ([`OpsConfig::replica_id`]).
    pub fn replica_id(&self) -> &str {
        &self.config.replica_id
    }

    /// The lease of this replica's jobs ([`OpsConfig::lease`]).
    pub fn lease(&self) -> Duration {
        self.config.lease
    }

    /// Takes incident `id`'s job for this replica; `None` while another
    /// replica (or another task here) holds it.
    async fn hold(&self, id: IncidentId) -> Result<Option<Held>> {
        Held::take(
            &self.deps.store,
            &JobKey::Incident(id),
            &self.config.replica_id,
            self.config.lease,
        )
        .await
    }

    async fn audit(&self, record: AuditRecord) {
        let record = record.replica(self.config.replica_id.clone());
        if let Err(e) = self.deps.store.append_audit(&record).await {
            warn!(step = ?record.step, error = %e, "audit append failed");
        }
    }

    async fn load(&self, id: IncidentId) -> Result<Incident> {
        self.deps
            .store
            .get_incident(id)
            .await?
            .ok_or_else(|| Error::not_found(format!("incident {id}")))
    }

    fn action_request(incident: &Incident, action: Action) -> ActionRequest {
        ActionRequest {
            incident_id: incident.id,
            deployment_id: incident.deployment_id,
            resource: incident.alert.resource.clone(),
            resource_type: incident.alert.resource_type.clone(),
            action,
        }
    }

    async fn notify(&self, incident: &Incident, title: &str, body: &str) {
        let n = Notification {
            incident_id: Some(incident.id),
            title: title.to_string(),
            body: format!(
                "{body}\n\n{} on {}: {} = {}",
                incident.alert.policy_name,
                incident.alert.resource,
                incident.alert.metric,
                incident
                    .alert
                    .value
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| "?".into())
            ),
        };
        if let Err(e) = self.deps.approver.notify(&n).await {
            warn!(incident_id = %incident.id, error = %e, "notification failed");
        }
    }
}
