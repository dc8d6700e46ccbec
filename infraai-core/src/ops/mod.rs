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
use chrono::{DateTime, Utc};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tracing::warn;

mod autonomy;
mod commands;
mod decide;
mod execute;
mod ingest;
mod kill_switch;
mod propose;
mod recovery;
mod windows;

pub use kill_switch::{kill_switch_cursor, kill_switch_cursor_at, KILL_SWITCH_REDELIVERY_WINDOW};
pub use propose::Proposal;

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
    /// Sends approval requests and outcomes to humans.
    pub notifier: Arc<dyn Notifier>,
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

    /// Runs `work` under incident `id`'s job, taken for this replica; while
    /// another replica (or another task here) holds it, returns the incident
    /// as it stands instead.
    async fn with_job(
        &self,
        id: IncidentId,
        work: impl Future<Output = Result<Incident>>,
    ) -> Result<Incident> {
        let Some(held) = self.hold(id).await? else {
            return self.load(id).await;
        };
        let result = work.await;
        held.conclude(&result).await;
        result
    }

    /// Takes incident `id`'s job for this replica; `None` while another
    /// replica (or another task here) holds it.
    async fn hold(&self, id: IncidentId) -> Result<Option<Held>> {
        let key = JobKey::Incident(id);
        Held::take(
            self.deps.store.clone(),
            &key,
            &self.config.replica_id,
            self.config.lease,
        )
        .await
    }

    /// Appends `record` as this replica's; a failure is logged.
    async fn audit(&self, record: AuditRecord) {
        let record = record.replica(self.config.replica_id.clone());
        if let Err(e) = self.deps.store.append_audit(&record).await {
            warn!(step = ?record.step, error = %e, "audit append failed");
        }
    }

    /// Incident `id`, which must exist.
    async fn load(&self, id: IncidentId) -> Result<Incident> {
        self.deps
            .store
            .get_incident(id)
            .await?
            .ok_or_else(|| Error::not_found(format!("incident {id}")))
    }

    /// The deployment the incident's resource belongs to, when known.
    async fn deployment_of(&self, incident: &Incident) -> Result<Option<Deployment>> {
        match incident.deployment_id {
            Some(d) => self.deps.store.get_deployment(d).await,
            None => {
                let resource = &incident.alert.resource;
                self.deps.store.find_deployment_by_resource(resource).await
            }
        }
    }

    /// Tells the humans about an incident (in a quiet window's digest when
    /// one holds it back); a failure is logged.
    async fn notify(&self, incident: &Incident, title: &str, body: &str) {
        if self.defer(incident, title, body, false).await {
            return;
        }
        let alert = &incident.alert;
        let value = alert.value.map_or_else(|| "?".into(), |v| v.to_string());
        let n = Notification {
            incident_id: Some(incident.id),
            title: title.to_string(),
            body: format!(
                "{body}\n\n{} on {}: {} = {value}",
                alert.policy_name, alert.resource, alert.metric
            ),
        };
        if let Err(e) = self.deps.notifier.notify(&n).await {
            warn!(incident_id = %incident.id, error = %e, "notification failed");
        }
    }
}

/// The incidents in `statuses`.
fn in_statuses(statuses: Vec<IncidentStatus>) -> IncidentQuery {
    IncidentQuery {
        statuses,
        ..Default::default()
    }
}

/// Every incident in `statuses`, read a page at a time: a background pass
/// over thousands of incidents (pending ones waiting for an answer,
/// executed ones waiting for their re-check) then never holds a runtime
/// thread for long decoding them (a store that decodes on the caller's task,
/// like PostgreSQL's, would otherwise hold up every request scheduled on it
/// for the whole list: tens of milliseconds at a few thousand).
async fn all_in_statuses(
    store: &dyn MetadataStore,
    statuses: Vec<IncidentStatus>,
) -> Result<Vec<Incident>> {
    const PAGE: usize = 200;
    let mut query = IncidentQuery {
        limit: Some(PAGE),
        ..in_statuses(statuses)
    };
    let mut all = Vec::new();
    loop {
        let page = store.list_incidents(&query).await?;
        let full = page.len() == PAGE;
        query.after = page.last().map(crate::store::PageKey::of);
        all.extend(page);
        if !full {
            return Ok(all);
        }
        tokio::task::yield_now().await;
    }
}

/// The time `d` before now.
fn ago(d: Duration) -> DateTime<Utc> {
    Utc::now() - chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// `Some` with the incident a store change of this caller's left; `None`
/// when another caller moved the incident first ([`Error::Conflict`]).
fn won<T>(change: Result<T>) -> Result<Option<T>> {
    match change {
        Ok(incident) => Ok(Some(incident)),
        Err(Error::Conflict { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{alert, MemoryStore};

    /// More incidents than a page: each listed once, only those asked for.
    #[tokio::test]
    async fn all_in_statuses_reads_every_page() {
        let store = MemoryStore::new();
        let batch = (0..450)
            .map(|i| AlertRecord {
                alert: alert(&format!("fp-{i}"), AlertState::Firing, 0.9),
                audit: None,
            })
            .collect();
        store.record_alerts(batch).await.expect("recorded");
        let new = all_in_statuses(&store, vec![IncidentStatus::New])
            .await
            .expect("listed");
        let ids: std::collections::HashSet<_> = new.iter().map(|i| i.id).collect();
        assert_eq!((new.len(), ids.len()), (450, 450));
        let none = all_in_statuses(&store, vec![IncidentStatus::Pending])
            .await
            .expect("listed");
        assert!(none.is_empty());
    }
}
