//! A [`MetadataStore`] wrapper that counts the ops loop's decisions and
//! execution outcomes as they are committed.
//!
//! Decisions and executions happen on many paths (decision workers, approvals
//! over the API and the chat channels, whose actions run in background tasks
//! of the ops loop, the threshold watcher, recovery after a restart); every
//! one of them ends in a store write. Counting the successful writes counts
//! each outcome exactly once, only when it really happened, whichever path
//! produced it.

use crate::metrics::Metrics;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use infraai_core::*;
use std::sync::Arc;

/// Delegates everything to the inner store; counts successful
/// `record_decision` (decision by action and routed status), `transition`
/// into an execution outcome, and a `claim_execution` refused by the
/// kill-switch.
pub struct ObservedStore {
    inner: Arc<dyn MetadataStore>,
    metrics: Arc<Metrics>,
}

impl ObservedStore {
    /// Wraps `inner`, counting into `metrics`.
    pub fn new(inner: Arc<dyn MetadataStore>, metrics: Arc<Metrics>) -> Self {
        Self { inner, metrics }
    }
}

/// The snake-case name of an action kind (`scale_up`, `restart`, …).
pub fn action_name(kind: ActionKind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| "unknown".into())
}

/// The execution outcome a committed transition stands for, if any:
/// `executed` (the action ran), `failed` (the action failed, or a restart
/// interrupted it so its outcome is unknown), `resolved` / `unresolved` (the
/// metric re-check after the action).
pub fn execution_outcome(from: &[IncidentStatus], to: IncidentStatus) -> Option<&'static str> {
    use IncidentStatus::*;
    match (from, to) {
        ([Executing], Executed) => Some("executed"),
        ([Executing], Unresolved) => Some("failed"),
        ([Executed], Resolved) => Some("resolved"),
        ([Executed], Unresolved) => Some("unresolved"),
        _ => None,
    }
}

#[async_trait]
impl MetadataStore for ObservedStore {
    fn name(&self) -> &str {
        self.inner.name()
    }
    async fn put_run(&self, run: &Run) -> Result<()> {
        self.inner.put_run(run).await
    }
    async fn get_run(&self, id: RunId) -> Result<Option<Run>> {
        self.inner.get_run(id).await
    }
    async fn list_runs(&self, query: &RunQuery) -> Result<Vec<Run>> {
        self.inner.list_runs(query).await
    }
    async fn put_deployment(&self, deployment: &Deployment) -> Result<()> {
        self.inner.put_deployment(deployment).await
    }
    async fn get_deployment(&self, id: DeploymentId) -> Result<Option<Deployment>> {
        self.inner.get_deployment(id).await
    }
    async fn list_deployments(&self) -> Result<Vec<Deployment>> {
        self.inner.list_deployments().await
    }
    async fn find_deployment_by_resource(&self, resource: &str) -> Result<Option<Deployment>> {
        self.inner.find_deployment_by_resource(resource).await
    }
    async fn record_alert(&self, alert: &Alert) -> Result<AlertIngest> {
        self.inner.record_alert(alert).await
    }
    async fn get_incident(&self, id: IncidentId) -> Result<Option<Incident>> {
        self.inner.get_incident(id).await
    }
    async fn list_incidents(&self, query: &IncidentQuery) -> Result<Vec<Incident>> {
        self.inner.list_incidents(query).await
    }
    async fn incident_counts(&self) -> Result<IncidentCounts> {
        self.inner.incident_counts().await
    }
    async fn record_decision(
        &self,
        id: IncidentId,
        decision: &OpsDecision,
        guardrail_notes: &[String],
        to: IncidentStatus,
    ) -> Result<Incident> {
        let incident = self
            .inner
            .record_decision(id, decision, guardrail_notes, to)
            .await?;
        self.metrics.decision(
            &action_name(decision.recommended_action.kind()),
            &to.to_string(),
        );
        Ok(incident)
    }
    async fn transition(
        &self,
        id: IncidentId,
        from: &[IncidentStatus],
        to: IncidentStatus,
        note: Option<&str>,
    ) -> Result<Incident> {
        let incident = self.inner.transition(id, from, to, note).await?;
        if let Some(outcome) = execution_outcome(from, to) {
            self.metrics.execution(outcome);
        }
        Ok(incident)
    }
    async fn claim_execution(&self, id: IncidentId) -> Result<Claim> {
        let claim = self.inner.claim_execution(id).await?;
        if let Claim::Blocked(_) = claim {
            self.metrics.execution("blocked");
        }
        Ok(claim)
    }
    async fn get_cursor(&self, name: &str) -> Result<Option<i64>> {
        self.inner.get_cursor(name).await
    }
    async fn set_cursor(&self, name: &str, value: i64) -> Result<()> {
        self.inner.set_cursor(name, value).await
    }
    async fn record_approval(&self, approval: &ApprovalRecord) -> Result<()> {
        self.inner.record_approval(approval).await
    }
    async fn list_approvals(&self, id: IncidentId) -> Result<Vec<ApprovalRecord>> {
        self.inner.list_approvals(id).await
    }
    async fn record_action(&self, outcome: &ActionOutcome) -> Result<()> {
        self.inner.record_action(outcome).await
    }
    async fn list_actions(&self, id: IncidentId) -> Result<Vec<ActionOutcome>> {
        self.inner.list_actions(id).await
    }
    async fn count_actions_since(&self, resource: &str, since: DateTime<Utc>) -> Result<u64> {
        self.inner.count_actions_since(resource, since).await
    }
    async fn append_audit(&self, record: &AuditRecord) -> Result<()> {
        self.inner.append_audit(record).await
    }
    // Delegated explicitly: the inner store may record both in one transaction.
    async fn record_alerts_audited(
        &self,
        batch: Vec<(Alert, AuditRecord)>,
    ) -> Result<Vec<AlertIngest>> {
        self.inner.record_alerts_audited(batch).await
    }
    async fn list_audit(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>> {
        self.inner.list_audit(query).await
    }
    async fn claim_job(
        &self,
        key: &str,
        owner: &str,
        now: DateTime<Utc>,
        lease: std::time::Duration,
    ) -> Result<Option<Job>> {
        self.inner.claim_job(key, owner, now, lease).await
    }
    async fn claim_abandoned_jobs(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease: std::time::Duration,
        limit: usize,
    ) -> Result<Vec<Job>> {
        self.inner
            .claim_abandoned_jobs(owner, now, lease, limit)
            .await
    }
    async fn renew_job(
        &self,
        key: &str,
        owner: &str,
        now: DateTime<Utc>,
        lease: std::time::Duration,
    ) -> Result<bool> {
        self.inner.renew_job(key, owner, now, lease).await
    }
    async fn release_job(&self, key: &str, owner: &str, finished: bool) -> Result<bool> {
        self.inner.release_job(key, owner, finished).await
    }
    async fn kill_switch(&self) -> Result<KillSwitch> {
        self.inner.kill_switch().await
    }
    async fn set_kill_switch(
        &self,
        engaged: bool,
        actor: &str,
        reason: Option<&str>,
    ) -> Result<KillSwitchChange> {
        self.inner.set_kill_switch(engaged, actor, reason).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use infraai_core::testing::MemoryStore;

    #[test]
    fn only_execution_transitions_are_outcomes() {
        use IncidentStatus::*;
        assert_eq!(execution_outcome(&[Executing], Executed), Some("executed"));
        assert_eq!(execution_outcome(&[Executing], Unresolved), Some("failed"));
        assert_eq!(execution_outcome(&[Executed], Resolved), Some("resolved"));
        assert_eq!(
            execution_outcome(&[Executed], Unresolved),
            Some("unresolved")
        );
        assert_eq!(execution_outcome(&[Pending], Approved), None);
        assert_eq!(execution_outcome(&[Pending, Blocked], Rejected), None);
    }

    #[tokio::test]
    async fn passes_the_store_conformance_suite() {
        let metrics = Arc::new(Metrics::default());
        let store = ObservedStore::new(Arc::new(MemoryStore::new()), metrics.clone());
        infraai_core::testing::conformance::run_all(Arc::new(store)).await;
        // The suite decides and claims incidents: the counters saw it.
        let text = metrics.render(None, None);
        assert!(text.contains("infraai_decisions_total{action="), "{text}");
        // It also claims an incident while the kill-switch is engaged.
        assert!(
            text.contains("infraai_executions_total{outcome=\"blocked\"}"),
            "{text}"
        );
    }
}
