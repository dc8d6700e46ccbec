//! The dashboard in headless Chromium (Debian's `chromium`, driven by
//! playwright-core from `browser-test/`): plan → architecture canvas →
//! deploy (with a database) → run timeline and Terraform view →
//! verification → the database node deployed, its metrics in an incident
//! chart → alert →
//! approve → history → incident view (chart, threshold, action marker) →
//! a broken run (inline diagnostics, diff between fix attempts) → narrow
//! window → STOP AUTONOMY. Every request the page makes must go to the
//! server. Screenshots land in `target/test-output/`. Fails (does not skip)
//! when Chromium or the npm packages are missing and
//! `INFRAAI_REQUIRE_SERVICES=1`.

mod common;
#[path = "common/idp.rs"]
mod idp;

use common::*;
use std::path::PathBuf;

fn missing(what: &str) -> bool {
    if std::env::var("INFRAAI_REQUIRE_SERVICES").as_deref() == Ok("1") {
        panic!("browser test: {what}, but INFRAAI_REQUIRE_SERVICES=1");
    }
    eprintln!("skipping the browser test: {what}");
    true
}

/// The browser-test folder and Chromium, when both are there (else the
/// test is skipped, or fails under `INFRAAI_REQUIRE_SERVICES=1`).
fn browser() -> Option<(PathBuf, String)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("browser-test");
    let chromium = std::env::var("INFRAAI_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !std::path::Path::new(&chromium).exists()
        && missing(&format!(
            "{chromium} is missing (apt-get install -y chromium)"
        ))
    {
        return None;
    }
    if !dir.join("node_modules/playwright-core").exists()
        && missing("playwright-core is not installed (cd examples/server/browser-test && npm ci)")
    {
        return None;
    }
    Some((dir, chromium))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_drives_both_loops_in_headless_chromium() {
    let Some((dir, chromium)) = browser() else {
        return;
    };
    // The real local cloud when Terraform is there, else the simulated one.
    let cloud = if terraform_available("browser (local cloud)") {
        "local"
    } else {
        "simulated"
    };
    // A broken run for the Terraform view: plan a run, stop the server, break
    // the stored files (one undeclared variable and one unsupported argument
    // the deterministic fixers repair in two attempts, one reference to a
    // resource nothing declares, which no fixer can), start it again. Real
    // `terraform validate` produces the diagnostics when the run executes.
    let data = Server::fresh_dir("browser");
    let broken = if cloud == "local" {
        let mut first = Server::start_in(data.clone(), &["--cloud", cloud], &[]).await;
        let planned = first.plan().await;
        first.remove_data = false;
        first.terminate().await;
        drop(first);
        let id = planned["run_id"].as_str().expect("run id").to_string();
        break_run(&data, &id).await;
        Some(id)
    } else {
        None
    };
    // The watcher reads every deployed resource's metrics every 3 s: the
    // database's chart has points within seconds.
    let env = [("INFRAAI_WATCH_INTERVAL_SECS", "3")];
    let s = Server::start_in(data, &["--cloud", cloud], &env).await;
    let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/test-output");
    let out = tokio::process::Command::new("node")
        .arg("run.mjs")
        .current_dir(&dir)
        .env("INFRAAI_URL", &s.base)
        .env("INFRAAI_OPERATOR_TOKEN", OPERATOR)
        .env("INFRAAI_WEBHOOK_TOKEN", WEBHOOK)
        .env("INFRAAI_SCREENSHOTS", &shots)
        .env("INFRAAI_CHROMIUM", &chromium)
        .env("INFRAAI_BROKEN_RUN", broken.as_deref().unwrap_or(""))
        .env(
            "INFRAAI_DB_METRIC",
            if cloud == "local" {
                infraai_local::profiles::PG_CONNECTIONS
            } else {
                "cloudsql.googleapis.com/database/network/connections"
            },
        )
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
    println!("{stdout}");
    for shot in [
        "1-plan.png",
        "2-deployed.png",
        "3-pending.png",
        "4-history.png",
        "5-stopped.png",
        "6-architecture.png",
        "7-timeline.png",
        "8-terraform-plan.png",
        "9-incident.png",
        "12-narrow.png",
        "15-architecture-30.png",
        "16-database-incident.png",
    ] {
        assert!(shots.join(shot).exists(), "{shot} missing");
    }
    if broken.is_some() {
        for shot in [
            "10-terraform-broken.png",
            "11-fix-diff.png",
            "13-timeline-broken.png",
            "14-terraform-before-attempt-1.png",
        ] {
            assert!(shots.join(shot).exists(), "{shot} missing");
        }
        assert!(stdout.contains("browser-test: broken run"), "{stdout}");
    }
}

/// Runs `script` of `browser-test/` with `env` under Node: its stdout, after
/// checking it exited 0.
async fn node(dir: &std::path::Path, script: &str, env: &[(&str, &str)]) -> String {
    let out = tokio::process::Command::new("node")
        .arg(script)
        .current_dir(dir)
        .envs(env.iter().copied())
        .output()
        .await
        .expect("run node (is Node.js installed?)");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{script} failed\n{stdout}\n{stderr}");
    stdout
}

/// Breaks the stored files of a planned run (see the test).
async fn break_run(data: &std::path::Path, id: &str) {
    use infraai_core::RunStore;
    let store = infraai_store::SqliteStore::open_path(data.join("infraai.db"))
        .await
        .expect("open the store");
    let run_id: infraai_core::RunId = id.parse().expect("run id");
    let mut run = store
        .get_run(run_id)
        .await
        .expect("read run")
        .expect("run stored");
    let files = run.files.as_mut().expect("planned run has files");
    let main = files.files.get_mut("main.tf").expect("main.tf");
    let at = main
        .find("resource \"")
        .and_then(|i| main[i..].find('\n').map(|j| i + j + 1))
        .expect("a resource block in main.tf");
    main.insert_str(at, "  bogus_setting = \"x\"\n");
    main.push_str("\noutput \"extra_tag\" {\n  value = var.extra_tag\n}\n");
    main.push_str("\noutput \"broken\" {\n  value = local_file.missing.id\n}\n");
    store.put_run(&run).await.expect("store the broken run");
}

/// The vendored CodeMirror bundle (no Chromium needed): served from the
/// binary as JavaScript, byte for byte the committed build output, loaded by
/// the dashboard, revalidated by ETag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codemirror_bundle_is_served_from_the_binary() {
    let s = Server::start("codemirror-bundle", &["--cloud", "simulated"], &[]).await;
    let path = "/assets/vendor/codemirror.js";
    let index = s.http.get(s.url("/")).send().await.unwrap();
    let index = index.text().await.unwrap();
    assert!(index.contains(&format!("<script src=\"{path}\"></script>")));
    let r = s.http.get(s.url(path)).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let header = |r: &reqwest::Response, h: &str| {
        r.headers()
            .get(h)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(header(&r, "content-type"), "text/javascript; charset=utf-8");
    assert_eq!(header(&r, "cache-control"), "no-cache");
    let etag = header(&r, "etag");
    assert!(etag.starts_with("\"cm-") && etag.ends_with('"'), "{etag}");
    let body = r.bytes().await.unwrap();
    let committed = std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets/vendor/codemirror.js"),
    )
    .unwrap();
    assert_eq!(body.as_ref(), committed.as_slice());
    let text = String::from_utf8_lossy(&body);
    assert!(text.starts_with("/* CodeMirror 6 for the infraai dashboard. GENERATED"));
    assert!(text.contains("var CM=("), "not the IIFE defining CM");
    // Revalidation: the same tag gets 304 and no body, another tag the file.
    for (tag, status) in [
        (etag.clone(), 304),
        (format!("W/{etag}"), 304),
        ("\"cm-0\"".to_string(), 200),
    ] {
        let r = s
            .http
            .get(s.url(path))
            .header("if-none-match", &tag)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), status, "{tag}");
        assert_eq!(header(&r, "etag"), etag);
        let len = r.bytes().await.unwrap().len();
        assert_eq!(len == 0, status == 304, "{tag}: {len} bytes");
    }
}

/// The simulated cloud is never mistaken for a real one: the dashboard of a
/// server on the simulated cloud shows a permanent banner, in headless
/// Chromium (`browser-test/banner.mjs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulated_cloud_shows_a_permanent_banner() {
    let Some((dir, chromium)) = browser() else {
        return;
    };
    let s = Server::start("banner", &["--cloud", "simulated"], &[]).await;
    let ready = s.ok(reqwest::Method::GET, "/readyz", None, 200).await;
    assert_eq!(ready["simulated"], true);
    let stdout = node(
        &dir,
        "banner.mjs",
        &[("INFRAAI_URL", &s.base), ("INFRAAI_CHROMIUM", &chromium)],
    )
    .await;
    assert!(stdout.contains("banner-test: ok"), "{stdout}");
}

/// Single sign-on in Chromium through the test issuer (`browser-test/sso.mjs`):
/// a viewer sees no Approve or STOP button and the API refuses his approval;
/// an approver approves, and the incident names her.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_through_the_identity_provider_in_headless_chromium() {
    let Some((dir, chromium)) = browser() else {
        return;
    };
    let issuer = idp::Idp::start(vec![idp::SigningKey::rsa(1, "k1")]).await;
    let env = [
        ("INFRAAI_OIDC_ISSUER", issuer.issuer.as_str()),
        ("INFRAAI_OIDC_CLIENT_ID", idp::CLIENT_ID),
        ("INFRAAI_OIDC_CLIENT_SECRET", idp::CLIENT_SECRET),
        ("INFRAAI_OIDC_ROLE_MAP", "sre=approver,platform=operator"),
    ];
    let s = Server::start("browser-sso", &["--cloud", "simulated"], &env).await;
    s.deploy().await;
    let id = s.incident_in(&cpu_alert("sso-browser"), "pending").await;
    let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/test-output");
    let shots_dir = shots.to_string_lossy();
    let env = [
        ("INFRAAI_URL", s.base.as_str()),
        ("INFRAAI_INCIDENT", id.as_str()),
        ("INFRAAI_SCREENSHOTS", &shots_dir),
        ("INFRAAI_CHROMIUM", &chromium),
    ];
    let stdout = node(&dir, "sso.mjs", &env).await;
    assert!(stdout.contains("sso-test: ok"), "{stdout}");
    let detail = s
        .wait_incident(&id, |v| {
            v["approvals"].as_array().is_some_and(|a| !a.is_empty())
        })
        .await;
    let approval = &detail["approvals"][0];
    assert_eq!(approval["approved"], true, "{detail}");
    assert_eq!(approval["actor"]["id"], "alice-7f3a", "{detail}");
    assert_eq!(
        approval["actor"]["name"],
        "Alice Approver <alice@example.com>"
    );
    let refusals: Vec<&serde_json::Value> = detail["audit"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["step"] == "auth_refused")
        .collect();
    assert!(
        refusals.iter().any(|r| r["outcome"]
            .as_str()
            .unwrap_or_default()
            .contains("role too low: web:bob-19c2 (viewer)")),
        "the viewer's refused approval is not in the incident's audit: {detail}"
    );
    for shot in ["17-sso-viewer.png", "18-sso-approver.png"] {
        assert!(shots.join(shot).exists(), "{shot} missing");
    }
}
