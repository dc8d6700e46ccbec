//! The whole loop on the local cloud, for real: real terraform, real
//! processes, real HTTP, real CPU. Deploy → load → the watcher fires cpu_high
//! → the rule policy proposes a scale-up → approved → Terraform replaces the
//! instance with a larger one → under the same load utilization falls → the
//! re-check resolves the incident. Then a broken health check → restart →
//! resolved. Then destroy leaves no process behind.

use infraai_core::testing::{MemoryStore, RecordingApprover};
use infraai_core::*;
use infraai_local::instances::{is_alive, InstanceDir};
use infraai_local::profiles::{register_profiles, CPU_UTILIZATION, HEALTH_FAILING, LOCAL_INSTANCE};
use infraai_local::{LocalActions, LocalCloud, LocalConfig, LocalMetrics};
use infraai_terraform::TerraformRunner;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

mod common;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deploy_load_scale_up_restart_destroy() {
    let Some(tf) = terraform("loop") else { return };
    let state = tf.work_root.parent().unwrap().join("state");
    let instances = InstanceDir::new(&state);
    let _reaper = Reaper(state.clone());
    let runner = Arc::new(TerraformRunner::new(tf));
    let store = Arc::new(MemoryStore::new());
    let mut registry = MetricProfileRegistry::empty();
    register_profiles(&mut registry);
    // The built-in local profiles hold for 30 s; the test keeps their
    // thresholds but shortens the duration to keep CI fast.
    for (name, metric, threshold) in [
        ("cpu_high", CPU_UTILIZATION, 0.8),
        ("health_failing", HEALTH_FAILING, 0.0),
    ] {
        registry.register(
            LOCAL_INSTANCE,
            MetricProfile::above(
                name,
                metric,
                threshold,
                3,
                Severity::Critical,
                Aligner::Mean,
            ),
        );
    }
    let registry = Arc::new(registry);
    let cloud = LocalCloud::new(LocalConfig {
        state_dir: state.clone(),
        service_program: PathBuf::from(env!("CARGO_BIN_EXE_infraai-demo-service")),
        service_subcommand: None,
    });

    // Deploy, for real.
    let deploy = DeployAgent::new(
        DeployDeps {
            planner: Arc::new(rules::RulePlanner::new(infraai_core::testing::catalog())),
            generator: Arc::new(cloud),
            fixers: infraai_terraform::fixers::deterministic_fixers(),
            runner: runner.clone(),
            verifier: Arc::new(HttpVerifier::new(5, Duration::from_millis(300))),
            store: store.clone(),
            registry: registry.clone(),
            events: EventBus::new(),
        },
        DeployConfig::default(),
    );
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
    let metrics = Arc::new(LocalMetrics::new(instances.clone()));
    let approver = Arc::new(RecordingApprover::default());
    let mut guardrails = infraai_local::profiles::guardrails(GuardrailConfig::default());
    guardrails.max_auto_actions = 10;
    let ops = OpsAgent::new(
        OpsDeps {
            store: store.clone(),
            policy: Arc::new(rules::RulePolicy),
            notifier: approver.clone(),
            actions: Arc::new(LocalActions::new(
                runner.clone(),
                store.clone(),
                instances.clone(),
            )),
            metrics: metrics.clone(),
            registry: registry.clone(),
        },
        Guardrails::new(guardrails),
        OpsConfig {
            feedback_delay: Duration::from_secs(3),
            ..OpsConfig::default()
        },
    );
    let mut watcher = ThresholdWatcher::new(metrics.clone());
    let approver_requests = || approver.requests();

    // 0.3 cores of load: 1.2 of a local-small's 0.25, 0.6 of a local-medium's 0.5.
    let _load = load(url.clone(), 30);
    let incident = watch_until_fired(&mut watcher, &store, &ops, CPU_UTILIZATION, 60).await;
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
    let asked = approver_requests();
    let change_set = asked[0]
        .preview
        .as_ref()
        .unwrap()
        .change_set
        .clone()
        .unwrap();
    assert_eq!(change_set.summary(), "1 to replace");
    assert_eq!(change_set.changes[0].address, "terraform_data.web");
    let preview = ops
        .handle_command(&HumanReply::new(
            HumanCommand::Approve {
                incident_id: incident.id,
            },
            Actor::new("web", "tester"),
        ))
        .await
        .unwrap();
    let after = preview.incident.unwrap();
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
    let sick = watch_until_fired(&mut watcher, &store, &ops, HEALTH_FAILING, 30).await;
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
    let healed = wait_status(&store, sick.id, IncidentStatus::Resolved, 5).await;
    assert!(outcome.effective && healed.note.unwrap().contains("back within the threshold"));
    let restarted = instances.read("web").await.unwrap();
    assert_ne!(restarted.pid, scaled.pid);
    assert_eq!(restarted.machine_type, "local-medium");

    // Destroy: no demo-service process is left.
    let ws = TfWorkspace {
        run_id: run.id,
        dir: PathBuf::from(&deployment.terraform_state),
    };
    runner.destroy(&ws, &Quiet).await.unwrap();
    for pid in [first.pid, scaled.pid, restarted.pid] {
        assert!(!is_alive(pid), "pid {pid} survived destroy");
    }
    assert!(instances.list().await.is_empty());
    let _ = std::fs::remove_dir_all(state.parent().unwrap());
}
