//! The conformance suite every [`MetadataStore`] must pass.
//!
//! Call [`run_all`] from a backend's tests with a fresh, empty store. Each
//! scenario is also public so a backend can run them one by one. Scenarios
//! use their own fingerprints and ids, so they can share one store, but they
//! must run one after another (one of them flips the global kill-switch).
//!
//! Persistent stores also run [`survives_reopen`], which takes a closure that
//! opens the store again on the same data.

use super::alert;
use crate::domain::*;
use crate::traits::*;
use crate::{ActionId, AuditId, DeploymentId, Error, IncidentId, RunId};
use chrono::{DateTime, Duration, Utc};
use std::collections::BTreeMap;
use std::sync::Arc;

mod execution;
mod history;
mod incidents;
mod leases;
mod runs;
mod settings;

pub use execution::*;
pub use history::*;
pub use incidents::*;
pub use leases::*;
pub use runs::*;
pub use settings::*;

/// Runs every scenario in order.
pub async fn run_all(store: Arc<dyn MetadataStore>) {
    runs_round_trip(store.as_ref()).await;
    deployments_round_trip(store.as_ref()).await;
    alerts_deduplicate_by_fingerprint(store.as_ref()).await;
    concurrent_alerts_open_one_incident(store.clone()).await;
    decision_is_recorded_once(store.as_ref()).await;
    proposals_replace_an_escalated_decision(store.as_ref()).await;
    transitions_compare_and_set(store.as_ref()).await;
    illegal_transitions_are_refused(store.as_ref()).await;
    incidents_filter_by_status_severity_resource(store.as_ref()).await;
    concurrent_claims_execute_once(store.clone()).await;
    hundred_way_approve_and_claim_race(store.clone()).await;
    transition_and_claim_moves_and_claims(store.as_ref()).await;
    kill_switch_blocks_and_releases(store.as_ref()).await;
    approvals_actions_and_audit(store.as_ref()).await;
    audit_is_append_only(store.as_ref()).await;
    closing_by_transition_frees_the_fingerprint(store.as_ref()).await;
    late_copies_of_a_resolved_episode_do_not_reopen(store.as_ref()).await;
    alert_ingests_are_audited_with_their_outcome(store.as_ref()).await;
    cursors_round_trip(store.as_ref()).await;
    settings_compare_and_set(store.as_ref()).await;
    concurrent_setting_writers_lose_nothing(store.clone()).await;
    jobs_are_leased(store.as_ref()).await;
    abandoned_jobs_are_taken_once(store.clone()).await;
    incident_counts_match_the_incidents(store.as_ref()).await;
    incidents_page_stably_under_inserts(store.as_ref()).await;
    runs_page_stably_under_inserts(store.as_ref()).await;
    audit_trail_pages_back_under_appends(store.as_ref()).await;
}

async fn open(store: &dyn MetadataStore, fingerprint: &str) -> IncidentId {
    store
        .record_alert(&alert(fingerprint, AlertState::Firing, 0.9))
        .await
        .expect("record")
        .incident
        .expect("incident")
        .id
}

fn decision() -> OpsDecision {
    OpsDecision {
        severity: Severity::Warning,
        recommended_action: Action::Restart {},
        requires_approval: false,
        confidence: 0.9,
        reasoning: "conformance".into(),
        risk: Risk::Low,
        precedent: None,
    }
}

/// Everything written (runs, deployments, incidents with decisions, approvals,
/// actions, audit records and the engaged kill-switch) survives closing the
/// store and opening it again. `open` must return a store on the same data;
/// the scenario drops every handle of the first store before reopening, and
/// releases the switch at the end.
pub async fn survives_reopen<F, Fut>(open_store: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Arc<dyn MetadataStore>>,
{
    let store = open_store().await;
    let world = write_the_world(store.as_ref()).await;
    drop(store);

    let store = open_store().await;
    check_runs_and_deployments(store.as_ref(), &world).await;
    check_incident_records(store.as_ref(), &world).await;
    check_job_and_cursor(store.as_ref(), &world).await;
    check_kill_switch(store.as_ref(), &world).await;
}

/// What [`survives_reopen`] wrote before closing the store.
struct World {
    run: Run,
    deployment: Deployment,
    pending: IncidentId,
    /// The pending incident as read back before closing: blocked.
    before: Incident,
    approval: ApprovalRecord,
    action: ActionOutcome,
    audit: AuditRecord,
    cursor: String,
    job_key: String,
    lease: std::time::Duration,
    t0: DateTime<Utc>,
    job: Job,
    change: KillSwitchChange,
}

/// Writes a run, a deployment, a pending incident with its decision, an
/// approval, an action and an audit record, a cursor and a held job, then
/// engages the kill-switch and approves the incident, whose claim blocks it.
async fn write_the_world(store: &dyn MetadataStore) -> World {
    let (run, deployment) = write_run_and_deployment(store).await;
    let (pending, approval, action, audit) = write_incident_records(store).await;
    let cursor = format!("conf-reopen-cursor-{}", IncidentId::new());
    store.set_cursor(&cursor, 7).await.expect("cursor");
    let (job_key, lease, t0) = (
        format!("conf-reopen-job-{}", IncidentId::new()),
        std::time::Duration::from_secs(30),
        Utc::now(),
    );
    let job = store
        .claim_job(&job_key, Lease::new("replica-a", lease).at(t0))
        .await
        .expect("claim")
        .expect("taken");
    let change = store
        .set_kill_switch(KillSwitchRequest::engage("web:dave", Some("reopen test")))
        .await
        .expect("engage");
    assert!(change.affected.is_empty(), "STOP rewrites no incident");
    // Approved while stopped: the claim blocks it.
    store
        .transition(Transition::new(
            pending,
            &[IncidentStatus::Pending],
            IncidentStatus::Approved,
        ))
        .await
        .expect("approve");
    assert!(matches!(
        store.claim_execution(pending).await.expect("claim"),
        Claim::Blocked(_)
    ));
    let before = store
        .get_incident(pending)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(before.status, IncidentStatus::Blocked);
    World {
        run,
        deployment,
        pending,
        before,
        approval,
        action,
        audit,
        cursor,
        job_key,
        lease,
        t0,
        job,
        change,
    }
}

/// A run in planning and a deployment whose resource map names it.
async fn write_run_and_deployment(store: &dyn MetadataStore) -> (Run, Deployment) {
    let mut run = Run::new("reopen goal");
    run.enter(RunPhase::Planning, Some("planning".into()));
    store.put_run(&run).await.expect("put_run");
    let now = Utc::now();
    let deployment = Deployment {
        deployment_id: DeploymentId::new(),
        cloud: "local".into(),
        services: vec!["reopen-web".into()],
        region: "local".into(),
        terraform_state: "/tmp/reopen".into(),
        alert_webhook: Some("http://127.0.0.1:1/alerts".into()),
        resource_map: BTreeMap::from([("reopen-web".to_string(), run.id)]),
        resources: vec![],
        monitoring: vec![],
        outputs: BTreeMap::from([("url".to_string(), serde_json::json!("http://x"))]),
        created_at: now,
        updated_at: now,
    };
    store
        .put_deployment(&deployment)
        .await
        .expect("put_deployment");
    (run, deployment)
}

/// A pending incident with its decision, an approval, an action and an audit record.
async fn write_incident_records(
    store: &dyn MetadataStore,
) -> (IncidentId, ApprovalRecord, ActionOutcome, AuditRecord) {
    let pending = open(store, "conf-reopen-pending").await;
    store
        .record_decision(
            DecisionRecord::new(pending, &decision(), IncidentStatus::Pending)
                .notes(&["why".into()]),
        )
        .await
        .expect("decide");
    let approval = ApprovalRecord {
        incident_id: pending,
        approved: true,
        actor: Actor::new("telegram", "42"),
        effective: false,
        at: Utc::now(),
    };
    store.record_approval(&approval).await.expect("approval");
    let action = ActionOutcome {
        id: ActionId::new(),
        incident_id: pending,
        action: Action::Restart {},
        resource: "reopen-web".into(),
        success: false,
        summary: "failed".into(),
        details: serde_json::json!({"op": 1}),
        started_at: Utc::now(),
        finished_at: Utc::now(),
    };
    store.record_action(&action).await.expect("action");
    let audit = AuditRecord::agent(AuditStep::KillSwitch, "engaged")
        .incident(pending)
        .input(serde_json::json!({"why": "reopen"}))
        .reasoning("test", Some(0.5));
    store.append_audit(&audit).await.expect("audit");
    (pending, approval, action, audit)
}

/// The run and the deployment read back, the deployment also by resource.
async fn check_runs_and_deployments(store: &dyn MetadataStore, w: &World) {
    let d = &w.deployment;
    assert_eq!(
        store.get_run(w.run.id).await.expect("get_run"),
        Some(w.run.clone())
    );
    assert_eq!(
        store.get_deployment(d.deployment_id).await.expect("get"),
        Some(d.clone())
    );
    assert_eq!(
        store
            .find_deployment_by_resource("reopen-web")
            .await
            .expect("find")
            .map(|x| x.deployment_id),
        Some(d.deployment_id)
    );
}

/// The incident, its approval, action and audit record read back.
async fn check_incident_records(store: &dyn MetadataStore, w: &World) {
    let pending = w.pending;
    assert_eq!(
        store.get_incident(pending).await.expect("get"),
        Some(w.before.clone())
    );
    assert_eq!(
        store.list_approvals(pending).await.expect("list"),
        vec![w.approval.clone()]
    );
    assert_eq!(
        store.list_actions(pending).await.expect("list"),
        vec![w.action.clone()]
    );
    assert_eq!(
        store
            .list_audit(&AuditQuery {
                incident_id: Some(pending),
                ..Default::default()
            })
            .await
            .expect("list"),
        vec![w.audit.clone()]
    );
}

/// The cursor reads back; the held job is still held, and taken over once
/// its lease ends.
async fn check_job_and_cursor(store: &dyn MetadataStore, w: &World) {
    let (key, lease, t0) = (w.job_key.as_str(), w.lease, w.t0);
    assert_eq!(store.get_cursor(&w.cursor).await.expect("cursor"), Some(7));
    assert_eq!(
        store
            .claim_job(
                key,
                Lease::new("replica-b", lease).at(t0 + Duration::seconds(29))
            )
            .await
            .expect("claim"),
        None
    );
    let taken = store
        .claim_job(
            key,
            Lease::new("replica-b", lease).at(t0 + Duration::seconds(30)),
        )
        .await
        .expect("claim")
        .expect("taken over");
    assert_eq!((taken.claims, w.job.claims), (2, 1));
    assert!(store
        .release_job(Release {
            key,
            owner: "replica-b",
            finished: true
        })
        .await
        .expect("finish"));
}

/// The engaged switch survives and is still enforced; the blocked incident
/// still deduplicates its alert; releasing the switch frees it.
async fn check_kill_switch(store: &dyn MetadataStore, w: &World) {
    let ks = store.kill_switch().await.expect("read");
    assert_eq!(ks, w.change.state, "the kill-switch survives a restart");
    // Still enforced after the restart.
    assert!(matches!(
        store.claim_execution(w.pending).await.expect("claim"),
        Claim::NotClaimable(_)
    ));
    // A repeat of the open incident's alert is still deduplicated.
    let repeat = store
        .record_alert(&alert("conf-reopen-pending", AlertState::Firing, 0.9))
        .await
        .expect("record");
    assert_eq!(
        (repeat.outcome, repeat.incident.map(|i| i.id)),
        (IngestOutcome::Repeated, Some(w.pending))
    );
    let released = store
        .set_kill_switch(KillSwitchRequest::release("web:dave"))
        .await
        .expect("release");
    assert!(released.affected.contains(&w.pending));
}

async fn open_with(store: &dyn MetadataStore, a: &Alert) -> IncidentId {
    let r = store.record_alert(a).await.expect("record");
    assert_eq!(r.outcome, IngestOutcome::Opened);
    r.incident.expect("incident").id
}

/// Asserts `r` is the typed corruption error of `expected_component`: not
/// retryable, its message saying "corrupt" and naming `field`.
pub fn assert_corrupt<T: std::fmt::Debug>(
    r: crate::Result<T>,
    expected_component: &str,
    field: &str,
) {
    match r {
        Err(Error::Backend {
            component,
            retryable,
            source,
            ..
        }) => {
            assert_eq!(component, expected_component);
            assert!(!retryable, "corrupt data is not retryable");
            let text = source.to_string();
            assert!(
                text.contains("corrupt") && text.contains(field),
                "the message names {field}: {text}"
            );
        }
        other => panic!("expected a typed corruption error for {field}, got {other:?}"),
    }
}

/// For a backend's own test, after it corrupted two incidents behind the
/// store's back: `bad_status` (opened from the alert `bad-status`) now has a
/// status no version knows, `bad_decision` a decision that is not JSON.
/// Every read and write that meets them is a typed, non-retryable corruption
/// error of `expected_component` naming the bad field — never a panic, never
/// a silent overwrite.
pub async fn corrupted_incidents_are_typed_errors(
    store: &dyn MetadataStore,
    expected_component: &str,
    bad_status: IncidentId,
    bad_decision: IncidentId,
) {
    for (r, field) in [
        (store.get_incident(bad_status).await.map(|_| ()), "status"),
        (
            store.get_incident(bad_decision).await.map(|_| ()),
            "decision",
        ),
        (
            store
                .list_incidents(&IncidentQuery::default())
                .await
                .map(|_| ()),
            "incident",
        ),
        (
            store.claim_execution(bad_status).await.map(|_| ()),
            "status",
        ),
        (
            store
                .transition(Transition::new(
                    bad_status,
                    &[IncidentStatus::New],
                    IncidentStatus::Pending,
                ))
                .await
                .map(|_| ()),
            "status",
        ),
        (
            store
                .record_alert(&alert("bad-status", AlertState::Resolved, 0.1))
                .await
                .map(|_| ()),
            "status",
        ),
    ] {
        assert_corrupt(r, expected_component, field);
    }
}

/// One `#[tokio::test]` per scenario, each on a fresh store from `$fresh`
/// (an async expression giving `(guard, Arc<dyn MetadataStore>)`; the guard
/// lives as long as the test), so one failure does not hide the rest.
/// [`run_all`] still runs them in sequence on one store.
#[macro_export]
macro_rules! conformance_tests {
    ($fresh:expr) => {
        $crate::conformance_tests!(@one $fresh, as_ref;
            runs_round_trip, deployments_round_trip, alerts_deduplicate_by_fingerprint,
            decision_is_recorded_once, proposals_replace_an_escalated_decision,
            transitions_compare_and_set,
            illegal_transitions_are_refused, incidents_filter_by_status_severity_resource,
            kill_switch_blocks_and_releases, approvals_actions_and_audit, audit_is_append_only,
            closing_by_transition_frees_the_fingerprint,
            late_copies_of_a_resolved_episode_do_not_reopen,
            alert_ingests_are_audited_with_their_outcome, cursors_round_trip, jobs_are_leased,
            incidents_page_stably_under_inserts, runs_page_stably_under_inserts,
            audit_trail_pages_back_under_appends);
        $crate::conformance_tests!(@one $fresh, clone;
            concurrent_alerts_open_one_incident, concurrent_claims_execute_once,
            hundred_way_approve_and_claim_race, abandoned_jobs_are_taken_once);
    };
    (@one $fresh:expr, $pass:ident; $($name:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                let (_guard, store) = $fresh;
                $crate::testing::conformance::$name(store.$pass()).await;
            }
        )*
    };
}
