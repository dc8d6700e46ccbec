//! In-memory adapters, scripted fakes and the conformance suites, for tests
//! of this crate and of downstream crates (enable the `testing` feature).

pub mod conformance;
mod fakes;
pub mod llm;
mod memory_store;
mod simulated;
mod terraform;

pub use fakes::*;
pub use memory_store::MemoryStore;
pub use simulated::*;
pub use terraform::*;

use crate::domain::{
    Alert, AlertState, Deployment, MachineType, PlannedResource, ResourceKind, ResourceName,
    Severity,
};
use crate::{DeploymentId, RunId};
use std::collections::BTreeMap;

/// A deployment holding one GCE instance `resource` of `machine_type`, so the
/// ops loop knows where it stands on the machine ladder.
pub fn deployment_with(resource: &str, machine_type: &str) -> Deployment {
    let now = chrono::Utc::now();
    let name = ResourceName::new(resource).expect("test resource names are valid");
    Deployment {
        deployment_id: DeploymentId::new(),
        cloud: "memory".into(),
        services: vec![resource.into()],
        region: "us-central1".into(),
        terraform_state: String::new(),
        alert_webhook: None,
        resource_map: BTreeMap::from([(resource.to_string(), RunId::new())]),
        resources: vec![PlannedResource {
            name,
            kind: ResourceKind::Compute,
            resource_type: Some(GCE_INSTANCE.into()),
            machine_type: Some(MachineType::new(machine_type).expect("valid machine type")),
            count: 1,
            depends_on: vec![],
            description: String::new(),
        }],
        monitoring: vec![],
        outputs: BTreeMap::new(),
        created_at: now,
        updated_at: now,
    }
}

/// A GCE CPU alert for `web-1` with a given fingerprint, state and value
/// (threshold 0.8, warning severity).
pub fn alert(fingerprint: &str, state: AlertState, value: f64) -> Alert {
    Alert {
        source: "test".into(),
        fingerprint: fingerprint.into(),
        policy_name: "High CPU".into(),
        resource: "web-1".into(),
        resource_type: GCE_INSTANCE.into(),
        cloud: "gcp".into(),
        metric: "compute.googleapis.com/instance/cpu/utilization".into(),
        value: Some(value),
        threshold: Some(0.8),
        severity: Severity::Warning,
        state,
        started_at: chrono::Utc::now(),
        labels: BTreeMap::new(),
        raw: serde_json::Value::Null,
    }
}

/// `alerts`, each with an `alert_received` audit template of its own, for
/// [`crate::IncidentStore::record_alerts`].
pub fn received(alerts: impl IntoIterator<Item = Alert>) -> Vec<crate::AlertRecord> {
    alerts
        .into_iter()
        .map(|alert| crate::AlertRecord {
            alert,
            audit: Some(crate::AuditRecord::agent(
                crate::AuditStep::AlertReceived,
                "received",
            )),
        })
        .collect()
}

/// Log output captured in memory: a `tracing_subscriber` writer
/// (`.with_writer(move || logs.clone())`) whose clones share one buffer.
#[derive(Clone, Default)]
pub struct CapturedLogs(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl CapturedLogs {
    /// What was written so far.
    pub fn text(&self) -> String {
        let bytes = self.0.lock().unwrap_or_else(|p| p.into_inner());
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl std::io::Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// An ops agent assembled for channel tests: the in-memory store holding a
/// deployment of `web-1` (`e2-medium`), the rule policy, recording actions,
/// metrics that read 0.2 after an action, a 5 ms re-check delay, and the
/// given approver and allow-list.
pub struct TestOps {
    /// The agent.
    pub agent: std::sync::Arc<crate::OpsAgent>,
    /// Its store.
    pub store: std::sync::Arc<MemoryStore>,
    /// Its action handler.
    pub actions: std::sync::Arc<RecordingActions>,
}

impl TestOps {
    /// Assembles the agent.
    pub async fn new(
        notifier: std::sync::Arc<dyn crate::Notifier>,
        approvers: crate::ApproverAllowList,
    ) -> Self {
        Self::with(notifier, approvers, guardrails(), vec![0.2]).await
    }

    /// Assembles the agent with these guardrails, and a metric that reads
    /// `metric_after` in order (the last repeats) after each action.
    pub async fn with(
        notifier: std::sync::Arc<dyn crate::Notifier>,
        approvers: crate::ApproverAllowList,
        guardrails: crate::GuardrailConfig,
        metric_after: Vec<f64>,
    ) -> Self {
        use crate::RunStore;
        use std::sync::Arc;
        let store = Arc::new(MemoryStore::new());
        store
            .put_deployment(&deployment_with("web-1", "e2-medium"))
            .await
            .expect("the in-memory store accepts a deployment");
        let actions = Arc::new(RecordingActions::default());
        let agent = Arc::new(crate::OpsAgent::new(
            crate::OpsDeps {
                store: store.clone(),
                policy: Arc::new(crate::rules::RulePolicy),
                notifier,
                actions: actions.clone(),
                metrics: Arc::new(ScriptedMetrics::new(metric_after)),
                registry: Arc::new(profiles()),
            },
            crate::Guardrails::new(guardrails),
            crate::OpsConfig {
                feedback_delay: std::time::Duration::from_millis(5),
                approvers,
                ..crate::OpsConfig::default()
            },
        ));
        Self {
            agent,
            store,
            actions,
        }
    }

    /// A critical CPU alert on `web-1` → a pending incident (scale-up proposed).
    pub async fn pending_incident(&self, fingerprint: &str) -> crate::Incident {
        let mut a = alert(fingerprint, AlertState::Firing, 0.97);
        a.severity = Severity::Critical;
        let incident = self
            .agent
            .handle_alert(&a)
            .await
            .expect("alert handled")
            .incident
            .expect("an incident");
        assert_eq!(incident.status, crate::IncidentStatus::Pending);
        incident
    }

    /// Waits (up to 2 s) until `n` actions ran, then a little longer so a
    /// wrong extra execution would show.
    pub async fn settle_actions(&self, n: usize) {
        for _ in 0..400 {
            if self.actions.executed().len() >= n {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn memory_store_passes_the_conformance_suite() {
        conformance::run_all(Arc::new(MemoryStore::new())).await;
    }

    mod each_scenario {
        use super::*;
        crate::conformance_tests!((
            (),
            Arc::new(MemoryStore::new()) as Arc<dyn crate::MetadataStore>
        ));
    }
}
