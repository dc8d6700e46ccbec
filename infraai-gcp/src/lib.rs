//! # infraai-gcp
//!
//! Google Cloud adapters for infraai. Today: the Cloud Monitoring webhook
//! notification channel as an [`infraai_core::AlertSource`]
//! ([`GcpWebhookSource`]), mapping incident notifications (schema 1.2) to
//! alerts: `open`/`closed` → firing/resolved, `incident_id` as the dedup
//! fingerprint, string-encoded observed and threshold values parsed, and the
//! resource, metric and policy labels kept; [`CloudMonitoringMetrics`], a
//! [`infraai_core::MetricSource`] over `timeSeries.list` with tokens from the
//! metadata server ([`MetadataServer`]) or a fixed token; [`GcpCloud`], the
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

#![deny(missing_docs)]

mod credential;
mod generator;
mod monitoring;
pub mod schema_check;
mod webhook;

pub use credential::{Credentials, MetadataServer, StaticToken};
pub use generator::{
    gce_name, machine_type_var, sql_instance_name, GcpCloud, GcpConfig, DEFAULT_STARTUP_SCRIPT,
    GCE_FIREWALL_RULE, GOOGLE_PROVIDER_CONSTRAINT, WEBHOOK_TOKEN_VAR, WEBHOOK_URL_VAR,
};
pub use monitoring::CloudMonitoringMetrics;
pub use schema_check::{SchemaChecker, SchemaIssue};
pub use webhook::{GcpWebhookSource, WebhookAuth};
