//! Self-healing deploys against the real terraform: a provisioner that fails
//! twice with a transient-looking error is retried and the run completes; one
//! that fails with a permission error stops at once with the diagnosis, tells
//! the humans, records what exists, and "destroy what this run created"
//! previews and then removes exactly that.

mod common;

use common::{cleanup, runner};
use infraai_core::testing::{MemoryStore, RecordingApprover, StaticVerifier};
use infraai_core::{
    AuditQuery, AuditStep, ChangeAction, DeployAgent, DeployConfig, DeployDeps, Error, EventBus,
    FailureClass, GenerateRequest, HistoryStore, ResourceKind, RunPhase, RunStore, TerraformFiles,
    TerraformGenerator, TfRunner,
};
use infraai_terraform::hcl::{Block, Body, Expr};
use infraai_terraform::TerraformRunner;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// One `terraform_data` per planned resource, plus `terraform_data.provisioned`
/// whose local-exec provisioner runs `script` (with `$COUNTER` naming a file
/// the script counts its runs in).
struct ScriptGenerator {
    script: String,
    counter: PathBuf,
}

impl TerraformGenerator for ScriptGenerator {
    fn cloud(&self) -> &str {
        "local"
    }

    fn resource_type(&self, _kind: ResourceKind) -> Option<String> {
        Some("terraform_data".into())
    }

    /// The scripts print GCP's error texts, so GCP's patterns classify them.
    fn failure_patterns(&self) -> Vec<infraai_core::FailurePattern> {
        let gcp = include_str!("../../infraai-gcp/src/failure_patterns.json");
        infraai_core::FailurePattern::compiled_in("gcp", gcp)
    }

    fn generate(&self, request: &GenerateRequest<'_>) -> infraai_core::Result<TerraformFiles> {
        let mut body = Body::new();
        for r in &request.plan.resources {
            body.push(
                Block::resource("terraform_data", r.name.as_str())?
                    .attr("input", r.name.as_str())?,
            );
        }
        let counter = self.counter.to_str().unwrap_or_default();
        body.push(
            Block::resource("terraform_data", "provisioned")?
                .attr("input", "x")?
                .block(
                    Block::new("provisioner", ["local-exec"])?
                        .attr("command", self.script.as_str())?
                        .attr("interpreter", vec!["/bin/sh", "-c"])?
                        .attr(
                            "environment",
                            Expr::Object(vec![("COUNTER".into(), counter.into())]),
                        )?,
                ),
        );
        body.push(
            Block::output("urls")?
                .attr("value", serde_json::json!({"api": "http://127.0.0.1:9/"}))?,
        );
        Ok(TerraformFiles::single(body.to_string()))
    }
}

const COUNT: &str =
    "n=$(cat \"$COUNTER\" 2>/dev/null || echo 0); n=$((n+1)); echo \"$n\" > \"$COUNTER\"\n";

fn agent(
    runner: Arc<TerraformRunner>,
    script: String,
    counter: PathBuf,
) -> (DeployAgent, Arc<MemoryStore>, Arc<RecordingApprover>) {
    let store = Arc::new(MemoryStore::new());
    let approver = Arc::new(RecordingApprover::default());
    let agent = DeployAgent::new(
        DeployDeps {
            planner: Arc::new(
                infraai_core::rules::RulePlanner::new(infraai_core::testing::catalog())
                    .with_region("eu-local-1"),
            ),
            generator: Arc::new(ScriptGenerator { script, counter }),
            fixers: infraai_terraform::deterministic_fixers(),
            runner,
            verifier: Arc::new(StaticVerifier::default()),
            store: store.clone(),
            registry: Arc::new(infraai_core::testing::profiles()),
            events: EventBus::new(),
        },
        DeployConfig {
            max_apply_retries: 3,
            retry_backoff: Duration::from_millis(100),
            ..Default::default()
        },
    )
    .with_notifier(approver.clone());
    (agent, store, approver)
}

fn runs_of(counter: &PathBuf) -> u32 {
    std::fs::read_to_string(counter)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

fn phases(run: &infraai_core::Run) -> Vec<String> {
    run.history.iter().map(|p| p.phase.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_provisioner_failures_are_retried_until_the_run_completes() {
    let Some(runner) = runner("heal-transient") else {
        return;
    };
    let runner = Arc::new(runner);
    std::fs::create_dir_all(&runner.config().work_root).unwrap();
    let counter = runner.config().work_root.join("transient-count");
    let script = format!(
        "{COUNT}if [ \"$n\" -le 2 ]; then echo \"googleapi: Error 503: Service temporarily unavailable. This is most likely a transient error. Please retry., transientError\" >&2; exit 1; fi\necho \"provisioned on run $n\"\n"
    );
    let (agent, store, approver) = agent(runner.clone(), script, counter.clone());
    let run = agent
        .deploy("a backend API for 100 users under $50/month", false)
        .await
        .unwrap();
    assert_eq!(run.phase, RunPhase::Verified, "{:?}", run.error);
    assert_eq!(runs_of(&counter), 3, "the provisioner ran three times");
    assert_eq!(
        phases(&run),
        [
            "starting",
            "initializing",
            "validating",
            "planning",
            "applying",
            "diagnosing",
            "apply_retry_1",
            "planning",
            "applying",
            "diagnosing",
            "apply_retry_2",
            "planning",
            "applying",
            "verifying",
            "finalizing",
            "verified"
        ]
    );
    assert_eq!(run.apply_diagnoses.len(), 2);
    for (i, d) in run.apply_diagnoses.iter().enumerate() {
        assert_eq!(d.class, FailureClass::Transient);
        assert_eq!(d.pattern.as_deref(), Some("gcp.server_error"));
        assert_eq!(d.attempt, i as u32 + 1);
        assert!(
            d.evidence.contains("local-exec provisioner error"),
            "{}",
            d.evidence
        );
        assert!(
            d.decision.starts_with(&format!("retry {} of 3", i + 1)),
            "{}",
            d.decision
        );
    }
    assert!(
        approver.notifications().is_empty(),
        "nothing for a human to do"
    );
    // What exists is recorded: every resource, none tainted.
    let resources = run.resources.as_ref().unwrap();
    assert_eq!(
        resources.len(),
        run.plan.as_ref().unwrap().resources.len() + 1
    );
    assert!(resources.iter().all(|r| !r.tainted));
    // Every diagnosis and retry is in the audit trail with its reasoning.
    let audit = store
        .list_audit(&AuditQuery {
            run_id: Some(run.id),
            ..Default::default()
        })
        .await
        .unwrap();
    let of = |step| audit.iter().filter(|a| a.step == step).count();
    assert_eq!(of(AuditStep::ApplyDiagnosis), 2);
    assert_eq!(of(AuditStep::ApplyRetry), 2);
    assert!(audit
        .iter()
        .filter(|a| a.step == AuditStep::ApplyDiagnosis)
        .all(|a| a
            .reasoning
            .as_deref()
            .is_some_and(|r| r.contains("gcp.server_error"))));
    // A completed run with a deployment is not "destroyed as a failed run".
    assert!(matches!(
        agent.preview_destroy(run.id).await,
        Err(Error::Conflict { .. })
    ));
    cleanup(&runner).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permission_failure_stops_at_once_and_its_leftovers_can_be_destroyed() {
    let Some(runner) = runner("heal-permission") else {
        return;
    };
    let runner = Arc::new(runner);
    std::fs::create_dir_all(&runner.config().work_root).unwrap();
    let counter = runner.config().work_root.join("permission-count");
    let script = format!(
        "{COUNT}echo \"googleapi: Error 403: Required 'compute.instances.create' permission for 'projects/demo-project/zones/us-central1-a/instances/api', forbidden\" >&2\nexit 1\n"
    );
    let (agent, store, approver) = agent(runner.clone(), script, counter.clone());
    let run = agent
        .deploy("a backend API for 100 users under $50/month", false)
        .await
        .unwrap();
    assert_eq!(run.phase, RunPhase::Failed);
    assert_eq!(runs_of(&counter), 1, "no retry storm: one attempt");
    assert_eq!(
        phases(&run),
        [
            "starting",
            "initializing",
            "validating",
            "planning",
            "applying",
            "diagnosing",
            "failed"
        ]
    );
    assert_eq!(run.apply_diagnoses.len(), 1);
    let d = &run.apply_diagnoses[0];
    assert_eq!(d.class, FailureClass::PermissionDenied);
    assert_eq!(d.details["permission"], "compute.instances.create");
    assert!(d.decision.starts_with("stopped"), "{}", d.decision);
    let error = run.error.as_deref().unwrap();
    assert!(
        error.contains("compute.instances.create") && error.contains("demo-project"),
        "{error}"
    );
    // The humans are told, through the approver channel, what to do.
    let notes = approver.notifications();
    assert_eq!(notes.len(), 1);
    assert!(
        notes[0].title.contains("permission denied"),
        "{}",
        notes[0].title
    );
    assert!(
        notes[0].body.contains("compute.instances.create"),
        "{}",
        notes[0].body
    );
    assert!(
        notes[0].body.contains("terraform_data.provisioned"),
        "{}",
        notes[0].body
    );

    // What exists is known: the planned resources and the tainted provisioned one.
    let recorded = run.resources.clone().unwrap();
    let state = runner.state(&runner.workspace(run.id)).await.unwrap();
    assert_eq!(recorded, state);
    assert!(state
        .iter()
        .any(|r| r.address == "terraform_data.provisioned" && r.tainted));
    let in_state: BTreeSet<String> = state.iter().map(|r| r.address.clone()).collect();
    assert_eq!(
        in_state.len(),
        run.plan.as_ref().unwrap().resources.len() + 1
    );

    // The preview lists exactly the resources in the state, and changes nothing.
    let preview = agent.preview_destroy(run.id).await.unwrap();
    let listed: BTreeSet<String> = preview
        .resources
        .iter()
        .map(|r| r.address.clone())
        .collect();
    assert_eq!(listed, in_state);
    let to_delete: BTreeSet<String> = preview
        .change_set
        .changes
        .iter()
        .inspect(|c| assert_eq!(c.action, ChangeAction::Delete, "{}", c.address))
        .map(|c| c.address.clone())
        .collect();
    assert_eq!(to_delete, in_state);
    assert_eq!(
        runner.state(&runner.workspace(run.id)).await.unwrap(),
        state
    );

    // A preview that does not match what would be destroyed is refused.
    let mut stale = preview.change_set.clone();
    stale.changes.pop();
    assert!(matches!(
        agent.destroy(run.id, Some(&stale), "web:test").await,
        Err(Error::Conflict { .. })
    ));
    assert_eq!(
        runner.state(&runner.workspace(run.id)).await.unwrap(),
        state
    );

    // Executing the approved preview leaves nothing behind.
    let done = agent
        .destroy(run.id, Some(&preview.change_set), "web:test")
        .await
        .unwrap();
    let cleanup_record = done.cleanup.as_ref().unwrap();
    assert!(cleanup_record.remaining.is_empty());
    assert_eq!(cleanup_record.actor, "web:test");
    assert!(runner
        .state(&runner.workspace(run.id))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store.get_run(run.id).await.unwrap().unwrap().cleanup,
        done.cleanup
    );
    assert!(matches!(
        agent.destroy(run.id, None, "web:test").await,
        Err(Error::Conflict { .. })
    ));
    let audit = store
        .list_audit(&AuditQuery {
            run_id: Some(run.id),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        audit
            .iter()
            .filter(|a| a.step == AuditStep::RunCleanup)
            .count(),
        2
    );
    cleanup(&runner).await;
}
