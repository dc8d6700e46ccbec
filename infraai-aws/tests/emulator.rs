//! The AWS configuration applied and operated for real: the generated
//! Terraform, the real hashicorp/aws provider, pointed at an AWS API
//! emulator (moto in server mode, an independent implementation of the AWS
//! APIs) through [`AwsConfig::endpoint_url`]. Apply creates what the plan
//! says; the ops loop with the AWS adapters takes CloudWatch alarms the
//! emulator delivers through SNS to a scale-up, a reboot and a
//! security-group change; destroy leaves nothing in the emulator.

use chrono::Utc;
use infraai_aws::{AwsCloud, AwsConfig};
use infraai_core::ops::Proposal;
use infraai_core::*;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

mod common;
use common::moto::{Inventory, Moto};
use common::*;

#[path = "emulator/ops.rs"]
mod emulator_loop;
use emulator_loop::Ops;

/// Test credentials: the emulator accepts any.
const ENV: [(&str, &str); 3] = [
    ("AWS_ACCESS_KEY_ID", "test"),
    ("AWS_SECRET_ACCESS_KEY", "test"),
    ("AWS_REGION", "us-east-1"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_applies_to_the_emulator_and_destroy_leaves_nothing() {
    let Some(moto) = Moto::start("emulator-apply") else {
        return;
    };
    let Some(runner) = terraform_with("emulator-apply", &ENV) else {
        return;
    };
    let cloud = AwsCloud::new(AwsConfig {
        ami_id: Some(moto.register_ami().await),
        // moto wants a size (or snapshot) with every root block device;
        // real AWS takes the AMI's when none is given.
        root_volume_gib: Some(8),
        endpoint_url: Some(moto.url.clone()),
        ..AwsConfig::default()
    })
    .unwrap();
    let plan = aws_plan(&cloud, "a web app with a postgres database for 500 users").await;
    // Where the alarms' SNS subscription delivers: it records what the
    // emulator posts, for the SNS source.
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/ops/webhook"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&receiver)
        .await;
    let webhook = format!("{}/ops/webhook?token=t0k", receiver.uri());
    let run_id = RunId::new();
    let files = cloud
        .generate(&GenerateRequest {
            run_id,
            plan: &plan,
            alert_webhook: Some(webhook.clone()),
        })
        .unwrap();
    let hcl = &files.files["main.tf"];
    for want in [
        "resource \"aws_instance\"",
        "resource \"aws_db_instance\"",
        "resource \"aws_sns_topic_subscription\"",
        "skip_requesting_account_id",
    ] {
        assert!(hcl.contains(want), "{want} missing:\n{hcl}");
    }
    let ws = runner.write_files(run_id, &files).await.unwrap();
    runner.init(&ws, &Quiet).await.expect("init");
    let report = runner.validate(&ws).await.expect("validate");
    assert!(report.valid, "{:#?}", report.diagnostics);
    let changes = runner.plan(&ws, &Quiet).await.expect("plan");
    assert!(
        changes.summary().contains("to add") || changes.summary().contains("to create"),
        "{}",
        changes.summary()
    );
    runner
        .apply(&ws, &Quiet)
        .await
        .expect("apply to the emulator");
    let outputs = runner.output(&ws).await.expect("outputs");
    let instance = outputs["instance_ids"]["web"]
        .as_str()
        .expect("an instance id");
    let database = outputs["database_identifiers"]["db"]
        .as_str()
        .expect("a database");
    let topic = outputs["sns_topic_arn"].as_str().expect("a topic");
    assert!(outputs["security_group_ids"]["web-firewall"]
        .as_str()
        .is_some_and(|g| g.starts_with("sg-")));

    // The emulator holds exactly that.
    let held = moto.inventory().await;
    assert_eq!(held.running_instances, [instance], "{held:#?}");
    assert_eq!(held.databases, [database], "{held:#?}");
    assert_eq!(held.topics, [topic], "{held:#?}");
    assert_eq!(held.subscription_endpoints, [webhook]);
    let alarms = plan.monitoring.len();
    assert!(alarms >= 2, "{:?}", plan.monitoring);
    assert_eq!(held.alarms.len(), alarms, "{held:#?}");

    let runner = std::sync::Arc::new(runner);
    let ops = Ops::new(&moto, &receiver, runner.clone(), &plan, run_id, &ws).await;
    cpu_high_is_scaled_up(&ops, instance).await;
    failed_status_checks_take_a_reboot_then_a_firewall_change(&ops, instance).await;

    runner.destroy(&ws, &Quiet).await.expect("destroy");
    let left = moto.inventory().await;
    assert_eq!(left, Inventory::default(), "destroy left {left:#?}");
    let _ = std::fs::remove_dir_all(&ws.dir);
}

/// CPU over 80 % on `web` → its alarm → a scale-up, approved → tfvars →
/// plan → apply → the emulator reports the next instance type, and CPU read
/// back with `GetMetricData` is below the threshold → resolved → the alarm
/// returns to OK.
async fn cpu_high_is_scaled_up(ops: &Ops<'_>, instance: &str) {
    let (cpu, dimension) = (("AWS/EC2", "CPUUtilization"), ("InstanceId", instance));
    let now = Utc::now();
    for (ago, value) in [(120, 91.0), (60, 96.5)] {
        let at = now - chrono::Duration::seconds(ago);
        ops.moto.put_metric(cpu, dimension, value, at).await;
    }
    let alarm = ops.alarm("web", "cpu_high").await;
    assert_eq!(ops.moto.evaluate_alarm(&alarm).await, "ALARM");
    let incident = ops.fired().await;
    let Some(Action::ScaleUp { machine_type }) =
        incident.decision.as_ref().map(|d| &d.recommended_action)
    else {
        panic!("a scale-up: {:#?}", incident.decision);
    };
    let preview = ops.last_preview();
    let set = preview.change_set.expect("a Terraform plan");
    let changed: Vec<_> = (set.changes.iter())
        .filter(|c| c.action != ChangeAction::NoOp)
        .map(|c| (c.address.as_str(), c.action))
        .collect();
    assert!(
        changed.contains(&("aws_instance.web", ChangeAction::Update)),
        "{changed:?}"
    );
    let in_place = changed.iter().all(|(_, a)| *a == ChangeAction::Update);
    assert!(in_place, "nothing replaced or deleted: {changed:?}");

    // The larger instance is less busy.
    ops.moto.put_metric(cpu, dimension, 22.0, Utc::now()).await;
    let after = ops.approve(incident.id).await;
    assert_eq!(after.status, IncidentStatus::Resolved, "{after:#?}");
    let described = ops.describe_instance(instance).await;
    let shown = format!("<instanceType>{machine_type}</instanceType>");
    assert!(described.contains(&shown), "{described}");

    assert_eq!(ops.moto.evaluate_alarm(&alarm).await, "OK");
    ops.cleared().await;
}

/// The status checks of `web` fail → their alarm → a reboot, approved
/// (`RebootInstances` after its dry run) → still failing → the incident is
/// open again → an MCP agent proposes allowing port 8080 from 10.0.0.0/8 on
/// `web-firewall`, approved (`AuthorizeSecurityGroupIngress`) → the emulator
/// reports the rule → the checks pass → resolved → OK.
async fn failed_status_checks_take_a_reboot_then_a_firewall_change(ops: &Ops<'_>, instance: &str) {
    let (checks, dimension) = (("AWS/EC2", "StatusCheckFailed"), ("InstanceId", instance));
    let now = Utc::now();
    for ago in [120, 60] {
        let at = now - chrono::Duration::seconds(ago);
        ops.moto.put_metric(checks, dimension, 1.0, at).await;
    }
    let alarm = ops.alarm("web", "instance_unhealthy").await;
    assert_eq!(ops.moto.evaluate_alarm(&alarm).await, "ALARM");
    let incident = ops.fired().await;
    let decision = incident.decision.as_ref().expect("a decision");
    assert_eq!(decision.recommended_action, Action::Restart {});
    let preview = ops.last_preview().summary;
    assert!(
        preview.contains(instance) && preview.contains("DryRun"),
        "{preview}"
    );

    let after = ops.approve(incident.id).await;
    assert_eq!(after.status, IncidentStatus::Unresolved, "{after:#?}");

    let change = FirewallChange {
        rule: ResourceName::new("web-firewall").unwrap(),
        allow: true,
        protocol: Protocol::Tcp,
        ports: vec![8080],
        source_ranges: vec!["10.0.0.0/8".parse().unwrap()],
    };
    let proposed = ops
        .agent
        .propose(&Proposal {
            incident_id: incident.id,
            action: Action::ModifyFirewall { change },
            reasoning: "the load balancer's health checks on 8080 are refused".into(),
            confidence: Some(0.7),
            proposer: Actor::new("mcp", "triage-agent"),
        })
        .await
        .expect("a proposal");
    assert_eq!(proposed.status, IncidentStatus::Pending, "{proposed:#?}");
    let preview = ops.last_preview().summary;
    assert!(
        preview.contains("sg-") && preview.contains("DryRun"),
        "{preview}"
    );

    ops.moto
        .put_metric(checks, dimension, 0.0, Utc::now())
        .await;
    let after = ops.approve(incident.id).await;
    assert_eq!(after.status, IncidentStatus::Resolved, "{after:#?}");
    let group = ops.security_group("web-firewall");
    let groups = (ops.moto)
        .query(
            "ec2",
            "2016-11-15",
            "DescribeSecurityGroups",
            &[("GroupId.1", &group)],
        )
        .await;
    assert!(
        groups.contains("<fromPort>8080</fromPort>") && groups.contains("10.0.0.0/8"),
        "{groups}"
    );
    assert_eq!(ops.moto.evaluate_alarm(&alarm).await, "OK");
    ops.cleared().await;
}
