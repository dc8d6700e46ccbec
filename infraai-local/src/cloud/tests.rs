use super::*;
use infraai_core::{ApplyFailureClassifier, FailureClass, ResourceName, RunId, StackType};

#[test]
fn local_patterns_parse_and_come_before_the_builtin_ones() {
    let patterns = local_failure_patterns();
    assert_eq!(patterns.len(), 5);
    let c = ApplyFailureClassifier::builtin().prepend(patterns);
    let start_failure = "local-exec provisioner error: Error running command: exit status 1. Output: instance api did not start:\ninfraai-demo-service: cannot bind 127.0.0.1:40123: Address already in use (os error 98)";
    assert_eq!(c.classify_message(start_failure), FailureClass::NameInUse);
    for store_failure in [
        "database db did not start:\n2026-12-07 01:00:00 UTC [1] LOG:  could not bind IPv4 address \"127.0.0.1\": Address already in use",
        "cache cache did not start:\n1:M 07 Dec 2026 01:00:00.000 # Warning: Could not create server TCP listening socket 127.0.0.1:40123: bind: Address already in use",
    ] {
        assert_eq!(c.classify_message(store_failure), FailureClass::NameInUse, "{store_failure}");
    }
    assert_eq!(
        c.classify_message("mkdir: cannot create directory '/var/x': No space left on device"),
        FailureClass::QuotaExceeded
    );
    assert_eq!(
        c.classify_message("sh: 1: /opt/infraai/bin/svc: Permission denied"),
        FailureClass::PermissionDenied
    );
    assert_eq!(
        c.classify_message("sh: 1: Cannot fork"),
        FailureClass::Transient
    );
}

fn resource(name: &str, kind: ResourceKind, count: u32, deps: &[&str]) -> PlannedResource {
    PlannedResource {
        name: ResourceName::new(name).unwrap(),
        kind,
        resource_type: None,
        machine_type: None,
        count,
        depends_on: deps
            .iter()
            .map(|d| ResourceName::new(*d).unwrap())
            .collect(),
        description: String::new(),
    }
}

fn plan(resources: Vec<PlannedResource>) -> InfraPlan {
    InfraPlan {
        cloud: "local".into(),
        stack_type: StackType::WebApp,
        region: "local".into(),
        machine_type: MachineType::new("e2-small").unwrap(),
        autoscaling: false,
        estimated_cost_usd: 0.0,
        risk_flags: vec![],
        resources,
        monitoring: vec![],
        confidence: 0.8,
        summary: "test".into(),
    }
}

fn cloud() -> LocalCloud {
    LocalCloud::new(LocalConfig {
        state_dir: PathBuf::from("/tmp/state"),
        service_program: PathBuf::from("/bin/demo"),
        service_subcommand: None,
    })
}

fn generate(p: &InfraPlan) -> Result<String> {
    let request = GenerateRequest {
        run_id: RunId::new(),
        plan: p,
        alert_webhook: None,
    };
    Ok(cloud().generate(&request)?.files["main.tf"].clone())
}

#[test]
fn a_group_runs_counted_instances_behind_a_balancer() {
    let hcl = generate(&plan(vec![resource(
        "web",
        ResourceKind::InstanceGroup,
        2,
        &[],
    )]))
    .unwrap();
    for expected in [
        r#"variable "instances_web""#,
        "count = var.instances_web",
        r#"resource "terraform_data" "web_instance""#,
        r#""/tmp/state/groups/web/${count.index}""#,
        r#""web-${count.index}""#,
        r#""BALANCE""#,
        r#"= "/tmp/state/groups/web"
"#,
    ] {
        assert!(hcl.contains(expected), "{expected} missing from\n{hcl}");
    }
}

#[test]
fn a_plan_without_compute_is_refused() {
    let e = generate(&plan(vec![resource("fw", ResourceKind::Firewall, 1, &[])])).unwrap_err();
    assert!(e.to_string().contains("no compute resource"), "{e}");
}
