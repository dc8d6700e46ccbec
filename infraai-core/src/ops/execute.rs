//! Execute: claiming an incident's action, running it, re-checking the
//! metric, and re-escalating what stays unresolved.

use super::{won, OpsAgent};
use crate::domain::*;
use crate::guardrails::{CostChange, DeploymentCost, Outcome};
use crate::store::update_setting;
use crate::traits::*;
use crate::{ActionId, Error, IncidentId, Result};
use chrono::{DateTime, Utc};
use serde_json::json;
use tracing::{info, warn};

impl OpsAgent {
    /// Claims and executes an `approved` or `auto` incident, then re-checks
    /// the metric. The store's claim makes this at-most-once and refuses it
    /// while the kill-switch is engaged.
    pub async fn execute(&self, id: IncidentId) -> Result<Incident> {
        self.with_job(id, self.execute_held(id)).await
    }

    /// [`Self::execute`] under a held job.
    pub(super) async fn execute_held(&self, id: IncidentId) -> Result<Incident> {
        match self.claim(id).await? {
            Claim::Claimed(i) => self.run_claimed(i).await,
            Claim::Blocked(i) | Claim::NotClaimable(i) => Ok(i),
        }
    }

    /// Claims an execution; audits a claim refused by the kill-switch.
    pub(super) async fn claim(&self, id: IncidentId) -> Result<Claim> {
        let claim = self.deps.store.claim_execution(id).await?;
        self.note_blocked(&claim).await;
        Ok(claim)
    }

    /// Audits a claim the kill-switch refused.
    pub(super) async fn note_blocked(&self, claim: &Claim) {
        if let Claim::Blocked(i) = claim {
            let blocked = "blocked by the kill-switch; nothing executed";
            self.audit(AuditRecord::agent(AuditStep::Action, blocked).incident(i.id))
                .await;
        }
    }

    /// Runs the action of an incident this caller has claimed, then re-checks.
    pub(super) async fn run_claimed(&self, incident: Incident) -> Result<Incident> {
        use IncidentStatus::{Executed, Executing, Unresolved};
        let (id, store) = (incident.id, &self.deps.store);
        let Some(decision) = &incident.decision else {
            let note = Some("no decision to execute");
            return store
                .transition(Transition::new(id, &[Executing], Unresolved).note(note))
                .await;
        };
        let action = decision.recommended_action.clone();
        let cost = self.cost_of(&incident).await;
        let (outcome, failure) = self.act(&incident, &action, cost.as_ref()).await?;
        if let Some(e) = failure {
            warn!(incident_id = %id, error = %e, "action failed");
            let note = format!("the action {} failed: {e}", action.describe());
            return self.escalate_unresolved(id, Executing, &note).await;
        }
        info!(incident_id = %id, action = %action.describe(), "action executed");
        self.observe(&incident, Outcome::Executed).await;
        self.record_new_size(&incident, &action).await;
        self.record_cost(&incident, cost.as_ref()).await;
        let summary = Some(outcome.summary.as_str());
        let incident = store
            .transition(Transition::new(id, &[Executing], Executed).note(summary))
            .await?;
        self.feedback(incident, outcome.finished_at).await
    }

    /// Executes `action` and records its outcome (stored and audited), with
    /// the handler's error when it failed.
    async fn act(
        &self,
        incident: &Incident,
        action: &Action,
        cost: Option<&CostChange>,
    ) -> Result<(ActionOutcome, Option<Error>)> {
        let request = ActionRequest::for_incident(incident, action.clone());
        let started_at = Utc::now();
        let result = self.deps.actions.execute(&request).await;
        let (summary, details, failure) = match result {
            Ok(report) => (report.summary, report.details, None),
            Err(e) => (format!("failed: {e}"), Default::default(), Some(e)),
        };
        let outcome = ActionOutcome {
            id: ActionId::new(),
            incident_id: incident.id,
            action: action.clone(),
            resource: incident.alert.resource.clone(),
            success: failure.is_none(),
            summary,
            details,
            started_at,
            finished_at: Utc::now(),
        };
        self.deps.store.record_action(&outcome).await?;
        self.audit(
            AuditRecord::agent(AuditStep::Action, outcome.summary.clone())
                .incident(incident.id)
                .by(format!("handler:{}", self.deps.actions.name()))
                .input(json!({ "action": action, "resource": outcome.resource, "cost": cost })),
        )
        .await;
        Ok((outcome, failure))
    }

    /// Keeps the machine type a scale-up, or the instance count a
    /// scale-out, left on the resource's deployment.
    async fn record_new_size(&self, incident: &Incident, action: &Action) {
        if !matches!(action, Action::ScaleUp { .. } | Action::ScaleOut { .. }) {
            return;
        }
        let Ok(Some(mut deployment)) = self.deployment_of(incident).await else {
            return;
        };
        let Some(r) = deployment.resource_mut(&incident.alert.resource) else {
            return;
        };
        match action {
            Action::ScaleUp { machine_type } => r.machine_type = Some(machine_type.clone()),
            Action::ScaleOut { instances } => r.count = *instances,
            _ => return,
        }
        deployment.updated_at = Utc::now();
        if let Err(e) = self.deps.store.put_deployment(&deployment).await {
            warn!(incident_id = %incident.id, error = %e, "could not record the resource's new size");
        }
    }

    /// Adds an executed action's cost change to its deployment's running
    /// sum ([`DeploymentCost`]).
    async fn record_cost(&self, incident: &Incident, cost: Option<&CostChange>) {
        let (Some(cost), Ok(Some(deployment))) = (cost, self.deployment_of(incident).await) else {
            return;
        };
        let key = DeploymentCost::key(deployment.deployment_id);
        let added = update_setting(
            self.deps.store.as_ref(),
            &key,
            |sum: &mut DeploymentCost| {
                sum.add(cost.monthly_usd);
            },
        );
        if let Err(e) = added.await {
            warn!(incident_id = %incident.id, error = %e, "could not add the action's cost to its deployment");
        }
    }

    /// Waits until the feedback delay after the action that finished at
    /// `acted_at`, re-reads the metric, and resolves or re-escalates an
    /// `executed` incident. Only the transition's winner audits and
    /// notifies, so a check taken over from a dead replica counts once.
    pub(super) async fn feedback(
        &self,
        incident: Incident,
        acted_at: DateTime<Utc>,
    ) -> Result<Incident> {
        let delay = chrono::Duration::from_std(self.config.feedback_delay);
        let due = acted_at + delay.unwrap_or(chrono::Duration::MAX);
        if let Ok(wait) = (due - Utc::now()).to_std() {
            tokio::time::sleep(wait).await;
        }
        let (to, note) = match self.recheck(&incident.alert).await {
            Ok(note) => (IncidentStatus::Resolved, note),
            Err(note) => (IncidentStatus::Unresolved, note),
        };
        let id = incident.id;
        let store = &self.deps.store;
        let change = store
            .transition(Transition::new(id, &[IncidentStatus::Executed], to).note(Some(&note)));
        // Already concluded: the alert cleared meanwhile and resolved it,
        // or another replica finished this check.
        let Some(incident) = won(change.await)? else {
            return self.load(id).await;
        };
        let outcome = format!("{to}: {note}");
        self.audit(AuditRecord::agent(AuditStep::Feedback, outcome).incident(id))
            .await;
        let approvals = store.list_approvals(id).await.unwrap_or_default();
        let approver = approvals.iter().find(|a| a.approved && a.effective);
        let counted = if to == IncidentStatus::Resolved {
            Outcome::Resolved {
                approved: approver.is_some(),
            }
        } else {
            Outcome::Unresolved
        };
        self.observe(&incident, counted).await;
        // The outcome line names who approved the action, as the audit does.
        let told = match approver {
            Some(a) => format!("{note} Approved by {}.", a.actor.described()),
            None => note,
        };
        if to == IncidentStatus::Resolved {
            self.notify(&incident, "Resolved", &told).await;
        } else {
            self.escalated(&incident, &told).await;
        }
        Ok(incident)
    }

    /// Re-reads the alert's metric: `Ok` with why it is back within its
    /// threshold, `Err` with why it is not (or cannot be judged).
    async fn recheck(&self, alert: &Alert) -> std::result::Result<String, String> {
        let profile = self.deps.registry.find(&alert.resource_type, &alert.metric);
        let comparison = profile.map_or(Comparison::GreaterThan, |p| p.comparison);
        let threshold = alert.threshold.or(profile.map(|p| p.threshold));
        let query = MetricQuery {
            resource: alert.resource.clone(),
            resource_type: alert.resource_type.clone(),
            metric: alert.metric.clone(),
            lookback_secs: self.config.feedback_lookback_secs,
        };
        let metric = &alert.metric;
        match (self.deps.metrics.current_value(&query).await, threshold) {
            (Ok(s), Some(t)) if !comparison.breached(s.value, t) => Ok(format!(
                "{metric} = {} is back within the threshold {t}",
                s.value
            )),
            (Ok(s), Some(t)) => Err(format!(
                "{metric} = {} still breaches the threshold {t} after the action",
                s.value
            )),
            (Ok(s), None) => Err(format!(
                "{metric} = {} but no threshold is known to judge it",
                s.value
            )),
            (Err(e), _) => Err(format!("could not re-read {metric}: {e}")),
        }
    }

    /// Moves an incident from `from` to `unresolved` and tells the humans;
    /// when another caller moved it first, returns it as it stands.
    pub(super) async fn escalate_unresolved(
        &self,
        id: IncidentId,
        from: IncidentStatus,
        note: &str,
    ) -> Result<Incident> {
        let store = &self.deps.store;
        let change = store
            .transition(Transition::new(id, &[from], IncidentStatus::Unresolved).note(Some(note)))
            .await;
        let Some(incident) = won(change)? else {
            return self.load(id).await;
        };
        if from == IncidentStatus::Executing {
            // The action failed, or its outcome is unknown: a failure of its pair.
            self.observe(&incident, Outcome::Unresolved).await;
        }
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
}
