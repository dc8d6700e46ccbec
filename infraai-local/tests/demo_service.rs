//! The demo service as a real process, measured by LocalMetrics.

use infraai_core::{Error, MetricQuery, MetricSource};
use infraai_local::instances::{is_alive, InstanceDir};
use infraai_local::profiles::{
    CPU_UTILIZATION, HEALTH_FAILING, LOCAL_INSTANCE, REQUEST_LATENCY_MS,
};
use infraai_local::LocalMetrics;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::Duration;

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn state_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("infraai-local-test-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

async fn start(state: &std::path::Path, name: &str, machine_type: &str) -> Killed {
    let dir = InstanceDir::new(state);
    let child = Command::new(env!("CARGO_BIN_EXE_infraai-demo-service"))
        .args([
            "--name",
            name,
            "--machine-type",
            machine_type,
            "--record-dir",
        ])
        .arg(dir.path(name))
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start the demo service");
    for _ in 0..200 {
        if dir.read(name).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Killed(child)
}

fn query(metric: &str) -> MetricQuery {
    MetricQuery {
        resource: "web".into(),
        resource_type: LOCAL_INSTANCE.into(),
        metric: metric.into(),
        lookback_secs: 30,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_process_real_http_real_cpu() {
    let state = state_dir("cpu");
    let mut child = start(&state, "web", "local-small").await;
    let instance = InstanceDir::new(&state)
        .read("web")
        .await
        .expect("recorded");
    assert_eq!(instance.pid, child.0.id());
    let http = reqwest::Client::new();
    let root: serde_json::Value = http
        .get(instance.url())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        root,
        serde_json::json!({"instance": "web", "machine_type": "local-small"})
    );

    let metrics = LocalMetrics::new(InstanceDir::new(&state));
    let idle = metrics
        .current_value(&query(CPU_UTILIZATION))
        .await
        .unwrap()
        .value;
    assert!(idle < 0.2, "idle utilization {idle}");
    assert_eq!(
        metrics
            .current_value(&query(HEALTH_FAILING))
            .await
            .unwrap()
            .value,
        0.0
    );

    // A fixed rate of 40 ms of CPU every 100 ms (0.4 cores), fired without
    // waiting for answers, as a load generator does.
    let url = instance.url();
    let load = tokio::spawn(async move {
        let http = reqwest::Client::new();
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tick.tick().await;
            let (http, url) = (http.clone(), url.clone());
            tokio::spawn(async move { http.get(format!("{url}/work?ms=40")).send().await });
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let busy = metrics
        .current_value(&query(CPU_UTILIZATION))
        .await
        .unwrap()
        .value;
    load.abort();
    // 0.4 cores on a 0.25-core allotment is 1.6; > 0.8 needs 0.2 cores
    // actually delivered, which holds even on a busy machine.
    assert!(busy > 0.8, "utilization under load {busy}");
    let latency = metrics
        .current_value(&query(REQUEST_LATENCY_MS))
        .await
        .unwrap()
        .value;
    assert!(latency >= 30.0, "mean latency {latency} ms");

    // Broken health, then a dead process.
    http.post(format!("{}/admin/break", instance.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        metrics
            .current_value(&query(HEALTH_FAILING))
            .await
            .unwrap()
            .value,
        1.0
    );
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    assert!(!is_alive(instance.pid));
    assert_eq!(
        metrics
            .current_value(&query(HEALTH_FAILING))
            .await
            .unwrap()
            .value,
        1.0
    );
    assert!(matches!(
        metrics.current_value(&query(CPU_UTILIZATION)).await,
        Err(Error::NotFound { .. })
    ));
    let _ = std::fs::remove_dir_all(&state);
}

#[tokio::test]
async fn unknown_instances_and_metrics_are_clear_errors() {
    let state = state_dir("none");
    let metrics = LocalMetrics::new(InstanceDir::new(&state));
    assert!(matches!(
        metrics.current_value(&query(CPU_UTILIZATION)).await,
        Err(Error::NotFound { .. })
    ));
    assert_eq!(
        metrics
            .current_value(&query(HEALTH_FAILING))
            .await
            .unwrap()
            .value,
        1.0
    );
    assert!(matches!(
        metrics.current_value(&query("disk")).await,
        Err(Error::NotSupported { .. })
    ));
}
