//! Normalized alerts from any alert source.

use super::Severity;
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Whether the alert condition holds or has cleared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    /// The condition holds.
    Firing,
    /// The condition cleared.
    Resolved,
}

/// Longest fingerprint accepted; sources hash anything longer.
pub const MAX_FINGERPRINT_LEN: usize = 256;

/// An alert as every part of the ops loop sees it, whatever source sent it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Alert {
    /// The alert source (`gcp`, `alertmanager`, `local`, …).
    pub source: String,
    /// Stable identity of the alert condition; repeats share it.
    pub fingerprint: String,
    /// The alert policy / rule name.
    pub policy_name: String,
    /// The affected resource (instance name or id).
    pub resource: String,
    /// The cloud resource type (e.g. `gce_instance`).
    pub resource_type: String,
    /// The cloud (`gcp`, `local`, …).
    pub cloud: String,
    /// Metric path (e.g. `local/instance/cpu/utilization`).
    pub metric: String,
    /// Observed value, when the source sends one.
    pub value: Option<f64>,
    /// Threshold of the policy, when the source sends one.
    pub threshold: Option<f64>,
    /// Severity.
    pub severity: Severity,
    /// Firing or resolved.
    pub state: AlertState,
    /// When the condition started.
    pub started_at: DateTime<Utc>,
    /// Source labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The raw payload (for audit; never sent to an LLM unescaped).
    #[serde(default)]
    pub raw: serde_json::Value,
}

impl Alert {
    /// Checks what the ops loop relies on: a non-empty bounded fingerprint,
    /// a resource, finite numbers.
    pub fn validate(&self) -> crate::Result<()> {
        let bad = |detail: String| Err(crate::Error::invalid("alert", detail));
        if self.fingerprint.is_empty() || self.fingerprint.len() > MAX_FINGERPRINT_LEN {
            return bad(format!("fingerprint must be 1–{MAX_FINGERPRINT_LEN} bytes"));
        }
        if self.resource.is_empty() {
            return bad("resource is empty".into());
        }
        if self.value.is_some_and(|v| !v.is_finite())
            || self.threshold.is_some_and(|v| !v.is_finite())
        {
            return bad("value and threshold must be finite numbers".into());
        }
        Ok(())
    }
}
