//! The SQLite store against the shared conformance suite, on real files.
#![cfg(feature = "sqlite")]

use infraai_core::testing::{alert, conformance, received};
use infraai_core::*;
use infraai_store::{SqliteConfig, SqliteStore};
use std::sync::Arc;

async fn fresh() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open_path(dir.path().join("store.db"))
        .await
        .expect("open");
    (dir, store)
}

mod each_scenario {
    use super::*;
    infraai_core::conformance_tests!({
        let (dir, store) = fresh().await;
        (dir, Arc::new(store) as Arc<dyn MetadataStore>)
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_passes_the_conformance_suite() {
    let (_dir, store) = fresh().await;
    conformance::run_all(Arc::new(store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_five_hundred_incidents_page_through_once_each_under_inserts() {
    let (_dir, store) = fresh().await;
    conformance::page_through_incidents(&store, 2_500, 100).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_survives_close_and_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("nested").join("store.db");
    conformance::survives_reopen(|| {
        let path = path.clone();
        async move {
            Arc::new(SqliteStore::open_path(&path).await.expect("open")) as Arc<dyn MetadataStore>
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_file_is_wal_with_the_documented_schema() {
    let (dir, store) = fresh().await;
    store
        .record_alert(&alert("schema", AlertState::Firing, 0.9))
        .await
        .expect("record");
    store.close().await.expect("close");
    // close() returns after the last connection closed, which checkpoints and
    // removes the WAL file.
    assert!(!dir.path().join("store.db-wal").exists());
    let conn = rusqlite::Connection::open(dir.path().join("store.db")).expect("raw open");
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .expect("mode");
    assert_eq!(mode, "wal");
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("version");
    assert_eq!(version, 9);
    let (policy, resource, rtype, cloud, metric, value, severity, status, decision, created): (
        String,
        String,
        String,
        String,
        String,
        f64,
        String,
        String,
        Option<String>,
        String,
    ) = conn
        .query_row(
            "SELECT policy_name, resource, resource_type, cloud, metric, value, severity, \
             status, decision_json, created_at FROM incidents WHERE fingerprint = 'schema'",
            [],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                    r.get(8)?,
                    r.get(9)?,
                ))
            },
        )
        .expect("row");
    assert_eq!(
        (policy.as_str(), resource.as_str(), cloud.as_str(), value),
        ("High CPU", "web-1", "gcp", 0.9)
    );
    assert_eq!(rtype, infraai_core::testing::GCE_INSTANCE);
    assert!(metric.ends_with("cpu/utilization"));
    // Enums are stored as the domain's serde names.
    assert_eq!((severity.as_str(), status.as_str()), ("warning", "new"));
    assert_eq!(decision, None);
    assert!(created.ends_with('Z'));
    for table in [
        "deployments",
        "runs",
        "run_phases",
        "incidents",
        "decisions",
        "approvals",
        "actions",
        "audit",
        "kill_switch",
        "cursors",
        "schema_migrations",
    ] {
        let n: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
                [table],
                |r| r.get(0),
            )
            .expect("master");
        assert_eq!(n, 1, "table {table} exists");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_rows_cannot_be_updated_or_deleted_even_with_raw_sql() {
    let (dir, store) = fresh().await;
    let record = AuditRecord::agent(AuditStep::Decision, "decided");
    store.append_audit(&record).await.expect("append");
    store.close().await.expect("close");
    let conn = rusqlite::Connection::open(dir.path().join("store.db")).expect("raw open");
    let update = conn.execute("UPDATE audit SET outcome = 'forged'", []);
    assert!(
        update
            .as_ref()
            .is_err_and(|e| e.to_string().contains("append-only")),
        "{update:?}"
    );
    let delete = conn.execute("DELETE FROM audit", []);
    assert!(delete.is_err(), "{delete:?}");
    drop(conn);
    let store = SqliteStore::open_path(dir.path().join("store.db"))
        .await
        .expect("reopen");
    assert_eq!(
        store
            .list_audit(&AuditQuery::default())
            .await
            .expect("list"),
        vec![record]
    );
}

fn assert_corrupt<T: std::fmt::Debug>(r: Result<T>, column: &str) {
    conformance::assert_corrupt(r, "sqlite", column);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_stored_data_is_a_typed_error_not_a_panic() {
    let (dir, store) = fresh().await;
    let bad_status = store
        .record_alert(&alert("bad-status", AlertState::Firing, 0.9))
        .await
        .expect("record")
        .incident
        .expect("incident")
        .id;
    let bad_decision = store
        .record_alert(&alert("bad-decision", AlertState::Firing, 0.9))
        .await
        .expect("record")
        .incident
        .expect("incident")
        .id;
    let conn = rusqlite::Connection::open(dir.path().join("store.db")).expect("raw open");
    conn.execute(
        "UPDATE incidents SET status = 'exploded' WHERE id = ?1",
        [bad_status.to_string()],
    )
    .expect("corrupt status");
    conn.execute(
        "UPDATE incidents SET decision_json = '{\"severity\": ' WHERE id = ?1",
        [bad_decision.to_string()],
    )
    .expect("corrupt decision");
    drop(conn);

    assert_corrupt(store.get_incident(bad_status).await, "status");
    assert_corrupt(store.get_incident(bad_decision).await, "decision_json");
    assert_corrupt(
        store.list_incidents(&IncidentQuery::default()).await,
        "incident",
    );
    assert_corrupt(
        store
            .transition(Transition::new(
                bad_status,
                &[IncidentStatus::New],
                IncidentStatus::Pending,
            ))
            .await,
        "status",
    );
    assert_corrupt(store.claim_execution(bad_status).await, "status");
    assert_corrupt(
        store
            .record_alert(&alert("bad-decision", AlertState::Firing, 0.9))
            .await,
        "decision_json",
    );
    // A resolved alert does not silently overwrite an unreadable status.
    assert_corrupt(
        store
            .record_alert(&alert("bad-status", AlertState::Resolved, 0.1))
            .await,
        "status",
    );
    // The store keeps working for healthy rows.
    let ok = store
        .record_alert(&alert("healthy", AlertState::Firing, 0.9))
        .await
        .expect("record");
    assert_eq!(ok.outcome, IngestOutcome::Opened);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_from_a_newer_version_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store.db");
    SqliteStore::open_path(&path)
        .await
        .expect("open")
        .close()
        .await
        .expect("close");
    let conn = rusqlite::Connection::open(&path).expect("raw open");
    conn.pragma_update(None, "user_version", 99).expect("bump");
    drop(conn);
    match SqliteStore::open(SqliteConfig::new(&path)).await {
        Err(e @ infraai_store::StoreError::SchemaTooNew { .. }) => {
            assert!(e.to_string().contains("99"))
        }
        Err(other) => panic!("expected SchemaTooNew, got {other}"),
        Ok(_) => panic!("a newer schema must be refused"),
    }
}

/// A file of schema 5, whose fingerprint history indexed every incident, is
/// upgraded at open; an incident it resolved still absorbs a late copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_5_file_is_upgraded_and_keeps_its_resolved_episodes() {
    let (dir, store) = fresh().await;
    let firing = alert("upgrade", AlertState::Firing, 0.9);
    let opened = store.record_alert(&firing).await.expect("record");
    let id = opened.incident.expect("opened").id;
    let mut cleared = firing.clone();
    cleared.state = AlertState::Resolved;
    let resolved = store.record_alert(&cleared).await.expect("resolve");
    assert_eq!(resolved.outcome, IngestOutcome::Resolved);
    store.close().await.expect("close");
    let path = dir.path().join("store.db");
    let fingerprint_indexes = |conn: &rusqlite::Connection| -> (i64, Vec<String>) {
        let version = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .expect("version");
        let names = conn
            .prepare(
                "SELECT name FROM sqlite_schema WHERE type = 'index' \
                 AND tbl_name = 'incidents' AND name LIKE '%fingerprint%' ORDER BY name",
            )
            .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
            .expect("indexes");
        (version, names)
    };
    let conn = rusqlite::Connection::open(&path).expect("raw open");
    conn.execute_batch(
        "DROP INDEX incidents_closed_fingerprint;
         CREATE INDEX incidents_by_fingerprint ON incidents (fingerprint, created_at);
         DROP TABLE settings;
         DROP INDEX decisions_by_action;
         DROP INDEX incidents_by_status;
         CREATE INDEX incidents_by_status ON incidents (status);
         DROP INDEX incidents_by_resource;
         CREATE INDEX incidents_by_resource ON incidents (resource);
         ALTER TABLE decisions DROP COLUMN action_type;
         DELETE FROM schema_migrations WHERE version >= 6;
         PRAGMA user_version = 5;",
    )
    .expect("back to schema 5");
    assert_eq!(
        fingerprint_indexes(&conn),
        (
            5,
            vec![
                "incidents_by_fingerprint".into(),
                "incidents_open_fingerprint".into()
            ]
        )
    );
    drop(conn);
    let store = SqliteStore::open_path(&path).await.expect("upgrade");
    let late = store.record_alert(&firing).await.expect("record");
    assert_eq!(
        (late.outcome, late.incident.map(|i| i.id)),
        (IngestOutcome::Noted, Some(id))
    );
    store.close().await.expect("close");
    let conn = rusqlite::Connection::open(&path).expect("raw open");
    assert_eq!(
        fingerprint_indexes(&conn),
        (
            9,
            vec![
                "incidents_closed_fingerprint".into(),
                "incidents_open_fingerprint".into()
            ]
        )
    );
    // Schema 9: a status page walks (status, created_at, id).
    let columns: Vec<String> = conn
        .prepare("SELECT name FROM pragma_index_info('incidents_by_status') ORDER BY seqno")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .expect("index columns");
    assert_eq!(columns, ["status", "created_at", "id"]);
    let columns: Vec<String> = conn
        .prepare("SELECT name FROM pragma_index_info('incidents_by_resource') ORDER BY seqno")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .expect("index columns");
    assert_eq!(columns, ["resource", "created_at", "id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn batches_and_concurrent_writes_are_all_committed() {
    let (dir, store) = fresh().await;
    let store = Arc::new(store);
    let batch: Vec<Alert> = (0..50)
        .map(|n| alert(&format!("batch-{n}"), AlertState::Firing, 0.9))
        .collect();
    let outcomes = store
        .record_alerts(received(batch.clone()))
        .await
        .expect("batch");
    assert!(outcomes.iter().all(|o| o.outcome == IngestOutcome::Opened));
    let tasks: Vec<_> = (0..200)
        .map(|n| {
            let s = store.clone();
            tokio::spawn(async move {
                s.record_alert(&alert(&format!("single-{n}"), AlertState::Firing, 0.9))
                    .await
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(
            t.await.expect("join").expect("record").outcome,
            IngestOutcome::Opened
        );
    }
    // An invalid alert in a batch rejects the whole batch.
    let mut bad = batch.clone();
    bad.push(alert("", AlertState::Firing, 0.9));
    assert!(matches!(
        store.record_alerts(received(bad)).await,
        Err(Error::Invalid { .. })
    ));
    // A batch is one transaction: a write failing after others were made
    // (here the last alert's audit reuses a stored audit id) undoes them all.
    let mut failing =
        received(["batch-undone-1", "batch-undone-2"].map(|fp| alert(fp, AlertState::Firing, 0.9)));
    failing[1].audit.as_mut().expect("audit").id = store
        .list_audit(&AuditQuery::default())
        .await
        .expect("audit")[0]
        .id;
    assert!(matches!(
        store.record_alerts(failing).await,
        Err(Error::Conflict { .. })
    ));
    drop(store);
    let conn = rusqlite::Connection::open(dir.path().join("store.db")).expect("raw open");
    let n: i64 = conn
        .query_row("SELECT COUNT(*) FROM incidents", [], |r| r.get(0))
        .expect("count");
    assert_eq!(n, 250, "nothing of either refused batch is stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_stores_on_one_file_still_claim_exactly_once() {
    // Two writers (as two processes would have) contend through SQLite's
    // file lock; BEGIN IMMEDIATE keeps every check-and-set atomic.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("shared.db");
    let a = Arc::new(SqliteStore::open_path(&path).await.expect("open a"));
    let b = Arc::new(SqliteStore::open_path(&path).await.expect("open b"));
    let id = a
        .record_alert(&alert("two-writers", AlertState::Firing, 0.9))
        .await
        .expect("record")
        .incident
        .expect("incident")
        .id;
    b.record_decision(DecisionRecord::new(
        id,
        &OpsDecision::escalate(Severity::Warning, "test"),
        IncidentStatus::Auto,
    ))
    .await
    .expect("decide through the other store");
    let tasks: Vec<_> = (0..100)
        .map(|n| {
            let s: Arc<dyn MetadataStore> = if n % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move { s.claim_execution(id).await })
        })
        .collect();
    let mut claimed = 0;
    for t in tasks {
        if let Claim::Claimed(_) = t.await.expect("join").expect("claim") {
            claimed += 1;
        }
    }
    assert_eq!(claimed, 1);
    // Both see the kill-switch the other set.
    a.set_kill_switch(KillSwitchRequest::engage("web:frank", None))
        .await
        .expect("engage");
    assert!(b.kill_switch().await.expect("read").engaged);
}
