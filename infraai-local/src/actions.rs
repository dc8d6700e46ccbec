//! Restart and scale-up of local instances, through Terraform variables.

use crate::cloud::{machine_type_var, restart_var};
use crate::instances::InstanceDir;
use crate::profiles::LOCAL_INSTANCE;
use async_trait::async_trait;
use infraai_core::{
    Action, ActionHandler, ActionPreview, ActionReport, ActionRequest, Deployment, Error, LogLine,
    LogSink, MetadataStore, Result, TfWorkspace,
};
use infraai_terraform::{TerraformRunner, TfvarsChange};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use tracing::info;

/// The tfvars file actions write: `actions.auto.tfvars.json`.
pub const ACTIONS_TFVARS: &str = "actions";

/// Executes actions on local instances. Both go through Terraform: the
/// variable changes in `actions.auto.tfvars.json`, then plan, then apply of
/// that saved plan — a scale-up replaces the instance's process with one of
/// the next machine type; a restart replaces it with a fresh process of the
/// same type. Previews are the real Terraform change set.
pub struct LocalActions {
    runner: Arc<TerraformRunner>,
    store: Arc<dyn MetadataStore>,
    instances: InstanceDir,
}

struct Tracing;

impl LogSink for Tracing {
    fn log(&self, line: LogLine) {
        info!(source = %line.source, "{}", line.message);
    }
}

impl LocalActions {
    /// Actions over `runner`'s work directories, finding deployments in `store`.
    pub fn new(
        runner: Arc<TerraformRunner>,
        store: Arc<dyn MetadataStore>,
        instances: InstanceDir,
    ) -> Self {
        Self {
            runner,
            store,
            instances,
        }
    }

    async fn deployment(&self, request: &ActionRequest) -> Result<Deployment> {
        let found = match request.deployment_id {
            Some(id) => self.store.get_deployment(id).await?,
            None => {
                self.store
                    .find_deployment_by_resource(&request.resource)
                    .await?
            }
        };
        found.ok_or_else(|| {
            Error::not_found(format!("deployment of local instance {}", request.resource))
        })
    }

    async fn change(&self, request: &ActionRequest) -> Result<(TfWorkspace, TfvarsChange, String)> {
        if request.resource_type != LOCAL_INSTANCE {
            return Err(Error::NotSupported {
                component: "local".into(),
                op: format!("actions on {}", request.resource_type),
            });
        }
        let deployment = self.deployment(request).await?;
        let run_id = *deployment
            .resource_map
            .get(&request.resource)
            .ok_or_else(|| {
                Error::not_found(format!(
                    "local instance {} in its deployment",
                    request.resource
                ))
            })?;
        let ws = TfWorkspace {
            run_id,
            dir: PathBuf::from(&deployment.terraform_state),
        };
        let name = &request.resource;
        let (var, value, what) = match &request.action {
            Action::ScaleUp { machine_type } => (
                machine_type_var(name),
                json!(machine_type.as_str()),
                format!("replace {name} with a {machine_type} instance (Terraform)"),
            ),
            Action::Restart {} => (
                restart_var(name),
                json!(chrono::Utc::now().to_rfc3339()),
                format!("replace {name}'s process with a fresh one (Terraform)"),
            ),
            other => {
                return Err(Error::NotSupported {
                    component: "local".into(),
                    op: other.describe(),
                })
            }
        };
        Ok((
            ws,
            TfvarsChange::new(ACTIONS_TFVARS, BTreeMap::from([(var, value)])),
            what,
        ))
    }
}

#[async_trait]
impl ActionHandler for LocalActions {
    fn name(&self) -> &str {
        "local-terraform"
    }

    async fn preview(&self, request: &ActionRequest) -> Result<ActionPreview> {
        let (ws, change, what) = self.change(request).await?;
        let set = self.runner.preview_tfvars(&ws, &change, &Tracing).await?;
        Ok(ActionPreview {
            summary: format!("{what}: {}", set.summary()),
            change_set: Some(set),
        })
    }

    async fn execute(&self, request: &ActionRequest) -> Result<ActionReport> {
        let (ws, change, what) = self.change(request).await?;
        let set = self.runner.apply_tfvars(&ws, &change, &Tracing).await?;
        let instance = self.instances.read(&request.resource).await.ok();
        Ok(ActionReport {
            summary: format!("{what}: {}", set.summary()),
            details: json!({
                "change_set": set,
                "pid": instance.as_ref().map(|i| i.pid),
                "machine_type": instance.map(|i| i.machine_type),
            }),
        })
    }
}
