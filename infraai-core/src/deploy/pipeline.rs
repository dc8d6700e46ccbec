//! The steps of one run: initialize → validate (fixing what is invalid) →
//! plan → apply, healed on failure and tried again → outputs → verify →
//! finalize (the deployment) → completed.

use super::DeployAgent;
use crate::domain::*;
use crate::traits::*;
use crate::{DeploymentId, Error, Result, RunId};
use chrono::Utc;
use std::collections::BTreeMap;
use tracing::warn;

/// How one plan+apply attempt ended.
enum Attempt {
    /// Dry run: planned, nothing applied.
    Planned,
    /// Applied, with what the runner knows it left ([`Applied::left`]).
    Applied(Option<OutputsAndResources>),
    /// `step` failed with the error.
    Failed(TerraformStep, Error),
}

/// What a run's steps hand on to each other: the plan as planned (renames
/// start from it), the plan and files now and where they are written, the
/// fix attempts (validation fixes, apply-time fixes and renames together),
/// retries and plan/apply attempts so far, and whether the files changed
/// since they were last validated.
pub(super) struct Progress {
    pub(super) original: InfraPlan,
    pub(super) plan: InfraPlan,
    pub(super) files: TerraformFiles,
    pub(super) ws: TfWorkspace,
    pub(super) fixes: u8,
    pub(super) retries: u8,
    pub(super) attempt: u32,
    pub(super) unvalidated: bool,
}

impl DeployAgent {
    /// Runs the steps of a claimed run. A failure the healing stops on ends
    /// the run in `failed` and returns `Ok`; `Err` is for the caller to fail
    /// the run with.
    pub(super) async fn pipeline(&self, run: &mut Run) -> Result<()> {
        let log = self.deps.events.sink(run.id);
        let mut progress = self.initialize(run, &log).await?;
        let left = loop {
            if progress.unvalidated {
                self.validate_and_fix(run, &mut progress).await?;
            }
            progress.attempt += 1;
            match self.plan_and_apply(run, &progress.ws, &log).await? {
                Attempt::Planned => return Ok(()),
                Attempt::Applied(left) => break left,
                Attempt::Failed(step, error) => {
                    let healed = self.heal(run, &mut progress, step, error, &log).await?;
                    if healed.is_break() {
                        return Ok(());
                    }
                }
            }
        };
        self.finalize(run, &progress, left, &log).await
    }

    /// `initializing`: writes the run's files and initializes Terraform.
    async fn initialize(&self, run: &mut Run, log: &dyn LogSink) -> Result<Progress> {
        let plan = run
            .plan
            .clone()
            .ok_or_else(|| Error::invalid(format!("run {}", run.id), "has no plan"))?;
        let files = run
            .files
            .clone()
            .ok_or_else(|| Error::invalid(format!("run {}", run.id), "has no Terraform files"))?;
        let run_id = run.id;
        let step = async {
            let ws = self.deps.runner.write_files(run_id, &files).await?;
            self.deps.runner.init(&ws, log).await.map(|()| ws)
        };
        let entered = self.enter_with(run, RunPhase::Initializing, None, step);
        let ws = entered.await??;
        Ok(Progress {
            original: plan.clone(),
            plan,
            files,
            ws,
            fixes: 0,
            retries: 0,
            attempt: 0,
            unvalidated: true,
        })
    }

    /// `validating`, and while the configuration is invalid, a fix attempt
    /// (`fix_attempt_N`) and `validating` again.
    async fn validate_and_fix(&self, run: &mut Run, p: &mut Progress) -> Result<()> {
        let fixes = p.fixes;
        let note = (fixes > 0).then(|| format!("after fix attempt {fixes}"));
        let validated = self.deps.runner.validate(&p.ws);
        let entered = self.enter_with(run, RunPhase::Validating, note, validated);
        let mut report = entered.await??;
        while !report.valid {
            run.diagnostics = report.diagnostics.clone();
            let first = first_error(&report.diagnostics);
            if p.fixes >= self.max_fixes() {
                return Err(Error::invalid(
                    "terraform configuration",
                    format!("still invalid after {} fix attempts: {first}", p.fixes),
                ));
            }
            p.fixes += 1;
            self.enter(run, RunPhase::FixAttempt(p.fixes), Some(first.clone()))
                .await?;
            if !self.fix(run, p, report.diagnostics.clone()).await? {
                return Err(Error::invalid(
                    "terraform configuration",
                    format!("no fixer could repair: {first}"),
                ));
            }
            let note = Some(format!("after fix attempt {}", p.fixes));
            let validated = self.deps.runner.validate(&p.ws);
            let entered = self.enter_with(run, RunPhase::Validating, note, validated);
            report = entered.await??;
        }
        run.diagnostics = report.diagnostics;
        p.unvalidated = false;
        Ok(())
    }

    /// Fix attempt `p.fixes` for `diagnostics`: the first fixer that changes
    /// the files wins. The attempt is kept on the run and the new files are
    /// written; returns whether a fixer could.
    pub(super) async fn fix(
        &self,
        run: &mut Run,
        p: &mut Progress,
        diagnostics: Vec<Diagnostic>,
    ) -> Result<bool> {
        let request = FixRequest {
            plan: &p.plan,
            files: &p.files,
            diagnostics: &diagnostics,
            attempt: p.fixes,
        };
        let mut fixed = None;
        for fixer in &self.deps.fixers {
            match fixer.fix(&request).await {
                Ok(Some(new)) if new != p.files => {
                    fixed = Some((fixer.name().to_string(), new));
                    break;
                }
                Ok(_) => {}
                Err(e) => warn!(fixer = fixer.name(), error = %e, "fixer failed"),
            }
        }
        run.fix_attempts.push(FixAttempt {
            attempt: p.fixes,
            diagnostics,
            fixer: fixed.as_ref().map_or("none".into(), |(n, _)| n.clone()),
            files: fixed.as_ref().map(|(_, f)| f.clone()),
            files_before: (p.fixes == 1).then(|| p.files.clone()),
        });
        let Some((_, files)) = fixed else {
            return Ok(false);
        };
        self.rewrite(run, p, files).await?;
        Ok(true)
    }

    /// Makes `files` the run's files and writes them; they are validated
    /// before the next plan.
    pub(super) async fn rewrite(
        &self,
        run: &mut Run,
        p: &mut Progress,
        files: TerraformFiles,
    ) -> Result<()> {
        run.files = Some(files.clone());
        p.ws = self.deps.runner.write_files(run.id, &files).await?;
        p.files = files;
        p.unvalidated = true;
        Ok(())
    }

    /// `planning`, then (unless a dry run, which completes here) `applying`.
    /// Store failures are `Err`; Terraform failures are [`Attempt::Failed`]
    /// for the healing.
    async fn plan_and_apply(
        &self,
        run: &mut Run,
        ws: &TfWorkspace,
        log: &dyn LogSink,
    ) -> Result<Attempt> {
        // A dry run's plan is the preview, attributes and all; a plan applied
        // at once may leave its attributes to the apply.
        let dry_run = run.dry_run;
        let planned = async {
            match dry_run {
                true => self.deps.runner.plan(ws, log).await,
                false => self.deps.runner.plan_to_apply(ws, log).await,
            }
        };
        let planned = self.enter_with(run, RunPhase::Planning, None, planned);
        let change_set = match planned.await? {
            Ok(c) => c,
            Err(e) => return Ok(Attempt::Failed(TerraformStep::Plan, e)),
        };
        let summary = change_set.summary();
        run.change_set = Some(change_set);
        if run.dry_run {
            let note = format!("dry run: {summary}");
            self.enter(run, RunPhase::Completed, Some(note)).await?;
            return Ok(Attempt::Planned);
        }
        self.enter(run, RunPhase::Applying, Some(summary)).await?;
        Ok(match self.deps.runner.apply(ws, log).await {
            Ok(applied) => {
                if applied.change_set.is_some() {
                    run.change_set = applied.change_set;
                }
                Attempt::Applied(applied.left)
            }
            Err(e) => Attempt::Failed(TerraformStep::Apply, e),
        })
    }

    /// After a successful apply: the outputs and the state (asked of the
    /// runner unless the apply knew them: `left`), `verifying`, then
    /// `finalizing` (the deployment is stored whatever verification says),
    /// and `verified` when verification passed, else
    /// `deploy_success_verify_failed` with the reason in the run's `error`.
    async fn finalize(
        &self,
        run: &mut Run,
        p: &Progress,
        left: Option<OutputsAndResources>,
        log: &dyn LogSink,
    ) -> Result<()> {
        let (outputs, state) = match left {
            Some((outputs, resources)) => (outputs, Ok(resources)),
            None => self.deps.runner.output_and_state(&p.ws).await?,
        };
        run.outputs = outputs;
        self.record_state(run, state, log);

        let outputs = run.outputs.clone();
        let verifying = self.deps.verifier.verify(&outputs);
        let entered = self.enter_with(run, RunPhase::Verifying, None, verifying);
        let verification = entered.await?;

        // The resources exist now, whatever verification says: record them
        // before judging, so nothing that was created is ever forgotten.
        self.enter(run, RunPhase::Finalizing, None).await?;
        let deployment = self.deployment(run, &p.plan, &p.ws);
        self.deps.store.put_deployment(&deployment).await?;
        run.deployment_id = Some(deployment.deployment_id);
        let resources: Vec<_> = deployment.resource_map.keys().collect();
        let stored = format!("deployment {} stored", deployment.deployment_id);
        let record = AuditRecord::agent(AuditStep::Deployment, stored)
            .input(serde_json::json!({ "resources": resources }));
        self.audit(run, record).await;

        let verification = verification?;
        let failed: Vec<String> = verification
            .checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| {
                let error = c.error.clone();
                format!(
                    "{}: {}",
                    c.url,
                    error.unwrap_or_else(|| format!("HTTP {:?}", c.status))
                )
            })
            .collect();
        let ok = verification.ok;
        run.verification = Some(verification);
        if ok {
            return self.enter(run, RunPhase::Verified, None).await;
        }
        let why = format!("verification failed: {}", failed.join("; "));
        warn!(run_id = %run.id, reason = %why, "deployed, but the service does not answer");
        run.error = Some(why.clone());
        self.enter(run, RunPhase::VerifyFailed, Some(why)).await
    }

    /// The deployment a completed apply of `plan` leaves.
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

/// The first error of `diagnostics`, with its place when known.
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
