//! The server process over its life, against the real binary: default
//! start-up in an empty directory, a TOML configuration file, the request
//! timeout, SIGTERM with a request in flight, and a crash between an
//! alert's acknowledgement and its decision.
//!
//! Slow requests come from the simulated cloud's test hook
//! `INFRAAI_TEST_ACTION_DELAY_MS` (every action preview and execution waits).

mod common;

use common::*;
use reqwest::Method;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Posts an alert; returns the incident id from the 200 acknowledgement.
async fn post_alert(s: &Server, fingerprint: &str) -> String {
    let v = s.post_alert(&cpu_alert(fingerprint)).await;
    assert_eq!(v["results"][0]["outcome"], "opened", "{v}");
    v["results"][0]["incident_id"].as_str().unwrap().to_string()
}

fn is_problem(v: &Value, status: u16) -> bool {
    v["status"] == status
        && v["title"].is_string()
        && v["type"].is_string()
        && v["detail"].as_str().is_some_and(|d| !d.is_empty())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_past_the_timeout_gets_a_503_problem() {
    let s = Server::start(
        "timeout",
        &["--cloud", "simulated"],
        &[
            ("INFRAAI_TEST_ACTION_DELAY_MS", "3000"),
            ("INFRAAI_REQUEST_TIMEOUT_SECS", "1"),
        ],
    )
    .await;
    assert!(
        s.startup
            .iter()
            .any(|l| l.starts_with("test hook:") && l.contains("3000 ms")),
        "the hook must say it is on: {:?}",
        s.startup
    );
    s.deploy().await;
    let id = post_alert(&s, "slow-1").await;
    s.wait_incident(&id, |v| v["incident"]["status"] == "pending")
        .await;
    // The preview waits 3 s; the timeout is 1 s.
    let started = Instant::now();
    let r = s
        .op(Method::GET, &format!("/ops/alerts/{id}/preview"), None)
        .await;
    let took = started.elapsed();
    assert_eq!(r.status().as_u16(), 503);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let v: Value = r.json().await.unwrap();
    assert!(is_problem(&v, 503), "{v}");
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .contains("did not finish within 1s"),
        "{v}"
    );
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_millis(2900),
        "answered after {took:?}"
    );
    // Fast requests are untouched.
    s.ok(Method::GET, "/ops/autonomy", None, 200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_request_in_flight_finish_with_2xx_and_exits_0() {
    let mut s = Server::start(
        "sigterm-inflight",
        &["--cloud", "simulated"],
        &[("INFRAAI_TEST_ACTION_DELAY_MS", "3000")],
    )
    .await;
    s.deploy().await;
    let id = post_alert(&s, "inflight-1").await;
    s.wait_incident(&id, |v| v["incident"]["status"] == "pending")
        .await;
    let (http, url) = (s.http.clone(), s.url(&format!("/ops/alerts/{id}/preview")));
    let inflight = tokio::spawn(async move {
        let r = http.get(url).bearer_auth(OPERATOR).send().await;
        let answered = Instant::now();
        let r = r.expect("the in-flight request must be answered");
        let status = r.status().as_u16();
        (status, r.json::<Value>().await.ok(), answered)
    });
    // Let the request reach the handler (it then waits 3 s), then SIGTERM.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let signalled = Instant::now();
    let exit = s.terminate().await;
    let (status, body, answered) = inflight.await.unwrap();
    assert_eq!(status, 200, "{body:?}");
    let body = body.unwrap();
    assert!(
        body["preview"]["summary"]
            .as_str()
            .is_some_and(|t| !t.is_empty()),
        "{body}"
    );
    assert!(
        answered > signalled,
        "the request must still have been in flight at SIGTERM"
    );
    assert!(exit.success(), "exit status {exit:?}");
    assert_eq!(exit.code(), Some(0));
}

/// The incident's status read straight from the SQLite file (server stopped).
async fn stored_status(data: &Path, id: &str) -> String {
    use infraai_core::IncidentStore;
    let store = infraai_store::SqliteStore::open_path(data.join("infraai.db"))
        .await
        .expect("open the store");
    let incident = store
        .get_incident(id.parse().expect("incident id"))
        .await
        .expect("read")
        .expect("the acknowledged alert is stored");
    incident.status.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledged_alert_killed_before_its_decision_is_decided_after_restart() {
    let data = Server::fresh_dir("crash-before-decision");
    let mut s = Server::start_in(
        data.clone(),
        &["--cloud", "simulated"],
        &[("INFRAAI_TEST_ACTION_DELAY_MS", "10000")],
    )
    .await;
    s.remove_data = false;
    s.deploy().await;
    // Occupy every decision worker: each asks for approval with a preview
    // that takes 10 s.
    let mut busy = Vec::new();
    for n in 0..4 {
        busy.push(post_alert(&s, &format!("busy-{n}")).await);
    }
    for id in &busy {
        s.wait_incident(id, |v| v["incident"]["status"] == "pending")
            .await;
    }
    // Acknowledged (200 only after it is durable), then SIGKILL before any
    // worker is free to decide it.
    let id = post_alert(&s, "acked-then-killed").await;
    s.child.kill().await.expect("SIGKILL");
    drop(s);
    assert_eq!(
        stored_status(&data, &id).await,
        "new",
        "the test needs the decision not to have run before the kill"
    );

    // Restart: recovery decides it.
    let s = Server::start_in(data.clone(), &["--cloud", "simulated"], &[]).await;
    let decided = s
        .wait_incident(&id, |v| v["incident"]["status"] != "new")
        .await;
    assert!(
        decided["decision"]["recommended_action"]["type"].is_string(),
        "{decided:#}"
    );
    assert!(
        matches!(
            decided["incident"]["status"].as_str(),
            Some("pending" | "escalated")
        ),
        "{decided:#}"
    );
    assert!(decided["audit"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["step"] == "decision"));
    drop(s);
    let _ = std::fs::remove_dir_all(&data);
}

/// A temporary working directory.
fn workdir(name: &str) -> PathBuf {
    let d = Server::fresh_dir(name);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Spawns the binary in `cwd` with `args` and an environment without any
/// infraai, LLM or cloud setting; returns it and its start-up lines.
async fn spawn_bare(cwd: &Path, args: &[&str]) -> (Child, Vec<String>) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_infraai-server"));
    cmd.args(args)
        .current_dir(cwd)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, _) in std::env::vars() {
        if ["INFRAAI_", "GEMINI_", "GOOGLE_", "AWS_", "OPENAI_"]
            .iter()
            .any(|p| k.starts_with(p))
        {
            cmd.env_remove(k);
        }
    }
    let mut child = cmd.spawn().expect("spawn infraai-server");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut out = Vec::new();
    let listening = tokio::time::timeout(Duration::from_secs(60), async {
        while let Ok(Some(l)) = lines.next_line().await {
            let done = l.starts_with("listening on");
            out.push(l);
            if done {
                return true;
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    if !listening {
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            use tokio::io::AsyncReadExt;
            let _ = tokio::time::timeout(Duration::from_secs(5), e.read_to_string(&mut err)).await;
        }
        panic!("server did not start: {out:?}\n{err}");
    }
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, out)
}

fn line<'a>(lines: &'a [String], prefix: &str) -> &'a str {
    lines
        .iter()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix:?} line in {lines:#?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_on_embedded_defaults_in_an_empty_directory() {
    let cwd = workdir("defaults");
    let (mut child, out) = spawn_bare(&cwd, &["--listen", "127.0.0.1:0"]).await;

    // The SQLite file and the generated tokens under ./data.
    let data = cwd.join("data");
    assert!(data.join("infraai.db").is_file(), "{out:#?}");
    let token = std::fs::read_to_string(data.join("operator-token")).unwrap();
    assert!(data.join("webhook-token").is_file());
    assert_eq!(line(&out, "data directory:"), "data directory: ./data");

    // The banner names the active adapters and what the real ones need.
    assert!(line(&out, "store: SQLite").contains("data/infraai.db"));
    let cloud = line(&out, "cloud: ");
    assert!(
        cloud.starts_with("cloud: local") || cloud.starts_with("cloud: SIMULATED"),
        "{cloud}"
    );
    let real = line(&out, "cloud: GCP and AWS off");
    for needed in [
        "INFRAAI_GCP_PROJECT",
        "GOOGLE_APPLICATION_CREDENTIALS",
        "INFRAAI_CLOUD=aws",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
    ] {
        assert!(real.contains(needed), "{needed} not in {real:?}");
    }
    assert!(line(&out, "llm: ").contains("rule-based"), "{out:#?}");
    assert!(out
        .iter()
        .any(|l| l.starts_with("approvals: web dashboard")));
    assert!(out
        .iter()
        .any(|l| l.starts_with("approvals: Telegram off (needs")));
    assert!(out
        .iter()
        .any(|l| l.starts_with("approvals: Discord off (needs")));
    assert!(
        out.iter()
            .any(|l| l.contains("generated now") && l.contains(token.trim())),
        "the generated operator token is shown once: {out:#?}"
    );

    // The printed dashboard address answers.
    let dash = line(&out, "dashboard: ");
    let url = dash
        .strip_prefix("dashboard: ")
        .and_then(|r| r.split_whitespace().next())
        .unwrap()
        .to_string();
    assert!(
        url.starts_with("http://127.0.0.1:") && url.ends_with('/'),
        "{url}"
    );
    assert!(!url.contains(":0/"), "the real port is printed: {url}");
    let http = reqwest::Client::new();
    let r = http.get(&url).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.text().await.unwrap().contains("<html"));
    let r = http
        .get(format!("{url}ops/autonomy"))
        .bearer_auth(token.trim())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "the stored token works");

    let _ = child.kill().await;
    stop_local_instances(&data);
    let _ = std::fs::remove_dir_all(&cwd);
}

fn stop_local_instances(data: &Path) {
    if let Ok(dirs) = std::fs::read_dir(data.join("local").join("instances")) {
        for d in dirs.flatten() {
            if let Ok(pid) = std::fs::read_to_string(d.path().join("pid")) {
                let _ = std::process::Command::new("kill").arg(pid.trim()).status();
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_from_a_toml_configuration_file() {
    let cwd = workdir("config-file");
    let data = cwd.join("state");
    std::fs::write(
        cwd.join("infraai.toml"),
        format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = {data:?}\ncloud = \"simulated\"\noperator_token = \"file-token\"\noperator_name = \"ada\"\nwebhook_token = \"file-hook\"\nrequest_timeout_secs = 7\n",
            data = data.display().to_string()
        ),
    )
    .unwrap();
    let (mut child, out) = spawn_bare(&cwd, &["--config", "infraai.toml"]).await;
    assert_eq!(
        line(&out, "data directory:"),
        format!("data directory: {}", data.display())
    );
    assert!(data.join("infraai.db").is_file());
    assert!(!cwd.join("data").exists(), "the default data dir was used");
    assert!(line(&out, "cloud: ").starts_with("cloud: SIMULATED"));
    assert!(line(&out, "operator token:").contains("from configuration; operator name \"ada\""));
    assert_eq!(
        line(&out, "alert webhook token:"),
        "alert webhook token: from configuration"
    );
    assert!(out
        .iter()
        .all(|l| !l.contains("file-token") && !l.contains("file-hook")));
    let base = line(&out, "listening on ")
        .strip_prefix("listening on ")
        .unwrap()
        .to_string();
    let http = reqwest::Client::new();
    // The file's tokens are the ones in force; the operator is "ada".
    let r = http
        .post(format!("{base}/ops/autonomy/stop"))
        .bearer_auth("file-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["kill_switch"]["set_by"], "web:ada");
    let r = http
        .post(format!("{base}/ops/webhook"))
        .header("x-infraai-webhook-token", "file-hook")
        .json(&cpu_alert("from-file"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let _ = child.kill().await;

    // An unknown key is refused, naming the file and the key.
    std::fs::write(cwd.join("bad.toml"), "listn = \"127.0.0.1:0\"\n").unwrap();
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_infraai-server"))
        .args(["--config", "bad.toml"])
        .current_dir(&cwd)
        .output()
        .unwrap();
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("bad.toml") && err.contains("listn"), "{err}");
    let _ = std::fs::remove_dir_all(&cwd);
}

/// Over HTTP: with STOP AUTONOMY engaged an executed run waits in
/// `paused_by_kill_switch`; one is cancelled (it fails, saying who), and a
/// paused one does not hold up a SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_paused_by_stop_autonomy_can_be_cancelled_and_do_not_hold_up_shutdown() {
    let mut s = Server::start("paused-runs", &["--cloud", "simulated"], &[]).await;
    s.ok(Method::POST, "/ops/autonomy/stop", None, 200).await;
    let paused = |run_id: String| {
        let s = &s;
        async move {
            s.ok(
                Method::POST,
                "/execute",
                Some(json!({"run_id": run_id})),
                202,
            )
            .await;
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                let status = s
                    .ok(Method::GET, &format!("/runs/{run_id}/status"), None, 200)
                    .await;
                if status["status"] == "paused_by_kill_switch" {
                    return status;
                }
                assert!(Instant::now() < deadline, "never paused: {status}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    let first = s.plan().await["run_id"].as_str().unwrap().to_owned();
    let status = paused(first.clone()).await;
    assert_eq!(status["phase"], "paused_by_kill_switch");
    s.ok(Method::POST, &format!("/runs/{first}/cancel"), None, 202)
        .await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let failed = loop {
        let st = s
            .ok(Method::GET, &format!("/runs/{first}/status"), None, 200)
            .await;
        if st["status"] == "failed" {
            break st;
        }
        assert!(Instant::now() < deadline, "never cancelled: {st}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        failed["error"]
            .as_str()
            .unwrap()
            .contains("cancelled by web:"),
        "{failed}"
    );
    let r = s
        .op(Method::POST, &format!("/runs/{first}/cancel"), None)
        .await;
    assert_eq!(r.status().as_u16(), 409, "a failed run is not paused");

    let second = s.plan().await["run_id"].as_str().unwrap().to_owned();
    paused(second).await;
    let signalled = Instant::now();
    let exit = s.terminate().await;
    assert!(exit.success(), "{exit:?}");
    assert!(
        signalled.elapsed() < Duration::from_secs(20),
        "shutdown waited {:?}",
        signalled.elapsed()
    );
}
