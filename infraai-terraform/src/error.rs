//! The error type of this crate and its mapping into [`infraai_core::Error`].

use std::path::PathBuf;
use std::time::Duration;

/// What went wrong while driving Terraform. Every variant names the operation
/// (`init`, `plan`, …) and, where there is one, the work directory.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TerraformError {
    /// The configured binary does not exist or is not executable.
    #[error("terraform binary {binary:?} not found (set the runner's binary path or put `terraform` on PATH)")]
    BinaryNotFound {
        /// The binary that was looked for.
        binary: PathBuf,
    },
    /// Terraform could not be started.
    #[error("{op} in {dir}: could not start terraform: {source}")]
    Spawn {
        /// Operation.
        op: &'static str,
        /// Work directory.
        dir: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// Terraform ran and failed.
    #[error("{op} in {dir}: terraform exited with {status}: {message}")]
    Failed {
        /// Operation.
        op: &'static str,
        /// Work directory.
        dir: PathBuf,
        /// Exit status as printed (`exit status 1`, `signal 9`).
        status: String,
        /// Terraform's error diagnostics, or the end of its stderr.
        message: String,
        /// The same error diagnostics, structured (empty when terraform
        /// printed none), for classification and the fixers
        /// ([`infraai_core::Error::diagnostics`]).
        #[source]
        diagnostics: infraai_core::DiagnosticList,
    },
    /// The operation ran past its timeout; the process group was killed.
    #[error("{op} in {dir}: timed out after {after:?}; {stop}")]
    Timeout {
        /// Operation.
        op: &'static str,
        /// Work directory.
        dir: PathBuf,
        /// The limit.
        after: Duration,
        /// How terraform was stopped.
        stop: Stop,
    },
    /// The operation was cancelled; the process group was killed.
    #[error("{op} in {dir}: cancelled; {stop}")]
    Cancelled {
        /// Operation.
        op: &'static str,
        /// Work directory.
        dir: PathBuf,
        /// How terraform was stopped.
        stop: Stop,
    },
    /// Another operation holds the work directory.
    #[error("{op} in {dir}: work directory is busy ({holder})")]
    Busy {
        /// Operation that was refused.
        op: &'static str,
        /// Work directory.
        dir: PathBuf,
        /// Who holds it (`apply of this runner`, `another process`).
        holder: String,
    },
    /// `apply` was called with no saved plan in the work directory.
    #[error("{op} in {dir}: there is no saved plan; run plan first")]
    NoSavedPlan {
        /// Operation.
        op: &'static str,
        /// Work directory.
        dir: PathBuf,
    },
    /// The fresh plan differs from the approved preview; nothing was applied.
    #[error("{op} in {dir}: the plan changed since it was approved (approved: {approved}; now: {planned}); nothing was applied")]
    PlanChanged {
        /// Operation.
        op: &'static str,
        /// Work directory.
        dir: PathBuf,
        /// Summary of the approved preview.
        approved: String,
        /// Summary of the fresh plan.
        planned: String,
    },
    /// Terraform's `-json` output did not have the expected shape.
    #[error("{op} in {dir}: unexpected terraform output: {detail}")]
    Parse {
        /// Operation.
        op: &'static str,
        /// Work directory.
        dir: PathBuf,
        /// What was wrong.
        detail: String,
    },
    /// Reading or writing the work directory failed.
    #[error("{op} in {dir}: {source}")]
    Io {
        /// Operation.
        op: &'static str,
        /// Work directory.
        dir: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// Caller input is invalid (file name, variable name, tfvars name).
    #[error("invalid {what}: {detail}")]
    Invalid {
        /// Which input.
        what: &'static str,
        /// What is wrong.
        detail: String,
    },
}

/// How a cancelled or timed-out operation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// The run was already cancelled: terraform was not started.
    NotStarted,
    /// Terraform stopped on SIGINT (saving its state), then its process group
    /// was killed.
    Graceful,
    /// Terraform ignored SIGINT for the grace period and its process group was
    /// killed with SIGKILL mid-operation: the state may miss changes in flight.
    Forced,
}

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Stop::NotStarted => "the run is cancelled, terraform was not started",
            Stop::Graceful => "terraform stopped on SIGINT, then its process group was killed",
            Stop::Forced => {
                "terraform did not stop on SIGINT in time, so its process group was killed; \
                 the state may miss changes that were in flight"
            }
        })
    }
}

impl TerraformError {
    /// Whether repeating the same call later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Timeout { .. } | Self::Busy { .. } | Self::Io { .. }
        )
    }

    /// The operation that failed, when the error is about one.
    pub fn op(&self) -> &'static str {
        match self {
            Self::BinaryNotFound { .. } => "spawn",
            Self::Invalid { .. } => "input",
            Self::Spawn { op, .. }
            | Self::Failed { op, .. }
            | Self::Timeout { op, .. }
            | Self::Cancelled { op, .. }
            | Self::Busy { op, .. }
            | Self::NoSavedPlan { op, .. }
            | Self::PlanChanged { op, .. }
            | Self::Parse { op, .. }
            | Self::Io { op, .. } => op,
        }
    }
}

impl From<TerraformError> for infraai_core::Error {
    fn from(e: TerraformError) -> Self {
        use infraai_core::Error as E;
        match e {
            TerraformError::BinaryNotFound { binary } => {
                E::not_found(format!("terraform binary {}", binary.display()))
            }
            TerraformError::Timeout { op, after, .. } => E::Timeout {
                component: "terraform".into(),
                op: op.into(),
                after,
            },
            TerraformError::Cancelled { op, .. } => E::Cancelled {
                component: "terraform".into(),
                op: op.into(),
            },
            TerraformError::Invalid { what, detail } => E::invalid(what, detail),
            TerraformError::NoSavedPlan { ref dir, .. }
            | TerraformError::PlanChanged { ref dir, .. } => E::conflict(
                format!("terraform work directory {}", dir.display()),
                e.to_string(),
            ),
            other => {
                let op = other.op();
                let retryable = other.is_retryable();
                E::backend("terraform", op, retryable, other)
            }
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = TerraformError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_into_core_kinds() {
        let dir = PathBuf::from("/w/r");
        let e: infraai_core::Error = TerraformError::BinaryNotFound {
            binary: "/nope/terraform".into(),
        }
        .into();
        assert_eq!(e.to_string(), "terraform binary /nope/terraform not found");
        let c = TerraformError::Cancelled {
            op: "apply",
            dir: dir.clone(),
            stop: Stop::Forced,
        };
        assert!(c
            .to_string()
            .ends_with("the state may miss changes that were in flight"));
        let e: infraai_core::Error = c.into();
        assert!(matches!(e, infraai_core::Error::Cancelled { ref op, .. } if op == "apply"));
        let t = TerraformError::Timeout {
            op: "plan",
            dir: dir.clone(),
            after: Duration::from_secs(2),
            stop: Stop::Graceful,
        };
        assert_eq!(
            t.to_string(),
            "plan in /w/r: timed out after 2s; terraform stopped on SIGINT, then its process group was killed"
        );
        assert!(t.is_retryable());
        assert!(infraai_core::Error::from(t).is_retryable());
        let f = TerraformError::Failed {
            op: "apply",
            dir,
            status: "exit status 1".into(),
            message: "Error: boom".into(),
            diagnostics: infraai_core::DiagnosticList(vec![infraai_core::Diagnostic {
                severity: infraai_core::DiagnosticSeverity::Error,
                summary: "boom".into(),
                detail: String::new(),
                range: None,
            }]),
        };
        assert_eq!(
            f.to_string(),
            "apply in /w/r: terraform exited with exit status 1: Error: boom"
        );
        let e = infraai_core::Error::from(f);
        assert!(!e.is_retryable());
        assert_eq!(
            e.diagnostics()[0].summary,
            "boom",
            "diagnostics survive the mapping"
        );
        assert!(
            matches!(e, infraai_core::Error::Backend { ref component, ref op, .. } if component == "terraform" && op == "apply")
        );
    }
}
