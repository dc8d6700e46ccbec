//! The metric-profile registry: which alert policies each resource type gets.
//!
//! Monitoring in a plan is always bound from here, never taken from LLM
//! output, so every deployed resource is watched with thresholds an operator
//! chose.

use crate::domain::{Aligner, Comparison, InfraPlan, MonitoringPolicy, Severity};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One alert policy template for a resource type.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MetricProfile {
    /// Profile name, e.g. `cpu_high`; unique per resource type.
    pub name: String,
    /// The cloud's metric path.
    pub metric_path: String,
    /// Threshold.
    pub threshold: f64,
    /// How long the condition must hold, in seconds.
    pub duration_secs: u64,
    /// Severity of the alert.
    pub severity: Severity,
    /// Comparison with the threshold.
    pub comparison: Comparison,
    /// Gauges are averaged, counters are rated.
    pub aligner: Aligner,
}

impl MetricProfile {
    /// A greater-than profile.
    pub fn above(
        name: &str,
        metric_path: &str,
        threshold: f64,
        duration_secs: u64,
        severity: Severity,
        aligner: Aligner,
    ) -> Self {
        Self {
            name: name.into(),
            metric_path: metric_path.into(),
            threshold,
            duration_secs,
            severity,
            comparison: Comparison::GreaterThan,
            aligner,
        }
    }
}

/// Resource type → profiles. Each cloud adapter registers its own (e.g.
/// `infraai_gcp::register_profiles`); add yours with
/// [`MetricProfileRegistry::register`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricProfileRegistry {
    by_type: BTreeMap<String, Vec<MetricProfile>>,
}

impl MetricProfileRegistry {
    /// An empty registry.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Adds a profile for a resource type, replacing one with the same name.
    pub fn register(&mut self, resource_type: &str, profile: MetricProfile) -> &mut Self {
        let list = self.by_type.entry(resource_type.to_string()).or_default();
        list.retain(|p| p.name != profile.name);
        list.push(profile);
        self
    }

    /// The profiles of a resource type (empty when unknown).
    pub fn profiles(&self, resource_type: &str) -> &[MetricProfile] {
        self.by_type
            .get(resource_type)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// The resource types with profiles.
    pub fn resource_types(&self) -> impl Iterator<Item = &str> {
        self.by_type.keys().map(String::as_str)
    }

    /// The profile watching `metric_path` on a resource type.
    pub fn find(&self, resource_type: &str, metric_path: &str) -> Option<&MetricProfile> {
        self.profiles(resource_type)
            .iter()
            .find(|p| p.metric_path == metric_path)
    }

    /// The monitoring policies for a plan whose resources have their
    /// `resource_type` set: one per (resource, profile). Anything already in
    /// `plan.monitoring` is ignored.
    pub fn bind(&self, plan: &InfraPlan) -> Vec<MonitoringPolicy> {
        plan.resources
            .iter()
            .filter_map(|r| r.resource_type.as_deref().map(|t| (r, t)))
            .flat_map(|(r, t)| {
                self.profiles(t).iter().map(move |p| MonitoringPolicy {
                    resource_ref: r.name.clone(),
                    resource_type: t.to_string(),
                    metric_name: p.name.clone(),
                    metric_path: p.metric_path.clone(),
                    threshold: p.threshold,
                    duration_secs: p.duration_secs,
                    severity: p.severity,
                    comparison: p.comparison,
                    aligner: p.aligner,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::plan::tests::sample_plan;
    use crate::testing::{CLOUDSQL_DATABASE, GCE_INSTANCE};

    #[test]
    fn bind_ignores_planner_monitoring_and_uses_registry() {
        let r = crate::testing::profiles();
        let mut plan = sample_plan();
        plan.resources[0].resource_type = Some(GCE_INSTANCE.into());
        plan.resources[1].resource_type = Some(CLOUDSQL_DATABASE.into());
        let bound = r.bind(&plan);
        let names: Vec<_> = bound
            .iter()
            .map(|m| (m.resource_ref.as_str(), m.metric_name.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("api", "cpu_high"),
                ("api", "disk_read_high"),
                ("db", "sql_cpu_high"),
                ("db", "sql_connections_high")
            ]
        );
    }

    #[test]
    fn embedders_can_add_types_and_override_profiles() {
        let mut r = crate::testing::profiles();
        r.register(
            GCE_INSTANCE,
            MetricProfile::above(
                "cpu_high",
                "compute.googleapis.com/instance/cpu/utilization",
                0.9,
                300,
                Severity::Warning,
                Aligner::Mean,
            ),
        );
        r.register(
            "local_instance",
            MetricProfile::above(
                "cpu_high",
                "process_cpu",
                0.5,
                10,
                Severity::Warning,
                Aligner::Rate,
            ),
        );
        assert_eq!(r.profiles(GCE_INSTANCE).len(), 2);
        assert_eq!(
            r.find(
                GCE_INSTANCE,
                "compute.googleapis.com/instance/cpu/utilization"
            )
            .unwrap()
            .threshold,
            0.9
        );
        assert_eq!(r.profiles("local_instance").len(), 1);
        assert!(r.profiles("unknown").is_empty());
    }
}
