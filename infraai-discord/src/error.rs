//! The crate's error type and its mapping into core's kinds.

/// What went wrong talking to Discord.
#[derive(Debug, thiserror::Error)]
pub enum DiscordError {
    /// Transport failure; the URL is stripped.
    #[error("Discord {op}: {source}")]
    Http {
        /// Operation.
        op: String,
        /// Cause.
        #[source]
        source: reqwest::Error,
    },
    /// Discord answered with an error status.
    #[error("Discord {op} returned HTTP {status}: {message}")]
    Api {
        /// Operation.
        op: String,
        /// HTTP status.
        status: u16,
        /// Discord's message.
        message: String,
    },
}

impl DiscordError {
    /// Whether the same call may succeed later.
    pub fn is_retryable(&self) -> bool {
        match self {
            DiscordError::Http { source, .. } => source.is_timeout() || source.is_connect(),
            DiscordError::Api { status, .. } => *status == 429 || *status >= 500,
        }
    }
}

impl From<DiscordError> for infraai_core::Error {
    fn from(e: DiscordError) -> Self {
        let op = match &e {
            DiscordError::Http { op, .. } | DiscordError::Api { op, .. } => op.clone(),
        };
        let retryable = e.is_retryable();
        infraai_core::Error::backend("discord", op, retryable, e)
    }
}
