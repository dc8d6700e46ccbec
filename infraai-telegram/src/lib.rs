//! # infraai-telegram
//!
//! Human-in-the-loop approvals over Telegram for infraai. [`TelegramApprover`]
//! sends each approval request — policy, resource, metric = value
//! (threshold), suggested action, confidence, reasoning and the dry-run
//! summary — with **Approve / Reject / STOP AUTONOMY** buttons, and turns
//! button presses and the text replies `1`/`YES`, `2`/`NO`,
//! `STOP AUTONOMY`, `RESUME AUTONOMY` into [`infraai_core::HumanCommand`]s.
//!
//! Inbound, either a webhook ([`InboundChannel::parse_inbound`] checks the
//! `X-Telegram-Bot-Api-Secret-Token` header in constant time) or long polling
//! ([`TelegramPoller`], offset persisted in the store). Who may command the
//! agent is decided by core's [`infraai_core::ApproverAllowList`]: being in
//! the chat is not authorization.
//!
//! Alert text is untrusted: it is HTML-escaped for `parse_mode: HTML` and
//! messages are cut cleanly at Telegram's 4096 characters. `429` answers are
//! retried after `retry_after`.
//!
//! ```no_run
//! use infraai_core::{Notifier, Secret};
//! use infraai_telegram::{TelegramApprover, TelegramConfig};
//!
//! let mut config = TelegramConfig::new(Secret::new("123456:ABC-token"), 111111111);
//! config.webhook_secret = Some(Secret::new("a-long-random-secret"));
//! let approver = TelegramApprover::new(config).expect("HTTP client");
//! assert_eq!(approver.channel(), "telegram");
//! ```
//!
//! [`InboundChannel::parse_inbound`]: infraai_core::InboundChannel::parse_inbound

#![deny(missing_docs)]

mod approver;
mod client;
mod config;
mod error;
pub mod format;
mod poller;
pub mod wire;

pub use approver::{TelegramApprover, SECRET_HEADER};
pub use config::TelegramConfig;
pub use error::TelegramError;
pub use poller::{TelegramPoller, OFFSET_CURSOR};
