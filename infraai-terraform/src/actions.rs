//! The Terraform action path shared by every cloud: find the deployment that
//! holds a resource, change input variables in `actions.auto.tfvars.json`,
//! plan, and apply exactly that saved plan.
//!
//! A cloud adapter decides *which* variables an action changes (the local
//! cloud's restart token, a machine type); this module does the rest, so the
//! preview a human approves is always the real Terraform change set and
//! configuration files are never rewritten.

use crate::runner::{TerraformRunner, TfvarsChange};
use infraai_core::{
    ActionRequest, ChangeSet, Deployment, Error, LogLine, LogSink, Result, RunStore, TfWorkspace,
};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use tracing::info;

/// The tfvars file actions write: `actions.auto.tfvars.json`.
pub const ACTIONS_TFVARS: &str = "actions";

/// The input variable holding an instance's machine type,
/// `machine_type_<name>`: the convention every generator that supports
/// Terraform scale-ups follows.
pub fn machine_type_var(name: &str) -> String {
    format!("machine_type_{name}")
}

/// A resource found in a Terraform-managed deployment.
#[derive(Clone, Debug, PartialEq)]
pub struct ManagedResource {
    /// The deployment holding the resource.
    pub deployment: Deployment,
    /// Its Terraform work directory (from the run that last changed the resource).
    pub workspace: TfWorkspace,
}

/// Sends Terraform's lines to `tracing` (actions have no live log stream).
struct Tracing;

impl LogSink for Tracing {
    fn log(&self, line: LogLine) {
        info!(source = %line.source, "{}", line.message);
    }
}

/// Runs actions as tfvars changes in the work directories of stored deployments.
pub struct TfvarsActions {
    runner: Arc<TerraformRunner>,
    store: Arc<dyn RunStore>,
}

impl TfvarsActions {
    /// Actions over `runner`'s work directories, finding deployments in `store`.
    pub fn new(runner: Arc<TerraformRunner>, store: Arc<dyn RunStore>) -> Self {
        Self { runner, store }
    }

    /// The deployment holding the request's resource and its work directory:
    /// `None` when no stored deployment knows the resource (it was not created
    /// by this agent's Terraform). A deployment that names the resource but
    /// whose work directory is gone is an error, not `None`: changing such a
    /// resource another way would be reverted by the next apply.
    pub async fn locate(&self, request: &ActionRequest) -> Result<Option<ManagedResource>> {
        let found = match request.deployment_id {
            Some(id) => self.store.get_deployment(id).await?,
            None => {
                self.store
                    .find_deployment_by_resource(&request.resource)
                    .await?
            }
        };
        let Some(deployment) = found else {
            return Ok(None);
        };
        let Some(run_id) = deployment.resource_map.get(&request.resource).copied() else {
            return Ok(None);
        };
        let dir = PathBuf::from(&deployment.terraform_state);
        if deployment.terraform_state.is_empty() || !dir.is_dir() {
            return Err(Error::conflict(
                format!("resource {}", request.resource),
                format!(
                    "deployment {} manages it with Terraform in {:?}, which is missing",
                    deployment.deployment_id, deployment.terraform_state
                ),
            ));
        }
        Ok(Some(ManagedResource {
            deployment,
            workspace: TfWorkspace { run_id, dir },
        }))
    }

    /// Plans the change of `values` without applying or keeping anything:
    /// the dry-run change set.
    pub async fn preview(
        &self,
        workspace: &TfWorkspace,
        values: BTreeMap<String, Value>,
    ) -> Result<ChangeSet> {
        let change = TfvarsChange::new(ACTIONS_TFVARS, values);
        let preview = self.runner.preview_tfvars(workspace, &change, &Tracing);
        Ok(preview.await?)
    }

    /// Sets `values`, plans, and applies that saved plan; returns the applied
    /// change set.
    pub async fn apply(
        &self,
        workspace: &TfWorkspace,
        values: BTreeMap<String, Value>,
    ) -> Result<ChangeSet> {
        let change = TfvarsChange::new(ACTIONS_TFVARS, values);
        let apply = self.runner.apply_tfvars(workspace, &change, &Tracing);
        Ok(apply.await?)
    }
}
