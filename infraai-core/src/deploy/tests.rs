//! The deploy loop's healing and destroy, against scripted Terraform.

use super::*;
use crate::testing::{
    FakeGenerator, MemoryStore, RecordingApprover, ScriptedTfRunner, StaticFixer, StaticVerifier,
};

const GOAL: &str = "a backend API for 100 users under $50/month";

struct World {
    agent: DeployAgent,
    runner: Arc<ScriptedTfRunner>,
    store: Arc<MemoryStore>,
    approver: Arc<RecordingApprover>,
    fixer: Arc<StaticFixer>,
}

fn world(runner: ScriptedTfRunner, max_apply_retries: u8) -> World {
    world_verified(runner, max_apply_retries, StaticVerifier::default())
}

fn world_verified(
    runner: ScriptedTfRunner,
    max_apply_retries: u8,
    verifier: StaticVerifier,
) -> World {
    let runner = Arc::new(runner);
    let store = Arc::new(MemoryStore::new());
    let approver = Arc::new(RecordingApprover::default());
    let fixer = Arc::new(StaticFixer::new(
        "static",
        TerraformFiles::single("# repaired\n"),
    ));
    let agent = DeployAgent::new(
        DeployDeps {
            planner: Arc::new(crate::rules::RulePlanner::new(crate::testing::catalog())),
            generator: Arc::new(FakeGenerator),
            fixers: vec![fixer.clone()],
            runner: runner.clone(),
            verifier: Arc::new(verifier),
            store: store.clone(),
            registry: Arc::new(crate::testing::profiles()),
            events: EventBus::new(),
        },
        DeployConfig {
            max_apply_retries,
            retry_backoff: Duration::from_millis(1),
            ..Default::default()
        },
    )
    .with_notifier(approver.clone());
    World {
        agent,
        runner,
        store,
        approver,
        fixer,
    }
}

fn phases(run: &Run) -> Vec<String> {
    run.history.iter().map(|p| p.phase.to_string()).collect()
}

#[test]
fn backoff_doubles_and_is_capped() {
    let c = DeployConfig {
        retry_backoff: Duration::from_secs(10),
        max_retry_backoff: Duration::from_secs(30),
        ..Default::default()
    };
    assert_eq!(c.backoff(1), Duration::from_secs(10));
    assert_eq!(c.backoff(2), Duration::from_secs(20));
    assert_eq!(c.backoff(3), Duration::from_secs(30));
    assert_eq!(c.backoff(200), Duration::from_secs(30));
}

#[tokio::test]
async fn renames_keep_names_valid_and_references_consistent() {
    let w = world(ScriptedTfRunner::valid(), 3);
    let planned = w.agent.plan(GOAL).await.unwrap();
    let id = planned.id;
    let s1 = rename_suffix(id, 1);
    assert_eq!(s1, rename_suffix(id, 1), "deterministic");
    assert_ne!(s1, rename_suffix(id, 2));
    assert!(s1.starts_with("-r1") && s1.len() == 7, "{s1}");
    let mut plan = planned.plan.unwrap();
    assert!(!plan.monitoring.is_empty());
    let long = "a".repeat(MAX_NAME_LEN);
    let old = plan.resources[0].name.clone();
    plan.resources[0].name = ResourceName::new(long.clone()).unwrap();
    for m in &mut plan.monitoring {
        if m.resource_ref == old {
            m.resource_ref = ResourceName::new(long.clone()).unwrap();
        }
    }
    if plan.resources.len() > 1 {
        plan.resources[1].depends_on = vec![ResourceName::new(long.clone()).unwrap()];
    }
    let renamed = rename_plan(&plan, &s1).unwrap();
    for (old, new) in plan.resources.iter().zip(&renamed.resources) {
        assert!(new.name.as_str().ends_with(&s1), "{}", new.name);
        assert!(new.name.as_str().len() <= MAX_NAME_LEN);
        assert_ne!(old.name, new.name);
    }
    if renamed.resources.len() > 1 {
        assert_eq!(
            renamed.resources[1].depends_on[0],
            renamed.resources[0].name
        );
    }
    let names: HashSet<&str> = renamed.resources.iter().map(|r| r.name.as_str()).collect();
    for m in &renamed.monitoring {
        assert!(
            names.contains(m.resource_ref.as_str()),
            "{}",
            m.resource_ref
        );
    }
}

#[tokio::test]
async fn a_name_in_use_renames_our_resources_and_replans() {
    let w = world(
        ScriptedTfRunner::valid().failing_applies(&[
            "Error creating firewall: the firewall 'api' already exists in network 'net-1'",
        ]),
        3,
    );
    let run = w.agent.deploy(GOAL, false).await.unwrap();
    assert_eq!(run.phase, RunPhase::Verified, "{:?}", run.error);
    let expected = "starting initializing validating planning applying diagnosing fix_attempt_1 \
                    validating planning applying verifying finalizing verified";
    assert_eq!(phases(&run).join(" "), expected);
    let suffix = rename_suffix(run.id, 1);
    assert_eq!(run.fix_attempts.len(), 1);
    assert_eq!(run.fix_attempts[0].fixer, format!("rename{suffix}"));
    let plan = run.plan.as_ref().unwrap();
    assert!(plan
        .resources
        .iter()
        .all(|r| r.name.as_str().ends_with(&suffix)));
    let written = w.runner.written();
    let last = &written.last().unwrap().files["main.tf"];
    assert!(
        last.contains(&suffix),
        "regenerated files use the new names: {last}"
    );
    assert_eq!(run.apply_diagnoses[0].class, FailureClass::NameInUse);
    assert!(run.apply_diagnoses[0]
        .evidence
        .contains("'api' already exists"));
    // The deployment holds the renamed resources.
    let dep = w.store.get_deployment(run.deployment_id.unwrap()).await;
    let dep = dep.unwrap().unwrap();
    assert!(dep.resource_map.keys().all(|k| k.ends_with(&suffix)));
    assert!(w.approver.notifications().is_empty());
}

#[tokio::test]
async fn an_invalid_configuration_at_apply_goes_to_the_fixers_with_its_diagnostics() {
    let w = world(
        ScriptedTfRunner::valid().failing_applies(&[
            "Error: creating Instance: invalid parameter: Value () for parameter groupId is invalid. The value cannot be empty",
        ]),
        3,
    );
    let run = w.agent.deploy(GOAL, false).await.unwrap();
    assert_eq!(run.phase, RunPhase::Verified, "{:?}", run.error);
    assert!(phases(&run).contains(&"fix_attempt_1".to_string()));
    assert_eq!(w.fixer.asked(), 1);
    assert_eq!(run.fix_attempts[0].fixer, "static");
    assert!(run.fix_attempts[0].diagnostics[0]
        .detail
        .contains("parameter groupId is invalid"));
    assert_eq!(
        run.apply_diagnoses[0].class,
        FailureClass::InvalidConfiguration
    );
    assert!(run.files.unwrap().files["main.tf"].contains("# repaired"));
}

#[tokio::test]
async fn outputs_and_state_are_read_after_an_apply_unless_the_apply_reported_them() {
    for reports in [false, true] {
        let runner = ScriptedTfRunner::valid().with_url("http://127.0.0.1:7/");
        let runner = match reports {
            true => runner.reporting_what_it_left(),
            false => runner,
        };
        let w = world(runner, 0);
        let run = w.agent.deploy(GOAL, false).await.unwrap();
        assert_eq!(run.phase, RunPhase::Verified, "{reports}");
        assert_eq!(
            run.outputs["url"],
            serde_json::json!({"api": "http://127.0.0.1:7/"})
        );
        let resources = run.resources.as_ref().unwrap();
        assert_eq!(resources[0].address, "fake_instance.api");
        let calls = w.runner.calls();
        let asked = calls.iter().any(|c| c == "output" || c == "state");
        assert_eq!(asked, !reports, "{calls:?}");
    }
}

#[tokio::test]
async fn transient_failures_stop_after_the_bound_and_tell_the_humans() {
    let msg = "429 Too Many Requests: request limit exceeded";
    let w = world(ScriptedTfRunner::valid().failing_applies(&[msg; 5]), 2);
    let run = w.agent.deploy(GOAL, false).await.unwrap();
    assert_eq!(run.phase, RunPhase::Failed);
    let applies = w.runner.calls().iter().filter(|c| *c == "apply").count();
    assert_eq!(applies, 3, "first attempt and two retries");
    let p = phases(&run);
    assert!(p.contains(&"apply_retry_2".to_string()));
    assert!(!p.contains(&"apply_retry_3".to_string()));
    assert_eq!(run.apply_diagnoses.len(), 3);
    assert!(run.apply_diagnoses[2]
        .decision
        .contains("still failing after 2 retries"));
    assert_eq!(w.approver.notifications().len(), 1);
    // What the failed applies left is recorded, and can be previewed and removed.
    assert_eq!(run.resources.as_ref().unwrap().len(), 1);
    let preview = w.agent.preview_destroy(run.id).await.unwrap();
    assert_eq!(preview.resources, run.resources.clone().unwrap());
    assert_eq!(preview.change_set.changes.len(), 1);
    let done = w
        .agent
        .destroy(run.id, Some(&preview.change_set), "web:op")
        .await
        .unwrap();
    assert!(done.cleanup.unwrap().remaining.is_empty());
}

#[tokio::test]
async fn unknown_and_operator_failures_are_not_retried() {
    for (msg, class) in [
        ("the flux capacitor broke", FailureClass::Unknown),
        (
            "403 Forbidden: permission denied",
            FailureClass::PermissionDenied,
        ),
        (
            "quota exceeded: CPUS, limit 8.0",
            FailureClass::QuotaExceeded,
        ),
    ] {
        let w = world(ScriptedTfRunner::valid().failing_applies(&[msg]), 3);
        let run = w.agent.deploy(GOAL, false).await.unwrap();
        assert_eq!(run.phase, RunPhase::Failed, "{msg}");
        assert_eq!(run.apply_diagnoses.len(), 1);
        assert_eq!(run.apply_diagnoses[0].class, class);
        assert_eq!(w.runner.calls().iter().filter(|c| *c == "apply").count(), 1);
        let notes = w.approver.notifications();
        assert_eq!(notes.len(), 1);
        assert!(notes[0].body.contains(&run.apply_diagnoses[0].advice));
        let run_id = Some(run.id);
        let query = AuditQuery {
            run_id,
            ..Default::default()
        };
        let audit = w.store.list_audit(&query).await.unwrap();
        assert!(audit
            .iter()
            .any(|a| a.step == AuditStep::ApplyDiagnosis
                && a.outcome.starts_with(&class.to_string())));
    }
}

#[tokio::test]
async fn a_deploy_whose_service_does_not_answer_ends_verify_failed_and_is_not_destroyed_as_a_run() {
    let w = world_verified(ScriptedTfRunner::valid(), 3, StaticVerifier::failing());
    let run = w.agent.deploy(GOAL, false).await.unwrap();
    assert_eq!(run.phase, RunPhase::VerifyFailed);
    assert_eq!(
        RunStatus::from(run.phase),
        RunStatus::DeploySuccessVerifyFailed
    );
    let error = run.error.as_deref().unwrap_or_default();
    assert!(error.starts_with("verification failed"), "{error}");
    assert!(run.deployment_id.is_some());
    assert_eq!(run.resources.as_ref().map(Vec::len), Some(1));
    match w.agent.preview_destroy(run.id).await {
        Err(Error::Conflict { detail, .. }) => {
            assert!(detail.contains("deploy_success_verify_failed"), "{detail}")
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn destroy_is_refused_for_runs_that_did_not_fail() {
    let w = world(ScriptedTfRunner::valid(), 3);
    let run = w.agent.plan(GOAL).await.unwrap();
    assert!(matches!(
        w.agent.preview_destroy(run.id).await,
        Err(Error::Conflict { .. })
    ));
    assert!(matches!(
        w.agent.preview_destroy(RunId::new()).await,
        Err(Error::NotFound { .. })
    ));
}

/// A runner that engages STOP AUTONOMY in `store` when `call` first
/// starts, and the store it will use.
fn stopping_on(
    runner: ScriptedTfRunner,
    call: &'static str,
) -> (ScriptedTfRunner, Arc<std::sync::OnceLock<Arc<MemoryStore>>>) {
    let store: Arc<std::sync::OnceLock<Arc<MemoryStore>>> = Arc::default();
    let slot = store.clone();
    let first = std::sync::atomic::AtomicBool::new(true);
    let runner = runner.on_call(move |name| {
        let once = || first.swap(false, std::sync::atomic::Ordering::SeqCst);
        if let (true, Some(store)) = (name == call && once(), slot.get()) {
            let stop = KillSwitchRequest::engage("web:alice", Some("release freeze"));
            let handle = tokio::runtime::Handle::current();
            tokio::task::block_in_place(|| handle.block_on(store.set_kill_switch(stop)))
                .expect("engage");
        }
    });
    (runner, store)
}

/// Deploys in the background until the run waits in `paused_by_kill_switch`.
async fn paused_run(w: &Arc<World>) -> (Run, tokio::task::JoinHandle<Result<Run>>) {
    let planned = w.agent.plan(GOAL).await.unwrap();
    let id = planned.id;
    let world = w.clone();
    let task = tokio::spawn(async move { world.agent.execute(id, false).await });
    for _ in 0..500 {
        let run = w.store.get_run(id).await.unwrap().unwrap();
        if run.phase == RunPhase::Paused {
            return (run, task);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!(
        "the run never paused: {:?}",
        phases(&w.store.get_run(id).await.unwrap().unwrap())
    );
}

fn pausing_world(runner: ScriptedTfRunner, call: &'static str) -> Arc<World> {
    let (runner, slot) = stopping_on(runner, call);
    let mut w = world(runner, 3);
    w.agent.config.pause_poll = Duration::from_millis(5);
    slot.set(w.store.clone()).ok();
    Arc::new(w)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_autonomy_during_validation_pauses_before_the_fix_and_resume_completes() {
    let invalid = crate::testing::invalid_report("Unsupported argument");
    let valid = ValidationReport {
        valid: true,
        diagnostics: vec![],
    };
    let runner = ScriptedTfRunner::with_validations(vec![invalid, valid]);
    let w = pausing_world(runner, "validate");
    let (paused, task) = paused_run(&w).await;
    assert_eq!(RunStatus::from(paused.phase), RunStatus::PausedByKillSwitch);
    assert!(phases(&paused).ends_with(&["validating".into(), "paused_by_kill_switch".into()]));
    // Held: no fix attempt, no plan, no apply while STOP AUTONOMY stands.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(w.fixer.asked(), 0);
    assert!(!w.runner.calls().iter().any(|c| c == "plan" || c == "apply"));
    w.store
        .set_kill_switch(KillSwitchRequest::release("web:alice"))
        .await
        .unwrap();
    let run = task.await.unwrap().unwrap();
    assert_eq!(run.phase, RunPhase::Verified, "{:?}", run.error);
    assert_eq!(w.fixer.asked(), 1);
    let after_pause: Vec<String> = phases(&run)
        .into_iter()
        .skip_while(|p| p != "paused_by_kill_switch")
        .take(2)
        .collect();
    assert_eq!(after_pause, ["paused_by_kill_switch", "fix_attempt_1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_autonomy_with_an_apply_retry_pending_pauses_before_the_retry() {
    let runner = ScriptedTfRunner::valid().failing_applies(&["429 Too Many Requests"]);
    let w = pausing_world(runner, "apply");
    let (paused, task) = paused_run(&w).await;
    let p = phases(&paused);
    assert_eq!(p[p.len() - 2..], ["diagnosing", "paused_by_kill_switch"]);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let applies = || w.runner.calls().iter().filter(|c| *c == "apply").count();
    assert_eq!(applies(), 1, "no retry while STOP AUTONOMY stands");
    w.store
        .set_kill_switch(KillSwitchRequest::release("web:alice"))
        .await
        .unwrap();
    let run = task.await.unwrap().unwrap();
    assert_eq!(run.phase, RunPhase::Verified, "{:?}", run.error);
    assert_eq!(applies(), 2);
    assert!(phases(&run).contains(&"apply_retry_1".to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_run_can_be_cancelled_and_a_running_one_cannot() {
    let w = pausing_world(ScriptedTfRunner::valid(), "validate");
    let (paused, task) = paused_run(&w).await;
    w.agent.cancel_paused(paused.id, "web:bob").await.unwrap();
    let run = task.await.unwrap().unwrap();
    assert_eq!(run.phase, RunPhase::Failed);
    let error = run.error.unwrap_or_default();
    assert!(error.contains("cancelled by web:bob"), "{error}");
    assert!(!w.runner.calls().iter().any(|c| c == "plan" || c == "apply"));
    assert!(matches!(
        w.agent.cancel_paused(run.id, "web:bob").await,
        Err(Error::Conflict { .. })
    ));
}
