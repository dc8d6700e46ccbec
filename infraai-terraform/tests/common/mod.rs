//! Shared helpers of the real-terraform tests.

#![allow(dead_code)]

use infraai_core::{LogLine, LogSink};
use infraai_terraform::{TerraformConfig, TerraformRunner};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;
use tokio::sync::mpsc;

/// The terraform settings from the environment (`TERRAFORM_BIN`,
/// `TF_CLI_CONFIG_FILE`), or `None` with a printed reason. Panics when
/// `INFRAAI_REQUIRE_SERVICES=1` and terraform is missing.
pub fn config(test: &str) -> Option<TerraformConfig> {
    let skip = |reason: String| {
        if std::env::var("INFRAAI_REQUIRE_SERVICES").as_deref() == Ok("1") {
            panic!("{test}: {reason}, but INFRAAI_REQUIRE_SERVICES=1");
        }
        eprintln!("skipping {test}: {reason}");
    };
    let Some(bin) = std::env::var_os("TERRAFORM_BIN") else {
        skip("TERRAFORM_BIN is not set (point it at a terraform binary; scripts/test-all.sh sets it)".into());
        return None;
    };
    // These tests use `terraform_data`, which needs terraform >= 1.4.
    if let Ok(version) = std::env::var("TERRAFORM_VERSION") {
        let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
        let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
        if (major, minor) < (1, 4) {
            skip(format!(
                "terraform {version} is older than 1.4 (no terraform_data)"
            ));
            return None;
        }
    }
    let root = std::env::temp_dir()
        .join("infraai-terraform-tests")
        .join(format!("{test}-{}", uuid::Uuid::now_v7()));
    let mut config = TerraformConfig::new(root).with_binary(PathBuf::from(bin));
    if let Some(rc) = std::env::var_os("TF_CLI_CONFIG_FILE") {
        config = config.with_cli_config_file(PathBuf::from(rc));
    }
    Some(config)
}

/// A runner for `test`, or `None` (skipped).
pub fn runner(test: &str) -> Option<TerraformRunner> {
    config(test).map(TerraformRunner::new)
}

/// Removes a test's work root.
pub async fn cleanup(runner: &TerraformRunner) {
    let _ = tokio::fs::remove_dir_all(&runner.config().work_root).await;
}

/// Keeps every line.
#[derive(Default)]
pub struct Collect(pub Mutex<Vec<LogLine>>);

impl LogSink for Collect {
    fn log(&self, line: LogLine) {
        self.0.lock().unwrap().push(line);
    }
}

impl Collect {
    pub fn lines(&self) -> Vec<LogLine> {
        self.0.lock().unwrap().clone()
    }

    /// The `type` of every `-json` event, in order.
    pub fn event_types(&self) -> Vec<String> {
        self.lines()
            .iter()
            .filter_map(|l| {
                l.fields
                    .get("type")
                    .and_then(|t| t.as_str())
                    .map(String::from)
            })
            .collect()
    }
}

/// Sends every line, with the instant it arrived, to a channel.
pub struct Channel(pub mpsc::UnboundedSender<(Instant, LogLine)>);

impl LogSink for Channel {
    fn log(&self, line: LogLine) {
        let _ = self.0.send((Instant::now(), line));
    }
}

/// The `type` of a `-json` event line.
pub fn event_type(line: &LogLine) -> &str {
    line.fields
        .get("type")
        .and_then(|t| t.as_str())
        .unwrap_or("")
}
