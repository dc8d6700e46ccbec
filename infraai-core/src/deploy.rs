//! The deploy loop: goal → plan → Terraform → validate/fix → plan → apply →
//! outputs → verify → deployment.

use crate::domain::*;
use crate::events::EventBus;
use crate::profiles::MetricProfileRegistry;
use crate::traits::*;
use crate::{DeploymentId, Error, Result, RunId};
use chrono::Utc;
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use tracing::{info, warn};

/// Settings of the deploy loop.
#[derive(Clone, Debug)]
pub struct DeployConfig {
    /// Region passed to the planner when the goal names none.
    pub region: Option<String>,
    /// URL alert policies post to (the ops webhook), when configured.
    pub alert_webhook: Option<String>,
    /// Validation fix attempts before a run fails (at most [`MAX_FIX_ATTEMPTS`]).
    pub max_fix_attempts: u8,
}

impl Default for DeployConfig {
    fn default() -> Self {
        Self {
            region: None,
            alert_webhook: None,
            max_fix_attempts: MAX_FIX_ATTEMPTS,
        }
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
    pub fn new(deps: DeployDeps, config: DeployConfig) -> Self {
        Self {
            deps,
            config,
            active: Mutex::new(HashSet::new()),
        }
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
        let _guard = {
            let mut active = self.active.lock().unwrap_or_else(|p| p.into_inner());
            if !active.insert(run_id) {
                return Err(Error::conflict(
                    format!("run {run_id}"),
                    "is already executing",
                ));
            }
            ActiveGuard {
                set: &self.active,
                id: run_id,
            }
        };
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
        let plan = run
            .plan
            .clone()
            .ok_or_else(|| Error::invalid(format!("run {}", run.id), "has no plan"))?;
        let mut files = run
            .files
            .clone()
            .ok_or_else(|| Error::invalid(format!("run {}", run.id), "has no Terraform files"))?;

        self.enter(run, RunPhase::Initializing, None).await?;
        let mut ws = self.deps.runner.write_files(run.id, &files).await?;
        self.deps.runner.init(&ws, &log).await?;

        self.enter(run, RunPhase::Validating, None).await?;
        let mut report = self.deps.runner.validate(&ws).await?;
        let mut attempt = 0u8;
        while !report.valid {
            run.diagnostics = report.diagnostics.clone();
            if attempt >= self.config.max_fix_attempts.min(MAX_FIX_ATTEMPTS) {
                return Err(Error::invalid(
                    "terraform configuration",
                    format!(
                        "still invalid after {attempt} fix attempts: {}",
                        first_error(&report.diagnostics)
                    ),
                ));
            }
            attempt += 1;
            self.enter(
                run,
                RunPhase::FixAttempt(attempt),
                Some(first_error(&report.diagnostics)),
            )
            .await?;
            let fixed = self
                .try_fixers(&plan, &files, &report.diagnostics, attempt)
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
            files = new_files;
            run.files = Some(files.clone());
            ws = self.deps.runner.write_files(run.id, &files).await?;
            self.enter(
                run,
                RunPhase::Validating,
                Some(format!("after fix attempt {attempt}")),
            )
            .await?;
            report = self.deps.runner.validate(&ws).await?;
        }
        run.diagnostics = report.diagnostics;

        self.enter(run, RunPhase::Planning, None).await?;
        let change_set = self.deps.runner.plan(&ws, &log).await?;
        let summary = change_set.summary();
        run.change_set = Some(change_set);
        if run.dry_run {
            self.enter(
                run,
                RunPhase::Completed,
                Some(format!("dry run: {summary}")),
            )
            .await?;
            return Ok(());
        }

        self.enter(run, RunPhase::Applying, Some(summary)).await?;
        self.deps.runner.apply(&ws, &log).await?;
        run.outputs = self.deps.runner.output(&ws).await?;

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
