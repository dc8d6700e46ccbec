//! From plan resource names (what alerts and actions carry) to AWS ids
//! (what the APIs need), through the deployment's Terraform outputs.

use infraai_core::{Deployment, DeploymentId, Error, Result, RunStore};

/// The deployment holding `resource` (by id when known).
pub(crate) async fn deployment(
    store: &dyn RunStore,
    id: Option<DeploymentId>,
    resource: &str,
) -> Result<Deployment> {
    let found = match id {
        Some(id) => store.get_deployment(id).await?,
        None => store.find_deployment_by_resource(resource).await?,
    };
    found.ok_or_else(|| Error::not_found(format!("deployment of AWS resource {resource}")))
}

/// `outputs[output][name]` as a string, checked to be a plain AWS id
/// (letters, digits, `-`, `_`, `.`, `:`, `/`; at most 255 bytes).
pub(crate) fn output_id(d: &Deployment, output: &str, name: &str) -> Result<String> {
    let value = d
        .outputs
        .get(output)
        .and_then(|o| o.get(name))
        .and_then(|v| v.as_str())
        .ok_or_else(|| Error::not_found(format!("{name} in the deployment's {output} output")))?;
    plain_id(value)
}

/// Checks an AWS id from outputs or alerts.
pub(crate) fn plain_id(value: &str) -> Result<String> {
    let ok = !value.is_empty()
        && value.len() <= 255
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '/'));
    if ok {
        Ok(value.to_string())
    } else {
        Err(Error::invalid("AWS id", "contains unexpected characters"))
    }
}
