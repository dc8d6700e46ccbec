//! Scale-up of an instance that belongs to a stored deployment goes through
//! Terraform (real terraform: tfvars → plan → apply), never through the
//! Compute Engine API. The configuration stands in for the GCP generator's:
//! a `machine_type_<instance>` variable feeding a `terraform_data` resource.

use infraai_core::guardrails::GuardrailConfig;
use infraai_core::testing::MemoryStore;
use infraai_core::*;
use infraai_gcp::*;
use infraai_terraform::{TerraformConfig, TerraformRunner};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Terraform from the environment; `None` (skip) unless
/// `INFRAAI_REQUIRE_SERVICES=1`, which makes a missing one a failure.
fn terraform(test: &str) -> Option<TerraformConfig> {
    let Some(bin) = std::env::var_os("TERRAFORM_BIN") else {
        let reason = "TERRAFORM_BIN is not set (point it at a terraform binary; scripts/test-all.sh sets it)";
        if std::env::var("INFRAAI_REQUIRE_SERVICES").as_deref() == Ok("1") {
            panic!("{test}: {reason}, but INFRAAI_REQUIRE_SERVICES=1");
        }
        eprintln!("skipping {test}: {reason}");
        return None;
    };
    let root = std::env::temp_dir().join(format!("infraai-gcp-{test}-{}", uuid::Uuid::now_v7()));
    let mut c = TerraformConfig::new(root).with_binary(PathBuf::from(bin));
    if let Some(rc) = std::env::var_os("TF_CLI_CONFIG_FILE") {
        c = c.with_cli_config_file(PathBuf::from(rc));
    }
    Some(c)
}

const MAIN_TF: &str = r#"
variable "machine_type_web-1" {
  type    = string
  default = "e2-standard-2"
}

resource "terraform_data" "web-1" {
  input = var.machine_type_web-1
}

output "machine_type" {
  value = terraform_data.web-1.output
}
"#;

struct Log;
impl LogSink for Log {
    fn log(&self, _: LogLine) {}
}

async fn deployed(
    runner: &TerraformRunner,
    store: &MemoryStore,
    main_tf: &str,
    cloud: &str,
) -> (Deployment, TfWorkspace) {
    let run_id = RunId::new();
    let ws = runner
        .write_files(run_id, &TerraformFiles::single(main_tf))
        .await
        .unwrap();
    runner.init(&ws, &Log).await.unwrap();
    runner.plan(&ws, &Log).await.unwrap();
    runner.apply(&ws, &Log).await.unwrap();
    let now = chrono::Utc::now();
    let deployment = Deployment {
        deployment_id: DeploymentId::new(),
        cloud: cloud.into(),
        services: vec!["web-1".into()],
        region: "us-central1".into(),
        terraform_state: ws.dir.display().to_string(),
        alert_webhook: None,
        resource_map: BTreeMap::from([("web-1".to_string(), run_id)]),
        resources: vec![],
        monitoring: vec![],
        outputs: BTreeMap::new(),
        created_at: now,
        updated_at: now,
    };
    store.put_deployment(&deployment).await.unwrap();
    (deployment, ws)
}

fn scale_up(deployment: Option<DeploymentId>) -> ActionRequest {
    ActionRequest {
        incident_id: IncidentId::new(),
        deployment_id: deployment,
        resource: "web-1".into(),
        resource_type: "gce_instance".into(),
        action: Action::ScaleUp {
            machine_type: MachineType::new("e2-standard-4").unwrap(),
        },
    }
}

async fn gcp(
    server: &MockServer,
    runner: Arc<TerraformRunner>,
    store: Arc<MemoryStore>,
) -> GcpActions {
    let config = ComputeConfig::new("demo-project", "us-central1-a")
        .with_base_url(format!("{}/compute/v1", server.uri()));
    let compute = ComputeEngine::new(config, Arc::new(StaticToken(Secret::new("t")))).unwrap();
    GcpActions::new(
        Arc::new(compute),
        infraai_gcp::guardrails(GuardrailConfig::default()),
    )
    .with_terraform(runner, store)
}

#[tokio::test]
async fn terraform_managed_instances_scale_through_terraform() {
    let Some(config) = terraform("terraform_managed_instances_scale_through_terraform") else {
        return;
    };
    let root = config.work_root.clone();
    let runner = Arc::new(TerraformRunner::new(config));
    let store = Arc::new(MemoryStore::new());
    let (deployment, ws) = deployed(&runner, &store, MAIN_TF, "gcp").await;
    let server = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(500))
        .expect(0)
        .named("no Compute Engine call on the Terraform path")
        .mount(&server)
        .await;
    let actions = gcp(&server, runner.clone(), store.clone()).await;

    let preview = actions.preview(&scale_up(None)).await.unwrap();
    let set = preview.change_set.clone().expect("a Terraform change set");
    assert_eq!(set.changes.len(), 1, "{set:?}");
    assert_eq!(set.changes[0].address, "terraform_data.web-1");
    assert!(
        preview.summary.contains("machine_type_web-1"),
        "{}",
        preview.summary
    );
    // The preview changed nothing.
    assert_eq!(
        runner.outputs(&ws).await.unwrap()["machine_type"].value,
        "e2-standard-2"
    );

    let report = actions
        .execute(&scale_up(Some(deployment.deployment_id)))
        .await
        .unwrap();
    assert_eq!(report.details["path"], "terraform");
    assert_eq!(report.details["variable"], "machine_type_web-1");
    assert_eq!(
        report.details["change_set"],
        serde_json::to_value(&set).unwrap()
    );
    assert_eq!(
        runner.outputs(&ws).await.unwrap()["machine_type"].value,
        "e2-standard-4"
    );
    let tfvars = std::fs::read_to_string(ws.dir.join("actions.auto.tfvars.json")).unwrap();
    assert!(
        tfvars.contains("\"machine_type_web-1\": \"e2-standard-4\""),
        "{tfvars}"
    );

    let _ = tokio::fs::remove_dir_all(root).await;
}

#[tokio::test]
async fn a_plan_that_changes_nothing_is_an_error_not_a_success() {
    let Some(config) = terraform("a_plan_that_changes_nothing_is_an_error_not_a_success") else {
        return;
    };
    let root = config.work_root.clone();
    let runner = Arc::new(TerraformRunner::new(config));
    let store = Arc::new(MemoryStore::new());
    // The configuration does not use the variable.
    deployed(
        &runner,
        &store,
        "resource \"terraform_data\" \"web-1\" {}\n",
        "gcp",
    )
    .await;
    let server = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(500))
        .expect(0)
        .mount(&server)
        .await;
    let actions = gcp(&server, runner, store).await;
    for result in [
        actions.preview(&scale_up(None)).await.map(|p| p.summary),
        actions.execute(&scale_up(None)).await.map(|r| r.summary),
    ] {
        let err = result.unwrap_err();
        assert!(matches!(err, Error::Conflict { .. }), "{err}");
        assert!(err.to_string().contains("changes nothing"), "{err}");
    }
    let _ = tokio::fs::remove_dir_all(root).await;
}

#[tokio::test]
async fn instances_no_deployment_knows_scale_through_the_api() {
    // No Terraform runs on this path: a runner without a binary will do.
    let config = TerraformConfig::new(std::env::temp_dir().join("infraai-gcp-unused"));
    let runner = Arc::new(TerraformRunner::new(config));
    let store = Arc::new(MemoryStore::new());
    let server = MockServer::start().await;
    Mock::given(wiremock::matchers::method("GET"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(
                serde_json::from_str::<serde_json::Value>(
                    &std::fs::read_to_string(format!(
                        "{}/../tests/fixtures/gcp-compute/instance-get.json",
                        env!("CARGO_MANIFEST_DIR")
                    ))
                    .unwrap(),
                )
                .unwrap(),
            ),
        )
        .expect(1)
        .mount(&server)
        .await;
    let preview = gcp(&server, runner, store)
        .await
        .preview(&scale_up(None))
        .await
        .unwrap();
    assert!(preview.change_set.is_none());
    assert!(
        preview.summary.contains("through the Compute Engine API"),
        "{}",
        preview.summary
    );
}
