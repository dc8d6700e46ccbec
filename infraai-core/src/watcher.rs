//! A threshold watcher: evaluates a deployment's monitoring policies against
//! a [`MetricSource`] and turns sustained breaches into alerts, with the
//! semantics of a Cloud Monitoring threshold condition — the condition must
//! hold for the policy's whole duration before the alert fires (once), and the
//! alert resolves (once) when the condition clears.
//!
//! Any cloud whose own monitoring cannot call the ops webhook (the local
//! cloud, a lab) can use it; clouds with native alerting (GCP, Alertmanager)
//! deliver alerts by webhook instead.

use crate::domain::{Alert, AlertState, Deployment, MonitoringPolicy};
use crate::ops::OpsAgent;
use crate::traits::{IngestOutcome, MetadataStore, MetricQuery, MetricSource};
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tracing::{debug, info, warn};

#[derive(Clone, Debug, Default)]
struct ConditionState {
    breach_since: Option<DateTime<Utc>>,
    firing: bool,
}

/// Evaluates monitoring policies and emits firing/resolved alerts.
pub struct ThresholdWatcher {
    metrics: Arc<dyn MetricSource>,
    states: HashMap<String, ConditionState>,
}

impl ThresholdWatcher {
    /// A watcher reading from `metrics`.
    pub fn new(metrics: Arc<dyn MetricSource>) -> Self {
        Self {
            metrics,
            states: HashMap::new(),
        }
    }

    fn fingerprint(deployment: &Deployment, policy: &MonitoringPolicy) -> String {
        format!(
            "watch:{}:{}:{}",
            deployment.deployment_id, policy.resource_ref, policy.metric_name
        )
    }

    /// Evaluates every policy of `deployment` once, as of `now`, and returns
    /// the alerts to deliver. A metric that cannot be read changes nothing
    /// (missing data is not a recovery).
    pub async fn evaluate(&mut self, deployment: &Deployment, now: DateTime<Utc>) -> Vec<Alert> {
        let mut alerts = Vec::new();
        for policy in &deployment.monitoring {
            let query = MetricQuery {
                resource: policy.resource_ref.to_string(),
                resource_type: policy.resource_type.clone(),
                metric: policy.metric_path.clone(),
                lookback_secs: policy.duration_secs.max(10),
            };
            let value = match self.metrics.current_value(&query).await {
                Ok(sample) => sample.value,
                Err(e) => {
                    debug!(resource = %policy.resource_ref, metric = %policy.metric_path, error = %e, "no metric value");
                    continue;
                }
            };
            let key = Self::fingerprint(deployment, policy);
            let state = self.states.entry(key.clone()).or_default();
            let breached = policy.comparison.breached(value, policy.threshold);
            let alert = |state_now: AlertState, started: DateTime<Utc>| Alert {
                source: "watcher".into(),
                fingerprint: key.clone(),
                policy_name: format!("{} on {}", policy.metric_name, policy.resource_ref),
                resource: policy.resource_ref.to_string(),
                resource_type: policy.resource_type.clone(),
                cloud: deployment.cloud.clone(),
                metric: policy.metric_path.clone(),
                value: Some(value),
                threshold: Some(policy.threshold),
                severity: policy.severity,
                state: state_now,
                started_at: started,
                labels: BTreeMap::from([
                    (
                        "deployment_id".to_string(),
                        deployment.deployment_id.to_string(),
                    ),
                    ("metric_name".to_string(), policy.metric_name.clone()),
                ]),
                raw: serde_json::Value::Null,
            };
            if breached {
                let since = *state.breach_since.get_or_insert(now);
                let held = (now - since).to_std().unwrap_or_default();
                if !state.firing && held >= Duration::from_secs(policy.duration_secs) {
                    state.firing = true;
                    info!(fingerprint = %key, value, threshold = policy.threshold, "threshold condition met");
                    alerts.push(alert(AlertState::Firing, since));
                }
            } else {
                let since = state.breach_since.take();
                if state.firing {
                    state.firing = false;
                    info!(fingerprint = %key, value, "threshold condition cleared");
                    alerts.push(alert(AlertState::Resolved, since.unwrap_or(now)));
                }
            }
        }
        alerts
    }

    /// Watches every stored deployment each `every` until `shutdown`,
    /// recording alerts durably and processing new incidents in the
    /// background.
    pub async fn run(
        mut self,
        store: Arc<dyn MetadataStore>,
        ops: Arc<OpsAgent>,
        every: Duration,
        shutdown: impl Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                _ = tick.tick() => {}
            }
            let deployments = match store.list_deployments().await {
                Ok(d) => d,
                Err(e) => {
                    warn!(error = %e, "watcher could not list deployments");
                    continue;
                }
            };
            for deployment in deployments {
                for alert in self.evaluate(&deployment, Utc::now()).await {
                    match ops.record_alert(&alert).await {
                        Ok(ingest) if ingest.outcome == IngestOutcome::Opened => {
                            if let Some(incident) = ingest.incident {
                                let ops = ops.clone();
                                tokio::spawn(async move {
                                    if let Err(e) = ops.process(incident.id).await {
                                        warn!(incident_id = %incident.id, error = %e, "processing failed");
                                    }
                                });
                            }
                        }
                        Ok(_) => {}
                        Err(e) => warn!(error = %e, "watcher could not record an alert"),
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Aligner, Comparison, ResourceName, Severity};
    use crate::testing::{deployment_with, ScriptedMetrics};
    use chrono::Duration as D;

    fn deployment() -> Deployment {
        let mut d = deployment_with("web-1", "e2-medium");
        d.monitoring = vec![MonitoringPolicy {
            resource_ref: ResourceName::new("web-1").unwrap(),
            resource_type: "gce_instance".into(),
            metric_name: "cpu_high".into(),
            metric_path: "cpu".into(),
            threshold: 0.8,
            duration_secs: 30,
            severity: Severity::Critical,
            comparison: Comparison::GreaterThan,
            aligner: Aligner::Mean,
        }];
        d
    }

    /// Feeds `values` one every 10 s and returns (second, state) of each alert.
    async fn run(values: Vec<f64>) -> Vec<(i64, AlertState)> {
        let n = values.len();
        let mut w = ThresholdWatcher::new(Arc::new(ScriptedMetrics::new(values)));
        let d = deployment();
        let t0 = Utc::now();
        let mut out = Vec::new();
        for i in 0..n as i64 {
            for a in w.evaluate(&d, t0 + D::seconds(10 * i)).await {
                out.push((10 * i, a.state));
            }
        }
        out
    }

    #[tokio::test]
    async fn a_short_spike_does_not_fire() {
        // Above for 20 s (three samples at 0, 10, 20 s), below the 30 s duration.
        assert_eq!(run(vec![0.9, 0.95, 0.9, 0.2, 0.9, 0.2]).await, []);
    }

    #[tokio::test]
    async fn a_sustained_breach_fires_once_and_recovery_resolves_once() {
        let alerts = run(vec![0.5, 0.9, 0.9, 0.9, 0.9, 0.95, 0.9, 0.3, 0.2, 0.1]).await;
        // Breach starts at 10 s, has held 30 s at 40 s: fires then, once; clears at 70 s.
        assert_eq!(
            alerts,
            [(40, AlertState::Firing), (70, AlertState::Resolved)]
        );
    }

    #[tokio::test]
    async fn a_new_breach_after_recovery_fires_again_with_the_same_fingerprint() {
        let values = vec![0.9, 0.9, 0.9, 0.9, 0.1, 0.9, 0.9, 0.9, 0.9];
        assert_eq!(
            run(values).await,
            [
                (30, AlertState::Firing),
                (40, AlertState::Resolved),
                (80, AlertState::Firing)
            ]
        );
    }

    #[tokio::test]
    async fn alerts_carry_the_policy() {
        let mut w = ThresholdWatcher::new(Arc::new(ScriptedMetrics::new(vec![0.97])));
        let d = deployment();
        let t0 = Utc::now();
        assert!(w.evaluate(&d, t0).await.is_empty());
        let a = w.evaluate(&d, t0 + D::seconds(30)).await.remove(0);
        assert_eq!(
            a.fingerprint,
            format!("watch:{}:web-1:cpu_high", d.deployment_id)
        );
        assert_eq!(
            (a.value, a.threshold, a.severity),
            (Some(0.97), Some(0.8), Severity::Critical)
        );
        assert_eq!(a.started_at, t0);
        assert_eq!(a.resource, "web-1");
        assert!(a.validate().is_ok());
    }

    #[tokio::test]
    async fn missing_data_is_not_a_recovery() {
        struct Flaky(std::sync::Mutex<Vec<Option<f64>>>);
        #[async_trait::async_trait]
        impl MetricSource for Flaky {
            async fn current_value(&self, _: &MetricQuery) -> crate::Result<crate::MetricSample> {
                match self.0.lock().unwrap().remove(0) {
                    Some(value) => Ok(crate::MetricSample {
                        value,
                        at: Utc::now(),
                    }),
                    None => Err(crate::Error::not_found("no data")),
                }
            }
        }
        let metrics = Flaky(std::sync::Mutex::new(vec![
            Some(0.9),
            Some(0.9),
            None,
            Some(0.9),
            Some(0.9),
        ]));
        let mut w = ThresholdWatcher::new(Arc::new(metrics));
        let d = deployment();
        let t0 = Utc::now();
        let mut states = Vec::new();
        for i in 0..5 {
            states.extend(
                w.evaluate(&d, t0 + D::seconds(10 * i))
                    .await
                    .into_iter()
                    .map(|a| a.state),
            );
        }
        assert_eq!(states, [AlertState::Firing]);
    }
}
