//! The store's role traits.

use super::*;
use crate::RunId;
use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// What every role shares: the backend's name.
pub trait StoreBackend: Send + Sync {
    /// Backend name (`memory`, `sqlite`, `redis`, `postgres`).
    fn name(&self) -> &str;
}

/// Runs and deployments: what the deploy loop produced.
#[async_trait]
pub trait RunStore: StoreBackend {
    /// Inserts or replaces a run.
    async fn put_run(&self, run: &Run) -> Result<()>;
    /// A run by id.
    async fn get_run(&self, id: RunId) -> Result<Option<Run>>;
    /// Runs matching the query, newest first.
    async fn list_runs(&self, query: &RunQuery) -> Result<Vec<Run>>;
    /// Inserts or replaces a deployment.
    async fn put_deployment(&self, deployment: &Deployment) -> Result<()>;
    /// A deployment by id.
    async fn get_deployment(&self, id: DeploymentId) -> Result<Option<Deployment>>;
    /// All deployments, newest first.
    async fn list_deployments(&self) -> Result<Vec<Deployment>>;
    /// The newest deployment whose resource map holds `resource`.
    async fn find_deployment_by_resource(&self, resource: &str) -> Result<Option<Deployment>>;
}

/// Incidents and the kill-switch: the ops loop's state, moved only along
/// [`crate::lifecycle`], each move one transaction.
#[async_trait]
pub trait IncidentStore: StoreBackend {
    /// Records alerts in order, each deduplicated by fingerprint among open
    /// incidents as [`crate::lifecycle`] says (exactly one of many
    /// concurrent firing alerts with a new fingerprint gets
    /// [`IngestOutcome::Opened`]), with its audit record when it has a
    /// template ([`alert_audit`]: the template with the incident's id and the
    /// outcome filled in) for every outcome but [`IngestOutcome::Repeated`]
    /// that has an incident. Every alert is validated before any is
    /// recorded. A store that can writes the batch, audits included, in one
    /// transaction (all or none, one sync), or a large batch in a few, one
    /// after the other. One that cannot records the alerts one by one. Either
    /// stops at the first error; what was committed before it stays
    /// recorded, and a retry of the batch finds it deduplicated
    /// ([`record_then_audit`] records one by one with two writes per alert).
    /// When this returns, every alert is durable (architecture rule 4).
    async fn record_alerts(&self, batch: Vec<AlertRecord>) -> Result<Vec<AlertIngest>>;
    /// An incident by id.
    async fn get_incident(&self, id: IncidentId) -> Result<Option<Incident>>;
    /// Incidents, newest first.
    async fn list_incidents(&self, query: &IncidentQuery) -> Result<Vec<Incident>>;
    /// How many incidents there are by status, and decisions by action (the
    /// `/metrics` gauges). A store that cannot count without loading every
    /// incident can answer with [`count_by_listing`].
    async fn incident_counts(&self) -> Result<IncidentCounts>;
    /// Stores the one decision of a `new` incident and moves it to `to`.
    /// [`crate::Error::Conflict`] when the incident is no longer `new`.
    async fn record_decision(&self, record: DecisionRecord<'_>) -> Result<Incident>;
    /// Moves an incident from one of `from` to `to` (compare-and-set), with an
    /// optional note. [`crate::Error::Conflict`] when its status is not in
    /// `from`; [`crate::Error::Invalid`] when the lifecycle does not allow the
    /// move ([`crate::lifecycle`]).
    async fn transition(&self, change: Transition<'_>) -> Result<Incident>;
    /// Claims the execution of an `approved` or `auto` incident, reading the
    /// kill-switch in the same transaction (architecture rules 2 and 3).
    async fn claim_execution(&self, id: IncidentId) -> Result<Claim>;
    /// [`IncidentStore::transition`], then [`IncidentStore::claim_execution`]
    /// of the moved incident: in one transaction where the store can
    /// (PostgreSQL, SQLite), so that the move, its approval record and the claim
    /// commit together or not at all. By default the two calls, one after
    /// the other (a crash in between leaves the incident moved and
    /// unclaimed, as between two calls of the caller: recovery takes it up).
    async fn transition_and_claim(&self, change: Transition<'_>) -> Result<Claim> {
        self.transition(change).await?;
        self.claim_execution(change.id).await
    }
    /// The kill-switch state.
    async fn kill_switch(&self) -> Result<KillSwitch>;
    /// Engages or releases the kill-switch. Engaging moves every `pending`,
    /// `approved` and `auto` incident to `blocked`; releasing moves every
    /// `blocked` incident back to `pending` (a human must approve again). Both
    /// in the same transaction as the switch itself.
    async fn set_kill_switch(&self, request: KillSwitchRequest<'_>) -> Result<KillSwitchChange>;
}

/// History: the append-only audit log, human approvals and action outcomes.
#[async_trait]
pub trait HistoryStore: StoreBackend {
    /// Appends an audit record (the log is append-only: there is no update or
    /// delete, and a record whose id is already stored is
    /// [`crate::Error::Conflict`], leaving the stored one unchanged).
    async fn append_audit(&self, record: &AuditRecord) -> Result<()>;
    /// Audit records, oldest first (the newest `limit` when a limit is set).
    async fn list_audit(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>>;
    /// Stores a human approval or rejection.
    async fn record_approval(&self, approval: &ApprovalRecord) -> Result<()>;
    /// Approvals of an incident, oldest first.
    async fn list_approvals(&self, id: IncidentId) -> Result<Vec<ApprovalRecord>>;
    /// Stores an action outcome.
    async fn record_action(&self, outcome: &ActionOutcome) -> Result<()>;
    /// Actions of an incident, oldest first.
    async fn list_actions(&self, id: IncidentId) -> Result<Vec<ActionOutcome>>;
    /// How many actions ran on `resource` since `since` (for the guardrails' budget).
    async fn count_actions_since(&self, resource: &str, since: DateTime<Utc>) -> Result<u64>;
}

/// Leases and cursors: background jobs that run once across replicas, and
/// named positions in external feeds.
#[async_trait]
pub trait LeaseStore: StoreBackend {
    /// Takes the job `key` for the lease's owner until the lease ends: it
    /// is created when absent, and taken when nobody holds it or its
    /// holder's lease ended at or before `lease.now`. `None` while any
    /// holder's lease runs — the owner's included, so one replica never runs
    /// a job twice.
    async fn claim_job(&self, key: &str, lease: Lease<'_>) -> Result<Option<Job>>;
    /// Takes up to `limit` jobs that nobody holds or whose lease ended at or
    /// before `lease.now`, longest abandoned first, each as
    /// [`Self::claim_job`] would. Concurrent callers never get the same job.
    async fn claim_abandoned_jobs(&self, lease: Lease<'_>, limit: usize) -> Result<Vec<Job>>;
    /// Extends the owner's lease on `key` to the lease's end; `false` when
    /// the owner no longer holds it (another replica took it after the lease
    /// ended, or it is finished).
    async fn renew_job(&self, key: &str, lease: Lease<'_>) -> Result<bool>;
    /// Ends the owner's hold on the job: deletes it when finished, else
    /// leaves it for another replica to take at once. `false` when the owner
    /// did not hold it.
    async fn release_job(&self, release: Release<'_>) -> Result<bool>;
    /// A named cursor (e.g. the Telegram `getUpdates` offset), if set.
    async fn get_cursor(&self, name: &str) -> Result<Option<i64>>;
    /// Sets a named cursor durably.
    async fn set_cursor(&self, name: &str, value: i64) -> Result<()>;
}

/// Settings: small named JSON documents that operators and the agent
/// change at run time (change windows, earned-autonomy records, the day's
/// automatic spend), each written by compare-and-set on its version so
/// that concurrent writers (and replicas) never lose an update.
#[async_trait]
pub trait SettingStore: StoreBackend {
    /// The setting `key`, if set.
    async fn get_setting(&self, key: &str) -> Result<Option<Setting>>;
    /// Every setting whose key starts with `prefix`, ordered by key.
    async fn list_settings(&self, prefix: &str) -> Result<Vec<Setting>>;
    /// Writes `value` under `key` when the stored version is still
    /// `expected` (0: the key is absent) and returns the new version
    /// (`expected + 1`); [`crate::Error::Conflict`] when another writer
    /// changed it first.
    async fn put_setting(&self, key: &str, value: &serde_json::Value, expected: u64)
        -> Result<u64>;
    /// Deletes `key`; `false` when it was not set.
    async fn delete_setting(&self, key: &str) -> Result<bool>;
}

/// The agent's whole memory: every role, for embedders who want one object.
/// Implemented for every type that implements the roles; an
/// `Arc<dyn MetadataStore>` upcasts to the role a component takes.
pub trait MetadataStore:
    RunStore + IncidentStore + HistoryStore + LeaseStore + SettingStore
{
}

impl<T: RunStore + IncidentStore + HistoryStore + LeaseStore + SettingStore + ?Sized> MetadataStore
    for T
{
}

/// Recording one alert, without an audit record: a batch of one through
/// [`IncidentStore::record_alerts`], the one path.
#[async_trait]
pub trait RecordAlert {
    /// Records `alert` as [`IncidentStore::record_alerts`] does, with no
    /// audit record. When this returns, the alert is durable.
    async fn record_alert(&self, alert: &Alert) -> Result<AlertIngest>;
}

#[async_trait]
impl<T: IncidentStore + ?Sized> RecordAlert for T {
    async fn record_alert(&self, alert: &Alert) -> Result<AlertIngest> {
        let batch = vec![AlertRecord {
            alert: alert.clone(),
            audit: None,
        }];
        self.record_alerts(batch).await?.pop().ok_or_else(|| {
            crate::Error::backend(
                self.name(),
                "record_alerts",
                false,
                "a batch of one alert was answered with no result",
            )
        })
    }
}
