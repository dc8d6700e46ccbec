//! What a failed plan or apply was, and what the deploy loop did about it.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// The kind of a plan/apply failure, which decides what the deploy loop does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FailureClass {
    /// Likely to pass if repeated: rate limits, 5xx, timeouts, eventual
    /// consistency ("not found"/"not ready" right after a create). Re-planned
    /// and re-applied with backoff, a bounded number of times.
    Transient,
    /// A cloud quota is exhausted; an operator must raise it or free capacity.
    QuotaExceeded,
    /// A cloud API is not enabled for the project/account; an operator must
    /// enable it.
    ApiNotEnabled,
    /// The credentials Terraform uses lack a permission; an operator must grant it.
    PermissionDenied,
    /// A resource name is taken; our own resources are renamed and re-planned.
    NameInUse,
    /// The configuration is invalid in a way only the cloud notices at apply
    /// time; the fix loop gets the diagnostics.
    InvalidConfiguration,
    /// Not recognized; the run stops with the raw error (never retried blindly).
    Unknown,
}

impl FailureClass {
    /// Whether only an operator can resolve it (the run stops and says what to do).
    pub fn needs_operator(self) -> bool {
        matches!(
            self,
            FailureClass::QuotaExceeded
                | FailureClass::ApiNotEnabled
                | FailureClass::PermissionDenied
                | FailureClass::Unknown
        )
    }

    /// When several failures happen in one apply, the one that decides:
    /// operator-only classes first, then fixes, then retries.
    pub fn precedence(self) -> u8 {
        match self {
            FailureClass::PermissionDenied => 7,
            FailureClass::ApiNotEnabled => 6,
            FailureClass::QuotaExceeded => 5,
            FailureClass::Unknown => 4,
            FailureClass::InvalidConfiguration => 3,
            FailureClass::NameInUse => 2,
            FailureClass::Transient => 1,
        }
    }
}

impl fmt::Display for FailureClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FailureClass::Transient => "transient",
            FailureClass::QuotaExceeded => "quota exceeded",
            FailureClass::ApiNotEnabled => "API not enabled",
            FailureClass::PermissionDenied => "permission denied",
            FailureClass::NameInUse => "name already in use",
            FailureClass::InvalidConfiguration => "invalid configuration",
            FailureClass::Unknown => "unknown",
        })
    }
}

/// The Terraform step of a deploy attempt that failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TerraformStep {
    /// `terraform plan`.
    Plan,
    /// `terraform apply`.
    Apply,
}

impl fmt::Display for TerraformStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TerraformStep::Plan => "plan",
            TerraformStep::Apply => "apply",
        })
    }
}

/// One classified plan/apply failure: what it was, why the classifier thinks
/// so, and what happens next. Stored on the run and in the audit trail.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ApplyDiagnosis {
    /// Which attempt failed (1 = the first plan/apply of the run).
    pub attempt: u32,
    /// The Terraform step that failed (`plan` or `apply`).
    pub step: TerraformStep,
    /// The deciding class.
    pub class: FailureClass,
    /// The id of the pattern that matched (`gcp.api_not_enabled`, …); `None`
    /// for unknown failures or a timeout of the Terraform process itself.
    pub pattern: Option<String>,
    /// Where the pattern comes from (the public error text it was built from).
    pub pattern_source: Option<String>,
    /// Values taken from the error text (`api`, `permission`, `quota`, `name`, …).
    #[serde(default)]
    pub details: BTreeMap<String, String>,
    /// The error text the decision rests on (bounded).
    pub evidence: String,
    /// Why this class, in one sentence.
    pub reasoning: String,
    /// What must happen now: for operator classes, exactly what to do.
    pub advice: String,
    /// What the deploy loop did (`retry in 10s`, `renamed`, `fix loop`, `stopped`).
    pub decision: String,
    /// Every class seen among the failure's diagnostics (the deciding one first).
    #[serde(default)]
    pub classes_seen: Vec<FailureClass>,
    /// When.
    pub at: DateTime<Utc>,
}
