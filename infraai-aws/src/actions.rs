//! Actions on AWS resources: scale-up through Terraform (tfvars → plan →
//! apply of that plan), reboot and security-group changes through the EC2
//! API (with `DryRun` previews).

use crate::ec2::Ec2Client;
use crate::generator::{machine_type_var, OUTPUT_INSTANCE_IDS, OUTPUT_SECURITY_GROUP_IDS};
use crate::resolve;
use async_trait::async_trait;
use infraai_core::profiles::{AWS_AUTOSCALING_GROUP, AWS_EC2_INSTANCE};
use infraai_core::{
    Action, ActionHandler, ActionPreview, ActionReport, ActionRequest, Error, FirewallChange,
    LogLine, LogSink, MetadataStore, Result, TfWorkspace,
};
use infraai_terraform::{TerraformRunner, TfvarsChange};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use tracing::info;

/// The tfvars file actions write: `actions.auto.tfvars.json`.
pub const ACTIONS_TFVARS: &str = "actions";

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
///   security group; previewed with `DryRun`. Ports listed in
///   `never_open_to_world` are refused for `0.0.0.0/0` / `::/0` here too.
pub struct AwsActions {
    ec2: Ec2Client,
    runner: Arc<TerraformRunner>,
    store: Arc<dyn MetadataStore>,
    never_open_to_world: Vec<u16>,
}

struct Tracing;

impl LogSink for Tracing {
    fn log(&self, line: LogLine) {
        info!(source = %line.source, "{}", line.message);
    }
}

impl AwsActions {
    /// Actions through `ec2` and `runner`'s work directories, finding
    /// deployments in `store`. `never_open_to_world` is usually the
    /// guardrails' list (`GuardrailConfig::never_open_to_world`).
    pub fn new(
        ec2: Ec2Client,
        runner: Arc<TerraformRunner>,
        store: Arc<dyn MetadataStore>,
        never_open_to_world: Vec<u16>,
    ) -> Self {
        Self {
            ec2,
            runner,
            store,
            never_open_to_world,
        }
    }

    fn unsupported(request: &ActionRequest) -> Error {
        Error::NotSupported {
            component: "aws".into(),
            op: format!("{} on {}", request.action.describe(), request.resource_type),
        }
    }

    /// The workspace and tfvars change of a scale-up.
    async fn scale_change(
        &self,
        request: &ActionRequest,
    ) -> Result<(TfWorkspace, TfvarsChange, String)> {
        let Action::ScaleUp { machine_type } = &request.action else {
            return Err(Self::unsupported(request));
        };
        let d = resolve::deployment(
            self.store.as_ref(),
            request.deployment_id,
            &request.resource,
        )
        .await?;
        let run_id = *d.resource_map.get(&request.resource).ok_or_else(|| {
            Error::not_found(format!(
                "AWS resource {} in its deployment",
                request.resource
            ))
        })?;
        let ws = TfWorkspace {
            run_id,
            dir: PathBuf::from(&d.terraform_state),
        };
        let name = &request.resource;
        let change = TfvarsChange::new(
            ACTIONS_TFVARS,
            BTreeMap::from([(machine_type_var(name), json!(machine_type.as_str()))]),
        );
        Ok((
            ws,
            change,
            format!("change {name} to {machine_type} (Terraform)"),
        ))
    }

    fn check_firewall(&self, change: &FirewallChange) -> Result<()> {
        change.validate()?;
        if change.allow {
            if let Some(port) = change
                .ports
                .iter()
                .find(|p| self.never_open_to_world.contains(p))
                .filter(|_| change.source_ranges.iter().any(|c| c.is_anywhere()))
            {
                return Err(Error::Forbidden {
                    detail: format!("port {port} is never opened to the whole internet"),
                });
            }
        }
        Ok(())
    }

    async fn ids(&self, request: &ActionRequest, output: &str, name: &str) -> Result<String> {
        let d = resolve::deployment(
            self.store.as_ref(),
            request.deployment_id,
            &request.resource,
        )
        .await?;
        resolve::output_id(&d, output, name)
    }

    /// Runs (or dry-runs) an EC2 API action; returns a summary and the id
    /// acted on.
    async fn api_action(
        &self,
        request: &ActionRequest,
        dry_run: bool,
    ) -> Result<(String, String, String)> {
        match (&request.action, request.resource_type.as_str()) {
            (Action::Restart {}, AWS_EC2_INSTANCE) => {
                let id = self
                    .ids(request, OUTPUT_INSTANCE_IDS, &request.resource)
                    .await?;
                let req = self.ec2.reboot(&id, dry_run).await?;
                Ok((
                    format!("reboot {} ({id}) via EC2 RebootInstances", request.resource),
                    id,
                    req,
                ))
            }
            (Action::ModifyFirewall { change }, AWS_EC2_INSTANCE) => {
                self.check_firewall(change)?;
                let id = self
                    .ids(request, OUTPUT_SECURITY_GROUP_IDS, change.rule.as_str())
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

#[async_trait]
impl ActionHandler for AwsActions {
    fn name(&self) -> &str {
        "aws"
    }

    async fn preview(&self, request: &ActionRequest) -> Result<ActionPreview> {
        match (&request.action, request.resource_type.as_str()) {
            (Action::ScaleUp { .. }, AWS_EC2_INSTANCE | AWS_AUTOSCALING_GROUP) => {
                let (ws, change, what) = self.scale_change(request).await?;
                let set = self.runner.preview_tfvars(&ws, &change, &Tracing).await?;
                Ok(ActionPreview {
                    summary: format!("{what}: {}", set.summary()),
                    change_set: Some(set),
                })
            }
            _ => {
                let (what, _, _) = self.api_action(request, true).await?;
                Ok(ActionPreview {
                    summary: format!("{what} (EC2 DryRun: permitted)"),
                    change_set: None,
                })
            }
        }
    }

    async fn execute(&self, request: &ActionRequest) -> Result<ActionReport> {
        match (&request.action, request.resource_type.as_str()) {
            (Action::ScaleUp { .. }, AWS_EC2_INSTANCE | AWS_AUTOSCALING_GROUP) => {
                let (ws, change, what) = self.scale_change(request).await?;
                let set = self.runner.apply_tfvars(&ws, &change, &Tracing).await?;
                Ok(ActionReport {
                    summary: format!("{what}: {}", set.summary()),
                    details: json!({ "change_set": set }),
                })
            }
            _ => {
                let (what, id, request_id) = self.api_action(request, false).await?;
                info!(incident_id = %request.incident_id, aws_id = %id, request_id = %request_id, "{what}");
                Ok(ActionReport {
                    summary: what,
                    details: json!({ "aws_id": id, "request_id": request_id }),
                })
            }
        }
    }
}
