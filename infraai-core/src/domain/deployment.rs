//! A stored deployment: what exists, where, and how it is watched.

use super::{MonitoringPolicy, PlannedResource};
use crate::{DeploymentId, RunId};
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The document stored when a run completes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Deployment {
    /// Deployment id.
    pub deployment_id: DeploymentId,
    /// Cloud (`gcp`, `local`, …).
    pub cloud: String,
    /// Names of the services (compute resources) it runs.
    pub services: Vec<String>,
    /// Region.
    pub region: String,
    /// Where the Terraform working directory and state live.
    pub terraform_state: String,
    /// The webhook URL alert policies post to, when configured.
    pub alert_webhook: Option<String>,
    /// Resource name → the run that last created or changed it.
    pub resource_map: BTreeMap<String, RunId>,
    /// The resources as currently deployed (machine types are updated by actions).
    pub resources: Vec<PlannedResource>,
    /// Alert policies attached to the resources.
    pub monitoring: Vec<MonitoringPolicy>,
    /// Terraform outputs.
    pub outputs: BTreeMap<String, serde_json::Value>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl Deployment {
    /// The deployed resource with this name.
    pub fn resource(&self, name: &str) -> Option<&PlannedResource> {
        self.resources.iter().find(|r| r.name.as_str() == name)
    }

    /// Mutable access to the deployed resource with this name.
    pub fn resource_mut(&mut self, name: &str) -> Option<&mut PlannedResource> {
        self.resources.iter_mut().find(|r| r.name.as_str() == name)
    }
}
