//! The scale-up path through real Terraform and the real AWS provider,
//! offline. Without an AWS account nothing can be applied and nothing can be
//! refreshed, so the test (1) adds a provider override with fake static
//! credentials and every account/metadata check skipped, (2) plans with
//! `-refresh=false` (through `TF_CLI_ARGS_plan`), and (3) synthesizes the
//! state of a deployed configuration from Terraform's own create plan
//! (unknown values become placeholder ids or empty values per the provider
//! schema), re-planning until the plan is empty. Then `AwsActions::preview`
//! of a scale-up must plan exactly one in-place update of that instance.
//! Fails, never skips, when `INFRAAI_REQUIRE_SERVICES=1` and Terraform is
//! missing.

use infraai_aws::*;
use infraai_core::testing::MemoryStore;
use infraai_core::*;
use infraai_terraform::PLAN_FILE;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

mod common;
use common::*;

const OFFLINE_PROVIDER: &str = r#"provider "aws" {
  access_key                  = "AKIDOFFLINE"
  secret_key                  = "offline"
  skip_credentials_validation = true
  skip_requesting_account_id  = true
  skip_metadata_api_check     = true
  skip_region_validation      = true
}
"#;

fn tf(bin: &Path, dir: &Path, args: &[&str]) -> Vec<u8> {
    let mut c = Command::new(bin);
    c.args(args).current_dir(dir);
    if let Some(rc) = std::env::var_os("TF_CLI_CONFIG_FILE") {
        c.env("TF_CLI_CONFIG_FILE", rc);
    }
    let out = c.output().expect("run terraform");
    assert!(
        out.status.success(),
        "terraform {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn empty_of(ty: &Value) -> Value {
    match ty {
        Value::String(s) if s == "string" => json!(""),
        Value::String(s) if s == "number" => json!(0),
        Value::String(s) if s == "bool" => json!(false),
        Value::Array(a) if matches!(a.first().and_then(Value::as_str), Some("list" | "set")) => {
            json!([])
        }
        Value::Array(_) => json!({}),
        _ => Value::Null,
    }
}

/// A resource's state attributes from its planned values: unknowns become
/// placeholder ids / ARNs or empty values of their schema type.
fn attributes(schema: &Value, kind: &str, name: &str, after: &Value, unknown: &Value) -> Value {
    let block = &schema[kind]["block"];
    let mut v: Map<String, Value> = after.as_object().cloned().unwrap_or_default();
    if let Some(u) = unknown.as_object() {
        for (k, flag) in u {
            if flag != &Value::Bool(true) || !v.get(k).is_none_or(Value::is_null) {
                continue;
            }
            let value = match k.as_str() {
                "id" => json!(format!("{kind}-{name}-id")),
                "arn" => json!(format!("arn:aws:test:us-east-1:123456789012:{kind}/{name}")),
                _ if block["attributes"].get(k).is_some() => {
                    empty_of(&block["attributes"][k]["type"])
                }
                _ if block["block_types"].get(k).is_some() => json!([]),
                _ => Value::Null,
            };
            v.insert(k.clone(), value);
        }
    }
    if v.get("id").is_none_or(Value::is_null) {
        v.insert("id".into(), json!(format!("{kind}-{name}-id")));
    }
    Value::Object(v)
}

#[tokio::test]
async fn scale_up_preview_plans_one_in_place_update_of_that_instance() {
    let refresh_off = [("TF_CLI_ARGS_plan", "-refresh=false")];
    let Some(runner) = terraform_with("scale", &refresh_off) else {
        return;
    };
    let runner = Arc::new(runner);
    let bin = PathBuf::from(std::env::var_os("TERRAFORM_BIN").expect("TERRAFORM_BIN"));

    // A small plan bound to AWS, as the deploy loop would write it.
    let cloud = AwsCloud::new(AwsConfig {
        ami_id: Some("ami-0123456789abcdef0".into()),
        ..AwsConfig::default()
    })
    .unwrap();
    let plan = aws_plan(&cloud, "a small web app for 100 users").await;
    let web = plan
        .resources
        .iter()
        .find(|r| r.kind == ResourceKind::Compute)
        .unwrap()
        .clone();
    let run_id = RunId::new();
    let mut files = cloud
        .generate(&GenerateRequest {
            run_id,
            plan: &plan,
            alert_webhook: Some("https://ops.example.com/ops/webhook".into()),
        })
        .unwrap();
    files
        .files
        .insert("offline_override.tf".into(), OFFLINE_PROVIDER.into());
    let ws = runner.write_files(run_id, &files).await.unwrap();
    runner.init(&ws, &Quiet).await.expect("init");

    // Synthesize the deployed state until Terraform sees nothing to do.
    let schema: Value =
        serde_json::from_slice(&tf(&bin, &ws.dir, &["providers", "schema", "-json"])).unwrap();
    let schema =
        &schema["provider_schemas"]["registry.terraform.io/hashicorp/aws"]["resource_schemas"];
    let mut converged = false;
    for serial in 1..=4 {
        runner.plan(&ws, &Quiet).await.expect("offline plan");
        let shown: Value =
            serde_json::from_slice(&tf(&bin, &ws.dir, &["show", "-json", PLAN_FILE])).unwrap();
        let changes = shown["resource_changes"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if changes
            .iter()
            .all(|c| c["change"]["actions"] == json!(["no-op"]))
        {
            converged = true;
            break;
        }
        let resources: Vec<Value> = changes
            .iter()
            .map(|c| {
                let (kind, name) = (c["type"].as_str().unwrap(), c["name"].as_str().unwrap());
                json!({
                    "mode": "managed", "type": kind, "name": name,
                    "provider": "provider[\"registry.terraform.io/hashicorp/aws\"]",
                    "instances": [{
                        "schema_version": schema[kind]["version"],
                        "attributes": attributes(schema, kind, name, &c["change"]["after"], &c["change"]["after_unknown"]),
                        "sensitive_attributes": []
                    }]
                })
            })
            .collect();
        let state = json!({
            "version": 4, "terraform_version": "1.0.0", "serial": serial,
            "lineage": "0190f0aa-0000-7000-8000-000000000001", "outputs": {}, "resources": resources
        });
        std::fs::write(
            ws.dir.join("terraform.tfstate"),
            serde_json::to_vec(&state).unwrap(),
        )
        .unwrap();
    }
    assert!(
        converged,
        "the synthesized state never matched the configuration"
    );

    // The deployment as stored after the deploy loop.
    let store = Arc::new(MemoryStore::new());
    let now = chrono::Utc::now();
    store
        .put_deployment(&Deployment {
            deployment_id: DeploymentId::new(),
            cloud: "aws".into(),
            services: vec![web.name.as_str().into()],
            region: "us-east-1".into(),
            terraform_state: ws.dir.to_string_lossy().into_owned(),
            alert_webhook: None,
            resource_map: plan
                .resources
                .iter()
                .map(|r| (r.name.as_str().to_string(), run_id))
                .collect(),
            resources: plan.resources.clone(),
            monitoring: plan.monitoring.clone(),
            outputs: BTreeMap::new(),
            created_at: now,
            updated_at: now,
        })
        .await
        .unwrap();
    let actions = AwsActions::new(
        Ec2Client::new(
            AwsApi::new(
                AwsApi::default_http(),
                AwsCredentials {
                    access_key_id: "AKIDOFFLINE".into(),
                    secret_access_key: Secret::new("offline"),
                    session_token: None,
                },
                ApiEndpoint::public("ec2", "us-east-1"),
                "ec2",
            )
            .unwrap(),
        ),
        runner.clone(),
        store,
        GuardrailConfig::default(),
    );
    let current = web.machine_type.clone().unwrap();
    let next = ladder::guardrails(GuardrailConfig::default())
        .next_machine_type(&current)
        .unwrap();
    let preview = actions
        .preview(&ActionRequest {
            incident_id: IncidentId::new(),
            deployment_id: None,
            resource: web.name.as_str().into(),
            resource_type: "aws_ec2_instance".into(),
            action: Action::ScaleUp {
                machine_type: next.clone(),
            },
        })
        .await
        .expect("preview");
    let set = preview.change_set.expect("a change set");
    let changed: Vec<_> = set
        .changes
        .iter()
        .filter(|c| c.action != ChangeAction::NoOp)
        .collect();
    assert_eq!(changed.len(), 1, "{:#?}", set.changes);
    assert_eq!(
        changed[0].address,
        format!("aws_instance.{}", web.name.as_str())
    );
    assert_eq!(
        changed[0].action,
        ChangeAction::Update,
        "in place, not a replacement"
    );
    assert!(
        preview.summary.contains(next.as_str()),
        "{}",
        preview.summary
    );
    // The preview changed nothing: the tfvars file is not written.
    assert!(!ws.dir.join("actions.auto.tfvars.json").exists());
    let _ = std::fs::remove_dir_all(ws.dir.parent().expect("the runner's root"));
}
