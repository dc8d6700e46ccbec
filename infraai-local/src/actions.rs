//! Restart, scale-up and scale-out of local resources, through Terraform
//! variables.

use crate::cloud::{instances_var, machine_type_var, restart_var};
use crate::instances::InstanceDir;
use crate::profiles::{LOCAL_INSTANCE, LOCAL_INSTANCE_GROUP, LOCAL_POSTGRES, LOCAL_REDIS};
use async_trait::async_trait;
use infraai_core::{
    Action, ActionHandler, ActionPreview, ActionReport, ActionRequest, Error, Result, RunStore,
    TfWorkspace,
};
use infraai_terraform::{TerraformRunner, TfvarsActions};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The tfvars file actions write: `actions.auto.tfvars.json`.
pub use infraai_terraform::ACTIONS_TFVARS;

/// Executes actions on local instances, groups, databases and caches. All go
/// through Terraform: the variable changes in `actions.auto.tfvars.json`,
/// then plan, then apply of that saved plan — a scale-up replaces the
/// resource's processes with ones of the next machine type (a database or
/// cache keeps its data: only its server process is replaced); a restart
/// replaces them with fresh ones of the same type; a scale-out adds
/// instances to a group. Previews are the real Terraform change set.
pub struct LocalActions {
    terraform: TfvarsActions,
    instances: InstanceDir,
}

impl LocalActions {
    /// Actions over `runner`'s work directories, finding deployments in `store`.
    pub fn new(
        runner: Arc<TerraformRunner>,
        store: Arc<dyn RunStore>,
        instances: InstanceDir,
    ) -> Self {
        Self {
            terraform: TfvarsActions::new(runner, store),
            instances,
        }
    }

    async fn change(
        &self,
        request: &ActionRequest,
    ) -> Result<(TfWorkspace, BTreeMap<String, Value>, String)> {
        let local = [
            LOCAL_INSTANCE,
            LOCAL_INSTANCE_GROUP,
            LOCAL_POSTGRES,
            LOCAL_REDIS,
        ];
        if !local.contains(&request.resource_type.as_str()) {
            return Err(Error::NotSupported {
                component: "local".into(),
                op: format!("actions on {}", request.resource_type),
            });
        }
        let ws = self
            .terraform
            .locate(request)
            .await?
            .ok_or_else(|| {
                Error::not_found(format!("deployment of local resource {}", request.resource))
            })?
            .workspace;
        let name = &request.resource;
        let (var, value, what) = match &request.action {
            Action::ScaleUp { machine_type } => (
                machine_type_var(name),
                json!(machine_type.as_str()),
                format!("replace {name} with a {machine_type} instance (Terraform)"),
            ),
            Action::ScaleOut { instances } if request.resource_type == LOCAL_INSTANCE_GROUP => (
                instances_var(name),
                json!(instances),
                format!("run {instances} instances of {name} behind its balancer (Terraform)"),
            ),
            Action::Restart {} => (
                restart_var(name),
                json!(chrono::Utc::now().to_rfc3339()),
                format!("replace {name}'s processes with fresh ones (Terraform)"),
            ),
            other => {
                return Err(Error::NotSupported {
                    component: "local".into(),
                    op: other.describe(),
                })
            }
        };
        Ok((ws, BTreeMap::from([(var, value)]), what))
    }
}

#[async_trait]
impl ActionHandler for LocalActions {
    fn name(&self) -> &str {
        "local-terraform"
    }

    async fn preview(&self, request: &ActionRequest) -> Result<ActionPreview> {
        let (ws, values, what) = self.change(request).await?;
        let set = self.terraform.preview(&ws, values).await?;
        Ok(ActionPreview {
            summary: format!("{what}: {}", set.summary()),
            change_set: Some(set),
        })
    }

    async fn execute(&self, request: &ActionRequest) -> Result<ActionReport> {
        let (ws, values, what) = self.change(request).await?;
        let set = self.terraform.apply(&ws, values).await?;
        let instance = self.instances.read(&request.resource).await.ok();
        Ok(ActionReport {
            summary: format!("{what}: {}", set.summary()),
            details: json!({
                "change_set": set,
                "pid": instance.as_ref().map(|i| i.pid),
                "machine_type": instance.map(|i| i.machine_type),
                "instances": match request.resource_type == LOCAL_INSTANCE_GROUP {
                    true => Some(self.instances.members(&request.resource).await.len()),
                    false => None,
                },
            }),
        })
    }
}
