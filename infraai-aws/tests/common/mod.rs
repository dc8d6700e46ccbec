//! Helpers of the AWS adapter's Terraform tests.
#![allow(dead_code)] // each test file uses a part

use infraai_aws::AwsCloud;
use infraai_core::rules::RulePlanner;
use infraai_core::*;
use infraai_terraform::{TerraformConfig, TerraformRunner};
use std::path::PathBuf;

pub mod moto;

/// A log sink that drops every line.
pub struct Quiet;
impl LogSink for Quiet {
    fn log(&self, _line: LogLine) {}
}

/// A runner of `TERRAFORM_BIN` (with the CLI configuration
/// `TF_CLI_CONFIG_FILE` names) in a fresh directory under the system's
/// temporary one; `None` (after saying why) without Terraform.
pub fn terraform(test: &str) -> Option<TerraformRunner> {
    terraform_with(test, &[])
}

/// [`terraform`] with extra environment variables for terraform.
pub fn terraform_with(test: &str, env: &[(&str, &str)]) -> Option<TerraformRunner> {
    let Some(bin) = std::env::var_os("TERRAFORM_BIN") else {
        let reason = "TERRAFORM_BIN is not set (point it at a terraform binary; scripts/test-all.sh sets it)";
        if std::env::var("INFRAAI_REQUIRE_SERVICES").as_deref() == Ok("1") {
            panic!("{test}: {reason}, but INFRAAI_REQUIRE_SERVICES=1");
        }
        eprintln!("skipping {test}: {reason}");
        return None;
    };
    let root = std::env::temp_dir().join(format!("infraai-aws-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let mut c = TerraformConfig::new(root).with_binary(PathBuf::from(bin));
    if let Some(rc) = std::env::var_os("TF_CLI_CONFIG_FILE") {
        c = c.with_cli_config_file(PathBuf::from(rc));
    }
    for (k, v) in env {
        c = c.with_env(*k, *v);
    }
    Some(TerraformRunner::new(c))
}

/// Plans `goal` with the rule planner and binds it to AWS the way the
/// deploy loop does.
pub async fn aws_plan(cloud: &AwsCloud, goal: &str) -> InfraPlan {
    let mut plan = RulePlanner::new(infraai_core::testing::catalog())
        .plan(&PlanRequest {
            goal: goal.into(),
            cloud: "aws".into(),
            region: None,
        })
        .await
        .expect("plan");
    plan.cloud = cloud.cloud().into();
    plan.machine_type = cloud.machine_type(&plan.machine_type);
    for r in &mut plan.resources {
        r.resource_type = cloud.resource_type(r.kind);
        r.machine_type = r.machine_type.as_ref().map(|m| cloud.machine_type(m));
    }
    let mut registry = MetricProfileRegistry::empty();
    infraai_aws::register_profiles(&mut registry);
    plan.monitoring = registry.bind(&plan);
    plan.validate().expect("valid plan");
    plan
}
