//! The Redis store against the shared conformance suite, on a real server.
//!
//! The server is `INFRAAI_TEST_REDIS_URL` when set (scripts/test-all.sh starts
//! one). Otherwise these tests start a `redis-server` of their own when the
//! binary is on PATH; when it is not, they fail if `INFRAAI_REQUIRE_SERVICES=1`
//! and skip with a printed reason if not.
#![cfg(feature = "redis")]

use infraai_core::testing::{alert, conformance};
use infraai_core::*;
use infraai_store::{RedisConfig, RedisStore};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

/// A redis-server started by a test; killed (SIGKILL) on drop.
struct OwnServer {
    child: Child,
    port: u16,
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn require_services() -> bool {
    std::env::var("INFRAAI_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

/// Starts redis-server with AOF fsync on every write, in `dir`, on `port`;
/// `None` when there is no redis-server binary.
fn start_server(dir: &std::path::Path, port: u16) -> Option<OwnServer> {
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .args(["--appendonly", "yes", "--appendfsync", "always"])
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let server = OwnServer { child, port };
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some(server);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("redis-server did not start listening on {port}");
}

type Guard = Option<(OwnServer, tempfile::TempDir)>;

/// The URL to test against and the server kept alive for the test, or `None`
/// (after printing why) when Redis tests may be skipped here.
fn server() -> Option<(String, Guard)> {
    if let Ok(url) = std::env::var("INFRAAI_TEST_REDIS_URL") {
        return Some((url, None));
    }
    let dir = tempfile::tempdir().expect("tempdir");
    match start_server(dir.path(), free_port()) {
        Some(s) => Some((format!("redis://127.0.0.1:{}/", s.port), Some((s, dir)))),
        None => no_redis_server(),
    }
}

fn no_redis_server<T>() -> Option<T> {
    if require_services() {
        panic!("INFRAAI_REQUIRE_SERVICES=1 but there is no Redis to test against (no INFRAAI_TEST_REDIS_URL, no redis-server on PATH)");
    }
    // Written to the real stderr (not eprintln!, which the test harness captures).
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: no INFRAAI_TEST_REDIS_URL and no redis-server on PATH \
         (set INFRAAI_REQUIRE_SERVICES=1 to make this a failure)"
    );
    None
}

fn prefix() -> String {
    format!("infraai-test-{}", IncidentId::new())
}

async fn connect(url: &str, prefix: &str) -> RedisStore {
    RedisStore::connect(RedisConfig::new(Secret::new(url)).with_prefix(prefix))
        .await
        .unwrap_or_else(|e| panic!("Redis must be reachable at the test URL: {e}"))
}

mod each_scenario {
    use super::*;
    infraai_core::conformance_tests!({
        let Some((url, guard)) = server() else {
            return;
        };
        let store = connect(&url, &prefix()).await;
        (guard, Arc::new(store) as Arc<dyn MetadataStore>)
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_passes_the_conformance_suite() {
    let Some((url, _server)) = server() else {
        return;
    };
    let store = connect(&url, &prefix()).await;
    conformance::run_all(Arc::new(store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_survives_close_and_reopen() {
    let Some((url, _server)) = server() else {
        return;
    };
    let prefix = prefix();
    conformance::survives_reopen(|| {
        let (url, prefix) = (url.clone(), prefix.clone());
        async move { Arc::new(connect(&url, &prefix).await) as Arc<dyn MetadataStore> }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_data_and_kill_switch_survive_a_server_kill_with_aof_always() {
    // This test needs a server it can kill and restart, whatever
    // INFRAAI_TEST_REDIS_URL says.
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let Some(first) = start_server(dir.path(), port) else {
        return no_redis_server().unwrap_or(());
    };
    let url = format!("redis://127.0.0.1:{port}/");
    let prefix = prefix();
    let store = connect(&url, &prefix).await;
    let id = store
        .record_alert(&alert("restart", AlertState::Firing, 0.9))
        .await
        .expect("record")
        .incident
        .expect("incident")
        .id;
    let change = store
        .set_kill_switch(KillSwitchRequest::engage("web:erin", Some("restart")))
        .await
        .expect("engage");
    drop(store);
    drop(first); // SIGKILL: no shutdown save, only the AOF.
    let _second = start_server(dir.path(), port).expect("restart redis-server");
    for _ in 0..100 {
        let config = RedisConfig::new(Secret::new(&url)).with_prefix(&prefix);
        if let Ok(store) = RedisStore::connect(config).await {
            if let Ok(ks) = store.kill_switch().await {
                assert_eq!(ks, change.state, "the kill-switch survives a Redis kill");
                let i = store.get_incident(id).await.expect("get").expect("exists");
                assert_eq!(i.fingerprint, "restart");
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("restarted redis-server did not come back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_stored_data_is_a_typed_error_not_a_panic() {
    let Some((url, _server)) = server() else {
        return;
    };
    let prefix = prefix();
    let store = connect(&url, &prefix).await;
    let open = |fp: &'static str| {
        let store = store.clone();
        async move {
            store
                .record_alert(&alert(fp, AlertState::Firing, 0.9))
                .await
                .expect("record")
                .incident
                .expect("incident")
                .id
        }
    };
    let bad_status = open("bad-status").await;
    let bad_decision = open("bad-decision").await;
    let client = redis::Client::open(url.as_str()).expect("client");
    let mut raw = client
        .get_multiplexed_async_connection()
        .await
        .expect("raw connection");
    let () = redis::cmd("HSET")
        .arg(format!("{prefix}:incident:{bad_status}"))
        .arg("status")
        .arg("exploded")
        .query_async(&mut raw)
        .await
        .map(|_: i64| ())
        .expect("corrupt status");
    let () = redis::cmd("HSET")
        .arg(format!("{prefix}:incident:{bad_decision}"))
        .arg("decision")
        .arg("{\"severity\": ")
        .query_async(&mut raw)
        .await
        .map(|_: i64| ())
        .expect("corrupt decision");
    conformance::corrupted_incidents_are_typed_errors(&store, "redis", bad_status, bad_decision)
        .await;
}

#[tokio::test]
async fn an_unreachable_server_is_a_retryable_error_that_hides_the_password() {
    let port = free_port();
    let url = format!("redis://:hunter2-secret@127.0.0.1:{port}/");
    let mut config = RedisConfig::new(Secret::new(url));
    config.connection_timeout = Duration::from_millis(300);
    let err = match RedisStore::connect(config).await {
        Ok(_) => panic!("nothing listens on {port}"),
        Err(e) => e,
    };
    assert!(
        err.is_retryable(),
        "a refused connection may succeed later: {err}"
    );
    let text = format!("{err} {err:?}");
    assert!(!text.contains("hunter2"), "the password leaked: {text}");
    let core: Error = err.into();
    assert!(matches!(core, Error::Backend { ref component, .. } if component == "redis"));
    assert!(!format!("{core} {core:?}").contains("hunter2"));
}

/// An incident of a fresh fingerprint, forced to `status` in Redis (a
/// closed one also leaves the open-fingerprint index), and its first alert.
async fn incident_at(
    store: &RedisStore,
    raw: &mut redis::aio::MultiplexedConnection,
    prefix: &str,
    status: IncidentStatus,
) -> (Alert, IncidentId) {
    let a = alert(
        &format!("agree-{}", IncidentId::new()),
        AlertState::Firing,
        0.9,
    );
    let ingest = store.record_alert(&a).await.expect("record");
    let id = ingest.incident.expect("incident").id;
    let name = lifecycle::status_name(status);
    let mut pipe = redis::pipe();
    pipe.hset(format!("{prefix}:incident:{id}"), "status", name)
        .srem(format!("{prefix}:status:new"), id.to_string())
        .sadd(format!("{prefix}:status:{name}"), id.to_string());
    if status.is_closed() {
        pipe.del(format!("{prefix}:open:{}", a.fingerprint));
    }
    let () = pipe.query_async(raw).await.expect("force status");
    (a, id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lua_scripts_agree_with_the_core_lifecycle_for_every_status_and_event() {
    let Some((url, _server)) = server() else {
        return;
    };
    let prefix = prefix();
    let store = connect(&url, &prefix).await;
    let client = redis::Client::open(url.as_str()).expect("client");
    let mut raw = client
        .get_multiplexed_async_connection()
        .await
        .expect("raw connection");
    let raw = &mut raw;
    let status_of = |r: Result<Incident>| r.map(|i| i.status).map_err(|e| e.to_string());
    let expect = |r: std::result::Result<(), lifecycle::Refusal>, to| {
        r.map(|()| to).map_err(|e| Error::from(e).to_string())
    };
    for from in lifecycle::ALL {
        for to in lifecycle::ALL {
            let (_, id) = incident_at(&store, raw, &prefix, from).await;
            let got = status_of(store.transition(Transition::new(id, &[from], to)).await);
            let want = expect(lifecycle::transition(id, from, &[from], to), to);
            assert_eq!(got, want, "transition {from:?} → {to:?}");
            let (_, id) = incident_at(&store, raw, &prefix, from).await;
            let decision = OpsDecision {
                severity: Severity::Warning,
                recommended_action: Action::Restart {},
                requires_approval: false,
                confidence: 0.9,
                reasoning: "agreement".into(),
                risk: Risk::Low,
                precedent: None,
            };
            let got = status_of(
                store
                    .record_decision(DecisionRecord::new(id, &decision, to))
                    .await,
            );
            let want = expect(lifecycle::decide(id, from, false, &[], to), to);
            assert_eq!(got, want, "decision on {from:?} → {to:?}");
            let (_, id) = incident_at(&store, raw, &prefix, from).await;
            let proposed = DecisionRecord::proposal(id, &decision, to);
            let got = status_of(store.record_decision(proposed).await);
            let replaces = lifecycle::PROPOSABLE;
            let want = expect(lifecycle::decide(id, from, false, replaces, to), to);
            assert_eq!(got, want, "proposal on {from:?} → {to:?}");
            if got.is_ok() {
                let again = status_of(
                    store
                        .record_decision(DecisionRecord::new(id, &decision, to))
                        .await,
                );
                let want = expect(lifecycle::decide(id, to, true, &[], to), to);
                assert_eq!(again, want, "second decision on {from:?} → {to:?}");
            }
        }
    }
    for state in [AlertState::Firing, AlertState::Resolved] {
        for status in lifecycle::ALL {
            for same_start in [true, false] {
                let (mut a, _) = incident_at(&store, raw, &prefix, status).await;
                a.state = state;
                let first_start = a.started_at;
                if !same_start {
                    a.started_at += chrono::Duration::seconds(1);
                }
                let want = if status.is_closed() {
                    lifecycle::ingest_closed(&a, Some((status, first_start)))
                } else {
                    lifecycle::ingest_open(state, status)
                };
                let got = store.record_alert(&a).await.expect("record").outcome;
                assert_eq!(got, want.outcome(), "{state:?} alert on {status:?}");
            }
        }
    }
    for engaged in [false, true] {
        store
            .set_kill_switch(KillSwitchRequest {
                engaged,
                actor: "test",
                reason: None,
            })
            .await
            .expect("kill-switch");
        for status in lifecycle::ALL {
            let (_, id) = incident_at(&store, raw, &prefix, status).await;
            let step = lifecycle::claim(status, engaged);
            let got = store.claim_execution(id).await.expect("claim");
            let incident = store.get_incident(id).await.expect("get").expect("exists");
            assert_eq!(
                got,
                Claim::of(step, incident.clone()),
                "claim of {status:?}"
            );
            assert_eq!(incident.status, step.to().unwrap_or(status));
        }
    }
}
