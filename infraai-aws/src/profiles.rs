//! What infraai knows about AWS besides the ladder ([`crate::ladder`]):
//! resource types, alert profiles, regions and failure patterns.

use infraai_core::{Aligner, FailurePattern, MetricProfile, MetricProfileRegistry, Severity};

/// EC2 instance (CloudWatch namespace `AWS/EC2`, dimension `InstanceId`).
pub const AWS_EC2_INSTANCE: &str = "aws_ec2_instance";
/// RDS database instance (namespace `AWS/RDS`, dimension `DBInstanceIdentifier`).
pub const AWS_RDS_INSTANCE: &str = "aws_rds_instance";
/// EC2 Auto Scaling group (namespace `AWS/EC2`, dimension `AutoScalingGroupName`).
pub const AWS_AUTOSCALING_GROUP: &str = "aws_autoscaling_group";

/// Regions the planner may choose; the first is the default.
#[rustfmt::skip]
pub const REGIONS: &[&str] = &[
    "us-east-1", "us-east-2", "us-west-1", "us-west-2", "ca-central-1", "eu-west-1", "eu-west-2",
    "eu-west-3", "eu-central-1", "eu-north-1", "ap-south-1", "ap-southeast-1", "ap-southeast-2",
    "ap-northeast-1", "ap-northeast-2", "sa-east-1",
];

/// (resource type, name, metric, threshold, seconds, severity, aligner).
#[rustfmt::skip]
const PROFILES: &[(&str, &str, &str, f64, u64, Severity, Aligner)] = &[
    (AWS_EC2_INSTANCE, "cpu_high", "AWS/EC2/CPUUtilization", 80.0, 60, Severity::Critical, Aligner::Mean),
    (AWS_EC2_INSTANCE, "instance_unhealthy", "AWS/EC2/StatusCheckFailed", 0.0, 120, Severity::Critical, Aligner::Max),
    (AWS_RDS_INSTANCE, "rds_cpu_high", "AWS/RDS/CPUUtilization", 75.0, 60, Severity::Critical, Aligner::Mean),
    (AWS_RDS_INSTANCE, "rds_connections_high", "AWS/RDS/DatabaseConnections", 100.0, 60, Severity::Warning, Aligner::Mean),
    (AWS_AUTOSCALING_GROUP, "asg_cpu_high", "AWS/EC2/CPUUtilization", 70.0, 120, Severity::Critical, Aligner::Mean),
];

/// Adds the AWS profiles for EC2 instances, RDS instances and Auto Scaling
/// groups. Metric paths are `<CloudWatch namespace>/<metric name>`;
/// CloudWatch reports CPU in percent, so its thresholds are 0–100.
pub fn register_profiles(registry: &mut MetricProfileRegistry) {
    for &(rtype, name, metric, threshold, secs, severity, aligner) in PROFILES {
        let profile = MetricProfile::above(name, metric, threshold, secs, severity, aligner);
        registry.register(rtype, profile);
    }
}

/// AWS's apply-failure patterns (`failure_patterns.json`: throttling, IAM
/// propagation, limits, opt-in, permissions, duplicates, invalid parameters).
pub fn failure_patterns() -> Vec<FailurePattern> {
    FailurePattern::compiled_in("aws", include_str!("failure_patterns.json"))
}
