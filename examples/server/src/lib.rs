//! # infraai-server
//!
//! The example server of infraai: configuration, adapter wiring, the HTTP API
//! (documented at `/openapi.json`), webhooks for alerts, Telegram, Discord
//! and Slack, the MCP interface, and the dashboard. `main.rs` only parses
//! the command line and calls [`run`] (or [`run_mcp_stdio`]).

#![warn(clippy::too_many_lines)]

pub mod app;
pub mod auth;
pub mod config;
pub mod error;
pub mod mcp;
pub mod metrics;
pub mod openapi;
pub mod retry;
pub mod routes;
pub mod secrets;
pub mod server;
pub mod test_hooks;
pub mod wiring;

pub use server::{run, run_mcp_stdio, run_wired};
