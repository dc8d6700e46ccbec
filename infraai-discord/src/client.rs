//! Raw REST calls with rate-limit handling.

use crate::config::DiscordConfig;
use crate::error::DiscordError;
use serde_json::Value;
use std::time::Duration;
use tracing::warn;

#[derive(Clone)]
pub(crate) struct RestClient {
    http: reqwest::Client,
    config: DiscordConfig,
}

impl RestClient {
    pub fn new(config: DiscordConfig) -> Result<Self, DiscordError> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .build()
            .map_err(|e| DiscordError::Http {
                op: "client".into(),
                source: e,
            })?;
        Ok(Self { http, config })
    }

    pub fn config(&self) -> &DiscordConfig {
        &self.config
    }

    /// Sends a JSON request, waiting out `429` responses (`retry_after`
    /// seconds, in the body or the `Retry-After` header) up to the configured cap.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &Value,
    ) -> Result<Value, DiscordError> {
        let url = format!("{}{path}", self.config.api_base.trim_end_matches('/'));
        let op = format!(
            "{method} {}",
            path.split('/').take(2).collect::<Vec<_>>().join("/")
        );
        let mut attempt = 0;
        loop {
            let response = self
                .http
                .request(method.clone(), &url)
                .header(
                    "Authorization",
                    format!("Bot {}", self.config.bot_token.expose()),
                )
                .json(body)
                .send()
                .await
                .map_err(|e| DiscordError::Http {
                    op: op.clone(),
                    source: e.without_url(),
                })?;
            let status = response.status();
            let header_wait = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<f64>().ok());
            let json: Value = response.json().await.unwrap_or(Value::Null);
            if status.is_success() {
                return Ok(json);
            }
            let wait = json
                .get("retry_after")
                .and_then(Value::as_f64)
                .or(header_wait);
            if status.as_u16() == 429 && attempt < self.config.max_retries {
                if let Some(wait) = wait.filter(|w| w.is_finite() && *w >= 0.0) {
                    let wait = Duration::from_secs_f64(wait);
                    if wait <= self.config.max_retry_after {
                        attempt += 1;
                        warn!(op = %op, wait_ms = wait.as_millis() as u64, attempt, "Discord rate limit; waiting");
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                }
            }
            return Err(DiscordError::Api {
                op,
                status: status.as_u16(),
                message: json
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
            });
        }
    }
}
