//! Background work that runs once across the replicas sharing a store.
//!
//! Every piece of such work is a [`Job`] in the store, held by one replica at
//! a time under a lease that its holder renews while it works ([`Held`]):
//!
//! * `incident:<id>` — an incident being decided, executed or re-checked.
//!   [`crate::OpsAgent`] takes it before it decides, before it claims an
//!   execution, and keeps it through the feedback wait, so a replica that
//!   dies mid-way leaves a job another replica takes over once the lease
//!   ends ([`crate::OpsAgent::advance`] finishes what it can tell was left).
//! * `loop:<name>` — a singleton loop such as the threshold watcher or the
//!   Telegram poller: it runs on whichever replica holds the job.
//!
//! [`JobRunner`] is the per-replica driver: it starts the loops it can take,
//! and every poll takes over abandoned jobs.
//!
//! ```no_run
//! # async fn demo(ops: std::sync::Arc<infraai_core::OpsAgent>) {
//! use infraai_core::jobs::JobRunner;
//! let runner = JobRunner::new(ops).with_loop("heartbeat", || async {
//!     loop {
//!         tokio::time::sleep(std::time::Duration::from_secs(5)).await;
//!         tracing::info!("one replica says hello");
//!     }
//! });
//! runner.run(std::future::pending()).await;
//! # }
//! ```

use crate::domain::Job;
use crate::traits::LeaseStore;
use crate::{IncidentId, Lease, OpsAgent, Release, Result};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{info, warn, Instrument};

/// The lease of a job unless configured otherwise.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);

/// How often [`JobRunner`] looks for abandoned jobs unless configured otherwise.
pub const DEFAULT_POLL: Duration = Duration::from_secs(1);

/// What a job key names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobKey {
    /// An incident in flight.
    Incident(IncidentId),
    /// A singleton loop.
    Loop(String),
}

impl JobKey {
    /// Parses `incident:<id>` or `loop:<name>`.
    pub fn parse(key: &str) -> Option<Self> {
        match key.split_once(':')? {
            ("incident", id) => id.parse().ok().map(Self::Incident),
            ("loop", name) if !name.is_empty() => Some(Self::Loop(name.to_owned())),
            _ => None,
        }
    }
}

impl std::fmt::Display for JobKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Incident(id) => write!(f, "incident:{id}"),
            Self::Loop(name) => write!(f, "loop:{name}"),
        }
    }
}

/// A job this replica holds. Its lease is renewed in the background every
/// third of the lease until it is finished, released or dropped; dropping it
/// (say, after an error) lets the lease run out, and another replica — or
/// this one — takes the job over then.
pub struct Held {
    store: Arc<dyn LeaseStore>,
    job: Job,
    owner: String,
    lost: watch::Receiver<bool>,
    renewer: tokio::task::JoinHandle<()>,
}

impl Held {
    /// Takes `key` for `owner` (see [`LeaseStore::claim_job`]); `None`
    /// while another holder's lease runs.
    pub async fn take(
        store: Arc<dyn LeaseStore>,
        key: &JobKey,
        owner: &str,
        lease: Duration,
    ) -> Result<Option<Self>> {
        let job = store
            .claim_job(&key.to_string(), Lease::new(owner, lease))
            .await?;
        Ok(job.map(|job| Self::adopt(store, job, lease)))
    }

    /// Holds a job already claimed (by [`LeaseStore::claim_abandoned_jobs`]).
    pub fn adopt(store: Arc<dyn LeaseStore>, job: Job, lease: Duration) -> Self {
        let owner = job.owner.clone().unwrap_or_default();
        let (lost_tx, lost) = watch::channel(false);
        let renewer =
            {
                let (store, key, owner) = (store.clone(), job.key.clone(), owner.clone());
                tokio::spawn(async move {
                let mut tick = tokio::time::interval(lease / 3);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    match store.renew_job(&key, Lease::new(&owner, lease)).await {
                        Ok(true) => {}
                        Ok(false) => {
                            warn!(job = %key, "lease lost: another replica took the job over");
                            let _ = lost_tx.send(true);
                            break;
                        }
                        // Transient: the lease still runs; try again next tick.
                        Err(e) => warn!(job = %key, error = %e, "lease renewal failed"),
                    }
                }
            }.in_current_span())
            };
        Self {
            store,
            job,
            owner,
            lost,
            renewer,
        }
    }

    /// The job as claimed (`claims` > 1 means another holder gave it up or died).
    pub fn job(&self) -> &Job {
        &self.job
    }

    /// Completes when the lease is lost to another replica.
    pub async fn lost(&self) {
        let mut lost = self.lost.clone();
        let _ = lost.wait_for(|l| *l).await;
    }

    /// Deletes the finished job.
    pub async fn finish(self) {
        self.end(true).await
    }

    /// Gives the job up unfinished, for another replica to take at once.
    pub async fn release(self) {
        self.end(false).await
    }

    /// Finishes the job after `result` succeeded (or failed for want of what
    /// it works on, which no retry fixes); after another error, lets the
    /// lease run out so the job is tried again then.
    pub async fn conclude<T>(self, result: &Result<T>) {
        match result {
            Ok(_) | Err(crate::Error::NotFound { .. }) => self.finish().await,
            Err(e) => {
                warn!(job = %self.job.key, error = %e, "job failed; it is retried when its lease ends")
            }
        }
    }

    async fn end(self, finished: bool) {
        self.renewer.abort();
        match self
            .store
            .release_job(Release {
                key: &self.job.key,
                owner: &self.owner,
                finished,
            })
            .await
        {
            Ok(true) => {}
            Ok(false) => warn!(job = %self.job.key, "the job was no longer held"),
            Err(e) => {
                warn!(job = %self.job.key, error = %e, "could not release the job; its lease will end")
            }
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.renewer.abort();
    }
}

type LoopFn = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// Runs this replica's share of the cluster's background work: the
/// singleton loops it holds, and every job another replica abandoned.
pub struct JobRunner {
    ops: Arc<OpsAgent>,
    loops: BTreeMap<String, LoopFn>,
    poll: Duration,
    decide: Option<UnboundedSender<IncidentId>>,
}

impl JobRunner {
    /// A runner for `ops`, which also names the replica, the lease and the store.
    pub fn new(ops: Arc<OpsAgent>) -> Self {
        Self {
            ops,
            loops: BTreeMap::new(),
            poll: DEFAULT_POLL,
            decide: None,
        }
    }

    /// Sends the `new` incidents recovery finds to this queue (whose workers
    /// call [`OpsAgent::process`]) rather than deciding them in the runner.
    pub fn decisions_to(mut self, queue: UnboundedSender<IncidentId>) -> Self {
        self.decide = Some(queue);
        self
    }

    /// How often to look for abandoned jobs (default [`DEFAULT_POLL`]).
    pub fn poll_every(mut self, poll: Duration) -> Self {
        self.poll = poll;
        self
    }

    /// A loop that must run on one replica at a time: the job `loop:<name>`.
    /// The future should run until it is dropped, which happens when this
    /// replica stops or loses the lease.
    pub fn with_loop<F, Fut>(mut self, name: &str, start: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.loops
            .insert(name.to_owned(), Arc::new(move || Box::pin(start())));
        self
    }

    /// Runs until `stop` completes, then gives up the loops it holds (another
    /// replica takes them at its next poll) and returns. Its logs carry the
    /// replica id.
    pub async fn run(self, stop: impl Future<Output = ()>) {
        let span = tracing::info_span!("jobs", replica = %self.ops.replica_id());
        self.run_here(stop).instrument(span).await
    }

    async fn run_here(self, stop: impl Future<Output = ()>) {
        let (ops, store, owner, lease): (_, Arc<dyn LeaseStore>, _, _) = (
            self.ops.clone(),
            self.ops.store().clone(),
            self.ops.replica_id().to_owned(),
            self.ops.lease(),
        );
        // Incidents no job covers (left by a replica that died before it took
        // one, or written before jobs existed) are looked for once a lease.
        let sweeper = {
            let (ops, decide) = (ops.clone(), self.decide.clone());
            move || {
                let (ops, decide) = (ops.clone(), decide.clone());
                async move {
                    let mut tick = tokio::time::interval(ops.lease());
                    tick.tick().await;
                    loop {
                        tick.tick().await;
                        if let Err(e) = ops.recover(ops.lease() * 2, decide.as_ref()).await {
                            warn!(error = %e, "orphan sweep failed");
                        }
                    }
                }
            }
        };
        let this = self.with_loop("orphans", sweeper);
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut tasks = JoinSet::new();
        // Jobs the replica before this one left (its lease has not ended yet
        // after a restart) are taken over by the polls below.
        for name in this.loops.keys() {
            match Held::take(store.clone(), &JobKey::Loop(name.clone()), &owner, lease).await {
                Ok(Some(held)) => this.spawn(&mut tasks, held, stop_rx.clone()),
                Ok(None) => {}
                Err(e) => warn!(job = %name, error = %e, "could not take the loop"),
            }
        }
        {
            let (ops, decide) = (ops.clone(), this.decide.clone());
            tasks.spawn(
                async move {
                    match ops.recover(Duration::ZERO, decide.as_ref()).await {
                        Ok(n) => info!(incidents = n, "recovery done"),
                        Err(e) => warn!(error = %e, "recovery failed"),
                    }
                }
                .in_current_span(),
            );
        }
        tokio::pin!(stop);
        let mut tick = tokio::time::interval(this.poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = &mut stop => break,
                _ = tick.tick() => {}
                Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            }
            let jobs = match store
                .claim_abandoned_jobs(Lease::new(&owner, lease), 16)
                .await
            {
                Ok(jobs) => jobs,
                Err(e) => {
                    warn!(error = %e, "looking for abandoned jobs failed");
                    continue;
                }
            };
            for job in jobs {
                info!(job = %job.key, claims = job.claims, "taking over an abandoned job");
                let held = Held::adopt(store.clone(), job, lease);
                this.spawn(&mut tasks, held, stop_rx.clone());
            }
        }
        // Loops give their jobs up for the other replicas; incidents still in
        // flight are dropped with the tasks, and their leases run out.
        let _ = stop_tx.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
    }

    /// Runs a held job: an incident to the end, or a loop until this replica
    /// stops (then releases it) or loses the lease.
    fn spawn(&self, tasks: &mut JoinSet<()>, held: Held, mut stop: watch::Receiver<bool>) {
        match JobKey::parse(&held.job().key) {
            Some(JobKey::Incident(id)) => {
                let ops = self.ops.clone();
                tasks.spawn(
                    async move {
                        let result = ops.advance(id).await;
                        held.conclude(&result).await;
                    }
                    .in_current_span(),
                );
            }
            Some(JobKey::Loop(name)) if self.loops.contains_key(&name) => {
                let body = (self.loops[&name])();
                tasks.spawn(
                    async move {
                        info!(job = %held.job().key, "running the loop on this replica");
                        tokio::select! {
                            _ = body => held.finish().await,
                            _ = held.lost() => {}
                            _ = async { stop.wait_for(|s| *s).await.is_ok() } => held.release().await,
                        }
                    }
                    .in_current_span(),
                );
            }
            // A loop this replica does not run (replicas should share one
            // configuration): its lease runs out for one that does.
            _ => warn!(job = %held.job().key, "no handler for this job on this replica"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{MemoryStore, RecordingActions, RecordingApprover, ScriptedMetrics};
    use crate::{ApproverAllowList, Claim, IncidentStatus, IncidentStore, Transition};
    use chrono::Utc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// An agent on `store` named `replica`, with short leases.
    fn agent(
        store: Arc<MemoryStore>,
        replica: &str,
        actions: Arc<RecordingActions>,
    ) -> Arc<OpsAgent> {
        Arc::new(OpsAgent::new(
            crate::OpsDeps {
                store,
                policy: Arc::new(crate::rules::RulePolicy),
                notifier: Arc::new(RecordingApprover::default()),
                actions,
                metrics: Arc::new(ScriptedMetrics::new(vec![0.2])),
                registry: Arc::new(crate::testing::profiles()),
            },
            crate::Guardrails::new(crate::testing::guardrails()),
            crate::OpsConfig {
                feedback_delay: Duration::from_millis(5),
                approvers: ApproverAllowList::none().allow_all_authenticated("web"),
                replica_id: replica.into(),
                lease: Duration::from_secs(3),
                ..crate::OpsConfig::default()
            },
        ))
    }

    async fn until(what: &str, check: impl Fn() -> bool) {
        for _ in 0..400 {
            if check() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("never happened: {what}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_abandoned_execution_is_taken_over_and_escalated_never_rerun() {
        let t = crate::testing::TestOps::new(
            Arc::new(RecordingApprover::default()),
            ApproverAllowList::none().allow_all_authenticated("web"),
        )
        .await;
        let store = t.store.clone();
        let incident = t.pending_incident("jobs-abandoned").await;
        let key = JobKey::Incident(incident.id).to_string();
        // A replica took the job and claimed the execution, then died: its
        // lease ended a minute ago.
        let long_ago = Utc::now() - chrono::Duration::seconds(60);
        store
            .claim_job(
                &key,
                Lease::new("dead-replica", Duration::from_secs(3)).at(long_ago),
            )
            .await
            .expect("claim")
            .expect("taken");
        store
            .transition(Transition::new(
                incident.id,
                &[IncidentStatus::Pending],
                IncidentStatus::Approved,
            ))
            .await
            .expect("approve");
        assert!(matches!(
            store.claim_execution(incident.id).await.expect("claim"),
            Claim::Claimed(_)
        ));

        let survivor = agent(t.store.clone(), "survivor", t.actions.clone());
        let (stop_tx, mut stop_rx) = watch::channel(false);
        let runner = tokio::spawn(
            JobRunner::new(survivor)
                .poll_every(Duration::from_millis(10))
                .run(async move {
                    let _ = stop_rx.wait_for(|s| *s).await;
                }),
        );
        let id = incident.id;
        let check = store.clone();
        for _ in 0..400 {
            let status = check
                .get_incident(id)
                .await
                .expect("get")
                .expect("exists")
                .status;
            if status == IncidentStatus::Unresolved {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let _ = stop_tx.send(true);
        runner.await.expect("runner");
        let after = store.get_incident(id).await.expect("get").expect("exists");
        assert_eq!(after.status, IncidentStatus::Unresolved);
        assert!(after
            .note
            .unwrap_or_default()
            .contains("outcome is unknown"));
        assert!(t.actions.executed().is_empty(), "never re-run");
        // Finished: the key is free and new.
        let again = store
            .claim_job(&key, Lease::new("probe", Duration::from_secs(3)))
            .await
            .expect("claim")
            .expect("free");
        assert_eq!(again.claims, 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_loop_runs_on_one_replica_and_moves_when_that_replica_stops() {
        let store = Arc::new(MemoryStore::new());
        let actions = Arc::new(RecordingActions::default());
        let runner = |replica: &str, count: Arc<AtomicUsize>| {
            JobRunner::new(agent(store.clone(), replica, actions.clone()))
                .poll_every(Duration::from_millis(10))
                .with_loop("tick", move || {
                    let count = count.clone();
                    async move {
                        loop {
                            count.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                    }
                })
        };
        let (a_count, b_count) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (a_stop, mut a_rx) = watch::channel(false);
        let a = tokio::spawn(runner("replica-a", a_count.clone()).run(async move {
            let _ = a_rx.wait_for(|s| *s).await;
        }));
        until("a runs the loop", || a_count.load(Ordering::SeqCst) > 0).await;
        let b = tokio::spawn(runner("replica-b", b_count.clone()).run(std::future::pending()));
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(b_count.load(Ordering::SeqCst), 0, "one replica at a time");
        // a stops and gives the loop up; b takes it at its next poll.
        let _ = a_stop.send(true);
        a.await.expect("a stopped");
        let stopped_at = a_count.load(Ordering::SeqCst);
        until("b runs the loop", || b_count.load(Ordering::SeqCst) > 0).await;
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert_eq!(
            a_count.load(Ordering::SeqCst),
            stopped_at,
            "a no longer runs it"
        );
        b.abort();
    }

    #[test]
    fn keys_round_trip_and_unknown_keys_are_none() {
        let id = IncidentId::new();
        for key in [JobKey::Incident(id), JobKey::Loop("watcher".into())] {
            assert_eq!(JobKey::parse(&key.to_string()), Some(key));
        }
        for bad in [
            "",
            "incident:",
            "incident:not-an-id",
            "loop:",
            "other:x",
            "watcher",
        ] {
            assert_eq!(JobKey::parse(bad), None, "{bad}");
        }
    }
}
