//! Change windows: times when the agent acts, notifies or decides
//! differently.
//!
//! - [`WindowKind::Freeze`]: nothing runs without a human (approvals still
//!   run, and the approval message says a freeze is on).
//! - [`WindowKind::Quiet`]: notifications of non-critical incidents wait
//!   and go out as one digest when the window ends.
//! - [`WindowKind::Maintenance`]: alerts on the named resources are
//!   recorded but neither decided nor notified until the window ends; an
//!   incident still open then is decided once.
//!
//! A window is one-off (`start`–`end`) or recurring: a cron expression in a
//! time zone (`0 22 * * 1-5` in `Europe/Berlin`) starting an occurrence
//! that lasts `duration_minutes`.

use super::{GuardrailConfig, GuardrailInput, GuardrailRule, RuleOutcome};
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::str::FromStr;

/// What a window changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WindowKind {
    /// No automatic execution.
    Freeze,
    /// Non-critical notifications batched into a digest.
    Quiet,
    /// Alerts on the named resources recorded, not decided nor notified.
    Maintenance,
}

/// When a window is open.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum WindowSchedule {
    /// Once, from `start` until `end`.
    Once {
        /// Opens.
        start: DateTime<Utc>,
        /// Closes.
        end: DateTime<Utc>,
    },
    /// Every time `cron` matches in `time_zone`, for `duration_minutes`.
    Recurring {
        /// Five-field cron (minute hour day-of-month month day-of-week),
        /// e.g. `0 22 * * 1-5`.
        cron: String,
        /// How long each occurrence lasts.
        duration_minutes: u32,
        /// An IANA time zone, e.g. `Europe/Berlin` (default `UTC`).
        #[serde(default = "utc")]
        time_zone: String,
    },
}

fn utc() -> String {
    "UTC".into()
}

/// A configured change window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ChangeWindow {
    /// Its id (assigned when created).
    #[serde(default)]
    pub id: String,
    /// A name for humans, e.g. `release 4.2`.
    pub name: String,
    /// What it changes.
    pub kind: WindowKind,
    /// When it is open.
    pub schedule: WindowSchedule,
    /// The resources it applies to; empty means every resource (required
    /// for maintenance).
    #[serde(default)]
    pub resources: Vec<String>,
    /// Who created it.
    #[serde(default)]
    pub created_by: String,
    /// When.
    #[serde(default = "Utc::now")]
    pub created_at: DateTime<Utc>,
}

/// The longest a recurring occurrence may last (a week).
const MAX_DURATION_MINUTES: u32 = 7 * 24 * 60;

impl ChangeWindow {
    /// The store key of a window.
    pub fn key(id: &str) -> String {
        format!("{}{id}", Self::KEY_PREFIX)
    }

    /// The prefix of every window's key.
    pub const KEY_PREFIX: &'static str = "window/";

    /// Checks what an operator sent: a name, a schedule that parses and
    /// can open, resources for a maintenance window.
    pub fn validate(&self) -> Result<(), String> {
        if self.name.trim().is_empty() {
            return Err("a window needs a name".into());
        }
        if self.kind == WindowKind::Maintenance && self.resources.is_empty() {
            return Err("a maintenance window names the resources it applies to".into());
        }
        if let Some(r) = self.resources.iter().find(|r| r.trim().is_empty()) {
            return Err(format!("resource name {r:?} is empty"));
        }
        match &self.schedule {
            WindowSchedule::Once { start, end } if end <= start => Err(format!(
                "the window ends ({end}) before it starts ({start})"
            )),
            WindowSchedule::Once { .. } => Ok(()),
            WindowSchedule::Recurring {
                cron,
                duration_minutes,
                time_zone,
            } => {
                parse_cron(cron)?;
                parse_tz(time_zone)?;
                if *duration_minutes == 0 || *duration_minutes > MAX_DURATION_MINUTES {
                    return Err(format!(
                        "duration_minutes must be 1–{MAX_DURATION_MINUTES}, not {duration_minutes}"
                    ));
                }
                Ok(())
            }
        }
    }

    /// When the occurrence open at `at` ends; `None` when the window is
    /// closed then (or its schedule does not parse).
    pub fn open_until(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match &self.schedule {
            WindowSchedule::Once { start, end } => (*start <= at && at < *end).then_some(*end),
            WindowSchedule::Recurring {
                cron,
                duration_minutes,
                time_zone,
            } => {
                let cron = parse_cron(cron).ok()?;
                let tz = parse_tz(time_zone).ok()?;
                let local = at.with_timezone(&tz);
                let started = cron.find_previous_occurrence(&local, true).ok()?;
                let end = started.with_timezone(&Utc)
                    + chrono::Duration::minutes(i64::from(*duration_minutes));
                (at < end).then_some(end)
            }
        }
    }

    /// Whether the window applies to `resource`.
    pub fn applies_to(&self, resource: &str) -> bool {
        self.resources.is_empty() || self.resources.iter().any(|r| r == resource)
    }

    /// `freeze "release 4.2" (until 2026-12-07 18:00 UTC)`.
    pub fn describe(&self, at: DateTime<Utc>) -> String {
        let kind = serde_json::to_value(self.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        match self.open_until(at) {
            Some(end) => format!(
                "{kind} {:?} (until {})",
                self.name,
                end.format("%Y-%m-%d %H:%M UTC")
            ),
            None => format!("{kind} {:?}", self.name),
        }
    }
}

fn parse_cron(cron: &str) -> Result<croner::Cron, String> {
    croner::Cron::from_str(cron).map_err(|e| format!("cron {cron:?}: {e}"))
}

fn parse_tz(tz: &str) -> Result<chrono_tz::Tz, String> {
    chrono_tz::Tz::from_str(tz)
        .map_err(|_| format!("unknown time zone {tz:?} (an IANA name such as Europe/Berlin)"))
}

/// The windows of `kind` open at `at` that apply to `resource`.
pub fn open_windows<'a>(
    windows: &'a [ChangeWindow],
    kind: WindowKind,
    resource: &'a str,
    at: DateTime<Utc>,
) -> impl Iterator<Item = &'a ChangeWindow> + 'a {
    windows
        .iter()
        .filter(move |w| w.kind == kind && w.applies_to(resource) && w.open_until(at).is_some())
}

/// Inside a freeze window, a human approves every action.
pub struct ChangeFreeze;

impl GuardrailRule for ChangeFreeze {
    fn name(&self) -> &'static str {
        "change_freeze"
    }
    fn check(&self, input: &GuardrailInput<'_>, _: &GuardrailConfig) -> RuleOutcome {
        let at = input.standing.at;
        let resource = input.alert.resource.as_str();
        match open_windows(&input.standing.windows, WindowKind::Freeze, resource, at).next() {
            Some(w) => RuleOutcome::NeedsApproval(format!(
                "{} is on: nothing runs without a human",
                w.describe(at)
            )),
            None => RuleOutcome::Pass,
        }
    }
}
