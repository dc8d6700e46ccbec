//! In-memory adapters, scripted fakes and the conformance suites, for tests
//! of this crate and of downstream crates (enable the `testing` feature).

pub mod conformance;
mod fakes;
pub mod llm;
mod memory_store;

pub use fakes::*;
pub use memory_store::MemoryStore;

use crate::domain::{Alert, AlertState, Severity};
use crate::profiles::GCE_INSTANCE;
use std::collections::BTreeMap;

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn memory_store_passes_the_conformance_suite() {
        conformance::run_all(Arc::new(MemoryStore::new())).await;
    }
}
