//! Telegram channel configuration (built by the embedding program; this
//! library reads no environment variables).

use infraai_core::Secret;
use serde::Deserialize;
use std::time::Duration;

/// Where and how approval requests are sent.
#[derive(Clone, Debug, Deserialize)]
pub struct TelegramConfig {
    /// The bot token from @BotFather (`123456:ABC…`).
    pub bot_token: Secret,
    /// The chat approval requests go to (a user, group or supergroup id).
    pub chat_id: i64,
    /// The secret Telegram sends in `X-Telegram-Bot-Api-Secret-Token` on
    /// webhook deliveries (`setWebhook … secret_token`); required for webhook
    /// mode, unused for long polling.
    pub webhook_secret: Option<Secret>,
    /// Bot API base URL (default `https://api.telegram.org`).
    #[serde(default = "default_base")]
    pub api_base: String,
    /// Per-request timeout (default 10 s; long polls add their own wait).
    #[serde(default = "default_timeout", with = "infraai_core::serde_secs")]
    pub timeout: Duration,
    /// Most retries after `429 Too Many Requests` (default 3).
    #[serde(default = "default_retries")]
    pub max_retries: u32,
    /// Longest `retry_after` honored by waiting; longer ones fail at once as
    /// retryable errors instead of blocking (default 60 s).
    #[serde(default = "default_max_wait", with = "infraai_core::serde_secs")]
    pub max_retry_after: Duration,
}

fn default_base() -> String {
    "https://api.telegram.org".into()
}
fn default_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_retries() -> u32 {
    3
}
fn default_max_wait() -> Duration {
    Duration::from_secs(60)
}

impl TelegramConfig {
    /// A configuration with defaults for everything but the token and chat.
    pub fn new(bot_token: Secret, chat_id: i64) -> Self {
        Self {
            bot_token,
            chat_id,
            webhook_secret: None,
            api_base: default_base(),
            timeout: default_timeout(),
            max_retries: default_retries(),
            max_retry_after: default_max_wait(),
        }
    }

    /// The bot's own user id: the number before `:` in the token.
    pub fn bot_id(&self) -> Option<i64> {
        self.bot_token.expose().split(':').next()?.parse().ok()
    }
}
