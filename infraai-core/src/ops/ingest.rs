//! Ingest: recording alerts durably, and handling one end to end.

use super::{AlertHandled, OpsAgent};
use crate::domain::*;
use crate::traits::*;
use crate::{Error, Result};
use serde_json::json;

impl OpsAgent {
    /// Validates and durably records an alert (dedup by fingerprint). When this
    /// returns `Ok`, the alert is committed and a webhook may be acknowledged.
    pub async fn record_alert(&self, alert: &Alert) -> Result<AlertIngest> {
        self.record_alerts(vec![alert.clone()])
            .await?
            .pop()
            .ok_or_else(|| {
                Error::backend(
                    self.deps.store.name(),
                    "record_alerts",
                    false,
                    "the store answered a batch of one alert with no result",
                )
            })
    }

    /// Records alerts in order, each as [`Self::record_alert`] does, in one
    /// transaction where the store can ([`IncidentStore::record_alerts`]):
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
                AlertRecord { alert, audit: Some(audit) }
            })
            .collect();
        self.deps.store.record_alerts(batch).await
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
}
