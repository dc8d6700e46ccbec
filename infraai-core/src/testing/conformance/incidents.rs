//! Incidents: deduplication, decisions, moves, listing ([`crate::IncidentStore`]).

use super::*;
use std::collections::HashSet;

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

/// The decision of an incident is stored once.
pub async fn decision_is_recorded_once(store: &dyn MetadataStore) {
    let id = open(store, "conf-decision").await;
    let notes = vec!["note".to_string()];
    let i = store
        .record_decision(
            DecisionRecord::new(id, &decision(), IncidentStatus::Pending).notes(&notes),
        )
        .await
        .expect("decide");
    assert_eq!(
        (i.status, i.decision.as_ref(), i.guardrail_notes.clone()),
        (IncidentStatus::Pending, Some(&decision()), notes)
    );
    let again = store
        .record_decision(DecisionRecord::new(id, &decision(), IncidentStatus::Auto))
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

/// A proposal replaces the decision of an escalated incident (moving it to
/// `pending`), and of nothing the agent is still handling.
pub async fn proposals_replace_an_escalated_decision(store: &dyn MetadataStore) {
    let id = open(store, "conf-proposal").await;
    let escalate = OpsDecision::escalate(Severity::Warning, "no known fix");
    store
        .record_decision(DecisionRecord::new(
            id,
            &escalate,
            IncidentStatus::Escalated,
        ))
        .await
        .expect("escalate");
    let proposed = decision();
    let i = store
        .record_decision(DecisionRecord::proposal(
            id,
            &proposed,
            IncidentStatus::Pending,
        ))
        .await
        .expect("a proposal replaces an escalated decision");
    assert_eq!(
        (i.status, i.decision.as_ref()),
        (IncidentStatus::Pending, Some(&proposed))
    );
    let again = store
        .record_decision(DecisionRecord::proposal(
            id,
            &proposed,
            IncidentStatus::Pending,
        ))
        .await;
    assert!(
        matches!(again, Err(crate::Error::Conflict { .. })),
        "a pending incident takes no proposal: {again:?}"
    );
    let stored = store
        .get_incident(id)
        .await
        .expect("get")
        .expect("incident");
    assert_eq!(stored.status, IncidentStatus::Pending);
}

/// Transitions only happen from the expected states.
pub async fn transitions_compare_and_set(store: &dyn MetadataStore) {
    let id = open(store, "conf-cas").await;
    store
        .record_decision(DecisionRecord::new(
            id,
            &decision(),
            IncidentStatus::Pending,
        ))
        .await
        .expect("decide");
    let approval = |who: &str| ApprovalRecord {
        incident_id: id,
        approved: true,
        actor: Actor::new("web", who),
        effective: true,
        at: Utc::now(),
    };
    let first = approval("alice");
    let i = store
        .transition(
            Transition::new(id, &[IncidentStatus::Pending], IncidentStatus::Approved)
                .note(Some("ok"))
                .approval(&first),
        )
        .await
        .expect("transition");
    assert_eq!(
        (i.status, i.note.as_deref()),
        (IncidentStatus::Approved, Some("ok"))
    );
    // The approval is recorded with a move that is made, never with one refused.
    let late = approval("bob");
    let dup = store
        .transition(
            Transition::new(id, &[IncidentStatus::Pending], IncidentStatus::Approved)
                .approval(&late),
        )
        .await;
    assert!(matches!(dup, Err(crate::Error::Conflict { .. })));
    let recorded = store.list_approvals(id).await.expect("approvals");
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    assert_eq!(recorded[0].actor, first.actor);
    let missing = store
        .transition(Transition::new(
            IncidentId::new(),
            &[IncidentStatus::Pending],
            IncidentStatus::Approved,
        ))
        .await;
    assert!(matches!(missing, Err(crate::Error::NotFound { .. })));
}

/// Moves the lifecycle does not allow are refused with [`crate::Error::Invalid`],
/// and leave the incident unchanged.
pub async fn illegal_transitions_are_refused(store: &dyn MetadataStore) {
    let id = open(store, "conf-lifecycle").await;
    // A new incident cannot jump to executing, and cannot be decided into executed.
    let jump = store
        .transition(Transition::new(
            id,
            &[IncidentStatus::New],
            IncidentStatus::Executing,
        ))
        .await;
    assert!(
        matches!(jump, Err(crate::Error::Invalid { .. })),
        "new → executing must be refused: {jump:?}"
    );
    let bad_decision = store
        .record_decision(DecisionRecord::new(
            id,
            &decision(),
            IncidentStatus::Executed,
        ))
        .await;
    assert!(matches!(bad_decision, Err(crate::Error::Invalid { .. })));
    store
        .record_decision(DecisionRecord::new(
            id,
            &decision(),
            IncidentStatus::Pending,
        ))
        .await
        .expect("decide");
    store
        .transition(
            Transition::new(id, &[IncidentStatus::Pending], IncidentStatus::Rejected)
                .note(Some("no")),
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
            .transition(Transition::new(id, &[IncidentStatus::Rejected], to))
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

/// An incident closed by a transition (expired, resolved) no longer absorbs
/// alerts: the next firing alert with its fingerprint opens a new incident.
pub async fn closing_by_transition_frees_the_fingerprint(store: &dyn MetadataStore) {
    for (fingerprint, closed) in [
        ("conf-close-expired", IncidentStatus::Expired),
        ("conf-close-resolved", IncidentStatus::Resolved),
    ] {
        let id = open(store, fingerprint).await;
        store
            .record_decision(DecisionRecord::new(
                id,
                &decision(),
                IncidentStatus::Pending,
            ))
            .await
            .expect("decide");
        store
            .transition(
                Transition::new(id, &[IncidentStatus::Pending], closed).note(Some("closed")),
            )
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
        .record_decision(DecisionRecord::new(
            id,
            &decision(),
            IncidentStatus::Pending,
        ))
        .await
        .expect("decide");
    store
        .transition(
            Transition::new(id, &[IncidentStatus::Pending], IncidentStatus::Resolved)
                .note(Some("fixed")),
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

/// Paging through incidents newest first while new ones arrive between
/// pages sees each of 300 incidents that existed at the start exactly once.
pub async fn incidents_page_stably_under_inserts(store: &dyn MetadataStore) {
    page_through_incidents(store, 300, 40).await;
}

/// [`incidents_page_stably_under_inserts`] with `existing` incidents and
/// pages of `limit`: every page in order (newest first, ties by id), no
/// incident twice, every one that existed at the start seen.
pub async fn page_through_incidents(store: &dyn MetadataStore, existing: usize, limit: usize) {
    let batch = (0..existing)
        .map(|n| AlertRecord {
            alert: alert(&format!("conf-page-{n}"), AlertState::Firing, 0.9),
            audit: None,
        })
        .collect();
    let ingests = store.record_alerts(batch).await.expect("record");
    let existed: HashSet<IncidentId> = ingests
        .iter()
        .filter_map(|i| i.incident.as_ref().map(|i| i.id))
        .collect();
    assert_eq!(existed.len(), existing);
    let (mut seen, mut after, mut pages) = (HashSet::new(), None, 0);
    loop {
        let query = IncidentQuery {
            limit: Some(limit),
            after,
            ..Default::default()
        };
        let page = store.list_incidents(&query).await.expect("page");
        // One arrives between every two pages: newer than every key handed out.
        let newcomer = alert(&format!("conf-page-new-{pages}"), AlertState::Firing, 0.9);
        store.record_alert(&newcomer).await.expect("record");
        let keys: Vec<_> = page.iter().map(|i| (i.created_at, i.id)).collect();
        assert!(
            keys.windows(2).all(|w| w[0] > w[1]),
            "page {pages} out of order"
        );
        for i in &page {
            assert!(seen.insert(i.id), "incident {} listed twice", i.id);
        }
        pages += 1;
        match page.last() {
            Some(last) if page.len() == limit => {
                after = Some(PageKey {
                    created_at: last.created_at,
                    id: last.id,
                })
            }
            _ => break,
        }
    }
    assert!(pages > existing / limit, "{pages} pages");
    let missed = existed.difference(&seen).count();
    assert_eq!(missed, 0, "{missed} of {existing} incidents never listed");
}
