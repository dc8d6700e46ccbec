//! Audit, approvals and actions ([`crate::HistoryStore`]).

use super::*;

/// [`IncidentStore::record_alerts`] writes the template as
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
            before: None,
        })
        .await
        .expect("list");
    assert_eq!(
        last2,
        records[3..].to_vec(),
        "a limit keeps the newest, oldest first"
    );
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

/// An incident's audit trail pages back from its newest records by the
/// `before` cursor while new records are appended between pages: each
/// record that existed at the start is seen once, oldest first within a page.
pub async fn audit_trail_pages_back_under_appends(store: &dyn MetadataStore) {
    let id = open(store, "conf-audit-pages").await;
    let mut existed = Vec::new();
    for n in 0..30 {
        let record = AuditRecord::agent(AuditStep::Decision, format!("step {n}")).incident(id);
        store.append_audit(&record).await.expect("append");
        existed.push(record.id);
    }
    let (mut seen, mut before, mut pages) = (Vec::new(), None, 0);
    loop {
        let query = AuditQuery {
            incident_id: Some(id),
            limit: Some(7),
            before,
            ..Default::default()
        };
        let page = store.list_audit(&query).await.expect("page");
        let late = AuditRecord::agent(AuditStep::Decision, "appended meanwhile").incident(id);
        store.append_audit(&late).await.expect("append");
        pages += 1;
        // Pages go back in time: each is older than everything seen so far.
        seen.splice(0..0, page.iter().map(|r| r.id));
        match page.first() {
            Some(oldest) if page.len() == 7 => before = Some(oldest.id),
            _ => break,
        }
    }
    // The trail before the alert's own records (none here) and then the 30, in order.
    let tail = &seen[seen.len().saturating_sub(existed.len())..];
    assert_eq!(tail, existed.as_slice(), "every record once, in order");
    assert_eq!(pages, 5, "30 records (and the ingest's) in pages of 7");
    let unknown = AuditQuery {
        incident_id: Some(id),
        before: Some(AuditId::new()),
        ..Default::default()
    };
    assert!(store.list_audit(&unknown).await.expect("list").is_empty());
}
