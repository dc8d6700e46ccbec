//! The GCP [`ActionHandler`]: restart, scale-up and firewall changes of
//! Compute Engine instances.

use crate::catalog::GCE_INSTANCE;
use crate::compute::{check_rule_shape, ApiCall, ComputeEngine};
use async_trait::async_trait;
use infraai_core::guardrails::{firewall_within_bounds, GuardrailConfig};
use infraai_core::{
    Action, ActionHandler, ActionPreview, ActionReport, ActionRequest, ChangeSet, Error,
    FirewallChange, MachineType, Result, RunStore,
};
use infraai_terraform::{machine_type_var, ManagedResource, TerraformRunner, TfvarsActions};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use tracing::info;

/// Executes allow-listed actions on Compute Engine instances:
///
/// * `Restart` → `instances.reset`, waited on.
/// * `ScaleUp` → through Terraform when the instance belongs to a stored
///   deployment of this agent (`machine_type_<instance>` in
///   `actions.auto.tfvars.json`, plan, apply of that plan — so the next apply
///   does not revert it); otherwise through the API: stop → `setMachineType`
///   → start, each operation waited on.
/// * `ModifyFirewall` → `firewalls.patch` of the named ingress rule, after
///   checking the change against the guardrail bounds again (never opening
///   the configured admin ports to the world) before any API call.
///
/// Previews make read-only calls only (`GET`s, `terraform plan`) and list the
/// exact calls execution would make. Reports say which path ran
/// (`details.path`: `api` or `terraform`).
///
/// A firewall change through the API is not written back to Terraform: when
/// the rule was created by Terraform, its next apply of the original
/// configuration reverts the change.
pub struct GcpActions {
    compute: Arc<ComputeEngine>,
    guardrails: GuardrailConfig,
    terraform: Option<TfvarsActions>,
}

/// How a scale-up will run.
enum ScalePath<'a> {
    Terraform(&'a TfvarsActions, Box<ManagedResource>),
    Api,
}

impl GcpActions {
    /// Actions through the Compute Engine API only; firewall changes are
    /// checked against `guardrails` (use the ops loop's configuration).
    pub fn new(compute: Arc<ComputeEngine>, guardrails: GuardrailConfig) -> Self {
        Self {
            compute,
            guardrails,
            terraform: None,
        }
    }

    /// Scale-ups of instances that belong to a deployment in `store` go
    /// through Terraform with `runner` (the runner that deployed them).
    pub fn with_terraform(
        mut self,
        runner: Arc<TerraformRunner>,
        store: Arc<dyn RunStore>,
    ) -> Self {
        self.terraform = Some(TfvarsActions::new(runner, store));
        self
    }

    fn unsupported(op: String) -> Error {
        Error::NotSupported {
            component: "gcp".into(),
            op,
        }
    }

    fn check_type(request: &ActionRequest) -> Result<()> {
        if request.resource_type == GCE_INSTANCE {
            Ok(())
        } else {
            Err(Self::unsupported(format!(
                "{} on resource type {}",
                request.action.describe(),
                request.resource_type
            )))
        }
    }

    async fn scale_path(&self, request: &ActionRequest) -> Result<ScalePath<'_>> {
        let Some(tf) = &self.terraform else {
            return Ok(ScalePath::Api);
        };
        Ok(match tf.locate(request).await? {
            Some(found) if found.deployment.cloud == "gcp" => {
                ScalePath::Terraform(tf, Box::new(found))
            }
            _ => ScalePath::Api,
        })
    }

    fn check_firewall(&self, change: &FirewallChange) -> Result<()> {
        firewall_within_bounds(change, &self.guardrails).map_err(|why| Error::Forbidden {
            detail: format!(
                "firewall change on rule {} is outside the guardrail bounds: {why}",
                change.rule
            ),
        })
    }

    fn tf_values(name: &str, machine_type: &MachineType) -> BTreeMap<String, Value> {
        BTreeMap::from([(machine_type_var(name), json!(machine_type.as_str()))])
    }

    fn nothing_planned(name: &str, machine_type: &MachineType) -> Error {
        Error::conflict(
            format!("scale-up of {name}"),
            format!(
                "the Terraform plan changes nothing: the configuration does not use variable {} or {name} already is {machine_type}",
                machine_type_var(name)
            ),
        )
    }
}

fn listing(calls: &[ApiCall]) -> String {
    calls
        .iter()
        .enumerate()
        .map(|(i, c)| format!("{}. {c}", i + 1))
        .collect::<Vec<_>>()
        .join("; ")
}

fn tf_summary(name: &str, machine_type: &MachineType, set: &ChangeSet) -> String {
    format!(
        "scale up {name} to {machine_type} through Terraform (variable {} in actions.auto.tfvars.json, plan, apply of that plan): {}",
        machine_type_var(name),
        set.summary()
    )
}

#[async_trait]
impl ActionHandler for GcpActions {
    fn name(&self) -> &str {
        "gcp"
    }

    async fn preview(&self, request: &ActionRequest) -> Result<ActionPreview> {
        Self::check_type(request)?;
        let name = request.resource.as_str();
        match &request.action {
            Action::Restart {} => {
                let calls = self.compute.reset_calls(name)?;
                let instance = self.compute.get_instance(name).await?;
                Ok(ActionPreview {
                    summary: format!(
                        "restart {name} through the Compute Engine API (now {}, {}): {}",
                        instance.status,
                        instance.machine_type,
                        listing(&calls)
                    ),
                    change_set: None,
                })
            }
            Action::ScaleUp { machine_type } => match self.scale_path(request).await? {
                ScalePath::Terraform(tf, found) => {
                    let set = tf
                        .preview(&found.workspace, Self::tf_values(name, machine_type))
                        .await?;
                    if set.changes.is_empty() {
                        return Err(Self::nothing_planned(name, machine_type));
                    }
                    Ok(ActionPreview {
                        summary: tf_summary(name, machine_type, &set),
                        change_set: Some(set),
                    })
                }
                ScalePath::Api => {
                    let mut calls = self.compute.change_machine_type_calls(name, machine_type)?;
                    let instance = self.compute.get_instance(name).await?;
                    if instance.machine_type == machine_type.as_str() {
                        return Ok(ActionPreview {
                            summary: format!(
                                "{name} already is {machine_type}: no call will be made"
                            ),
                            change_set: None,
                        });
                    }
                    let downtime = if instance.status == "TERMINATED" {
                        // Stopped already: only the set call and its wait.
                        calls = calls[2..4].to_vec();
                        "it is stopped and stays stopped"
                    } else {
                        "the instance is stopped during the change"
                    };
                    Ok(ActionPreview {
                        summary: format!(
                            "scale up {name} from {} to {machine_type} through the Compute Engine API ({downtime}): {}",
                            instance.machine_type,
                            listing(&calls)
                        ),
                        change_set: None,
                    })
                }
            },
            Action::ModifyFirewall { change } => {
                self.check_firewall(change)?;
                let calls = self.compute.patch_firewall_calls(change)?;
                let current = self.compute.get_firewall(change.rule.as_str()).await?;
                check_rule_shape(&current, change)?;
                Ok(ActionPreview {
                    summary: format!(
                        "change firewall rule {} through the Compute Engine API (now allowed {} denied {} from {}): {}",
                        change.rule,
                        current["allowed"],
                        current["denied"],
                        current["sourceRanges"],
                        listing(&calls)
                    ),
                    change_set: None,
                })
            }
            other => Err(Self::unsupported(other.describe())),
        }
    }

    async fn execute(&self, request: &ActionRequest) -> Result<ActionReport> {
        Self::check_type(request)?;
        let name = request.resource.as_str();
        match &request.action {
            Action::Restart {} => {
                let calls = self.compute.reset_calls(name)?;
                let op = self.compute.reset(name).await?;
                info!(instance = name, operation = %op.name, "instance reset");
                Ok(ActionReport {
                    summary: format!(
                        "reset {name} through the Compute Engine API (operation {} DONE)",
                        op.name
                    ),
                    details: json!({"path": "api", "calls": calls, "operations": [op]}),
                })
            }
            Action::ScaleUp { machine_type } => match self.scale_path(request).await? {
                ScalePath::Terraform(tf, found) => {
                    let set = tf
                        .apply(&found.workspace, Self::tf_values(name, machine_type))
                        .await?;
                    if set.changes.is_empty() {
                        return Err(Self::nothing_planned(name, machine_type));
                    }
                    info!(instance = name, machine_type = %machine_type, "scaled up through Terraform");
                    Ok(ActionReport {
                        summary: tf_summary(name, machine_type, &set),
                        details: json!({
                            "path": "terraform",
                            "deployment_id": found.deployment.deployment_id,
                            "variable": machine_type_var(name),
                            "machine_type": machine_type,
                            "change_set": set,
                        }),
                    })
                }
                ScalePath::Api => {
                    let change = self.compute.change_machine_type(name, machine_type).await?;
                    info!(instance = name, from = %change.from, to = %machine_type, "scaled up through the API");
                    let summary = if change.operations.is_empty() {
                        format!("{name} already was {machine_type}; no call was made")
                    } else {
                        format!(
                            "changed {name} from {} to {machine_type} through the Compute Engine API ({})",
                            change.from,
                            change
                                .operations
                                .iter()
                                .map(|o| o.operation_type.as_str())
                                .collect::<Vec<_>>()
                                .join(" → ")
                        )
                    };
                    Ok(ActionReport {
                        summary,
                        details: json!({
                            "path": "api",
                            "from": change.from,
                            "machine_type": machine_type,
                            "was_running": change.was_running,
                            "operations": change.operations,
                        }),
                    })
                }
            },
            Action::ModifyFirewall { change } => {
                self.check_firewall(change)?;
                let (before, op) = self.compute.patch_firewall(change).await?;
                info!(rule = %change.rule, operation = %op.name, "firewall rule patched");
                Ok(ActionReport {
                    summary: format!(
                        "patched firewall rule {} through the Compute Engine API (operation {} DONE): {}",
                        change.rule,
                        op.name,
                        request.action.describe()
                    ),
                    details: json!({
                        "path": "api",
                        "before": {
                            "allowed": before["allowed"],
                            "denied": before["denied"],
                            "sourceRanges": before["sourceRanges"],
                        },
                        "patch": ComputeEngine::firewall_patch_body(change),
                        "operations": [op],
                    }),
                })
            }
            other => Err(Self::unsupported(other.describe())),
        }
    }
}
