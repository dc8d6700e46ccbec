//! Decide: a `new` incident through the policy and the guardrails to its
//! route, and asking a human when the route says so.

use super::{won, OpsAgent};
use crate::domain::*;
use crate::guardrails::{
    ChangeWindow, DailySpend, GuardrailInput, GuardrailOverrides, Outcome, Route, SpendEntry,
    Standing, Verdict,
};
use crate::store::{read_setting, update_setting};
use crate::traits::*;
use crate::{IncidentId, Result};
use chrono::{DateTime, Utc};
use serde_json::json;
use tracing::{info, warn};

impl OpsAgent {
    /// Decides a `new` incident and routes it: auto-execute (then re-check),
    /// ask a human, escalate, or ignore. Returns the incident afterwards.
    /// Holds the incident's job throughout; when another replica holds it,
    /// returns the incident as it stands.
    pub async fn process(&self, id: IncidentId) -> Result<Incident> {
        self.with_job(id, self.decide(id)).await
    }

    /// [`Self::process`] under a held job: the policy recommends, the
    /// guardrails (and the kill-switch) route, the store records the
    /// decision, and the route is followed.
    pub(super) async fn decide(&self, id: IncidentId) -> Result<Incident> {
        let incident = self.load(id).await?;
        if incident.status != IncidentStatus::New {
            return Ok(incident);
        }
        let windows = self.windows().await?;
        if self.maintenance_hold(&incident, &windows).await?.is_some() {
            return Ok(incident);
        }
        let context = self.decision_context(incident).await?;
        let (decision, recommended) = self.recommend(&context).await;
        let (mut verdict, mut to, engaged) = self.judge(&context, &decision, windows).await?;
        if to == IncidentStatus::Auto {
            if let Some(why) = self.reserve_spend(&context, &decision).await? {
                (verdict.route, to) = (Route::AskHuman, IncidentStatus::Pending);
                verdict.notes.push(format!("cost_cap: {why}"));
            }
        }
        // Independent writes go together (one round of commits each): the
        // recommendation's audit with the decision; then the guardrails'
        // audit and the earned-autonomy count with following the route —
        // whose approval request is on its way meanwhile.
        let record = DecisionRecord::new(id, &verdict.decision, to).notes(&verdict.notes);
        let ((), recorded) = tokio::join!(
            self.audit(recommended),
            self.deps.store.record_decision(record)
        );
        // Someone else decided it concurrently (e.g. a recovering replica): theirs stands.
        let Some(incident) = won(recorded)? else {
            return self.load(id).await;
        };
        let route = format!("{:?} → {:?}", verdict.route, to).to_lowercase();
        let reasoning = verdict.decision.reasoning;
        let cost = self.cost_of(&incident).await;
        let routed = AuditRecord::agent(AuditStep::Guardrails, route)
            .incident(id)
            .input(json!({ "notes": verdict.notes, "kill_switch_engaged": engaged, "cost": cost }))
            .reasoning(reasoning.clone(), Some(verdict.decision.confidence));
        info!(incident_id = %id, route = ?verdict.route, status = ?to, "incident decided");
        let proposed = matches!(verdict.route, Route::AutoExecute | Route::AskHuman);
        let ((), (), followed) = tokio::join!(
            async {
                if proposed {
                    self.observe(&incident, Outcome::Proposed).await;
                }
            },
            self.audit(routed),
            self.follow(incident.clone(), to, &reasoning),
        );
        followed
    }

    /// What the policy is told: the incident, its deployment and machine
    /// type (and the next one up), the allowed actions, and up to five
    /// earlier incidents on the resource.
    pub(super) async fn decision_context(&self, incident: Incident) -> Result<DecisionContext> {
        let deployment = self.deployment_of(&incident).await?;
        let resource = &incident.alert.resource;
        let planned = deployment.as_ref().and_then(|d| d.resource(resource));
        let current = planned.and_then(|r| r.machine_type.clone());
        let current_count = planned.map(|r| r.count);
        let query = IncidentQuery {
            resource: Some(resource.clone()),
            limit: Some(6),
            ..Default::default()
        };
        let recent_incidents = (self.deps.store.list_incidents(&query).await?.into_iter())
            .filter(|i| i.id != incident.id)
            .take(5)
            .collect();
        let config = self.guardrails.config();
        Ok(DecisionContext {
            recent_incidents,
            next_machine_type: current.as_ref().and_then(|m| config.next_machine_type(m)),
            current_machine_type: current,
            next_instance_count: current_count.and_then(|n| config.next_instance_count(n)),
            current_count,
            deployment,
            allowed_actions: config.allowed_for(&incident.alert.resource_type),
            incident,
        })
    }

    /// The policy's recommendation (an escalation when the policy fails) and
    /// its audit record, for the caller to write.
    async fn recommend(&self, context: &DecisionContext) -> (OpsDecision, AuditRecord) {
        let (id, alert) = (context.incident.id, &context.incident.alert);
        let decision = match self.deps.policy.decide(context).await {
            Ok(d) => d,
            Err(e) => {
                warn!(incident_id = %id, error = %e, "decision policy failed; escalating");
                let why = format!("the decision policy failed ({e}); a human must decide");
                OpsDecision::escalate(alert.severity, why)
            }
        };
        let record =
            AuditRecord::agent(AuditStep::Decision, decision.recommended_action.describe())
                .incident(id)
                .by(format!("policy:{}", self.deps.policy.name()))
                .input(json!({ "alert": { "policy": alert.policy_name, "metric": alert.metric, "value": alert.value },
                               "decision": decision }))
                .reasoning(decision.reasoning.clone(), Some(decision.confidence));
        (decision, record)
    }

    /// The guardrails' verdict on `decision` (under its deployment's
    /// overrides, with the resource's actions in the budget window, the
    /// day's automatic spend, the pair's earned autonomy and the change
    /// `windows`), the status it routes to, and whether the kill-switch is
    /// engaged (which blocks what would run or ask).
    pub(super) async fn judge(
        &self,
        context: &DecisionContext,
        decision: &OpsDecision,
        windows: Vec<ChangeWindow>,
    ) -> Result<(Verdict, IncidentStatus, bool)> {
        let alert = &context.incident.alert;
        let mut standing = self.standing(alert, decision, windows).await?;
        let resource = (context.deployment.as_ref()).and_then(|d| d.resource(&alert.resource));
        standing.managed = resource.is_some();
        standing.stateful = resource.is_some_and(|r| r.kind.is_stateful());
        standing.failed_fixes = failed_fixes(&context.recent_incidents, standing.at);
        let overrides = match &context.deployment {
            Some(d) => self.deployment_guardrails(d.deployment_id).await?,
            None => GuardrailOverrides::default(),
        };
        let config = self.guardrails.config().with_overrides(&overrides);
        let input = GuardrailInput {
            decision,
            alert,
            current_machine_type: context.current_machine_type.as_ref(),
            current_count: context.current_count,
            standing: &standing,
        };
        let verdict = self.guardrails.evaluate_with(&input, &config);
        let engaged = self.deps.store.kill_switch().await?.engaged;
        let to = match verdict.route {
            Route::AutoExecute | Route::AskHuman if engaged => IncidentStatus::Blocked,
            Route::AutoExecute => IncidentStatus::Auto,
            Route::AskHuman => IncidentStatus::Pending,
            Route::Escalate => IncidentStatus::Escalated,
            Route::Ignore => IncidentStatus::Ignored,
        };
        Ok((verdict, to, engaged))
    }

    /// What the store knows that the rules weigh, as of now.
    async fn standing(
        &self,
        alert: &Alert,
        decision: &OpsDecision,
        windows: Vec<ChangeWindow>,
    ) -> Result<Standing> {
        let store = &self.deps.store;
        let now = Utc::now();
        let window = self.guardrails.config().budget_window;
        let since = now - chrono::Duration::from_std(window).unwrap_or(chrono::Duration::hours(1));
        let spend: Option<DailySpend> = read_setting(store.as_ref(), DailySpend::KEY).await?;
        let spend = spend.unwrap_or_default();
        let action = &decision.recommended_action;
        let autonomy = if action.is_executable() {
            self.autonomy_of(action, &alert.resource_type).await?
        } else {
            None
        };
        Ok(Standing {
            at: now,
            recent_actions: store.count_actions_since(&alert.resource, since).await?,
            spent_today_usd: spend.total(now),
            autonomy,
            windows,
            ..Standing::now()
        })
    }

    /// Reserves an automatic action's cost increase in the day's ledger,
    /// atomically (two replicas cannot both take the last room); `Some(why)`
    /// when the daily cap has no room left for it.
    async fn reserve_spend(
        &self,
        context: &DecisionContext,
        decision: &OpsDecision,
    ) -> Result<Option<String>> {
        let config = self.guardrails.config();
        let cost = config.cost_change(
            &decision.recommended_action,
            context.current_machine_type.as_ref(),
            context.current_count,
        );
        let Some(cost) = cost.filter(|c| c.monthly_usd > 0.0) else {
            return Ok(None);
        };
        let entry = SpendEntry {
            at: Utc::now(),
            monthly_usd: cost.monthly_usd,
            incident_id: Some(context.incident.id),
        };
        let cap = config.max_auto_daily_increase_usd;
        let (_, reserved) = update_setting(
            self.deps.store.as_ref(),
            DailySpend::KEY,
            |spend: &mut DailySpend| spend.reserve(entry.clone(), cap),
        )
        .await?;
        Ok((!reserved).then(|| {
            format!(
                "{} would take the automatic actions of the last 24 hours past the daily ${cap:.2}/month",
                cost.describe()
            )
        }))
    }

    /// Follows the route a decided incident took.
    pub(super) async fn follow(
        &self,
        incident: Incident,
        to: IncidentStatus,
        reasoning: &str,
    ) -> Result<Incident> {
        match to {
            IncidentStatus::Auto => return self.execute_held(incident.id).await,
            IncidentStatus::Pending => {
                self.request_approval(&incident).await;
            }
            IncidentStatus::Escalated => {
                self.notify(&incident, "Escalated: a human should look", reasoning)
                    .await;
            }
            IncidentStatus::Blocked => {
                self.notify(&incident, "Autonomy is stopped", "A decision was made but nothing will run until autonomy is resumed; you will be asked then.").await;
            }
            _ => {}
        }
        Ok(incident)
    }

    /// What the incident's action adds to the monthly bill, from the
    /// guardrails' price table and the resource's size in its deployment.
    pub async fn cost_of(&self, incident: &Incident) -> Option<crate::guardrails::CostChange> {
        let action = &incident.decision.as_ref()?.recommended_action;
        self.cost_of_action(incident, action).await
    }

    /// What `action` on the incident's resource would add to the monthly bill.
    pub async fn cost_of_action(
        &self,
        incident: &Incident,
        action: &Action,
    ) -> Option<crate::guardrails::CostChange> {
        let deployment = self.deployment_of(incident).await.ok().flatten();
        let resource = deployment
            .as_ref()
            .and_then(|d| d.resource(&incident.alert.resource));
        let current = resource.and_then(|r| r.machine_type.as_ref());
        let count = resource.map(|r| r.count);
        self.guardrails.config().cost_change(action, current, count)
    }

    /// Sends the approval request with a dry-run preview (`false` when a
    /// quiet window holds it for its digest instead). Delivery failures are
    /// audited, not fatal: the incident stays pending and visible on the
    /// dashboard.
    pub(super) async fn request_approval(&self, incident: &Incident) -> bool {
        if self.defer(incident, "Approval requested", "", true).await {
            let held = "held for the quiet window's digest; sent when it closes";
            self.audit(
                AuditRecord::agent(AuditStep::ApprovalRequested, held).incident(incident.id),
            )
            .await;
            return false;
        }
        let preview = match &incident.decision {
            Some(d) if d.recommended_action.is_executable() => {
                let request = ActionRequest::for_incident(incident, d.recommended_action.clone());
                self.deps
                    .actions
                    .preview(&request)
                    .await
                    .map_err(|e| {
                        warn!(incident_id = %incident.id, error = %e, "action preview failed");
                    })
                    .ok()
            }
            _ => None,
        };
        let outcome = match self
            .deps
            .notifier
            .request_approval(&ApprovalRequest {
                incident: incident.clone(),
                preview: preview.clone(),
                cost: self.cost_of(incident).await,
            })
            .await
        {
            Ok(()) => format!("sent via {}", self.deps.notifier.channel()),
            Err(e) => {
                warn!(incident_id = %incident.id, error = %e, "approval request failed");
                format!("delivery via {} failed: {e}", self.deps.notifier.channel())
            }
        };
        self.audit(
            AuditRecord::agent(AuditStep::ApprovalRequested, outcome)
                .incident(incident.id)
                .input(json!({ "preview": preview })),
        )
        .await;
        true
    }
}

/// How long an unresolved fix counts against doing the same again.
const FAILED_FIX_MEMORY: chrono::Duration = chrono::Duration::hours(24);

/// The kinds of action that ran in `recent` incidents (newest first) within
/// [`FAILED_FIX_MEMORY`] of `now` and left them unresolved, each with a line
/// on that incident.
fn failed_fixes(recent: &[Incident], now: DateTime<Utc>) -> Vec<(ActionKind, String)> {
    (recent.iter())
        .filter(|i| {
            i.status == IncidentStatus::Unresolved && now - i.updated_at <= FAILED_FIX_MEMORY
        })
        .filter_map(|i| {
            let d = i
                .decision
                .as_ref()
                .filter(|d| d.recommended_action.is_executable())?;
            let when = i.updated_at.format("%Y-%m-%d %H:%M UTC");
            let why = i.note.as_deref().unwrap_or("no note");
            Some((d.recommended_action.kind(), format!("{when}: {why}")))
        })
        .collect()
}
