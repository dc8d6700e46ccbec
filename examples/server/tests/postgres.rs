//! The server on the PostgreSQL store, over real HTTP against the real binary
//! and a real (throwaway) PostgreSQL cluster: `--database-url` selects the
//! store, the banner names it without the password, two replicas share it,
//! and `/readyz` answers 503 once PostgreSQL is gone.
//!
//! The cluster comes from `/usr/lib/postgresql/*/bin` (Debian) or PATH; as
//! root it runs as the `postgres` OS user. Without PostgreSQL the test fails
//! when `INFRAAI_REQUIRE_SERVICES=1` and skips with a message otherwise.

mod common;
#[path = "../../../infraai-store/tests/pg_cluster/mod.rs"]
mod pg_cluster;

use common::*;
use pg_cluster::Cluster;
use reqwest::Method;
use serde_json::Value;

async fn readyz(s: &Server) -> (u16, Value) {
    let r = s.http.get(s.url("/readyz")).send().await.expect("readyz");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_the_postgres_store_and_readyz_reports_it() {
    let Some(mut cluster) = Cluster::start() else {
        return;
    };
    let db = format!("infraai_api_{}", std::process::id());
    cluster.createdb(&db);
    // trust authentication ignores the password; it must still never show.
    let url = format!(
        "postgres://postgres:pw-never-shown@127.0.0.1:{}/{db}",
        cluster.port
    );
    let start = |replica: &'static str| {
        let url = url.clone();
        async move {
            Server::start(
                replica,
                &[
                    "--cloud",
                    "simulated",
                    "--database-url",
                    &url,
                    "--replica-id",
                    replica,
                ],
                &[],
            )
            .await
        }
    };
    let a = start("replica-a").await;
    let banner = a.startup.join("\n");
    assert!(
        banner.contains(&format!(
            "store: PostgreSQL postgres@127.0.0.1:{}/{db}",
            cluster.port
        )),
        "{banner}"
    );
    assert!(banner.contains("replica: replica-a"), "{banner}");
    assert!(!banner.contains("pw-never-shown"), "{banner}");
    assert!(
        !a.data.join("infraai.db").exists(),
        "no SQLite file when PostgreSQL is the store"
    );

    let (status, body) = readyz(&a).await;
    assert_eq!((status, body["store"].as_str()), (200, Some("postgres")));

    let r = a
        .http
        .post(a.url("/ops/webhook"))
        .header("x-infraai-webhook-token", WEBHOOK)
        .json(&cpu_alert("pg-cpu-1"))
        .send()
        .await
        .expect("post alert");
    assert_eq!(r.status().as_u16(), 200);
    let ack: Value = r.json().await.expect("ack");
    assert_eq!(ack["results"][0]["outcome"], "opened");
    let id = ack["results"][0]["incident_id"]
        .as_str()
        .expect("incident id")
        .to_string();
    let list = a.ok(Method::GET, "/ops/alerts", None, 200).await;
    assert!(list.to_string().contains(&id), "{list:#}");

    // A second replica on the same database sees the incident, and the same
    // alert posted to it is a repeat, not a second incident.
    let b = start("replica-b").await;
    let got = b
        .ok(Method::GET, &format!("/ops/alerts/{id}"), None, 200)
        .await;
    assert!(got.to_string().contains("pg-cpu-1"), "{got:#}");
    let r = b
        .http
        .post(b.url("/ops/webhook"))
        .header("x-infraai-webhook-token", WEBHOOK)
        .json(&cpu_alert("pg-cpu-1"))
        .send()
        .await
        .expect("post alert to b");
    let ack: Value = r.json().await.expect("ack");
    assert_eq!(ack["results"][0]["outcome"], "repeated", "{ack:#}");
    assert_eq!(ack["results"][0]["incident_id"].as_str(), Some(id.as_str()));

    // PostgreSQL gone: both replicas report not ready.
    cluster.stop();
    for s in [&a, &b] {
        let (status, body) = readyz(s).await;
        assert_eq!(status, 503, "{body:#}");
        assert!(!body.to_string().contains("pw-never-shown"));
    }
}
