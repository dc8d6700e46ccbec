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
//!
//! ```
//! use infraai_aws::{AwsCloud, AwsConfig};
//! use infraai_core::{ResourceKind, TerraformGenerator};
//!
//! let cloud = AwsCloud::new(AwsConfig::default()).unwrap();
//! assert_eq!(cloud.resource_type(ResourceKind::Compute).as_deref(), Some("aws_ec2_instance"));
//! let t = cloud.machine_type(&infraai_core::MachineType::new("e2-medium").unwrap());
//! assert_eq!(t.as_str(), "t3.medium");
//! ```

#![deny(missing_docs)]

mod config;
mod generator;
pub mod ladder;
mod sns;

pub use config::{is_aws_region, ApiEndpoint, AwsConfig, AwsCredentials};
pub use sns::{is_sns_url, rsa_public_key_from_pem, verify_signature, SnsAlertSource, SnsConfig};
pub use generator::{machine_type_var, AwsCloud, AWS_SECURITY_GROUP};
