//! Human commands: approve, reject, STOP AUTONOMY and resume, from chat
//! and web deliveries.

use super::{
    kill_switch_cursor, kill_switch_cursor_at, CommandOutcome, OpsAgent,
    KILL_SWITCH_REDELIVERY_WINDOW,
};
use crate::domain::*;
use crate::refusals::{AuthRefusal, RequestOrigin};
use crate::traits::*;
use crate::{Error, IncidentId, Result};
use chrono::Utc;
use serde_json::json;
use std::sync::Arc;
use tracing::{info, warn};

impl OpsAgent {
    /// Applies a human command: approve, reject, STOP AUTONOMY or resume.
    /// Approvals execute at most once, whatever duplicates arrive. A command
    /// from an actor not on the approver allow-list is audited and refused
    /// with [`Error::Forbidden`].
    pub async fn handle_command(&self, reply: &HumanReply) -> Result<CommandOutcome> {
        self.command(reply, None).await
    }

    /// Like [`OpsAgent::handle_command`], but returns as soon as an approved
    /// action is claimed, running the action and the metric re-check in a
    /// background task; the outcome then reaches humans as a notification.
    /// Meant for chat and HTTP handlers, which must answer within seconds.
    pub async fn handle_command_detached(
        self: &Arc<Self>,
        reply: &HumanReply,
    ) -> Result<CommandOutcome> {
        self.command(reply, Some(self)).await
    }

    async fn command(
        &self,
        reply: &HumanReply,
        detach: Option<&Arc<OpsAgent>>,
    ) -> Result<CommandOutcome> {
        let actor = reply.actor.label();
        let mut received = AuditRecord::agent(AuditStep::HumanCommand, "received")
            .by(actor.clone())
            .input(serde_json::to_value(&reply.command).unwrap_or_default());
        if let HumanCommand::Approve { incident_id } | HumanCommand::Reject { incident_id, .. } =
            &reply.command
        {
            received = received.incident(*incident_id);
        }
        if !self.config.approvers.permits(&reply.actor) {
            warn!(actor = %actor, "command from an actor who is not an allow-listed approver refused");
            received.outcome = "refused: not an allow-listed approver".into();
            self.audit(received).await;
            return Err(Error::Forbidden {
                detail: format!(
                    "sorry, {} is not on the approver list for {}; nothing was done",
                    reply.actor.name.as_deref().unwrap_or(&reply.actor.id),
                    reply.actor.channel
                ),
            });
        }
        self.audit(received).await;
        match &reply.command {
            HumanCommand::Approve { incident_id } => {
                self.approve(*incident_id, &reply.actor, detach).await
            }
            HumanCommand::Reject {
                incident_id,
                reason,
            } => {
                self.reject(*incident_id, &reply.actor, reason.as_deref())
                    .await
            }
            HumanCommand::StopAutonomy { .. } | HumanCommand::Resume
                if self.stale_kill_switch_delivery(reply).await? =>
            {
                let message = format!(
                    "This {} was delivered again after a newer kill-switch command from {}; nothing changed.",
                    if reply.command == HumanCommand::Resume { "RESUME" } else { "STOP AUTONOMY" },
                    reply.actor.channel
                );
                self.audit(
                    AuditRecord::agent(AuditStep::KillSwitch, message.clone())
                        .by(actor.clone())
                        .input(json!({ "delivery_seq": reply.delivery_seq })),
                )
                .await;
                info!(actor = %actor, delivery_seq = reply.delivery_seq, "stale kill-switch delivery ignored");
                Ok(CommandOutcome {
                    effective: false,
                    message,
                    incident: None,
                })
            }
            HumanCommand::StopAutonomy { reason } => {
                let change = self
                    .deps
                    .store
                    .set_kill_switch(true, &actor, reason.as_deref())
                    .await?;
                self.audit(
                    AuditRecord::agent(AuditStep::KillSwitch, "engaged")
                        .by(actor.clone())
                        .input(json!({ "reason": reason, "blocked": change.affected })),
                )
                .await;
                self.note_kill_switch_delivery(reply).await;
                warn!(actor = %actor, blocked = change.affected.len(), "STOP AUTONOMY engaged");
                Ok(CommandOutcome {
                    effective: true,
                    message: format!(
                        "Autonomy stopped; {} incident(s) blocked. Nothing executes until resumed.",
                        change.affected.len()
                    ),
                    incident: None,
                })
            }
            HumanCommand::Resume => {
                let change = self.deps.store.set_kill_switch(false, &actor, None).await?;
                self.audit(
                    AuditRecord::agent(AuditStep::KillSwitch, "released")
                        .by(actor.clone())
                        .input(json!({ "back_to_pending": change.affected })),
                )
                .await;
                self.note_kill_switch_delivery(reply).await;
                info!(actor = %actor, pending = change.affected.len(), "autonomy resumed");
                for id in &change.affected {
                    if let Some(incident) = self.deps.store.get_incident(*id).await? {
                        self.request_approval(&incident).await;
                    }
                }
                Ok(CommandOutcome {
                    effective: true,
                    message: format!(
                        "Autonomy resumed; {} previously blocked incident(s) need approval again.",
                        change.affected.len()
                    ),
                    incident: None,
                })
            }
        }
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
        let saved = match store.set_cursor(&kill_switch_cursor(channel), seq).await {
            Ok(()) => {
                store
                    .set_cursor(&kill_switch_cursor_at(channel), Utc::now().timestamp())
                    .await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = saved {
            warn!(channel = %channel, error = %e, "could not remember the kill-switch delivery");
        }
    }

    /// Authenticates and parses an inbound chat/web request with `approver`,
    /// applies each command (detached: actions run in the background), and
    /// acknowledges each one on its channel with the outcome or the refusal.
    /// [`Error::Unauthenticated`] (bad signature or secret) is returned before
    /// anything is parsed or applied.
    /// The refusal is audited ([`OpsAgent::audit_auth_refusal`]).
    pub async fn handle_inbound(
        self: &Arc<Self>,
        approver: &dyn Approver,
        request: &InboundRequest,
    ) -> Result<Vec<Result<CommandOutcome>>> {
        self.handle_inbound_from(approver, request, &RequestOrigin::default())
            .await
    }

    /// [`OpsAgent::handle_inbound`] for a request whose route and peer are
    /// known, so that an authentication refusal is audited with them.
    pub async fn handle_inbound_from(
        self: &Arc<Self>,
        approver: &dyn Approver,
        request: &InboundRequest,
        origin: &RequestOrigin,
    ) -> Result<Vec<Result<CommandOutcome>>> {
        let replies = match approver.parse_inbound(request).await {
            Ok(r) => r,
            Err(Error::Unauthenticated { detail }) => {
                self.audit_auth_refusal(&AuthRefusal::from_origin(
                    approver.channel(),
                    detail.clone(),
                    origin,
                ))
                .await;
                return Err(Error::Unauthenticated { detail });
            }
            Err(e) => return Err(e),
        };
        Ok(self.apply_replies(approver, replies).await)
    }

    /// Audits a request refused because it could not be authenticated (a
    /// forged webhook secret, a bad signature, a missing or wrong operator
    /// token), within [`OpsConfig::refusal_audit_limit`]: past the limit,
    /// refusals are counted and one summary record is written when the window
    /// ends, so a flood cannot grow the audit log without bound.
    pub async fn audit_auth_refusal(&self, refusal: &AuthRefusal) {
        self.refusals.refuse(&self.deps.store, refusal).await;
    }

    /// Applies already-authenticated replies from `approver`'s channel
    /// (detached) and acknowledges each on that channel. Used by webhooks
    /// through [`OpsAgent::handle_inbound`] and by pollers directly.
    pub async fn apply_replies(
        self: &Arc<Self>,
        approver: &dyn Approver,
        replies: Vec<HumanReply>,
    ) -> Vec<Result<CommandOutcome>> {
        let mut results = Vec::with_capacity(replies.len());
        for reply in replies {
            let result = self.handle_command_detached(&reply).await;
            let answered = match &result {
                Ok(outcome) => approver.acknowledge(&reply, &outcome.message).await,
                Err(Error::Forbidden { detail }) => approver.refuse(&reply, detail).await,
                Err(e) => {
                    let text = format!("Could not apply the command: {e}");
                    approver.acknowledge(&reply, &text).await
                }
            };
            if let Err(e) = answered {
                warn!(channel = approver.channel(), error = %e, "acknowledgement failed");
            }
            results.push(result);
        }
        results
    }

    async fn record_approval(
        &self,
        id: IncidentId,
        approved: bool,
        actor: &Actor,
        effective: bool,
    ) -> Result<()> {
        self.deps
            .store
            .record_approval(&ApprovalRecord {
                incident_id: id,
                approved,
                actor: actor.clone(),
                effective,
                at: Utc::now(),
            })
            .await
    }

    async fn approve(
        &self,
        id: IncidentId,
        actor: &Actor,
        detach: Option<&Arc<OpsAgent>>,
    ) -> Result<CommandOutcome> {
        let incident = match self
            .deps
            .store
            .transition(
                id,
                &[IncidentStatus::Pending],
                IncidentStatus::Approved,
                None,
            )
            .await
        {
            Ok(i) => i,
            Err(Error::Conflict { .. }) => {
                let current = self.load(id).await?;
                self.record_approval(id, true, actor, false).await?;
                let message = if current.status == IncidentStatus::Blocked {
                    "Autonomy is stopped: nothing was executed. Resume autonomy, then approve again.".to_string()
                } else {
                    format!("Nothing to approve: the incident is {}.", current.status)
                };
                self.audit(
                    AuditRecord::agent(AuditStep::HumanCommand, message.clone())
                        .incident(id)
                        .by(actor.label()),
                )
                .await;
                return Ok(CommandOutcome {
                    effective: false,
                    message,
                    incident: Some(current),
                });
            }
            Err(e) => return Err(e),
        };
        self.record_approval(id, true, actor, true).await?;
        self.audit(
            AuditRecord::agent(AuditStep::HumanCommand, "approved")
                .incident(id)
                .by(actor.label()),
        )
        .await;
        info!(incident_id = %id, actor = %actor.label(), "approved");
        // The job before the claim: a replica that finds the incident
        // executing without a live job takes it for abandoned.
        let Some(held) = self.hold(incident.id).await? else {
            return Ok(CommandOutcome {
                effective: true,
                message: "Approved; the replica holding this incident executes it.".into(),
                incident: Some(self.load(id).await?),
            });
        };
        let after = match (self.claim(incident.id).await, detach) {
            (Ok(Claim::Claimed(claimed)), Some(agent)) => {
                let agent = agent.clone();
                let action = claimed
                    .decision
                    .as_ref()
                    .map(|d| d.recommended_action.describe())
                    .unwrap_or_default();
                tokio::spawn(async move {
                    let result = agent.run_claimed(claimed).await;
                    if let Err(e) = &result {
                        warn!(incident_id = %id, error = %e, "background execution failed");
                    }
                    held.conclude(&result).await;
                });
                return Ok(CommandOutcome {
                    effective: true,
                    message: format!("Approved; executing {action}. The result will follow."),
                    incident: self.deps.store.get_incident(id).await?,
                });
            }
            (Ok(Claim::Claimed(claimed)), None) => {
                let result = self.run_claimed(claimed).await;
                held.conclude(&result).await;
                result?
            }
            (Ok(Claim::Blocked(i) | Claim::NotClaimable(i)), _) => {
                held.finish().await;
                i
            }
            (Err(e), _) => return Err(e),
        };
        let message = match after.status {
            IncidentStatus::Blocked => {
                "Approved, but autonomy was stopped before execution: nothing ran.".into()
            }
            s => format!("Approved; the incident is now {s}."),
        };
        Ok(CommandOutcome {
            effective: true,
            message,
            incident: Some(after),
        })
    }

    async fn reject(
        &self,
        id: IncidentId,
        actor: &Actor,
        reason: Option<&str>,
    ) -> Result<CommandOutcome> {
        let from = [IncidentStatus::Pending, IncidentStatus::Blocked];
        match self
            .deps
            .store
            .transition(id, &from, IncidentStatus::Rejected, reason)
            .await
        {
            Ok(incident) => {
                self.record_approval(id, false, actor, true).await?;
                self.audit(
                    AuditRecord::agent(AuditStep::HumanCommand, "rejected")
                        .incident(id)
                        .by(actor.label())
                        .input(json!({ "reason": reason })),
                )
                .await;
                Ok(CommandOutcome {
                    effective: true,
                    message: "Rejected; nothing will be executed.".into(),
                    incident: Some(incident),
                })
            }
            Err(Error::Conflict { .. }) => {
                let current = self.load(id).await?;
                self.record_approval(id, false, actor, false).await?;
                Ok(CommandOutcome {
                    effective: false,
                    message: format!("Nothing to reject: the incident is {}.", current.status),
                    incident: Some(current),
                })
            }
            Err(e) => Err(e),
        }
    }
}
