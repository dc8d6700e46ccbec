//! The GCP HCL generator: golden files (exact text, `UPDATE_GOLDEN=1`
//! rewrites them), `terraform fmt -check` with the real binary, the offline
//! schema checker on the goldens and on generated plans of every shape, and
//! the checker's own failures.

use infraai_core::rules::RulePlanner;
use infraai_core::{
    Aligner, GenerateRequest, InfraPlan, MachineType, MetricProfile, MetricProfileRegistry,
    PlanRequest, PlannedResource, Planner, ResourceKind, ResourceName, RunId, Severity, StackType,
    TerraformGenerator,
};
use infraai_gcp::{GcpCloud, GcpConfig, SchemaChecker};
use proptest::prelude::*;
use std::path::{Path, PathBuf};
use std::process::Command;

fn gcp_profiles() -> MetricProfileRegistry {
    let mut registry = MetricProfileRegistry::empty();
    infraai_gcp::register_profiles(&mut registry);
    registry
}

const RUN: &str = "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";
const WEBHOOK: &str = "https://infraai.example.com/ops/webhook";
const SEED_GOAL: &str = "a backend API for 10k users under $100/month";
const SEED_DB_GOAL: &str =
    "a backend API with a PostgreSQL database for 10k users under $100/month";
const AUTOSCALED_GOAL: &str = "web app with database for 150k users";

fn config() -> GcpConfig {
    GcpConfig {
        ssh_source_ranges: vec!["203.0.113.0/24".into()],
        ..GcpConfig::new("demo-project", "us-central1", "us-central1-a")
    }
}

fn cloud() -> GcpCloud {
    GcpCloud::new(config()).unwrap()
}

fn run_id() -> RunId {
    RUN.parse().unwrap()
}

/// What the deploy loop does before generating: cloud, resource types,
/// machine types, monitoring from the registry.
fn bind(cloud: &GcpCloud, mut plan: InfraPlan, registry: &MetricProfileRegistry) -> InfraPlan {
    plan.cloud = cloud.cloud().to_string();
    plan.machine_type = cloud.machine_type(&plan.machine_type);
    for r in &mut plan.resources {
        r.resource_type = cloud.resource_type(r.kind);
        r.machine_type = r.machine_type.as_ref().map(|m| cloud.machine_type(m));
    }
    plan.monitoring = registry.bind(&plan);
    plan.validate().unwrap();
    plan
}

async fn planned(goal: &str) -> InfraPlan {
    let plan = RulePlanner::new(infraai_gcp::catalog())
        .plan(&PlanRequest {
            goal: goal.into(),
            cloud: "gcp".into(),
            region: Some("us-central1".into()),
        })
        .await
        .unwrap();
    bind(&cloud(), plan, &gcp_profiles())
}

fn generate(cloud: &GcpCloud, plan: &InfraPlan) -> infraai_core::Result<String> {
    let files = cloud.generate(&GenerateRequest {
        run_id: run_id(),
        plan,
        alert_webhook: Some(WEBHOOK.into()),
    })?;
    assert_eq!(files.files.len(), 1);
    Ok(files.files["main.tf"].clone())
}

fn resource(name: &str, kind: ResourceKind, machine: Option<&str>, count: u32) -> PlannedResource {
    PlannedResource {
        name: ResourceName::new(name).unwrap(),
        kind,
        resource_type: None,
        machine_type: machine.map(|m| MachineType::new(m).unwrap()),
        count,
        depends_on: vec![],
        description: String::new(),
    }
}

fn small_plan() -> InfraPlan {
    let mut firewall = resource("web-firewall", ResourceKind::Firewall, None, 1);
    firewall.depends_on = vec![ResourceName::new("web").unwrap()];
    let plan = InfraPlan {
        cloud: "gcp".into(),
        stack_type: StackType::WebApp,
        region: "us-central1".into(),
        machine_type: MachineType::new("e2-small").unwrap(),
        autoscaling: false,
        estimated_cost_usd: 12.23,
        risk_flags: vec![],
        resources: vec![
            resource("web", ResourceKind::Compute, Some("e2-small"), 1),
            firewall,
        ],
        monitoring: vec![],
        confidence: 0.7,
        summary: "one small web VM".into(),
    };
    bind(&cloud(), plan, &gcp_profiles())
}

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// Compares with the golden file, or rewrites it when `UPDATE_GOLDEN=1`.
fn golden(name: &str, text: &str) {
    let path = golden_dir().join(name);
    if std::env::var("UPDATE_GOLDEN").as_deref() == Ok("1") {
        std::fs::create_dir_all(golden_dir()).unwrap();
        std::fs::write(&path, text).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with UPDATE_GOLDEN=1 to create it)",
            path.display()
        )
    });
    if want != text {
        let line = want
            .lines()
            .zip(text.lines())
            .position(|(a, b)| a != b)
            .map_or(want.lines().count().min(text.lines().count()) + 1, |n| {
                n + 1
            });
        panic!(
            "{} differs from the generator's output at line {line} (UPDATE_GOLDEN=1 rewrites it):\n--- golden\n{}\n--- generated\n{}",
            path.display(),
            want.lines().nth(line - 1).unwrap_or("<end>"),
            text.lines().nth(line - 1).unwrap_or("<end>")
        );
    }
}

fn assert_clean(file: &str, text: &str) {
    let issues = SchemaChecker::google().check_text(file, text);
    assert!(
        issues.is_empty(),
        "{file} has schema issues:\n{}\n---\n{text}",
        issues
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn golden_small_plan() {
    let text = generate(&cloud(), &small_plan()).unwrap();
    assert_clean("small.tf", &text);
    golden("small.tf", &text);
}

#[tokio::test]
async fn golden_seed_goal() {
    let plan = planned(SEED_GOAL).await;
    // The rule planner reads no database into this goal.
    assert!(plan
        .resources
        .iter()
        .all(|r| r.kind != ResourceKind::Database));
    let text = generate(&cloud(), &plan).unwrap();
    assert_clean("seed-backend-api.tf", &text);
    golden("seed-backend-api.tf", &text);
}

#[tokio::test]
async fn golden_seed_goal_with_database() {
    let plan = planned(SEED_DB_GOAL).await;
    let kinds: Vec<_> = plan.resources.iter().map(|r| r.kind).collect();
    assert_eq!(
        kinds,
        [
            ResourceKind::Compute,
            ResourceKind::Database,
            ResourceKind::Firewall
        ]
    );
    assert!(plan.estimated_cost_usd <= 100.0);
    let text = generate(&cloud(), &plan).unwrap();
    assert_clean("seed-backend-api-db.tf", &text);
    // VM + Cloud SQL + monitoring + the webhook channel.
    for needle in [
        "resource \"google_compute_instance\" \"api\"",
        "resource \"google_sql_database_instance\" \"db\"",
        "resource \"google_monitoring_notification_channel\" \"ops_webhook\"",
        "resource \"google_monitoring_alert_policy\" \"api_cpu_high\"",
        "resource \"google_monitoring_alert_policy\" \"api_disk_read_high\"",
        "resource \"google_monitoring_alert_policy\" \"db_sql_cpu_high\"",
        "resource \"google_monitoring_alert_policy\" \"db_sql_connections_high\"",
    ] {
        assert!(text.contains(needle), "missing {needle}");
    }
    golden("seed-backend-api-db.tf", &text);
}

#[tokio::test]
async fn golden_autoscaled_group() {
    let plan = planned(AUTOSCALED_GOAL).await;
    assert!(plan.autoscaling);
    let text = generate(&cloud(), &plan).unwrap();
    assert_clean("autoscaled-web-db.tf", &text);
    for needle in [
        "resource \"google_compute_instance_template\" \"web\"",
        "resource \"google_compute_instance_group_manager\" \"web\"",
        "resource \"google_compute_autoscaler\" \"web\"",
        "resource \"google_compute_forwarding_rule\" \"web\"",
        "metric.label.instance_name = monitoring.regex.full_match(\\\"web-[a-z0-9]{4}\\\")",
    ] {
        assert!(text.contains(needle), "missing {needle}");
    }
    golden("autoscaled-web-db.tf", &text);
}

/// The real `terraform fmt -check` on every golden file.
#[test]
fn golden_files_pass_terraform_fmt() {
    let bin = std::env::var("TERRAFORM_BIN").unwrap_or_else(|_| "terraform".into());
    let version = Command::new(&bin).arg("version").output();
    let Some(version) = version.ok().filter(|o| o.status.success()) else {
        assert!(
            std::env::var("INFRAAI_REQUIRE_SERVICES").as_deref() != Ok("1"),
            "terraform ({bin}) is required (INFRAAI_REQUIRE_SERVICES=1); install terraform or set TERRAFORM_BIN (scripts/test-all.sh sets it)"
        );
        eprintln!("skipped: no terraform binary ({bin})");
        return;
    };
    eprintln!(
        "{}",
        String::from_utf8_lossy(&version.stdout)
            .lines()
            .next()
            .unwrap_or("")
    );
    let mut files: Vec<PathBuf> = std::fs::read_dir(golden_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "tf"))
        .collect();
    files.sort();
    assert!(files.len() >= 4, "golden files: {files:?}");
    for file in &files {
        let out = Command::new(&bin)
            .args(["fmt", "-check", "-diff", "-no-color"])
            .arg(file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "terraform fmt -check {} failed:\n{}{}",
            file.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let dir = std::env::temp_dir().join(format!("infraai-gcp-fmt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // Shapes the goldens do not cover: numbered instances, no webhook, no SSH.
    let mut several = small_plan();
    several.resources[0].count = 3;
    let no_ssh = GcpCloud::new(GcpConfig::new(
        "demo-project",
        "us-central1",
        "us-central1-a",
    ))
    .unwrap();
    let shapes = [
        ("several.tf", generate(&cloud(), &several).unwrap()),
        ("no-ssh.tf", generate(&no_ssh, &small_plan()).unwrap()),
        (
            "no-webhook.tf",
            cloud()
                .generate(&GenerateRequest {
                    run_id: run_id(),
                    plan: &small_plan(),
                    alert_webhook: None,
                })
                .unwrap()
                .files["main.tf"]
                .clone(),
        ),
    ];
    for (name, text) in shapes {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        let out = Command::new(&bin)
            .args(["fmt", "-check", "-diff", "-no-color"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "terraform fmt -check {name}:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    // And it does fail on a misaligned file, so the check is real.
    let bad = dir.join("bad.tf");
    std::fs::write(
        &bad,
        "variable \"a\" {\n  type = string\n  default = \"x\"\n}\n",
    )
    .unwrap();
    let out = Command::new(&bin)
        .args(["fmt", "-check", "-no-color"])
        .arg(&bad)
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).ok();
    assert!(
        !out.status.success(),
        "terraform fmt -check accepted a misaligned file"
    );
}

#[test]
fn the_checker_reads_the_files_a_run_writes() {
    // Each golden file as the main.tf of its own run directory.
    let root = std::env::temp_dir().join(format!("infraai-gcp-dirs-{}", std::process::id()));
    let mut checked = 0;
    for entry in std::fs::read_dir(golden_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "tf") {
            continue;
        }
        let dir = root.join(path.file_stem().unwrap());
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(&path, dir.join("main.tf")).unwrap();
        let issues = SchemaChecker::google().check_dir(&dir).unwrap();
        assert!(
            issues.is_empty(),
            "{}: {}",
            path.display(),
            issues
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        );
        checked += 1;
    }
    // Two copies of one configuration in a directory declare everything twice.
    let dir = root.join("twice");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(golden_dir().join("small.tf"), dir.join("a.tf")).unwrap();
    std::fs::copy(golden_dir().join("small.tf"), dir.join("b.tf")).unwrap();
    let issues = SchemaChecker::google().check_dir(&dir).unwrap();
    std::fs::remove_dir_all(&root).ok();
    assert!(checked >= 4);
    assert!(
        issues
            .iter()
            .any(|i| i.to_string() == "b.tf: google_compute_instance.web: google_compute_instance.web is declared more than once"),
        "{issues:?}"
    );
    assert!(SchemaChecker::google()
        .check_dir(Path::new("/nonexistent/infraai"))
        .is_err());
}

// ------------------------------------------------------------ checker failures

async fn seed_text() -> String {
    generate(&cloud(), &planned(SEED_DB_GOAL).await).unwrap()
}

/// Replaces the first `from` (which must be there) and checks the text.
fn mutated(text: &str, from: &str, to: &str) -> Vec<String> {
    assert!(text.contains(from), "{from:?} is not in the generated text");
    let bad = text.replacen(from, to, 1);
    SchemaChecker::google()
        .check_text("main.tf", &bad)
        .iter()
        .map(ToString::to_string)
        .collect()
}

fn assert_issue(issues: &[String], needle: &str) {
    assert!(
        issues.iter().any(|i| i.contains(needle)),
        "no issue contains {needle:?}: {issues:#?}"
    );
}

#[tokio::test]
async fn checker_rejects_aggregation_instead_of_aggregations() {
    let issues = mutated(&seed_text().await, "aggregations {", "aggregation {");
    assert_issue(
        &issues,
        "main.tf: google_monitoring_alert_policy.api_cpu_high: conditions[0].condition_threshold: unsupported block \"aggregation\"; did you mean \"aggregations\"?",
    );
}

#[tokio::test]
async fn checker_rejects_an_unknown_aligner() {
    let issues = mutated(&seed_text().await, "\"ALIGN_MEAN\"", "\"ALIGN_AVERAGE\"");
    assert_issue(
        &issues,
        "main.tf: google_monitoring_alert_policy.api_cpu_high: conditions[0].condition_threshold.aggregations[0]: invalid value \"ALIGN_AVERAGE\" for \"per_series_aligner\"",
    );
}

#[tokio::test]
async fn checker_rejects_durations_that_are_not_whole_minutes_or_not_durations() {
    let text = seed_text().await;
    let issues = mutated(
        &text,
        "duration        = \"60s\"",
        "duration        = \"90s\"",
    );
    assert_issue(
        &issues,
        "main.tf: google_monitoring_alert_policy.api_cpu_high: conditions[0].condition_threshold: \"duration\" = \"90s\" is not a whole number of minutes",
    );
    let issues = mutated(
        &text,
        "duration        = \"60s\"",
        "duration        = \"5m\"",
    );
    assert_issue(
        &issues,
        "\"duration\" = \"5m\" is not a duration in seconds",
    );
    let issues = mutated(
        &text,
        "alignment_period   = \"60s\"",
        "alignment_period   = \"30s\"",
    );
    assert_issue(
        &issues,
        "aggregations[0]: \"alignment_period\" = \"30s\" is below the minimum of 60s",
    );
}

#[tokio::test]
async fn checker_rejects_a_missing_required_argument() {
    let issues = mutated(&seed_text().await, "  combiner              = \"OR\"\n", "");
    assert_issue(
        &issues,
        "main.tf: google_monitoring_alert_policy.api_cpu_high: missing required argument \"combiner\"",
    );
    let text = seed_text().await;
    let issues = mutated(&text, "  machine_type = var.machine_type_api\n", "");
    assert_issue(
        &issues,
        "google_compute_instance.api: missing required argument \"machine_type\"",
    );
}

#[tokio::test]
async fn checker_rejects_other_mistakes() {
    let text = seed_text().await;
    let cases = [
        ("  combiner              = \"OR\"\n", "  combiner              = \"ANY\"\n", "invalid value \"ANY\" for \"combiner\""),
        ("tags         = [\"api\"]", "tagz = [\"api\"]", "unsupported argument \"tagz\"; did you mean \"tags\"?"),
        ("access_config {}", "access_config = {}", "\"access_config\" is a block, not an argument"),
        ("machine_type_api\n", "machine_type_apx\n", "reference to undeclared variable var.machine_type_apx"),
        ("google_monitoring_notification_channel.ops_webhook.name", "google_monitoring_notification_channel.nope.name", "reference to undeclared resource google_monitoring_notification_channel.nope"),
        ("connection_name\n", "connection_nam\n", "reference to google_sql_database_instance.db.connection_nam: google_sql_database_instance has no attribute \"connection_nam\"; did you mean \"connection_name\"?"),
        ("google_compute_instance.api.network_interface[0]", "google_compute_instance.api.network_interfaces[0]", "google_compute_instance has no attribute \"network_interfaces\"; did you mean \"network_interface\"?"),
        ("resource \"google_compute_firewall\"", "resource \"google_compute_firewal\"", "resource type \"google_compute_firewal\" is not in the schema; did you mean \"google_compute_firewall\"?"),
        ("threshold_value = 0.8", "threshold_value = \"high\"", "\"threshold_value\" expects a number"),
        ("tags         = [\"api\"]", "tags         = \"api\"", "\"tags\" expects list(string), got a string"),
        // hcl-rs itself refuses a redefined argument.
        ("resource \"google_compute_instance\" \"api\" {", "resource \"google_compute_instance\" \"api\" {\n  zone = \"x\"", "found redefined attribute"),
    ];
    for (from, to, needle) in cases {
        assert_issue(&mutated(&text, from, to), needle);
    }
    let issues = SchemaChecker::google().check_text("broken.tf", "resource \"x\" {");
    assert!(
        issues[0]
            .to_string()
            .starts_with("broken.tf: is not valid HCL"),
        "{issues:?}"
    );
}

// ------------------------------------------------------------ generator rules

#[tokio::test]
async fn monitoring_is_bound_right() {
    let text = seed_text().await;
    // Gauges are averaged, the disk counter is rated; the instance is chosen
    // by a label its metrics have.
    let policy = |label: &str| {
        let start = text
            .find(&format!(
                "resource \"google_monitoring_alert_policy\" \"{label}\""
            ))
            .unwrap();
        let end = text[start..].find("\n}\n").unwrap() + start;
        text[start..end].to_string()
    };
    let cpu = policy("api_cpu_high");
    assert!(cpu.contains("per_series_aligner = \"ALIGN_MEAN\""), "{cpu}");
    assert!(cpu.contains("metric.type = \\\"compute.googleapis.com/instance/cpu/utilization\\\" AND resource.type = \\\"gce_instance\\\" AND metric.label.instance_name = \\\"api\\\""), "{cpu}");
    assert!(cpu.contains("severity              = \"CRITICAL\""));
    assert!(cpu.contains(
        "notification_channels = [google_monitoring_notification_channel.ops_webhook.name]"
    ));
    let disk = policy("api_disk_read_high");
    assert!(
        disk.contains("per_series_aligner = \"ALIGN_RATE\""),
        "{disk}"
    );
    assert!(disk.contains("duration        = \"120s\""));
    assert!(!text.contains("resource.labels.instance_name"));
    let sql = policy("db_sql_cpu_high");
    assert!(sql.contains("resource.type = \\\"cloudsql_database\\\" AND resource.label.database_id = \\\"${var.project_id}:db-2e3f4a5b\\\""), "{sql}");
    // The channel matches what /ops/webhook accepts: the token as `?token=`.
    assert!(text.contains("type         = \"webhook_tokenauth\""));
    assert!(text.contains(
        "\"url\" = \"${var.ops_webhook_url}?token=${urlencode(var.ops_webhook_token)}\""
    ));
    assert!(text.contains("sensitive   = true"));
    assert!(!text.contains("webhook_basicauth"));
    assert!(text.contains(&format!("default     = \"{WEBHOOK}\"")));
}

#[test]
fn firewall_opens_http_to_the_service_and_ssh_only_to_configured_ranges() {
    let text = generate(&cloud(), &small_plan()).unwrap();
    assert!(text.contains("resource \"google_compute_firewall\" \"web-firewall\""));
    assert!(text.contains("ports    = [\"80\", \"443\"]"));
    assert!(text.contains("target_tags   = [\"web\"]"));
    let ssh_start = text
        .find("resource \"google_compute_firewall\" \"web-firewall_ssh\"")
        .unwrap();
    let ssh = &text[ssh_start..];
    assert!(ssh.contains("source_ranges = [\"203.0.113.0/24\"]"));
    assert!(ssh.contains("ports    = [\"22\"]"));
    // Without configured ranges there is no SSH rule at all.
    let no_ssh = GcpCloud::new(GcpConfig::new(
        "demo-project",
        "us-central1",
        "us-central1-a",
    ))
    .unwrap();
    let text = generate(&no_ssh, &small_plan()).unwrap();
    assert!(!text.contains("\"22\""));
    assert_clean("no-ssh.tf", &text);
}

#[test]
fn outputs_have_the_local_cloud_shape() {
    let mut plan = small_plan();
    plan.resources[0].count = 3;
    let plan = bind(&cloud(), plan, &gcp_profiles());
    let text = generate(&cloud(), &plan).unwrap();
    assert_clean("count.tf", &text);
    assert!(text.contains("count        = 3"));
    assert!(text.contains("name         = \"web-${count.index}\""));
    for i in 0..3 {
        assert!(text.contains(&format!(
            "\"web-{i}\" = \"http://${{google_compute_instance.web[{i}].network_interface[0].access_config[0].nat_ip}}/\""
        )));
        assert!(text.contains(&format!(
            "\"web-{i}\" = google_compute_instance.web[{i}].network_interface[0].access_config[0].nat_ip"
        )));
    }
    assert!(text
        .contains("metric.label.instance_name = monitoring.regex.full_match(\\\"web-[0-9]+\\\")"));
    assert!(text.contains("output \"urls\"") && text.contains("output \"public_ips\""));
}

#[test]
fn the_generator_refuses_what_gcp_would_reject() {
    let c = cloud();
    let bad = |plan: &InfraPlan, webhook: Option<&str>| {
        c.generate(&GenerateRequest {
            run_id: run_id(),
            plan,
            alert_webhook: webhook.map(str::to_string),
        })
        .unwrap_err()
        .to_string()
    };
    // A duration that is not a whole number of minutes.
    let mut registry = gcp_profiles();
    registry.register(
        "gce_instance",
        MetricProfile::above(
            "cpu_high",
            "compute.googleapis.com/instance/cpu/utilization",
            0.8,
            90,
            Severity::Critical,
            Aligner::Mean,
        ),
    );
    let plan = bind(&c, small_plan(), &registry);
    assert!(bad(&plan, Some(WEBHOOK)).contains("duration 90s is not a whole number of minutes"));
    // ALIGN_RATE on a gauge.
    let mut registry = gcp_profiles();
    registry.register(
        "gce_instance",
        MetricProfile::above(
            "cpu_high",
            "compute.googleapis.com/instance/cpu/utilization",
            0.8,
            60,
            Severity::Critical,
            Aligner::Rate,
        ),
    );
    let plan = bind(&c, small_plan(), &registry);
    assert!(bad(&plan, Some(WEBHOOK)).contains("is a gauge; ALIGN_RATE applies to counters only"));
    // A metric whose monitored resource the generator does not know.
    let mut registry = gcp_profiles();
    registry.register(
        "gce_instance",
        MetricProfile::above(
            "custom",
            "custom.googleapis.com/queue/depth",
            10.0,
            60,
            Severity::Warning,
            Aligner::Mean,
        ),
    );
    let plan = bind(&c, small_plan(), &registry);
    assert!(bad(&plan, Some(WEBHOOK)).contains("custom.googleapis.com/queue/depth"));
    // Another region than the configured one.
    let mut plan = small_plan();
    plan.region = "europe-west1".into();
    assert!(bad(&plan, Some(WEBHOOK))
        .contains("is for region europe-west1 but the GCP cloud deploys to us-central1"));
    // A webhook URL the channel cannot extend with ?token=.
    assert!(
        bad(&small_plan(), Some("https://x.example/ops/webhook?token=a")).contains("without query")
    );
    // Read replicas are not generated; one database is one instance.
    let mut plan = small_plan();
    let mut db = resource("db", ResourceKind::Database, Some("db-g1-small"), 2);
    db.resource_type = Some("cloudsql_database".into());
    plan.resources.push(db);
    assert!(bad(&plan, Some(WEBHOOK)).contains("database db has count 2"));
    // Kinds it does not create.
    let mut plan = small_plan();
    plan.resources
        .push(resource("lb", ResourceKind::LoadBalancer, None, 1));
    assert!(bad(&plan, Some(WEBHOOK)).contains(
        "lb is a LoadBalancer; the GCP generator does not create caches, load balancers"
    ));
    let mut plan = small_plan();
    plan.resources
        .push(resource("cache", ResourceKind::Cache, None, 1));
    assert!(bad(&plan, Some(WEBHOOK))
        .contains("cache is a Cache; the GCP generator does not create caches"));
    // A firewall with nothing to protect would open every VM of the network.
    let mut plan = small_plan();
    plan.resources.remove(0);
    plan.resources[0].depends_on.clear();
    plan.monitoring.clear();
    assert!(bad(&plan, Some(WEBHOOK)).contains("has no instance to apply to"));
}

#[test]
fn resource_types_and_machine_types() {
    let c = cloud();
    assert_eq!(c.cloud(), "gcp");
    assert_eq!(
        c.resource_type(ResourceKind::Compute).as_deref(),
        Some("gce_instance")
    );
    assert_eq!(
        c.resource_type(ResourceKind::InstanceGroup).as_deref(),
        Some("instance_group")
    );
    assert_eq!(
        c.resource_type(ResourceKind::Database).as_deref(),
        Some("cloudsql_database")
    );
    assert_eq!(
        c.resource_type(ResourceKind::Firewall).as_deref(),
        Some("gce_firewall_rule")
    );
    assert_eq!(c.resource_type(ResourceKind::LoadBalancer), None);
    let m = MachineType::new("e2-standard-2").unwrap();
    assert_eq!(c.machine_type(&m), m);
}

#[test]
fn no_webhook_means_no_channel_and_policies_that_notify_nobody() {
    let text = cloud()
        .generate(&GenerateRequest {
            run_id: run_id(),
            plan: &small_plan(),
            alert_webhook: None,
        })
        .unwrap()
        .files["main.tf"]
        .clone();
    assert!(!text.contains("google_monitoring_notification_channel"));
    assert!(!text.contains("ops_webhook_token"));
    assert!(text.contains("notification_channels = []"));
    assert_clean("no-webhook.tf", &text);
}

#[test]
fn hostile_profile_names_and_paths_stay_inside_strings() {
    let mut registry = gcp_profiles();
    registry.register(
        "gce_instance",
        MetricProfile::above(
            "x\" } resource \"evil\" \"y\" { ${file(\"/etc/passwd\")}",
            "compute.googleapis.com/instance/cpu/utilization\" ${var.project_id} %{if true}",
            0.5,
            60,
            Severity::Warning,
            Aligner::Mean,
        ),
    );
    let plan = bind(&cloud(), small_plan(), &registry);
    let text = generate(&cloud(), &plan).unwrap();
    assert_clean("hostile.tf", &text);
    let body = hcl::parse(&text).unwrap();
    let types: Vec<String> = body
        .blocks()
        .filter(|b| b.identifier() == "resource")
        .map(|b| b.labels()[0].as_str().to_string())
        .collect();
    assert!(!types.iter().any(|t| t == "evil"), "{types:?}");
    assert!(text.contains("$${file("));
    assert!(text.contains("%%{if true}"));
}

// ------------------------------------------------------------ every plan shape

fn arb_plan() -> impl Strategy<Value = InfraPlan> {
    (
        prop::collection::vec((1u32..=4, any::<bool>(), 0usize..4), 1..=3),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(computes, autoscaling, database, firewall)| {
            let machines = ["e2-small", "e2-medium", "e2-standard-2", "n2-standard-4"];
            let mut resources = Vec::new();
            for (i, (count, group, machine)) in computes.iter().enumerate() {
                let kind = if *group {
                    ResourceKind::InstanceGroup
                } else {
                    ResourceKind::Compute
                };
                let name = if i == 0 {
                    "app".to_string()
                } else {
                    format!("svc_{i}")
                };
                resources.push(resource(&name, kind, Some(machines[*machine]), *count));
            }
            if database {
                resources.push(resource(
                    "db",
                    ResourceKind::Database,
                    Some("db-g1-small"),
                    1,
                ));
            }
            if firewall {
                let mut fw = resource("app-firewall", ResourceKind::Firewall, None, 1);
                fw.depends_on = vec![ResourceName::new("app").unwrap()];
                resources.push(fw);
            }
            InfraPlan {
                cloud: "gcp".into(),
                stack_type: StackType::BackendApi,
                region: "us-central1".into(),
                machine_type: MachineType::new("e2-medium").unwrap(),
                autoscaling,
                estimated_cost_usd: 50.0,
                risk_flags: vec![],
                resources,
                monitoring: vec![],
                confidence: 0.8,
                summary: "generated".into(),
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Autoscaled or not, with or without a database and firewall, one to
    /// several instances: the output parses, passes the schema checker and
    /// has one uniquely named alert policy per bound monitoring entry.
    #[test]
    fn every_plan_shape_passes_the_checker(plan in arb_plan(), webhook in any::<bool>()) {
        let c = cloud();
        let plan = bind(&c, plan, &gcp_profiles());
        let text = c
            .generate(&GenerateRequest {
                run_id: run_id(),
                plan: &plan,
                alert_webhook: webhook.then(|| WEBHOOK.to_string()),
            })
            .unwrap()
            .files["main.tf"]
            .clone();
        let issues = SchemaChecker::google().check_text("main.tf", &text);
        prop_assert!(issues.is_empty(), "{:?}\n{}", issues, text);
        let body = hcl::parse(&text).unwrap();
        let policies: Vec<String> = body
            .blocks()
            .filter(|b| b.labels().first().map(|l| l.as_str()) == Some("google_monitoring_alert_policy"))
            .map(|b| b.labels()[1].as_str().to_string())
            .collect();
        let unique: std::collections::BTreeSet<_> = policies.iter().collect();
        prop_assert_eq!(policies.len(), plan.monitoring.len());
        prop_assert_eq!(unique.len(), policies.len());
        let groups = plan.resources.iter().filter(|r| r.kind == ResourceKind::InstanceGroup || (plan.autoscaling && r.kind == ResourceKind::Compute)).count();
        prop_assert_eq!(text.matches("resource \"google_compute_instance_group_manager\"").count(), groups);
        let autoscalers = if plan.autoscaling { groups } else { 0 };
        prop_assert_eq!(text.matches("resource \"google_compute_autoscaler\"").count(), autoscalers);
        prop_assert_eq!(text.contains("google_sql_database_instance"), plan.resources.iter().any(|r| r.kind == ResourceKind::Database));
        prop_assert!(!text.contains("aggregation {"), "singular aggregation block");
    }
}

/// An incident from a generated policy on a group member (or a Cloud SQL
/// instance) names the plan resource, so the ops loop finds its deployment.
#[tokio::test]
async fn alerts_from_generated_policies_name_the_plan_resource() {
    let text = generate(&cloud(), &planned(AUTOSCALED_GOAL).await).unwrap();
    let body = hcl::parse(&text).unwrap();
    let policy_labels = |label: &str| -> serde_json::Value {
        let block = body
            .blocks()
            .find(|b| {
                b.labels().iter().map(|l| l.as_str()).collect::<Vec<_>>()
                    == ["google_monitoring_alert_policy", label]
            })
            .unwrap_or_else(|| panic!("no policy {label}"));
        let attr = block
            .body()
            .attributes()
            .find(|a| a.key() == "user_labels")
            .unwrap();
        serde_json::to_value(hcl::Value::from(attr.expr().clone())).unwrap()
    };
    let fixture = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/gcp-monitoring/incident-open.json"
    ))
    .unwrap();
    let cases = [
        ("web_asg_cpu_high", "web-x1y2", "web", "instance_group"),
        ("db_sql_cpu_high", "", "db", "cloudsql_database"),
    ];
    let mut several = small_plan();
    several.resources[0].count = 3;
    let several = generate(&cloud(), &several).unwrap();
    let several = hcl::parse(&several).unwrap();
    let several_labels = several
        .blocks()
        .find(|b| b.labels().len() == 2 && b.labels()[1].as_str() == "web_cpu_high")
        .and_then(|b| {
            b.body()
                .attributes()
                .find(|a| a.key() == "user_labels")
                .cloned()
        })
        .map(|a| serde_json::to_value(hcl::Value::from(a.expr().clone())).unwrap())
        .unwrap();
    // Numbered instances keep their own names (an action targets one VM).
    assert!(
        several_labels.get("infraai-resource").is_none(),
        "{several_labels}"
    );
    for (policy, instance, resource, resource_type) in cases {
        let mut v: serde_json::Value = serde_json::from_slice(&fixture).unwrap();
        v["incident"]["policy_user_labels"] = policy_labels(policy);
        v["incident"]["metric"]["labels"]["instance_name"] = instance.into();
        let alert = infraai_gcp::GcpWebhookSource::normalize(&serde_json::to_vec(&v).unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(
            (alert.resource.as_str(), alert.resource_type.as_str()),
            (resource, resource_type)
        );
        assert_eq!(alert.labels["metric.instance_name"], instance);
    }
}

#[test]
fn gcp_profiles_match_the_seed() {
    use infraai_gcp::{CLOUDSQL_DATABASE, GCE_INSTANCE, INSTANCE_GROUP};
    let r = gcp_profiles();
    let cpu = &r.profiles(GCE_INSTANCE)[0];
    assert_eq!(
        (cpu.name.as_str(), cpu.threshold, cpu.duration_secs),
        ("cpu_high", 0.80, 60)
    );
    assert_eq!(
        (cpu.severity, cpu.aligner),
        (Severity::Critical, Aligner::Mean)
    );
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
    // The simulated cloud of core's tests borrows exactly these profiles.
    assert_eq!(r, infraai_core::testing::profiles());
    // ... and these guardrails, with earned autonomy off (every pair trusted).
    let mut g = infraai_gcp::guardrails(infraai_core::GuardrailConfig::default());
    assert!(g.earned_autonomy.enabled, "on by default");
    g.earned_autonomy.enabled = false;
    assert_eq!(g, infraai_core::testing::guardrails());
    assert_eq!(g.machine_ladder.len(), 7);
    assert_eq!(
        infraai_gcp::catalog().compute,
        infraai_core::testing::catalog().compute
    );
}
