//! The one error type every trait in infraai returns.
//!
//! Adapters keep their own private error types and map them into these
//! semantic kinds (in one function per adapter), so callers can branch on what
//! happened — not found, conflict, bad input, unauthenticated — and on whether
//! retrying can help, without knowing which backend produced it.

use std::time::Duration;

/// A boxed source error from an adapter.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What failed, in terms a caller can act on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The named thing does not exist.
    #[error("{what} not found")]
    NotFound {
        /// What was looked up, e.g. `incident 0190…`.
        what: String,
    },
    /// The operation lost a race or the state does not allow it
    /// (e.g. approving an incident that is not pending).
    #[error("{what}: conflict: {detail}")]
    Conflict {
        /// The object the operation was about.
        what: String,
        /// Why the state does not allow it.
        detail: String,
    },
    /// Input (user text, LLM output, webhook payload, configuration) is invalid.
    #[error("invalid {what}: {detail}")]
    Invalid {
        /// Which input.
        what: String,
        /// What is wrong with it.
        detail: String,
    },
    /// The caller could not be authenticated (bad signature, wrong token).
    #[error("unauthenticated: {detail}")]
    Unauthenticated {
        /// Why; never contains the secret itself.
        detail: String,
    },
    /// The caller is authenticated but not allowed to do this.
    #[error("forbidden: {detail}")]
    Forbidden {
        /// Why.
        detail: String,
    },
    /// STOP AUTONOMY is engaged; nothing executes until it is resumed.
    #[error("autonomy is stopped (kill-switch engaged); {what} was not executed")]
    KillSwitchEngaged {
        /// What was refused.
        what: String,
    },
    /// The adapter cannot do this operation at all.
    #[error("{component}: {op} is not supported")]
    NotSupported {
        /// Adapter name.
        component: String,
        /// Operation name.
        op: String,
    },
    /// The operation did not finish in time.
    #[error("{component}: {op} timed out after {after:?}")]
    Timeout {
        /// Adapter name.
        component: String,
        /// Operation name.
        op: String,
        /// The limit that was hit.
        after: Duration,
    },
    /// The operation was cancelled before it finished.
    #[error("{component}: {op} was cancelled")]
    Cancelled {
        /// Adapter name.
        component: String,
        /// Operation name.
        op: String,
    },
    /// A backend (database, HTTP API, CLI) failed.
    #[error("{component}: {op} failed: {source}")]
    Backend {
        /// Adapter name, e.g. `sqlite`, `gemini`, `terraform`.
        component: String,
        /// Operation name, e.g. `claim_execution`.
        op: String,
        /// Whether the same call may succeed if repeated later.
        retryable: bool,
        /// Backend-specific cause.
        #[source]
        source: BoxError,
    },
}

impl Error {
    /// Shorthand for [`Error::Invalid`].
    pub fn invalid(what: impl Into<String>, detail: impl Into<String>) -> Self {
        Error::Invalid {
            what: what.into(),
            detail: detail.into(),
        }
    }

    /// Shorthand for [`Error::NotFound`].
    pub fn not_found(what: impl Into<String>) -> Self {
        Error::NotFound { what: what.into() }
    }

    /// Shorthand for [`Error::Conflict`].
    pub fn conflict(what: impl Into<String>, detail: impl Into<String>) -> Self {
        Error::Conflict {
            what: what.into(),
            detail: detail.into(),
        }
    }

    /// Shorthand for [`Error::Backend`].
    pub fn backend(
        component: impl Into<String>,
        op: impl Into<String>,
        retryable: bool,
        source: impl Into<BoxError>,
    ) -> Self {
        Error::Backend {
            component: component.into(),
            op: op.into(),
            retryable,
            source: source.into(),
        }
    }

    /// Whether repeating the same call later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Timeout { .. } => true,
            Error::Backend { retryable, .. } => *retryable,
            _ => false,
        }
    }
}

/// Result alias used across infraai.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryability_follows_the_kind() {
        assert!(Error::backend("sqlite", "put_run", true, "busy").is_retryable());
        assert!(!Error::backend("sqlite", "put_run", false, "corrupt").is_retryable());
        assert!(!Error::invalid("goal", "empty").is_retryable());
        let t = Error::Timeout {
            component: "terraform".into(),
            op: "apply".into(),
            after: Duration::from_secs(5),
        };
        assert!(t.is_retryable());
        assert_eq!(t.to_string(), "terraform: apply timed out after 5s");
    }
}
