//! # infraai-aws
//!
//! Amazon Web Services for infraai — a new cloud as a new adapter and
//! nothing else:
//!
//! * [`AwsCloud`]: a [`infraai_core::TerraformGenerator`] for EC2 instances,
//!   Auto Scaling groups with launch templates, RDS PostgreSQL, security
//!   groups, CloudWatch alarms bound from the metric-profile registry and an
//!   SNS topic with an HTTPS subscription to the ops webhook.
//! * [`ladder`]: the `t3` instance ladder, the mapping from planned sizes
//!   and the AWS guardrail allow-lists.
//! * [`SnsAlertSource`]: an [`infraai_core::AlertSource`] for SNS HTTPS
//!   deliveries of CloudWatch alarm notifications (signature verified,
//!   subscriptions confirmed only when signed and on the SNS host).
//! * [`AwsActions`]: an [`infraai_core::ActionHandler`] — scale-up through
//!   Terraform tfvars, reboot and security-group changes through the EC2
//!   API ([`Ec2Client`], SigV4 by [`sigv4`]).
//! * [`CloudWatchMetrics`]: an [`infraai_core::MetricSource`] over
//!   CloudWatch `GetMetricData`.
//!
//! ```
//! use infraai_aws::{AwsCloud, AwsConfig};
//! use infraai_core::{ResourceKind, TerraformGenerator};
//!
//! let cloud = AwsCloud::new(AwsConfig::default()).unwrap();
//! assert_eq!(cloud.resource_type(ResourceKind::Compute).as_deref(), Some("aws_ec2_instance"));
//! let t = cloud.machine_type(&infraai_core::MachineType::new("e2-medium").unwrap());
//! assert_eq!(t.as_str(), "t3.medium");
//!
//! // A CloudWatch alarm notification (the SNS `Message`) as an alert.
//! let alert = infraai_aws::SnsAlertSource::normalize_alarm(
//!     r#"{"AlarmName": "cpu", "NewStateValue": "OK", "Trigger": {"MetricName": "CPUUtilization",
//!        "Namespace": "AWS/EC2", "Dimensions": [{"name": "InstanceId", "value": "i-0abc"}],
//!        "Threshold": 80.0}}"#,
//! )
//! .unwrap()
//! .expect("OK is a resolved alert; only INSUFFICIENT_DATA gives none");
//! assert_eq!((alert.resource.as_str(), alert.metric.as_str()), ("i-0abc", "AWS/EC2/CPUUtilization"));
//! assert_eq!(alert.state, infraai_core::AlertState::Resolved);
//! ```

#![deny(missing_docs)]

mod actions;
mod client;
mod cloudwatch;
mod config;
mod ec2;
mod generator;
pub mod ladder;
mod profiles;
mod resolve;
pub mod sigv4;
mod sns;

pub use actions::AwsActions;
pub use client::AwsApi;
pub use cloudwatch::CloudWatchMetrics;
pub use config::{is_aws_region, ApiEndpoint, AwsConfig, AwsCredentials};
pub use ec2::Ec2Client;
pub use generator::{
    AwsCloud, AWS_SECURITY_GROUP, OUTPUT_AUTOSCALING_GROUPS, OUTPUT_DATABASE_IDENTIFIERS,
    OUTPUT_INSTANCE_IDS, OUTPUT_SECURITY_GROUP_IDS,
};
pub use profiles::{
    failure_patterns, register_profiles, AWS_AUTOSCALING_GROUP, AWS_EC2_INSTANCE, AWS_RDS_INSTANCE,
    REGIONS,
};
pub use sns::{
    is_sns_delivery, is_sns_url, rsa_public_key_from_pem, verify_signature, SnsAlertSource,
    SnsConfig,
};
