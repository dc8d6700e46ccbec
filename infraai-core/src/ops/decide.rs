//! Decide: a `new` incident through the policy and the guardrails to its
//! route, and asking a human when the route says so.

use super::OpsAgent;
use crate::domain::*;
use crate::guardrails::{GuardrailInput, Route};
use crate::traits::*;
use crate::{Error, IncidentId, Result};
use chrono::Utc;
use serde_json::json;
use tracing::{info, warn};

impl OpsAgent {
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
    pub(super) async fn decide(&self, id: IncidentId) -> Result<Incident> {
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

    /// Sends the approval request with a dry-run preview. Delivery failures are
    /// audited, not fatal: the incident stays pending and visible on the
    /// dashboard.
    pub(super) async fn request_approval(&self, incident: &Incident) {
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
}
