//! Actions on AWS resources: scale-up through Terraform (the shared
//! [`TfvarsActions`] path: tfvars → plan → apply of that plan), reboot and
//! security-group changes through the EC2 API (with `DryRun` previews).

use crate::ec2::Ec2Client;
use crate::generator::{OUTPUT_INSTANCE_IDS, OUTPUT_SECURITY_GROUP_IDS};
use crate::profiles::{AWS_AUTOSCALING_GROUP, AWS_EC2_INSTANCE};
use crate::resolve;
use async_trait::async_trait;
use infraai_core::guardrails::firewall_within_bounds;
use infraai_core::{
    Action, ActionHandler, ActionPreview, ActionReport, ActionRequest, Error, GuardrailConfig,
    Result, RunStore, TfWorkspace,
};
use infraai_terraform::{machine_type_var, TerraformRunner, TfvarsActions};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use tracing::info;

/// Executes allow-listed actions on AWS resources.
///
/// * `scale_up` (EC2 instance or Auto Scaling group): sets
///   `machine_type_<name>` in `actions.auto.tfvars.json`, plans, applies
///   that saved plan. The preview is the real change set (an in-place
///   update of the instance, or a new launch-template version the group
///   rolls out).
/// * `restart` (EC2 instance): `RebootInstances`; previewed with `DryRun`.
/// * `modify_firewall` (EC2 instance; `rule` names the plan's firewall):
///   `AuthorizeSecurityGroupIngress` / `RevokeSecurityGroupIngress` on that
///   security group; previewed with `DryRun`; re-checked against the
///   guardrails' firewall bounds right before the call.
pub struct AwsActions {
    ec2: Ec2Client,
    tfvars: TfvarsActions,
    store: Arc<dyn RunStore>,
    guardrails: GuardrailConfig,
}

impl AwsActions {
    /// Actions through `ec2` and `runner`'s work directories, finding
    /// deployments in `store`; firewall changes are re-checked against
    /// `guardrails` (pass the ops loop's configuration).
    pub fn new(
        ec2: Ec2Client,
        runner: Arc<TerraformRunner>,
        store: Arc<dyn RunStore>,
        guardrails: GuardrailConfig,
    ) -> Self {
        Self {
            ec2,
            tfvars: TfvarsActions::new(runner, store.clone()),
            store,
            guardrails,
        }
    }

    fn unsupported(request: &ActionRequest) -> Error {
        Error::NotSupported {
            component: "aws".into(),
            op: format!("{} on {}", request.action.describe(), request.resource_type),
        }
    }

    /// The workspace and variables of a scale-up.
    async fn scale_change(
        &self,
        request: &ActionRequest,
    ) -> Result<(TfWorkspace, BTreeMap<String, Value>, String)> {
        let Action::ScaleUp { machine_type } = &request.action else {
            return Err(Self::unsupported(request));
        };
        let managed = self.tfvars.locate(request).await?.ok_or_else(|| {
            Error::not_found(format!(
                "a Terraform deployment of AWS resource {}",
                request.resource
            ))
        })?;
        let name = &request.resource;
        Ok((
            managed.workspace,
            BTreeMap::from([(machine_type_var(name), json!(machine_type.as_str()))]),
            format!("change {name} to {machine_type} (Terraform)"),
        ))
    }

    async fn output_id(&self, request: &ActionRequest, output: &str, name: &str) -> Result<String> {
        let d = resolve::deployment(
            self.store.as_ref(),
            request.deployment_id,
            &request.resource,
        )
        .await?;
        resolve::output_id(&d, output, name)
    }

    /// Runs (or dry-runs) an EC2 API action; returns a summary, the id acted
    /// on and the request id.
    async fn api_action(
        &self,
        request: &ActionRequest,
        dry_run: bool,
    ) -> Result<(String, String, String)> {
        match (&request.action, request.resource_type.as_str()) {
            (Action::Restart {}, AWS_EC2_INSTANCE) => {
                let id = self
                    .output_id(request, OUTPUT_INSTANCE_IDS, &request.resource)
                    .await?;
                let req = self.ec2.reboot(&id, dry_run).await?;
                Ok((
                    format!("reboot {} ({id}) via EC2 RebootInstances", request.resource),
                    id,
                    req,
                ))
            }
            (Action::ModifyFirewall { change }, AWS_EC2_INSTANCE) => {
                firewall_within_bounds(change, &self.guardrails)
                    .map_err(|detail| Error::Forbidden { detail })?;
                let id = self
                    .output_id(request, OUTPUT_SECURITY_GROUP_IDS, change.rule.as_str())
                    .await?;
                let req = self.ec2.change_ingress(&id, change, dry_run).await?;
                Ok((
                    format!("{} on security group {id}", request.action.describe()),
                    id,
                    req,
                ))
            }
            _ => Err(Self::unsupported(request)),
        }
    }
}

fn is_scale(request: &ActionRequest) -> bool {
    matches!(request.action, Action::ScaleUp { .. })
        && matches!(
            request.resource_type.as_str(),
            AWS_EC2_INSTANCE | AWS_AUTOSCALING_GROUP
        )
}

#[async_trait]
impl ActionHandler for AwsActions {
    fn name(&self) -> &str {
        "aws"
    }

    async fn preview(&self, request: &ActionRequest) -> Result<ActionPreview> {
        if is_scale(request) {
            let (ws, values, what) = self.scale_change(request).await?;
            let set = self.tfvars.preview(&ws, values).await?;
            return Ok(ActionPreview {
                summary: format!("{what}: {}", set.summary()),
                change_set: Some(set),
            });
        }
        let (what, _, _) = self.api_action(request, true).await?;
        Ok(ActionPreview {
            summary: format!("{what} (EC2 DryRun: permitted)"),
            change_set: None,
        })
    }

    async fn execute(&self, request: &ActionRequest) -> Result<ActionReport> {
        if is_scale(request) {
            let (ws, values, what) = self.scale_change(request).await?;
            let set = self.tfvars.apply(&ws, values).await?;
            return Ok(ActionReport {
                summary: format!("{what}: {}", set.summary()),
                details: json!({ "change_set": set }),
            });
        }
        let (what, id, request_id) = self.api_action(request, false).await?;
        info!(incident_id = %request.incident_id, aws_id = %id, request_id = %request_id, "{what}");
        Ok(ActionReport {
            summary: what,
            details: json!({ "aws_id": id, "request_id": request_id }),
        })
    }
}
