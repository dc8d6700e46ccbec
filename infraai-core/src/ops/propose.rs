//! Proposals: an action for an incident suggested by someone other than the
//! decision policy — another agent over MCP, say. A proposal passes through
//! the same guardrails as the policy's decisions and then always waits for a
//! human's approval, whatever its confidence; with STOP AUTONOMY engaged it
//! is recorded but blocked.

use super::{won, OpsAgent};
use crate::domain::*;
use crate::guardrails::{Outcome, Route};
use crate::lifecycle::PROPOSABLE;
use crate::traits::DecisionContext;
use crate::{DecisionRecord, Error, IncidentId, Result};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tracing::{info, warn};

/// An action proposed for an incident.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Proposal {
    /// The incident.
    pub incident_id: IncidentId,
    /// The action (typed; the guardrails check its bounds).
    pub action: Action,
    /// Why, in the proposer's words (stored and shown as data).
    pub reasoning: String,
    /// How sure the proposer is (0–1; 0.5 when not given). It never lets a
    /// proposal run without a human.
    pub confidence: Option<f64>,
    /// Who proposes it (channel `mcp:<client name>` for an MCP client).
    pub proposer: Actor,
}

impl OpsAgent {
    /// Records `proposal` as the incident's decision and asks a human to
    /// approve it (or, with STOP AUTONOMY engaged, blocks it). Taken for
    /// incidents that are `new`, `escalated` or `unresolved`
    /// ([`Error::Conflict`] otherwise); [`Error::Forbidden`] (audited, nothing
    /// recorded) when the guardrails deny the action; [`Error::Invalid`] for
    /// `ignore` / `escalate`, which are not actions.
    pub async fn propose(&self, proposal: &Proposal) -> Result<Incident> {
        let id = proposal.incident_id;
        if !proposal.action.is_executable() {
            return Err(Error::invalid(
                "proposal",
                format!("{} is not an action to approve", proposal.action.describe()),
            ));
        }
        let incident = self.load(id).await?;
        if incident.status != IncidentStatus::New && !PROPOSABLE.contains(&incident.status) {
            return Err(Error::Conflict {
                what: format!("incident {id}"),
                detail: format!(
                    "is {:?}; proposals are taken for new, escalated or unresolved incidents",
                    incident.status
                ),
            });
        }
        let windows = self.windows().await?;
        if incident.status == IncidentStatus::New {
            if let Some(held) = self.maintenance_hold(&incident, &windows).await? {
                return Err(Error::conflict(format!("incident {id}"), held));
            }
        }
        let context = self.decision_context(incident).await?;
        let decision = Self::proposed_decision(&context, proposal);
        let (verdict, _, engaged) = self.judge(&context, &decision, windows).await?;
        let by = proposal.proposer.label();
        if verdict.route == Route::Escalate {
            // The rules that denied it (the others only asked for a human).
            let denials: Vec<&str> = (verdict.notes.iter())
                .filter(|n| n.contains("denied"))
                .map(String::as_str)
                .collect();
            let why = denials.join("; ");
            self.audit_proposal(id, &by, proposal, &format!("refused: {why}"))
                .await;
            warn!(incident_id = %id, proposer = %by, reason = %why, "proposal refused by the guardrails");
            return Err(Error::Forbidden {
                detail: format!(
                    "the guardrails refuse {}: {why}",
                    proposal.action.describe()
                ),
            });
        }
        // Whatever the route, a proposal waits for a human.
        let to = if engaged {
            IncidentStatus::Blocked
        } else {
            IncidentStatus::Pending
        };
        let record = DecisionRecord::proposal(id, &decision, to).notes(&verdict.notes);
        let Some(incident) = won(self.deps.store.record_decision(record).await)? else {
            let now = self.load(id).await?;
            return Err(Error::Conflict {
                what: format!("incident {id}"),
                detail: format!(
                    "changed while the proposal was checked (now {:?})",
                    now.status
                ),
            });
        };
        self.observe(&incident, Outcome::Proposed).await;
        self.audit_proposal(id, &by, proposal, &format!("{to:?}").to_lowercase())
            .await;
        info!(incident_id = %id, proposer = %by, status = ?to, "proposal recorded");
        self.follow(incident, to, &decision.reasoning).await
    }

    /// The decision a proposal stands for: the alert's severity, always
    /// asking for approval, the proposer named in the reasoning.
    fn proposed_decision(context: &DecisionContext, proposal: &Proposal) -> OpsDecision {
        let confidence = proposal.confidence.unwrap_or(0.5);
        OpsDecision {
            severity: context.incident.alert.severity,
            recommended_action: proposal.action.clone(),
            requires_approval: true,
            confidence: if confidence.is_finite() {
                confidence.clamp(0.0, 1.0)
            } else {
                0.5
            },
            reasoning: format!(
                "Proposed by {}: {}",
                proposal.proposer.label(),
                proposal.reasoning
            ),
            risk: Risk::Medium,
            precedent: None,
        }
    }

    async fn audit_proposal(&self, id: IncidentId, by: &str, proposal: &Proposal, outcome: &str) {
        self.audit(
            AuditRecord::agent(AuditStep::Decision, format!("proposal {outcome}"))
                .incident(id)
                .by(by.to_string())
                .input(json!({ "action": proposal.action, "confidence": proposal.confidence }))
                .reasoning(proposal.reasoning.clone(), proposal.confidence),
        )
        .await;
    }
}
