//! Generated AWS configurations checked by the real `terraform validate` with
//! the real hashicorp/aws provider (from the provider mirror that
//! `TF_CLI_CONFIG_FILE` names, as scripts/test-all.sh sets up). Fails, never
//! skips, when `INFRAAI_REQUIRE_SERVICES=1` and Terraform is missing.

use infraai_aws::{AwsCloud, AwsConfig};
use infraai_core::*;
use infraai_terraform::TerraformRunner;

mod common;
use common::*;

async fn validate(runner: &TerraformRunner, files: &TerraformFiles) -> ValidationReport {
    let ws = runner
        .write_files(RunId::new(), files)
        .await
        .expect("write");
    runner
        .init(&ws, &Quiet)
        .await
        .expect("terraform init with the aws provider");
    runner.validate(&ws).await.expect("terraform validate ran")
}

#[tokio::test]
async fn small_full_and_autoscaled_plans_pass_terraform_validate() {
    let Some(runner) = terraform("validate") else {
        return;
    };
    let cloud = AwsCloud::new(AwsConfig {
        ami_id: Some("ami-0123456789abcdef0".into()),
        ssh_ranges: vec!["203.0.113.0/24".parse().unwrap()],
        ..AwsConfig::default()
    })
    .unwrap();
    let goals = [
        // small: one instance, no database
        ("a small web app for 100 users", false, false),
        // full: the README goal
        ("a backend API for 10k users under $100/month", false, false),
        // autoscaling group + launch template + RDS
        (
            "a backend API with a postgres database for 200k users",
            true,
            true,
        ),
    ];
    for (goal, autoscaled, with_db) in goals {
        let plan = aws_plan(&cloud, goal).await;
        assert_eq!(plan.autoscaling, autoscaled, "{goal}");
        let files = cloud
            .generate(&GenerateRequest {
                run_id: RunId::new(),
                plan: &plan,
                alert_webhook: Some("https://ops.example.com/ops/webhook?token=t0k\"${x}".into()),
            })
            .unwrap();
        let hcl = &files.files["main.tf"];
        assert!(
            hcl.contains("resource \"aws_cloudwatch_metric_alarm\""),
            "{hcl}"
        );
        assert!(hcl.contains("resource \"aws_sns_topic_subscription\""));
        assert_eq!(
            hcl.contains("resource \"aws_autoscaling_group\""),
            autoscaled
        );
        assert_eq!(hcl.contains("resource \"aws_launch_template\""), autoscaled);
        assert_eq!(hcl.contains("resource \"aws_db_instance\""), with_db);
        assert_eq!(hcl.contains("resource \"aws_instance\""), !autoscaled);
        let report = validate(&runner, &files).await;
        assert!(report.valid, "{goal}: {:#?}\n{hcl}", report.diagnostics);
    }
}

#[tokio::test]
async fn a_wrong_attribute_fails_terraform_validate() {
    let Some(runner) = terraform("invalid") else {
        return;
    };
    let cloud = AwsCloud::default();
    let plan = aws_plan(&cloud, "a small web app for 100 users").await;
    let mut files = cloud
        .generate(&GenerateRequest {
            run_id: RunId::new(),
            plan: &plan,
            alert_webhook: None,
        })
        .unwrap();
    let hcl = files.files.get_mut("main.tf").unwrap();
    // `instance_typ` is not an argument of aws_instance.
    *hcl = hcl.replacen("instance_type", "instance_typ", 1);
    let report = validate(&runner, &files).await;
    assert!(!report.valid);
    assert!(
        report
            .diagnostics
            .iter()
            .any(|d| d.summary.contains("Unsupported argument")
                || d.summary.contains("Missing required argument")),
        "{:#?}",
        report.diagnostics
    );
}
