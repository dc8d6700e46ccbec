//! The database loop on the local cloud, for real: real terraform, a real
//! PostgreSQL and Redis, two demo-service instances behind the local
//! balancer. Deploy → verification through the balancer → load holds
//! database connections → the watcher fires `sql_connections_high` → the
//! rule policy proposes a database scale-up → a human approves → Terraform
//! replaces the database server with a bigger one (same data) → connections
//! back under the threshold → resolved. Then a cache restart keeps its data,
//! and destroy leaves no process and no data directory.

use infraai_core::testing::RecordingApprover;
use infraai_core::*;
use infraai_local::instances::is_alive;
use infraai_local::profiles::{
    LOCAL_POSTGRES, LOCAL_REDIS, PG_CONNECTIONS, PG_CPU, REDIS_CLIENTS, REDIS_MEMORY,
};
use std::sync::Arc;
use std::time::Duration;

mod common;
use common::*;

async fn postgres(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}

async fn redis(url: &str) -> redis::aio::MultiplexedConnection {
    let client = redis::Client::open(url).unwrap();
    client.get_multiplexed_async_connection().await.unwrap()
}

/// `n` clients, each asking the balancer for `/work` holding a database
/// connection for a second, one request after another.
fn connections_load(url: &str, n: usize) -> Vec<Load> {
    (0..n)
        .map(|_| {
            let url = format!("{url}work?ms=0&db_ms=1000");
            Load(tokio::spawn(async move {
                let http = reqwest::Client::new();
                loop {
                    if http.get(&url).send().await.is_err() {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn web_postgres_redis_connections_scale_up_restart_destroy() {
    let Some(rig) = Rig::new("database") else {
        return;
    };
    let (records, store) = (&rig.records, &rig.store);

    // Deploy, for real; verification goes through the balancer.
    // The rule planner's shape for "a web app with PostgreSQL and Redis",
    // every resource on the smallest local size.
    let deploy = rig.deploy_agent(Arc::new(Fixed(vec![
        resource("web", ResourceKind::InstanceGroup, 2, &["db", "cache"]),
        resource("db", ResourceKind::Database, 1, &[]),
        resource("cache", ResourceKind::Cache, 1, &[]),
    ])));
    let run = deploy
        .deploy("web + PostgreSQL + Redis", false)
        .await
        .unwrap();
    assert_eq!(
        run.phase,
        RunPhase::Verified,
        "{:?} {:?}",
        run.error,
        run.history
    );
    let url = run.outputs["urls"]["web"].as_str().unwrap().to_string();
    let check = &run.verification.as_ref().unwrap().checks[0];
    assert_eq!(check.url, url, "verification checked the balancer");
    assert!(check
        .body_prefix
        .as_deref()
        .unwrap()
        .contains("\"instance\":\"web-"));
    assert_eq!(
        run.outputs["database_urls"],
        serde_json::json!(infraai_terraform::SENSITIVE)
    );
    assert!(run.outputs["endpoints"]["db"]
        .as_str()
        .unwrap()
        .starts_with("127.0.0.1:"));
    let policies: Vec<_> = run
        .plan
        .as_ref()
        .unwrap()
        .monitoring
        .iter()
        .map(|m| m.metric_name.as_str())
        .collect();
    for p in [
        "sql_cpu_high",
        "sql_connections_high",
        "cache_memory_high",
        "cache_clients_high",
    ] {
        assert!(policies.contains(&p), "{p} not bound: {policies:?}");
    }
    assert_eq!(records.members("web").await.len(), 2);
    let db_before = records.read("db").await.unwrap();
    let cache_before = records.read("cache").await.unwrap();
    let (db_url, cache_url) = (
        records.url("db").await.unwrap(),
        records.url("cache").await.unwrap(),
    );
    assert!(!db_url.contains("@127.0.0.1:0"), "a real port");

    // The demo service uses both: a /work request is a real query and a hit.
    let work: serde_json::Value = reqwest::get(format!("{url}work?ms=0"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        work["visits"].as_i64().unwrap() >= 1 && work["hits"].as_i64().unwrap() >= 1,
        "{work}"
    );
    // The application's role owns its database and is not a superuser.
    let me = postgres(&db_url)
        .await
        .query_one("SELECT current_user::text, current_database()::text, (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)", &[])
        .await
        .unwrap();
    let (user, database, superuser): (String, String, bool) = (me.get(0), me.get(1), me.get(2));
    assert_eq!(
        (user.as_str(), database.as_str(), superuser),
        ("app", "app", false)
    );
    // Data written before the database and cache restart.
    postgres(&db_url)
        .await
        .batch_execute(
            "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('written before the restart')",
        )
        .await
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg("kept")
        .arg("before")
        .query_async(&mut redis(&cache_url).await)
        .await
        .unwrap();

    // Real metrics of both: the database's process tree, its connections,
    // the cache's memory and clients.
    let approver = Arc::new(RecordingApprover::default());
    let (ops, metrics) = rig.ops_agent(approver.clone(), 10, Duration::from_secs(4));
    let cmdline = std::fs::read_to_string(format!("/proc/{}/cmdline", db_before.pid)).unwrap();
    assert!(
        cmdline.contains("postgres"),
        "the record names the postmaster: {cmdline:?}"
    );
    for (resource, resource_type, metric, within) in [
        ("db", LOCAL_POSTGRES, PG_CPU, 0.0..5.0),
        ("db", LOCAL_POSTGRES, PG_CONNECTIONS, 0.01..0.5),
        ("cache", LOCAL_REDIS, REDIS_MEMORY, 0.001..0.5),
        ("cache", LOCAL_REDIS, REDIS_CLIENTS, 0.001..0.5),
    ] {
        let query = MetricQuery {
            resource: resource.into(),
            resource_type: resource_type.into(),
            metric: metric.into(),
            lookback_secs: 30,
        };
        let value = metrics.current_value(&query).await.unwrap().value;
        assert!(within.contains(&value), "{metric} = {value}");
    }

    // Operate: the real watcher, policy, guardrails, Terraform actions and metrics.
    let mut watcher = ThresholdWatcher::new(metrics.clone());

    // 17 connections held by the web instances (+ the reading's own) of
    // local-small's 20: 0.9 > 0.8; of local-medium's 50 it is 0.36.
    let load = connections_load(&url, 17);
    let incident = watch_until_fired(&mut watcher, store, &ops, PG_CONNECTIONS, 90).await;
    assert_eq!(
        incident.status,
        IncidentStatus::Pending,
        "{:?}",
        incident.guardrail_notes
    );
    let decision = incident.decision.clone().unwrap();
    assert_eq!(
        decision.recommended_action,
        Action::ScaleUp {
            machine_type: MachineType::new("local-medium").unwrap()
        }
    );
    assert!(
        decision.requires_approval,
        "a database restart is approved by a human"
    );
    // The human saw the real Terraform dry run: only the database server replaced.
    let change_set = asked_change_set(&approver);
    assert_eq!(change_set.summary(), "1 to replace");
    assert_eq!(change_set.changes[0].address, "terraform_data.db");
    let after = approve(&ops, incident.id).await;
    assert_eq!(after.status, IncidentStatus::Resolved, "{:?}", after.note);
    let db_after = records.read("db").await.unwrap();
    assert_eq!(db_after.machine_type, "local-medium");
    assert_ne!(db_after.pid, db_before.pid, "the server was replaced");
    assert!(!is_alive(db_before.pid));
    let max: String = postgres(&db_url)
        .await
        .query_one("SHOW max_connections", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(max, "50");
    drop(load);
    let kept: String = postgres(&db_url)
        .await
        .query_one("SELECT v FROM kept", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(kept, "written before the restart");

    // A restart of the cache, through Terraform: its data is kept.
    let request = ActionRequest {
        action: Action::Restart {},
        resource: "cache".into(),
        resource_type: LOCAL_REDIS.into(),
        deployment_id: run.deployment_id,
        incident_id: IncidentId::new(),
    };
    rig.actions().execute(&request).await.unwrap();
    let cache_after = records.read("cache").await.unwrap();
    assert_ne!(cache_after.pid, cache_before.pid);
    let kept: String = redis::cmd("GET")
        .arg("kept")
        .query_async(&mut redis(&cache_url).await)
        .await
        .unwrap();
    assert_eq!(kept, "before");

    // Destroy: no process and no data directory is left.
    let members: Vec<u32> = records.members("web").await.iter().map(|m| m.pid).collect();
    let balancer = records.read("web").await.unwrap();
    rig.destroy(&run).await;
    for pid in [
        db_before.pid,
        db_after.pid,
        cache_before.pid,
        cache_after.pid,
        balancer.pid,
    ]
    .into_iter()
    .chain(members)
    {
        assert!(!is_alive(pid), "pid {pid} survived destroy");
    }
    assert!(records.list().await.is_empty());
    for name in ["db", "cache"] {
        assert!(
            !records.data_path(name).exists(),
            "{name}'s data survived destroy"
        );
    }
    assert!(records.members("web").await.is_empty());
}
