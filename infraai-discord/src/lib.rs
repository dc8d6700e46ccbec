//! # infraai-discord
//!
//! Human-in-the-loop approvals over Discord for infraai. [`DiscordApprover`]
//! posts approval requests with **Approve / Reject / STOP AUTONOMY** buttons
//! through the bot REST API, and [`DiscordApprover::handle_interaction`] is
//! the whole interactions endpoint: it verifies the Ed25519 signature over
//! `X-Signature-Timestamp` + the raw body with the application's public key
//! (anything else is [`infraai_core::Error::Unauthenticated`] → 401), answers
//! PING with PONG, and applies a button press exactly once, answering with an
//! update of the request message. Mentions are disabled in every message and
//! alert text is markdown-escaped. Who may press the buttons is decided by
//! core's [`infraai_core::ApproverAllowList`] (user ids or guild roles).
//!
//! ```
//! use infraai_core::Secret;
//! use infraai_discord::{DiscordApprover, DiscordConfig};
//!
//! let config = DiscordConfig::new(
//!     "f1991ab719d35e6061125b3cf5129ec7b8664bb698cb9c8d4f55f50efa441538",
//!     Secret::new("bot-token"),
//!     "1000000000000000010",
//! );
//! assert!(DiscordApprover::new(config).is_ok());
//! ```

#![deny(missing_docs)]

mod approver;
mod client;
mod config;
mod error;
mod verify;

pub use approver::{escape_markdown, DiscordApprover, MAX_CONTENT_CHARS};
pub use config::DiscordConfig;
pub use error::DiscordError;
pub use verify::{PublicKey, SIGNATURE_HEADER, TIMESTAMP_HEADER};
