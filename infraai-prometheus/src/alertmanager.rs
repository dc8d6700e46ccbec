//! The Alertmanager webhook (payload version 4) as an [`AlertSource`].

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use infraai_core::{
    Alert, AlertSource, AlertState, Error, InboundRequest, Result, Severity, WebhookAuth,
};
use serde::Deserialize;
use std::collections::BTreeMap;

/// Which labels and annotations fill which [`Alert`] fields.
#[derive(Clone, Debug)]
pub struct LabelMapping {
    /// Label naming the resource (default `instance`; a `:port` suffix is cut).
    pub resource: String,
    /// Label naming the resource type (default `resource_type`).
    pub resource_type: String,
    /// Resource type when the label is absent (default `prometheus_target`).
    pub default_resource_type: String,
    /// Label naming the metric (default `metric`; else the alert name).
    pub metric: String,
    /// Label with the severity (default `severity`: critical / warning / info).
    pub severity: String,
    /// Annotation or label with the observed value (default `value`).
    pub value: String,
    /// Annotation or label with the threshold (default `threshold`).
    pub threshold: String,
    /// Label naming the cloud (default `cloud`; else `prometheus`).
    pub cloud: String,
}

impl Default for LabelMapping {
    fn default() -> Self {
        Self {
            resource: "instance".into(),
            resource_type: "resource_type".into(),
            default_resource_type: "prometheus_target".into(),
            metric: "metric".into(),
            severity: "severity".into(),
            value: "value".into(),
            threshold: "threshold".into(),
            cloud: "cloud".into(),
        }
    }
}

/// A JSON object of `map`'s entries, moved rather than copied.
fn strings(map: BTreeMap<String, String>) -> serde_json::Value {
    serde_json::Value::Object(
        map.into_iter()
            .map(|(k, v)| (k, serde_json::Value::String(v)))
            .collect(),
    )
}

/// Receives Alertmanager webhook notifications.
#[derive(Clone, Debug)]
pub struct AlertmanagerSource {
    auth: WebhookAuth,
    mapping: LabelMapping,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Payload {
    version: String,
    #[serde(default)]
    alerts: Vec<AmAlert>,
    /// Alerts of the group left out of this notification (`max_alerts`).
    #[serde(default)]
    truncated_alerts: u64,
    #[serde(default)]
    group_key: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AmAlert {
    status: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    starts_at: Option<DateTime<Utc>>,
    fingerprint: String,
}

impl AlertmanagerSource {
    /// A source with the default label mapping, accepting deliveries
    /// authenticated by `auth` (a token sent as `http_config.authorization`,
    /// or `basic_auth`).
    pub fn new(auth: WebhookAuth) -> Self {
        Self {
            auth,
            mapping: LabelMapping::default(),
        }
    }

    /// Uses another label mapping.
    pub fn with_mapping(mut self, mapping: LabelMapping) -> Self {
        self.mapping = mapping;
        self
    }

    /// Maps a webhook payload to alerts.
    pub fn normalize(&self, body: &[u8]) -> Result<Vec<Alert>> {
        let bad = |d: String| Error::invalid("Alertmanager webhook", d);
        let payload: Payload = serde_json::from_slice(body).map_err(|e| bad(e.to_string()))?;
        if payload.version != "4" {
            return Err(bad(format!(
                "payload version {:?} (expected \"4\")",
                payload.version
            )));
        }
        if payload.truncated_alerts > 0 {
            // Never sent to us: only raising `max_alerts` brings them in.
            tracing::warn!(
                truncated = payload.truncated_alerts,
                group_key = %payload.group_key,
                "Alertmanager left alerts of this group out of the notification (max_alerts); they are not recorded"
            );
        }
        let m = &self.mapping;
        payload
            .alerts
            .into_iter()
            .map(|a| {
                let label = |k: &str| a.labels.get(k).cloned();
                let get = |k: &str| a.annotations.get(k).cloned().or_else(|| label(k));
                let num = |k: &str| {
                    get(k)
                        .and_then(|v| v.trim().parse::<f64>().ok())
                        .filter(|x| x.is_finite())
                };
                let state = match a.status.as_str() {
                    "firing" => AlertState::Firing,
                    "resolved" => AlertState::Resolved,
                    other => return Err(bad(format!("unknown alert status {other:?}"))),
                };
                let alertname = label("alertname").unwrap_or_else(|| "unnamed".into());
                let resource = a
                    .labels
                    .get(&m.resource)
                    .map(|r| match r.rsplit_once(':') {
                        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => {
                            host.to_string()
                        }
                        _ => r.clone(),
                    })
                    .unwrap_or_default();
                let severity = label(&m.severity).map(|s| s.to_ascii_lowercase());
                let severity = match severity.as_deref() {
                    Some("critical" | "page" | "error") => Severity::Critical,
                    Some("warning" | "warn") => Severity::Warning,
                    _ => Severity::Info,
                };
                let alert = Alert {
                    source: "alertmanager".into(),
                    fingerprint: format!("am:{}", a.fingerprint),
                    policy_name: alertname.clone(),
                    resource,
                    resource_type: label(&m.resource_type)
                        .unwrap_or_else(|| m.default_resource_type.clone()),
                    cloud: label(&m.cloud).unwrap_or_else(|| "prometheus".into()),
                    metric: label(&m.metric).unwrap_or(alertname),
                    value: num(&m.value),
                    threshold: num(&m.threshold),
                    severity,
                    state,
                    started_at: a.starts_at.unwrap_or_else(Utc::now),
                    raw: serde_json::json!({
                        "labels": &a.labels,
                        "annotations": strings(a.annotations),
                    }),
                    labels: a.labels,
                };
                alert.validate()?;
                Ok(alert)
            })
            .collect()
    }
}

#[async_trait]
impl AlertSource for AlertmanagerSource {
    fn name(&self) -> &str {
        "alertmanager"
    }

    /// An Alertmanager webhook is an object with `alerts` and `receiver`.
    fn accepts(&self, request: &InboundRequest) -> bool {
        request.has_json_fields(&["alerts", "receiver"])
    }

    async fn receive(&self, request: &InboundRequest) -> Result<Vec<Alert>> {
        self.auth.check(request)?;
        self.normalize(&request.body)
    }
}
