//! Several server processes (the real binary) on one real PostgreSQL
//! cluster, over real HTTP: duplicates posted round-robin make one incident
//! and one decision, concurrent approvals spread over the replicas make one
//! execution, STOP AUTONOMY on one replica stops them all, and a replica
//! killed with SIGKILL while it holds a feedback check leaves it to another
//! replica, which completes it exactly once after the lease ends.
//!
//! Without PostgreSQL the tests fail when `INFRAAI_REQUIRE_SERVICES=1` and
//! skip with a message otherwise.

mod common;
#[path = "../../../infraai-store/tests/pg_cluster/mod.rs"]
mod pg_cluster;

use common::*;
use pg_cluster::Cluster;
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;

/// One query's result through `psql` (unaligned, tuples only).
fn psql(url: &str, query: &str) -> String {
    let psql = pg_cluster::pg_bin_dir().expect("postgresql").join("psql");
    let out = std::process::Command::new(psql)
        .args([url, "-XAtc", query])
        .output()
        .expect("run psql");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A fresh database on the cluster; its URL.
fn database(cluster: &Cluster, name: &str) -> String {
    let db = format!("infraai_{name}_{}", std::process::id());
    cluster.createdb(&db);
    format!("postgres://postgres@127.0.0.1:{}/{db}", cluster.port)
}

async fn replica(url: &str, id: &str, env: &[(&str, &str)]) -> Server {
    Server::start(
        id,
        &[
            "--cloud",
            "simulated",
            "--database-url",
            url,
            "--replica-id",
            id,
        ],
        env,
    )
    .await
}

/// The incident's audit records of one step.
fn audit_of<'a>(detail: &'a Value, step: &str) -> Vec<&'a Value> {
    detail["audit"]
        .as_array()
        .expect("audit")
        .iter()
        .filter(|a| a["step"] == step)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_decide_once_execute_once_and_stop_together() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let url = database(&cluster, "three");
    let a = replica(&url, "replica-a", &[]).await;
    let b = replica(&url, "replica-b", &[]).await;
    let c = replica(&url, "replica-c", &[]).await;
    let replicas = [&a, &b, &c];
    // Each singleton loop (approval expiry, quiet-window digests, the orphan
    // sweep; the simulated cloud runs no watcher) is held by exactly one
    // replica.
    let query = "SELECT count(*) || ' ' || count(DISTINCT key) FROM jobs \
                 WHERE key LIKE 'loop:%' AND owner LIKE 'replica-_'";
    let mut loops = psql(&url, query);
    for _ in 0..50 {
        if loops == "3 3" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        loops = psql(&url, query);
    }
    assert_eq!(loops, "3 3");
    b.deploy().await;

    // 200 copies of one alert, all at once, round-robin over the replicas.
    let body = cpu_alert("replicas-cpu");
    let posts = (0..200).map(|n| replicas[n % 3].post_alert(&body));
    let acks = futures_util::future::join_all(posts).await;
    let outcomes: Vec<&str> = acks
        .iter()
        .map(|a| a["results"][0]["outcome"].as_str().expect("outcome"))
        .collect();
    assert_eq!(outcomes.iter().filter(|o| **o == "opened").count(), 1);
    assert_eq!(outcomes.iter().filter(|o| **o == "repeated").count(), 199);
    let id = acks[0]["results"][0]["incident_id"]
        .as_str()
        .expect("id")
        .to_string();
    assert!(acks
        .iter()
        .all(|a| a["results"][0]["incident_id"].as_str() == Some(id.as_str())));
    let pending = c
        .wait_incident(&id, |v| v["incident"]["status"] == "pending")
        .await;
    assert_eq!(pending["incident"]["occurrences"], 200);
    let list = a.ok(Method::GET, "/ops/alerts", None, 200).await;
    let incidents = list["incidents"].as_array().expect("incidents");
    assert_eq!(incidents.len(), 1, "one incident: {list:#}");
    assert_eq!(incidents[0]["id"].as_str(), Some(id.as_str()));

    // 100 approvals at once, spread over the replicas: one takes effect.
    let path = format!("/ops/alerts/{id}/approve");
    let approvals = (0..100).map(|n| replicas[n % 3].op(Method::POST, &path, None));
    let codes: Vec<u16> = futures_util::future::join_all(approvals)
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    assert_eq!(codes.iter().filter(|c| **c == 200).count(), 1, "{codes:?}");
    assert_eq!(codes.iter().filter(|c| **c == 409).count(), 99, "{codes:?}");
    let resolved = a
        .wait_incident(&id, |v| v["incident"]["status"] == "resolved")
        .await;
    assert_eq!(resolved["actions"].as_array().expect("actions").len(), 1);
    // The API shows the newest 200 records; the database has them all.
    let count = |step: &str| {
        psql(
            &url,
            &format!("SELECT count(*) FROM audit WHERE incident_id = '{id}' AND step = '{step}'"),
        )
    };
    assert_eq!(count("decision"), "1");
    assert_eq!(count("feedback"), "1");
    assert_eq!(count("action"), "1");
    let approvals = resolved["approvals"].as_array().expect("approvals");
    assert_eq!(approvals.len(), 100);
    assert_eq!(
        approvals.iter().filter(|a| a["effective"] == true).count(),
        1
    );
    // Every agent record names the replica that wrote it.
    let unnamed = psql(
        &url,
        &format!(
            "SELECT count(*) FROM audit WHERE incident_id = '{id}' AND actor = 'agent' \
             AND (replica IS NULL OR replica NOT LIKE 'replica-_')"
        ),
    );
    assert_eq!(unnamed, "0");

    // A second incident waits for approval; STOP AUTONOMY on one replica.
    let second = a.post_alert(&cpu_alert("replicas-cpu-2")).await["results"][0]["incident_id"]
        .as_str()
        .expect("id")
        .to_string();
    b.wait_incident(&second, |v| v["incident"]["status"] == "pending")
        .await;
    a.ok(
        Method::POST,
        "/ops/autonomy/stop",
        Some(json!({"reason": "replica test"})),
        200,
    )
    .await;
    for s in replicas {
        let state = s.ok(Method::GET, "/ops/autonomy", None, 200).await;
        assert_eq!(state["kill_switch"]["engaged"], true, "{state:#}");
    }
    // Approvals on the other replicas execute nothing.
    for s in [&b, &c] {
        let r = s
            .op(Method::POST, &format!("/ops/alerts/{second}/approve"), None)
            .await;
        assert_eq!(r.status().as_u16(), 409);
        let text = r.text().await.unwrap_or_default();
        assert!(text.contains("Autonomy is stopped"), "{text}");
    }
    let held = c
        .ok(Method::GET, &format!("/ops/alerts/{second}"), None, 200)
        .await;
    assert_eq!(held["incident"]["status"], "pending");
    assert_eq!(held["actions"].as_array().expect("actions").len(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_killed_holding_a_feedback_check_leaves_it_to_another_once() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let url = database(&cluster, "takeover");
    // Short leases, and a feedback check due 8 s after the action.
    let env = [
        ("INFRAAI_LEASE_SECS", "3"),
        ("INFRAAI_FEEDBACK_DELAY_SECS", "8"),
    ];
    let mut a = replica(&url, "replica-a", &env).await;
    let b = replica(&url, "replica-b", &env).await;
    let c = replica(&url, "replica-c", &env).await;
    a.deploy().await;
    let id = a.post_alert(&cpu_alert("takeover-cpu")).await["results"][0]["incident_id"]
        .as_str()
        .expect("id")
        .to_string();
    a.wait_incident(&id, |v| v["incident"]["status"] == "pending")
        .await;
    // Approved on replica a: a executes and holds the check while it waits.
    a.ok(
        Method::POST,
        &format!("/ops/alerts/{id}/approve"),
        None,
        200,
    )
    .await;
    let executed = a
        .wait_incident(&id, |v| v["incident"]["status"] == "executed")
        .await;
    let owner = psql(
        &url,
        &format!("SELECT owner FROM jobs WHERE key = 'incident:{id}'"),
    );
    assert_eq!(owner, "replica-a");
    let acted_at = executed["actions"][0]["finished_at"]
        .as_str()
        .expect("action time")
        .to_string();
    a.child.kill().await.expect("SIGKILL");

    // Another replica takes the job over once the lease ends and completes
    // the check when it is due.
    let resolved = b
        .wait_incident(&id, |v| v["incident"]["status"] == "resolved")
        .await;
    let feedback = audit_of(&resolved, "feedback");
    assert_eq!(feedback.len(), 1, "{resolved:#}");
    let by = feedback[0]["replica"].as_str().expect("replica");
    assert!(by == "replica-b" || by == "replica-c", "{by}");
    let acted: chrono::DateTime<chrono::Utc> = acted_at.parse().expect("time");
    let checked: chrono::DateTime<chrono::Utc> = feedback[0]["at"]
        .as_str()
        .expect("at")
        .parse()
        .expect("time");
    assert!(
        checked - acted >= chrono::Duration::seconds(8),
        "the check waited for its due time: {acted} → {checked}"
    );
    assert_eq!(resolved["actions"].as_array().expect("actions").len(), 1);
    // Exactly once: two more leases later, still one check and no job left.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let after = c
        .ok(Method::GET, &format!("/ops/alerts/{id}"), None, 200)
        .await;
    assert_eq!(audit_of(&after, "feedback").len(), 1, "{after:#}");
    assert_eq!(after["incident"]["status"], "resolved");
    let left = psql(
        &url,
        "SELECT count(*) FROM jobs WHERE key LIKE 'incident:%'",
    );
    assert_eq!(left, "0", "finished jobs are deleted");
    let action = audit_of(&after, "action");
    assert_eq!(action.len(), 1);
    assert_eq!(action[0]["replica"], "replica-a");
    // The loops replica a held have moved to the living replicas.
    let loops = psql(
        &url,
        "SELECT string_agg(coalesce(owner, '-'), ' ' ORDER BY key) FROM jobs WHERE key LIKE 'loop:%'",
    );
    let owners: Vec<&str> = loops.split(' ').collect();
    assert_eq!(owners.len(), 3, "{loops}");
    assert!(
        owners
            .iter()
            .all(|o| *o == "replica-b" || *o == "replica-c"),
        "{loops}"
    );
}
