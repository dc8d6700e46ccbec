//! STOP AUTONOMY and RESUME from a human, and the delivery cursors that
//! keep a redelivered old command from undoing a newer one.

use super::{CommandOutcome, OpsAgent};
use crate::domain::*;
use crate::{IncidentId, KillSwitchRequest, Result};
use chrono::Utc;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, warn};

/// The store cursor holding the sequence id of the last STOP/RESUME applied
/// from `channel` (see [`HumanReply::delivery_seq`]).
pub fn kill_switch_cursor(channel: &str) -> String {
    format!("kill_switch_delivery:{channel}")
}

/// The store cursor holding when (Unix seconds) that STOP/RESUME was applied.
pub fn kill_switch_cursor_at(channel: &str) -> String {
    format!("kill_switch_delivery_at:{channel}")
}

/// The answer to STOP AUTONOMY. Stopping rewrites no incident (see
/// [`crate::lifecycle::kill_switch_moves`]): execution is refused where it
/// starts, and approvals are refused while stopped.
const STOPPED: &str = "Autonomy stopped: nothing executes until resumed. \
     Pending incidents stay pending; approvals are refused until RESUME.";

/// How long a channel's delivery ids are trusted to keep growing: Telegram
/// drops undelivered updates after 24 hours (so nothing older is redelivered)
/// and may restart `update_id` at random after a week without updates, so an
/// older id is taken for a redelivery only within this window of the last
/// applied kill-switch command; after it, a STOP is always applied.
pub const KILL_SWITCH_REDELIVERY_WINDOW: Duration = Duration::from_secs(24 * 3600);

impl OpsAgent {
    /// Applies STOP AUTONOMY or RESUME, unless it is a redelivery older
    /// than the last one applied from its channel.
    /// Detached (`detach`), RESUME answers once the incidents are pending
    /// again and sends their approval requests in the background.
    pub(super) async fn kill_switch_command(
        &self,
        reply: &HumanReply,
        detach: Option<&Arc<OpsAgent>>,
    ) -> Result<CommandOutcome> {
        if self.stale_kill_switch_delivery(reply).await? {
            return Ok(self.ignore_stale_delivery(reply).await);
        }
        let actor = reply.actor.label();
        let request = match &reply.command {
            HumanCommand::StopAutonomy { reason } => {
                KillSwitchRequest::engage(&actor, reason.as_deref())
            }
            _ => KillSwitchRequest::release(&actor),
        };
        let (engage, reason) = (request.engaged, request.reason);
        let store = &self.deps.store;
        let change = store.set_kill_switch(request).await?;
        let affected = change.affected.len();
        let (outcome, input) = if engage {
            ("engaged", json!({ "reason": reason }))
        } else {
            ("released", json!({ "back_to_pending": change.affected }))
        };
        let record = AuditRecord::agent(AuditStep::KillSwitch, outcome).by(actor.clone());
        self.audit(record.input(input)).await;
        self.note_kill_switch_delivery(reply).await;
        if engage {
            warn!(actor = %actor, "STOP AUTONOMY engaged");
            return Ok(CommandOutcome::done(STOPPED, None));
        }
        info!(actor = %actor, pending = affected, "autonomy resumed");
        match detach {
            Some(agent) => {
                let (agent, ids) = (agent.clone(), change.affected);
                tokio::spawn(async move { agent.request_approvals_again(&ids).await });
            }
            None => self.request_approvals_again(&change.affected).await,
        }
        Ok(CommandOutcome::done(
            format!(
                "Autonomy resumed; {affected} previously blocked incident(s) need approval again."
            ),
            None,
        ))
    }

    /// Asks again for the approval of each incident in `ids` (back to
    /// pending after a RESUME).
    async fn request_approvals_again(&self, ids: &[IncidentId]) {
        for id in ids {
            match self.deps.store.get_incident(*id).await {
                Ok(Some(incident)) => {
                    self.request_approval(&incident).await;
                }
                Ok(None) => {}
                Err(e) => warn!(incident_id = %id, error = %e, "cannot ask for approval again"),
            }
        }
    }

    /// STOP AUTONOMY from an authenticated actor who need not be an
    /// allow-listed approver (another agent over MCP, say): stopping is
    /// always safe, so anyone who may talk to the agent may stop it. Resuming
    /// stays with the approvers ([`OpsAgent::handle_command`]).
    pub async fn stop_autonomy(
        &self,
        actor: &Actor,
        reason: Option<&str>,
    ) -> Result<CommandOutcome> {
        let reply = HumanReply::new(
            HumanCommand::StopAutonomy {
                reason: reason.map(str::to_string),
            },
            actor.clone(),
        );
        let received = AuditRecord::agent(AuditStep::HumanCommand, "received")
            .by(actor.label())
            .input(serde_json::to_value(&reply.command).unwrap_or_default());
        self.audit(received).await;
        self.kill_switch_command(&reply, None).await
    }

    /// Audits and answers a STOP/RESUME redelivered after a newer one.
    async fn ignore_stale_delivery(&self, reply: &HumanReply) -> CommandOutcome {
        let actor = reply.actor.label();
        let command = if reply.command == HumanCommand::Resume {
            "RESUME"
        } else {
            "STOP AUTONOMY"
        };
        let message = format!(
            "This {command} was delivered again after a newer kill-switch command from {}; nothing changed.",
            reply.actor.channel
        );
        self.audit(
            AuditRecord::agent(AuditStep::KillSwitch, message.clone())
                .by(actor.clone())
                .input(json!({ "delivery_seq": reply.delivery_seq })),
        )
        .await;
        info!(actor = %actor, delivery_seq = reply.delivery_seq, "stale kill-switch delivery ignored");
        CommandOutcome::noop(message, None)
    }

    /// Whether a STOP/RESUME delivery is not newer than the last one applied
    /// from its channel (see [`HumanReply::delivery_seq`]).
    async fn stale_kill_switch_delivery(&self, reply: &HumanReply) -> Result<bool> {
        let Some(seq) = reply.delivery_seq else {
            return Ok(false);
        };
        let channel = &reply.actor.channel;
        let store = &self.deps.store;
        let (Some(last), Some(at)) = (
            store.get_cursor(&kill_switch_cursor(channel)).await?,
            store.get_cursor(&kill_switch_cursor_at(channel)).await?,
        ) else {
            return Ok(false);
        };
        let window = KILL_SWITCH_REDELIVERY_WINDOW.as_secs() as i64;
        Ok(seq <= last && Utc::now().timestamp() - at < window)
    }

    /// Remembers the delivery of an applied STOP/RESUME. The command already
    /// took effect, so a failure here is logged, not returned (which would
    /// make a poller apply it again).
    async fn note_kill_switch_delivery(&self, reply: &HumanReply) {
        let Some(seq) = reply.delivery_seq else {
            return;
        };
        let channel = &reply.actor.channel;
        let store = &self.deps.store;
        let saved = async {
            store.set_cursor(&kill_switch_cursor(channel), seq).await?;
            let now = Utc::now().timestamp();
            store.set_cursor(&kill_switch_cursor_at(channel), now).await
        };
        if let Err(e) = saved.await {
            warn!(channel = %channel, error = %e, "could not remember the kill-switch delivery");
        }
    }
}
