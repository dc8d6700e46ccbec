//! The store: the agent's memory, as a few role traits with request
//! structs. A backend implements every role by persisting; it never decides
//! — the incident lifecycle is [`crate::lifecycle`]. [`MetadataStore`] is
//! the sum of the roles, for embedders who want one object; components take
//! the narrowest role they need. [`crate::testing::conformance`] holds the
//! scenarios every backend must pass; [`observed`] is a layer that reports
//! every operation to an observer.
//!
//! Every transition is atomic: implementations make the check and the write
//! one transaction, so that concurrent callers (and replicas) observe
//! exactly-once behaviour. No method has a default body: a layer that forgot
//! to forward one would otherwise fall back silently, e.g. to two commits per
//! alert instead of one. The fallbacks are functions to call explicitly:
//! [`count_by_listing`], [`record_then_audit`].

pub mod observed;
mod page;
mod requests;
mod roles;

pub use observed::{Committed, Observed, StoreObserver, StoreOp};
pub use page::PageKey;
pub use requests::*;
pub use roles::*;

use crate::domain::*;
use crate::{DeploymentId, IncidentId, Result, RunId};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// One setting ([`SettingStore`]): its key, value and version (1 after
/// the first write, one more after each).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Setting {
    /// The key, e.g. `window/…` or `autonomy/scale_up/local_instance`.
    pub key: String,
    /// The document.
    pub value: serde_json::Value,
    /// The version a compare-and-set write expects.
    pub version: u64,
}

/// The setting `key` as a `T`, if set; [`crate::Error::Invalid`] when it
/// does not parse.
pub async fn read_setting<S, T>(store: &S, key: &str) -> Result<Option<T>>
where
    S: SettingStore + ?Sized,
    T: serde::de::DeserializeOwned,
{
    store.get_setting(key).await?.map(parse_setting).transpose()
}

/// Every setting under `prefix` as a `T`, by key.
pub async fn read_settings<S, T>(store: &S, prefix: &str) -> Result<Vec<T>>
where
    S: SettingStore + ?Sized,
    T: serde::de::DeserializeOwned,
{
    store
        .list_settings(prefix)
        .await?
        .into_iter()
        .map(parse_setting)
        .collect()
}

fn parse_setting<T: serde::de::DeserializeOwned>(setting: Setting) -> Result<T> {
    serde_json::from_value(setting.value)
        .map_err(|e| crate::Error::invalid(format!("setting {}", setting.key), e.to_string()))
}

/// Changes the setting `key` by read-modify-write: `change` gets the
/// stored document (or `T::default()` when unset), and the result is
/// written by compare-and-set, read again and retried when another writer
/// came first. Returns the written document and what `change` returned.
///
/// Updates of one key in this process take turns (a lock per key), so only
/// another process (a replica) can come first: one read and one write
/// each, instead of a retry round for every update that ran at the same
/// time.
pub async fn update_setting<S, T, R>(
    store: &S,
    key: &str,
    mut change: impl FnMut(&mut T) -> R,
) -> Result<(T, R)>
where
    S: SettingStore + ?Sized,
    T: Serialize + serde::de::DeserializeOwned + Default,
{
    const ATTEMPTS: usize = 50;
    let turn = turn(key);
    let _turn = turn.lock().await;
    let mut last = None;
    for _ in 0..ATTEMPTS {
        let stored = store.get_setting(key).await?;
        let version = stored.as_ref().map_or(0, |s| s.version);
        let mut doc: T = match stored {
            Some(s) => serde_json::from_value(s.value)
                .map_err(|e| crate::Error::invalid(format!("setting {key}"), e.to_string()))?,
            None => T::default(),
        };
        let out = change(&mut doc);
        let value = serde_json::to_value(&doc)
            .map_err(|e| crate::Error::invalid(format!("setting {key}"), e.to_string()))?;
        match store.put_setting(key, &value, version).await {
            Ok(_) => return Ok((doc, out)),
            Err(e @ crate::Error::Conflict { .. }) => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| crate::Error::conflict(format!("setting {key}"), "no attempt")))
}

/// The lock that updates of setting `key` in this process take turns by.
/// Process-wide (a key names the same document in every store a process
/// opens; two stores that share a key name only wait for each other). An
/// entry lives while an update holds or waits for it.
fn turn(key: &str) -> std::sync::Arc<tokio::sync::Mutex<()>> {
    use std::collections::HashMap;
    use std::sync::{Arc, LazyLock, Mutex, PoisonError, Weak};
    type Turns = Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>;
    static TURNS: LazyLock<Turns> = LazyLock::new(Turns::default);
    let mut turns = TURNS.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(turn) = turns.get(key).and_then(Weak::upgrade) {
        return turn;
    }
    turns.retain(|_, t| t.strong_count() > 0);
    let turn = Arc::new(tokio::sync::Mutex::new(()));
    turns.insert(key.to_owned(), Arc::downgrade(&turn));
    turn
}

/// What recording an alert did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum IngestOutcome {
    /// A new incident was opened; it needs a decision.
    Opened,
    /// An open incident with the fingerprint was updated; no new decision.
    Repeated,
    /// A resolved alert closed the open incident.
    Resolved,
    /// A resolved alert arrived for no open incident (or one that is
    /// executing or executed — awaiting its re-check — whose feedback step
    /// decides), or an alert (firing or resolved) of an episode already
    /// resolved — the latest incident of its fingerprint is `resolved` and
    /// has the same `started_at`: a lagging repeat, an HA peer's late copy,
    /// the source's own late resolution. Then the incident is that one;
    /// nothing changed but the record.
    Noted,
}

impl IngestOutcome {
    /// The outcome's name as serialized (`opened`, `repeated`, `resolved`, `noted`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Opened => "opened",
            Self::Repeated => "repeated",
            Self::Resolved => "resolved",
            Self::Noted => "noted",
        }
    }
}

/// The audit record of an alert's ingest: `template` with the incident id and
/// the outcome (`opened`, `resolved`, `noted`) filled in; `None` for repeats
/// and for alerts without an incident (nothing to hang it on).
pub fn alert_audit(ingest: &AlertIngest, template: &AuditRecord) -> Option<AuditRecord> {
    let (incident, outcome) = alert_audit_subject(ingest)?;
    let mut record = template.clone().incident(incident);
    record.outcome = outcome.name().to_owned();
    Some(record)
}

/// The incident and outcome an alert's ingest is audited under (see
/// [`alert_audit`]), for a store that writes the template as it is.
pub fn alert_audit_subject(ingest: &AlertIngest) -> Option<(IncidentId, IngestOutcome)> {
    let incident = ingest.incident.as_ref()?;
    (ingest.outcome != IngestOutcome::Repeated).then_some((incident.id, ingest.outcome))
}

/// [`IncidentStore::incident_counts`] by listing every incident: for a store
/// with no cheaper way to count.
pub async fn count_by_listing<S: IncidentStore + ?Sized>(store: &S) -> Result<IncidentCounts> {
    Ok(IncidentCounts::of(
        &store.list_incidents(&IncidentQuery::default()).await?,
    ))
}

/// [`IncidentStore::record_alerts`] one alert at a time in two steps, for a
/// store that cannot write an alert and its audit in one transaction: the
/// alert (`record`), then its audit. An audit that cannot be appended is
/// logged, not an error: the alert is recorded either way.
pub async fn record_then_audit<S, F, Fut>(
    store: &S,
    batch: Vec<AlertRecord>,
    mut record: F,
) -> Result<Vec<AlertIngest>>
where
    S: HistoryStore + ?Sized,
    F: FnMut(Alert) -> Fut,
    Fut: std::future::Future<Output = Result<AlertIngest>>,
{
    validate_alerts(&batch)?;
    let mut ingests = Vec::with_capacity(batch.len());
    for AlertRecord { alert, audit } in batch {
        let ingest = record(alert).await?;
        if let Some(record) = audit.and_then(|a| alert_audit(&ingest, &a)) {
            if let Err(e) = store.append_audit(&record).await {
                tracing::warn!(step = ?record.step, error = %e, "audit append failed");
            }
        }
        ingests.push(ingest);
    }
    Ok(ingests)
}

/// Validates every alert of a batch for [`IncidentStore::record_alerts`],
/// so that a bad one rejects the batch before anything is recorded.
pub fn validate_alerts(batch: &[AlertRecord]) -> Result<()> {
    batch.iter().try_for_each(|r| r.alert.validate())
}

/// One alert to record, with the template of its audit record.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertRecord {
    /// The alert.
    pub alert: Alert,
    /// The audit template ([`alert_audit`] fills in the incident and the
    /// outcome); `None` records the alert without one.
    pub audit: Option<AuditRecord>,
}

impl From<(Alert, AuditRecord)> for AlertRecord {
    fn from((alert, audit): (Alert, AuditRecord)) -> Self {
        Self {
            alert,
            audit: Some(audit),
        }
    }
}

/// Result of [`IncidentStore::incident_counts`]. Keys with a count of zero
/// are absent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IncidentCounts {
    /// Incidents by status.
    pub by_status: HashMap<IncidentStatus, u64>,
    /// Decided incidents by the kind of the recommended action.
    pub by_action: HashMap<ActionKind, u64>,
}

impl IncidentCounts {
    /// Counts `incidents`.
    pub fn of(incidents: &[Incident]) -> Self {
        let mut counts = Self::default();
        for i in incidents {
            *counts.by_status.entry(i.status).or_default() += 1;
            if let Some(d) = &i.decision {
                *counts
                    .by_action
                    .entry(d.recommended_action.kind())
                    .or_default() += 1;
            }
        }
        counts
    }
}

/// Result of [`RecordAlert::record_alert`].
#[derive(Clone, Debug, PartialEq)]
pub struct AlertIngest {
    /// What happened.
    pub outcome: IngestOutcome,
    /// The incident, when there is one.
    pub incident: Option<Incident>,
}

/// Result of [`IncidentStore::claim_execution`].
#[derive(Clone, Debug, PartialEq)]
pub enum Claim {
    /// This caller owns the execution; the incident is now `executing`.
    Claimed(Incident),
    /// The kill-switch is engaged; the incident is now `blocked`.
    Blocked(Incident),
    /// The incident is not `approved` or `auto` (already claimed, rejected, …).
    NotClaimable(Incident),
}

impl Claim {
    /// The incident, as the claim left it.
    pub fn incident(&self) -> &Incident {
        match self {
            Claim::Claimed(i) | Claim::Blocked(i) | Claim::NotClaimable(i) => i,
        }
    }

    /// The claim a [`crate::lifecycle::claim`] step gives, with the incident
    /// as it is after the step.
    pub fn of(step: crate::lifecycle::ClaimStep, incident: Incident) -> Self {
        use crate::lifecycle::ClaimStep;
        match step {
            ClaimStep::Execute => Claim::Claimed(incident),
            ClaimStep::Block => Claim::Blocked(incident),
            ClaimStep::NotClaimable => Claim::NotClaimable(incident),
        }
    }
}

/// Result of [`IncidentStore::set_kill_switch`].
#[derive(Clone, Debug, PartialEq)]
pub struct KillSwitchChange {
    /// The new state.
    pub state: KillSwitch,
    /// Incidents moved to `blocked` (engage) or back to `pending` (release).
    pub affected: Vec<IncidentId>,
}

/// Which incidents to list (all conditions must hold).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct IncidentQuery {
    /// Only these statuses (all when empty).
    #[serde(default)]
    pub statuses: Vec<IncidentStatus>,
    /// Only this alert severity.
    #[serde(default)]
    pub severity: Option<Severity>,
    /// Only this resource.
    #[serde(default)]
    pub resource: Option<String>,
    /// At most this many, newest first.
    #[serde(default)]
    pub limit: Option<usize>,
    /// Only incidents after this one in the order (the next page).
    #[serde(skip)]
    pub after: Option<PageKey<IncidentId>>,
}

impl IncidentQuery {
    /// Whether an incident matches (for stores that filter in memory).
    pub fn matches(&self, incident: &Incident) -> bool {
        (self.statuses.is_empty() || self.statuses.contains(&incident.status))
            && self.severity.is_none_or(|s| incident.alert.severity == s)
            && self
                .resource
                .as_ref()
                .is_none_or(|r| &incident.alert.resource == r)
            && self
                .after
                .is_none_or(|k| k.precedes(incident.created_at, incident.id))
    }
}

/// Which runs to list.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RunQuery {
    /// Only runs that produced this deployment.
    #[serde(default)]
    pub deployment_id: Option<DeploymentId>,
    /// At most this many, newest first.
    #[serde(default)]
    pub limit: Option<usize>,
    /// Only runs after this one in the order (the next page).
    #[serde(skip)]
    pub after: Option<PageKey<RunId>>,
}

impl RunQuery {
    /// Whether a run matches (for stores that filter in memory).
    pub fn matches(&self, run: &Run) -> bool {
        self.deployment_id
            .is_none_or(|d| run.deployment_id == Some(d))
            && self
                .after
                .is_none_or(|k| k.precedes(run.created_at, run.id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Settings of a [`crate::testing::MemoryStore`] whose reads take a
    /// moment to answer (as a database's do), counting compare-and-set
    /// conflicts.
    struct SlowReads {
        inner: crate::testing::MemoryStore,
        conflicts: std::sync::atomic::AtomicUsize,
    }

    impl StoreBackend for SlowReads {
        fn name(&self) -> &str {
            "slow-reads"
        }
    }

    #[async_trait::async_trait]
    impl SettingStore for SlowReads {
        async fn get_setting(&self, key: &str) -> crate::Result<Option<Setting>> {
            let read = self.inner.get_setting(key).await;
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            read
        }
        async fn list_settings(&self, prefix: &str) -> crate::Result<Vec<Setting>> {
            self.inner.list_settings(prefix).await
        }
        async fn put_setting(
            &self,
            key: &str,
            value: &serde_json::Value,
            expected: u64,
        ) -> crate::Result<u64> {
            let put = self.inner.put_setting(key, value, expected).await;
            if let Err(crate::Error::Conflict { .. }) = put {
                self.conflicts
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            put
        }
        async fn delete_setting(&self, key: &str) -> crate::Result<bool> {
            self.inner.delete_setting(key).await
        }
    }

    /// Concurrent updates of one key in one process take turns: each is
    /// counted, none retries (without the turns all eight read version 0
    /// and seven conflict).
    #[tokio::test]
    async fn concurrent_updates_of_a_key_take_turns_without_conflicts() {
        let store = std::sync::Arc::new(SlowReads {
            inner: crate::testing::MemoryStore::new(),
            conflicts: Default::default(),
        });
        let mut updates = tokio::task::JoinSet::new();
        for _ in 0..8 {
            let store = store.clone();
            updates.spawn(async move {
                update_setting(store.as_ref(), "test/turns", |n: &mut u64| *n += 1).await
            });
        }
        while let Some(done) = updates.join_next().await {
            done.expect("joined").expect("updated");
        }
        let read = update_setting(store.as_ref(), "test/turns", |_: &mut u64| ()).await;
        let (n, ()) = read.expect("read");
        assert_eq!(n, 8);
        let conflicts = store.conflicts.load(std::sync::atomic::Ordering::SeqCst);
        assert_eq!(conflicts, 0, "updates of one key conflicted");
    }

    #[test]
    fn ingest_outcome_names_are_their_serialized_form() {
        use IngestOutcome::*;
        for o in [Opened, Repeated, Resolved, Noted] {
            assert_eq!(serde_json::to_value(o).expect("serialize"), o.name());
        }
    }
}
