//! An alert storm on the SQLite store (the server's default): 10,000 copies of
//! one firing alert, 64 senders at once, through the ops loop → one incident,
//! one decision, one approval request to the human, nothing else.
#![cfg(feature = "sqlite")]

use infraai_core::rules::RulePolicy;
use infraai_core::testing::{
    alert, deployment_with, CountingPolicy, RecordingActions, RecordingApprover, ScriptedMetrics,
};
use infraai_core::*;
use infraai_store::SqliteStore;
use std::sync::Arc;
use std::time::{Duration, Instant};

const COPIES: usize = 10_000;
const SENDERS: usize = 64;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_duplicates_make_one_decision_and_one_notification() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(
        SqliteStore::open_path(dir.path().join("storm.db"))
            .await
            .expect("open"),
    );
    store
        .put_deployment(&deployment_with("web-1", "e2-medium"))
        .await
        .expect("deployment");
    let policy = Arc::new(CountingPolicy::new(RulePolicy));
    let approver = Arc::new(RecordingApprover::default());
    let actions = Arc::new(RecordingActions::default());
    let ops = Arc::new(OpsAgent::new(
        OpsDeps {
            store: store.clone(),
            policy: policy.clone(),
            notifier: approver.clone(),
            actions: actions.clone(),
            metrics: Arc::new(ScriptedMetrics::new(vec![0.2])),
            registry: Arc::new(infraai_core::testing::profiles()),
        },
        Guardrails::new(infraai_core::testing::guardrails()),
        OpsConfig::default(),
    ));
    // One episode: same fingerprint, same start, as Alertmanager repeats it.
    let mut storm = alert("am:storm", AlertState::Firing, 0.97);
    storm.severity = Severity::Critical;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for sender in 0..SENDERS {
        let (ops, storm) = (ops.clone(), storm.clone());
        tasks.push(tokio::spawn(async move {
            let mut opened = 0;
            for _ in (sender..COPIES).step_by(SENDERS) {
                let handled = ops.handle_alert(&storm).await.expect("handled");
                if handled.outcome == IngestOutcome::Opened {
                    opened += 1;
                }
            }
            opened
        }));
    }
    let mut opened = 0;
    for t in tasks {
        opened += t.await.expect("sender");
    }
    let elapsed = started.elapsed();
    eprintln!(
        "storm: {COPIES} alerts in {:.2} s ({:.0}/s)",
        elapsed.as_secs_f64(),
        COPIES as f64 / elapsed.as_secs_f64()
    );
    assert_eq!(opened, 1, "exactly one copy opens the incident");
    let incidents = store
        .list_incidents(&IncidentQuery::default())
        .await
        .expect("list");
    assert_eq!(incidents.len(), 1, "{incidents:#?}");
    assert_eq!(incidents[0].occurrences, COPIES as u64);
    assert_eq!(incidents[0].status, IncidentStatus::Pending);
    assert_eq!(policy.calls(), 1, "one decision");
    // Give a wrongly spawned second flow time to show.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(approver.requests().len(), 1, "one approval request");
    assert!(approver.notifications().is_empty());
    assert!(actions.executed().is_empty());
    let audit = store
        .list_audit(&AuditQuery {
            incident_id: Some(incidents[0].id),
            run_id: None,
            limit: Some(1000),
            before: None,
        })
        .await
        .expect("audit");
    assert_eq!(
        audit
            .iter()
            .filter(|r| r.step == AuditStep::Decision)
            .count(),
        1
    );
}
