//! The ops loop: alert → incident → decision → guardrails → execute or ask a
//! human → act → re-check the metric → resolved or re-escalated.
//!
//! Plain async code: each method does its whole step and returns. Callers
//! choose what to spawn (the server acknowledges a webhook after
//! [`OpsAgent::record_alert`] and processes the incident in a task).

use crate::approvers::ApproverAllowList;
use crate::domain::*;
use crate::guardrails::{GuardrailInput, Guardrails, Route};
use crate::jobs::{Held, JobKey};
use crate::profiles::MetricProfileRegistry;
use crate::refusals::{AuthRefusal, RefusalAuditLimit, RefusalAuditor, RequestOrigin};
use crate::traits::*;
use crate::{ActionId, Error, IncidentId, Result};
use chrono::{DateTime, Utc};
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

/// How long a channel's delivery ids are trusted to keep growing: Telegram
/// drops undelivered updates after 24 hours (so nothing older is redelivered)
/// and may restart `update_id` at random after a week without updates, so an
/// older id is taken for a redelivery only within this window of the last
/// applied kill-switch command; after it, a STOP is always applied.
pub const KILL_SWITCH_REDELIVERY_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// Most `new` incidents one [`OpsAgent::recover`] pass takes.
pub const RECOVER_BATCH: usize = 256;

/// How many incidents [`OpsAgent::recover`] works on at once.
pub const RECOVER_CONCURRENCY: usize = 4;

/// Settings of the ops loop.
#[derive(Clone, Debug)]
pub struct OpsConfig {
    /// How long to wait after an action before re-reading the metric (default 30 s).
    pub feedback_delay: Duration,
    /// How far back the metric re-check looks, in seconds (default 120).
    pub feedback_lookback_secs: u64,
    /// Who may approve, reject, stop or resume (default: every authenticated
    /// web operator; chat users only when listed).
    pub approvers: ApproverAllowList,
    /// How many refused unauthenticated requests are audited one by one per
    /// window before they are only counted (default 20 a minute).
    pub refusal_audit_limit: RefusalAuditLimit,
    /// This replica's id: the holder of its jobs, and in its audit records.
    /// Must differ between replicas sharing a store (default `agent-` and a
    /// random suffix).
    pub replica_id: String,
    /// How long a job's lease runs without renewal (default 30 s): a replica
    /// that dies leaves its work to the others after at most this long.
    pub lease: Duration,
}

impl Default for OpsConfig {
    fn default() -> Self {
        Self {
            feedback_delay: Duration::from_secs(30),
            feedback_lookback_secs: 120,
            approvers: ApproverAllowList::none().allow_all_authenticated("web"),
            refusal_audit_limit: RefusalAuditLimit::default(),
            replica_id: {
                let random = uuid::Uuid::now_v7().simple().to_string();
                format!("agent-{}", &random[random.len() - 12..])
            },
            lease: crate::jobs::DEFAULT_LEASE,
        }
    }
}

/// The adapters the ops loop drives.
#[derive(Clone)]
pub struct OpsDeps {
    /// The agent's memory.
    pub store: Arc<dyn MetadataStore>,
    /// Recommends decisions.
    pub policy: Arc<dyn DecisionPolicy>,
    /// Asks humans.
    pub approver: Arc<dyn Approver>,
    /// Executes actions.
    pub actions: Arc<dyn ActionHandler>,
    /// Reads metrics for the re-check.
    pub metrics: Arc<dyn MetricSource>,
    /// Profiles (comparison and threshold of a metric when the alert lacks them).
    pub registry: Arc<MetricProfileRegistry>,
}

/// What processing an alert did.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertHandled {
    /// What recording it did.
    pub outcome: IngestOutcome,
    /// The incident after processing, when there is one.
    pub incident: Option<Incident>,
}

/// What a human command did.
#[derive(Clone, Debug, PartialEq)]
pub struct CommandOutcome {
    /// Whether the command changed anything (`false` for duplicates, late or
    /// refused commands).
    pub effective: bool,
    /// One line for the human.
    pub message: String,
    /// The incident afterwards, for incident commands.
    pub incident: Option<Incident>,
}

/// Runs the ops loop. Share it behind an `Arc`.
pub struct OpsAgent {
    deps: OpsDeps,
    guardrails: Guardrails,
    config: OpsConfig,
    refusals: RefusalAuditor,
}

impl OpsAgent {
    /// An ops agent.
    pub fn new(deps: OpsDeps, guardrails: Guardrails, config: OpsConfig) -> Self {
        Self {
            deps,
            guardrails,
            refusals: RefusalAuditor::new(config.refusal_audit_limit),
            config,
        }
    }

    /// The guardrails.
    pub fn guardrails(&self) -> &Guardrails {
        &self.guardrails
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn MetadataStore> {
        &self.deps.store
    }

    /// This replica's id ([`OpsConfig::replica_id`]).
    pub fn replica_id(&self) -> &str {
        &self.config.replica_id
    }

    /// The lease of this replica's jobs ([`OpsConfig::lease`]).
    pub fn lease(&self) -> Duration {
        self.config.lease
    }

    /// Takes incident `id`'s job for this replica; `None` while another
    /// replica (or another task here) holds it.
    async fn hold(&self, id: IncidentId) -> Result<Option<Held>> {
        Held::take(
            &self.deps.store,
            &JobKey::Incident(id),
            &self.config.replica_id,
            self.config.lease,
        )
        .await
    }

    async fn audit(&self, record: AuditRecord) {
        let record = record.replica(self.config.replica_id.clone());
        if let Err(e) = self.deps.store.append_audit(&record).await {
            warn!(step = ?record.step, error = %e, "audit append failed");
        }
    }

    /// Validates and durably records an alert (dedup by fingerprint). When this
    /// returns `Ok`, the alert is committed and a webhook may be acknowledged.
    pub async fn record_alert(&self, alert: &Alert) -> Result<AlertIngest> {
        self.record_alerts(vec![alert.clone()])
            .await?
            .pop()
            .ok_or_else(|| {
                Error::backend(
                    self.deps.store.name(),
                    "record_alerts_audited",
                    false,
                    "the store answered a batch of one alert with no result",
                )
            })
    }

    /// Records alerts in order, each as [`Self::record_alert`] does, in one
    /// transaction where the store can ([`MetadataStore::record_alerts_audited`]):
    /// a webhook's alerts are then durable after one sync, not one each.
    pub async fn record_alerts(&self, alerts: Vec<Alert>) -> Result<Vec<AlertIngest>> {
        // The audit rides in the alert's own transaction where the store can.
        let batch = alerts
            .into_iter()
            .map(|alert| {
                let audit = AuditRecord::agent(AuditStep::AlertReceived, "received").replica(self.config.replica_id.clone()).input(json!({
                    "source": alert.source, "policy": alert.policy_name, "resource": alert.resource,
                    "metric": alert.metric, "value": alert.value, "threshold": alert.threshold,
                    "state": alert.state, "fingerprint": alert.fingerprint,
                }));
                (alert, audit)
            })
            .collect();
        self.deps.store.record_alerts_audited(batch).await
    }

    /// Records an alert and, for a new incident, processes it to the end.
    pub async fn handle_alert(&self, alert: &Alert) -> Result<AlertHandled> {
        let ingest = self.record_alert(alert).await?;
        let incident = match (ingest.outcome, ingest.incident) {
            (IngestOutcome::Opened, Some(i)) => Some(self.process(i.id).await?),
            (_, i) => i,
        };
        Ok(AlertHandled {
            outcome: ingest.outcome,
            incident,
        })
    }

    /// Decides a `new` incident and routes it: auto-execute (then re-check),
    /// ask a human, escalate, or ignore. Returns the incident afterwards.
    /// Holds the incident's job throughout; when another replica holds it,
    /// returns the incident as it stands.
    pub async fn process(&self, id: IncidentId) -> Result<Incident> {
        let Some(held) = self.hold(id).await? else {
            return self.load(id).await;
        };
        let result = self.decide(id).await;
        held.conclude(&result).await;
        result
    }

    /// [`Self::process`] under a held job.
    async fn decide(&self, id: IncidentId) -> Result<Incident> {
        let incident = self.load(id).await?;
        if incident.status != IncidentStatus::New {
            return Ok(incident);
        }
        let alert = incident.alert.clone();
        let deployment = match incident.deployment_id {
            Some(d) => self.deps.store.get_deployment(d).await?,
            None => {
                self.deps
                    .store
                    .find_deployment_by_resource(&alert.resource)
                    .await?
            }
        };
        let current = deployment
            .as_ref()
            .and_then(|d| d.resource(&alert.resource))
            .and_then(|r| r.machine_type.clone());
        let config = self.guardrails.config();
        let recent_incidents = self
            .deps
            .store
            .list_incidents(&IncidentQuery {
                resource: Some(alert.resource.clone()),
                limit: Some(6),
                ..Default::default()
            })
            .await?
            .into_iter()
            .filter(|i| i.id != id)
            .take(5)
            .collect();
        let context = DecisionContext {
            recent_incidents,
            incident: incident.clone(),
            next_machine_type: current.as_ref().and_then(|m| config.next_machine_type(m)),
            current_machine_type: current.clone(),
            deployment,
            allowed_actions: config.allowed_for(&alert.resource_type),
        };
        let decision = match self.deps.policy.decide(&context).await {
            Ok(d) => d,
            Err(e) => {
                warn!(incident_id = %id, error = %e, "decision policy failed; escalating");
                OpsDecision::escalate(
                    alert.severity,
                    format!("the decision policy failed ({e}); a human must decide"),
                )
            }
        };
        self.audit(
            AuditRecord::agent(AuditStep::Decision, decision.recommended_action.describe())
                .incident(id)
                .by(format!("policy:{}", self.deps.policy.name()))
                .input(json!({ "alert": { "policy": alert.policy_name, "metric": alert.metric, "value": alert.value },
                               "decision": decision }))
                .reasoning(decision.reasoning.clone(), Some(decision.confidence)),
        )
        .await;

        let since = Utc::now()
            - chrono::Duration::from_std(config.budget_window)
                .unwrap_or(chrono::Duration::hours(1));
        let recent = self
            .deps
            .store
            .count_actions_since(&alert.resource, since)
            .await?;
        let verdict = self.guardrails.evaluate(&GuardrailInput {
            decision: &decision,
            alert: &alert,
            current_machine_type: current.as_ref(),
            recent_actions: recent,
        });
        let engaged = self.deps.store.kill_switch().await?.engaged;
        let to = match verdict.route {
            Route::AutoExecute | Route::AskHuman if engaged => IncidentStatus::Blocked,
            Route::AutoExecute => IncidentStatus::Auto,
            Route::AskHuman => IncidentStatus::Pending,
            Route::Escalate => IncidentStatus::Escalated,
            Route::Ignore => IncidentStatus::Ignored,
        };
        let incident = match self
            .deps
            .store
            .record_decision(id, &verdict.decision, &verdict.notes, to)
            .await
        {
            Ok(i) => i,
            // Someone else decided it concurrently (e.g. a recovering replica): theirs stands.
            Err(Error::Conflict { .. }) => return self.load(id).await,
            Err(e) => return Err(e),
        };
        self.audit(
            AuditRecord::agent(
                AuditStep::Guardrails,
                format!("{:?} → {:?}", verdict.route, to).to_lowercase(),
            )
            .incident(id)
            .input(json!({ "notes": verdict.notes, "kill_switch_engaged": engaged }))
            .reasoning(
                verdict.decision.reasoning.clone(),
                Some(verdict.decision.confidence),
            ),
        )
        .await;
        info!(incident_id = %id, route = ?verdict.route, status = ?to, "incident decided");

        match to {
            IncidentStatus::Auto => self.execute_held(id).await,
            IncidentStatus::Pending => {
                self.request_approval(&incident).await;
                Ok(incident)
            }
            IncidentStatus::Escalated => {
                self.notify(
                    &incident,
                    "Escalated: a human should look",
                    &verdict.decision.reasoning,
                )
                .await;
                Ok(incident)
            }
            IncidentStatus::Blocked => {
                self.notify(&incident, "Autonomy is stopped", "A decision was made but nothing will run until autonomy is resumed; you will be asked then.").await;
                Ok(incident)
            }
            _ => Ok(incident),
        }
    }

    async fn load(&self, id: IncidentId) -> Result<Incident> {
        self.deps
            .store
            .get_incident(id)
            .await?
            .ok_or_else(|| Error::not_found(format!("incident {id}")))
    }

    fn action_request(incident: &Incident, action: Action) -> ActionRequest {
        ActionRequest {
            incident_id: incident.id,
            deployment_id: incident.deployment_id,
            resource: incident.alert.resource.clone(),
            resource_type: incident.alert.resource_type.clone(),
            action,
        }
    }

    /// Sends the approval request with a dry-run preview. Delivery failures are
    /// audited, not fatal: the incident stays pending and visible on the
    /// dashboard.
    async fn request_approval(&self, incident: &Incident) {
        let preview = match &incident.decision {
            Some(d) if d.recommended_action.is_executable() => {
                match self
                    .deps
                    .actions
                    .preview(&Self::action_request(
                        incident,
                        d.recommended_action.clone(),
                    ))
                    .await
                {
                    Ok(p) => Some(p),
                    Err(e) => {
                        warn!(incident_id = %incident.id, error = %e, "action preview failed");
                        None
                    }
                }
            }
            _ => None,
        };
        let outcome = match self
            .deps
            .approver
            .request_approval(&ApprovalRequest {
                incident: incident.clone(),
                preview: preview.clone(),
            })
            .await
        {
            Ok(()) => format!("sent via {}", self.deps.approver.channel()),
            Err(e) => {
                warn!(incident_id = %incident.id, error = %e, "approval request failed");
                format!("delivery via {} failed: {e}", self.deps.approver.channel())
            }
        };
        self.audit(
            AuditRecord::agent(AuditStep::ApprovalRequested, outcome)
                .incident(incident.id)
                .input(json!({ "preview": preview })),
        )
        .await;
    }

    async fn notify(&self, incident: &Incident, title: &str, body: &str) {
        let n = Notification {
            incident_id: Some(incident.id),
            title: title.to_string(),
            body: format!(
                "{body}\n\n{} on {}: {} = {}",
                incident.alert.policy_name,
                incident.alert.resource,
                incident.alert.metric,
                incident
                    .alert
                    .value
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| "?".into())
            ),
        };
        if let Err(e) = self.deps.approver.notify(&n).await {
            warn!(incident_id = %incident.id, error = %e, "notification failed");
        }
    }

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

    /// Claims and executes an `approved` or `auto` incident, then re-checks
    /// the metric. The store's claim makes this at-most-once and refuses it
    /// while the kill-switch is engaged.
    pub async fn execute(&self, id: IncidentId) -> Result<Incident> {
        let Some(held) = self.hold(id).await? else {
            return self.load(id).await;
        };
        let result = self.execute_held(id).await;
        held.conclude(&result).await;
        result
    }

    /// [`Self::execute`] under a held job.
    async fn execute_held(&self, id: IncidentId) -> Result<Incident> {
        match self.claim(id).await? {
            Claim::Claimed(i) => self.run_claimed(i).await,
            Claim::Blocked(i) | Claim::NotClaimable(i) => Ok(i),
        }
    }

    /// Claims an execution; audits a claim refused by the kill-switch.
    async fn claim(&self, id: IncidentId) -> Result<Claim> {
        let claim = self.deps.store.claim_execution(id).await?;
        if let Claim::Blocked(_) = claim {
            self.audit(
                AuditRecord::agent(
                    AuditStep::Action,
                    "blocked by the kill-switch; nothing executed",
                )
                .incident(id),
            )
            .await;
        }
        Ok(claim)
    }

    /// Runs the action of an incident this caller has claimed, then re-checks.
    async fn run_claimed(&self, incident: Incident) -> Result<Incident> {
        let id = incident.id;
        let Some(decision) = incident.decision.clone() else {
            return self
                .deps
                .store
                .transition(
                    id,
                    &[IncidentStatus::Executing],
                    IncidentStatus::Unresolved,
                    Some("no decision to execute"),
                )
                .await;
        };
        let action = decision.recommended_action;
        let request = Self::action_request(&incident, action.clone());
        let started_at = Utc::now();
        let result = self.deps.actions.execute(&request).await;
        let finished_at = Utc::now();
        let outcome = ActionOutcome {
            id: ActionId::new(),
            incident_id: id,
            action: action.clone(),
            resource: incident.alert.resource.clone(),
            success: result.is_ok(),
            summary: match &result {
                Ok(r) => r.summary.clone(),
                Err(e) => format!("failed: {e}"),
            },
            details: result
                .as_ref()
                .map(|r| r.details.clone())
                .unwrap_or_default(),
            started_at,
            finished_at,
        };
        self.deps.store.record_action(&outcome).await?;
        self.audit(
            AuditRecord::agent(AuditStep::Action, outcome.summary.clone())
                .incident(id)
                .by(format!("handler:{}", self.deps.actions.name()))
                .input(json!({ "action": action, "resource": outcome.resource })),
        )
        .await;
        if let Err(e) = result {
            warn!(incident_id = %id, error = %e, "action failed");
            let note = format!("the action {} failed: {e}", action.describe());
            return self
                .escalate_unresolved(id, IncidentStatus::Executing, &note)
                .await;
        }
        info!(incident_id = %id, action = %action.describe(), "action executed");
        if let Action::ScaleUp { machine_type } = &action {
            self.record_new_machine_type(&incident, machine_type).await;
        }
        let incident = self
            .deps
            .store
            .transition(
                id,
                &[IncidentStatus::Executing],
                IncidentStatus::Executed,
                Some(&outcome.summary),
            )
            .await?;
        self.feedback(incident, outcome.finished_at).await
    }

    async fn record_new_machine_type(&self, incident: &Incident, machine_type: &MachineType) {
        let found = match incident.deployment_id {
            Some(d) => self.deps.store.get_deployment(d).await,
            None => {
                self.deps
                    .store
                    .find_deployment_by_resource(&incident.alert.resource)
                    .await
            }
        };
        if let Ok(Some(mut deployment)) = found {
            if let Some(r) = deployment.resource_mut(&incident.alert.resource) {
                r.machine_type = Some(machine_type.clone());
                deployment.updated_at = Utc::now();
                if let Err(e) = self.deps.store.put_deployment(&deployment).await {
                    warn!(incident_id = %incident.id, error = %e, "could not record the new machine type");
                }
            }
        }
    }

    /// Waits until the feedback delay after the action that finished at
    /// `acted_at`, re-reads the metric, and resolves or re-escalates an
    /// `executed` incident. Only the transition's winner audits and
    /// notifies, so a check taken over from a dead replica counts once.
    async fn feedback(&self, incident: Incident, acted_at: DateTime<Utc>) -> Result<Incident> {
        let due = acted_at
            + chrono::Duration::from_std(self.config.feedback_delay)
                .unwrap_or(chrono::Duration::MAX);
        if let Ok(wait) = (due - Utc::now()).to_std() {
            tokio::time::sleep(wait).await;
        }
        let alert = &incident.alert;
        let profile = self.deps.registry.find(&alert.resource_type, &alert.metric);
        let comparison = profile
            .map(|p| p.comparison)
            .unwrap_or(Comparison::GreaterThan);
        let threshold = alert.threshold.or(profile.map(|p| p.threshold));
        let sample = self
            .deps
            .metrics
            .current_value(&MetricQuery {
                resource: alert.resource.clone(),
                resource_type: alert.resource_type.clone(),
                metric: alert.metric.clone(),
                lookback_secs: self.config.feedback_lookback_secs,
            })
            .await;
        let verdict = match (sample, threshold) {
            (Ok(s), Some(t)) if !comparison.breached(s.value, t) => Ok(format!(
                "{} = {} is back within the threshold {t}",
                alert.metric, s.value
            )),
            (Ok(s), Some(t)) => Err(format!(
                "{} = {} still breaches the threshold {t} after the action",
                alert.metric, s.value
            )),
            (Ok(s), None) => Err(format!(
                "{} = {} but no threshold is known to judge it",
                alert.metric, s.value
            )),
            (Err(e), _) => Err(format!("could not re-read {}: {e}", alert.metric)),
        };
        let (to, outcome) = match &verdict {
            Ok(note) => (IncidentStatus::Resolved, format!("resolved: {note}")),
            Err(note) => (IncidentStatus::Unresolved, format!("unresolved: {note}")),
        };
        let note = verdict.unwrap_or_else(|e| e);
        let id = incident.id;
        let incident = match self
            .deps
            .store
            .transition(id, &[IncidentStatus::Executed], to, Some(&note))
            .await
        {
            Ok(i) => i,
            // Already concluded: the alert cleared meanwhile and resolved it,
            // or another replica finished this check.
            Err(Error::Conflict { .. }) => return self.load(id).await,
            Err(e) => return Err(e),
        };
        self.audit(AuditRecord::agent(AuditStep::Feedback, outcome).incident(id))
            .await;
        if to == IncidentStatus::Resolved {
            self.notify(&incident, "Resolved", &note).await;
        } else {
            self.escalated(&incident, &note).await;
        }
        Ok(incident)
    }

    async fn escalate_unresolved(
        &self,
        id: IncidentId,
        from: IncidentStatus,
        note: &str,
    ) -> Result<Incident> {
        let incident = match self
            .deps
            .store
            .transition(id, &[from], IncidentStatus::Unresolved, Some(note))
            .await
        {
            Ok(i) => i,
            Err(Error::Conflict { .. }) => return self.load(id).await,
            Err(e) => return Err(e),
        };
        self.escalated(&incident, note).await;
        Ok(incident)
    }

    /// Tells the humans an incident is still unresolved, and audits it.
    async fn escalated(&self, incident: &Incident, note: &str) {
        let id = incident.id;
        self.notify(incident, "Still unresolved: a human is needed", note)
            .await;
        self.audit(
            AuditRecord::agent(AuditStep::Escalation, "re-escalated to a human")
                .incident(id)
                .reasoning(note, None),
        )
        .await;
        warn!(incident_id = %id, note, "incident re-escalated");
    }

    /// Expires incidents that have waited for approval longer than `max_wait`.
    /// Returns how many expired.
    pub async fn expire_pending(&self, max_wait: Duration) -> Result<usize> {
        let cutoff =
            Utc::now() - chrono::Duration::from_std(max_wait).unwrap_or(chrono::Duration::MAX);
        let pending = self
            .deps
            .store
            .list_incidents(&IncidentQuery {
                statuses: vec![IncidentStatus::Pending],
                ..Default::default()
            })
            .await?;
        let mut expired = 0;
        for i in pending.into_iter().filter(|i| i.updated_at < cutoff) {
            let note = format!("no answer within {}s", max_wait.as_secs());
            if self
                .deps
                .store
                .transition(
                    i.id,
                    &[IncidentStatus::Pending],
                    IncidentStatus::Expired,
                    Some(&note),
                )
                .await
                .is_ok()
            {
                expired += 1;
                self.audit(
                    AuditRecord::agent(AuditStep::Escalation, format!("expired: {note}"))
                        .incident(i.id),
                )
                .await;
            }
        }
        Ok(expired)
    }

    /// Picks up incidents no live replica is working on — interrupted by a
    /// restart or left by a replica that died before it took their job —
    /// and finishes each under its job ([`Self::advance`]), a few at a time.
    /// Returns how many it took. An incident another replica holds is left
    /// to it; a `new` incident younger than `grace` is left too (it is
    /// probably queued for a decision on a live replica), and at most
    /// [`RECOVER_BATCH`] `new` incidents are taken per call. With `decide`,
    /// `new` incidents go to that queue (whose workers call
    /// [`Self::process`]) instead of being decided here.
    pub async fn recover(
        self: &Arc<Self>,
        grace: Duration,
        decide: Option<&tokio::sync::mpsc::UnboundedSender<IncidentId>>,
    ) -> Result<usize> {
        use IncidentStatus::*;
        let store = &self.deps.store;
        let mut open = store
            .list_incidents(&IncidentQuery {
                statuses: vec![Approved, Auto, Executing, Executed],
                ..Default::default()
            })
            .await?;
        let cutoff =
            Utc::now() - chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::MAX);
        open.extend(
            store
                .list_incidents(&IncidentQuery {
                    statuses: vec![New],
                    limit: Some(RECOVER_BATCH),
                    ..Default::default()
                })
                .await?
                .into_iter()
                .filter(|i| i.created_at <= cutoff),
        );
        if let Some(queue) = decide {
            let (new, rest): (Vec<_>, Vec<_>) = open.into_iter().partition(|i| i.status == New);
            for i in &new {
                let _ = queue.send(i.id);
            }
            open = rest;
        }
        let permits = Arc::new(tokio::sync::Semaphore::new(RECOVER_CONCURRENCY));
        let mut tasks = tokio::task::JoinSet::new();
        for incident in open {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                break;
            };
            let Some(held) = self.hold(incident.id).await? else {
                continue;
            };
            let ops = self.clone();
            tasks.spawn(async move {
                let result = ops.advance(incident.id).await;
                held.conclude(&result).await;
                drop(permit);
            });
        }
        let n = tasks.len();
        while tasks.join_next().await.is_some() {}
        Ok(n)
    }

    /// Finishes what an incident's job left, for a caller holding the job:
    /// decides `new` incidents, executes `approved`/`auto` ones that were
    /// never claimed, re-checks `executed` ones (at the time the action's
    /// feedback was due), and escalates `executing` ones — their outcome is
    /// unknown, so they are never run again automatically.
    pub async fn advance(&self, id: IncidentId) -> Result<Incident> {
        use IncidentStatus::*;
        let incident = self.load(id).await?;
        match incident.status {
            New => self.decide(id).await,
            Approved | Auto => self.execute_held(id).await,
            Executed => {
                let acted_at = self
                    .deps
                    .store
                    .list_actions(id)
                    .await?
                    .last()
                    .map_or(incident.updated_at, |a| a.finished_at);
                self.feedback(incident, acted_at).await
            }
            Executing => {
                self.escalate_unresolved(
                    id,
                    Executing,
                    "the agent stopped while the action was running; its outcome is unknown",
                )
                .await
            }
            _ => Ok(incident),
        }
    }
}
