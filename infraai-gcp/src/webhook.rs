//! The Cloud Monitoring webhook notification channel as an [`AlertSource`].

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use infraai_core::{
    Alert, AlertSource, AlertState, Error, InboundRequest, Result, Severity, WebhookAuth,
};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// Receives Cloud Monitoring incident notifications (schema 1.2).
#[derive(Clone, Debug)]
pub struct GcpWebhookSource {
    auth: WebhookAuth,
}

#[derive(Deserialize)]
struct Notification {
    version: Option<String>,
    incident: Option<Incident>,
}

#[derive(Deserialize)]
struct Incident {
    incident_id: Value,
    severity: Option<String>,
    started_at: Option<Value>,
    state: String,
    observed_value: Option<Value>,
    threshold_value: Option<Value>,
    resource: Option<Resource>,
    resource_display_name: Option<String>,
    metric: Option<Metric>,
    policy_name: Option<String>,
    #[serde(default, deserialize_with = "labels")]
    policy_user_labels: BTreeMap<String, String>,
    summary: Option<String>,
}

#[derive(Deserialize)]
struct Resource {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default, deserialize_with = "labels")]
    labels: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct Metric {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default, deserialize_with = "labels")]
    labels: BTreeMap<String, String>,
}

/// A numeric field, as a JSON number or a numeric string (real notifications
/// and proxies send either): `0.9` or `"0.9"` → 0.9, absent or `null` →
/// `None`, anything else an error naming the field.
fn number(v: &Option<Value>, field: &str) -> Result<Option<f64>> {
    let parsed = match v {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    match parsed.filter(|x| x.is_finite()) {
        Some(x) => Ok(Some(x)),
        None => Err(Error::invalid(
            "Cloud Monitoring notification",
            format!(
                "incident.{field} is not a number: {}",
                v.as_ref().unwrap_or(&Value::Null)
            ),
        )),
    }
}

/// Labels whose values may arrive as numbers or booleans (`{"instance_id":
/// 1234}` → `"1234"`); `null` is no labels.
fn labels<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<BTreeMap<String, String>, D::Error> {
    let raw: Option<BTreeMap<String, Value>> = Deserialize::deserialize(d)?;
    raw.unwrap_or_default()
        .into_iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k, s)),
            Value::Number(_) | Value::Bool(_) => Ok((k, v.to_string())),
            other => Err(serde::de::Error::custom(format!(
                "label {k:?} is not text: {other}"
            ))),
        })
        .collect()
}

/// A text field that may arrive as a number (`123` → `"123"`).
fn text(v: &Value, field: &str) -> Result<String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(Error::invalid(
            "Cloud Monitoring notification",
            format!("incident.{field} is not text: {other}"),
        )),
    }
}

impl GcpWebhookSource {
    /// A source that accepts deliveries authenticated by `auth`. Cloud
    /// Monitoring payloads carry no signature: the channel's URL holds
    /// either HTTP Basic credentials (`https://user:password@host/…`) or a
    /// token (`https://host/…?token=…`).
    pub fn new(auth: WebhookAuth) -> Self {
        Self { auth }
    }

    /// Maps one notification to an alert (`None` for console test
    /// notifications, which carry placeholder values).
    pub fn normalize(body: &[u8]) -> Result<Option<Alert>> {
        let bad = |detail: String| Error::invalid("Cloud Monitoring notification", detail);
        let raw: Value = serde_json::from_slice(body).map_err(|e| bad(e.to_string()))?;
        let n: Notification =
            serde_json::from_value(raw.clone()).map_err(|e| bad(e.to_string()))?;
        if n.version.as_deref() == Some("test") {
            return Ok(None);
        }
        let i = n.incident.ok_or_else(|| bad("has no incident".into()))?;
        let started_at = number(&i.started_at, "started_at")?
            .map(|s| DateTime::<Utc>::from_timestamp(s as i64, 0))
            .map(|t| t.ok_or_else(|| bad("incident.started_at is out of range".into())))
            .transpose()?;
        let state = match i.state.to_ascii_lowercase().as_str() {
            "open" => AlertState::Firing,
            "closed" => AlertState::Resolved,
            other => return Err(bad(format!("unknown state {other:?}"))),
        };
        let severity = i.severity.as_deref().map(str::to_ascii_lowercase);
        let severity = match severity.as_deref() {
            // Error sits between critical and warning; treat it as critical so a human approves.
            Some("critical" | "error") => Severity::Critical,
            Some("warning") => Severity::Warning,
            _ => Severity::Info,
        };
        let (resource_type, resource_labels) =
            i.resource.map(|r| (r.kind, r.labels)).unwrap_or_default();
        // Policies written by `GcpCloud` name the plan resource and its type
        // in user labels: a group member or a Cloud SQL instance then maps
        // back to the resource the deployment knows.
        let resource_type = i
            .policy_user_labels
            .get("infraai-resource-type")
            .cloned()
            .unwrap_or(resource_type);
        let (metric, metric_labels) = i.metric.map(|m| (m.kind, m.labels)).unwrap_or_default();
        let resource = i
            .policy_user_labels
            .get("infraai-resource")
            .cloned()
            .or_else(|| metric_labels.get("instance_name").cloned())
            .or(i.resource_display_name)
            .or_else(|| resource_labels.get("instance_id").cloned())
            .unwrap_or_default();
        let mut labels: BTreeMap<String, String> = [
            ("resource.", &resource_labels),
            ("metric.", &metric_labels),
            ("policy.", &i.policy_user_labels),
        ]
        .into_iter()
        .flat_map(|(p, m)| m.iter().map(move |(k, v)| (format!("{p}{k}"), v.clone())))
        .collect();
        if let Some(s) = i.summary {
            labels.insert("summary".into(), s);
        }
        let alert = Alert {
            source: "gcp".into(),
            fingerprint: format!("gcp:{}", text(&i.incident_id, "incident_id")?),
            policy_name: i.policy_name.unwrap_or_else(|| "unnamed policy".into()),
            resource,
            resource_type,
            cloud: "gcp".into(),
            metric,
            value: number(&i.observed_value, "observed_value")?,
            threshold: number(&i.threshold_value, "threshold_value")?,
            severity,
            state,
            started_at: started_at.unwrap_or_else(Utc::now),
            labels,
            raw,
        };
        alert.validate()?;
        Ok(Some(alert))
    }
}

#[async_trait]
impl AlertSource for GcpWebhookSource {
    fn name(&self) -> &str {
        "gcp"
    }

    /// A notification is an object with `incident`.
    fn accepts(&self, request: &InboundRequest) -> bool {
        request.has_json_fields(&["incident"])
    }

    async fn receive(&self, request: &InboundRequest) -> Result<Vec<Alert>> {
        self.auth.check(request)?;
        Ok(Self::normalize(&request.body)?.into_iter().collect())
    }

    /// Console test notifications carry placeholders: acknowledged, nothing
    /// recorded.
    fn empty_delivery_note(&self) -> Option<&'static str> {
        Some("test notification ignored")
    }
}
