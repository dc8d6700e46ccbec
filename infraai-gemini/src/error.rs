//! The providers' error type, the HTTP status → kind mapping, and the one
//! function that maps both into [`infraai_core::Error`].

use std::time::Duration;

/// What went wrong talking to an LLM API. Messages never contain the API key
/// (the client redacts it from any text a server echoes back).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProviderError {
    /// HTTP 429: quota or rate limit. `retry_after` is the server's delay
    /// (`RetryInfo.retryDelay` or `Retry-After`) when it sent one.
    #[error("rate limited (HTTP 429): {message}")]
    RateLimited {
        /// Server's delay.
        retry_after: Option<Duration>,
        /// Server's message.
        message: String,
    },
    /// HTTP 500/502/503/504: the service is overloaded or failing.
    #[error("service unavailable (HTTP {status}): {message}")]
    Unavailable {
        /// Status code.
        status: u16,
        /// Server's delay, when sent.
        retry_after: Option<Duration>,
        /// Server's message.
        message: String,
    },
    /// HTTP 401/403: the key is missing, wrong or not allowed.
    #[error("unauthenticated (HTTP {status}): {message}")]
    Unauthenticated {
        /// Status code.
        status: u16,
        /// Server's message.
        message: String,
    },
    /// HTTP 404: unknown model or wrong base URL.
    #[error("not found (HTTP 404): {message}")]
    NotFound {
        /// Server's message.
        message: String,
    },
    /// Another HTTP error (400: e.g. a schema the API does not accept).
    #[error("request rejected (HTTP {status}): {message}")]
    Rejected {
        /// Status code.
        status: u16,
        /// Server's message.
        message: String,
    },
    /// The prompt itself was blocked (`promptFeedback.blockReason`).
    #[error("prompt blocked by the provider: {reason}")]
    PromptBlocked {
        /// E.g. `SAFETY`.
        reason: String,
    },
    /// The answer stopped for a reason other than completion (`SAFETY`,
    /// `RECITATION`, `MAX_TOKENS`, `length`, `content_filter`, …).
    #[error("answer stopped early: finish reason {reason}")]
    Stopped {
        /// The finish reason as the API names it.
        reason: String,
    },
    /// The model refused to answer (OpenAI structured-output refusal).
    #[error("the model refused: {refusal}")]
    Refused {
        /// The refusal text.
        refusal: String,
    },
    /// No candidate, or a candidate without text.
    #[error("the response holds no answer")]
    Empty,
    /// The response body is not what the API documents.
    #[error("unexpected response body: {detail}")]
    Decode {
        /// What did not parse.
        detail: String,
    },
    /// The attempt timed out.
    #[error("timed out")]
    Timeout,
    /// Connection-level failure.
    #[error("transport error: {detail}")]
    Transport {
        /// reqwest's description (without the URL).
        detail: String,
        /// Whether it happened before the request was sent (safe to retry).
        connect: bool,
    },
    /// Invalid configuration (e.g. a base URL that is not a URL).
    #[error("invalid configuration: {detail}")]
    Config {
        /// What is wrong.
        detail: String,
    },
}

impl ProviderError {
    /// Whether repeating the call later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            ProviderError::RateLimited { .. }
            | ProviderError::Unavailable { .. }
            | ProviderError::Timeout => true,
            ProviderError::Transport { connect, .. } => *connect,
            _ => false,
        }
    }

    /// The server's requested delay, when it sent one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ProviderError::RateLimited { retry_after, .. }
            | ProviderError::Unavailable { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Maps an HTTP error status to a kind (the one place this happens).
    pub(crate) fn from_status(status: u16, message: String, retry_after: Option<Duration>) -> Self {
        match status {
            429 => ProviderError::RateLimited {
                retry_after,
                message,
            },
            500 | 502 | 503 | 504 => ProviderError::Unavailable {
                status,
                retry_after,
                message,
            },
            401 | 403 => ProviderError::Unauthenticated { status, message },
            404 => ProviderError::NotFound { message },
            _ => ProviderError::Rejected { status, message },
        }
    }

    pub(crate) fn from_reqwest(e: reqwest::Error) -> Self {
        if e.is_timeout() {
            return ProviderError::Timeout;
        }
        let connect = e.is_connect();
        if e.is_builder() {
            return ProviderError::Config {
                detail: e.without_url().to_string(),
            };
        }
        ProviderError::Transport {
            detail: e.without_url().to_string(),
            connect,
        }
    }

    /// Converts into the error every infraai trait returns, with the
    /// provider, the operation and the model as context.
    pub fn into_core(self, provider: &str, op: &str, model: &str) -> infraai_core::Error {
        use infraai_core::Error;
        match self {
            ProviderError::Unauthenticated { .. } => Error::Unauthenticated {
                detail: format!("{provider} {op} ({model}): {self}"),
            },
            ProviderError::NotFound { .. } => {
                Error::not_found(format!("{provider} model {model} ({self})"))
            }
            ProviderError::Config { .. } => {
                Error::invalid(format!("{provider} configuration"), self.to_string())
            }
            other => {
                let retryable = other.is_retryable();
                Error::backend(provider, format!("{op} ({model})"), retryable, other)
            }
        }
    }
}

/// Parses a protobuf `Duration` string such as `"17s"` or `"0.5s"`.
pub(crate) fn parse_proto_duration(s: &str) -> Option<Duration> {
    let secs: f64 = s.trim().strip_suffix('s')?.parse().ok()?;
    (0.0..1e9)
        .contains(&secs)
        .then(|| Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn proto_durations_round_trip(millis in 0u64..10_000_000) {
            let text = format!("{}.{:03}s", millis / 1000, millis % 1000);
            let parsed = parse_proto_duration(&text).expect("parses");
            let want = Duration::from_millis(millis);
            prop_assert!(parsed.max(want) - parsed.min(want) < Duration::from_micros(1), "{text}: {parsed:?}");
        }

        #[test]
        fn any_retry_delay_text_parses_or_is_ignored(s in "\\PC{0,20}") {
            if let Some(d) = parse_proto_duration(&s) {
                prop_assert!(d < Duration::from_secs(1_000_000_000));
            }
        }
    }

    #[test]
    fn statuses_map_to_kinds() {
        assert!(ProviderError::from_status(429, "q".into(), None).is_retryable());
        assert!(ProviderError::from_status(503, "o".into(), None).is_retryable());
        assert!(!ProviderError::from_status(400, "b".into(), None).is_retryable());
        let core = ProviderError::from_status(401, "bad key".into(), None).into_core(
            "gemini",
            "generateContent",
            "gemini-2.5-pro",
        );
        assert!(matches!(core, infraai_core::Error::Unauthenticated { .. }));
        let core = ProviderError::from_status(503, "busy".into(), None).into_core(
            "gemini",
            "generateContent",
            "gemini-2.5-pro",
        );
        assert!(core.is_retryable());
        assert_eq!(
            core.to_string(),
            "gemini: generateContent (gemini-2.5-pro) failed: service unavailable (HTTP 503): busy"
        );
    }

    #[test]
    fn proto_durations() {
        assert_eq!(parse_proto_duration("17s"), Some(Duration::from_secs(17)));
        assert_eq!(
            parse_proto_duration("0.5s"),
            Some(Duration::from_millis(500))
        );
        for bad in ["17", "s", "-1s", "NaNs", "1e20s", ""] {
            assert_eq!(parse_proto_duration(bad), None, "{bad}");
        }
    }
}
