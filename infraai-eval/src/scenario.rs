//! Scenarios: one situation each, as the agent meets it — the deployment,
//! what happened on it lately, the windows that are open, the alerts as
//! their source sends them — and what a good operator would do about it.

use crate::{EvalError, Result};
use infraai_core::{Action, ActionKind, Alert, PlannedResource};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::Path;

/// One scenario (`eval/scenarios/<id>.json`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Its id: the file's name without `.json`.
    pub id: String,
    /// One line on the situation.
    pub title: String,
    /// Free tags for grouping (`profile:gcp/cpu_high`, `injection`, …).
    #[serde(default)]
    pub tags: Vec<String>,
    /// The cloud the deployment runs on: its ladder, prices, allowed
    /// actions and alert profiles apply.
    pub cloud: Cloud,
    /// The deployment's resources.
    pub resources: Vec<PlannedResource>,
    /// Incidents on the deployment before this one, oldest first.
    #[serde(default)]
    pub history: Vec<PastIncident>,
    /// Change windows open now.
    #[serde(default)]
    pub windows: Vec<OpenWindow>,
    /// The deliveries, in order, as their source sends them.
    pub alerts: Vec<Delivery>,
    /// What a re-check after an action reads (default: the alert's
    /// threshold halved, i.e. the action worked).
    #[serde(default)]
    pub metric_after: Option<f64>,
    /// What a good operator does.
    pub expect: Expect,
}

/// A cloud whose rules the scenario runs under.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cloud {
    /// Google Cloud.
    Gcp,
    /// AWS.
    Aws,
    /// The local cloud (processes on one machine).
    Local,
}

/// One delivery, in its source's own format.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    /// A Cloud Monitoring webhook notification (`{"version": "1.2",
    /// "incident": {…}}`).
    Gcp(Value),
    /// An Alertmanager webhook notification (`{"version": "4", "alerts":
    /// […]}`).
    Alertmanager(Value),
    /// An SNS notification envelope whose `Message` is a CloudWatch alarm
    /// state change (its signature is checked by the SNS source's own
    /// tests, not here).
    Sns(Value),
    /// An alert of the local cloud's threshold watcher.
    Watcher(Box<Alert>),
}

/// An incident before this one, and how it ended.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PastIncident {
    /// The resource.
    pub resource: String,
    /// The alert policy that fired.
    pub policy_name: String,
    /// The metric it watched.
    pub metric: String,
    /// What was done.
    pub action: Action,
    /// How it ended.
    pub outcome: PastOutcome,
    /// How long ago it started.
    pub minutes_ago: u32,
}

/// How a past incident ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PastOutcome {
    /// The action ran and the metric came back.
    Resolved,
    /// The action ran and the metric stayed over its threshold.
    Unresolved,
}

/// A change window open now.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenWindow {
    /// `freeze`, `quiet` or `maintenance`.
    pub kind: infraai_core::guardrails::WindowKind,
    /// Its name, e.g. `orders table migration`.
    pub name: String,
    /// The resources it covers (all when empty).
    #[serde(default)]
    pub resources: Vec<String>,
}

/// What a good operator does.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// The acceptable handlings: actions, `escalate`, `ignore`, or `hold`
    /// (left for after a maintenance window).
    pub accept: Vec<Handling>,
    /// Actions that would do harm here.
    #[serde(default)]
    pub harmful: Vec<ActionKind>,
    /// Whether an acceptable action must still wait for a human (running
    /// it alone counts as wrong).
    #[serde(default)]
    pub needs_human: bool,
    /// How many incidents the deliveries should open (deduplication,
    /// flapping); default: not checked.
    #[serde(default)]
    pub incidents: Option<usize>,
}

/// A way to handle an incident, as expected or as seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Handling {
    /// Change the machine type.
    ScaleUp,
    /// Add instances.
    ScaleOut,
    /// Restart.
    Restart,
    /// Change a firewall rule.
    ModifyFirewall,
    /// Hand to a human without an action.
    Escalate,
    /// Nothing to do.
    Ignore,
    /// Recorded, decided after a maintenance window.
    Hold,
}

impl From<ActionKind> for Handling {
    fn from(kind: ActionKind) -> Self {
        match kind {
            ActionKind::ScaleUp => Handling::ScaleUp,
            ActionKind::ScaleOut => Handling::ScaleOut,
            ActionKind::Restart => Handling::Restart,
            ActionKind::ModifyFirewall => Handling::ModifyFirewall,
            ActionKind::Escalate => Handling::Escalate,
            ActionKind::Ignore => Handling::Ignore,
        }
    }
}

impl Scenario {
    /// Checks what serde cannot: the id matches the file, there is
    /// something to deliver and to expect.
    fn check(&self, stem: &str) -> std::result::Result<(), String> {
        if self.id != stem {
            return Err(format!("id {:?} is not the file's name", self.id));
        }
        if self.alerts.is_empty() {
            return Err("no alerts".into());
        }
        if self.expect.accept.is_empty() {
            return Err("expect.accept is empty".into());
        }
        if let Some(h) = (self.expect.accept.iter())
            .find(|h| (self.expect.harmful.iter()).any(|k| Handling::from(*k) == **h))
        {
            return Err(format!("{h:?} is both acceptable and harmful"));
        }
        Ok(())
    }
}

/// Reads every `*.json` scenario in `dir`, sorted by id.
pub fn load_dir(dir: &Path) -> Result<Vec<Scenario>> {
    let entries = std::fs::read_dir(dir).map_err(|e| EvalError::io(dir, e))?;
    let mut scenarios = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| EvalError::io(dir, e))?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        scenarios.push(load(&path)?);
    }
    if scenarios.is_empty() {
        return Err(EvalError::Scenario {
            path: dir.display().to_string(),
            detail: "no scenarios (*.json) here".into(),
        });
    }
    scenarios.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(scenarios)
}

/// Reads one scenario file.
pub fn load(path: &Path) -> Result<Scenario> {
    let bad = |detail: String| EvalError::Scenario {
        path: path.display().to_string(),
        detail,
    };
    let text = std::fs::read_to_string(path).map_err(|e| EvalError::io(path, e))?;
    let scenario: Scenario = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    scenario.check(stem).map_err(bad)?;
    Ok(scenario)
}
