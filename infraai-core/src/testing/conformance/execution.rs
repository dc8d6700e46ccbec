//! Claims and the kill-switch: execution exactly once, never while stopped.

use super::*;

/// Of many concurrent claims, exactly one wins.
pub async fn concurrent_claims_execute_once(store: Arc<dyn MetadataStore>) {
    let id = decided(store.as_ref(), "conf-claim", IncidentStatus::Auto).await;
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
        .transition(Transition::new(
            id,
            &[IncidentStatus::Executing],
            IncidentStatus::Executed,
        ))
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

/// 100 tasks race to approve a pending incident and then claim it: exactly one
/// approval and exactly one claim win; the others see a conflict or
/// "not claimable".
pub async fn hundred_way_approve_and_claim_race(store: Arc<dyn MetadataStore>) {
    let id = decided(store.as_ref(), "conf-race-100", IncidentStatus::Pending).await;
    let tasks: Vec<_> = (0..100)
        .map(|n| {
            let s = store.clone();
            tokio::spawn(async move {
                let approved = match s
                    .transition(
                        Transition::new(id, &[IncidentStatus::Pending], IncidentStatus::Approved)
                            .note(Some(&format!("approved by racer {n}"))),
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

/// A move and its claim in one call: an approval moves a pending incident
/// to `executing` (its approval recorded), or to `blocked` while the
/// kill-switch is engaged; a move from the wrong status changes nothing and
/// records no approval.
pub async fn transition_and_claim_moves_and_claims(store: &dyn MetadataStore) {
    let approve = |id, by: &'static str| ApprovalRecord {
        incident_id: id,
        approved: true,
        actor: Actor::new("web", by),
        effective: true,
        at: chrono::Utc::now(),
    };
    let pending = [IncidentStatus::Pending];
    let id = decided(store, "conf-tac-run", IncidentStatus::Pending).await;
    let record = approve(id, "alice");
    let change = Transition::new(id, &pending, IncidentStatus::Approved).approval(&record);
    match store.transition_and_claim(change).await.expect("approve") {
        Claim::Claimed(i) => assert_eq!(i.status, IncidentStatus::Executing),
        other => panic!("an approved incident is claimed, got {other:?}"),
    }
    let approvals = store.list_approvals(id).await.expect("approvals");
    assert_eq!(approvals.len(), 1, "{approvals:?}");
    let again = approve(id, "bob");
    let change = Transition::new(id, &pending, IncidentStatus::Approved).approval(&again);
    let late = store.transition_and_claim(change).await;
    assert!(
        matches!(late, Err(crate::Error::Conflict { .. })),
        "{late:?}"
    );
    assert_eq!(store.list_approvals(id).await.expect("approvals").len(), 1);
    let i = store.get_incident(id).await.expect("get").expect("exists");
    assert_eq!(i.status, IncidentStatus::Executing);

    let stopped = decided(store, "conf-tac-stop", IncidentStatus::Pending).await;
    store
        .set_kill_switch(KillSwitchRequest::engage("web:alice", None))
        .await
        .expect("engage");
    let record = approve(stopped, "alice");
    let change = Transition::new(stopped, &pending, IncidentStatus::Approved).approval(&record);
    let claim = store.transition_and_claim(change).await.expect("approve");
    store
        .set_kill_switch(KillSwitchRequest::release("web:alice"))
        .await
        .expect("release");
    match claim {
        Claim::Blocked(i) => assert_eq!(i.status, IncidentStatus::Blocked),
        other => panic!("a claim while stopped is blocked, got {other:?}"),
    }
}

/// Engaging rewrites no incident but refuses every later claim, which moves
/// the approved/auto incident to `blocked`; releasing returns the blocked
/// incidents, and only those, to pending.
pub async fn kill_switch_blocks_and_releases(store: &dyn MetadataStore) {
    assert!(
        !store.kill_switch().await.expect("read").engaged,
        "the switch starts released"
    );
    let (pending, auto) = engaging_refuses_claims(store).await;
    let late = approval_racing_the_switch_is_blocked(store).await;

    let change = store
        .set_kill_switch(KillSwitchRequest::release("web:alice"))
        .await
        .expect("release");
    assert!(!change.state.engaged);
    assert!(change.affected.contains(&auto) && change.affected.contains(&late));
    assert!(!change.affected.contains(&pending), "it never left pending");
    for id in [pending, auto, late] {
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
    approve(store, late).await;
    assert!(matches!(
        store.claim_execution(late).await.expect("claim"),
        Claim::Claimed(_)
    ));
}

/// Opens an incident for `fingerprint` and records a decision leaving it `status`.
async fn decided(
    store: &dyn MetadataStore,
    fingerprint: &str,
    status: IncidentStatus,
) -> IncidentId {
    let id = open(store, fingerprint).await;
    store
        .record_decision(DecisionRecord::new(id, &decision(), status))
        .await
        .expect("decide");
    id
}

/// Moves a pending incident to approved.
async fn approve(store: &dyn MetadataStore, id: IncidentId) {
    store
        .transition(Transition::new(
            id,
            &[IncidentStatus::Pending],
            IncidentStatus::Approved,
        ))
        .await
        .expect("approve");
}

/// Engages the switch over a pending and an auto incident: neither moves,
/// and the auto incident's claim is refused and blocks it. Returns (pending,
/// auto).
async fn engaging_refuses_claims(store: &dyn MetadataStore) -> (IncidentId, IncidentId) {
    let pending = decided(store, "conf-ks-pending", IncidentStatus::Pending).await;
    let auto = decided(store, "conf-ks-auto", IncidentStatus::Auto).await;
    let change = store
        .set_kill_switch(KillSwitchRequest::engage("web:alice", Some("maintenance")))
        .await
        .expect("engage");
    assert!(change.state.engaged);
    assert_eq!(change.state.set_by.as_deref(), Some("web:alice"));
    assert!(change.affected.is_empty(), "STOP rewrites no incident");
    let ks = store.kill_switch().await.expect("read");
    assert_eq!(
        (ks.engaged, ks.reason.as_deref()),
        (true, Some("maintenance"))
    );
    for (id, status) in [
        (pending, IncidentStatus::Pending),
        (auto, IncidentStatus::Auto),
    ] {
        let i = store.get_incident(id).await.expect("get").expect("exists");
        assert_eq!(i.status, status);
    }
    assert!(matches!(
        store.claim_execution(pending).await.expect("claim"),
        Claim::NotClaimable(_)
    ));
    match store.claim_execution(auto).await.expect("claim") {
        Claim::Blocked(i) => assert_eq!(i.status, IncidentStatus::Blocked),
        other => panic!("claim while engaged must be blocked, got {other:?}"),
    }
    assert!(matches!(
        store.claim_execution(auto).await.expect("claim"),
        Claim::NotClaimable(_)
    ));
    (pending, auto)
}

/// An approval that races the switch: approved after engaging, the claim is
/// refused. Returns the incident, now blocked.
async fn approval_racing_the_switch_is_blocked(store: &dyn MetadataStore) -> IncidentId {
    let late = decided(store, "conf-ks-late", IncidentStatus::Pending).await;
    approve(store, late).await;
    match store.claim_execution(late).await.expect("claim") {
        Claim::Blocked(i) => assert_eq!(i.status, IncidentStatus::Blocked),
        other => panic!("claim while engaged must be blocked, got {other:?}"),
    }
    late
}
