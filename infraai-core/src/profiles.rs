//! The metric-profile registry: which alert policies each resource type gets.
//!
//! Monitoring in a plan is always bound from here, never taken from LLM
//! output, so every deployed resource is watched with thresholds an operator
//! chose.

use crate::domain::{Aligner, Comparison, InfraPlan, MonitoringPolicy, Severity};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// GCP Compute Engine instance (Cloud Monitoring monitored-resource type).
pub const GCE_INSTANCE: &str = "gce_instance";
/// GCP Cloud SQL database.
pub const CLOUDSQL_DATABASE: &str = "cloudsql_database";
/// GCP managed instance group.
pub const INSTANCE_GROUP: &str = "instance_group";
/// AWS EC2 instance (CloudWatch namespace `AWS/EC2`, dimension `InstanceId`).
pub const AWS_EC2_INSTANCE: &str = "aws_ec2_instance";
/// AWS RDS database instance (namespace `AWS/RDS`, dimension `DBInstanceIdentifier`).
pub const AWS_RDS_INSTANCE: &str = "aws_rds_instance";
/// AWS EC2 Auto Scaling group (namespace `AWS/EC2`, dimension `AutoScalingGroupName`).
pub const AWS_AUTOSCALING_GROUP: &str = "aws_autoscaling_group";

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

/// Resource type → profiles. Start from [`MetricProfileRegistry::builtin`] and
/// add your own with [`MetricProfileRegistry::register`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricProfileRegistry {
    by_type: BTreeMap<String, Vec<MetricProfile>>,
}

impl MetricProfileRegistry {
    /// An empty registry.
    pub fn empty() -> Self {
        Self::default()
    }

    /// The built-in profiles for GCP compute instances, Cloud SQL and
    /// instance groups, and for AWS EC2 instances, RDS instances and Auto
    /// Scaling groups. AWS metric paths are `<CloudWatch namespace>/<metric
    /// name>` (e.g. `AWS/EC2/CPUUtilization`); CloudWatch reports CPU in
    /// percent, so its thresholds are 0–100.
    pub fn builtin() -> Self {
        use Aligner::{Max, Mean, Rate};
        use Severity::{Critical, Warning};
        let mut r = Self::empty();
        r.register(
            GCE_INSTANCE,
            MetricProfile::above(
                "cpu_high",
                "compute.googleapis.com/instance/cpu/utilization",
                0.80,
                60,
                Critical,
                Mean,
            ),
        );
        r.register(
            GCE_INSTANCE,
            MetricProfile::above(
                "disk_read_high",
                "compute.googleapis.com/instance/disk/read_bytes_count",
                1e8,
                120,
                Warning,
                Rate,
            ),
        );
        r.register(
            CLOUDSQL_DATABASE,
            MetricProfile::above(
                "sql_cpu_high",
                "cloudsql.googleapis.com/database/cpu/utilization",
                0.75,
                60,
                Critical,
                Mean,
            ),
        );
        r.register(
            CLOUDSQL_DATABASE,
            MetricProfile::above(
                "sql_connections_high",
                "cloudsql.googleapis.com/database/network/connections",
                100.0,
                60,
                Warning,
                Mean,
            ),
        );
        r.register(
            INSTANCE_GROUP,
            MetricProfile::above(
                "asg_cpu_high",
                "compute.googleapis.com/instance/cpu/utilization",
                0.70,
                120,
                Critical,
                Mean,
            ),
        );
        r.register(
            AWS_EC2_INSTANCE,
            MetricProfile::above(
                "cpu_high",
                "AWS/EC2/CPUUtilization",
                80.0,
                60,
                Critical,
                Mean,
            ),
        );
        r.register(
            AWS_EC2_INSTANCE,
            MetricProfile::above(
                "instance_unhealthy",
                "AWS/EC2/StatusCheckFailed",
                0.0,
                120,
                Critical,
                Max,
            ),
        );
        r.register(
            AWS_RDS_INSTANCE,
            MetricProfile::above(
                "rds_cpu_high",
                "AWS/RDS/CPUUtilization",
                75.0,
                60,
                Critical,
                Mean,
            ),
        );
        r.register(
            AWS_RDS_INSTANCE,
            MetricProfile::above(
                "rds_connections_high",
                "AWS/RDS/DatabaseConnections",
                100.0,
                60,
                Warning,
                Mean,
            ),
        );
        r.register(
            AWS_AUTOSCALING_GROUP,
            MetricProfile::above(
                "asg_cpu_high",
                "AWS/EC2/CPUUtilization",
                70.0,
                120,
                Critical,
                Mean,
            ),
        );
        r
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

    #[test]
    fn builtin_profiles_match_the_seed() {
        let r = MetricProfileRegistry::builtin();
        let cpu = &r.profiles(GCE_INSTANCE)[0];
        assert_eq!(
            (cpu.name.as_str(), cpu.threshold, cpu.duration_secs),
            ("cpu_high", 0.80, 60)
        );
        assert_eq!(cpu.severity, Severity::Critical);
        assert_eq!(cpu.aligner, Aligner::Mean);
        let disk = r
            .find(
                GCE_INSTANCE,
                "compute.googleapis.com/instance/disk/read_bytes_count",
            )
            .unwrap();
        assert_eq!(
            (disk.threshold, disk.duration_secs, disk.aligner),
            (1e8, 120, Aligner::Rate)
        );
        let sql: Vec<_> = r
            .profiles(CLOUDSQL_DATABASE)
            .iter()
            .map(|p| (p.name.as_str(), p.threshold))
            .collect();
        assert_eq!(
            sql,
            [("sql_cpu_high", 0.75), ("sql_connections_high", 100.0)]
        );
        let asg = &r.profiles(INSTANCE_GROUP)[0];
        assert_eq!(
            (asg.name.as_str(), asg.threshold, asg.duration_secs),
            ("asg_cpu_high", 0.70, 120)
        );
    }

    #[test]
    fn bind_ignores_planner_monitoring_and_uses_registry() {
        let r = MetricProfileRegistry::builtin();
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
        let mut r = MetricProfileRegistry::builtin();
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
