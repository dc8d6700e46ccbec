//! The real clouds wired from configuration. GCP: a project id turns on the
//! GCP generator, Compute Engine actions and Cloud Monitoring metrics, and the
//! generated Terraform passes the Google provider schema checker. AWS:
//! `--cloud aws` with credentials turns on the AWS generator, EC2 actions and
//! CloudWatch metrics. Neither puts a secret in the files or the banner.

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
async fn cloud_aws_wires_the_aws_adapters_and_plans_aws_terraform() {
    if !terraform_available("aws wiring") {
        return;
    }
    let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    let webhook_token = "wh-token-aws-never-in-files-51c2";
    let s = Server::start(
        "aws",
        &["--cloud", "aws"],
        &[
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", secret),
            ("INFRAAI_AWS_AMI", "ami-0123456789abcdef0"),
            ("INFRAAI_AWS_ACCOUNT_ID", "123456789012"),
            ("INFRAAI_WEBHOOK_TOKEN", webhook_token),
            ("INFRAAI_PUBLIC_URL", "https://ops.example.com"),
        ],
    )
    .await;
    let banner = s.startup.join("\n");
    assert!(banner.contains("cloud: aws — region us-east-1"), "{banner}");
    assert!(
        banner.contains("arn:aws:sns:us-east-1:123456789012:infraai-alerts-*"),
        "{banner}"
    );
    assert!(
        !banner.contains(secret) && !banner.contains(webhook_token),
        "{banner}"
    );
    let planned = s.plan().await;
    assert_eq!(planned["plan"]["cloud"], "aws", "{planned}");
    let run_id = planned["run_id"].as_str().unwrap();
    let generated = s
        .ok(
            Method::POST,
            "/generate_terraform",
            Some(json!({"run_id": run_id})),
            200,
        )
        .await;
    let main = generated["files"]["main.tf"].as_str().unwrap();
    for needle in [
        "resource \"aws_instance\"",
        "resource \"aws_cloudwatch_metric_alarm\"",
        "resource \"aws_sns_topic_subscription\"",
        "ami-0123456789abcdef0",
    ] {
        assert!(main.contains(needle), "{needle} missing from\n{main}");
    }
    assert!(!main.contains(secret) && !main.contains(webhook_token));

    // An SNS message from the allowed topic whose signing certificate is not
    // on the SNS host is refused before anything is fetched or recorded.
    let mut forged = sns_fixture();
    forged["SigningCertURL"] = json!("https://sns.us-east-1.amazonaws.com.evil.example/cert.pem");
    let r = s
        .http
        .post(s.url(&format!("/ops/webhook?token={webhook_token}")))
        .header("x-amz-sns-message-type", "Notification")
        .header("content-type", "text/plain; charset=UTF-8")
        .body(forged.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let incidents = s.ok(Method::GET, "/ops/alerts", None, 200).await;
    assert_eq!(
        incidents["incidents"].as_array().map(Vec::len),
        Some(0),
        "{incidents}"
    );
}

fn sns_fixture() -> serde_json::Value {
    let path = format!(
        "{}/../../infraai-aws/tests/fixtures/sns-notification-v1.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloud_aws_without_credentials_is_refused_at_start() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_infraai-server"))
        .args(["--cloud", "aws", "--data-dir"])
        .arg(Server::fresh_dir("aws-no-creds"))
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("needs credentials"), "{stderr}");
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

/// POSTs `body` over a raw connection with `Expect: 100-continue` (as curl
/// does for large bodies), so a server that refuses by length answers before
/// the body is sent instead of resetting a half-written request. Returns the
/// final status.
async fn post_expecting_continue(addr: &str, path: &str, body: &[u8]) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nexpect: 100-continue\r\nconnection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = conn.read(&mut buf).await.unwrap();
    let mut first = String::from_utf8_lossy(&buf[..n]).to_string();
    if first.starts_with("HTTP/1.1 100") {
        conn.write_all(body).await.unwrap();
        let mut rest = Vec::new();
        conn.read_to_end(&mut rest).await.unwrap();
        first = String::from_utf8_lossy(&rest).to_string();
    }
    first
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {first:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gcp_webhook_refuses_junk_and_incomplete_notifications_with_a_4xx() {
    let s = Server::start("gcp-junk", &["--cloud", "simulated"], &[]).await;
    let base = s.url("");
    let addr = base
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let path = format!("/ops/webhook?token={WEBHOOK}");
    let junk: Vec<u8> = (0..5 * 1024 * 1024).map(|i| (i * 7 % 251) as u8).collect();
    assert_eq!(post_expecting_continue(&addr, &path, &junk).await, 413);
    // SNS messages are refused where no AWS account is configured.
    let sns = sns_fixture().to_string();
    assert_eq!(
        post_expecting_continue(&addr, &path, sns.as_bytes()).await,
        403
    );
    let missing_incident = br#"{"version":"1.2"}"#;
    let status = post_expecting_continue(&addr, &path, missing_incident).await;
    assert!((400..500).contains(&status), "got {status}");
    // Still serving.
    s.ok(Method::GET, "/readyz", None, 200).await;
}
