//! The crate's error type and its mapping into core's kinds.

/// What went wrong talking to Slack.
#[derive(Debug, thiserror::Error)]
pub enum SlackError {
    /// Transport failure; the URL is stripped.
    #[error("Slack {method}: {source}")]
    Http {
        /// Web API method.
        method: String,
        /// Cause.
        #[source]
        source: reqwest::Error,
    },
    /// Slack answered with an HTTP error status (after any `429` retries).
    #[error("Slack {method} returned HTTP {status}")]
    Status {
        /// Web API method.
        method: String,
        /// HTTP status.
        status: u16,
    },
    /// Slack answered `{"ok": false, "error": …}`.
    #[error("Slack {method} failed: {error}")]
    Api {
        /// Web API method.
        method: String,
        /// Slack's error code, e.g. `channel_not_found`.
        error: String,
    },
}

impl SlackError {
    /// Whether the same call may succeed later.
    pub fn is_retryable(&self) -> bool {
        match self {
            SlackError::Http { source, .. } => source.is_timeout() || source.is_connect(),
            SlackError::Status { status, .. } => *status == 429 || *status >= 500,
            SlackError::Api { error, .. } => {
                matches!(
                    error.as_str(),
                    "ratelimited" | "internal_error" | "fatal_error" | "service_unavailable"
                )
            }
        }
    }
}

impl From<SlackError> for infraai_core::Error {
    fn from(e: SlackError) -> Self {
        let method = match &e {
            SlackError::Http { method, .. }
            | SlackError::Status { method, .. }
            | SlackError::Api { method, .. } => method.clone(),
        };
        let retryable = e.is_retryable();
        infraai_core::Error::backend("slack", method, retryable, e)
    }
}
