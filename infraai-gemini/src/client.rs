//! Raw HTTP shared by both providers: one POST of a JSON body with the
//! provider's auth header, status mapping, and retries of transient failures
//! that honor the server's delay, with jittered exponential backoff and a cap.

use crate::config::RetryConfig;
use crate::error::{parse_proto_duration, ProviderError};
use crate::wire::ErrorBody;
use infraai_core::Secret;
use reqwest::header::{HeaderName, HeaderValue, RETRY_AFTER};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::time::Duration;
use tracing::{debug, warn};

/// Longest server message kept in an error.
const MAX_MESSAGE: usize = 500;

pub(crate) struct HttpClient {
    http: reqwest::Client,
    provider: &'static str,
    retry: RetryConfig,
    auth: Option<(HeaderName, Secret)>,
}

impl HttpClient {
    /// `auth` is the header carrying the secret (`x-goog-api-key` or
    /// `authorization`) and its full value.
    pub fn new(
        provider: &'static str,
        timeout: Option<Duration>,
        retry: RetryConfig,
        auth: Option<(HeaderName, Secret)>,
    ) -> Result<Self, ProviderError> {
        let mut builder = reqwest::Client::builder();
        if let Some(t) = timeout {
            builder = builder.timeout(t);
        }
        Ok(Self {
            http: builder.build().map_err(ProviderError::from_reqwest)?,
            provider,
            retry,
            auth,
        })
    }

    /// Removes the secret from text a server or library produced.
    fn redact(&self, text: &str) -> String {
        let text: String = text.chars().take(MAX_MESSAGE).collect();
        match &self.auth {
            Some((_, s)) if !s.is_empty() => {
                let raw = s.expose();
                let bare = raw.strip_prefix("Bearer ").unwrap_or(raw);
                text.replace(bare, "***")
            }
            _ => text,
        }
    }

    fn redact_error(&self, e: ProviderError) -> ProviderError {
        match e {
            ProviderError::Transport { detail, connect } => ProviderError::Transport {
                detail: self.redact(&detail),
                connect,
            },
            ProviderError::Config { detail } => ProviderError::Config {
                detail: self.redact(&detail),
            },
            other => other,
        }
    }

    /// POSTs `body` to `url` and decodes the response body of a 2xx answer,
    /// retrying transient failures.
    pub async fn post<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        url: &str,
        body: &B,
    ) -> Result<T, ProviderError> {
        let mut attempt: u32 = 0;
        loop {
            let error = match self.post_once(url, body).await {
                Ok(bytes) => {
                    return serde_json::from_slice(&bytes).map_err(|e| ProviderError::Decode {
                        detail: e.to_string(),
                    })
                }
                Err(e) => self.redact_error(e),
            };
            if !error.is_retryable() || attempt >= self.retry.max_retries {
                return Err(error);
            }
            let Some(delay) = self.delay(attempt, error.retry_after()) else {
                warn!(provider = self.provider, requested = ?error.retry_after(), "server asks for a longer wait than allowed; not retrying");
                return Err(error);
            };
            attempt += 1;
            warn!(provider = self.provider, attempt, delay_ms = delay.as_millis() as u64, error = %error, "retrying");
            tokio::time::sleep(delay).await;
        }
    }

    /// How long to wait before retry number `attempt + 1`: at least the
    /// server's delay plus a little jitter, else jittered exponential
    /// backoff; `None` when the server asks for more than the cap.
    fn delay(&self, attempt: u32, server: Option<Duration>) -> Option<Duration> {
        let cap = self.retry.max_delay();
        if let Some(d) = server {
            if d > cap {
                return None;
            }
            // Up to 10% (at most 1 s) on top, so clients that were told the
            // same delay do not all come back at once.
            let spread = (d / 10).min(Duration::from_secs(1));
            return Some(d + spread.mul_f64(fastrand::f64()));
        }
        let base = Duration::from_millis(self.retry.initial_backoff_ms)
            .saturating_mul(2u32.saturating_pow(attempt.min(16)))
            .min(cap);
        Some(base / 2 + (base / 2).mul_f64(fastrand::f64()))
    }

    async fn post_once<B: Serialize + ?Sized>(
        &self,
        url: &str,
        body: &B,
    ) -> Result<Vec<u8>, ProviderError> {
        let mut request = self.http.post(url).json(body);
        if let Some((name, secret)) = &self.auth {
            let mut value =
                HeaderValue::from_str(secret.expose()).map_err(|_| ProviderError::Config {
                    detail: format!("the {name} value is not a valid header value"),
                })?;
            value.set_sensitive(true);
            request = request.header(name.clone(), value);
        }
        let response = request.send().await.map_err(ProviderError::from_reqwest)?;
        let status = response.status();
        let header_delay = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let bytes = response
            .bytes()
            .await
            .map_err(ProviderError::from_reqwest)?;
        debug!(
            provider = self.provider,
            status = status.as_u16(),
            bytes = bytes.len(),
            "response"
        );
        if status.is_success() {
            return Ok(bytes.to_vec());
        }
        let parsed: Option<ErrorBody> = serde_json::from_slice(&bytes).ok();
        let body_delay = parsed.as_ref().and_then(|b| {
            b.error
                .details
                .iter()
                .find(|d| d.kind.ends_with("google.rpc.RetryInfo"))
                .and_then(|d| d.retry_delay.as_deref())
                .and_then(parse_proto_duration)
        });
        let message = parsed
            .map(|b| b.error.message)
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
        Err(ProviderError::from_status(
            status.as_u16(),
            self.redact(&message),
            body_delay.or(header_delay),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(retry: RetryConfig) -> HttpClient {
        HttpClient::new("test", None, retry, None).unwrap()
    }

    #[test]
    fn delays_honor_the_server_back_off_and_cap() {
        let c = client(RetryConfig::default());
        for _ in 0..100 {
            let d = c.delay(0, Some(Duration::from_secs(17))).unwrap();
            assert!(
                d >= Duration::from_secs(17) && d <= Duration::from_secs(18),
                "{d:?}"
            );
            let d = c.delay(0, None).unwrap();
            assert!(
                d >= Duration::from_millis(250) && d <= Duration::from_millis(500),
                "{d:?}"
            );
            let d = c.delay(3, None).unwrap();
            assert!(
                d >= Duration::from_millis(2000) && d <= Duration::from_millis(4000),
                "{d:?}"
            );
            let d = c.delay(30, None).unwrap();
            assert!(d <= Duration::from_secs(60), "{d:?}");
        }
        assert_eq!(c.delay(0, Some(Duration::from_secs(3600))), None);
    }

    #[test]
    fn the_secret_is_redacted_from_echoed_text() {
        let c = HttpClient::new(
            "test",
            None,
            RetryConfig::none(),
            Some((
                HeaderName::from_static("authorization"),
                Secret::new("Bearer sk-123"),
            )),
        )
        .unwrap();
        assert_eq!(c.redact("bad key sk-123 given"), "bad key *** given");
    }
}
