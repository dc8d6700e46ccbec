//! # infraai-prometheus
//!
//! Prometheus and Alertmanager adapters for infraai:
//!
//! * [`AlertmanagerSource`]: the Alertmanager webhook (payload version 4) as
//!   an [`infraai_core::AlertSource`] — firing and resolved alerts, the
//!   Alertmanager fingerprint as the dedup key, labels and annotations mapped
//!   through a configurable [`LabelMapping`], bearer or Basic auth.
//! * [`PrometheusMetrics`]: a [`infraai_core::MetricSource`] over
//!   `/api/v1/query` (instant vectors), with clear errors for empty results and
//!   query errors.
//! * [`rules_file`]: a deployment's monitoring policies as Prometheus alerting
//!   rules.
//!
//! ```
//! use infraai_prometheus::AlertmanagerSource;
//! use infraai_core::{Secret, WebhookAuth};
//!
//! let source = AlertmanagerSource::new(WebhookAuth::Token(Secret::new("token")));
//! let body = br#"{"version":"4","alerts":[{"status":"firing","fingerprint":"3f2a9c1d7b6e4a05",
//!   "labels":{"alertname":"HighCPU","instance":"web-1:9100","severity":"critical"},
//!   "annotations":{"value":"0.97"},"startsAt":"2026-11-25T16:00:00Z"}]}"#;
//! let alerts = source.normalize(body).unwrap();
//! assert_eq!((alerts[0].resource.as_str(), alerts[0].value), ("web-1", Some(0.97)));
//! ```

#![deny(missing_docs)]

mod alertmanager;
mod query;

pub use alertmanager::{AlertmanagerSource, LabelMapping};
pub use query::{rules_file, PromQueries, PrometheusMetrics};
