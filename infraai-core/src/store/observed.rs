//! A layer that reports every store operation — its name, how long it took,
//! whether it failed, and what a committed lifecycle change was — to a
//! [`StoreObserver`] (metrics, tracing), then answers as the inner store did.
//!
//! Decisions and executions happen on many paths (decision workers,
//! approvals over the API and the chat channels, the threshold watcher,
//! recovery after a restart); every one of them ends in a store write, so an
//! observer of the committed writes counts each outcome exactly once.

use super::*;
use crate::{Error, RunId};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a committed operation changed in the lifecycle, when it did.
#[derive(Clone, Copy, Debug)]
pub enum Committed<'a> {
    /// Nothing the lifecycle tracks (a read, or a write of history).
    Nothing,
    /// `record_decision`: the incident as decided (its decision and the
    /// status it was routed to).
    Decided(&'a Incident),
    /// `transition` from one of `from` to the incident's status.
    Moved {
        /// The statuses the move was allowed from.
        from: &'a [IncidentStatus],
        /// The incident after the move.
        incident: &'a Incident,
    },
    /// `claim_execution`'s answer.
    Claimed(&'a Claim),
}

/// One finished store operation.
#[derive(Clone, Copy, Debug)]
pub struct StoreOp<'a> {
    /// The operation (`record_alerts`, `transition`, …).
    pub name: &'static str,
    /// How long it took.
    pub elapsed: Duration,
    /// `Ok` with what it changed, or the error it failed with.
    pub result: StoreOpResult<'a>,
}

/// Receives every operation of an [`Observed`] store. Must not block.
pub trait StoreObserver: Send + Sync {
    /// Called once per operation, after it finished.
    fn observe(&self, op: &StoreOp<'_>);
}

/// The layer: forwards everything to `inner`, reporting to `observer`.
pub struct Observed {
    inner: Arc<dyn MetadataStore>,
    observer: Arc<dyn StoreObserver>,
}

impl Observed {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn MetadataStore>, observer: Arc<dyn StoreObserver>) -> Self {
        Self { inner, observer }
    }

    fn report(&self, name: &'static str, start: Instant, result: StoreOpResult<'_>) {
        let elapsed = start.elapsed();
        self.observer.observe(&StoreOp {
            name,
            elapsed,
            result,
        });
    }

    async fn timed<T>(
        &self,
        name: &'static str,
        op: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        let start = Instant::now();
        let result = op.await;
        self.report(name, start, result.as_ref().map(nothing));
        result
    }
}

type StoreOpResult<'a> = std::result::Result<Committed<'a>, &'a Error>;

fn nothing<T>(_: &T) -> Committed<'_> {
    Committed::Nothing
}

/// Implements a role by forwarding the listed methods, each observed as
/// [`Committed::Nothing`]; the methods after the list are written out.
macro_rules! forward {
    ($role:ident { $(fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty;)* } $($own:tt)*) => {
        #[async_trait]
        impl $role for Observed {
            $(async fn $name(&self, $($arg: $ty),*) -> Result<$ret> {
                self.timed(stringify!($name), self.inner.$name($($arg),*)).await
            })*
            $($own)*
        }
    };
}

impl StoreBackend for Observed {
    fn name(&self) -> &str {
        self.inner.name()
    }
}

forward!(RunStore {
    fn put_run(run: &Run) -> ();
    fn get_run(id: RunId) -> Option<Run>;
    fn list_runs(query: &RunQuery) -> Vec<Run>;
    fn put_deployment(deployment: &Deployment) -> ();
    fn get_deployment(id: DeploymentId) -> Option<Deployment>;
    fn list_deployments() -> Vec<Deployment>;
    fn find_deployment_by_resource(resource: &str) -> Option<Deployment>;
});

forward!(HistoryStore {
    fn append_audit(record: &AuditRecord) -> ();
    fn list_audit(query: &AuditQuery) -> Vec<AuditRecord>;
    fn record_approval(approval: &ApprovalRecord) -> ();
    fn list_approvals(id: IncidentId) -> Vec<ApprovalRecord>;
    fn record_action(outcome: &ActionOutcome) -> ();
    fn list_actions(id: IncidentId) -> Vec<ActionOutcome>;
    fn count_actions_since(resource: &str, since: DateTime<Utc>) -> u64;
});

forward!(LeaseStore {
    fn claim_job(key: &str, lease: Lease<'_>) -> Option<Job>;
    fn claim_abandoned_jobs(lease: Lease<'_>, limit: usize) -> Vec<Job>;
    fn renew_job(key: &str, lease: Lease<'_>) -> bool;
    fn release_job(release: Release<'_>) -> bool;
    fn get_cursor(name: &str) -> Option<i64>;
    fn set_cursor(name: &str, value: i64) -> ();
});

forward!(SettingStore {
    fn get_setting(key: &str) -> Option<Setting>;
    fn list_settings(prefix: &str) -> Vec<Setting>;
    fn put_setting(key: &str, value: &serde_json::Value, expected: u64) -> u64;
    fn delete_setting(key: &str) -> bool;
});

forward!(IncidentStore {
    fn record_alerts(batch: Vec<AlertRecord>) -> Vec<AlertIngest>;
    fn get_incident(id: IncidentId) -> Option<Incident>;
    fn list_incidents(query: &IncidentQuery) -> Vec<Incident>;
    fn incident_counts() -> IncidentCounts;
    fn kill_switch() -> KillSwitch;
    fn set_kill_switch(request: KillSwitchRequest<'_>) -> KillSwitchChange;
}
    async fn record_decision(&self, record: DecisionRecord<'_>) -> Result<Incident> {
        let start = Instant::now();
        let result = self.inner.record_decision(record).await;
        let decided = result.as_ref().map(Committed::Decided);
        self.report("record_decision", start, decided);
        result
    }

    async fn transition(&self, change: Transition<'_>) -> Result<Incident> {
        let start = Instant::now();
        let result = self.inner.transition(change).await;
        let moved = |incident| Committed::Moved {
            from: change.from,
            incident,
        };
        self.report("transition", start, result.as_ref().map(moved));
        result
    }

    async fn claim_execution(&self, id: IncidentId) -> Result<Claim> {
        let start = Instant::now();
        let result = self.inner.claim_execution(id).await;
        let claimed = result.as_ref().map(Committed::Claimed);
        self.report("claim_execution", start, claimed);
        result
    }

    async fn transition_and_claim(&self, change: Transition<'_>) -> Result<Claim> {
        let start = Instant::now();
        let result = self.inner.transition_and_claim(change).await;
        let claimed = result.as_ref().map(Committed::Claimed);
        self.report("transition_and_claim", start, claimed);
        result
    }
);

#[cfg(all(test, feature = "testing"))]
mod tests {
    use super::*;
    use crate::testing::MemoryStore;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Names(Mutex<Vec<(&'static str, bool)>>);

    impl StoreObserver for Names {
        fn observe(&self, op: &StoreOp<'_>) {
            let committed = matches!(op.result, Ok(Committed::Moved { .. }));
            let mut names = self.0.lock().unwrap_or_else(|p| p.into_inner());
            names.push((op.name, committed || op.result.is_err()));
        }
    }

    #[tokio::test]
    async fn every_operation_is_reported_once_with_what_it_committed() {
        let names = Arc::new(Names::default());
        let store = Observed::new(Arc::new(MemoryStore::new()), names.clone());
        let alert = crate::testing::alert("observed", AlertState::Firing, 0.9);
        let id = store.record_alert(&alert).await.expect("record").incident;
        let id = id.expect("opened").id;
        let to = IncidentStatus::Resolved;
        let change = Transition::new(id, &[IncidentStatus::New], to);
        store.transition(change).await.expect("move");
        assert!(store.transition(change).await.is_err());
        let seen = names.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let want = [
            ("record_alerts", false),
            ("transition", true),
            ("transition", true),
        ];
        assert_eq!(seen, want);
    }
}
