//! The AWS configuration applied for real: the generated Terraform, the
//! real hashicorp/aws provider, pointed at an AWS API emulator (moto in
//! server mode, an independent implementation of the AWS APIs) through
//! [`AwsConfig::endpoint_url`]. Apply creates what the plan says; destroy
//! leaves nothing in the emulator.

use infraai_aws::{
    AwsActions, AwsCloud, AwsConfig, CloudWatchMetrics, Ec2Client, AWS_EC2_INSTANCE,
};
use infraai_core::*;

mod common;
use common::moto::{Inventory, Moto};
use common::*;

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
    let run_id = RunId::new();
    let files = cloud
        .generate(&GenerateRequest {
            run_id,
            plan: &plan,
            alert_webhook: Some("https://ops.example.com/ops/webhook?token=t0k".into()),
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
    assert_eq!(
        held.subscription_endpoints,
        ["https://ops.example.com/ops/webhook?token=t0k"]
    );
    let alarms = plan.monitoring.len();
    assert!(alarms >= 2, "{:?}", plan.monitoring);
    assert_eq!(held.alarms.len(), alarms, "{held:#?}");

    let group = outputs["security_group_ids"]["web-firewall"].as_str();
    our_calls_are_accepted(&moto, instance, group.unwrap()).await;
    let runner = std::sync::Arc::new(runner);
    scale_up_changes_the_instance_type(&moto, &runner, &ws, &plan, run_id, instance).await;

    runner.destroy(&ws, &Quiet).await.expect("destroy");
    let left = moto.inventory().await;
    assert_eq!(left, Inventory::default(), "destroy left {left:#?}");
    let _ = std::fs::remove_dir_all(&ws.dir);
}

/// Our own API clients against the emulator, as a real account would take
/// them: a reboot and a security-group rule (each after its dry run), and
/// a CloudWatch series the test puts, read back with `GetMetricData`.
async fn our_calls_are_accepted(moto: &Moto, instance: &str, group: &str) {
    let ec2 = Ec2Client::new(moto.api("ec2"));
    ec2.reboot(instance, true)
        .await
        .expect("RebootInstances, dry run");
    ec2.reboot(instance, false).await.expect("RebootInstances");
    let change = FirewallChange {
        rule: ResourceName::new("allow-8080").unwrap(),
        allow: true,
        protocol: Protocol::Tcp,
        ports: vec![8080],
        source_ranges: vec!["10.0.0.0/8".parse().unwrap()],
    };
    ec2.change_ingress(group, &change, true)
        .await
        .expect("ingress, dry run");
    ec2.change_ingress(group, &change, false)
        .await
        .expect("AuthorizeSecurityGroupIngress");
    let groups = moto
        .query(
            "ec2",
            "2016-11-15",
            "DescribeSecurityGroups",
            &[("GroupId.1", group)],
        )
        .await;
    assert!(
        groups.contains("<fromPort>8080</fromPort>") && groups.contains("10.0.0.0/8"),
        "{groups}"
    );

    let value = "93.5";
    let put = [
        ("Namespace", "AWS/EC2"),
        ("MetricData.member.1.MetricName", "CPUUtilization"),
        ("MetricData.member.1.Value", value),
        ("MetricData.member.1.Unit", "Percent"),
        ("MetricData.member.1.Dimensions.member.1.Name", "InstanceId"),
        ("MetricData.member.1.Dimensions.member.1.Value", instance),
    ];
    moto.query("monitoring", "2010-08-01", "PutMetricData", &put)
        .await;
    let store = std::sync::Arc::new(infraai_core::testing::MemoryStore::new());
    let metrics = CloudWatchMetrics::new(moto.api("monitoring"), store);
    let query = MetricQuery {
        resource: instance.into(),
        resource_type: AWS_EC2_INSTANCE.into(),
        metric: "AWS/EC2/CPUUtilization".into(),
        lookback_secs: 600,
    };
    let sample = metrics.current_value(&query).await.expect("GetMetricData");
    assert_eq!(sample.value, 93.5);
}

/// A scale-up through `AwsActions`: tfvars → plan → apply of that plan, in
/// place; the emulator then reports the next instance type on the ladder.
async fn scale_up_changes_the_instance_type(
    moto: &Moto,
    runner: &std::sync::Arc<infraai_terraform::TerraformRunner>,
    ws: &TfWorkspace,
    plan: &InfraPlan,
    run_id: RunId,
    instance: &str,
) {
    let store = std::sync::Arc::new(infraai_core::testing::MemoryStore::new());
    let now = chrono::Utc::now();
    let deployment = Deployment {
        deployment_id: DeploymentId::new(),
        cloud: "aws".into(),
        services: plan
            .resources
            .iter()
            .map(|r| r.name.as_str().into())
            .collect(),
        region: "us-east-1".into(),
        terraform_state: ws.dir.to_string_lossy().into_owned(),
        alert_webhook: None,
        resource_map: (plan.resources.iter())
            .map(|r| (r.name.as_str().to_string(), run_id))
            .collect(),
        resources: plan.resources.clone(),
        monitoring: plan.monitoring.clone(),
        outputs: runner.output(ws).await.expect("outputs"),
        created_at: now,
        updated_at: now,
    };
    store.put_deployment(&deployment).await.unwrap();
    let guardrails = infraai_aws::ladder::guardrails(GuardrailConfig::default());
    let web = plan
        .resources
        .iter()
        .find(|r| r.name.as_str() == "web")
        .unwrap();
    let current = web.machine_type.clone().unwrap();
    let next = guardrails
        .next_machine_type(&current)
        .expect("a larger type");
    let actions = AwsActions::new(
        Ec2Client::new(moto.api("ec2")),
        runner.clone(),
        store,
        guardrails,
    );
    let request = ActionRequest {
        incident_id: IncidentId::new(),
        deployment_id: Some(deployment.deployment_id),
        resource: "web".into(),
        resource_type: AWS_EC2_INSTANCE.into(),
        action: Action::ScaleUp {
            machine_type: next.clone(),
        },
    };
    let preview = actions.preview(&request).await.expect("preview");
    let set = preview.change_set.expect("a change set");
    let changed: Vec<_> = (set.changes.iter())
        .filter(|c| c.action != ChangeAction::NoOp)
        .map(|c| (c.address.as_str(), c.action))
        .collect();
    println!("scale-up plan: {changed:?}");
    assert!(
        changed.contains(&("aws_instance.web", ChangeAction::Update)),
        "{changed:?}"
    );
    assert!(
        changed.iter().all(|(_, a)| *a == ChangeAction::Update),
        "in place, nothing replaced or deleted: {changed:?}"
    );
    actions
        .execute(&request)
        .await
        .expect("scale-up applied to the emulator");
    let described = moto
        .query(
            "ec2",
            "2016-11-15",
            "DescribeInstances",
            &[("InstanceId.1", instance)],
        )
        .await;
    let shown = format!("<instanceType>{next}</instanceType>");
    assert!(
        described.contains(&shown),
        "{current} → {next}: {described}"
    );
}
