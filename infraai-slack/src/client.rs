//! Web API calls: bearer token, `429` + `Retry-After` waited out, and
//! `{"ok": false}` turned into an error carrying Slack's code.

use crate::config::SlackConfig;
use crate::error::SlackError;
use serde_json::Value;
use std::time::Duration;
use tracing::warn;

#[derive(Clone)]
pub(crate) struct WebClient {
    http: reqwest::Client,
    config: SlackConfig,
}

impl WebClient {
    pub fn new(config: SlackConfig) -> Result<Self, SlackError> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .build()
            .map_err(|e| SlackError::Http {
                method: "client".into(),
                source: e,
            })?;
        Ok(Self { http, config })
    }

    pub fn config(&self) -> &SlackConfig {
        &self.config
    }

    /// `POST <base>/<method>` with a JSON body.
    pub async fn post(&self, method: &str, body: &Value) -> Result<Value, SlackError> {
        self.call(method, |r| r.json(body), reqwest::Method::POST)
            .await
    }

    /// `GET <base>/<method>?<query>` (the read methods take form arguments).
    pub async fn get(&self, method: &str, query: &[(&str, &str)]) -> Result<Value, SlackError> {
        self.call(method, |r| r.query(query), reqwest::Method::GET)
            .await
    }

    async fn call(
        &self,
        method: &str,
        with: impl Fn(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
        verb: reqwest::Method,
    ) -> Result<Value, SlackError> {
        let url = format!("{}/{method}", self.config.api_base.trim_end_matches('/'));
        let mut attempt = 0;
        loop {
            let request = self
                .http
                .request(verb.clone(), &url)
                .bearer_auth(self.config.bot_token.expose());
            let response = with(request).send().await.map_err(|e| SlackError::Http {
                method: method.into(),
                source: e.without_url(),
            })?;
            let status = response.status();
            if status.as_u16() == 429 && attempt < self.config.max_retries {
                let wait = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                if let Some(wait) = wait.filter(|w| *w <= self.config.max_retry_after) {
                    attempt += 1;
                    warn!(
                        method,
                        wait_ms = wait.as_millis() as u64,
                        attempt,
                        "Slack rate limit; waiting"
                    );
                    tokio::time::sleep(wait).await;
                    continue;
                }
            }
            if !status.is_success() {
                return Err(SlackError::Status {
                    method: method.into(),
                    status: status.as_u16(),
                });
            }
            let json: Value = response.json().await.map_err(|e| SlackError::Http {
                method: method.into(),
                source: e.without_url(),
            })?;
            if json["ok"] != Value::Bool(true) {
                let error = json["error"]
                    .as_str()
                    .unwrap_or("unknown_error")
                    .to_string();
                return Err(SlackError::Api {
                    method: method.into(),
                    error,
                });
            }
            return Ok(json);
        }
    }
}
