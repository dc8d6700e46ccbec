//! STOP AUTONOMY halts deploys too: while the kill-switch is engaged, a run
//! stops at its next phase boundary — no new init, validation, fix attempt,
//! plan, apply or apply retry — and waits in `paused_by_kill_switch` until a
//! human resumes autonomy (the run then enters the phase it stopped before)
//! or cancels the run (it fails, saying who cancelled it). A Terraform
//! command already running finishes first, and what follows an apply that
//! already happened (reading the outputs, verifying, storing the
//! deployment) is not held back: the resources exist and are recorded.

use super::DeployAgent;
use crate::domain::*;
use crate::{Error, Result, RunId};
use std::collections::HashMap;
use tracing::info;

/// Whether a run stops before entering `phase` while the kill-switch is engaged.
pub(super) fn halts_before(phase: RunPhase) -> bool {
    matches!(
        phase,
        RunPhase::Initializing
            | RunPhase::Validating
            | RunPhase::FixAttempt(_)
            | RunPhase::Planning
            | RunPhase::Applying
            | RunPhase::ApplyRetry(_)
    )
}

impl DeployAgent {
    /// Before `next`: waits in `paused_by_kill_switch` while the kill-switch
    /// is engaged; `Err` when a human cancels the run meanwhile.
    pub(super) async fn hold_while_stopped(&self, run: &mut Run, next: RunPhase) -> Result<()> {
        let switch = self.deps.store.kill_switch().await?;
        if !switch.engaged {
            return Ok(());
        }
        let by = switch.set_by.unwrap_or_else(|| "a human".into());
        let note = format!("STOP AUTONOMY by {by}; {next} waits for RESUME or a cancel");
        info!(run_id = %run.id, next = %next, "run paused by the kill-switch");
        self.record_phase(run, RunPhase::Paused, Some(note)).await?;
        self.paused().insert(run.id, None);
        let waited = self.wait_for_resume(run.id).await;
        // A cancel that came in while waiting wins, even over a RESUME.
        if let Some(actor) = self.paused().remove(&run.id).flatten() {
            return Err(Error::Cancelled {
                component: format!("run {} (cancelled by {actor})", run.id),
                op: format!("{next}, paused by STOP AUTONOMY,"),
            });
        }
        info!(run_id = %run.id, next = %next, "run resumes");
        waited
    }

    /// Until the kill-switch is released or a cancel is asked for.
    async fn wait_for_resume(&self, run_id: RunId) -> Result<()> {
        loop {
            tokio::time::sleep(self.config.pause_poll).await;
            let cancelled = self.paused().get(&run_id).is_some_and(Option::is_some);
            if cancelled || !self.deps.store.kill_switch().await?.engaged {
                return Ok(());
            }
        }
    }

    /// Cancels run `run_id` while it waits in `paused_by_kill_switch` on this
    /// agent: it ends `failed`, saying `actor` cancelled it.
    /// [`Error::Conflict`] when it is not waiting here.
    pub async fn cancel_paused(&self, run_id: RunId, actor: &str) -> Result<()> {
        if let Some(slot) = self.paused().get_mut(&run_id) {
            *slot = Some(actor.to_owned());
            return Ok(());
        }
        let run = self.deps.store.get_run(run_id).await?;
        let run = run.ok_or_else(|| Error::not_found(format!("run {run_id}")))?;
        Err(Error::conflict(
            format!("run {run_id}"),
            format!("is {}, not paused by STOP AUTONOMY here", run.phase),
        ))
    }

    /// The runs waiting in `paused_by_kill_switch`, each with the actor who
    /// asked to cancel it, if anyone has.
    fn paused(&self) -> std::sync::MutexGuard<'_, HashMap<RunId, Option<String>>> {
        self.paused.lock().unwrap_or_else(|p| p.into_inner())
    }
}
