//! The local cloud's own failure patterns, end to end with real terraform:
//! an instance whose service program may not be executed fails its
//! provisioner with "Permission denied"; the deploy loop classifies it with
//! the local cloud's pattern (through `TerraformGenerator::failure_patterns`),
//! stops after one apply with what to fix, and "destroy what this run
//! created" removes the half-created instance.

use infraai_core::testing::{MemoryStore, RecordingApprover};
use infraai_core::*;
use infraai_local::{LocalCloud, LocalConfig};
use infraai_terraform::{TerraformConfig, TerraformRunner};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

fn terraform(test: &str) -> Option<(TerraformConfig, PathBuf)> {
    let Some(bin) = std::env::var_os("TERRAFORM_BIN") else {
        if std::env::var("INFRAAI_REQUIRE_SERVICES").as_deref() == Ok("1") {
            panic!("{test}: TERRAFORM_BIN is not set, but INFRAAI_REQUIRE_SERVICES=1");
        }
        eprintln!("skipping {test}: TERRAFORM_BIN is not set");
        return None;
    };
    let root = std::env::temp_dir().join(format!("infraai-local-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let mut c = TerraformConfig::new(root.join("runs")).with_binary(PathBuf::from(bin));
    if let Some(rc) = std::env::var_os("TF_CLI_CONFIG_FILE") {
        c = c.with_cli_config_file(PathBuf::from(rc));
    }
    Some((c, root))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_that_may_not_run_is_diagnosed_by_the_local_pattern_and_cleaned_up() {
    let Some((config, root)) = terraform("heal") else {
        return;
    };
    let state = root.join("state");
    std::fs::create_dir_all(&state).unwrap();
    // A service program without the execute bit.
    let program = root.join("not-executable-service");
    std::fs::write(&program, "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o644)).unwrap();

    let runner = Arc::new(TerraformRunner::new(config));
    let store = Arc::new(MemoryStore::new());
    let approver = Arc::new(RecordingApprover::default());
    let cloud = LocalCloud::new(LocalConfig {
        state_dir: state.clone(),
        service_program: program.clone(),
        service_subcommand: None,
    });
    let deploy = DeployAgent::new(
        DeployDeps {
            planner: Arc::new(rules::RulePlanner::new(infraai_core::testing::catalog())),
            generator: Arc::new(cloud.clone()),
            fixers: infraai_terraform::deterministic_fixers(),
            runner: runner.clone(),
            verifier: Arc::new(HttpVerifier::new(1, Duration::from_millis(100))),
            store: store.clone(),
            registry: Arc::new(infraai_core::testing::profiles()),
            events: EventBus::new(),
        },
        DeployConfig {
            retry_backoff: Duration::from_millis(100),
            ..Default::default()
        },
    )
    .with_notifier(approver.clone());

    let run = deploy
        .deploy("a web app for 500 users", false)
        .await
        .unwrap();
    assert_eq!(run.phase, RunPhase::Failed, "{:?}", run.history);
    let applies = run
        .history
        .iter()
        .filter(|p| p.phase == RunPhase::Applying)
        .count();
    assert_eq!(applies, 1, "no retry of a permission failure");
    let d = &run.apply_diagnoses[0];
    assert_eq!(d.class, FailureClass::PermissionDenied, "{d:?}");
    assert_eq!(
        d.pattern.as_deref(),
        Some("local.permission"),
        "the adapter's own pattern"
    );
    let path = program.to_str().unwrap();
    assert!(d.advice.contains(path), "{}", d.advice);
    assert_eq!(approver.notifications().len(), 1);

    // The half-created instance is in the state; destroying it leaves nothing.
    let resources = run.resources.clone().unwrap();
    assert!(
        resources.iter().any(|r| r.address == "terraform_data.web"),
        "{resources:?}"
    );
    let preview = deploy.preview_destroy(run.id).await.unwrap();
    assert_eq!(preview.resources, resources);
    assert_eq!(preview.change_set.changes.len(), resources.len());
    let done = deploy
        .destroy(run.id, Some(&preview.change_set), "test")
        .await
        .unwrap();
    assert!(done.cleanup.unwrap().remaining.is_empty());
    assert!(runner
        .state_resources(&runner.workspace(run.id))
        .await
        .unwrap()
        .is_empty());
    assert!(
        cloud.instances().list().await.is_empty(),
        "no instance record left"
    );
    let _ = std::fs::remove_dir_all(&root);
}
