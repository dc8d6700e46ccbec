//! Paging through incidents over real HTTP: `GET /ops/alerts` with `limit`,
//! `cursor`, `next`, the `Link` header and `status=open`, while alerts keep
//! arriving between pages.

mod common;

use common::*;
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::HashSet;

/// `count` firing alerts with fingerprints `prefix-0…`, in one delivery.
fn alerts(prefix: &str, count: usize) -> Value {
    let many: Vec<Value> = (0..count)
        .map(|n| cpu_alert(&format!("{prefix}-{n}")))
        .collect();
    json!(many)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incidents_page_through_once_each_while_alerts_arrive() {
    let s = Server::start("paging", &["--cloud", "simulated"], &[]).await;
    let ack = s.post_alert(&alerts("paged", 250)).await;
    assert_eq!(ack["accepted"], 250);
    let existed: HashSet<String> = ack["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["incident_id"].as_str().expect("opened").to_owned())
        .collect();

    let (mut seen, mut next, mut pages) = (HashSet::new(), None::<String>, 0);
    loop {
        let path = match &next {
            None => "/ops/alerts?limit=40".to_owned(),
            Some(cursor) => format!("/ops/alerts?limit=40&cursor={cursor}"),
        };
        let r = s.op(Method::GET, &path, None).await;
        assert_eq!(r.status().as_u16(), 200);
        let link = r
            .headers()
            .get("link")
            .map(|l| l.to_str().expect("ascii").to_owned());
        let page: Value = r.json().await.expect("json");
        // New alerts arrive between pages.
        s.post_alert(&alerts(&format!("late-{pages}"), 3)).await;
        for i in page["incidents"].as_array().expect("incidents") {
            let id = i["id"].as_str().expect("id").to_owned();
            assert!(seen.insert(id.clone()), "incident {id} listed twice");
        }
        pages += 1;
        next = page["next"].as_str().map(str::to_owned);
        match (&next, link) {
            (Some(cursor), Some(link)) => {
                assert!(
                    link.contains(&format!("cursor={cursor}")) && link.ends_with("rel=\"next\""),
                    "{link}"
                );
            }
            (None, None) => break,
            other => panic!("next and Link disagree: {other:?}"),
        }
    }
    assert_eq!(pages, 7, "250 incidents in pages of 40");
    let missed: Vec<_> = existed.difference(&seen).collect();
    assert!(missed.is_empty(), "never listed: {missed:?}");

    // `open`: every incident not closed, the resolved one left out.
    let mut resolved = cpu_alert("paged-0");
    resolved["state"] = json!("resolved");
    s.post_alert(&resolved).await;
    let open = s
        .ok(Method::GET, "/ops/alerts?status=open&limit=1000", None, 200)
        .await;
    let open = open["incidents"].as_array().expect("incidents");
    assert_eq!(
        open.len(),
        seen.len() + 3 * pages - 1,
        "all but the resolved one"
    );
    assert!(open.iter().all(|i| i["status"] != "resolved"));

    for bad in ["nonsense", "1_2"] {
        let r = s
            .op(Method::GET, &format!("/ops/alerts?cursor={bad}"), None)
            .await;
        let status = r.status().as_u16();
        assert!((400..500).contains(&status), "cursor {bad}: {status}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_page_through_once_each_while_runs_are_planned() {
    let s = Server::start("paging-runs", &["--cloud", "simulated"], &[]).await;
    let mut existed = HashSet::new();
    for _ in 0..25 {
        existed.insert(s.plan().await["run_id"].as_str().unwrap().to_owned());
    }
    let (mut seen, mut path, mut pages) = (HashSet::new(), "/runs?limit=10".to_owned(), 0);
    loop {
        let r = s.op(Method::GET, &path, None).await;
        assert_eq!(r.status().as_u16(), 200);
        let link = r
            .headers()
            .get("link")
            .map(|l| l.to_str().unwrap().to_owned());
        let page: Value = r.json().await.unwrap();
        s.plan().await; // a run planned between pages
        for run in page["runs"].as_array().unwrap() {
            assert_eq!(run["status"], "running", "planned, not executed: {run}");
            assert!(
                seen.insert(run["run_id"].as_str().unwrap().to_owned()),
                "listed twice"
            );
        }
        pages += 1;
        match (page["next"].as_str(), link) {
            (Some(cursor), Some(link)) => {
                assert!(link.starts_with("</runs?limit=10&cursor="), "{link}");
                path = format!("/runs?limit=10&cursor={cursor}");
            }
            (None, None) => break,
            other => panic!("next and Link disagree: {other:?}"),
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, existed);
    let r = s.op(Method::GET, "/runs?deployment_id=nope", None).await;
    assert!((400..500).contains(&r.status().as_u16()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incidents_audit_trail_pages_back_one_record_at_a_time() {
    let s = Server::start("paging-audit", &["--cloud", "simulated"], &[]).await;
    let ack = s.post_alert(&cpu_alert("audit-pages")).await;
    let id = ack["decision_id"].as_str().unwrap().to_owned();
    let decided = s.wait_incident(&id, |i| !i["decision"].is_null()).await;
    assert!(!decided["decision"].is_null());
    let (mut seen, mut path) = (Vec::new(), format!("/ops/alerts/{id}?audit_limit=1"));
    loop {
        let page = s.ok(Method::GET, &path, None, 200).await;
        let records = page["audit"].as_array().unwrap();
        assert_eq!(records.len(), 1, "{page}");
        seen.insert(0, records[0]["id"].clone());
        match page["audit_next"].as_str() {
            Some(cursor) => path = format!("/ops/alerts/{id}?audit_limit=1&audit_cursor={cursor}"),
            None => break,
        }
    }
    // Records appended after the first page (the decision's follow-up) come
    // after the ones paged through.
    let all = s
        .ok(
            Method::GET,
            &format!("/ops/alerts/{id}?audit_limit=10000"),
            None,
            200,
        )
        .await;
    let all: Vec<Value> = all["audit"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].clone())
        .collect();
    assert!(seen.len() >= 2, "{seen:?}");
    assert!(
        all.starts_with(&seen),
        "every record once, oldest first: {seen:?} vs {all:?}"
    );
    let r = s
        .op(
            Method::GET,
            &format!("/ops/alerts/{id}?audit_cursor=nope"),
            None,
        )
        .await;
    assert_eq!(r.status().as_u16(), 400);
}
