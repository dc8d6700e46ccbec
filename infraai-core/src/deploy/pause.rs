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
        loop {
            tokio::time::sleep(self.config.pause_poll).await;
            if let Some(actor) = self.take_cancel(run.id) {
                return Err(Error::Cancelled {
                    component: format!("run {} (cancelled by {actor})", run.id),
                    op: format!("{next}, paused by STOP AUTONOMY,"),
                });
            }
            if !self.deps.store.kill_switch().await?.engaged {
                info!(run_id = %run.id, next = %next, "run resumes");
                return Ok(());
            }
        }
    }

    /// Cancels run `run_id` while it waits in `paused_by_kill_switch` on this
    /// agent: it ends `failed`, saying `actor` cancelled it.
    /// [`Error::Conflict`] when it is not paused here.
    pub async fn cancel_paused(&self, run_id: RunId, actor: &str) -> Result<()> {
        let run = self.deps.store.get_run(run_id).await?;
        let run = run.ok_or_else(|| Error::not_found(format!("run {run_id}")))?;
        let active = self.is_active(run_id);
        if run.phase != RunPhase::Paused || !active {
            return Err(Error::conflict(
                format!("run {run_id}"),
                format!("is {}, not paused by STOP AUTONOMY here", run.phase),
            ));
        }
        let mut cancels = self.cancels.lock().unwrap_or_else(|p| p.into_inner());
        cancels.insert(run_id, actor.to_owned());
        Ok(())
    }

    fn take_cancel(&self, run_id: RunId) -> Option<String> {
        let mut cancels = self.cancels.lock().unwrap_or_else(|p| p.into_inner());
        cancels.remove(&run_id)
    }
}
