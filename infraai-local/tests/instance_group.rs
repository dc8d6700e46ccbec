//! An instance group on the local cloud, for real: the rule planner's group
//! for a big goal runs two demo-service instances behind the local balancer;
//! CPU load on the group fires `cpu_high` → the rule policy proposes a
//! scale-out → approved → Terraform adds a third instance (the first two
//! keep running) → requests through the balancer reach all three → the
//! re-check resolves the incident. The guardrails' maximum then stops the
//! next scale-out.

use infraai_core::testing::RecordingApprover;
use infraai_core::*;
use infraai_local::balancer::INSTANCE_HEADER;
use infraai_local::instances::is_alive;
use infraai_local::profiles::{CPU_UTILIZATION, LOCAL_INSTANCE_GROUP};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

mod common;
use common::*;

/// The instances that answered `n` requests through the balancer.
async fn answered_by(url: &str, n: usize) -> BTreeSet<String> {
    let http = reqwest::Client::new();
    let mut seen = BTreeSet::new();
    for _ in 0..n {
        let r = http.get(url).send().await.unwrap();
        assert!(r.status().is_success());
        let header = r.headers()[INSTANCE_HEADER].to_str().unwrap().to_string();
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(
            body["instance"],
            header.as_str(),
            "the header names who answered"
        );
        seen.insert(header);
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_group_scales_out_from_two_to_three_behind_its_balancer() {
    let Some(rig) = Rig::new("group") else { return };
    let (records, store) = (&rig.records, &rig.store);
    let deploy = rig.rule_deploy_agent();
    // 100k users: the rule planner's autoscaled group of two, sized down
    // to e2-small (local-small, 0.25 cores each) to fit the budget.
    let run = deploy
        .deploy("a web app for 100k users under $30/month", false)
        .await
        .unwrap();
    assert_eq!(run.phase, RunPhase::Verified, "{:?}", run.error);
    let plan = run.plan.as_ref().unwrap();
    let web = plan.resource("web").unwrap();
    assert_eq!(
        (web.kind, web.count, web.resource_type.as_deref()),
        (ResourceKind::InstanceGroup, 2, Some(LOCAL_INSTANCE_GROUP))
    );
    assert_eq!(web.machine_type.as_ref().unwrap().as_str(), "local-small");
    let url = run.outputs["urls"]["web"].as_str().unwrap().to_string();
    let two = answered_by(&url, 6).await;
    assert_eq!(two, BTreeSet::from(["web-0".into(), "web-1".into()]));
    let first_two: Vec<u32> = records.members("web").await.iter().map(|m| m.pid).collect();

    let approver = Arc::new(RecordingApprover::default());
    let (ops, metrics) = rig.ops_agent(approver.clone(), 3, Duration::from_secs(3));
    let mut watcher = ThresholdWatcher::new(metrics.clone());
    let replaced = first_two.clone();

    // 0.45 cores of load: 0.9 of two local-small's 0.5, 0.6 of three's 0.75.
    let load = load(url.clone(), 45);
    let incident = watch_until_fired(&mut watcher, store, &ops, CPU_UTILIZATION, 60).await;
    assert_eq!(
        incident.status,
        IncidentStatus::Pending,
        "{:?}",
        incident.guardrail_notes
    );
    assert_eq!(
        incident.decision.as_ref().unwrap().recommended_action,
        Action::ScaleOut { instances: 3 }
    );
    let change_set = asked_change_set(&approver);
    assert_eq!(change_set.summary(), "1 to create");
    assert_eq!(
        change_set.changes[0].address,
        "terraform_data.web_instance[2]"
    );
    let after = approve(&ops, incident.id).await;
    assert_eq!(after.status, IncidentStatus::Resolved, "{:?}", after.note);
    drop(load);
    let three: Vec<u32> = records.members("web").await.iter().map(|m| m.pid).collect();
    assert_eq!(three.len(), 3);
    assert_eq!(three[..2], replaced[..], "the first two kept running");
    let all = answered_by(&url, 9).await;
    assert_eq!(
        all,
        BTreeSet::from(["web-0".into(), "web-1".into(), "web-2".into()])
    );
    let deployment = store
        .get_deployment(run.deployment_id.unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(deployment.resource("web").unwrap().count, 3);

    // At the guardrails' maximum (3) the policy can no longer scale out.
    let alert = Alert {
        fingerprint: "again".into(),
        started_at: chrono::Utc::now(),
        ..incident.alert.clone()
    };
    let again = ops.handle_alert(&alert).await.unwrap().incident.unwrap();
    assert_eq!(
        again.decision.unwrap().recommended_action.kind(),
        ActionKind::ScaleUp
    );

    rig.destroy(&run).await;
    for pid in first_two.into_iter().chain(three) {
        assert!(!is_alive(pid), "pid {pid} survived destroy");
    }
    assert!(records.list().await.is_empty() && records.members("web").await.is_empty());
}
