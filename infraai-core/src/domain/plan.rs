//! What the planner produces: the infrastructure for a goal.

use super::{MachineType, ResourceName, Severity};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// What kind of application the goal describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StackType {
    /// An HTTP/JSON API service.
    BackendApi,
    /// A server-rendered or single-page web application.
    WebApp,
    /// Background workers or a queue consumer.
    Worker,
    /// Static files behind a web server.
    StaticSite,
}

/// A cloud-neutral kind of resource; each cloud adapter maps kinds to its own
/// resource types (e.g. `compute` → `gce_instance` on GCP).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ResourceKind {
    /// A virtual machine (or a local process on the local cloud).
    Compute,
    /// A managed group of identical machines with autoscaling.
    InstanceGroup,
    /// A managed relational database.
    Database,
    /// A managed in-memory cache (Redis).
    Cache,
    /// An HTTP(S) load balancer.
    LoadBalancer,
    /// Firewall rules.
    Firewall,
    /// A network / VPC.
    Network,
}

impl ResourceKind {
    /// Whether it keeps data (a database or a cache): restarting or
    /// resizing it interrupts its clients.
    pub fn is_stateful(self) -> bool {
        matches!(self, ResourceKind::Database | ResourceKind::Cache)
    }
}

/// One resource of a plan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PlannedResource {
    /// Unique name within the plan (used as Terraform name and cloud name).
    pub name: ResourceName,
    /// Cloud-neutral kind.
    pub kind: ResourceKind,
    /// The cloud adapter's resource type (e.g. `gce_instance`), filled in when
    /// the plan is bound to a cloud; ignored when produced by an LLM.
    #[serde(default)]
    pub resource_type: Option<String>,
    /// Machine type for compute-like resources.
    #[serde(default)]
    pub machine_type: Option<MachineType>,
    /// Number of identical instances (1–100).
    #[serde(default = "one")]
    pub count: u32,
    /// Names of resources this one talks to or depends on (graph edges).
    #[serde(default)]
    pub depends_on: Vec<ResourceName>,
    /// One line on what this resource is for.
    #[serde(default)]
    pub description: String,
}

fn one() -> u32 {
    1
}

/// A monitoring alert policy attached to a planned resource.
///
/// Always bound from the [`MetricProfileRegistry`](crate::MetricProfileRegistry),
/// never taken from LLM output.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MonitoringPolicy {
    /// The plan resource the policy watches.
    pub resource_ref: ResourceName,
    /// The cloud resource type the metric belongs to (e.g. `gce_instance`).
    pub resource_type: String,
    /// Profile name, e.g. `cpu_high`.
    pub metric_name: String,
    /// The cloud's metric path, e.g. `local/instance/cpu/utilization`.
    pub metric_path: String,
    /// Threshold the aligned value is compared with.
    pub threshold: f64,
    /// How long the condition must hold before the alert fires, in seconds.
    pub duration_secs: u64,
    /// Severity of the resulting alert.
    pub severity: Severity,
    /// How the value is compared with the threshold.
    pub comparison: Comparison,
    /// How raw samples are aligned (gauges averaged, counters rated).
    pub aligner: Aligner,
}

/// Comparison of a metric with its threshold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Comparison {
    /// Fires when the value is above the threshold.
    GreaterThan,
    /// Fires when the value is below the threshold.
    LessThan,
}

impl Comparison {
    /// Whether `value` violates `threshold` under this comparison.
    pub fn breached(self, value: f64, threshold: f64) -> bool {
        match self {
            Comparison::GreaterThan => value > threshold,
            Comparison::LessThan => value < threshold,
        }
    }
}

/// How raw samples are aligned before comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Aligner {
    /// Mean over the alignment period (gauges such as utilization).
    Mean,
    /// Per-second rate over the alignment period (counters such as bytes read).
    Rate,
    /// Maximum over the alignment period.
    Max,
}

/// The planned infrastructure for a goal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InfraPlan {
    /// Target cloud (`gcp`, `local`, `aws`, …), set by the deploy loop from the
    /// configured cloud adapter.
    pub cloud: String,
    /// What kind of application this is.
    pub stack_type: StackType,
    /// Cloud region, e.g. `local`.
    pub region: String,
    /// Default machine type for compute resources.
    pub machine_type: MachineType,
    /// Whether compute runs in an autoscaled instance group.
    pub autoscaling: bool,
    /// Estimated monthly cost in US dollars.
    pub estimated_cost_usd: f64,
    /// Risks the operator should know about (e.g. "single instance, no HA").
    #[serde(default)]
    pub risk_flags: Vec<String>,
    /// The resources.
    pub resources: Vec<PlannedResource>,
    /// Alert policies, bound from the metric-profile registry.
    #[serde(default)]
    pub monitoring: Vec<MonitoringPolicy>,
    /// Planner confidence, 0–1.
    pub confidence: f64,
    /// A short human-readable summary.
    pub summary: String,
}

/// Most resources one plan may hold; more is almost certainly a planning error.
pub const MAX_PLAN_RESOURCES: usize = 50;

impl InfraPlan {
    /// Checks the invariants every consumer relies on: unique names, edges
    /// that point at existing resources, bounded counts, a confidence in 0–1
    /// and a non-negative cost.
    pub fn validate(&self) -> crate::Result<()> {
        let bad = |detail: String| Err(crate::Error::invalid("plan", detail));
        if self.resources.is_empty() {
            return bad("has no resources".into());
        }
        if self.resources.len() > MAX_PLAN_RESOURCES {
            return bad(format!(
                "has {} resources (at most {MAX_PLAN_RESOURCES})",
                self.resources.len()
            ));
        }
        if !(0.0..=1.0).contains(&self.confidence) {
            return bad(format!("confidence {} is outside 0–1", self.confidence));
        }
        if !self.estimated_cost_usd.is_finite() || self.estimated_cost_usd < 0.0 {
            return bad(format!(
                "estimated cost {} is not a non-negative number",
                self.estimated_cost_usd
            ));
        }
        if self.region.is_empty()
            || !self
                .region
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return bad(format!("region {:?} is not a region name", self.region));
        }
        let mut names = BTreeSet::new();
        for r in &self.resources {
            if !names.insert(&r.name) {
                return bad(format!("resource name {} is used twice", r.name));
            }
            if !(1..=100).contains(&r.count) {
                return bad(format!("resource {} has count {} (1–100)", r.name, r.count));
            }
        }
        for r in &self.resources {
            if let Some(missing) = r.depends_on.iter().find(|d| !names.contains(d)) {
                return bad(format!(
                    "resource {} depends on unknown resource {missing}",
                    r.name
                ));
            }
        }
        for m in &self.monitoring {
            if !names.contains(&m.resource_ref) {
                return bad(format!(
                    "monitoring policy {} refers to unknown resource {}",
                    m.metric_name, m.resource_ref
                ));
            }
        }
        Ok(())
    }

    /// Looks up a resource by name.
    pub fn resource(&self, name: &str) -> Option<&PlannedResource> {
        self.resources.iter().find(|r| r.name.as_str() == name)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample_plan() -> InfraPlan {
        InfraPlan {
            cloud: "gcp".into(),
            stack_type: StackType::BackendApi,
            region: "us-central1".into(),
            machine_type: MachineType::new("e2-medium").unwrap(),
            autoscaling: false,
            estimated_cost_usd: 30.0,
            risk_flags: vec![],
            resources: vec![
                PlannedResource {
                    name: ResourceName::new("api").unwrap(),
                    kind: ResourceKind::Compute,
                    resource_type: None,
                    machine_type: Some(MachineType::new("e2-medium").unwrap()),
                    count: 1,
                    depends_on: vec![ResourceName::new("db").unwrap()],
                    description: String::new(),
                },
                PlannedResource {
                    name: ResourceName::new("db").unwrap(),
                    kind: ResourceKind::Database,
                    resource_type: None,
                    machine_type: None,
                    count: 1,
                    depends_on: vec![],
                    description: String::new(),
                },
            ],
            monitoring: vec![],
            confidence: 0.8,
            summary: "api + db".into(),
        }
    }

    #[test]
    fn validate_catches_broken_plans() {
        assert!(sample_plan().validate().is_ok());
        let mut p = sample_plan();
        p.resources[1].name = ResourceName::new("api").unwrap();
        assert!(p.validate().unwrap_err().to_string().contains("used twice"));
        let mut p = sample_plan();
        p.resources[0].depends_on = vec![ResourceName::new("cache").unwrap()];
        assert!(p
            .validate()
            .unwrap_err()
            .to_string()
            .contains("unknown resource cache"));
        let mut p = sample_plan();
        p.confidence = 1.5;
        assert!(p.validate().is_err());
        let mut p = sample_plan();
        p.estimated_cost_usd = f64::NAN;
        assert!(p.validate().is_err());
        let mut p = sample_plan();
        p.region = "us\"}".into();
        assert!(p.validate().is_err());
        let mut p = sample_plan();
        p.resources.clear();
        assert!(p.validate().is_err());
    }

    #[test]
    fn llm_style_json_with_unknown_fields_is_rejected() {
        let mut v = serde_json::to_value(sample_plan()).unwrap();
        v["resources"][0]["shell"] = "rm -rf /".into();
        assert!(serde_json::from_value::<InfraPlan>(v).is_err());
    }
}
