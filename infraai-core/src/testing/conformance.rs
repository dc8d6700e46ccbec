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
use chrono::{Duration, Utc};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Runs every scenario in order.
pub async fn run_all(store: Arc<dyn MetadataStore>) {
    runs_round_trip(store.as_ref()).await;
    deployments_round_trip(store.as_ref()).await;
    alerts_deduplicate_by_fingerprint(store.as_ref()).await;
    concurrent_alerts_open_one_incident(store.clone()).await;
    decision_is_recorded_once(store.as_ref()).await;
    transitions_compare_and_set(store.as_ref()).await;
    illegal_transitions_are_refused(store.as_ref()).await;
    incidents_filter_by_status_severity_resource(store.as_ref()).await;
    concurrent_claims_execute_once(store.clone()).await;
    hundred_way_approve_and_claim_race(store.clone()).await;
    kill_switch_blocks_and_releases(store.as_ref()).await;
    approvals_actions_and_audit(store.as_ref()).await;
    audit_is_append_only(store.as_ref()).await;
    closing_by_transition_frees_the_fingerprint(store.as_ref()).await;
    late_copies_of_a_resolved_episode_do_not_reopen(store.as_ref()).await;
    alert_ingests_are_audited_with_their_outcome(store.as_ref()).await;
    cursors_round_trip(store.as_ref()).await;
    jobs_are_leased(store.as_ref()).await;
    abandoned_jobs_are_taken_once(store.clone()).await;
    incident_counts_match_the_incidents(store.as_ref()).await;
}

/// The counts agree with the incidents listed, whatever the store's way of
/// counting (run after scenarios that left decided and closed incidents).
pub async fn incident_counts_match_the_incidents(store: &dyn MetadataStore) {
    let incidents = store
        .list_incidents(&IncidentQuery::default())
        .await
        .expect("list");
    let counts = store.incident_counts().await.expect("counts");
    assert_eq!(counts, IncidentCounts::of(&incidents));
    assert!(
        counts.by_status.len() > 1 && !counts.by_action.is_empty(),
        "the scenarios before leave several statuses and a decision: {counts:?}"
    );
}

/// [`MetadataStore::record_alerts`] writes the template as
/// [`alert_audit`] makes it: with the incident and the outcome, and nothing
/// for a repeat. An alert alone, then a batch in which each alert sees the
/// ones before it; a batch with an invalid alert records nothing.
pub async fn alert_ingests_are_audited_with_their_outcome(store: &dyn MetadataStore) {
    let template = AuditRecord::agent(AuditStep::AlertReceived, "received")
        .replica("conf-replica")
        .input(serde_json::json!({"fingerprint": "conf-audited", "value": 0.9}));
    let audited = |alerts: &[&Alert]| -> Vec<(Alert, AuditRecord)> {
        alerts
            .iter()
            .map(|a| {
                let mut record = template.clone();
                record.id = AuditId::new();
                ((*a).clone(), record)
            })
            .collect()
    };
    let firing = alert("conf-audited", AlertState::Firing, 0.9);
    let mut cleared = firing.clone();
    cleared.state = AlertState::Resolved;
    let mut expected = Vec::new();
    let mut id = None;
    for (batch, outcomes) in [
        (audited(&[&firing]), vec![IngestOutcome::Opened]),
        (
            audited(&[&firing, &cleared, &firing]),
            vec![
                IngestOutcome::Repeated,
                IngestOutcome::Resolved,
                IngestOutcome::Noted,
            ],
        ),
    ] {
        let templates: Vec<AuditRecord> = batch.iter().map(|(_, r)| r.clone()).collect();
        let batch = batch.into_iter().map(AlertRecord::from).collect();
        let ingests = store.record_alerts(batch).await.expect("record");
        let got: Vec<IngestOutcome> = ingests.iter().map(|i| i.outcome).collect();
        assert_eq!(got, outcomes);
        for (ingest, record) in ingests.iter().zip(&templates) {
            let incident = ingest.incident.as_ref().expect("incident").id;
            assert_eq!(*id.get_or_insert(incident), incident, "one incident");
            expected.extend(alert_audit(ingest, record));
        }
    }
    let outcomes: Vec<&str> = expected.iter().map(|r| r.outcome.as_str()).collect();
    assert_eq!(outcomes, ["opened", "resolved", "noted"]);
    let stored = store
        .list_audit(&AuditQuery {
            incident_id: id,
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(stored, expected);

    let mut fresh = alert("conf-batch-rejected", AlertState::Firing, 0.9);
    fresh.resource = "conf-batch-rejected".into();
    let mut invalid = alert("conf-batch-invalid", AlertState::Firing, 0.9);
    invalid.fingerprint.clear();
    let refused = store
        .record_alerts(
            audited(&[&fresh, &invalid])
                .into_iter()
                .map(AlertRecord::from)
                .collect(),
        )
        .await;
    assert!(
        matches!(refused, Err(Error::Invalid { .. })),
        "an invalid alert refuses the batch: {refused:?}"
    );
    let recorded = store
        .list_incidents(&IncidentQuery {
            resource: Some(fresh.resource.clone()),
            ..Default::default()
        })
        .await
        .expect("list");
    assert!(
        recorded.is_empty(),
        "nothing of a refused batch is recorded"
    );
}

/// Named cursors are stored and replaced.
pub async fn cursors_round_trip(store: &dyn MetadataStore) {
    let name = format!("conf-cursor-{}", IncidentId::new());
    assert_eq!(store.get_cursor(&name).await.expect("get"), None);
    store.set_cursor(&name, 41).await.expect("set");
    store.set_cursor(&name, 42).await.expect("set");
    assert_eq!(store.get_cursor(&name).await.expect("get"), Some(42));
}

/// Runs are stored, replaced and listed newest first.
pub async fn runs_round_trip(store: &dyn MetadataStore) {
    let mut run = Run::new("conformance goal");
    run.plan = None;
    store.put_run(&run).await.expect("put_run");
    run.enter(RunPhase::FixAttempt(2), Some("note".into()));
    run.outputs
        .insert("url".into(), serde_json::json!({"api": "http://x"}));
    store.put_run(&run).await.expect("put_run again");
    let got = store
        .get_run(run.id)
        .await
        .expect("get_run")
        .expect("run exists");
    assert_eq!(got, run, "a run must round-trip exactly");
    let mut newer = Run::new("newer");
    let deployment = DeploymentId::new();
    newer.deployment_id = Some(deployment);
    store.put_run(&newer).await.expect("put_run");
    let listed = store
        .list_runs(&RunQuery {
            deployment_id: None,
            limit: Some(2),
        })
        .await
        .expect("list_runs");
    assert_eq!(
        listed.first().map(|r| r.id),
        Some(newer.id),
        "newest run first"
    );
    assert!(store
        .get_run(RunId::new())
        .await
        .expect("get_run")
        .is_none());
}

/// Deployments are stored and found by resource name.
pub async fn deployments_round_trip(store: &dyn MetadataStore) {
    let run = RunId::new();
    let now = Utc::now();
    let name = format!("conf-{}", &RunId::new().to_string()[..8]);
    let d = Deployment {
        deployment_id: DeploymentId::new(),
        cloud: "memory".into(),
        services: vec![name.clone()],
        region: "us-central1".into(),
        terraform_state: "/tmp/x".into(),
        alert_webhook: None,
        resource_map: BTreeMap::from([(name.clone(), run)]),
        resources: vec![],
        monitoring: vec![],
        outputs: BTreeMap::new(),
        created_at: now,
        updated_at: now,
    };
    store.put_deployment(&d).await.expect("put_deployment");
    assert_eq!(
        store
            .get_deployment(d.deployment_id)
            .await
            .expect("get")
            .as_ref(),
        Some(&d)
    );
    let found = store
        .find_deployment_by_resource(&name)
        .await
        .expect("find");
    assert_eq!(found.map(|f| f.deployment_id), Some(d.deployment_id));
    assert!(store
        .find_deployment_by_resource("no-such-resource")
        .await
        .expect("find")
        .is_none());
    assert!(store
        .list_deployments()
        .await
        .expect("list")
        .iter()
        .any(|x| x.deployment_id == d.deployment_id));
}

/// Firing repeats update the open incident; a resolved alert closes it; a
/// later firing alert opens a new one.
pub async fn alerts_deduplicate_by_fingerprint(store: &dyn MetadataStore) {
    let mut a = alert("conf-dedup", AlertState::Firing, 0.9);
    let first = store.record_alert(&a).await.expect("record");
    assert_eq!(first.outcome, IngestOutcome::Opened);
    let id = first.incident.expect("incident").id;
    a.value = Some(0.95);
    let again = store.record_alert(&a).await.expect("record");
    assert_eq!(again.outcome, IngestOutcome::Repeated);
    let inc = again.incident.expect("incident");
    assert_eq!(
        (inc.id, inc.occurrences, inc.alert.value),
        (id, 2, Some(0.95))
    );
    let resolved = store
        .record_alert(&alert("conf-dedup", AlertState::Resolved, 0.3))
        .await
        .expect("record");
    assert_eq!(resolved.outcome, IngestOutcome::Resolved);
    assert_eq!(
        resolved.incident.expect("incident").status,
        IncidentStatus::Resolved
    );
    let reopened = store
        .record_alert(&alert("conf-dedup", AlertState::Firing, 0.9))
        .await
        .expect("record");
    assert_eq!(reopened.outcome, IngestOutcome::Opened);
    assert_ne!(reopened.incident.expect("incident").id, id);
    let stray = store
        .record_alert(&alert("conf-never-fired", AlertState::Resolved, 0.1))
        .await
        .expect("record");
    assert_eq!(
        (stray.outcome, stray.incident),
        (IngestOutcome::Noted, None)
    );
}

/// Many concurrent firing alerts with one new fingerprint open exactly one incident.
pub async fn concurrent_alerts_open_one_incident(store: Arc<dyn MetadataStore>) {
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let s = store.clone();
            tokio::spawn(async move {
                s.record_alert(&alert("conf-concurrent", AlertState::Firing, 0.9))
                    .await
            })
        })
        .collect();
    let mut opened = 0;
    for t in tasks {
        if t.await.expect("join").expect("record").outcome == IngestOutcome::Opened {
            opened += 1;
        }
    }
    assert_eq!(
        opened, 1,
        "exactly one concurrent alert may open the incident"
    );
    let all = store
        .list_incidents(&IncidentQuery::default())
        .await
        .expect("list");
    let mine: Vec<_> = all
        .iter()
        .filter(|i| i.fingerprint == "conf-concurrent")
        .collect();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].occurrences, 64);
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

/// The decision of an incident is stored once.
pub async fn decision_is_recorded_once(store: &dyn MetadataStore) {
    let id = open(store, "conf-decision").await;
    let notes = vec!["note".to_string()];
    let i = store
        .record_decision(id, &decision(), &notes, IncidentStatus::Pending)
        .await
        .expect("decide");
    assert_eq!(
        (i.status, i.decision.as_ref(), i.guardrail_notes.clone()),
        (IncidentStatus::Pending, Some(&decision()), notes)
    );
    let again = store
        .record_decision(id, &decision(), &[], IncidentStatus::Auto)
        .await;
    assert!(
        matches!(again, Err(crate::Error::Conflict { .. })),
        "a second decision must conflict"
    );
    let listed = store
        .list_incidents(&IncidentQuery {
            statuses: vec![IncidentStatus::Pending],
            ..Default::default()
        })
        .await
        .expect("list");
    assert!(listed.iter().any(|x| x.id == id));
    assert!(listed.iter().all(|x| x.status == IncidentStatus::Pending));
}

/// Transitions only happen from the expected states.
pub async fn transitions_compare_and_set(store: &dyn MetadataStore) {
    let id = open(store, "conf-cas").await;
    store
        .record_decision(id, &decision(), &[], IncidentStatus::Pending)
        .await
        .expect("decide");
    let i = store
        .transition(
            id,
            &[IncidentStatus::Pending],
            IncidentStatus::Approved,
            Some("ok"),
        )
        .await
        .expect("transition");
    assert_eq!(
        (i.status, i.note.as_deref()),
        (IncidentStatus::Approved, Some("ok"))
    );
    let dup = store
        .transition(
            id,
            &[IncidentStatus::Pending],
            IncidentStatus::Approved,
            None,
        )
        .await;
    assert!(matches!(dup, Err(crate::Error::Conflict { .. })));
    let missing = store
        .transition(
            IncidentId::new(),
            &[IncidentStatus::Pending],
            IncidentStatus::Approved,
            None,
        )
        .await;
    assert!(matches!(missing, Err(crate::Error::NotFound { .. })));
}

/// Of many concurrent claims, exactly one wins.
pub async fn concurrent_claims_execute_once(store: Arc<dyn MetadataStore>) {
    let id = open(store.as_ref(), "conf-claim").await;
    store
        .record_decision(id, &decision(), &[], IncidentStatus::Auto)
        .await
        .expect("decide");
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let s = store.clone();
            tokio::spawn(async move { s.claim_execution(id).await })
        })
        .collect();
    let mut claimed = 0;
    for t in tasks {
        match t.await.expect("join").expect("claim") {
            Claim::Claimed(i) => {
                claimed += 1;
                assert_eq!(i.status, IncidentStatus::Executing);
            }
            Claim::NotClaimable(_) => {}
            Claim::Blocked(_) => panic!("kill-switch is not engaged"),
        }
    }
    assert_eq!(claimed, 1, "exactly one claim may succeed");
    // A resolved alert does not interrupt an execution in flight.
    let noted = store
        .record_alert(&alert("conf-claim", AlertState::Resolved, 0.1))
        .await
        .expect("record");
    assert_eq!(noted.outcome, IngestOutcome::Noted);
    assert_eq!(
        noted.incident.expect("incident").status,
        IncidentStatus::Executing
    );
    // Nor one awaiting its re-check: the feedback step decides.
    store
        .transition(
            id,
            &[IncidentStatus::Executing],
            IncidentStatus::Executed,
            None,
        )
        .await
        .expect("executed");
    let noted = store
        .record_alert(&alert("conf-claim", AlertState::Resolved, 0.1))
        .await
        .expect("record");
    assert_eq!(noted.outcome, IngestOutcome::Noted);
    assert_eq!(
        noted.incident.expect("incident").status,
        IncidentStatus::Executed
    );
}

/// Engaging blocks pending/approved/auto incidents and every later claim;
/// releasing returns blocked incidents to pending.
pub async fn kill_switch_blocks_and_releases(store: &dyn MetadataStore) {
    assert!(
        !store.kill_switch().await.expect("read").engaged,
        "the switch starts released"
    );
    let pending = open(store, "conf-ks-pending").await;
    store
        .record_decision(pending, &decision(), &[], IncidentStatus::Pending)
        .await
        .expect("decide");
    let auto = open(store, "conf-ks-auto").await;
    store
        .record_decision(auto, &decision(), &[], IncidentStatus::Auto)
        .await
        .expect("decide");

    let change = store
        .set_kill_switch(true, "web:alice", Some("maintenance"))
        .await
        .expect("engage");
    assert!(change.state.engaged);
    assert_eq!(change.state.set_by.as_deref(), Some("web:alice"));
    assert!(change.affected.contains(&pending) && change.affected.contains(&auto));
    let ks = store.kill_switch().await.expect("read");
    assert_eq!(
        (ks.engaged, ks.reason.as_deref()),
        (true, Some("maintenance"))
    );
    for id in [pending, auto] {
        let i = store.get_incident(id).await.expect("get").expect("exists");
        assert_eq!(i.status, IncidentStatus::Blocked);
        assert!(matches!(
            store.claim_execution(id).await.expect("claim"),
            Claim::NotClaimable(_)
        ));
    }
    // An approval that races the switch: approved after engaging, the claim is refused.
    let late = open(store, "conf-ks-late").await;
    store
        .record_decision(late, &decision(), &[], IncidentStatus::Pending)
        .await
        .expect("decide");
    store
        .transition(
            late,
            &[IncidentStatus::Pending],
            IncidentStatus::Approved,
            None,
        )
        .await
        .expect("approve");
    match store.claim_execution(late).await.expect("claim") {
        Claim::Blocked(i) => assert_eq!(i.status, IncidentStatus::Blocked),
        other => panic!("claim while engaged must be blocked, got {other:?}"),
    }

    let change = store
        .set_kill_switch(false, "web:alice", None)
        .await
        .expect("release");
    assert!(!change.state.engaged);
    for id in [pending, auto, late] {
        assert!(change.affected.contains(&id));
        assert_eq!(
            store
                .get_incident(id)
                .await
                .expect("get")
                .expect("exists")
                .status,
            IncidentStatus::Pending
        );
    }
    store
        .transition(
            late,
            &[IncidentStatus::Pending],
            IncidentStatus::Approved,
            None,
        )
        .await
        .expect("approve");
    assert!(matches!(
        store.claim_execution(late).await.expect("claim"),
        Claim::Claimed(_)
    ));
}

/// Approvals, actions and audit records are kept in order.
pub async fn approvals_actions_and_audit(store: &dyn MetadataStore) {
    let id = open(store, "conf-records").await;
    let actor = Actor::new("web", "bob");
    for (approved, effective) in [(true, true), (true, false)] {
        store
            .record_approval(&ApprovalRecord {
                incident_id: id,
                approved,
                actor: actor.clone(),
                effective,
                at: Utc::now(),
            })
            .await
            .expect("approval");
    }
    let approvals = store.list_approvals(id).await.expect("list");
    assert_eq!(
        approvals.iter().map(|a| a.effective).collect::<Vec<_>>(),
        [true, false]
    );

    let resource = format!("conf-res-{}", &IncidentId::new().to_string()[..8]);
    let outcome = ActionOutcome {
        id: ActionId::new(),
        incident_id: id,
        action: Action::Restart {},
        resource: resource.clone(),
        success: true,
        summary: "restarted".into(),
        details: serde_json::Value::Null,
        started_at: Utc::now(),
        finished_at: Utc::now(),
    };
    store.record_action(&outcome).await.expect("action");
    assert_eq!(store.list_actions(id).await.expect("list"), vec![outcome]);
    assert_eq!(
        store
            .count_actions_since(&resource, Utc::now() - Duration::hours(1))
            .await
            .expect("count"),
        1
    );
    assert_eq!(
        store
            .count_actions_since(&resource, Utc::now() + Duration::hours(1))
            .await
            .expect("count"),
        0
    );

    let records: Vec<AuditRecord> = (0..5)
        .map(|n| AuditRecord::agent(AuditStep::Decision, format!("step {n}")).incident(id))
        .collect();
    for r in &records {
        store.append_audit(r).await.expect("audit");
    }
    let all = store
        .list_audit(&AuditQuery {
            incident_id: Some(id),
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(all, records, "audit records come back in append order");
    let last2 = store
        .list_audit(&AuditQuery {
            incident_id: Some(id),
            run_id: None,
            limit: Some(2),
        })
        .await
        .expect("list");
    assert_eq!(
        last2,
        records[3..].to_vec(),
        "a limit keeps the newest, oldest first"
    );
}

/// Moves the lifecycle does not allow are refused with [`crate::Error::Invalid`],
/// and leave the incident unchanged.
pub async fn illegal_transitions_are_refused(store: &dyn MetadataStore) {
    let id = open(store, "conf-lifecycle").await;
    // A new incident cannot jump to executing, and cannot be decided into executed.
    let jump = store
        .transition(id, &[IncidentStatus::New], IncidentStatus::Executing, None)
        .await;
    assert!(
        matches!(jump, Err(crate::Error::Invalid { .. })),
        "new → executing must be refused: {jump:?}"
    );
    let bad_decision = store
        .record_decision(id, &decision(), &[], IncidentStatus::Executed)
        .await;
    assert!(matches!(bad_decision, Err(crate::Error::Invalid { .. })));
    store
        .record_decision(id, &decision(), &[], IncidentStatus::Pending)
        .await
        .expect("decide");
    store
        .transition(
            id,
            &[IncidentStatus::Pending],
            IncidentStatus::Rejected,
            Some("no"),
        )
        .await
        .expect("reject");
    // A rejected incident can never be approved or executed.
    for to in [
        IncidentStatus::Approved,
        IncidentStatus::Executing,
        IncidentStatus::Auto,
    ] {
        let r = store
            .transition(id, &[IncidentStatus::Rejected], to, None)
            .await;
        assert!(
            matches!(r, Err(crate::Error::Invalid { .. })),
            "rejected → {to:?} must be refused"
        );
    }
    assert!(matches!(
        store.claim_execution(id).await.expect("claim"),
        Claim::NotClaimable(_)
    ));
    let i = store.get_incident(id).await.expect("get").expect("exists");
    assert_eq!(i.status, IncidentStatus::Rejected);
}

/// Incidents can be listed by status, severity and resource, newest first.
pub async fn incidents_filter_by_status_severity_resource(store: &dyn MetadataStore) {
    let resource = format!("conf-filter-{}", &IncidentId::new().to_string()[..8]);
    let mut ids = Vec::new();
    for (n, severity) in [Severity::Warning, Severity::Critical, Severity::Critical]
        .into_iter()
        .enumerate()
    {
        let mut a = alert(&format!("{resource}-{n}"), AlertState::Firing, 0.9);
        a.resource = resource.clone();
        a.severity = severity;
        ids.push(
            store
                .record_alert(&a)
                .await
                .expect("record")
                .incident
                .expect("incident")
                .id,
        );
        // Distinct creation times, so "newest first" is well defined.
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    let critical = store
        .list_incidents(&IncidentQuery {
            severity: Some(Severity::Critical),
            resource: Some(resource.clone()),
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(
        critical.iter().map(|i| i.id).collect::<Vec<_>>(),
        [ids[2], ids[1]]
    );
    let limited = store
        .list_incidents(&IncidentQuery {
            resource: Some(resource.clone()),
            statuses: vec![IncidentStatus::New],
            limit: Some(1),
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(limited.iter().map(|i| i.id).collect::<Vec<_>>(), [ids[2]]);
    let none = store
        .list_incidents(&IncidentQuery {
            resource: Some(resource),
            statuses: vec![IncidentStatus::Resolved],
            ..Default::default()
        })
        .await
        .expect("list");
    assert!(none.is_empty());
}

/// 100 tasks race to approve a pending incident and then claim it: exactly one
/// approval and exactly one claim win; the others see a conflict or
/// "not claimable".
pub async fn hundred_way_approve_and_claim_race(store: Arc<dyn MetadataStore>) {
    let id = open(store.as_ref(), "conf-race-100").await;
    store
        .record_decision(id, &decision(), &[], IncidentStatus::Pending)
        .await
        .expect("decide");
    let tasks: Vec<_> = (0..100)
        .map(|n| {
            let s = store.clone();
            tokio::spawn(async move {
                let approved = match s
                    .transition(
                        id,
                        &[IncidentStatus::Pending],
                        IncidentStatus::Approved,
                        Some(&format!("approved by racer {n}")),
                    )
                    .await
                {
                    Ok(i) => {
                        assert_eq!(i.status, IncidentStatus::Approved);
                        true
                    }
                    Err(crate::Error::Conflict { .. }) => false,
                    Err(e) => panic!("approve failed unexpectedly: {e}"),
                };
                let claimed = match s.claim_execution(id).await.expect("claim") {
                    Claim::Claimed(i) => {
                        assert_eq!(i.status, IncidentStatus::Executing);
                        true
                    }
                    Claim::NotClaimable(_) => false,
                    Claim::Blocked(_) => panic!("kill-switch is not engaged"),
                };
                (approved, claimed)
            })
        })
        .collect();
    let (mut approvals, mut claims) = (0, 0);
    for t in tasks {
        let (a, c) = t.await.expect("join");
        approvals += usize::from(a);
        claims += usize::from(c);
    }
    assert_eq!(approvals, 1, "exactly one of 100 approvals may win");
    assert_eq!(claims, 1, "exactly one of 100 claims may win");
    let i = store.get_incident(id).await.expect("get").expect("exists");
    assert_eq!(i.status, IncidentStatus::Executing);
    assert!(i
        .note
        .as_deref()
        .is_some_and(|n| n.starts_with("approved by racer")));
}

/// The audit log is append-only: the API has no update or delete, and
/// appending a record whose id is already stored is a conflict that leaves
/// the stored record unchanged.
pub async fn audit_is_append_only(store: &dyn MetadataStore) {
    let id = IncidentId::new();
    let original = AuditRecord::agent(AuditStep::HumanCommand, "approved")
        .incident(id)
        .by("web:carol");
    store.append_audit(&original).await.expect("append");
    let mut forged = original.clone();
    forged.outcome = "rejected".into();
    forged.actor = "web:mallory".into();
    let again = store.append_audit(&forged).await;
    assert!(
        matches!(again, Err(crate::Error::Conflict { .. })),
        "re-appending an existing audit id must conflict: {again:?}"
    );
    let listed = store
        .list_audit(&AuditQuery {
            incident_id: Some(id),
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(listed, vec![original], "the stored record is unchanged");
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
    let mut run = Run::new("reopen goal");
    run.enter(RunPhase::Planning, Some("planning".into()));
    store.put_run(&run).await.expect("put_run");
    let now = Utc::now();
    let d = Deployment {
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
    store.put_deployment(&d).await.expect("put_deployment");
    let pending = open(store.as_ref(), "conf-reopen-pending").await;
    store
        .record_decision(
            pending,
            &decision(),
            &["why".into()],
            IncidentStatus::Pending,
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
    let cursor = format!("conf-reopen-cursor-{}", IncidentId::new());
    store.set_cursor(&cursor, 7).await.expect("cursor");
    let (job_key, lease, t0) = (
        format!("conf-reopen-job-{}", IncidentId::new()),
        std::time::Duration::from_secs(30),
        Utc::now(),
    );
    let job = store
        .claim_job(&job_key, "replica-a", t0, lease)
        .await
        .expect("claim")
        .expect("taken");
    let change = store
        .set_kill_switch(true, "web:dave", Some("reopen test"))
        .await
        .expect("engage");
    assert!(change.affected.contains(&pending));
    let before = store
        .get_incident(pending)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(before.status, IncidentStatus::Blocked);
    drop(store);

    let store = open_store().await;
    assert_eq!(store.get_run(run.id).await.expect("get_run"), Some(run));
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
    assert_eq!(
        store.get_incident(pending).await.expect("get"),
        Some(before)
    );
    assert_eq!(
        store.list_approvals(pending).await.expect("list"),
        vec![approval]
    );
    assert_eq!(
        store.list_actions(pending).await.expect("list"),
        vec![action]
    );
    assert_eq!(
        store
            .list_audit(&AuditQuery {
                incident_id: Some(pending),
                ..Default::default()
            })
            .await
            .expect("list"),
        vec![audit]
    );
    assert_eq!(store.get_cursor(&cursor).await.expect("cursor"), Some(7));
    // A held job is still held, and taken over once its lease ends.
    assert_eq!(
        store
            .claim_job(&job_key, "replica-b", t0 + Duration::seconds(29), lease)
            .await
            .expect("claim"),
        None
    );
    let taken = store
        .claim_job(&job_key, "replica-b", t0 + Duration::seconds(30), lease)
        .await
        .expect("claim")
        .expect("taken over");
    assert_eq!((taken.claims, job.claims), (2, 1));
    assert!(store
        .release_job(&job_key, "replica-b", true)
        .await
        .expect("finish"));
    let ks = store.kill_switch().await.expect("read");
    assert_eq!(ks, change.state, "the kill-switch survives a restart");
    // Still enforced after the restart.
    assert!(matches!(
        store.claim_execution(pending).await.expect("claim"),
        Claim::NotClaimable(_)
    ));
    // A repeat of the open incident's alert is still deduplicated.
    let repeat = store
        .record_alert(&alert("conf-reopen-pending", AlertState::Firing, 0.9))
        .await
        .expect("record");
    assert_eq!(
        (repeat.outcome, repeat.incident.map(|i| i.id)),
        (IngestOutcome::Repeated, Some(pending))
    );
    let released = store
        .set_kill_switch(false, "web:dave", None)
        .await
        .expect("release");
    assert!(released.affected.contains(&pending));
}

/// An incident closed by a transition (expired, resolved) no longer absorbs
/// alerts: the next firing alert with its fingerprint opens a new incident.
pub async fn closing_by_transition_frees_the_fingerprint(store: &dyn MetadataStore) {
    for (fingerprint, closed) in [
        ("conf-close-expired", IncidentStatus::Expired),
        ("conf-close-resolved", IncidentStatus::Resolved),
    ] {
        let id = open(store, fingerprint).await;
        store
            .record_decision(id, &decision(), &[], IncidentStatus::Pending)
            .await
            .expect("decide");
        store
            .transition(id, &[IncidentStatus::Pending], closed, Some("closed"))
            .await
            .expect("close");
        let next = store
            .record_alert(&alert(fingerprint, AlertState::Firing, 0.9))
            .await
            .expect("record");
        assert_eq!(
            next.outcome,
            IngestOutcome::Opened,
            "{closed:?} frees the fingerprint"
        );
        assert_ne!(next.incident.expect("incident").id, id);
        assert_eq!(
            store
                .get_incident(id)
                .await
                .expect("get")
                .expect("exists")
                .status,
            closed
        );
    }
}

/// A firing alert of an episode that is already resolved (same fingerprint,
/// same `started_at`) is noted on that incident instead of opening a new one:
/// Alertmanager repeats an alert until its source stops firing, and an HA
/// peer may deliver its copy late. The source's own late resolution is noted
/// on it too. A new episode (another start) opens anew.
pub async fn late_copies_of_a_resolved_episode_do_not_reopen(store: &dyn MetadataStore) {
    // Resolved by the alert itself.
    let firing = alert("conf-late-copy", AlertState::Firing, 0.9);
    let first = store.record_alert(&firing).await.expect("record");
    assert_eq!(first.outcome, IngestOutcome::Opened);
    let id = first.incident.expect("incident").id;
    let mut cleared = firing.clone();
    cleared.state = AlertState::Resolved;
    let resolved = store.record_alert(&cleared).await.expect("record");
    assert_eq!(resolved.outcome, IngestOutcome::Resolved);
    let late = store.record_alert(&firing).await.expect("record");
    assert_eq!(late.outcome, IngestOutcome::Noted);
    let noted = late.incident.expect("the resolved incident");
    assert_eq!((noted.id, noted.status), (id, IncidentStatus::Resolved));
    // Resolved by the agent (feedback), while the source still fires.
    let firing = alert("conf-late-feedback", AlertState::Firing, 0.9);
    let id = open_with(store, &firing).await;
    store
        .record_decision(id, &decision(), &[], IncidentStatus::Pending)
        .await
        .expect("decide");
    store
        .transition(
            id,
            &[IncidentStatus::Pending],
            IncidentStatus::Resolved,
            Some("fixed"),
        )
        .await
        .expect("resolve");
    let repeat = store.record_alert(&firing).await.expect("record");
    assert_eq!(
        (repeat.outcome, repeat.incident.map(|i| i.id)),
        (IngestOutcome::Noted, Some(id))
    );
    // The source's own resolution, arriving after the agent resolved it.
    let mut cleared = firing.clone();
    cleared.state = AlertState::Resolved;
    let late = store.record_alert(&cleared).await.expect("record");
    let noted = late.incident.expect("the resolved incident");
    assert_eq!(
        (late.outcome, noted.id, noted.status),
        (IngestOutcome::Noted, id, IncidentStatus::Resolved)
    );
    let mut next = firing.clone();
    next.started_at = firing.started_at + Duration::seconds(60);
    let again = store.record_alert(&next).await.expect("record");
    assert_eq!(again.outcome, IngestOutcome::Opened, "a new episode opens");
    assert_ne!(again.incident.expect("incident").id, id);
    let all = store
        .list_incidents(&IncidentQuery::default())
        .await
        .expect("list");
    assert_eq!(
        all.iter()
            .filter(|i| i.fingerprint == "conf-late-feedback")
            .count(),
        2
    );
}

async fn open_with(store: &dyn MetadataStore, a: &Alert) -> IncidentId {
    let r = store.record_alert(a).await.expect("record");
    assert_eq!(r.outcome, IngestOutcome::Opened);
    r.incident.expect("incident").id
}

/// A job is held by one owner at a time: taken when absent, free or its
/// lease ended; renewed only by its holder; released for others or finished.
pub async fn jobs_are_leased(store: &dyn MetadataStore) {
    let lease = std::time::Duration::from_secs(30);
    let t0 = Utc::now();
    let key = format!("conformance:{}", IncidentId::new());
    let a = store
        .claim_job(&key, "replica-a", t0, lease)
        .await
        .expect("claim")
        .expect("an absent job is created and taken");
    assert_eq!(a.key, key);
    assert_eq!(a.owner.as_deref(), Some("replica-a"));
    assert_eq!(a.claims, 1);
    let until = a.lease_until.expect("lease end");
    assert!(
        (until - (t0 + Duration::seconds(30)))
            .num_milliseconds()
            .abs()
            <= 1
    );
    // Held: nobody takes it, not even its own holder a second time.
    for who in ["replica-b", "replica-a"] {
        assert_eq!(
            store
                .claim_job(&key, who, t0 + Duration::seconds(29), lease)
                .await
                .expect("claim"),
            None,
            "{who} took a held job"
        );
    }
    assert!(store
        .claim_abandoned_jobs("replica-b", t0 + Duration::seconds(29), lease, 100)
        .await
        .expect("scan")
        .iter()
        .all(|j| j.key != key));
    // Only the holder renews.
    assert!(!store
        .renew_job(&key, "replica-b", t0, lease)
        .await
        .expect("renew"));
    assert!(store
        .renew_job(&key, "replica-a", t0 + Duration::seconds(20), lease)
        .await
        .expect("renew"));
    assert_eq!(
        store
            .claim_job(&key, "replica-b", t0 + Duration::seconds(45), lease)
            .await
            .expect("claim"),
        None,
        "the renewed lease runs to 50 s"
    );
    // The lease ends: another replica takes it over.
    let b = store
        .claim_job(&key, "replica-b", t0 + Duration::seconds(50), lease)
        .await
        .expect("claim")
        .expect("an expired lease is taken over");
    assert_eq!((b.owner.as_deref(), b.claims), (Some("replica-b"), 2));
    assert!(
        !store
            .renew_job(&key, "replica-a", t0 + Duration::seconds(51), lease)
            .await
            .expect("renew"),
        "the old holder lost it"
    );
    assert!(!store
        .release_job(&key, "replica-a", true)
        .await
        .expect("release"));
    // Released unfinished: free for the next scan at once.
    assert!(store
        .release_job(&key, "replica-b", false)
        .await
        .expect("release"));
    let taken = store
        .claim_abandoned_jobs("replica-c", t0 + Duration::seconds(51), lease, 100)
        .await
        .expect("scan");
    let c = taken
        .iter()
        .find(|j| j.key == key)
        .expect("a released job is abandoned");
    assert_eq!((c.owner.as_deref(), c.claims), (Some("replica-c"), 3));
    // Finished: gone, and a later claim starts a new job.
    assert!(store
        .release_job(&key, "replica-c", true)
        .await
        .expect("finish"));
    assert!(!store
        .release_job(&key, "replica-c", true)
        .await
        .expect("finish"));
    let again = store
        .claim_job(&key, "replica-a", t0 + Duration::seconds(52), lease)
        .await
        .expect("claim")
        .expect("a finished job can be started again");
    assert_eq!(again.claims, 1);
    assert!(store
        .release_job(&key, "replica-a", true)
        .await
        .expect("finish"));
}

/// Eight replicas scanning at once for twenty abandoned jobs: each job is
/// taken by exactly one of them.
pub async fn abandoned_jobs_are_taken_once(store: Arc<dyn MetadataStore>) {
    let lease = std::time::Duration::from_secs(30);
    let t0 = Utc::now();
    let prefix = format!("conformance-scan:{}:", IncidentId::new());
    for n in 0..20 {
        let key = format!("{prefix}{n}");
        store
            .claim_job(&key, "dead-replica", t0, lease)
            .await
            .expect("claim");
    }
    let later = t0 + Duration::seconds(31);
    let scans = (0..8).map(|r| {
        let store = store.clone();
        tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = store
                    .claim_abandoned_jobs(&format!("replica-{r}"), later, lease, 3)
                    .await
                    .expect("scan");
                if got.is_empty() {
                    break mine;
                }
                mine.extend(got);
            }
        })
    });
    let mut taken = Vec::new();
    for scan in scans {
        taken.extend(scan.await.expect("scan task"));
    }
    let mut keys: Vec<_> = taken
        .iter()
        .filter(|j| j.key.starts_with(&prefix))
        .map(|j| j.key.clone())
        .collect();
    keys.sort();
    let before = keys.len();
    keys.dedup();
    assert_eq!(
        (before, keys.len()),
        (20, 20),
        "every job taken exactly once"
    );
    for j in &taken {
        let owner = j.owner.as_deref().expect("owner");
        let ours = j.key.starts_with(&prefix);
        if ours {
            assert_eq!(j.claims, 2, "{j:?}");
        }
        assert!(store
            .release_job(&j.key, owner, ours)
            .await
            .expect("release"));
    }
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
                .transition(
                    bad_status,
                    &[IncidentStatus::New],
                    IncidentStatus::Pending,
                    None,
                )
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
