//! The PostgreSQL store against the shared conformance suite, on a real server.
//!
//! Each test starts a throwaway cluster of its own (`initdb` + `postgres` from
//! `/usr/lib/postgresql/*/bin` or PATH, on a free loopback port, stopped on
//! drop) and one database per store. As root, the server runs as the
//! `postgres` OS user (through `setpriv`). When PostgreSQL is not installed
//! these tests fail if `INFRAAI_REQUIRE_SERVICES=1` and skip with a printed
//! reason if not.
#![cfg(feature = "postgres")]

mod pg_cluster;

use infraai_core::testing::{alert, conformance};
use infraai_core::*;
use infraai_store::{PostgresConfig, PostgresStore, StoreError};
use pg_cluster::*;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

impl Cluster {
    /// Creates a database with a unique name; its URL.
    async fn database(&self) -> String {
        let name = format!("infraai_{}", uuid::Uuid::now_v7().simple());
        let admin = self.raw("postgres").await;
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create database");
        self.url(&name)
    }

    /// A plain client connection to a database of the cluster.
    async fn raw(&self, db: &str) -> tokio_postgres::Client {
        raw(&self.url(db)).await
    }
}

async fn raw(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("raw connection");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

async fn connect(url: &str) -> PostgresStore {
    PostgresStore::connect(PostgresConfig::new(Secret::new(url)))
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL must be reachable at the test URL: {e}"))
}

async fn open_incident(store: &PostgresStore, fingerprint: &str) -> IncidentId {
    store
        .record_alert(&alert(fingerprint, AlertState::Firing, 0.9))
        .await
        .expect("record")
        .incident
        .expect("incident")
        .id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_passes_the_conformance_suite() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let store = connect(&cluster.database().await).await;
    assert_eq!(store.name(), "postgres");
    conformance::run_all(Arc::new(store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_five_hundred_incidents_page_through_once_each_under_inserts() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let store = connect(&cluster.database().await).await;
    conformance::page_through_incidents(&store, 2_500, 100).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_survives_close_and_reopen() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let url = cluster.database().await;
    conformance::survives_reopen(|| {
        let url = url.clone();
        async move { Arc::new(connect(&url).await) as Arc<dyn MetadataStore> }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_opening_one_database_at_once_migrate_it_once() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let url = cluster.database().await;
    let opens: Vec<_> = (0..8)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move {
                PostgresStore::connect(PostgresConfig::new(Secret::new(url))).await
            })
        })
        .collect();
    let mut stores = Vec::new();
    for o in opens {
        stores.push(o.await.expect("join").expect("every replica opens"));
    }
    let db = url.rsplit('/').next().expect("db name");
    let rows = cluster
        .raw(db)
        .await
        .query(
            "SELECT version, name FROM schema_migrations ORDER BY version",
            &[],
        )
        .await
        .expect("schema_migrations");
    let versions: Vec<(i64, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(
        versions,
        vec![
            (1, "initial".to_string()),
            (2, "jobs".to_string()),
            (3, "closed_fingerprint_index".to_string()),
            (4, "settings".to_string()),
            (5, "decision_action_index".to_string()),
            (6, "status_page_index".to_string()),
        ]
    );
    // Schema 3: a new incident enters one fingerprint index, the open one;
    // the history index holds closed incidents only.
    let rows = cluster
        .raw(db)
        .await
        .query(
            "SELECT indexname, indexdef FROM pg_indexes \
             WHERE tablename = 'incidents' AND indexdef LIKE '%fingerprint%' ORDER BY 1",
            &[],
        )
        .await
        .expect("indexes");
    let indexes: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let names: Vec<&str> = indexes.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["incidents_closed_fingerprint", "incidents_open_fingerprint"]
    );
    for (name, def) in &indexes {
        assert!(def.contains(" WHERE "), "{name} is not partial: {def}");
    }
    // A database written by a newer build is refused, not misread.
    cluster
        .raw(db)
        .await
        .execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (99, 'future', 'x')",
            &[],
        )
        .await
        .expect("bump");
    match PostgresStore::connect(PostgresConfig::new(Secret::new(&url))).await {
        Err(StoreError::SchemaTooNew {
            component: "postgres",
            found: 99,
            ..
        }) => {}
        Err(other) => panic!("expected SchemaTooNew, got {other}"),
        Ok(_) => panic!("a newer schema must be refused"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_claim_once_and_share_the_kill_switch() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let url = cluster.database().await;
    let (a, b) = (connect(&url).await, connect(&url).await);
    let id = open_incident(&a, "replicas").await;
    let decision = OpsDecision {
        severity: Severity::Warning,
        recommended_action: Action::Restart {},
        requires_approval: false,
        confidence: 0.9,
        reasoning: "restart".into(),
        risk: Risk::Low,
        precedent: None,
    };
    b.record_decision(DecisionRecord::new(id, &decision, IncidentStatus::Auto))
        .await
        .expect("decide");
    let claims: Vec<_> = (0..40)
        .map(|n| {
            let s = if n % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move { s.claim_execution(id).await })
        })
        .collect();
    let mut claimed = 0;
    for c in claims {
        if let Claim::Claimed(_) = c.await.expect("join").expect("claim") {
            claimed += 1;
        }
    }
    assert_eq!(claimed, 1, "one execution across two replicas");
    // STOP AUTONOMY on one replica blocks claims on the other at once.
    let second = open_incident(&a, "replicas-2").await;
    a.record_decision(DecisionRecord::new(second, &decision, IncidentStatus::Auto))
        .await
        .expect("decide");
    let change = a
        .set_kill_switch(KillSwitchRequest::engage("web:alice", Some("stop")))
        .await
        .expect("engage");
    assert!(change.affected.is_empty(), "STOP rewrites no incident");
    assert!(b.kill_switch().await.expect("read").engaged);
    assert!(matches!(
        b.claim_execution(second).await.expect("claim"),
        Claim::Blocked(i) if i.status == IncidentStatus::Blocked
    ));
}

/// Alertmanager HA peers deliver the same group to two replicas, not
/// always in the same order: batches of one set of fingerprints in other
/// orders, committed at once on two stores, each open one incident per
/// fingerprint and none of them deadlocks.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn batches_of_the_same_fingerprints_in_other_orders_do_not_deadlock() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let url = cluster.database().await;
    let (a, b) = (connect(&url).await, connect(&url).await);
    let fingerprints: Vec<String> = (0..30).map(|n| format!("ha-batch-{n:02}")).collect();
    for round in 0..4 {
        let tasks: Vec<_> = (0..8usize)
            .map(|n| {
                let store = if n % 2 == 0 { a.clone() } else { b.clone() };
                // Forward, backward and rotated: every pair of batches
                // meets some fingerprints in opposite orders.
                let mut order = fingerprints.clone();
                let shift = (n * 7 + round) % order.len();
                order.rotate_left(shift);
                if n % 3 == 1 {
                    order.reverse();
                }
                let batch = infraai_core::testing::received(
                    order.iter().map(|fp| alert(fp, AlertState::Firing, 0.9)),
                );
                tokio::spawn(async move { store.record_alerts(batch).await })
            })
            .collect();
        for t in tasks {
            let ingests = t
                .await
                .expect("join")
                .expect("a batch that waited, not deadlocked");
            assert_eq!(ingests.len(), fingerprints.len());
        }
    }
    let open = a
        .list_incidents(&IncidentQuery::default())
        .await
        .expect("list");
    assert_eq!(
        open.len(),
        fingerprints.len(),
        "one incident per fingerprint"
    );
    assert!(
        open.iter().all(|i| i.occurrences == 32),
        "4 rounds × 8 batches each"
    );
    // A batch larger than one transaction takes is recorded whole, in order.
    let large = infraai_core::testing::received(
        (0..600).map(|n| alert(&format!("large-{n:03}"), AlertState::Firing, 0.9)),
    );
    let ingests = b.record_alerts(large).await.expect("large batch");
    assert_eq!(ingests.len(), 600);
    assert!(ingests.iter().all(|i| i.outcome == IngestOutcome::Opened));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_stored_data_is_a_typed_error_not_a_panic() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let url = cluster.database().await;
    let store = connect(&url).await;
    let bad_status = open_incident(&store, "bad-status").await;
    let bad_decision = open_incident(&store, "bad-decision").await;
    let raw = raw(&url).await;
    raw.execute(
        "UPDATE incidents SET status = 'exploded' WHERE id = $1",
        &[&bad_status.to_string()],
    )
    .await
    .expect("corrupt status");
    raw.execute(
        "UPDATE incidents SET decision_json = '{\"severity\": ' WHERE id = $1",
        &[&bad_decision.to_string()],
    )
    .await
    .expect("corrupt decision");
    conformance::corrupted_incidents_are_typed_errors(&store, "postgres", bad_status, bad_decision)
        .await;
    // The corrupted row was not overwritten by the failed calls.
    let status: String = raw
        .query_one(
            "SELECT status FROM incidents WHERE id = $1",
            &[&bad_status.to_string()],
        )
        .await
        .expect("read")
        .get(0);
    assert_eq!(status, "exploded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_rows_cannot_be_changed_even_with_raw_sql() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let url = cluster.database().await;
    let store = connect(&url).await;
    let record = AuditRecord::agent(AuditStep::Decision, "approved")
        .by("rules")
        .reasoning("kept forever", Some(0.9));
    store.append_audit(&record).await.expect("append");
    let raw = raw(&url).await;
    for sql in [
        "UPDATE audit SET outcome = 'tampered'",
        "DELETE FROM audit",
        "TRUNCATE audit",
    ] {
        let err = raw
            .batch_execute(sql)
            .await
            .expect_err("the audit table refuses changes");
        let db = err.as_db_error().map(|d| d.message().to_string());
        assert_eq!(
            db.as_deref(),
            Some("audit records are append-only"),
            "{sql}: {err}"
        );
    }
    let stored = store
        .list_audit(&AuditQuery::default())
        .await
        .expect("list");
    assert_eq!(stored, vec![record]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_server_is_a_retryable_error() {
    let Some(mut cluster) = Cluster::start() else {
        return;
    };
    let url = cluster.database().await;
    let store = connect(&url).await;
    store.ping().await.expect("ping while up");
    cluster.stop();
    let err = store.ping().await.expect_err("the server is down");
    assert!(err.is_retryable(), "{err}");
    let err: Error = store.kill_switch().await.expect_err("the server is down");
    assert!(err.is_retryable(), "{err}");
    // It comes back: the pool replaces the dead connections.
    cluster.run();
    let mut back = false;
    for _ in 0..50 {
        if store.ping().await.is_ok() {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(back, "the store reconnects after a server restart");
    assert!(!store.kill_switch().await.expect("read").engaged);
}

#[tokio::test]
async fn an_unreachable_server_is_a_retryable_error_that_hides_the_password() {
    let port = free_port();
    let url = format!("postgres://infraai:hunter2-secret@127.0.0.1:{port}/infraai");
    let mut config = PostgresConfig::new(Secret::new(url));
    config.connect_timeout = Duration::from_millis(500);
    let err = match PostgresStore::connect(config).await {
        Ok(_) => panic!("nothing listens on {port}"),
        Err(e) => e,
    };
    assert!(
        err.is_retryable(),
        "a refused connection may succeed later: {err}"
    );
    let text = format!("{err} {err:?}");
    assert!(!text.contains("hunter2"), "the password leaked: {text}");
    assert!(text.contains(&port.to_string()), "says where: {text}");
    let core: Error = err.into();
    assert!(core.is_retryable());
    assert!(matches!(core, Error::Backend { ref component, .. } if component == "postgres"));
    assert!(!format!("{core} {core:?}").contains("hunter2"));
}

/// Runs openssl in `dir`; panics with its stderr on failure.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A test CA and a server certificate for 127.0.0.1 signed by it, in `dir`
/// (`ca.pem`, `server.crt`, `server.key`).
fn make_certs(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=infraai test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .expect("ext file");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sslmode_require_uses_verified_tls() {
    let certs = tempfile::tempdir().expect("tempdir");
    let Some(cluster) = Cluster::start_with(|dir| {
        make_certs(certs.path());
        for f in ["server.crt", "server.key"] {
            std::fs::copy(certs.path().join(f), dir.join(f)).expect("copy cert");
        }
        if is_root() {
            let ok = Command::new("chown")
                .args(["postgres:postgres", "server.crt", "server.key"])
                .current_dir(dir)
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "chown the server key");
        }
        std::fs::set_permissions(
            dir.join("server.key"),
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .expect("key mode");
        // TLS connections only (over TCP).
        std::fs::write(
            dir.join("data").join("pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\n",
        )
        .expect("pg_hba.conf");
        let file = |f: &str| dir.join(f).display().to_string();
        vec![
            "-c".into(),
            "ssl=on".into(),
            "-c".into(),
            format!("ssl_cert_file={}", file("server.crt")),
            "-c".into(),
            format!("ssl_key_file={}", file("server.key")),
        ]
    }) else {
        return;
    };
    let base = format!(
        "postgres://postgres:hunter2-secret@127.0.0.1:{}/postgres",
        cluster.port
    );
    let config = |url: String, ca: bool| {
        let mut c = PostgresConfig::new(Secret::new(url));
        c.connect_timeout = Duration::from_secs(3);
        c.ca_file = ca.then(|| certs.path().join("ca.pem"));
        c
    };
    // Verified TLS: works, and the store says so.
    let store = PostgresStore::connect(config(format!("{base}?sslmode=require"), true))
        .await
        .expect("TLS with the test CA");
    assert!(store.tls());
    let id = open_incident(&store, "tls").await;
    assert!(store.get_incident(id).await.expect("read").is_some());
    // Without the CA the certificate is not trusted: refused, not downgraded.
    let err = match PostgresStore::connect(config(format!("{base}?sslmode=require"), false)).await {
        Err(e) => e,
        Ok(_) => panic!("an untrusted certificate must be refused"),
    };
    let text = format!("{err} {err:?}");
    assert!(!text.contains("hunter2"), "{text}");
    assert!(text.to_lowercase().contains("certificate"), "{text}");
    assert!(
        !err.is_retryable(),
        "retrying cannot make a certificate trusted"
    );
    // Plain text is refused by this server (hostssl only).
    assert!(
        PostgresStore::connect(config(base.clone(), true))
            .await
            .is_err(),
        "plain connections are refused by a hostssl-only server"
    );
    // A CA file that is not one is a clear error.
    let mut bad = config(format!("{base}?sslmode=require"), false);
    bad.ca_file = Some(certs.path().join("server.ext"));
    assert!(matches!(
        PostgresStore::connect(bad).await,
        Err(StoreError::Invalid { .. })
    ));
}

#[tokio::test]
async fn bad_urls_are_refused_without_echoing_the_password() {
    match PostgresStore::connect(PostgresConfig::new(Secret::new(
        "postgres://u:hunter2@h:notaport/db",
    )))
    .await
    {
        Err(e @ StoreError::Invalid { .. }) => {
            assert!(!format!("{e} {e:?}").contains("hunter2"), "{e:?}");
        }
        Err(other) => panic!("expected Invalid, got {other}"),
        Ok(_) => panic!("a bad port must be refused"),
    }
}
