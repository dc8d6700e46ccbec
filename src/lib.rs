//! # infraai
//!
//! An embeddable autonomous infrastructure & operations agent. This facade
//! re-exports [`infraai_core`] (domain, traits, guardrails, the deploy and
//! ops loops, the rule-based planner and policy); adapter crates are added
//! behind cargo features as they land.
//!
//! ```
//! use infraai::{Aligner, GuardrailConfig, MetricProfile, MetricProfileRegistry, Severity};
//!
//! // Each cloud adapter registers its own profiles (`infraai::gcp::register_profiles`).
//! let mut registry = MetricProfileRegistry::empty();
//! let cpu = MetricProfile::above("cpu_high", "vm/cpu", 0.8, 60, Severity::Critical, Aligner::Mean);
//! registry.register("vm", cpu);
//! assert_eq!(registry.profiles("vm")[0].name, "cpu_high");
//! assert_eq!(GuardrailConfig::default().confidence_floor, 0.7);
//! ```

#![deny(missing_docs)]

pub use infraai_core::*;

/// Durable metadata stores: SQLite (feature `sqlite`), Redis (feature `redis`)
/// and PostgreSQL (feature `postgres`).
#[cfg(any(feature = "sqlite", feature = "redis", feature = "postgres"))]
pub use infraai_store as store;

/// Telegram approvals (feature `telegram`).
#[cfg(feature = "telegram")]
pub use infraai_telegram as telegram;

/// Discord approvals (feature `discord`).
#[cfg(feature = "discord")]
pub use infraai_discord as discord;
/// Slack approvals (feature `slack`).
#[cfg(feature = "slack")]
pub use infraai_slack as slack;

/// The local cloud (feature `local`).
#[cfg(feature = "local")]
pub use infraai_local as local;

/// The Gemini and OpenAI-compatible LLM providers (feature `gemini`).
#[cfg(feature = "gemini")]
pub use infraai_gemini as gemini;

/// The Terraform runner, HCL writer and deterministic fixers (feature `terraform`).
#[cfg(feature = "terraform")]
pub use infraai_terraform as terraform;

/// Google Cloud adapters (feature `gcp`).
#[cfg(feature = "gcp")]
pub use infraai_gcp as gcp;

/// Prometheus and Alertmanager adapters (feature `prometheus`).
#[cfg(feature = "prometheus")]
pub use infraai_prometheus as prometheus;

/// Amazon Web Services adapters (feature `aws`).
#[cfg(feature = "aws")]
pub use infraai_aws as aws;
