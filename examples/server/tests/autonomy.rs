//! Priced, scheduled and earned autonomy over real HTTP against the real
//! binary (simulated cloud): change windows managed and audited, earned
//! levels promoted and demoted by outcomes and shown in `/metrics`, pins,
//! and the cost of the agent's actions summed per deployment.

mod common;

use common::*;
use reqwest::Method;
use serde_json::{json, Value};

/// An "instance down" alert on `api` at `severity`: the rule policy
/// restarts it (nothing added to the bill).
fn down(fingerprint: &str, severity: &str) -> Value {
    let uptime = "custom.googleapis.com/uptime_check/failed";
    api_alert(fingerprint, "Instance down", uptime, severity)
}

fn metric_line<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    text.lines().find(|l| l.starts_with(prefix))
}

#[tokio::test]
async fn change_windows_are_created_listed_deleted_and_audited() {
    let s = Server::start("windows", &["--cloud", "simulated"], &[]).await;
    let bad = [
        (
            json!({"name": "x", "kind": "freeze", "schedule": {"type": "recurring", "cron": "61 * * * *", "duration_minutes": 10}}),
            "cron",
        ),
        (
            json!({"name": "x", "kind": "quiet", "schedule": {"type": "recurring", "cron": "0 22 * * *", "duration_minutes": 10, "time_zone": "Mars/Olympus"}}),
            "time zone",
        ),
        (
            json!({"name": "x", "kind": "maintenance", "schedule": {"type": "once", "start": "2026-12-07T10:00:00Z", "end": "2026-12-07T12:00:00Z"}}),
            "names the resources",
        ),
        (
            json!({"name": "x", "kind": "freeze", "schedule": {"type": "once", "start": "2026-12-07T12:00:00Z", "end": "2026-12-07T10:00:00Z"}}),
            "before it starts",
        ),
        (
            json!({"name": "x", "kind": "holiday", "schedule": {"type": "once", "start": "2026-12-07T10:00:00Z", "end": "2026-12-07T12:00:00Z"}}),
            "unknown variant",
        ),
    ];
    for (body, why) in bad {
        let r = s.op(Method::POST, "/ops/windows", Some(body)).await;
        assert_eq!(r.status(), 422);
        let detail: Value = r.json().await.unwrap();
        assert!(detail["detail"].as_str().unwrap().contains(why), "{detail}");
    }
    let created = s
        .ok(
            Method::POST,
            "/ops/windows",
            Some(json!({"name": "release 4.2", "kind": "freeze", "schedule": {"type": "once", "start": "2026-01-01T00:00:00Z", "end": "2099-01-01T00:00:00Z"}})),
            201,
        )
        .await;
    let id = created["window"]["id"].as_str().unwrap().to_string();
    assert_eq!(created["window"]["created_by"], "web:operator");
    assert_eq!(created["window"]["open_until"], "2099-01-01T00:00:00Z");
    let listed = s.ok(Method::GET, "/ops/windows", None, 200).await;
    assert_eq!(listed["windows"].as_array().unwrap().len(), 1);

    // Inside the freeze, a confident warning decision asks a human.
    s.deploy().await;
    let frozen = s.incident_in(&down("frozen-1", "warning"), "pending").await;
    let detail = s
        .ok(Method::GET, &format!("/ops/alerts/{frozen}"), None, 200)
        .await;
    let notes = detail["incident"]["guardrail_notes"].to_string();
    assert!(
        notes.contains("change_freeze: freeze \\\"release 4.2\\\""),
        "{notes}"
    );

    s.ok(Method::DELETE, &format!("/ops/windows/{id}"), None, 204)
        .await;
    let again = s
        .op(Method::DELETE, &format!("/ops/windows/{id}"), None)
        .await;
    assert_eq!(again.status(), 404);
    let audit = (s.ok(
        Method::GET,
        "/ops/audit?step=change_window&limit=1000",
        None,
        200,
    ))
    .await;
    let windows: Vec<&Value> = audit["records"].as_array().unwrap().iter().collect();
    assert_eq!(windows.len(), 2, "{windows:?}");
    assert!(windows[0]["outcome"]
        .as_str()
        .unwrap()
        .starts_with("created freeze"));
    assert_eq!(windows[1]["outcome"], format!("deleted window {id}"));
    assert!(windows.iter().all(|r| r["actor"] == "web:operator"));
    // Paged one by one, newest first, past the records of other steps.
    let newest = (s.ok(
        Method::GET,
        "/ops/audit?step=change_window&limit=1",
        None,
        200,
    ))
    .await;
    assert_eq!(
        newest["records"][0]["outcome"],
        format!("deleted window {id}")
    );
    let next = newest["next"].as_str().expect("a next page");
    let path = format!("/ops/audit?step=change_window&limit=1&before={next}");
    let older = s.ok(Method::GET, &path, None, 200).await;
    assert!(older["records"][0]["outcome"]
        .as_str()
        .unwrap()
        .starts_with("created freeze"));
    assert_eq!(older["next"], Value::Null, "the oldest window record");
    let bad = s.op(Method::GET, "/ops/audit?step=nonsense", None).await;
    assert_eq!(bad.status(), 400);
}

#[tokio::test]
async fn earned_autonomy_is_promoted_demoted_pinned_and_in_metrics() {
    let env = [
        ("INFRAAI_EARNED_AUTONOMY", "true"),
        ("INFRAAI_AUTONOMY_MIN_DECISIONS", "2"),
    ];
    let s = Server::start("earned", &["--cloud", "simulated"], &env).await;
    s.deploy().await;
    let levels = s.ok(Method::GET, "/ops/autonomy/levels", None, 200).await;
    assert_eq!(
        (
            levels["enabled"].as_bool(),
            levels["min_decisions"].as_u64()
        ),
        (Some(true), Some(2))
    );
    let restart = |v: &Value| {
        v["pairs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["action"] == "restart" && p["resource_type"] == "gce_instance")
            .cloned()
            .unwrap()
    };
    assert_eq!(
        restart(&levels)["level"],
        "shadow",
        "a pair never seen starts in shadow"
    );

    for n in 0..2 {
        let id = s
            .incident_in(&down(&format!("earn-{n}"), "warning"), "pending")
            .await;
        s.approve(&id).await;
        s.wait_incident(&id, |v| v["incident"]["status"] == "resolved")
            .await;
    }
    let levels = s.ok(Method::GET, "/ops/autonomy/levels", None, 200).await;
    assert_eq!(restart(&levels)["level"], "auto");
    s.incident_in(&down("earn-alone", "warning"), "resolved")
        .await;

    // A human rejects an action of the auto pair (critical: asked anyway): demoted.
    let critical = s
        .incident_in(&down("earn-critical", "critical"), "pending")
        .await;
    s.ok(
        Method::POST,
        &format!("/ops/alerts/{critical}/reject"),
        Some(json!({})),
        200,
    )
    .await;
    let levels = s.ok(Method::GET, "/ops/autonomy/levels", None, 200).await;
    let pair = restart(&levels);
    assert_eq!(
        (
            pair["level"].as_str(),
            pair["promotions"].as_u64(),
            pair["demotions"].as_u64()
        ),
        (Some("shadow"), Some(1), Some(1))
    );
    assert!(pair["last_change"]["reason"]
        .as_str()
        .unwrap()
        .contains("rejected"));

    let metrics = s.metrics().await;
    let pair_labels = "action=\"restart\",resource_type=\"gce_instance\"";
    let line =
        |name: &str| metric_line(&metrics, &format!("{name}{{{pair_labels}")).map(str::to_string);
    assert_eq!(
        line("infraai_autonomy_promotions_total").as_deref(),
        Some(format!("infraai_autonomy_promotions_total{{{pair_labels}}} 1").as_str())
    );
    assert_eq!(
        line("infraai_autonomy_demotions_total").as_deref(),
        Some(format!("infraai_autonomy_demotions_total{{{pair_labels}}} 1").as_str())
    );
    assert!(
        metrics.contains(&format!(
            "infraai_autonomy_level{{{pair_labels},level=\"shadow\"}} 1"
        )),
        "{metrics}"
    );

    // Pins: never escalates; unknown actions and levels are refused.
    let pinned = s
        .ok(
            Method::PUT,
            "/ops/autonomy/levels/restart/gce_instance",
            Some(json!({"pin": "never"})),
            200,
        )
        .await;
    assert_eq!(
        (
            pinned["pair"]["level"].as_str(),
            pinned["pair"]["pinned"].as_bool()
        ),
        (Some("never"), Some(true))
    );
    s.incident_in(&down("pinned-never", "warning"), "escalated")
        .await;
    let refused = [
        ("restart", json!({"pin": "sometimes"}), 422),
        ("reboot", json!({"pin": null}), 400),
        ("scale_out", json!({"pin": null}), 422), // not allowed on gce_instance
    ];
    for (action, pin, status) in refused {
        let path = format!("/ops/autonomy/levels/{action}/gce_instance");
        assert_eq!(
            s.op(Method::PUT, &path, Some(pin)).await.status(),
            status,
            "{action}"
        );
    }
    let audit = (s.ok(
        Method::GET,
        "/ops/audit?step=autonomy&limit=1000",
        None,
        200,
    ))
    .await;
    let changes: Vec<&str> = audit["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        changes,
        [
            "restart on gce_instance: shadow → auto",
            "restart on gce_instance: auto → shadow",
            "restart on gce_instance: shadow → never"
        ]
    );
}

#[tokio::test]
async fn the_cost_of_executed_actions_is_summed_per_deployment() {
    let s = Server::start("costs", &["--cloud", "simulated"], &[]).await;
    let planned = s.deploy().await;
    let run_id = planned["run_id"].as_str().unwrap();
    let run = s
        .ok(Method::GET, &format!("/runs/{run_id}"), None, 200)
        .await;
    let deployment = run["run"]["deployment_id"].as_str().unwrap().to_string();
    let mut warning = cpu_alert("cost-1");
    warning["severity"] = json!("warning");
    s.incident_in(&warning, "resolved").await;
    let costs = s.ok(Method::GET, "/ops/costs", None, 200).await;
    assert_eq!(costs["max_auto_monthly_increase_usd"], 50.0);
    assert_eq!(costs["max_auto_daily_increase_usd"], 200.0);
    assert_eq!(costs["automatic_last_24h_usd"], 24.45, "{costs}");
    assert_eq!(
        costs["deployments"][&deployment],
        json!({"monthly_usd": 24.45, "actions": 1})
    );
}

#[tokio::test]
async fn a_deployment_sets_its_own_guardrails_over_the_global_ones() {
    let s = Server::start(
        "overrides",
        &["--cloud", "simulated"],
        &[("INFRAAI_EARNED_AUTONOMY", "true")],
    )
    .await;
    let planned = s.deploy().await;
    let run_id = planned["run_id"].as_str().unwrap();
    let run = s
        .ok(Method::GET, &format!("/runs/{run_id}"), None, 200)
        .await;
    let path = format!(
        "/ops/deployments/{}/guardrails",
        run["run"]["deployment_id"].as_str().unwrap()
    );
    let view = s.ok(Method::GET, &path, None, 200).await;
    assert_eq!(view["effective"]["earned_autonomy"], true);
    assert_eq!(view["effective"]["max_auto_monthly_increase_usd"], 50.0);
    s.incident_in(&down("own-1", "warning"), "pending").await;

    let set = json!({"earned_autonomy": false, "max_auto_monthly_increase_usd": 120.0});
    let view = s.ok(Method::PUT, &path, Some(set), 200).await;
    assert_eq!(view["effective"]["earned_autonomy"], false);
    assert_eq!(
        view["effective"]["max_auto_daily_increase_usd"], 200.0,
        "global"
    );
    s.incident_in(&down("own-2", "warning"), "resolved").await;

    for bad in [
        json!({"confidence_floor": 1.5}),
        json!({"max_auto_monthly_increase_usd": -5}),
    ] {
        let r = s.op(Method::PUT, &path, Some(bad)).await;
        assert_eq!(r.status(), 422);
    }
    s.ok(Method::PUT, &path, Some(json!({})), 200).await;
    s.incident_in(&down("own-3", "warning"), "pending").await;
    let audit = (s.ok(Method::GET, "/ops/audit?step=autonomy", None, 200)).await;
    let set: Vec<&Value> = audit["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| {
            r["outcome"]
                .as_str()
                .unwrap()
                .ends_with("guardrail overrides set")
        })
        .collect();
    assert_eq!(set.len(), 2);
    assert_eq!(set[0]["input"]["overrides"]["earned_autonomy"], false);
}
