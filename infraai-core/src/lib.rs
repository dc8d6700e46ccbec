//! # infraai-core
//!
//! The domain, the traits, the guardrails and the two agent loops of infraai,
//! an embeddable autonomous infrastructure & operations agent. This crate
//! imports no adapter: clouds, LLMs, chat approvers and stores implement the
//! traits in [`traits`] in their own crates.
//!
//! * **Deploy loop** ([`DeployAgent`]): goal → [`Planner`] → [`InfraPlan`] with
//!   monitoring bound from the [`MetricProfileRegistry`] → [`TerraformGenerator`]
//!   → [`TfRunner`] validate (up to three [`Fixer`] attempts) → plan → apply →
//!   [`Verifier`] → [`Deployment`] in the [`MetadataStore`].
//! * **Ops loop** ([`OpsAgent`]): [`Alert`] → incident (deduplicated by
//!   fingerprint) → [`DecisionPolicy`] → [`Guardrails`] → execute, or ask a
//!   human through a [`Notifier`] → [`ActionHandler`] → [`MetricSource`]
//!   re-check → resolved or re-escalated. Every step writes an [`AuditRecord`].
//!
//! The LLM recommends; code decides: decisions are parsed against their
//! schema and checked by guardrails written in Rust, and the kill-switch is
//! enforced by the store in the same transaction that claims an execution.
//!
//! ## Example: the offline rule-based planner and the guardrails
//!
//! ```
//! use infraai_core::rules::{PlanningCatalog, RulePlanner};
//! use infraai_core::guardrails::{GuardrailConfig, Guardrails};
//! use infraai_core::{Planner, PlanRequest};
//!
//! # tokio_test_block_on(async {
//! // A cloud adapter provides the catalog (`infraai_gcp::catalog()`).
//! let sizes = [("small", 10.0), ("medium", 20.0), ("large", 40.0)];
//! let catalog = PlanningCatalog::new("lab", &["lab-1"], &sizes, &[]);
//! let plan = RulePlanner::new(catalog)
//!     .plan(&PlanRequest {
//!         goal: "a backend API for 10k users under $100/month".into(),
//!         cloud: "lab".into(),
//!         region: None,
//!     })
//!     .await
//!     .unwrap();
//! assert_eq!((plan.machine_type.as_str(), plan.region.as_str()), ("large", "lab-1"));
//! assert!(plan.estimated_cost_usd <= 100.0);
//!
//! let guardrails = Guardrails::new(GuardrailConfig::default());
//! assert_eq!(guardrails.config().confidence_floor, 0.7);
//! # });
//! # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
//! # }
//! ```
//!
//! With the `testing` feature, [`testing`] provides in-memory adapters for
//! every trait and the conformance suite every [`MetadataStore`] must pass.

#![deny(missing_docs)]
#![warn(clippy::too_many_lines)]

pub mod approvers;
pub mod deploy;
pub mod domain;
mod error;
pub mod events;
pub mod guardrails;
pub mod heal;
#[cfg(feature = "http")]
mod http_verifier;
mod id;
pub mod jobs;
pub mod lifecycle;
pub mod llm;
pub mod metric_history;
pub mod ops;
pub mod profiles;
mod refusals;
pub mod rules;
mod secret;
pub mod serde_secs;
pub mod signed;
pub mod store;
pub mod traits;
pub mod watcher;
mod webhook;

#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use approvers::{ApproverAllowList, FanoutNotifier, WebNotifier};
pub use deploy::{DeployAgent, DeployConfig, DeployDeps};
pub use domain::*;
pub use error::{BoxError, Error, Result};
pub use events::EventBus;
pub use guardrails::{GuardrailConfig, Guardrails};
pub use heal::{ApplyFailureClassifier, DiagnosticList, FailurePattern};
#[cfg(feature = "http")]
pub use http_verifier::{HttpVerifier, Reachable};
pub use id::{ActionId, AuditId, DeploymentId, IncidentId, RunId};
pub use metric_history::RecordingMetrics;
pub use ops::{OpsAgent, OpsConfig, OpsDeps};
pub use profiles::{MetricProfile, MetricProfileRegistry};
pub use refusals::{AuthRefusal, RefusalAuditLimit, RequestOrigin};
pub use secret::{basic_auth_matches, Secret};
pub use store::*;
pub use traits::*;
pub use watcher::ThresholdWatcher;
pub use webhook::{AlertJsonSource, WebhookAuth, WEBHOOK_TOKEN_HEADER};
