//! "Destroy what this run created" for a failed run: previewed, then
//! applied exactly as previewed.

use super::DeployAgent;
use crate::domain::*;
use crate::traits::*;
use crate::{Error, Result, RunId};
use chrono::Utc;
use tracing::info;

impl DeployAgent {
    /// A failed run that may be destroyed.
    async fn destroyable(&self, run_id: RunId) -> Result<Run> {
        let run = self.load(run_id).await?;
        let conflict = |why: String| Err(Error::conflict(format!("run {run_id}"), why));
        if run.phase != RunPhase::Failed {
            let phase = run.phase;
            return conflict(format!(
                "is {phase}; only a failed run's resources can be destroyed this way"
            ));
        }
        if let Some(d) = run.deployment_id {
            return conflict(format!("stored deployment {d}; its resources are managed as that deployment, not destroyed as a failed run"));
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
        let (n, summary) = (resources.len(), change_set.summary());
        let line = format!("destroy preview: {n} resource(s) in the state; {summary}");
        log.log(LogLine::info("deploy", line));
        let addresses: Vec<_> = resources.iter().map(|r| &r.address).collect();
        let previewed = format!("destroy previewed: {summary}");
        let record = AuditRecord::agent(AuditStep::RunCleanup, previewed)
            .input(serde_json::json!({ "resources": addresses, "dry_run": true }));
        self.audit(&run, record).await;
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
        let conflict = |why: String| Error::conflict(format!("run {run_id}"), why);
        let files = (run.files.clone())
            .ok_or_else(|| conflict("never wrote Terraform files; nothing to destroy".into()))?;
        let ws = self.deps.runner.write_files(run_id, &files).await?;
        if self.deps.runner.state(&ws).await?.is_empty() {
            return Err(conflict(
                "has nothing in its Terraform state to destroy".into(),
            ));
        }
        let change_set = self.deps.runner.plan_destroy(&ws, &log).await?;
        if let Some(approved) = approved.filter(|a| *a != &change_set) {
            return Err(conflict(format!(
                "the destroy plan changed since the preview (previewed: {}; now: {}); nothing was destroyed",
                approved.summary(),
                change_set.summary()
            )));
        }
        info!(run_id = %run_id, actor, summary = %change_set.summary(), "destroying what the run created");
        let applied = self.deps.runner.apply(&ws, &log).await;
        let state = self.deps.runner.state(&ws).await;
        self.record_state(&mut run, state, &log);
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
        let left = match remaining.len() {
            0 => "nothing left".to_string(),
            n => format!("{n} resource(s) left"),
        };
        let outcome = format!("destroyed: {}; {left}", change_set.summary());
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
}
