//! The crate's error type and its mapping into core's semantic kinds.

/// What went wrong talking to Telegram.
#[derive(Debug, thiserror::Error)]
pub enum TelegramError {
    /// Transport failure (connect, timeout); the URL, which holds the bot
    /// token, is stripped.
    #[error("Bot API {method}: {source}")]
    Http {
        /// Bot API method.
        method: String,
        /// Cause, without URL.
        #[source]
        source: reqwest::Error,
    },
    /// The Bot API answered `ok: false`.
    #[error("Bot API {method} returned {code}: {description}")]
    Api {
        /// Bot API method.
        method: String,
        /// `error_code`.
        code: i64,
        /// `description`.
        description: String,
        /// `parameters.retry_after`, for 429.
        retry_after: Option<u64>,
    },
    /// The response was not what the Bot API documents.
    #[error("Bot API {method}: unexpected response: {detail}")]
    Decode {
        /// Bot API method.
        method: String,
        /// What was wrong.
        detail: String,
    },
}

impl TelegramError {
    /// Whether the same call may succeed later.
    pub fn is_retryable(&self) -> bool {
        match self {
            TelegramError::Http { source, .. } => source.is_timeout() || source.is_connect(),
            TelegramError::Api { code, .. } => *code == 429 || *code >= 500,
            TelegramError::Decode { .. } => false,
        }
    }
}

impl From<TelegramError> for infraai_core::Error {
    fn from(e: TelegramError) -> Self {
        let op = match &e {
            TelegramError::Http { method, .. }
            | TelegramError::Api { method, .. }
            | TelegramError::Decode { method, .. } => method.clone(),
        };
        let retryable = e.is_retryable();
        infraai_core::Error::backend("telegram", op, retryable, e)
    }
}
