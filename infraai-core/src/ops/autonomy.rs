//! Earned autonomy in the loop: every proposal's outcome counted for its
//! (action, resource type) pair, level changes audited, operator pins.

use super::OpsAgent;
use crate::domain::*;
use crate::guardrails::{AutonomyLevel, AutonomyRecord, GuardrailOverrides, LevelChange, Outcome};
use crate::store::{read_setting, read_settings, update_setting};
use crate::{DeploymentId, Error, IncidentId, Result};
use chrono::Utc;
use serde_json::json;
use tracing::{info, warn};

impl OpsAgent {
    /// The pair's record, when the store has one.
    pub(super) async fn autonomy_of(
        &self,
        action: &Action,
        resource_type: &str,
    ) -> Result<Option<AutonomyRecord>> {
        let key = AutonomyRecord::key(action.kind(), resource_type);
        read_setting(self.deps.store.as_ref(), &key).await
    }

    /// Counts `outcome` for the pair of the incident's action, and audits a
    /// promotion or demotion. A store failure is logged: the outcome is
    /// lost, not the incident's progress.
    pub(super) async fn observe(&self, incident: &Incident, outcome: Outcome) {
        let Some(decision) = &incident.decision else {
            return;
        };
        let action = &decision.recommended_action;
        if !action.is_executable() {
            return;
        }
        let (kind, resource_type) = (action.kind(), incident.alert.resource_type.clone());
        let config = &self.guardrails.config().earned_autonomy;
        let now = Utc::now();
        let key = AutonomyRecord::key(kind, &resource_type);
        let update = update_setting(self.deps.store.as_ref(), &key, |r: &mut AutonomyRecord| {
            r.action = Some(kind);
            r.resource_type.clone_from(&resource_type);
            r.observe(outcome, config, now)
        });
        match update.await {
            Ok((record, Some(change))) => {
                self.audit_level_change(&record, &change, Some(incident.id))
                    .await;
            }
            Ok(_) => {}
            Err(e) => {
                warn!(incident_id = %incident.id, error = %e, ?outcome, "could not count an autonomy outcome");
            }
        }
    }

    async fn audit_level_change(
        &self,
        record: &AutonomyRecord,
        change: &LevelChange,
        incident: Option<IncidentId>,
    ) {
        let pair = record.pair();
        let what = format!("{pair}: {} → {}", change.from.name(), change.to.name());
        info!(pair = %pair, from = change.from.name(), to = change.to.name(), reason = %change.reason, "autonomy level changed");
        let mut audit = AuditRecord::agent(AuditStep::Autonomy, what)
            .by(change.by.clone())
            .input(json!({ "record": record }))
            .reasoning(change.reason.clone(), None);
        if let Some(id) = incident {
            audit = audit.incident(id);
        }
        self.audit(audit).await;
    }

    /// Every pair's record, by action and resource type.
    pub async fn autonomy(&self) -> Result<Vec<AutonomyRecord>> {
        read_settings(self.deps.store.as_ref(), AutonomyRecord::KEY_PREFIX).await
    }

    /// An operator pins a pair to `level`, or unpins it (`None`); audited.
    /// [`Error::Invalid`] when the guardrails do not allow the action on the
    /// resource type at all.
    pub async fn pin_autonomy(
        &self,
        action: ActionKind,
        resource_type: &str,
        level: Option<AutonomyLevel>,
        actor: &str,
    ) -> Result<AutonomyRecord> {
        let allowed = self.guardrails.config().allowed_actions.get(resource_type);
        if !allowed.is_some_and(|a| a.contains(&action)) {
            return Err(Error::invalid(
                "autonomy pin",
                format!("{action:?} is not an allowed action on resource type {resource_type:?}"),
            ));
        }
        let config = &self.guardrails.config().earned_autonomy;
        let now = Utc::now();
        let key = AutonomyRecord::key(action, resource_type);
        let (record, change) =
            update_setting(self.deps.store.as_ref(), &key, |r: &mut AutonomyRecord| {
                r.action = Some(action);
                r.resource_type = resource_type.to_string();
                r.pin(level, actor, config, now)
            })
            .await?;
        self.audit_level_change(&record, &change, None).await;
        Ok(record)
    }

    /// A deployment's guardrail overrides (none set: the global settings).
    pub async fn deployment_guardrails(&self, id: DeploymentId) -> Result<GuardrailOverrides> {
        let key = GuardrailOverrides::key(id);
        let overrides = read_setting(self.deps.store.as_ref(), &key).await?;
        Ok(overrides.unwrap_or_default())
    }

    /// An operator sets a deployment's guardrail overrides (replacing the
    /// previous ones; all unset restores the global settings); audited.
    pub async fn set_deployment_guardrails(
        &self,
        id: DeploymentId,
        overrides: GuardrailOverrides,
        actor: &str,
    ) -> Result<GuardrailOverrides> {
        overrides
            .validate()
            .map_err(|why| Error::invalid("guardrail overrides", why))?;
        if self.deps.store.get_deployment(id).await?.is_none() {
            return Err(Error::not_found(format!("deployment {id}")));
        }
        let key = GuardrailOverrides::key(id);
        let value = serde_json::to_value(&overrides)
            .map_err(|e| Error::invalid("guardrail overrides", e.to_string()))?;
        update_setting(
            self.deps.store.as_ref(),
            &key,
            |v: &mut serde_json::Value| {
                *v = value.clone();
            },
        )
        .await?;
        let what = format!("deployment {id}: guardrail overrides set");
        self.audit(
            AuditRecord::agent(AuditStep::Autonomy, what)
                .by(actor.to_string())
                .input(json!({ "deployment_id": id, "overrides": overrides })),
        )
        .await;
        Ok(overrides)
    }
}
