//! The whole loop on the local cloud, for real: real terraform, real
//! processes, real HTTP, real CPU. Deploy → load → the watcher fires cpu_high
//! → the rule policy proposes a scale-up → approved → Terraform replaces the
//! instance with a larger one → under the same load utilization falls → the
//! re-check resolves the incident. Then a broken health check → restart →
//! resolved. Then destroy leaves no process behind.

use infraai_core::testing::RecordingApprover;
use infraai_core::*;
use infraai_local::instances::is_alive;
use infraai_local::profiles::{CPU_UTILIZATION, HEALTH_FAILING};
use std::sync::Arc;
use std::time::Duration;

mod common;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deploy_load_scale_up_restart_destroy() {
    let Some(rig) = Rig::new("loop") else { return };
    let (instances, store) = (&rig.records, &rig.store);

    // Deploy, for real.
    let deploy = rig.rule_deploy_agent();
    let run = deploy
        .deploy("a web app for 500 users", false)
        .await
        .unwrap();
    assert_eq!(
        run.phase,
        RunPhase::Verified,
        "{:?} {:?}",
        run.error,
        run.history
    );
    let verification = run.verification.as_ref().unwrap();
    assert!(verification.ok);
    assert_eq!(verification.checks[0].status, Some(200));
    assert!(verification.checks[0]
        .body_prefix
        .as_deref()
        .unwrap()
        .contains("\"machine_type\":\"local-small\""));
    let deployment = store
        .get_deployment(run.deployment_id.unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        deployment
            .resource("web")
            .unwrap()
            .machine_type
            .as_ref()
            .unwrap()
            .as_str(),
        "local-small"
    );
    let first = instances.read("web").await.unwrap();
    assert!(is_alive(first.pid));
    let url = run.outputs["urls"]["web"].as_str().unwrap().to_string();

    // Operate: the real watcher, policy, guardrails, Terraform actions and metrics.
    let approver = Arc::new(RecordingApprover::default());
    let (ops, metrics) = rig.ops_agent(approver.clone(), 10, Duration::from_secs(3));
    let mut watcher = ThresholdWatcher::new(metrics.clone());

    // 0.3 cores of load: 1.2 of a local-small's 0.25, 0.6 of a local-medium's 0.5.
    let _load = load(url.clone(), 30);
    let incident = watch_until_fired(&mut watcher, store, &ops, CPU_UTILIZATION, 60).await;
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
    // The human saw the real Terraform dry run: exactly this instance replaced.
    let change_set = asked_change_set(&approver);
    assert_eq!(change_set.summary(), "1 to replace");
    assert_eq!(change_set.changes[0].address, "terraform_data.web");
    let after = approve(&ops, incident.id).await;
    assert_eq!(after.status, IncidentStatus::Resolved, "{:?}", after.note);
    let scaled = instances.read("web").await.unwrap();
    assert_eq!(scaled.machine_type, "local-medium");
    assert_eq!(scaled.port, first.port, "the URL stays the same");
    assert_ne!(scaled.pid, first.pid, "the process was replaced");
    assert!(!is_alive(first.pid));
    let actions = store.list_actions(incident.id).await.unwrap();
    assert!(
        actions[0].summary.contains("1 to replace"),
        "{}",
        actions[0].summary
    );
    drop(_load);

    // Broken health → restart → healthy → resolved.
    reqwest::Client::new()
        .post(format!("{url}admin/break"))
        .send()
        .await
        .unwrap();
    let sick = watch_until_fired(&mut watcher, store, &ops, HEALTH_FAILING, 30).await;
    assert_eq!(
        sick.decision.as_ref().unwrap().recommended_action,
        Action::Restart {}
    );
    let outcome = ops
        .handle_command(&HumanReply::new(
            HumanCommand::Approve {
                incident_id: sick.id,
            },
            Actor::new("web", "tester"),
        ))
        .await
        .unwrap();
    let healed = wait_status(store, sick.id, IncidentStatus::Resolved, 5).await;
    assert!(outcome.effective && healed.note.unwrap().contains("back within the threshold"));
    let restarted = instances.read("web").await.unwrap();
    assert_ne!(restarted.pid, scaled.pid);
    assert_eq!(restarted.machine_type, "local-medium");

    // Destroy: no demo-service process is left.
    rig.destroy(&run).await;
    for pid in [first.pid, scaled.pid, restarted.pid] {
        assert!(!is_alive(pid), "pid {pid} survived destroy");
    }
    assert!(instances.list().await.is_empty());
}
