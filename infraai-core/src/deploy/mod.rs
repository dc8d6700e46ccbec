//! The deploy loop: goal → plan → Terraform → validate/fix → plan → apply →
//! outputs → verify → deployment.
//!
//! A failed plan or apply is diagnosed ([`crate::heal`]) and acted on by
//! class: transient failures are re-planned and re-applied with backoff
//! (`apply_retry_N`, bounded); a name in use renames this run's own
//! resources (`fix_attempt_N`); an invalid configuration goes to the fixers
//! with the apply diagnostics (`fix_attempt_N`); quota, API and permission
//! failures stop the run with what the operator must do, also sent through
//! the approver channel. After every apply the run records what its state
//! holds, and a failed run offers "destroy what this run created" as a
//! previewed action ([`DeployAgent::preview_destroy`], [`DeployAgent::destroy`]).

use crate::domain::*;
use crate::events::EventBus;
use crate::heal::ApplyFailureClassifier;
use crate::profiles::MetricProfileRegistry;
use crate::traits::*;
use crate::{Error, Result, RunId};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing::{info, warn};

mod destroy;
mod healing;
mod pause;
mod pipeline;
#[cfg(test)]
mod tests;

pub use healing::{rename_plan, rename_suffix};

/// Settings of the deploy loop.
#[derive(Clone, Debug)]
pub struct DeployConfig {
    /// Region passed to the planner when the goal names none.
    pub region: Option<String>,
    /// URL alert policies post to (the ops webhook), when configured.
    pub alert_webhook: Option<String>,
    /// Fix attempts (validation fixes, apply-time fixes and renames together)
    /// before a run fails (at most [`MAX_FIX_ATTEMPTS`]).
    pub max_fix_attempts: u8,
    /// Re-plan/re-apply attempts after transient failures (at most
    /// [`MAX_APPLY_RETRIES`]).
    pub max_apply_retries: u8,
    /// Wait before the first retry; doubled for each further one.
    pub retry_backoff: Duration,
    /// Longest wait between retries.
    pub max_retry_backoff: Duration,
    /// How often a run paused by STOP AUTONOMY looks for RESUME or a cancel.
    pub pause_poll: Duration,
}

impl Default for DeployConfig {
    fn default() -> Self {
        Self {
            region: None,
            alert_webhook: None,
            max_fix_attempts: MAX_FIX_ATTEMPTS,
            max_apply_retries: 3,
            retry_backoff: Duration::from_secs(10),
            max_retry_backoff: Duration::from_secs(120),
            pause_poll: Duration::from_secs(1),
        }
    }
}

impl DeployConfig {
    /// The wait before retry `n` (1-based): `retry_backoff · 2^(n-1)`, capped.
    pub fn backoff(&self, n: u8) -> Duration {
        let factor = 1u32 << n.saturating_sub(1).min(16);
        self.retry_backoff
            .saturating_mul(factor)
            .min(self.max_retry_backoff)
    }
}

/// The adapters the deploy loop drives.
#[derive(Clone)]
pub struct DeployDeps {
    /// Goal → plan.
    pub planner: Arc<dyn Planner>,
    /// Plan → HCL for the configured cloud.
    pub generator: Arc<dyn TerraformGenerator>,
    /// Fixers tried in order for invalid configurations (deterministic first, then LLM).
    pub fixers: Vec<Arc<dyn Fixer>>,
    /// Terraform.
    pub runner: Arc<dyn TfRunner>,
    /// HTTP checks of the outputs.
    pub verifier: Arc<dyn Verifier>,
    /// Where runs and deployments are stored.
    pub store: Arc<dyn MetadataStore>,
    /// Monitoring profiles bound to every plan.
    pub registry: Arc<MetricProfileRegistry>,
    /// Live events.
    pub events: EventBus,
}

/// Runs the deploy loop. Cheap to share behind an `Arc`.
pub struct DeployAgent {
    deps: DeployDeps,
    config: DeployConfig,
    active: Mutex<HashSet<RunId>>,
    paused: Mutex<HashMap<RunId, Option<String>>>,
    classifier: ApplyFailureClassifier,
    notifier: Option<Arc<dyn Notifier>>,
}

/// Removes a run from the active set when execution ends, however it ends.
struct ActiveGuard<'a> {
    set: &'a Mutex<HashSet<RunId>>,
    id: RunId,
}

impl Drop for ActiveGuard<'_> {
    fn drop(&mut self) {
        self.set
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.id);
    }
}

impl DeployAgent {
    /// A deploy agent.
    /// The classifier uses the built-in failure patterns after the
    /// generator's own ([`TerraformGenerator::failure_patterns`]).
    pub fn new(deps: DeployDeps, config: DeployConfig) -> Self {
        let classifier =
            ApplyFailureClassifier::builtin().prepend(deps.generator.failure_patterns());
        Self {
            deps,
            config,
            active: Mutex::new(HashSet::new()),
            paused: Mutex::default(),
            classifier,
            notifier: None,
        }
    }

    /// Sends stop diagnoses (quota, API, permission, unknown, retries
    /// exhausted) to humans through this channel's [`Notifier::notify`].
    pub fn with_notifier(mut self, notifier: Arc<dyn Notifier>) -> Self {
        self.notifier = Some(notifier);
        self
    }

    /// Replaces the failure classifier.
    pub fn with_classifier(mut self, classifier: ApplyFailureClassifier) -> Self {
        self.classifier = classifier;
        self
    }

    /// The failure classifier.
    pub fn classifier(&self) -> &ApplyFailureClassifier {
        &self.classifier
    }

    /// Marks a run as busy for the guard's lifetime.
    fn claim(&self, run_id: RunId) -> Result<ActiveGuard<'_>> {
        let mut active = self.active.lock().unwrap_or_else(|p| p.into_inner());
        if !active.insert(run_id) {
            return Err(Error::conflict(
                format!("run {run_id}"),
                "is already executing",
            ));
        }
        Ok(ActiveGuard {
            set: &self.active,
            id: run_id,
        })
    }

    /// The event bus (subscribe for live logs).
    pub fn events(&self) -> &EventBus {
        &self.deps.events
    }

    /// Plans a goal and generates its Terraform; the run is stored in phase
    /// `starting`, ready for [`DeployAgent::execute`].
    pub async fn plan(&self, goal: &str) -> Result<Run> {
        let mut run = Run::new(goal);
        let request = PlanRequest {
            goal: goal.to_string(),
            cloud: self.deps.generator.cloud().to_string(),
            region: self.config.region.clone(),
        };
        let mut plan = self.deps.planner.plan(&request).await?;
        self.bind(&mut plan)?;
        let files = self.generate(run.id, &plan)?;
        run.plan = Some(plan);
        run.files = Some(files);
        self.deps.store.put_run(&run).await?;
        self.deps.events.phase(
            run.id,
            RunPhase::Starting,
            Some(format!("planned by {}", self.deps.planner.name())),
        );
        self.audit_phase(&run, None).await;
        info!(run_id = %run.id, planner = self.deps.planner.name(), "run planned");
        Ok(run)
    }

    /// Sets the cloud, each resource's cloud type, and binds monitoring from
    /// the registry, discarding whatever monitoring the planner returned.
    fn bind(&self, plan: &mut InfraPlan) -> Result<()> {
        plan.cloud = self.deps.generator.cloud().to_string();
        let generator = &self.deps.generator;
        plan.machine_type = generator.machine_type(&plan.machine_type);
        for r in &mut plan.resources {
            r.resource_type = generator.resource_type(r.kind);
            r.machine_type = r.machine_type.as_ref().map(|m| generator.machine_type(m));
        }
        plan.monitoring = self.deps.registry.bind(plan);
        plan.validate()
    }

    /// The Terraform files of `plan` for run `run_id`.
    fn generate(&self, run_id: RunId, plan: &InfraPlan) -> Result<TerraformFiles> {
        self.deps.generator.generate(&GenerateRequest {
            run_id,
            plan,
            alert_webhook: self.config.alert_webhook.clone(),
        })
    }

    /// Plans and executes a goal in one call.
    pub async fn deploy(&self, goal: &str, dry_run: bool) -> Result<Run> {
        let run = self.plan(goal).await?;
        self.execute(run.id, dry_run).await
    }

    /// Executes a planned run: init, validate (with up to three fixes), plan,
    /// and unless `dry_run`, apply, outputs, verification and the deployment.
    ///
    /// Pipeline failures end the run in `failed` with a reason and return
    /// `Ok(run)`; `Err` means the run could not be loaded, is already running
    /// or finished, or the store failed.
    pub async fn execute(&self, run_id: RunId, dry_run: bool) -> Result<Run> {
        let _guard = self.claim(run_id)?;
        let mut run = self.load(run_id).await?;
        let startable =
            run.phase == RunPhase::Starting || (run.phase == RunPhase::Completed && run.dry_run);
        if !startable {
            return Err(Error::conflict(
                format!("run {run_id}"),
                format!("is {} and cannot be executed again", run.phase),
            ));
        }
        run.dry_run = dry_run;
        run.error = None;
        if let Err(e) = self.pipeline(&mut run).await {
            warn!(run_id = %run.id, error = %e, "run failed");
            run.error = Some(e.to_string());
            self.enter(&mut run, RunPhase::Failed, Some(e.to_string()))
                .await?;
        }
        Ok(run)
    }

    /// Run `run_id`, which must exist.
    async fn load(&self, run_id: RunId) -> Result<Run> {
        let run = self.deps.store.get_run(run_id).await?;
        run.ok_or_else(|| Error::not_found(format!("run {run_id}")))
    }

    /// Enters `phase` — after waiting out STOP AUTONOMY when it is a phase
    /// that does work ([`pause`]).
    async fn enter(&self, run: &mut Run, phase: RunPhase, note: Option<String>) -> Result<()> {
        if pause::halts_before(phase) {
            self.hold_while_stopped(run, phase).await?;
        }
        self.record_phase(run, phase, note).await
    }

    /// Enters `phase` while `step` already runs: for a step that changes
    /// nothing outside the run's own directory (init, validate, plan, the
    /// HTTP check), so that recording the phase costs the run no time of
    /// its own. STOP AUTONOMY is waited out before either starts; the phase
    /// is streamed first, so that the step's lines follow it; a crash in
    /// between leaves the run recorded one phase behind, with nothing to
    /// undo. An apply enters its phase first ([`DeployAgent::enter`]), and
    /// so does every phase a client may read the run after (a terminal one).
    async fn enter_with<T>(
        &self,
        run: &mut Run,
        phase: RunPhase,
        note: Option<String>,
        step: impl std::future::Future<Output = T>,
    ) -> Result<T> {
        if pause::halts_before(phase) {
            self.hold_while_stopped(run, phase).await?;
        }
        run.enter(phase, note.clone());
        self.deps.events.phase(run.id, phase, note.clone());
        let (recorded, done) = tokio::join!(self.store_phase(run, note), step);
        recorded.map(|()| done)
    }

    /// Records that `run` entered `phase`: stored, audited, then streamed.
    async fn record_phase(
        &self,
        run: &mut Run,
        phase: RunPhase,
        note: Option<String>,
    ) -> Result<()> {
        run.enter(phase, note.clone());
        self.store_phase(run, note.clone()).await?;
        self.deps.events.phase(run.id, phase, note);
        Ok(())
    }

    /// Stores `run` in the phase it just entered, with the phase's audit
    /// record: written together (one commit where the store groups
    /// concurrent writes); the audit record of a phase whose run could not
    /// be stored says what was attempted.
    async fn store_phase(&self, run: &Run, note: Option<String>) -> Result<()> {
        let (stored, ()) = tokio::join!(self.deps.store.put_run(run), self.audit_phase(run, note));
        stored?;
        info!(run_id = %run.id, phase = %run.phase, "run phase");
        Ok(())
    }

    async fn audit_phase(&self, run: &Run, note: Option<String>) {
        let record = AuditRecord::agent(AuditStep::RunPhase, run.phase.to_string())
            .input(serde_json::json!({ "goal": run.goal, "dry_run": run.dry_run, "note": note }));
        self.audit(run, record).await;
    }

    /// Appends `record` to the audit trail as run `run`'s; a failure is logged.
    async fn audit(&self, run: &Run, record: AuditRecord) {
        if let Err(e) = self.deps.store.append_audit(&record.run(run.id)).await {
            warn!(run_id = %run.id, error = %e, "audit append failed");
        }
    }

    /// Fix attempts a run may use (validation fixes, apply-time fixes and
    /// renames together).
    fn max_fixes(&self) -> u8 {
        self.config.max_fix_attempts.min(MAX_FIX_ATTEMPTS)
    }

    /// Retries a run may use after transient failures.
    fn max_retries(&self) -> u8 {
        self.config.max_apply_retries.min(MAX_APPLY_RETRIES)
    }

    /// Records the state's resources in `run.resources` (`None`, with a
    /// warning line, when it could not be read).
    fn record_state(&self, run: &mut Run, state: Result<Vec<StateResource>>, log: &dyn LogSink) {
        match state {
            Ok(resources) => {
                let addresses: Vec<&str> = resources.iter().map(|r| r.address.as_str()).collect();
                let (n, addresses) = (resources.len(), addresses.join(", "));
                let line = format!("state holds {n} resource(s): {addresses}");
                log.log(LogLine::info("deploy", line));
                run.resources = Some(resources);
            }
            Err(e) => {
                warn!(run_id = %run.id, error = %e, "state could not be read");
                let line = LogLine::info("deploy", format!("the state could not be read: {e}"));
                log.log(LogLine {
                    level: LogLevel::Warn,
                    ..line
                });
                run.resources = None;
            }
        }
    }
}
