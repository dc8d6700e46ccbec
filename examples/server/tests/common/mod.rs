//! Starts the real `infraai-server` binary on a free port with a temporary
//! data directory, and talks to it over real HTTP.
#![allow(dead_code)]

use reqwest::{Client, Method, Response};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub const OPERATOR: &str = "test-operator-token";
pub const WEBHOOK: &str = "test-webhook-token";

pub struct Server {
    pub base: String,
    pub data: PathBuf,
    pub child: Child,
    pub http: Client,
    pub startup: Vec<String>,
    /// Whether dropping the server removes its data directory.
    pub remove_data: bool,
}

/// Whether a Terraform binary is available for the local cloud; fails the
/// test when it is not and `INFRAAI_REQUIRE_SERVICES=1`.
pub fn terraform_available(test: &str) -> bool {
    let bin = std::env::var("TERRAFORM_BIN").unwrap_or_else(|_| "terraform".into());
    let ok = std::process::Command::new(&bin)
        .arg("version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        if std::env::var("INFRAAI_REQUIRE_SERVICES").as_deref() == Ok("1") {
            panic!("{test}: terraform ({bin}) is not available, but INFRAAI_REQUIRE_SERVICES=1");
        }
        eprintln!("skipping {test}: terraform ({bin}) is not available (install terraform or set TERRAFORM_BIN; scripts/test-all.sh sets it)");
    }
    ok
}

/// A firing critical CPU alert on `api` (the simulated cloud's resource).
pub fn cpu_alert(fingerprint: &str) -> Value {
    api_alert(
        fingerprint,
        "High CPU",
        "compute.googleapis.com/instance/cpu/utilization",
        "critical",
    )
}

/// A firing alert on `api` of `policy` on `metric` (value 0.97, threshold
/// 0.8) at `severity`.
pub fn api_alert(fingerprint: &str, policy: &str, metric: &str, severity: &str) -> Value {
    json!({
        "source": "test", "fingerprint": fingerprint, "policy_name": policy,
        "resource": "api", "resource_type": "gce_instance", "cloud": "memory",
        "metric": metric, "value": 0.97, "threshold": 0.8, "severity": severity,
        "state": "firing", "started_at": "2026-11-25T10:00:00Z",
    })
}

impl Server {
    /// Starts the server with extra flags/env.
    pub async fn start(name: &str, args: &[&str], env: &[(&str, &str)]) -> Server {
        let data = Self::fresh_dir(name);
        Self::start_in(data, args, env).await
    }

    /// A fresh temporary data directory path.
    pub fn fresh_dir(name: &str) -> PathBuf {
        let data = std::env::temp_dir().join(format!(
            "infraai-server-{name}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default()
        ));
        let _ = std::fs::remove_dir_all(&data);
        data
    }

    /// Starts the server on an existing (or new) data directory.
    pub async fn start_in(data: PathBuf, args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_infraai-server"));
        cmd.arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(&data)
            .args(args)
            .env("INFRAAI_OPERATOR_TOKEN", OPERATOR)
            .env("INFRAAI_WEBHOOK_TOKEN", WEBHOOK)
            .env("INFRAAI_FEEDBACK_DELAY_SECS", "1")
            // These tests exercise automatic execution: every pair is
            // trusted unless a test turns earned autonomy on.
            .env("INFRAAI_EARNED_AUTONOMY", "false")
            .env("RUST_LOG", "warn")
            .env_remove("GEMINI_API_KEY")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn infraai-server");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let mut startup = Vec::new();
        let base = tokio::time::timeout(Duration::from_secs(60), async {
            while let Ok(Some(line)) = lines.next_line().await {
                startup.push(line.clone());
                if let Some(url) = line.strip_prefix("listening on ") {
                    return url.to_string();
                }
            }
            panic!("server exited before listening: {startup:?}");
        })
        .await
        .expect("server did not start within 60 s");
        // Keep draining stdout so the server never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Server {
            base,
            data,
            child,
            http: Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
            startup,
            remove_data: true,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request with the operator token.
    pub async fn op(&self, method: Method, path: &str, body: Option<Value>) -> Response {
        let mut r = self
            .http
            .request(method, self.url(path))
            .bearer_auth(OPERATOR);
        if let Some(b) = body {
            r = r.json(&b);
        }
        r.send().await.expect("request")
    }

    /// `op` expecting `status`, returning the JSON body.
    pub async fn ok(&self, method: Method, path: &str, body: Option<Value>, status: u16) -> Value {
        let r = self.op(method.clone(), path, body).await;
        let got = r.status().as_u16();
        let text = r.text().await.unwrap_or_default();
        assert_eq!(got, status, "{method} {path}: {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// Polls an incident until `pred` holds (30 s).
    pub async fn wait_incident(&self, id: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let v = self
                .ok(Method::GET, &format!("/ops/alerts/{id}"), None, 200)
                .await;
            if pred(&v) {
                return v;
            }
            assert!(Instant::now() < deadline, "incident never matched: {v:#}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Reads a run's event stream to its end; returns the SSE event names
    /// and data.
    pub async fn events(&self, run_id: &str) -> Vec<(String, Value)> {
        let mut r = self
            .op(Method::GET, &format!("/runs/{run_id}/events"), None)
            .await;
        assert_eq!(r.status().as_u16(), 200);
        assert!(r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream"));
        let mut text = String::new();
        while let Some(chunk) = r.chunk().await.expect("stream") {
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
        let mut out = Vec::new();
        for block in text.split("\n\n") {
            let mut name = String::from("message");
            let mut data = String::new();
            for line in block.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = n.to_string();
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data.push_str(d);
                }
            }
            if !data.is_empty() {
                out.push((name, serde_json::from_str(&data).unwrap_or(Value::Null)));
            }
        }
        out
    }

    /// Plans the standard goal; the plan response (201).
    pub async fn plan(&self) -> Value {
        self.ok(
            Method::POST,
            "/generate-graph",
            Some(json!({"goal": "a backend API for 10k users under $100/month"})),
            201,
        )
        .await
    }

    /// Plans the standard goal and applies it (not a dry run), asserting the
    /// run was verified; returns the plan response. On the simulated cloud,
    /// alerts on `api` then get a `scale_up` decision that asks a human.
    pub async fn deploy(&self) -> Value {
        let planned = self.plan().await;
        let run_id = planned["run_id"].as_str().expect("run id");
        let events = self.apply(run_id).await;
        assert_eq!(
            events.last().expect("events").1["phase"],
            "verified",
            "{events:?}"
        );
        planned
    }

    /// Applies a planned run (not a dry run) and reads its events to the end.
    pub async fn apply(&self, run_id: &str) -> Vec<(String, Value)> {
        self.ok(
            Method::POST,
            "/execute",
            Some(json!({"run_id": run_id, "dry_run": false})),
            202,
        )
        .await;
        self.events(run_id).await
    }

    /// Posts alerts to the webhook (with its token), expecting a 200; the
    /// acknowledgement.
    pub async fn post_alert(&self, body: &Value) -> Value {
        let r = self
            .http
            .post(self.url("/ops/webhook"))
            .header("x-infraai-webhook-token", WEBHOOK)
            .json(body)
            .send()
            .await
            .expect("post alert");
        assert_eq!(r.status().as_u16(), 200);
        r.json().await.expect("acknowledgement")
    }

    /// Approves incident `id` as the operator (200 expected): the answer.
    pub async fn approve(&self, id: &str) -> Value {
        let path = format!("/ops/alerts/{id}/approve");
        self.ok(Method::POST, &path, None, 200).await
    }

    /// Posts `alert` and waits until its incident is `status`: its id.
    pub async fn incident_in(&self, alert: &Value, status: &str) -> String {
        let ack = self.post_alert(alert).await;
        let id = ack["results"][0]["incident_id"]
            .as_str()
            .expect("an incident id")
            .to_string();
        self.wait_incident(&id, |v| v["incident"]["status"] == status)
            .await;
        id
    }

    /// The `/metrics` text.
    pub async fn metrics(&self) -> String {
        let r = self
            .http
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("GET /metrics");
        r.text().await.expect("metrics text")
    }

    /// Sends SIGTERM and waits for the exit status.
    pub async fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().expect("running");
        std::process::Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status()
            .expect("kill");
        tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .expect("server did not stop within 20 s after SIGTERM")
            .expect("wait")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        // Local-cloud instances are separate processes: stop them too.
        if let Ok(dirs) = std::fs::read_dir(self.data.join("local").join("instances")) {
            for d in dirs.flatten() {
                if let Ok(pid) = std::fs::read_to_string(d.path().join("pid")) {
                    let _ = std::process::Command::new("kill").arg(pid.trim()).status();
                }
            }
        }
        if self.remove_data {
            let _ = std::fs::remove_dir_all(&self.data);
        }
    }
}
