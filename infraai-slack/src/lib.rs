//! # infraai-slack
//!
//! Human-in-the-loop approvals over Slack for infraai. [`SlackApprover`]
//! posts approval requests as Block Kit messages (`chat.postMessage`) with
//! **Approve / Reject / STOP AUTONOMY** buttons;
//! [`SlackApprover::handle_interaction`] is the whole interactivity endpoint
//! and [`SlackApprover::handle_slash_command`] the `/infraai stop | resume |
//! status` command. Every request is verified with the app's signing secret
//! (`v0` HMAC-SHA256 of `v0:timestamp:body`, constant-time, 5-minute replay
//! window; anything else is [`infraai_core::Error::Unauthenticated`] → 401).
//! A press is applied once — a redelivery changes nothing — and the request
//! message is updated (`chat.update`) with the outcome and who decided.
//! Who may press is core's [`infraai_core::ApproverAllowList`]: Slack user
//! ids, or `role:<group id>` for members of a user group
//! (`usergroups.users.list`, cached). Alert text is mrkdwn-escaped, so it
//! can form no link or mention, and messages keep within Slack's limits
//! (3,000 characters a block, 50 blocks). Rate limits (`429` +
//! `Retry-After`) are waited out; `{"ok": false}` answers become errors
//! carrying Slack's code.
//!
//! ```
//! use infraai_core::Secret;
//! use infraai_slack::{SlackApprover, SlackConfig};
//!
//! let mut config = SlackConfig::new(Secret::new("xoxb-…"), Secret::new("signing secret"), "C0123456789");
//! config.approver_groups = vec!["S0ONCALL".into()];
//! assert!(SlackApprover::new(config).is_ok());
//! ```

#![deny(missing_docs)]

mod approver;
mod blocks;
mod client;
mod config;
mod error;
mod groups;
mod verify;

pub use approver::SlackApprover;
pub use blocks::{escape_mrkdwn, MAX_BLOCKS, MAX_TEXT_CHARS};
pub use config::SlackConfig;
pub use error::SlackError;
pub use verify::{SigningKey, SIGNATURE_HEADER, TIMESTAMP_HEADER};
