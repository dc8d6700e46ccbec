//! # infraai-local
//!
//! A "cloud" on this machine, so the whole deploy-and-operate loop of infraai
//! runs for real without a cloud account: an instance is a real process (the
//! `infraai-demo-service` binary of this crate) on a loopback port, an
//! instance group N of them behind a local balancer, a database Debian's
//! PostgreSQL and a cache `redis-server` — all started and stopped by
//! Terraform (`terraform_data` provisioners, see [`LocalCloud`]), measured
//! from `/proc`, over HTTP and from the servers themselves.
//!
//! * [`ladder`]: local machine types: CPU allotments, connection and memory limits.
//! * [`profiles`]: the resource types (`local_instance`, `local_instance_group`,
//!   `local_postgres`, `local_redis`) and their alert profiles.
//! * [`instances`]: where resources record their pid, port and connection URL.
//! * [`LocalMetrics`]: a [`infraai_core::MetricSource`] — real CPU
//!   utilization (CPU time / window / allotment), health, latency, database
//!   connections, cache memory and clients.
//! * [`LocalActions`]: restart, scale-up and scale-out through Terraform.
//! * [`balancer`]: a group's load balancer.
//!
//! ```
//! use infraai_core::MetricProfileRegistry;
//!
//! let mut registry = MetricProfileRegistry::empty();
//! infraai_local::profiles::register_profiles(&mut registry);
//! assert_eq!(registry.profiles(infraai_local::profiles::LOCAL_INSTANCE).len(), 2);
//! assert_eq!(infraai_local::ladder::allotment("local-medium"), Some(0.5));
//! let postgres = registry.profiles(infraai_local::profiles::LOCAL_POSTGRES);
//! assert_eq!(postgres[1].name, "sql_connections_high");
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
