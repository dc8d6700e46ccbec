//! The GCP cloud wired from configuration: a project id turns on the GCP
//! generator, Compute Engine actions and Cloud Monitoring metrics; the
//! generated Terraform passes the Google provider schema checker and never
//! holds the webhook token.

mod common;

use common::*;
use infraai_core::TerraformFiles;
use reqwest::Method;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gcp_project_turns_on_the_gcp_cloud_and_plans_checked_terraform() {
    if !terraform_available("gcp wiring") {
        return;
    }
    let webhook_token = "wh-token-never-in-files-7f3a";
    let access_token = "ya29.fake-access-token-9b1c";
    let s = Server::start(
        "gcp",
        &["--gcp-ssh-ranges", "203.0.113.0/24"],
        &[
            ("INFRAAI_GCP_PROJECT", "infraai-demo-123"),
            ("INFRAAI_REGION", "europe-west1"),
            ("GOOGLE_OAUTH_ACCESS_TOKEN", access_token),
            ("INFRAAI_WEBHOOK_TOKEN", webhook_token),
            ("INFRAAI_PUBLIC_URL", "https://ops.example.com"),
        ],
    )
    .await;
    let banner = s.startup.join("\n");
    assert!(
        banner.contains(
            "cloud: gcp — project \"infraai-demo-123\", region europe-west1, zone europe-west1-a"
        ),
        "{banner}"
    );
    assert!(banner.contains("a fixed access token"), "{banner}");
    assert!(
        !banner.contains(access_token) && !banner.contains(webhook_token),
        "{banner}"
    );

    let planned = s
        .ok(
            Method::POST,
            "/generate-graph",
            Some(json!({"goal": "a backend API for 10k users under $100/month with a PostgreSQL database"})),
            201,
        )
        .await;
    assert_eq!(planned["plan"]["cloud"], "gcp", "{planned}");
    let run_id = planned["run_id"].as_str().unwrap();
    let generated = s
        .ok(
            Method::POST,
            "/generate_terraform",
            Some(json!({"run_id": run_id})),
            200,
        )
        .await;
    let files: TerraformFiles =
        serde_json::from_value(json!({"files": generated["files"]})).unwrap();
    let main = &files.files["main.tf"];
    for needle in [
        "resource \"google_compute_instance\"",
        "resource \"google_sql_database_instance\"",
        "resource \"google_monitoring_alert_policy\"",
        "\"webhook_tokenauth\"",
        "https://ops.example.com/ops/webhook",
        "203.0.113.0/24",
    ] {
        assert!(main.contains(needle), "{needle} missing from\n{main}");
    }
    assert!(
        !main.contains(webhook_token),
        "the webhook token leaked into the files"
    );
    let issues = infraai_gcp::SchemaChecker::google().check_files(&files);
    assert!(issues.is_empty(), "{issues:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloud_gcp_without_a_project_is_refused_at_start() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_infraai-server"))
        .args(["--cloud", "gcp", "--data-dir"])
        .arg(Server::fresh_dir("gcp-no-project"))
        .env_remove("INFRAAI_GCP_PROJECT")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("needs a project"), "{stderr}");
}
