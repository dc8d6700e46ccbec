//! The dashboard in headless Chromium (Debian's `chromium`, driven by
//! playwright-core from `browser-test/`): plan → deploy → verification →
//! alert → approve → history → STOP AUTONOMY. Screenshots land in
//! `target/test-output/`. Fails (does not skip) when Chromium or the npm
//! packages are missing and `INFRAAI_REQUIRE_SERVICES=1`.

mod common;

use common::*;
use std::path::PathBuf;

fn missing(what: &str) -> bool {
    if std::env::var("INFRAAI_REQUIRE_SERVICES").as_deref() == Ok("1") {
        panic!("browser test: {what}, but INFRAAI_REQUIRE_SERVICES=1");
    }
    eprintln!("skipping the browser test: {what}");
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_drives_both_loops_in_headless_chromium() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("browser-test");
    let chromium = std::env::var("INFRAAI_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !std::path::Path::new(&chromium).exists()
        && missing(&format!(
            "{chromium} is missing (apt-get install -y chromium)"
        ))
    {
        return;
    }
    if !dir.join("node_modules/playwright-core").exists()
        && missing("playwright-core is not installed (cd examples/server/browser-test && npm ci)")
    {
        return;
    }
    // The real local cloud when Terraform is there, else the simulated one.
    let cloud = if terraform_available("browser (local cloud)") {
        "local"
    } else {
        "simulated"
    };
    let s = Server::start("browser", &["--cloud", cloud], &[]).await;
    let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/test-output");
    let out = tokio::process::Command::new("node")
        .arg("run.mjs")
        .current_dir(&dir)
        .env("INFRAAI_URL", &s.base)
        .env("INFRAAI_OPERATOR_TOKEN", OPERATOR)
        .env("INFRAAI_WEBHOOK_TOKEN", WEBHOOK)
        .env("INFRAAI_SCREENSHOTS", &shots)
        .env("INFRAAI_CHROMIUM", &chromium)
        .env(
            "INFRAAI_ALERT_METRIC",
            if cloud == "local" {
                infraai_local::profiles::CPU_UTILIZATION
            } else {
                "compute.googleapis.com/instance/cpu/utilization"
            },
        )
        .output()
        .await
        .expect("run node (is Node.js installed?)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "browser test failed\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("browser-test: ok"), "{stdout}");
    for shot in [
        "1-plan.png",
        "2-deployed.png",
        "3-pending.png",
        "4-history.png",
        "5-stopped.png",
    ] {
        assert!(shots.join(shot).exists(), "{shot} missing");
    }
}
