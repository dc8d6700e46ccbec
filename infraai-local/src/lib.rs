//! # infraai-local
//!
//! A "cloud" on this machine, so the whole deploy-and-operate loop of infraai
//! runs for real without a cloud account: each instance is a real process
//! (the `infraai-demo-service` binary of this crate) on a loopback port,
//! measured from `/proc` and over HTTP.
//!
//! * [`ladder`]: local machine types and their CPU allotments.
//! * [`profiles`]: the `local_instance` resource type and its alert profiles.
//! * [`instances`]: where instances record their pid and port.
//! * [`LocalMetrics`]: a [`infraai_core::MetricSource`] — real CPU
//!   utilization (CPU time / window / allotment), health and latency.
//!
//! ```
//! use infraai_core::MetricProfileRegistry;
//!
//! let mut registry = MetricProfileRegistry::empty();
//! infraai_local::profiles::register_profiles(&mut registry);
//! assert_eq!(registry.profiles(infraai_local::profiles::LOCAL_INSTANCE).len(), 2);
//! assert_eq!(infraai_local::ladder::allotment("local-medium"), Some(0.5));
//! ```

#![deny(missing_docs)]

mod actions;
pub mod balancer;
mod binaries;
mod cloud;
mod datastores;
pub mod demo_service;
pub mod instances;
pub mod ladder;
mod metrics;
pub mod profiles;

pub use actions::{LocalActions, ACTIONS_TFVARS};
pub use cloud::{
    instances_var, local_failure_patterns, machine_type_var, restart_var, LocalCloud, LocalConfig,
};
pub use metrics::LocalMetrics;
