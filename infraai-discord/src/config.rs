//! Discord channel configuration (built by the embedding program).

use infraai_core::Secret;
use serde::Deserialize;
use std::time::Duration;

/// The application, bot and channel approval requests go to.
#[derive(Clone, Debug, Deserialize)]
pub struct DiscordConfig {
    /// The application's public key (hex, from the Developer Portal), used to
    /// verify every interaction request.
    pub public_key_hex: String,
    /// The bot token used to post approval requests.
    pub bot_token: Secret,
    /// The channel approval requests are posted to.
    pub channel_id: String,
    /// REST API base (default `https://discord.com/api/v10`).
    #[serde(default = "default_base")]
    pub api_base: String,
    /// Per-request timeout (default 10 s).
    #[serde(default = "default_timeout", with = "infraai_core::serde_secs")]
    pub timeout: Duration,
    /// Most retries after `429` (default 3).
    #[serde(default = "default_retries")]
    pub max_retries: u32,
    /// Longest `retry_after` honored by waiting (default 30 s).
    #[serde(default = "default_max_wait", with = "infraai_core::serde_secs")]
    pub max_retry_after: Duration,
    /// How far an interaction's signed timestamp may be from now, either
    /// way, before it is refused as a replay (default 5 minutes).
    #[serde(default = "default_replay_window", with = "infraai_core::serde_secs")]
    pub replay_window: Duration,
}

fn default_base() -> String {
    "https://discord.com/api/v10".into()
}
fn default_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_retries() -> u32 {
    3
}
fn default_max_wait() -> Duration {
    Duration::from_secs(30)
}
fn default_replay_window() -> Duration {
    Duration::from_secs(300)
}

impl DiscordConfig {
    /// A configuration with defaults for everything else.
    pub fn new(
        public_key_hex: impl Into<String>,
        bot_token: Secret,
        channel_id: impl Into<String>,
    ) -> Self {
        Self {
            public_key_hex: public_key_hex.into(),
            bot_token,
            channel_id: channel_id.into(),
            api_base: default_base(),
            timeout: default_timeout(),
            max_retries: default_retries(),
            max_retry_after: default_max_wait(),
            replay_window: default_replay_window(),
        }
    }
}
