//! Helpers of the local cloud's real-loop tests.
#![allow(dead_code)] // each test file uses a part

use infraai_core::testing::MemoryStore;
use infraai_core::*;
use infraai_terraform::TerraformConfig;
use std::path::PathBuf;
use std::time::Duration;

pub fn terraform(test: &str) -> Option<TerraformConfig> {
    let skip = |reason: &str| {
        if std::env::var("INFRAAI_REQUIRE_SERVICES").as_deref() == Ok("1") {
            panic!("{test}: {reason}, but INFRAAI_REQUIRE_SERVICES=1");
        }
        eprintln!("skipping {test}: {reason}");
    };
    let Some(bin) = std::env::var_os("TERRAFORM_BIN") else {
        skip("TERRAFORM_BIN is not set (point it at a terraform binary; scripts/test-all.sh sets it)");
        return None;
    };
    let root = std::env::temp_dir().join(format!("infraai-local-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let mut c = TerraformConfig::new(root.join("runs")).with_binary(PathBuf::from(bin));
    if let Some(rc) = std::env::var_os("TF_CLI_CONFIG_FILE") {
        c = c.with_cli_config_file(PathBuf::from(rc));
    }
    Some(c)
}

/// Kills every recorded instance if the test fails half-way.
pub struct Reaper(pub PathBuf);
impl Drop for Reaper {
    fn drop(&mut self) {
        let mut records: Vec<PathBuf> = children(&self.0.join("instances"));
        for group in children(&self.0.join("groups")) {
            records.extend(children(&group));
        }
        for record in records {
            if let Ok(pid) = std::fs::read_to_string(record.join("pid")) {
                if let Ok(pid) = pid.trim().parse::<i32>() {
                    // SAFETY: kill(2) with a recorded pid and SIGKILL has no memory effects.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
        }
    }
}

fn children(dir: &std::path::Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect()
}

/// A log sink that drops every line.
pub struct Quiet;
impl LogSink for Quiet {
    fn log(&self, _: LogLine) {}
}

pub struct Load(pub tokio::task::JoinHandle<()>);
impl Drop for Load {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// `cpu_ms` of CPU every 100 ms, fired without waiting for answers.
pub fn load(url: String, cpu_ms: u64) -> Load {
    Load(tokio::spawn(async move {
        let http = reqwest::Client::new();
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tick.tick().await;
            let (http, url) = (http.clone(), url.clone());
            tokio::spawn(async move { http.get(format!("{url}work?ms={cpu_ms}")).send().await });
        }
    }))
}

pub async fn wait_status(
    store: &MemoryStore,
    id: IncidentId,
    want: IncidentStatus,
    secs: u64,
) -> Incident {
    for _ in 0..secs * 10 {
        let i = store.get_incident(id).await.unwrap().unwrap();
        if i.status == want {
            return i;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let i = store.get_incident(id).await.unwrap().unwrap();
    panic!("incident never became {want}: {i:#?}");
}

/// Runs the watcher until it yields a firing alert, feeding it to the ops loop.
pub async fn watch_until_fired(
    watcher: &mut ThresholdWatcher,
    store: &MemoryStore,
    ops: &OpsAgent,
    metric: &str,
    secs: u64,
) -> Incident {
    for _ in 0..secs {
        let deployment = store.list_deployments().await.unwrap().remove(0);
        for alert in watcher.evaluate(&deployment, chrono::Utc::now()).await {
            if alert.metric == metric && alert.state == AlertState::Firing {
                return ops.handle_alert(&alert).await.unwrap().incident.unwrap();
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    panic!("the watcher never fired {metric}");
}
