//! The real monitoring loop, every piece a real process: the `infraai-server`
//! binary with the local cloud (real Terraform), Prometheus scraping the
//! deployed instance and evaluating the server's exported rules, and two
//! Alertmanagers (HA pair without gossip, as a second peer would deliver)
//! routing to `POST /ops/webhook/alertmanager`.
//!
//! load → the rule fires → both Alertmanagers deliver (and repeat) → one
//! incident, one decision → approval over the HTTP API → scale-up through
//! Terraform → the metric falls (read back from Prometheus) → the feedback
//! check resolves the incident → Alertmanager's resolved notifications are
//! recorded on it and nothing reopens.
//!
//! Prometheus and Alertmanager are started here, on free loopback ports, not
//! by scripts/test-all.sh: their configuration needs the ports of the server
//! and of the deployed instance, which exist only inside the test, and their
//! logs then belong to the test that prints them on failure.
//!
//! Needs `prometheus` and `prometheus-alertmanager` (Debian package names;
//! `INFRAAI_PROMETHEUS_BIN` / `INFRAAI_ALERTMANAGER_BIN` override) and
//! Terraform; with `INFRAAI_REQUIRE_SERVICES=1` a missing one fails the test.

mod common;

use common::*;
use reqwest::Method;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

const CPU: &str = "local/instance/cpu/utilization";

fn find_bin(env: &str, names: &[&str]) -> Option<PathBuf> {
    if let Ok(p) = std::env::var(env) {
        return Some(PathBuf::from(p));
    }
    for name in names {
        for dir in std::env::var("PATH").unwrap_or_default().split(':') {
            let p = Path::new(dir).join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

/// Prometheus and Alertmanager binaries; fails under INFRAAI_REQUIRE_SERVICES=1.
fn services() -> Option<(PathBuf, PathBuf)> {
    let prom = find_bin("INFRAAI_PROMETHEUS_BIN", &["prometheus"]);
    let am = find_bin(
        "INFRAAI_ALERTMANAGER_BIN",
        &["prometheus-alertmanager", "alertmanager"],
    );
    match (prom, am) {
        (Some(p), Some(a)) => Some((p, a)),
        (p, a) => {
            let why = format!(
                "prometheus: {p:?}, alertmanager: {a:?} (apt-get install prometheus prometheus-alertmanager, or set INFRAAI_PROMETHEUS_BIN / INFRAAI_ALERTMANAGER_BIN)"
            );
            if std::env::var("INFRAAI_REQUIRE_SERVICES").as_deref() == Ok("1") {
                panic!("prometheus_loop: missing services but INFRAAI_REQUIRE_SERVICES=1: {why}");
            }
            eprintln!("skipping prometheus_loop: {why}");
            None
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A monitoring process whose log is printed when the test fails.
struct Service {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Service {
    fn start(name: &'static str, bin: &Path, args: &[String], dir: &Path) -> Service {
        let log = dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(bin)
            .args(args)
            .current_dir(dir)
            .stdout(file.try_clone().expect("log file"))
            .stderr(file)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name} ({}): {e}", bin.display()));
        Service { name, child, log }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!(
                "----- {} log (last {} lines, {}) -----",
                self.name,
                tail.len(),
                self.log.display()
            );
            for l in tail.iter().rev() {
                eprintln!("{l}");
            }
        }
    }
}

/// Waits for `url` to answer 200 (services start in well under the bound).
async fn ready(http: &reqwest::Client, what: &str, url: &str, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Ok(r) = http.get(url).send().await {
            if r.status().is_success() {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not become ready at {url} within {secs} s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

struct Load(tokio::task::JoinHandle<()>);
impl Drop for Load {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// `cpu_ms` of CPU every 100 ms on the instance's CPU-heavy endpoint.
fn load(url: String, cpu_ms: u64) -> Load {
    Load(tokio::spawn(async move {
        let http = reqwest::Client::new();
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tick.tick().await;
            let (http, url) = (http.clone(), url.clone());
            tokio::spawn(async move { http.get(format!("{url}/work?ms={cpu_ms}")).send().await });
        }
    }))
}

async fn incidents(s: &Server) -> Vec<Value> {
    s.ok(Method::GET, "/ops/alerts?limit=1000", None, 200).await["incidents"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Polls until `pred` holds on the incident list, with a bounded wait and a
/// message saying what never happened.
async fn wait_list(
    s: &Server,
    what: &str,
    secs: u64,
    pred: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let list = incidents(s).await;
        if pred(&list) {
            return list;
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within {secs} s; incidents: {list:#?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

async fn wait_detail(
    s: &Server,
    id: &str,
    what: &str,
    secs: u64,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let v = s
            .ok(Method::GET, &format!("/ops/alerts/{id}"), None, 200)
            .await;
        if pred(&v) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within {secs} s; incident: {v:#}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn write_json(path: &Path, v: &Value) {
    std::fs::write(path, serde_json::to_vec_pretty(v).expect("json")).expect("write config");
}

fn cpu_incidents(list: &[Value]) -> Vec<&Value> {
    list.iter()
        .filter(|i| i["alert"]["metric"] == CPU)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_alertmanager_agent_loop() {
    if !terraform_available("prometheus_loop") {
        return;
    }
    let Some((prometheus_bin, alertmanager_bin)) = services() else {
        return;
    };
    let started = Instant::now();
    let prom_port = free_port();
    let prom_url = format!("http://127.0.0.1:{prom_port}");
    // Re-check 5 s after the action: the replaced process is scraped again
    // by then (1 s scrapes), so Prometheus has fresh samples to judge.
    let s = Server::start(
        "prometheus-loop",
        &["--cloud", "local"],
        &[
            ("INFRAAI_PROMETHEUS_URL", prom_url.as_str()),
            ("INFRAAI_FEEDBACK_DELAY_SECS", "5"),
        ],
    )
    .await;
    assert!(
        s.startup
            .iter()
            .any(|l| l.starts_with("metrics: Prometheus at")),
        "{:?}",
        s.startup
    );

    // Deploy a web app on the local cloud (real Terraform, a real process).
    let planned = s
        .ok(
            Method::POST,
            "/generate-graph",
            Some(json!({"goal": "a web app for 500 users"})),
            201,
        )
        .await;
    let run_id = planned["run_id"].as_str().expect("run id").to_string();
    let events = s.apply(&run_id).await;
    assert_eq!(
        events.last().map(|e| e.1["phase"].clone()),
        Some(json!("verified")),
        "deploy did not complete: {events:?}"
    );
    let instance_dir = s.data.join("local/instances/web");
    let port = std::fs::read_to_string(instance_dir.join("port")).expect("instance port");
    let instance = format!("127.0.0.1:{}", port.trim());

    // The server's rules for its deployment. The built-in local profiles
    // hold for 30 s; shortened to 3 s here to keep CI fast (the only change).
    let mut rules = s.ok(Method::GET, "/ops/prometheus/rules", None, 200).await;
    let groups = rules["groups"].as_array_mut().expect("groups");
    assert_eq!(groups.len(), 1, "one deployment, one group: {groups:?}");
    let rule_list = groups[0]["rules"].as_array_mut().expect("rules");
    assert!(
        rule_list
            .iter()
            .any(|r| r["labels"]["metric"] == CPU && r["labels"]["instance"] == "web"),
        "{rule_list:#?}"
    );
    for r in rule_list.iter_mut() {
        r["for"] = json!("3s");
    }

    let dir = Server::fresh_dir("prometheus-loop-services");
    std::fs::create_dir_all(&dir).expect("services dir");
    write_json(&dir.join("rules.json"), &rules);
    // The instance, named as the agent knows it (`instance="web"`).
    write_json(
        &dir.join("targets.json"),
        &json!([{"targets": [instance], "labels": {"instance": "web"}}]),
    );
    let am_ports = [free_port(), free_port()];
    write_json(
        &dir.join("prometheus.yml"),
        &json!({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [dir.join("rules.json")],
            "scrape_configs": [{
                "job_name": "infraai-local",
                "file_sd_configs": [{"files": [dir.join("targets.json")], "refresh_interval": "1s"}],
            }],
            "alerting": {"alertmanagers": [{"static_configs": [{"targets": [
                format!("127.0.0.1:{}", am_ports[0]), format!("127.0.0.1:{}", am_ports[1]),
            ]}]}]},
        }),
    );
    write_json(
        &dir.join("alertmanager.yml"),
        &json!({
            "route": {
                "receiver": "infraai",
                "group_by": ["alertname", "instance"],
                "group_wait": "1s", "group_interval": "1s", "repeat_interval": "2s",
            },
            "receivers": [{"name": "infraai", "webhook_configs": [{
                "url": s.url("/ops/webhook/alertmanager"),
                "send_resolved": true,
                "http_config": {"authorization": {"type": "Bearer", "credentials": WEBHOOK}},
            }]}],
        }),
    );
    let mut services = Vec::new();
    for (i, port) in am_ports.iter().enumerate() {
        let data = dir.join(format!("am{i}"));
        std::fs::create_dir_all(&data).expect("am dir");
        services.push(Service::start(
            if i == 0 {
                "alertmanager-a"
            } else {
                "alertmanager-b"
            },
            &alertmanager_bin,
            &[
                format!("--config.file={}", dir.join("alertmanager.yml").display()),
                format!("--storage.path={}", data.display()),
                format!("--web.listen-address=127.0.0.1:{port}"),
                // Two independent peers: no gossip, each notifies on its own.
                "--cluster.listen-address=".into(),
            ],
            &dir,
        ));
    }
    services.push(Service::start(
        "prometheus",
        &prometheus_bin,
        &[
            format!("--config.file={}", dir.join("prometheus.yml").display()),
            format!("--storage.tsdb.path={}", dir.join("tsdb").display()),
            format!("--web.listen-address=127.0.0.1:{prom_port}"),
        ],
        &dir,
    ));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    for port in am_ports {
        ready(
            &http,
            "alertmanager",
            &format!("http://127.0.0.1:{port}/-/ready"),
            30,
        )
        .await;
    }
    ready(&http, "prometheus", &format!("{prom_url}/-/ready"), 30).await;
    let loaded: Value = http
        .get(format!("{prom_url}/api/v1/rules"))
        .send()
        .await
        .expect("rules")
        .json()
        .await
        .expect("rules json");
    assert_eq!(
        loaded["data"]["groups"].as_array().map(Vec::len),
        Some(1),
        "Prometheus did not load the exported rules: {loaded}"
    );

    // 0.3 cores of load: 1.2 of a local-small's 0.25, 0.6 of a local-medium's 0.5.
    let _load = load(format!("http://{instance}"), 30);
    let list = wait_list(
        &s,
        "cpu_high firing → Alertmanager → a pending incident",
        90,
        |l| cpu_incidents(l).iter().any(|i| i["status"] == "pending"),
    )
    .await;
    let cpu = cpu_incidents(&list);
    assert_eq!(cpu.len(), 1, "exactly one incident: {list:#?}");
    let id = cpu[0]["id"].as_str().expect("id").to_string();
    assert_eq!(cpu[0]["alert"]["source"], "alertmanager");
    assert_eq!(cpu[0]["alert"]["resource"], "web");
    assert_eq!(
        cpu[0]["decision"]["recommended_action"],
        json!({"type": "scale_up", "machine_type": "local-medium"}),
        "{:#}",
        cpu[0]
    );

    // Both Alertmanagers deliver and repeat (every 2 s): the copies land on
    // the open incident, nothing new is decided.
    let repeated = wait_detail(&s, &id, "repeat and HA notifications", 30, |v| {
        v["incident"]["occurrences"].as_u64().unwrap_or(0) >= 4
    })
    .await;
    let decisions = |v: &Value| {
        v["audit"]
            .as_array()
            .map(|a| a.iter().filter(|r| r["step"] == "decision").count())
            .unwrap_or(0)
    };
    assert_eq!(decisions(&repeated), 1, "{:#}", repeated["audit"]);
    assert_eq!(cpu_incidents(&incidents(&s).await).len(), 1);

    // Approve over the HTTP API: scale-up through Terraform, re-check.
    let approved = s
        .ok(
            Method::POST,
            &format!("/ops/alerts/{id}/approve"),
            None,
            200,
        )
        .await;
    assert_eq!(approved["effective"], true);
    let done = wait_detail(&s, &id, "execution and feedback", 120, |v| {
        matches!(
            v["incident"]["status"].as_str(),
            Some("resolved" | "unresolved")
        )
    })
    .await;
    assert_eq!(
        done["incident"]["status"], "resolved",
        "the feedback check did not resolve it: {done:#}"
    );
    let note = done["incident"]["note"].as_str().unwrap_or_default();
    assert!(
        note.contains("back within the threshold"),
        "resolved by the feedback check, not by the alert clearing: {note}"
    );
    let actions = done["actions"].as_array().expect("actions");
    assert_eq!(actions.len(), 1, "{done:#}");
    assert_eq!(actions[0]["success"], true, "{done:#}");
    let machine = std::fs::read_to_string(instance_dir.join("machine_type")).unwrap_or_default();
    assert_eq!(
        machine.trim(),
        "local-medium",
        "the scale-up did not happen"
    );
    // The metric as Prometheus sees it now.
    let q: Value = http
        .get(format!("{prom_url}/api/v1/query"))
        .query(&[(
            "query",
            "irate(process_cpu_seconds_total{instance=\"web\"}[1m]) / demo_cpu_allotment_cores{instance=\"web\"}",
        )])
        .send()
        .await
        .expect("query")
        .json()
        .await
        .expect("query json");
    let value: f64 = q["data"]["result"][0]["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN);
    assert!(value < 0.8, "utilization after the scale-up: {q}");

    // Prometheus stops firing; both Alertmanagers send `resolved`: recorded
    // on the resolved incident (audit), never reopening it.
    let noted = wait_detail(&s, &id, "Alertmanager's resolved notification", 60, |v| {
        v["audit"].as_array().is_some_and(|a| {
            a.iter().any(|r| {
                r["step"] == "alert_received"
                    && r["outcome"] == "noted"
                    && r["input"]["state"] == "resolved"
            })
        })
    })
    .await;
    assert_eq!(noted["incident"]["status"], "resolved");
    // A few more repeat/group intervals: still one incident, one decision.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let list = incidents(&s).await;
    let cpu = cpu_incidents(&list);
    assert_eq!(cpu.len(), 1, "something reopened: {list:#?}");
    assert_eq!(cpu[0]["status"], "resolved");
    let last = s
        .ok(Method::GET, &format!("/ops/alerts/{id}"), None, 200)
        .await;
    assert_eq!(decisions(&last), 1, "{:#}", last["audit"]);
    assert_eq!(last["actions"].as_array().map(Vec::len), Some(1));
    // The incident chart's series is Prometheus's own history (query_range)
    // over the incident window: it shows the breach and the fall after the
    // scale-up.
    let series = s
        .ok(Method::GET, &format!("/ops/alerts/{id}/series"), None, 200)
        .await;
    let samples: Vec<f64> = series["points"]
        .as_array()
        .expect("points")
        .iter()
        .filter(|p| p["source"] == "sample")
        .filter_map(|p| p["value"].as_f64())
        .collect();
    assert!(samples.len() >= 5, "{series:#}");
    assert!(
        samples.iter().any(|v| *v > 0.8) && samples.last().is_some_and(|v| *v < 0.8),
        "the history shows the breach, then the fall: {samples:?}"
    );
    assert!(series["sample_error"].is_null(), "{series:#}");
    eprintln!(
        "prometheus_loop: done in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    drop(services);
    let _ = std::fs::remove_dir_all(&dir);
}
