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
use crate::{DeploymentId, Error, Result, RunId};
use chrono::Utc;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing::{info, warn};

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
    classifier: ApplyFailureClassifier,
    notifier: Option<Arc<dyn Approver>>,
}

/// How one plan+apply attempt ended.
enum Attempt {
    /// Dry run: planned, nothing applied.
    Planned,
    /// Applied.
    Applied,
    /// `step` failed with the error.
    Failed(&'static str, Error),
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
            classifier,
            notifier: None,
        }
    }

    /// Sends stop diagnoses (quota, API, permission, unknown, retries
    /// exhausted) to humans through this channel's [`Approver::notify`].
    pub fn with_notifier(mut self, approver: Arc<dyn Approver>) -> Self {
        self.notifier = Some(approver);
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
        let files = self.deps.generator.generate(&GenerateRequest {
            run_id: run.id,
            plan: &plan,
            alert_webhook: self.config.alert_webhook.clone(),
        })?;
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
        let mut run = self
            .deps
            .store
            .get_run(run_id)
            .await?
            .ok_or_else(|| Error::not_found(format!("run {run_id}")))?;
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
        match self.pipeline(&mut run).await {
            Ok(()) => {}
            Err(e) => {
                warn!(run_id = %run.id, error = %e, "run failed");
                run.error = Some(e.to_string());
                self.enter(&mut run, RunPhase::Failed, Some(e.to_string()))
                    .await?;
            }
        }
        Ok(run)
    }

    async fn enter(&self, run: &mut Run, phase: RunPhase, note: Option<String>) -> Result<()> {
        run.enter(phase, note.clone());
        self.deps.store.put_run(run).await?;
        self.deps.events.phase(run.id, phase, note.clone());
        self.audit_phase(run, note).await;
        info!(run_id = %run.id, phase = %phase, "run phase");
        Ok(())
    }

    async fn audit_phase(&self, run: &Run, note: Option<String>) {
        let record = AuditRecord::agent(AuditStep::RunPhase, run.phase.to_string())
            .run(run.id)
            .input(serde_json::json!({ "goal": run.goal, "dry_run": run.dry_run, "note": note }));
        if let Err(e) = self.deps.store.append_audit(&record).await {
            warn!(run_id = %run.id, error = %e, "audit append failed");
        }
    }

    async fn pipeline(&self, run: &mut Run) -> Result<()> {
        let log = self.deps.events.sink(run.id);
        let original_plan = run
            .plan
            .clone()
            .ok_or_else(|| Error::invalid(format!("run {}", run.id), "has no plan"))?;
        let mut plan = original_plan.clone();
        let mut files = run
            .files
            .clone()
            .ok_or_else(|| Error::invalid(format!("run {}", run.id), "has no Terraform files"))?;

        self.enter(run, RunPhase::Initializing, None).await?;
        let mut ws = self.deps.runner.write_files(run.id, &files).await?;
        self.deps.runner.init(&ws, &log).await?;

        let max_fixes = self.config.max_fix_attempts.min(MAX_FIX_ATTEMPTS);
        let max_retries = self.config.max_apply_retries.min(MAX_APPLY_RETRIES);
        let mut fix_attempt = 0u8;
        let mut retries = 0u8;
        let mut attempt = 0u32;
        let mut needs_validation = true;
        loop {
            if needs_validation {
                ws = self
                    .validate_and_fix(run, &plan, &mut files, ws, &mut fix_attempt, max_fixes)
                    .await?;
                needs_validation = false;
            }
            attempt += 1;
            let (step, error) = match self.plan_and_apply(run, &ws, &log).await? {
                Attempt::Planned => return Ok(()),
                Attempt::Applied => break,
                Attempt::Failed(step, error) => (step, error),
            };
            // What exists now, whatever happens next: a failed run never
            // leaves a half-known state.
            if step == "apply" {
                self.record_state(run, &ws, &log).await;
            }
            // A cancel is a human decision, not a failure to diagnose or retry.
            if matches!(error, Error::Cancelled { .. }) {
                return Err(error);
            }
            let mut d = self.classifier.classify(&error, step, attempt);
            self.enter(
                run,
                RunPhase::Diagnosing,
                Some(format!(
                    "{step} failed: {} ({})",
                    d.class,
                    d.pattern.as_deref().unwrap_or("no pattern")
                )),
            )
            .await?;
            match d.class {
                FailureClass::Transient if retries < max_retries => {
                    retries += 1;
                    let wait = self.config.backoff(retries);
                    d.decision = format!(
                        "retry {retries} of {max_retries}: re-plan and re-apply in {}s",
                        wait.as_secs_f64()
                    );
                    self.record_diagnosis(run, &d, &log).await;
                    self.enter(
                        run,
                        RunPhase::ApplyRetry(retries),
                        Some(format!("{}; {}", d.decision, d.reasoning)),
                    )
                    .await?;
                    self.audit(
                        run,
                        AuditRecord::agent(
                            AuditStep::ApplyRetry,
                            format!("retry {retries} of {max_retries} after {}s", wait.as_secs_f64()),
                        )
                        .input(serde_json::json!({ "attempt": attempt, "step": step, "evidence": d.evidence }))
                        .reasoning(d.reasoning.clone(), None),
                    )
                    .await;
                    tokio::time::sleep(wait).await;
                }
                FailureClass::NameInUse if fix_attempt < max_fixes => {
                    fix_attempt += 1;
                    let suffix = rename_suffix(run.id, fix_attempt);
                    d.decision = format!(
                        "rename this run's resources with suffix {suffix} and re-plan (fix attempt {fix_attempt} of {max_fixes})"
                    );
                    self.record_diagnosis(run, &d, &log).await;
                    self.enter(
                        run,
                        RunPhase::FixAttempt(fix_attempt),
                        Some(d.decision.clone()),
                    )
                    .await?;
                    let renamed = match rename_plan(&original_plan, &suffix) {
                        Ok(p) => p,
                        Err(e) => {
                            return self.stop(run, &d, format!("renaming failed: {e}")).await;
                        }
                    };
                    let new_files = self.deps.generator.generate(&GenerateRequest {
                        run_id: run.id,
                        plan: &renamed,
                        alert_webhook: self.config.alert_webhook.clone(),
                    })?;
                    run.fix_attempts.push(FixAttempt {
                        attempt: fix_attempt,
                        diagnostics: diagnostics_of(&error),
                        fixer: format!("rename{suffix}"),
                        files: Some(new_files.clone()),
                        files_before: (fix_attempt == 1).then(|| files.clone()),
                    });
                    plan = renamed;
                    run.plan = Some(plan.clone());
                    files = new_files;
                    run.files = Some(files.clone());
                    ws = self.deps.runner.write_files(run.id, &files).await?;
                    needs_validation = true;
                }
                FailureClass::InvalidConfiguration if fix_attempt < max_fixes => {
                    fix_attempt += 1;
                    let diagnostics = diagnostics_of(&error);
                    d.decision = format!(
                        "fix loop with the {step} diagnostics (fix attempt {fix_attempt} of {max_fixes})"
                    );
                    self.record_diagnosis(run, &d, &log).await;
                    self.enter(
                        run,
                        RunPhase::FixAttempt(fix_attempt),
                        Some(d.decision.clone()),
                    )
                    .await?;
                    let fixed = self
                        .try_fixers(&plan, &files, &diagnostics, fix_attempt)
                        .await;
                    run.fix_attempts.push(FixAttempt {
                        attempt: fix_attempt,
                        diagnostics,
                        fixer: fixed
                            .as_ref()
                            .map(|(n, _)| n.clone())
                            .unwrap_or_else(|| "none".into()),
                        files: fixed.as_ref().map(|(_, f)| f.clone()),
                        files_before: (fix_attempt == 1).then(|| files.clone()),
                    });
                    let Some((_, new_files)) = fixed else {
                        return self
                            .stop(run, &d, format!("no fixer could repair the {step} failure"))
                            .await;
                    };
                    files = new_files;
                    run.files = Some(files.clone());
                    ws = self.deps.runner.write_files(run.id, &files).await?;
                    needs_validation = true;
                }
                class => {
                    let why = match class {
                        FailureClass::Transient => {
                            format!("still failing after {retries} retries")
                        }
                        FailureClass::NameInUse | FailureClass::InvalidConfiguration => {
                            format!("no fix attempts left ({fix_attempt} of {max_fixes} used)")
                        }
                        _ => "an operator must act".to_string(),
                    };
                    return self.stop(run, &d, why).await;
                }
            }
        }

        run.outputs = self.deps.runner.output(&ws).await?;
        self.record_state(run, &ws, &log).await;

        self.enter(run, RunPhase::Verifying, None).await?;
        let verification = self.deps.verifier.verify(&run.outputs).await;

        // The resources exist now, whatever verification says: record them
        // before judging, so nothing that was created is ever forgotten.
        self.enter(run, RunPhase::Finalizing, None).await?;
        let deployment = self.deployment(run, &plan, &ws);
        self.deps.store.put_deployment(&deployment).await?;
        run.deployment_id = Some(deployment.deployment_id);
        let record = AuditRecord::agent(
            AuditStep::Deployment,
            format!("deployment {} stored", deployment.deployment_id),
        )
        .run(run.id)
        .input(
            serde_json::json!({ "resources": deployment.resource_map.keys().collect::<Vec<_>>() }),
        );
        if let Err(e) = self.deps.store.append_audit(&record).await {
            warn!(run_id = %run.id, error = %e, "audit append failed");
        }

        let verification = verification?;
        let ok = verification.ok;
        let failed: Vec<String> = verification
            .checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| {
                format!(
                    "{}: {}",
                    c.url,
                    c.error
                        .clone()
                        .unwrap_or_else(|| format!("HTTP {:?}", c.status))
                )
            })
            .collect();
        run.verification = Some(verification);
        if ok {
            self.enter(run, RunPhase::Completed, None).await
        } else {
            Err(Error::invalid(
                "deployment",
                format!("verification failed: {}", failed.join("; ")),
            ))
        }
    }

    /// Validates (entering `validating`), and while the configuration is
    /// invalid runs the fixers (`fix_attempt_N`, counted in `fix_attempt`).
    async fn validate_and_fix(
        &self,
        run: &mut Run,
        plan: &InfraPlan,
        files: &mut TerraformFiles,
        mut ws: TfWorkspace,
        fix_attempt: &mut u8,
        max_fixes: u8,
    ) -> Result<TfWorkspace> {
        let note = (*fix_attempt > 0).then(|| format!("after fix attempt {fix_attempt}"));
        self.enter(run, RunPhase::Validating, note).await?;
        let mut report = self.deps.runner.validate(&ws).await?;
        while !report.valid {
            run.diagnostics = report.diagnostics.clone();
            if *fix_attempt >= max_fixes {
                return Err(Error::invalid(
                    "terraform configuration",
                    format!(
                        "still invalid after {fix_attempt} fix attempts: {}",
                        first_error(&report.diagnostics)
                    ),
                ));
            }
            *fix_attempt += 1;
            let attempt = *fix_attempt;
            self.enter(
                run,
                RunPhase::FixAttempt(attempt),
                Some(first_error(&report.diagnostics)),
            )
            .await?;
            let fixed = self
                .try_fixers(plan, files, &report.diagnostics, attempt)
                .await;
            run.fix_attempts.push(FixAttempt {
                attempt,
                diagnostics: report.diagnostics.clone(),
                fixer: fixed
                    .as_ref()
                    .map(|(n, _)| n.clone())
                    .unwrap_or_else(|| "none".into()),
                files: fixed.as_ref().map(|(_, f)| f.clone()),
                files_before: (attempt == 1).then(|| files.clone()),
            });
            let Some((_, new_files)) = fixed else {
                return Err(Error::invalid(
                    "terraform configuration",
                    format!(
                        "no fixer could repair: {}",
                        first_error(&report.diagnostics)
                    ),
                ));
            };
            *files = new_files;
            run.files = Some(files.clone());
            ws = self.deps.runner.write_files(run.id, files).await?;
            self.enter(
                run,
                RunPhase::Validating,
                Some(format!("after fix attempt {attempt}")),
            )
            .await?;
            report = self.deps.runner.validate(&ws).await?;
        }
        run.diagnostics = report.diagnostics;
        Ok(ws)
    }

    /// One plan and (unless a dry run) apply. Store failures are `Err`;
    /// Terraform failures are [`Attempt::Failed`] for the diagnosis.
    async fn plan_and_apply(
        &self,
        run: &mut Run,
        ws: &TfWorkspace,
        log: &dyn LogSink,
    ) -> Result<Attempt> {
        self.enter(run, RunPhase::Planning, None).await?;
        let change_set = match self.deps.runner.plan(ws, log).await {
            Ok(c) => c,
            Err(e) => return Ok(Attempt::Failed("plan", e)),
        };
        let summary = change_set.summary();
        run.change_set = Some(change_set);
        if run.dry_run {
            self.enter(
                run,
                RunPhase::Completed,
                Some(format!("dry run: {summary}")),
            )
            .await?;
            return Ok(Attempt::Planned);
        }
        self.enter(run, RunPhase::Applying, Some(summary)).await?;
        Ok(match self.deps.runner.apply(ws, log).await {
            Ok(()) => Attempt::Applied,
            Err(e) => Attempt::Failed("apply", e),
        })
    }

    /// Reads the state into `run.resources` (`None`, with a warning line,
    /// when it cannot be read).
    async fn record_state(&self, run: &mut Run, ws: &TfWorkspace, log: &dyn LogSink) {
        match self.deps.runner.state(ws).await {
            Ok(resources) => {
                let addresses: Vec<&str> = resources.iter().map(|r| r.address.as_str()).collect();
                log.log(LogLine::info(
                    "deploy",
                    format!(
                        "state holds {} resource(s): {}",
                        resources.len(),
                        addresses.join(", ")
                    ),
                ));
                run.resources = Some(resources);
            }
            Err(e) => {
                warn!(run_id = %run.id, error = %e, "state could not be read");
                log.log(LogLine {
                    level: LogLevel::Warn,
                    source: "deploy".into(),
                    message: format!("the state could not be read: {e}"),
                    fields: serde_json::Value::Null,
                });
                run.resources = None;
            }
        }
    }

    async fn audit(&self, run: &Run, record: AuditRecord) {
        if let Err(e) = self.deps.store.append_audit(&record.run(run.id)).await {
            warn!(run_id = %run.id, error = %e, "audit append failed");
        }
    }

    /// Keeps a diagnosis on the run, in the audit trail and in the run log.
    async fn record_diagnosis(&self, run: &mut Run, d: &ApplyDiagnosis, log: &dyn LogSink) {
        info!(run_id = %run.id, class = %d.class, pattern = ?d.pattern, decision = %d.decision, "apply failure diagnosed");
        log.log(LogLine {
            level: if d.class.needs_operator() {
                LogLevel::Error
            } else {
                LogLevel::Warn
            },
            source: "deploy".into(),
            message: format!(
                "{} failed ({}): {} Next: {}",
                d.step, d.class, d.reasoning, d.decision
            ),
            fields: serde_json::to_value(d).unwrap_or_default(),
        });
        run.apply_diagnoses.push(d.clone());
        self.audit(
            run,
            AuditRecord::agent(
                AuditStep::ApplyDiagnosis,
                format!("{}: {}", d.class, d.decision),
            )
            .input(serde_json::to_value(d).unwrap_or_default())
            .reasoning(d.reasoning.clone(), None),
        )
        .await;
    }

    /// Ends the run as failed with the diagnosis, and tells the humans.
    async fn stop(&self, run: &mut Run, d: &ApplyDiagnosis, why: String) -> Result<()> {
        let log = self.deps.events.sink(run.id);
        let mut d = d.clone();
        d.decision = format!("stopped: {why}");
        self.record_diagnosis(run, &d, &log).await;
        let message = format!(
            "{} failed ({}): {} Error: {}",
            d.step,
            d.class,
            d.advice,
            first_line(&d.evidence, 400)
        );
        if let Some(notifier) = &self.notifier {
            let left = match &run.resources {
                Some(r) if !r.is_empty() => format!(
                    "\n\n{} resource(s) of this run are in its Terraform state ({}); \
                     preview \"destroy what this run created\" before removing them.",
                    r.len(),
                    r.iter()
                        .map(|r| r.address.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                Some(_) => "\n\nNothing of this run is in its Terraform state.".to_string(),
                None => String::new(),
            };
            let n = Notification {
                incident_id: None,
                title: format!("Deploy run {} stopped: {}", run.id, d.class),
                body: format!(
                    "{}\n\nGoal: {}\nStep: {} (attempt {})\nWhy: {}\nError: {}{left}",
                    d.advice,
                    run.goal,
                    d.step,
                    d.attempt,
                    d.reasoning,
                    first_line(&d.evidence, 600)
                ),
            };
            if let Err(e) = notifier.notify(&n).await {
                warn!(run_id = %run.id, error = %e, "notification failed");
            }
        }
        warn!(run_id = %run.id, class = %d.class, "run stopped");
        run.error = Some(message.clone());
        self.enter(run, RunPhase::Failed, Some(message)).await
    }

    /// A failed run that may be destroyed.
    async fn destroyable(&self, run_id: RunId) -> Result<Run> {
        let run = self
            .deps
            .store
            .get_run(run_id)
            .await?
            .ok_or_else(|| Error::not_found(format!("run {run_id}")))?;
        if run.phase != RunPhase::Failed {
            return Err(Error::conflict(
                format!("run {run_id}"),
                format!(
                    "is {}; only a failed run's resources can be destroyed this way",
                    run.phase
                ),
            ));
        }
        if let Some(d) = run.deployment_id {
            return Err(Error::conflict(
                format!("run {run_id}"),
                format!("stored deployment {d}; its resources are managed as that deployment, not destroyed as a failed run"),
            ));
        }
        Ok(run)
    }

    /// The dry-run preview of "destroy what this run created": the resources
    /// in the failed run's state and the `terraform plan -destroy` change set.
    /// Changes nothing. [`Error::Conflict`] for a run that is not failed, is
    /// executing, or stored a deployment.
    pub async fn preview_destroy(&self, run_id: RunId) -> Result<DestroyPreview> {
        let _guard = self.claim(run_id)?;
        let run = self.destroyable(run_id).await?;
        let log = self.deps.events.sink(run_id);
        let Some(files) = &run.files else {
            return Ok(DestroyPreview {
                run_id,
                resources: vec![],
                change_set: ChangeSet::default(),
            });
        };
        let ws = self.deps.runner.write_files(run_id, files).await?;
        let resources = self.deps.runner.state(&ws).await?;
        let change_set = if resources.is_empty() {
            ChangeSet::default()
        } else {
            self.deps.runner.plan_destroy(&ws, &log).await?
        };
        log.log(LogLine::info(
            "deploy",
            format!(
                "destroy preview: {} resource(s) in the state; {}",
                resources.len(),
                change_set.summary()
            ),
        ));
        self.audit(
            &run,
            AuditRecord::agent(
                AuditStep::RunCleanup,
                format!("destroy previewed: {}", change_set.summary()),
            )
            .input(serde_json::json!({
                "resources": resources.iter().map(|r| &r.address).collect::<Vec<_>>(),
                "dry_run": true,
            })),
        )
        .await;
        Ok(DestroyPreview {
            run_id,
            resources,
            change_set,
        })
    }

    /// Destroys what a failed run created: plans the destroy again, refuses
    /// ([`Error::Conflict`], nothing destroyed) when it differs from
    /// `approved` (the preview a human saw), applies exactly that plan, and
    /// records on the run what was destroyed and what is left.
    pub async fn destroy(
        &self,
        run_id: RunId,
        approved: Option<&ChangeSet>,
        actor: &str,
    ) -> Result<Run> {
        let _guard = self.claim(run_id)?;
        let mut run = self.destroyable(run_id).await?;
        let log = self.deps.events.sink(run_id);
        let files = run.files.clone().ok_or_else(|| {
            Error::conflict(
                format!("run {run_id}"),
                "never wrote Terraform files; nothing to destroy",
            )
        })?;
        let ws = self.deps.runner.write_files(run_id, &files).await?;
        let before = self.deps.runner.state(&ws).await?;
        if before.is_empty() {
            return Err(Error::conflict(
                format!("run {run_id}"),
                "has nothing in its Terraform state to destroy",
            ));
        }
        let change_set = self.deps.runner.plan_destroy(&ws, &log).await?;
        if let Some(approved) = approved {
            if approved != &change_set {
                return Err(Error::conflict(
                    format!("run {run_id}"),
                    format!(
                        "the destroy plan changed since the preview (previewed: {}; now: {}); nothing was destroyed",
                        approved.summary(),
                        change_set.summary()
                    ),
                ));
            }
        }
        info!(run_id = %run_id, actor, summary = %change_set.summary(), "destroying what the run created");
        let applied = self.deps.runner.apply(&ws, &log).await;
        self.record_state(&mut run, &ws, &log).await;
        if let Err(e) = applied {
            self.audit(
                &run,
                AuditRecord::agent(AuditStep::RunCleanup, format!("destroy failed: {e}")).by(actor),
            )
            .await;
            self.deps.store.put_run(&run).await?;
            return Err(e);
        }
        let remaining = run.resources.clone().unwrap_or_default();
        let outcome = if remaining.is_empty() {
            format!("destroyed: {}; nothing left", change_set.summary())
        } else {
            format!(
                "destroyed: {}; {} resource(s) left",
                change_set.summary(),
                remaining.len()
            )
        };
        log.log(LogLine::info("deploy", outcome.clone()));
        run.cleanup = Some(RunCleanup {
            actor: actor.to_string(),
            change_set: change_set.clone(),
            remaining: remaining.clone(),
            at: Utc::now(),
        });
        run.updated_at = Utc::now();
        self.deps.store.put_run(&run).await?;
        self.audit(
            &run,
            AuditRecord::agent(AuditStep::RunCleanup, outcome)
                .by(actor)
                .input(serde_json::json!({
                    "destroyed": change_set.changes.iter().map(|c| &c.address).collect::<Vec<_>>(),
                    "remaining": remaining.iter().map(|r| &r.address).collect::<Vec<_>>(),
                    "dry_run": false,
                })),
        )
        .await;
        Ok(run)
    }

    async fn try_fixers(
        &self,
        plan: &InfraPlan,
        files: &TerraformFiles,
        diagnostics: &[Diagnostic],
        attempt: u8,
    ) -> Option<(String, TerraformFiles)> {
        let request = FixRequest {
            plan,
            files,
            diagnostics,
            attempt,
        };
        for fixer in &self.deps.fixers {
            match fixer.fix(&request).await {
                Ok(Some(new)) if &new != files => return Some((fixer.name().to_string(), new)),
                Ok(_) => {}
                Err(e) => warn!(fixer = fixer.name(), error = %e, "fixer failed"),
            }
        }
        None
    }

    fn deployment(&self, run: &Run, plan: &InfraPlan, ws: &TfWorkspace) -> Deployment {
        let now = Utc::now();
        let resource_map: BTreeMap<String, RunId> = plan
            .resources
            .iter()
            .map(|r| (r.name.to_string(), run.id))
            .collect();
        Deployment {
            deployment_id: DeploymentId::new(),
            cloud: plan.cloud.clone(),
            services: plan
                .resources
                .iter()
                .filter(|r| matches!(r.kind, ResourceKind::Compute | ResourceKind::InstanceGroup))
                .map(|r| r.name.to_string())
                .collect(),
            region: plan.region.clone(),
            terraform_state: ws.dir.display().to_string(),
            alert_webhook: self.config.alert_webhook.clone(),
            resource_map,
            resources: plan.resources.clone(),
            monitoring: plan.monitoring.clone(),
            outputs: run.outputs.clone(),
            created_at: now,
            updated_at: now,
        }
    }
}

/// The error's Terraform diagnostics, or one made of its message.
fn diagnostics_of(error: &Error) -> Vec<Diagnostic> {
    let d = error.diagnostics();
    if !d.is_empty() {
        return d;
    }
    vec![Diagnostic {
        severity: DiagnosticSeverity::Error,
        summary: error.to_string(),
        detail: String::new(),
        range: None,
    }]
}

fn first_line(s: &str, max: usize) -> String {
    let line = s
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    if line.chars().count() <= max {
        line.to_string()
    } else {
        format!("{}…", line.chars().take(max).collect::<String>())
    }
}

/// The suffix of rename attempt `attempt`: `-r<attempt><last 4 hex of the run id>`,
/// deterministic for a run.
pub fn rename_suffix(run_id: RunId, attempt: u8) -> String {
    let id = run_id.to_string();
    let tail: String = id
        .chars()
        .filter(char::is_ascii_hexdigit)
        .collect::<Vec<_>>()
        .iter()
        .rev()
        .take(4)
        .rev()
        .collect();
    format!("-r{attempt}{tail}")
}

/// The plan with every resource renamed `<name><suffix>` (names cut to fit
/// [`MAX_NAME_LEN`]), with dependencies and monitoring following.
pub fn rename_plan(plan: &InfraPlan, suffix: &str) -> Result<InfraPlan> {
    let keep = MAX_NAME_LEN.saturating_sub(suffix.len());
    let mut names: HashMap<String, ResourceName> = HashMap::new();
    for r in &plan.resources {
        let base: String = r.name.as_str().chars().take(keep).collect();
        names.insert(
            r.name.to_string(),
            ResourceName::new(format!("{base}{suffix}"))?,
        );
    }
    let rename = |n: &ResourceName| names.get(n.as_str()).cloned().unwrap_or_else(|| n.clone());
    let mut out = plan.clone();
    for r in &mut out.resources {
        r.name = rename(&r.name);
        r.depends_on = r.depends_on.iter().map(rename).collect();
    }
    for m in &mut out.monitoring {
        m.resource_ref = rename(&m.resource_ref);
    }
    out.validate()?;
    Ok(out)
}

fn first_error(diagnostics: &[Diagnostic]) -> String {
    diagnostics
        .iter()
        .find(|d| d.severity == DiagnosticSeverity::Error)
        .map(|d| match &d.range {
            Some(r) => format!("{} ({}:{})", d.summary, r.filename, r.start_line),
            None => d.summary.clone(),
        })
        .unwrap_or_else(|| "invalid configuration".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{
        FakeGenerator, MemoryStore, RecordingApprover, ScriptedTfRunner, StaticFixer,
        StaticVerifier,
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
        let runner = Arc::new(runner);
        let store = Arc::new(MemoryStore::new());
        let approver = Arc::new(RecordingApprover::default());
        let fixer = Arc::new(StaticFixer::new(
            "static",
            TerraformFiles::single("# repaired\n"),
        ));
        let agent = DeployAgent::new(
            DeployDeps {
                planner: Arc::new(crate::rules::RulePlanner::default()),
                generator: Arc::new(FakeGenerator),
                fixers: vec![fixer.clone()],
                runner: runner.clone(),
                verifier: Arc::new(StaticVerifier::default()),
                store: store.clone(),
                registry: Arc::new(MetricProfileRegistry::builtin()),
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
                "Error creating Security Group: InvalidGroup.Duplicate: The security group 'api' already exists for VPC 'vpc-1'",
            ]),
            3,
        );
        let run = w.agent.deploy(GOAL, false).await.unwrap();
        assert_eq!(run.phase, RunPhase::Completed, "{:?}", run.error);
        assert_eq!(
            phases(&run),
            [
                "starting",
                "initializing",
                "validating",
                "planning",
                "applying",
                "diagnosing",
                "fix_attempt_1",
                "validating",
                "planning",
                "applying",
                "verifying",
                "finalizing",
                "completed"
            ]
        );
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
        assert_eq!(run.apply_diagnoses[0].details["name"], "api");
        // The deployment holds the renamed resources.
        let dep = w
            .store
            .get_deployment(run.deployment_id.unwrap())
            .await
            .unwrap()
            .unwrap();
        assert!(dep.resource_map.keys().all(|k| k.ends_with(&suffix)));
        assert!(w.approver.notifications().is_empty());
    }

    #[tokio::test]
    async fn an_invalid_configuration_at_apply_goes_to_the_fixers_with_its_diagnostics() {
        let w = world(
            ScriptedTfRunner::valid().failing_applies(&[
                "Error: creating EC2 Instance: InvalidParameterValue: Value () for parameter groupId is invalid. The value cannot be empty",
            ]),
            3,
        );
        let run = w.agent.deploy(GOAL, false).await.unwrap();
        assert_eq!(run.phase, RunPhase::Completed, "{:?}", run.error);
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
    async fn transient_failures_stop_after_the_bound_and_tell_the_humans() {
        let msg = "RequestLimitExceeded: Request limit exceeded. status code: 503";
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
                "googleapi: Error 403: Compute Engine API has not been used in project 42 before or it is disabled. Enable it by visiting https://console.developers.google.com/apis/api/compute.googleapis.com/overview?project=42 then retry., accessNotConfigured",
                FailureClass::ApiNotEnabled,
            ),
            ("Quota 'CPUS' exceeded.  Limit: 8.0 in region us-east1.", FailureClass::QuotaExceeded),
        ] {
            let w = world(ScriptedTfRunner::valid().failing_applies(&[msg]), 3);
            let run = w.agent.deploy(GOAL, false).await.unwrap();
            assert_eq!(run.phase, RunPhase::Failed, "{msg}");
            assert_eq!(run.apply_diagnoses.len(), 1);
            assert_eq!(run.apply_diagnoses[0].class, class);
            assert_eq!(
                w.runner.calls().iter().filter(|c| *c == "apply").count(),
                1
            );
            let notes = w.approver.notifications();
            assert_eq!(notes.len(), 1);
            assert!(notes[0].body.contains(&run.apply_diagnoses[0].advice));
            if class == FailureClass::ApiNotEnabled {
                assert!(run
                    .error
                    .as_deref()
                    .unwrap()
                    .contains("gcloud services enable compute.googleapis.com --project 42"));
            }
            let audit = w
                .store
                .list_audit(&AuditQuery {
                    run_id: Some(run.id),
                    ..Default::default()
                })
                .await
                .unwrap();
            assert!(audit.iter().any(|a| a.step == AuditStep::ApplyDiagnosis
                && a.outcome.starts_with(&class.to_string())));
        }
    }

    #[tokio::test]
    async fn a_failed_run_that_stored_a_deployment_is_not_destroyed_as_a_run() {
        let store = Arc::new(MemoryStore::new());
        let agent = DeployAgent::new(
            DeployDeps {
                planner: Arc::new(crate::rules::RulePlanner::default()),
                generator: Arc::new(FakeGenerator),
                fixers: vec![],
                runner: Arc::new(ScriptedTfRunner::valid()),
                verifier: Arc::new(StaticVerifier::failing()),
                store: store.clone(),
                registry: Arc::new(MetricProfileRegistry::builtin()),
                events: EventBus::new(),
            },
            DeployConfig::default(),
        );
        let run = agent.deploy(GOAL, false).await.unwrap();
        assert_eq!(run.phase, RunPhase::Failed);
        assert!(run.deployment_id.is_some());
        assert_eq!(run.resources.as_ref().map(Vec::len), Some(1));
        match agent.preview_destroy(run.id).await {
            Err(Error::Conflict { detail, .. }) => {
                assert!(detail.contains("deployment"), "{detail}")
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
}
