//! Raw Bot API calls with 429 handling.

use crate::config::TelegramConfig;
use crate::error::TelegramError;
use crate::wire::{ApiResponse, InlineKeyboardMarkup, Message, Update};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use std::time::Duration;
use tracing::{debug, warn};

/// A Bot API client. The token is part of every URL (that is the Bot API's
/// design), so URLs are never logged and transport errors drop them.
#[derive(Clone)]
pub(crate) struct BotClient {
    http: reqwest::Client,
    config: TelegramConfig,
}

impl BotClient {
    pub fn new(config: TelegramConfig) -> Result<Self, TelegramError> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout + Duration::from_secs(30))
            .build()
            .map_err(|e| TelegramError::Http {
                method: "client".into(),
                source: e.without_url(),
            })?;
        Ok(Self { http, config })
    }

    pub fn config(&self) -> &TelegramConfig {
        &self.config
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        body: &Value,
        timeout: Duration,
    ) -> Result<T, TelegramError> {
        let url = format!(
            "{}/bot{}/{method}",
            self.config.api_base.trim_end_matches('/'),
            self.config.bot_token.expose()
        );
        let http = |e: reqwest::Error| TelegramError::Http {
            method: method.into(),
            source: e.without_url(),
        };
        let mut attempt = 0;
        loop {
            let request = self.http.post(&url).timeout(timeout).json(body);
            let response = request.send().await.map_err(http)?;
            let status = response.status();
            let bytes = response.bytes().await.map_err(http)?;
            let parsed: ApiResponse<T> =
                serde_json::from_slice(&bytes).map_err(|e| TelegramError::Decode {
                    method: method.into(),
                    detail: format!("HTTP {status}: {e}"),
                })?;
            if parsed.ok {
                return parsed.result.ok_or_else(|| TelegramError::Decode {
                    method: method.into(),
                    detail: "ok without result".into(),
                });
            }
            let code = parsed.error_code.unwrap_or(i64::from(status.as_u16()));
            let retry_after = parsed.parameters.and_then(|p| p.retry_after);
            let error = TelegramError::Api {
                method: method.into(),
                code,
                description: parsed.description.unwrap_or_default(),
                retry_after,
            };
            match retry_after {
                Some(wait)
                    if code == 429
                        && attempt < self.config.max_retries
                        && Duration::from_secs(wait) <= self.config.max_retry_after =>
                {
                    attempt += 1;
                    warn!(
                        method,
                        retry_after = wait,
                        attempt,
                        "Telegram rate limit; waiting"
                    );
                    tokio::time::sleep(Duration::from_secs(wait)).await;
                }
                _ => return Err(error),
            }
        }
    }

    pub async fn send_message(
        &self,
        chat_id: i64,
        html: &str,
        keyboard: Option<&InlineKeyboardMarkup>,
        reply_to: Option<i64>,
    ) -> Result<Message, TelegramError> {
        let mut body = json!({
            "chat_id": chat_id,
            "text": html,
            "parse_mode": "HTML",
            "link_preview_options": {"is_disabled": true},
        });
        if let Some(k) = keyboard {
            body["reply_markup"] = json!(k);
        }
        if let Some(id) = reply_to {
            body["reply_parameters"] =
                json!({"message_id": id, "allow_sending_without_reply": true});
        }
        debug!(chat_id, chars = html.chars().count(), "sendMessage");
        self.call("sendMessage", &body, self.config.timeout).await
    }

    /// Edits a message's text and removes its buttons.
    pub async fn edit_message_text(
        &self,
        chat_id: i64,
        message_id: i64,
        html: &str,
    ) -> Result<(), TelegramError> {
        let body = json!({
            "chat_id": chat_id,
            "message_id": message_id,
            "text": html,
            "parse_mode": "HTML",
            "reply_markup": {"inline_keyboard": []},
        });
        self.call::<Value>("editMessageText", &body, self.config.timeout)
            .await
            .map(|_| ())
    }

    pub async fn answer_callback_query(&self, id: &str, text: &str) -> Result<(), TelegramError> {
        let body = json!({"callback_query_id": id, "text": text});
        self.call::<bool>("answerCallbackQuery", &body, self.config.timeout)
            .await
            .map(|_| ())
    }

    pub async fn get_updates(
        &self,
        offset: Option<i64>,
        wait: Duration,
    ) -> Result<Vec<Update>, TelegramError> {
        let mut body = json!({
            "timeout": wait.as_secs(),
            "allowed_updates": ["message", "callback_query"],
        });
        if let Some(o) = offset {
            body["offset"] = json!(o);
        }
        self.call("getUpdates", &body, self.config.timeout + wait)
            .await
    }
}
