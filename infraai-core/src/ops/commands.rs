//! Human commands: approve, reject, STOP AUTONOMY and resume, from chat
//! and web deliveries, each acknowledged on its channel.

use super::{won, CommandOutcome, OpsAgent};
use crate::domain::*;
use crate::guardrails::Outcome;
use crate::jobs::Held;
use crate::refusals::AuthRefusal;
use crate::traits::*;
use crate::{Error, IncidentId, Result};
use chrono::Utc;
use serde_json::json;
use std::sync::Arc;
use tracing::{info, warn};

impl CommandOutcome {
    /// A command that changed something.
    pub(super) fn done(message: impl Into<String>, incident: Option<Incident>) -> Self {
        let message = message.into();
        Self {
            effective: true,
            message,
            incident,
        }
    }

    /// A duplicate, late or moot command: nothing changed.
    pub(super) fn noop(message: impl Into<String>, incident: Option<Incident>) -> Self {
        let message = message.into();
        Self {
            effective: false,
            message,
            incident,
        }
    }
}

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

    /// Audits a command and, from an allow-listed approver, applies it.
    async fn command(
        &self,
        reply: &HumanReply,
        detach: Option<&Arc<OpsAgent>>,
    ) -> Result<CommandOutcome> {
        let received = self.admit(reply).await?;
        match &reply.command {
            HumanCommand::Approve { incident_id } => {
                let actor = &reply.actor;
                self.approve(*incident_id, actor, detach, received).await
            }
            HumanCommand::Reject {
                incident_id,
                reason,
            } => {
                self.audit(received).await;
                self.reject(*incident_id, &reply.actor, reason.as_deref())
                    .await
            }
            HumanCommand::StopAutonomy { .. } | HumanCommand::Resume => {
                self.audit(received).await;
                self.kill_switch_command(reply, detach).await
            }
        }
    }

    /// The audit record of a received command, for the caller to append
    /// before anything the command changes is audited; [`Error::Forbidden`]
    /// (audited as refused) when its actor is not an allow-listed approver.
    async fn admit(&self, reply: &HumanReply) -> Result<AuditRecord> {
        let actor = reply.actor.label();
        let mut received = AuditRecord::agent(AuditStep::HumanCommand, "received")
            .by(actor.clone())
            .input(serde_json::to_value(&reply.command).unwrap_or_default());
        if let HumanCommand::Approve { incident_id } | HumanCommand::Reject { incident_id, .. } =
            &reply.command
        {
            received = received.incident(*incident_id);
        }
        if self.config.approvers.permits(&reply.actor) {
            return Ok(received);
        }
        warn!(actor = %actor, "command from an actor who is not an allow-listed approver refused");
        received.outcome = "refused: not an allow-listed approver".into();
        self.audit(received).await;
        Err(Error::Forbidden {
            detail: format!(
                "sorry, {} is not on the approver list for {}; nothing was done",
                reply.actor.name.as_deref().unwrap_or(&reply.actor.id),
                reply.actor.channel
            ),
        })
    }

    /// Authenticates and parses an inbound chat request with `channel`,
    /// applies each command (detached: actions run in the background), and
    /// acknowledges each one on its channel with the outcome or the refusal.
    /// [`Error::Unauthenticated`] (bad signature or secret) is returned before
    /// anything is parsed or applied, and audited ([`OpsAgent::audited`]).
    pub async fn handle_inbound(
        self: &Arc<Self>,
        channel: &dyn InboundChannel,
        request: &InboundRequest,
    ) -> Result<Vec<Result<CommandOutcome>>> {
        let parsed = channel.parse_inbound(request).await;
        let replies = self.audited(channel.channel(), request, parsed).await?;
        Ok(self.apply_replies(channel, replies).await)
    }

    /// `result` of authenticating `request` on `channel`, after auditing it
    /// ([`OpsAgent::audit_auth_refusal`], with the request's origin) when it
    /// is a refusal.
    pub async fn audited<T: Send>(
        &self,
        channel: &str,
        request: &InboundRequest,
        result: Result<T>,
    ) -> Result<T> {
        if let Err(Error::Unauthenticated { detail }) = &result {
            let refusal = AuthRefusal::from_origin(channel, detail.clone(), &request.origin);
            self.audit_auth_refusal(&refusal).await;
        }
        result
    }

    /// Audits a request refused because it could not be authenticated (a
    /// forged webhook secret, a bad signature, a missing or wrong operator
    /// token), within
    /// [`OpsConfig::refusal_audit_limit`](super::OpsConfig::refusal_audit_limit):
    /// past the limit, refusals are counted and one summary record is written
    /// when the window ends, so a flood cannot grow the audit log without bound.
    pub async fn audit_auth_refusal(&self, refusal: &AuthRefusal) {
        self.refusals.refuse(self.deps.store.clone(), refusal).await;
    }

    /// Applies already-authenticated replies from `channel`
    /// (detached) and acknowledges each on that channel. Used by webhooks
    /// through [`OpsAgent::handle_inbound`] and by pollers directly.
    pub async fn apply_replies(
        self: &Arc<Self>,
        channel: &dyn InboundChannel,
        replies: Vec<HumanReply>,
    ) -> Vec<Result<CommandOutcome>> {
        let mut results = Vec::with_capacity(replies.len());
        for reply in replies {
            let result = self.handle_command_detached(&reply).await;
            let answered = match &result {
                Ok(outcome) => channel.acknowledge(&reply, &outcome.message).await,
                Err(Error::Forbidden { detail }) => channel.refuse(&reply, detail).await,
                Err(e) => {
                    let text = format!("Could not apply the command: {e}");
                    channel.acknowledge(&reply, &text).await
                }
            };
            if let Err(e) = answered {
                warn!(channel = channel.channel(), error = %e, "acknowledgement failed");
            }
            results.push(result);
        }
        results
    }

    /// Records a human's approval (`approved`) or rejection that did not
    /// take effect (one that did is recorded with its move).
    async fn record_ineffective(
        &self,
        id: IncidentId,
        approved: bool,
        actor: &Actor,
    ) -> Result<()> {
        let record = approval(id, approved, actor, false);
        self.deps.store.record_approval(&record).await
    }

    /// Approves a `pending` incident and executes it (in the background when
    /// detached). Executes at most once: a late or repeated approval changes
    /// nothing.
    async fn approve(
        &self,
        id: IncidentId,
        actor: &Actor,
        detach: Option<&Arc<OpsAgent>>,
        received: AuditRecord,
    ) -> Result<CommandOutcome> {
        use IncidentStatus::{Approved, Pending};
        // The incident's job is taken while the kill-switch is read and the
        // command's receipt is audited, before the claim: a replica that
        // finds the incident executing without a live job takes it for
        // abandoned. While stopped the approval is refused and the incident
        // stays pending (it can be approved after RESUME); one that races
        // STOP is approved, then blocked by the claim, and asked again after
        // RESUME.
        let (switch, held, ()) = tokio::join!(
            self.deps.store.kill_switch(),
            self.hold(id),
            self.audit(received)
        );
        let (held, stopped) = (held?, switch.map(|s| s.engaged));
        if !matches!(stopped, Ok(false)) {
            if let Some(held) = held {
                held.release().await;
            }
            stopped?;
            return self.approve_late(id, actor, true).await;
        }
        // The approval is recorded with the move, never one without the
        // other; with the job held, the claim is made in the same store call
        // (one commit where the store can). A losing approver gives the job
        // back at once.
        let record = approval(id, true, actor, true);
        let move_ = Transition::new(id, &[Pending], Approved).approval(&record);
        let claimed = match held {
            Some(held) => match won(self.deps.store.transition_and_claim(move_).await) {
                Ok(Some(claim)) => Some((claim, held)),
                lost => {
                    held.release().await;
                    lost?;
                    return self.approve_late(id, actor, false).await;
                }
            },
            None => {
                if won(self.deps.store.transition(move_).await)?.is_none() {
                    return self.approve_late(id, actor, false).await;
                }
                match self.hold_again(id).await? {
                    Some(held) => Some((self.deps.store.claim_execution(id).await?, held)),
                    None => None,
                }
            }
        };
        info!(incident_id = %id, actor = %actor.label(), "approved");
        self.approved(id, claimed, actor, detach).await
    }

    /// After an effective approval: its records, then the claimed action run
    /// here or in the background (`detach`), or nothing when autonomy
    /// stopped in between or another replica holds the incident's job.
    async fn approved(
        &self,
        id: IncidentId,
        claimed: Option<(Claim, Held)>,
        actor: &Actor,
        detach: Option<&Arc<OpsAgent>>,
    ) -> Result<CommandOutcome> {
        let Some((claim, held)) = claimed else {
            let incident = self.load(id).await?;
            self.noted(&incident, actor, detach).await;
            let message = "Approved; the replica holding this incident executes it.";
            return Ok(CommandOutcome::done(message, Some(incident)));
        };
        self.noted(claim.incident(), actor, detach).await;
        self.note_blocked(&claim).await;
        let after = match (claim, detach) {
            (Claim::Claimed(claimed), Some(agent)) => {
                return self.run_detached(agent, claimed, held).await;
            }
            (Claim::Claimed(claimed), None) => {
                let result = self.run_claimed(claimed).await;
                held.conclude(&result).await;
                result?
            }
            (Claim::Blocked(i) | Claim::NotClaimable(i), _) => {
                held.finish().await;
                i
            }
        };
        let message = match after.status {
            IncidentStatus::Blocked => {
                "Approved, but autonomy was stopped before execution: nothing ran.".into()
            }
            s => format!("Approved; the incident is now {s}."),
        };
        Ok(CommandOutcome::done(message, Some(after)))
    }

    /// What an effective approval leaves besides the move: its audit record
    /// and the earned-autonomy count. Every update of an action's count
    /// takes its turn (executions count on it too), so a detached approval
    /// counts in the background instead of waiting in line.
    async fn noted(&self, incident: &Incident, actor: &Actor, detach: Option<&Arc<OpsAgent>>) {
        let counted = async {
            match detach {
                Some(agent) => {
                    let (agent, incident) = (agent.clone(), incident.clone());
                    tokio::spawn(async move { agent.observe(&incident, Outcome::Approved).await });
                }
                None => self.observe(incident, Outcome::Approved).await,
            }
        };
        let approved = AuditRecord::agent(AuditStep::HumanCommand, "approved");
        let audited = self.audit(approved.incident(incident.id).by(actor.label()));
        tokio::join!(counted, audited);
    }

    /// The job of an incident just approved, which a losing approver may
    /// hold for a moment (it gives it back at once): a few tries, 20 ms
    /// apart; `None` when another replica really holds it.
    async fn hold_again(&self, id: IncidentId) -> Result<Option<Held>> {
        for _ in 0..3 {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            if let Some(held) = self.hold(id).await? {
                return Ok(Some(held));
            }
        }
        Ok(None)
    }

    /// An approval of an incident that is no longer `pending`, or given while
    /// autonomy is `stopped`: recorded as not effective, audited, and
    /// answered with why.
    async fn approve_late(
        &self,
        id: IncidentId,
        actor: &Actor,
        stopped: bool,
    ) -> Result<CommandOutcome> {
        let current = self.load(id).await?;
        self.record_ineffective(id, true, actor).await?;
        let message = if stopped || current.status == IncidentStatus::Blocked {
            "Autonomy is stopped: nothing was executed. Resume autonomy, then approve again."
                .to_string()
        } else {
            format!("Nothing to approve: the incident is {}.", current.status)
        };
        let record = AuditRecord::agent(AuditStep::HumanCommand, message.clone());
        self.audit(record.incident(id).by(actor.label())).await;
        Ok(CommandOutcome::noop(message, Some(current)))
    }

    /// Runs a claimed incident's action in a background task that concludes
    /// its job, and answers at once.
    async fn run_detached(
        &self,
        agent: &Arc<OpsAgent>,
        claimed: Incident,
        held: Held,
    ) -> Result<CommandOutcome> {
        let (id, agent) = (claimed.id, agent.clone());
        let action = claimed
            .decision
            .as_ref()
            .map(|d| d.recommended_action.describe())
            .unwrap_or_default();
        // Answered with the incident as claimed (`executing`): the result
        // follows on the incident, not in this answer.
        let answer = claimed.clone();
        tokio::spawn(async move {
            let result = agent.run_claimed(claimed).await;
            if let Err(e) = &result {
                warn!(incident_id = %id, error = %e, "background execution failed");
            }
            held.conclude(&result).await;
        });
        let message = format!("Approved; executing {action}. The result will follow.");
        Ok(CommandOutcome::done(message, Some(answer)))
    }

    /// Rejects a `pending` or `blocked` incident; a late rejection changes nothing.
    async fn reject(
        &self,
        id: IncidentId,
        actor: &Actor,
        reason: Option<&str>,
    ) -> Result<CommandOutcome> {
        let from = [IncidentStatus::Pending, IncidentStatus::Blocked];
        let record = approval(id, false, actor, true);
        let move_ = Transition::new(id, &from, IncidentStatus::Rejected)
            .note(reason)
            .approval(&record);
        let Some(incident) = won(self.deps.store.transition(move_).await)? else {
            let current = self.load(id).await?;
            self.record_ineffective(id, false, actor).await?;
            let message = format!("Nothing to reject: the incident is {}.", current.status);
            return Ok(CommandOutcome::noop(message, Some(current)));
        };
        let rejected = AuditRecord::agent(AuditStep::HumanCommand, "rejected")
            .incident(id)
            .by(actor.label())
            .input(json!({ "reason": reason }));
        tokio::join!(
            self.observe(&incident, Outcome::Rejected),
            self.audit(rejected),
        );
        let message = "Rejected; nothing will be executed.";
        Ok(CommandOutcome::done(message, Some(incident)))
    }
}

/// A human's approval (`approved`) or rejection of incident `id`, now.
fn approval(id: IncidentId, approved: bool, actor: &Actor, effective: bool) -> ApprovalRecord {
    ApprovalRecord {
        incident_id: id,
        approved,
        actor: actor.clone(),
        effective,
        at: Utc::now(),
    }
}
