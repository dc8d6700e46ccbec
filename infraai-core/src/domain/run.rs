//! A run of the deploy loop and its phases.

use super::{
    ApplyDiagnosis, ChangeSet, Diagnostic, InfraPlan, StateResource, TerraformFiles,
    VerificationReport,
};
use crate::{DeploymentId, RunId};
use chrono::{DateTime, Utc};
use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// Most validation fix attempts before a run fails.
pub const MAX_FIX_ATTEMPTS: u8 = 3;

/// Most re-plan/re-apply attempts after transient apply failures.
pub const MAX_APPLY_RETRIES: u8 = 5;

/// Where a run is. Serialized as the names in ARCHITECTURE.md:
/// `starting`, `initializing`, `validating`, `fix_attempt_1`…`fix_attempt_3`,
/// `planning`, `applying`, `diagnosing`, `apply_retry_1`…`apply_retry_5`,
/// `verifying`, `finalizing`, then `verified` (a deploy whose service
/// answers), `deploy_success_verify_failed` (applied, but the service does
/// not answer), `completed` (a dry run, after planning) or `failed`; and
/// `paused_by_kill_switch` while STOP AUTONOMY holds the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RunPhase {
    /// Created, nothing done yet.
    Starting,
    /// `terraform init`.
    Initializing,
    /// `terraform validate`.
    Validating,
    /// Fixing an invalid configuration; attempt 1–3.
    FixAttempt(u8),
    /// `terraform plan` (the dry-run change set).
    Planning,
    /// `terraform apply`.
    Applying,
    /// A plan or apply failed; the failure is being classified.
    Diagnosing,
    /// Waiting out a transient failure before re-planning and re-applying;
    /// retry 1–[`MAX_APPLY_RETRIES`].
    ApplyRetry(u8),
    /// HTTP checks against the outputs.
    Verifying,
    /// Storing the deployment.
    Finalizing,
    /// Deployed, and every endpoint answered: the end of a deploy.
    Verified,
    /// Deployed (the deployment is stored), but an endpoint did not answer:
    /// the run's `error` says which.
    VerifyFailed,
    /// A dry run finished after planning.
    Completed,
    /// Waiting for RESUME (or a cancel) while STOP AUTONOMY is engaged,
    /// before the phase its history's note names.
    Paused,
    /// Finished with an error; the run's `error` says why.
    Failed,
}

impl RunPhase {
    /// Whether the run has ended.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RunPhase::Verified | RunPhase::VerifyFailed | RunPhase::Completed | RunPhase::Failed
        )
    }
}

/// Where a run stands, in the product plan's words (`GET /runs/{id}/status`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Not started yet, or between phases.
    Running,
    /// Ended well: deployed and verified, or a dry run planned.
    Completed,
    /// Deployed, but the service does not answer.
    DeploySuccessVerifyFailed,
    /// Ended with an error.
    Failed,
    /// Waiting while STOP AUTONOMY is engaged.
    PausedByKillSwitch,
}

impl From<RunPhase> for RunStatus {
    fn from(phase: RunPhase) -> Self {
        match phase {
            RunPhase::Verified | RunPhase::Completed => RunStatus::Completed,
            RunPhase::VerifyFailed => RunStatus::DeploySuccessVerifyFailed,
            RunPhase::Failed => RunStatus::Failed,
            RunPhase::Paused => RunStatus::PausedByKillSwitch,
            _ => RunStatus::Running,
        }
    }
}

impl fmt::Display for RunPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            RunPhase::Starting => "starting",
            RunPhase::Initializing => "initializing",
            RunPhase::Validating => "validating",
            RunPhase::FixAttempt(n) => return write!(f, "fix_attempt_{n}"),
            RunPhase::Planning => "planning",
            RunPhase::Applying => "applying",
            RunPhase::Diagnosing => "diagnosing",
            RunPhase::ApplyRetry(n) => return write!(f, "apply_retry_{n}"),
            RunPhase::Verifying => "verifying",
            RunPhase::Finalizing => "finalizing",
            RunPhase::Verified => "verified",
            RunPhase::VerifyFailed => "deploy_success_verify_failed",
            RunPhase::Completed => "completed",
            RunPhase::Paused => "paused_by_kill_switch",
            RunPhase::Failed => "failed",
        };
        f.write_str(s)
    }
}

impl FromStr for RunPhase {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "starting" => RunPhase::Starting,
            "initializing" => RunPhase::Initializing,
            "validating" => RunPhase::Validating,
            "planning" => RunPhase::Planning,
            "applying" => RunPhase::Applying,
            "diagnosing" => RunPhase::Diagnosing,
            "verifying" => RunPhase::Verifying,
            "finalizing" => RunPhase::Finalizing,
            "verified" => RunPhase::Verified,
            "deploy_success_verify_failed" => RunPhase::VerifyFailed,
            "completed" => RunPhase::Completed,
            "paused_by_kill_switch" => RunPhase::Paused,
            "failed" => RunPhase::Failed,
            other => {
                let numbered = |prefix: &str, max: u8| match other
                    .strip_prefix(prefix)
                    .map(str::parse::<u8>)
                {
                    Some(Ok(n)) if (1..=max).contains(&n) => Some(n),
                    _ => None,
                };
                if let Some(n) = numbered("fix_attempt_", MAX_FIX_ATTEMPTS) {
                    RunPhase::FixAttempt(n)
                } else if let Some(n) = numbered("apply_retry_", MAX_APPLY_RETRIES) {
                    RunPhase::ApplyRetry(n)
                } else {
                    return Err(crate::Error::invalid(
                        "run phase",
                        format!("unknown phase {other:?}"),
                    ));
                }
            }
        })
    }
}

impl Serialize for RunPhase {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RunPhase {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for RunPhase {
    fn schema_name() -> Cow<'static, str> {
        "RunPhase".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": "^(starting|initializing|validating|fix_attempt_[1-3]|planning|applying|diagnosing|apply_retry_[1-5]|verifying|finalizing|verified|deploy_success_verify_failed|completed|paused_by_kill_switch|failed)$"
        })
    }
}

/// One entry of a run's phase history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PhaseChange {
    /// The phase entered.
    pub phase: RunPhase,
    /// When.
    pub at: DateTime<Utc>,
    /// Optional context (e.g. the failure reason).
    #[serde(default)]
    pub note: Option<String>,
}

/// One attempt at fixing an invalid configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FixAttempt {
    /// 1-based attempt number.
    pub attempt: u8,
    /// The diagnostics that triggered the attempt.
    pub diagnostics: Vec<Diagnostic>,
    /// Which fixer produced the new files (`none` when no fixer could help).
    pub fixer: String,
    /// The files after the fix, when a fixer produced any.
    pub files: Option<TerraformFiles>,
    /// The files the diagnostics refer to, kept for the first attempt only
    /// (they are overwritten otherwise; a later attempt's input is the
    /// previous attempt's `files`). Lets a viewer place attempt 1's
    /// diagnostics and diff the generated files against the first fix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files_before: Option<TerraformFiles>,
}

/// A run of the deploy loop: goal → plan → Terraform → apply → verify.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Run {
    /// Run id.
    pub id: RunId,
    /// The user's goal text.
    pub goal: String,
    /// Current phase.
    pub phase: RunPhase,
    /// Every phase entered, in order.
    pub history: Vec<PhaseChange>,
    /// The plan, once made.
    pub plan: Option<InfraPlan>,
    /// The current Terraform files.
    pub files: Option<TerraformFiles>,
    /// Validation fix attempts.
    #[serde(default)]
    pub fix_attempts: Vec<FixAttempt>,
    /// The latest validation diagnostics.
    #[serde(default)]
    pub diagnostics: Vec<Diagnostic>,
    /// The dry-run change set, once planned.
    pub change_set: Option<ChangeSet>,
    /// Terraform outputs after apply.
    #[serde(default)]
    pub outputs: BTreeMap<String, serde_json::Value>,
    /// HTTP verification of the outputs.
    pub verification: Option<VerificationReport>,
    /// The stored deployment, once finalized.
    pub deployment_id: Option<DeploymentId>,
    /// Whether this run stops after planning.
    pub dry_run: bool,
    /// Why the run failed.
    pub error: Option<String>,
    /// Every classified plan/apply failure, in order, with the reasoning and
    /// what was done about it.
    #[serde(default)]
    pub apply_diagnoses: Vec<ApplyDiagnosis>,
    /// The resources in the run's Terraform state, read after every apply
    /// (successful or not). `None` until an apply ran, or when the state
    /// could not be read (the history says why).
    #[serde(default)]
    pub resources: Option<Vec<StateResource>>,
    /// The "destroy what this run created" action, once executed.
    #[serde(default)]
    pub cleanup: Option<RunCleanup>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl Run {
    /// A new run in phase `starting`.
    pub fn new(goal: impl Into<String>) -> Self {
        let now = Utc::now();
        Self {
            id: RunId::new(),
            goal: goal.into(),
            phase: RunPhase::Starting,
            history: vec![PhaseChange {
                phase: RunPhase::Starting,
                at: now,
                note: None,
            }],
            plan: None,
            files: None,
            fix_attempts: vec![],
            diagnostics: vec![],
            change_set: None,
            outputs: BTreeMap::new(),
            verification: None,
            deployment_id: None,
            dry_run: false,
            error: None,
            apply_diagnoses: vec![],
            resources: None,
            cleanup: None,
            created_at: now,
            updated_at: now,
        }
    }

    /// Enters a phase and records it in the history.
    pub fn enter(&mut self, phase: RunPhase, note: Option<String>) {
        let now = Utc::now();
        self.phase = phase;
        self.history.push(PhaseChange {
            phase,
            at: now,
            note,
        });
        self.updated_at = now;
    }
}

/// What "destroy what this run created" did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RunCleanup {
    /// Who asked for it (`agent` or an operator label such as `web:alice`).
    pub actor: String,
    /// The destroy change set that was applied.
    pub change_set: ChangeSet,
    /// The resources left in the state afterwards (empty on success).
    pub remaining: Vec<StateResource>,
    /// When it finished.
    pub at: DateTime<Utc>,
}

/// The dry-run preview of "destroy what this run created".
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DestroyPreview {
    /// The run.
    pub run_id: RunId,
    /// The resources now in the run's state.
    pub resources: Vec<StateResource>,
    /// What `terraform plan -destroy` would do (pass it back to execute
    /// exactly this).
    pub change_set: ChangeSet,
}

/// How loud a log line is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LogLevel {
    /// Progress.
    Info,
    /// Something to look at.
    Warn,
    /// A failure.
    Error,
}

/// A live log line of a run (Terraform output, loop progress).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LogLine {
    /// Level.
    pub level: LogLevel,
    /// Where it came from (`terraform`, `deploy`, …).
    pub source: String,
    /// The text.
    pub message: String,
    /// Structured fields (e.g. Terraform's `-json` event).
    #[serde(default)]
    pub fields: serde_json::Value,
}

impl LogLine {
    /// An info line from `source`.
    pub fn info(source: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            level: LogLevel::Info,
            source: source.into(),
            message: message.into(),
            fields: serde_json::Value::Null,
        }
    }
}

/// What subscribers of a run see, in order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RunEvent {
    /// The run entered a phase.
    Phase {
        /// The run.
        run_id: RunId,
        /// The phase.
        phase: RunPhase,
        /// Context, e.g. a failure reason.
        note: Option<String>,
        /// When.
        at: DateTime<Utc>,
    },
    /// A log line.
    Log {
        /// The run.
        run_id: RunId,
        /// The line.
        line: LogLine,
        /// When.
        at: DateTime<Utc>,
    },
}

impl RunEvent {
    /// The run the event belongs to.
    pub fn run_id(&self) -> RunId {
        match self {
            RunEvent::Phase { run_id, .. } | RunEvent::Log { run_id, .. } => *run_id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_round_trip_with_architecture_names() {
        for p in [
            RunPhase::Starting,
            RunPhase::FixAttempt(2),
            RunPhase::Failed,
            RunPhase::Completed,
        ] {
            let s = serde_json::to_string(&p).unwrap();
            assert_eq!(serde_json::from_str::<RunPhase>(&s).unwrap(), p);
        }
        assert_eq!(RunPhase::FixAttempt(3).to_string(), "fix_attempt_3");
        assert!("fix_attempt_4".parse::<RunPhase>().is_err());
        assert!("fix_attempt_x".parse::<RunPhase>().is_err());
        for p in [
            RunPhase::Diagnosing,
            RunPhase::ApplyRetry(5),
            RunPhase::Verified,
            RunPhase::VerifyFailed,
        ] {
            let s = serde_json::to_string(&p).unwrap();
            assert_eq!(serde_json::from_str::<RunPhase>(&s).unwrap(), p);
        }
        assert_eq!(RunPhase::ApplyRetry(2).to_string(), "apply_retry_2");
        assert!("apply_retry_6".parse::<RunPhase>().is_err());
        assert!("apply_retry_0".parse::<RunPhase>().is_err());
        assert_eq!(
            RunPhase::VerifyFailed.to_string(),
            "deploy_success_verify_failed"
        );
    }

    #[test]
    fn statuses_in_the_plans_words() {
        let status = |p: RunPhase| serde_json::to_value(RunStatus::from(p)).unwrap();
        assert_eq!(status(RunPhase::Verified), "completed");
        assert_eq!(status(RunPhase::Completed), "completed");
        assert_eq!(
            status(RunPhase::VerifyFailed),
            "deploy_success_verify_failed"
        );
        assert_eq!(status(RunPhase::Failed), "failed");
        assert_eq!(status(RunPhase::Applying), "running");
        assert!(RunPhase::Verified.is_terminal() && RunPhase::VerifyFailed.is_terminal());
    }
}
