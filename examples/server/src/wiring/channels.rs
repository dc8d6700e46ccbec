//! The approval channels: the web (always), Telegram, Discord and Slack when configured.

use crate::config::Config;
use anyhow::Context;
use infraai_core::*;
use infraai_discord::{DiscordApprover, DiscordConfig};
use infraai_slack::{SlackApprover, SlackConfig};
use infraai_telegram::{TelegramApprover, TelegramConfig};
use std::sync::Arc;

/// The configured channels.
pub(super) struct Approvals {
    /// Every notifier together (web, and the chat channels configured).
    pub notifier: Arc<dyn Notifier>,
    /// Telegram, when configured.
    pub telegram: Option<Arc<TelegramApprover>>,
    /// Discord, when configured.
    pub discord: Option<Arc<DiscordApprover>>,
    /// Slack, when configured.
    pub slack: Option<Arc<SlackApprover>>,
    /// Who may approve on each channel.
    pub approvers: ApproverAllowList,
}

/// The web channel and the configured chat channels, with their allow-lists.
pub(super) fn approvals(config: &Config, report: &mut Vec<String>) -> anyhow::Result<Approvals> {
    let mut approvers = ApproverAllowList::none().allow_all_authenticated("web");
    let mut channels: Vec<Arc<dyn Notifier>> = vec![Arc::new(WebNotifier)];
    report.push("approvals: web dashboard/API (operator bearer token)".into());
    let telegram = telegram(config, &mut approvers, report)?;
    let discord = discord(config, &mut approvers, report)?;
    let slack = slack(config, &mut approvers, report)?;
    channels.extend(telegram.clone().map(|t| t as Arc<dyn Notifier>));
    channels.extend(discord.clone().map(|d| d as Arc<dyn Notifier>));
    channels.extend(slack.clone().map(|s| s as Arc<dyn Notifier>));
    Ok(Approvals {
        notifier: Arc::new(FanoutNotifier::new(channels)),
        telegram,
        discord,
        slack,
        approvers,
    })
}

/// Telegram, with a bot token and a chat id.
fn telegram(
    config: &Config,
    approvers: &mut ApproverAllowList,
    report: &mut Vec<String>,
) -> anyhow::Result<Option<Arc<TelegramApprover>>> {
    let t = &config.telegram;
    let approver = match (&t.telegram_bot_token, t.telegram_chat_id) {
        (Some(bot_token), Some(chat_id)) => {
            let mut tc = TelegramConfig::new(Secret::new(bot_token.clone()), chat_id);
            tc.webhook_secret = t.telegram_webhook_secret.clone().map(Secret::new);
            if let Some(base) = &t.telegram_api_base {
                tc.api_base = base.clone();
            }
            let approver = Arc::new(TelegramApprover::new(tc).context("building Telegram")?);
            for id in &t.telegram_approvers {
                *approvers = std::mem::take(approvers).allow_user("telegram", id.trim());
            }
            report.push(format!(
                "approvals: Telegram chat {} via {}, {} allow-listed approver(s){}",
                chat_id,
                if t.telegram_webhook_secret.is_some() {
                    "webhook POST /ops/telegram"
                } else {
                    "long polling"
                },
                t.telegram_approvers.len(),
                if t.telegram_approvers.is_empty() {
                    " — nobody can approve from Telegram until INFRAAI_TELEGRAM_APPROVERS is set"
                } else {
                    ""
                }
            ));
            Some(approver)
        }
        _ => {
            report.push("approvals: Telegram off (needs INFRAAI_TELEGRAM_BOT_TOKEN and INFRAAI_TELEGRAM_CHAT_ID)".into());
            None
        }
    };
    Ok(approver)
}

/// Discord, with a public key, a bot token and a channel id.
fn discord(
    config: &Config,
    approvers: &mut ApproverAllowList,
    report: &mut Vec<String>,
) -> anyhow::Result<Option<Arc<DiscordApprover>>> {
    let d = &config.discord;
    let approver = match (
        &d.discord_public_key,
        &d.discord_bot_token,
        &d.discord_channel_id,
    ) {
        (Some(public_key), Some(bot_token), Some(channel_id)) => {
            let mut dc = DiscordConfig::new(
                public_key.clone(),
                Secret::new(bot_token.clone()),
                channel_id.clone(),
            );
            if let Some(base) = &d.discord_api_base {
                dc.api_base = base.clone();
            }
            dc.replay_window = d.discord_replay_window_secs;
            let approver = Arc::new(DiscordApprover::new(dc).context("building Discord")?);
            for id in &d.discord_approvers {
                *approvers = std::mem::take(approvers).allow_user("discord", id.trim());
            }
            for role in &d.discord_approver_roles {
                *approvers = std::mem::take(approvers).allow_role("discord", role.trim());
            }
            report.push(format!(
                "approvals: Discord channel {} via POST /ops/discord, {} user(s) and {} role(s) allow-listed",
                channel_id,
                d.discord_approvers.len(),
                d.discord_approver_roles.len()
            ));
            Some(approver)
        }
        _ => {
            report.push("approvals: Discord off (needs INFRAAI_DISCORD_PUBLIC_KEY, INFRAAI_DISCORD_BOT_TOKEN and INFRAAI_DISCORD_CHANNEL_ID)".into());
            None
        }
    };
    Ok(approver)
}

/// Slack, with a bot token, a signing secret and a channel id.
fn slack(
    config: &Config,
    approvers: &mut ApproverAllowList,
    report: &mut Vec<String>,
) -> anyhow::Result<Option<Arc<SlackApprover>>> {
    let s = &config.slack;
    let (Some(bot_token), Some(secret), Some(channel_id)) = (
        &s.slack_bot_token,
        &s.slack_signing_secret,
        &s.slack_channel_id,
    ) else {
        report.push("approvals: Slack off (needs INFRAAI_SLACK_BOT_TOKEN, INFRAAI_SLACK_SIGNING_SECRET and INFRAAI_SLACK_CHANNEL_ID)".into());
        return Ok(None);
    };
    let mut sc = SlackConfig::new(
        Secret::new(bot_token.clone()),
        Secret::new(secret.clone()),
        channel_id.clone(),
    );
    if let Some(base) = &s.slack_api_base {
        sc.api_base = base.clone();
    }
    sc.approver_groups = s
        .slack_approver_groups
        .iter()
        .map(|g| g.trim().to_string())
        .collect();
    let approver = Arc::new(SlackApprover::new(sc).context("building Slack")?);
    for id in &s.slack_approvers {
        *approvers = std::mem::take(approvers).allow_user("slack", id.trim());
    }
    for group in &s.slack_approver_groups {
        *approvers = std::mem::take(approvers).allow_role("slack", group.trim());
    }
    report.push(format!(
        "approvals: Slack channel {channel_id} via POST /ops/slack/interactions and /ops/slack/commands, {} user(s) and {} user group(s) allow-listed{}",
        s.slack_approvers.len(),
        s.slack_approver_groups.len(),
        if s.slack_approvers.is_empty() && s.slack_approver_groups.is_empty() {
            " — nobody can approve from Slack until INFRAAI_SLACK_APPROVERS or INFRAAI_SLACK_APPROVER_GROUPS is set"
        } else {
            ""
        }
    ));
    Ok(Some(approver))
}
