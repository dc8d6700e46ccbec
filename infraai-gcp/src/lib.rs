//! # infraai-gcp
//!
//! Google Cloud adapters for infraai. Today: the Cloud Monitoring webhook
//! notification channel as an [`infraai_core::AlertSource`]
//! ([`GcpWebhookSource`]), mapping incident notifications (schema 1.2) to
//! alerts: `open`/`closed` → firing/resolved, `incident_id` as the dedup
//! fingerprint, string-encoded observed and threshold values parsed, and the
//! resource, metric and policy labels kept; [`CloudMonitoringMetrics`], a
//! [`infraai_core::MetricSource`] over `timeSeries.list` with tokens from the
//! metadata server ([`MetadataServer`]) or a fixed token. [`GcpActions`], an
//! [`infraai_core::ActionHandler`] over the Compute Engine REST API
//! ([`ComputeEngine`]: reset, stop → setMachineType → start, firewalls.patch,
//! every operation waited on) that scales Terraform-managed instances through
//! Terraform instead; tokens from a service-account key ([`ServiceAccount`],
//! RS256 JWT bearer grant), the metadata server or a fixed token, cached and
//! refreshed before expiry. [`GcpCloud`], the
//! [`infraai_core::TerraformGenerator`] for Compute Engine, firewalls, Cloud
//! SQL and Cloud Monitoring alert policies, whose output [`SchemaChecker`]
//! validates offline against the Google provider 6.50.0 schema.
//!
//! ```
//! use infraai_core::{AlertState, Secret};
//! use infraai_gcp::{GcpWebhookSource, WebhookAuth};
//!
//! let body = br#"{"version":"1.2","incident":{"incident_id":"0.abc","state":"open",
//!   "severity":"Warning","observed_value":"0.93","threshold_value":"0.8",
//!   "resource":{"type":"gce_instance","labels":{"instance_id":"1"}},
//!   "resource_display_name":"web-1",
//!   "metric":{"type":"compute.googleapis.com/instance/cpu/utilization"},
//!   "policy_name":"High CPU","started_at":1764086400}}"#;
//! let alert = GcpWebhookSource::normalize(body).unwrap().unwrap();
//! assert_eq!((alert.resource.as_str(), alert.value, alert.state), ("web-1", Some(0.93), AlertState::Firing));
//! let _source = GcpWebhookSource::new(WebhookAuth::Token(Secret::new("long-random-token")));
//! ```

//!
//! Compute Engine actions: every call a dry run lists is the exact call
//! execution makes (method and path below the configured API root).
//!
//! ```
//! use infraai_core::guardrails::GuardrailConfig;
//! use infraai_core::Secret;
//! use infraai_gcp::{ComputeConfig, ComputeEngine, GcpActions, StaticToken};
//! use std::sync::Arc;
//!
//! # fn main() -> infraai_core::Result<()> {
//! // Credentials: StaticToken (a token the program read from its environment),
//! // MetadataServer::default(), or ServiceAccount::from_json(&key_file_bytes)?.
//! let token = Arc::new(StaticToken(Secret::new("ya29.from-the-environment")));
//! let compute = ComputeEngine::new(ComputeConfig::new("demo-project", "us-central1-a"), token)?;
//! assert_eq!(
//!     compute.reset_calls("web-1")?[0].to_string(),
//!     "POST /compute/v1/projects/demo-project/zones/us-central1-a/instances/web-1/reset (hard-reset web-1)"
//! );
//! // Add `.with_terraform(runner, store)` so instances this agent deployed
//! // scale through Terraform.
//! let _actions = GcpActions::new(Arc::new(compute), infraai_gcp::guardrails(GuardrailConfig::default()));
//! # Ok(()) }
//! ```

#![deny(missing_docs)]

mod actions;
mod catalog;
mod compute;
mod credential;
mod generator;
mod monitoring;
pub mod schema_check;
mod webhook;

pub use actions::GcpActions;
pub use catalog::{
    catalog, failure_patterns, guardrails, register_profiles, CLOUDSQL_DATABASE, GCE_INSTANCE,
    INSTANCE_GROUP, REGIONS,
};
pub use compute::{
    check_resource_name, ApiCall, ComputeConfig, ComputeEngine, Instance, MachineTypeChange,
    Operation, RetryConfig,
};
pub use credential::{
    Credentials, MetadataServer, Rs256Signer, ServiceAccount, ServiceAccountKey, StaticToken,
    CLOUD_PLATFORM_SCOPE, DEFAULT_REFRESH_MARGIN,
};
pub use generator::{
    gce_name, sql_instance_name, GcpCloud, GcpConfig, DEFAULT_STARTUP_SCRIPT, GCE_FIREWALL_RULE,
    GOOGLE_PROVIDER_CONSTRAINT, WEBHOOK_TOKEN_VAR, WEBHOOK_URL_VAR,
};
pub use infraai_core::WebhookAuth;
pub use monitoring::CloudMonitoringMetrics;
pub use schema_check::{SchemaChecker, SchemaIssue};
pub use webhook::GcpWebhookSource;
