//! Slack channel configuration (built by the embedding program).

use infraai_core::Secret;
use serde::Deserialize;
use std::time::Duration;

/// The app, bot and channel approval requests go to.
#[derive(Clone, Debug, Deserialize)]
pub struct SlackConfig {
    /// The bot token (`xoxb-…`) used for the Web API.
    pub bot_token: Secret,
    /// The app's signing secret, used to verify every request from Slack.
    pub signing_secret: Secret,
    /// The channel approval requests are posted to (`C…`).
    pub channel_id: String,
    /// User groups (`S…`) whose members are taken to hold the role of that
    /// group id; allow-list them with `role:<group id>`
    /// ([`infraai_core::ApproverAllowList::allow_role`]).
    #[serde(default)]
    pub approver_groups: Vec<String>,
    /// Web API base (default `https://slack.com/api`).
    #[serde(default = "default_base")]
    pub api_base: String,
    /// Per-request timeout (default 10 s).
    #[serde(default = "default_timeout", with = "infraai_core::serde_secs")]
    pub timeout: Duration,
    /// Most retries after `429` (default 3).
    #[serde(default = "default_retries")]
    pub max_retries: u32,
    /// Longest `Retry-After` honored by waiting (default 30 s).
    #[serde(default = "default_max_wait", with = "infraai_core::serde_secs")]
    pub max_retry_after: Duration,
    /// How far a request's signed timestamp may be from now, either way,
    /// before it is refused as a replay (default 5 minutes, Slack's advice).
    #[serde(default = "default_replay_window", with = "infraai_core::serde_secs")]
    pub replay_window: Duration,
    /// How long a user group's member list is trusted (default 5 minutes).
    #[serde(default = "default_group_ttl", with = "infraai_core::serde_secs")]
    pub group_ttl: Duration,
}

fn default_base() -> String {
    "https://slack.com/api".into()
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
fn default_group_ttl() -> Duration {
    Duration::from_secs(300)
}

impl SlackConfig {
    /// A configuration with defaults for everything else.
    pub fn new(bot_token: Secret, signing_secret: Secret, channel_id: impl Into<String>) -> Self {
        Self {
            bot_token,
            signing_secret,
            channel_id: channel_id.into(),
            approver_groups: Vec::new(),
            api_base: default_base(),
            timeout: default_timeout(),
            max_retries: default_retries(),
            max_retry_after: default_max_wait(),
            replay_window: default_replay_window(),
            group_ttl: default_group_ttl(),
        }
    }
}
