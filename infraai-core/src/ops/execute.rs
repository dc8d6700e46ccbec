//! Execute: claiming an incident's action, running it, re-checking the
//! metric, and re-escalating what stays unresolved.

use super::OpsAgent;
use crate::domain::*;
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
        let Some(held) = self.hold(id).await? else {
            return self.load(id).await;
        };
        let result = self.execute_held(id).await;
        held.conclude(&result).await;
        result
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
    pub(super) async fn run_claimed(&self, incident: Incident) -> Result<Incident> {
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
    pub(super) async fn feedback(
        &self,
        incident: Incident,
        acted_at: DateTime<Utc>,
    ) -> Result<Incident> {
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

    pub(super) async fn escalate_unresolved(
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
}
