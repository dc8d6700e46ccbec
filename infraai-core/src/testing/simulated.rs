//! The simulated cloud's knowledge. It borrows GCP's names (resource types,
//! metric paths, the `e2` ladder and its prices) so that plans, alerts and
//! decisions in tests read like a real cloud's; the real GCP data lives in
//! `infraai-gcp`.

use crate::domain::{ActionKind, Aligner, Severity};
use crate::rules::PlanningCatalog;
use crate::{GuardrailConfig, MetricProfile, MetricProfileRegistry};

/// The simulated compute instance (GCP's name).
pub const GCE_INSTANCE: &str = "gce_instance";
/// The simulated database (GCP's name).
pub const CLOUDSQL_DATABASE: &str = "cloudsql_database";
/// The simulated instance group (GCP's name).
pub const INSTANCE_GROUP: &str = "instance_group";

/// (resource type, name, metric, threshold, seconds, severity, aligner).
#[rustfmt::skip]
const PROFILES: &[(&str, &str, &str, f64, u64, Severity, Aligner)] = &[
    (GCE_INSTANCE, "cpu_high", "compute.googleapis.com/instance/cpu/utilization", 0.80, 60, Severity::Critical, Aligner::Mean),
    (GCE_INSTANCE, "disk_read_high", "compute.googleapis.com/instance/disk/read_bytes_count", 1e8, 120, Severity::Warning, Aligner::Rate),
    (CLOUDSQL_DATABASE, "sql_cpu_high", "cloudsql.googleapis.com/database/cpu/utilization", 0.75, 60, Severity::Critical, Aligner::Mean),
    (CLOUDSQL_DATABASE, "sql_connections_high", "cloudsql.googleapis.com/database/network/connections", 100.0, 60, Severity::Warning, Aligner::Mean),
    (INSTANCE_GROUP, "asg_cpu_high", "compute.googleapis.com/instance/cpu/utilization", 0.70, 120, Severity::Critical, Aligner::Mean),
];

/// The simulated cloud's alert profiles (GCP's).
pub fn profiles() -> MetricProfileRegistry {
    let mut r = MetricProfileRegistry::empty();
    for &(rtype, name, metric, threshold, secs, severity, aligner) in PROFILES {
        r.register(
            rtype,
            MetricProfile::above(name, metric, threshold, secs, severity, aligner),
        );
    }
    r
}

/// The simulated cloud's planning catalog (GCP's sizes and prices).
#[rustfmt::skip]
pub fn catalog() -> PlanningCatalog {
    PlanningCatalog::new(
        "gcp",
        &["us-central1", "us-east1", "europe-west1"],
        &[("e2-micro", 6.11), ("e2-small", 12.23), ("e2-medium", 24.46), ("e2-standard-2", 48.91),
          ("e2-standard-4", 97.83), ("e2-standard-8", 195.66), ("e2-standard-16", 391.32)],
        &[("db-f1-micro", 7.67), ("db-g1-small", 25.55), ("db-custom-1-3840", 49.92),
          ("db-custom-2-7680", 99.84)],
    )
}

/// Guardrails for the simulated cloud: GCP's allow-lists along the `e2`
/// ladder, with earned autonomy off (every pair trusted, so a confident
/// decision runs alone; the other rules still apply). Tests of earned
/// autonomy turn it on again.
pub fn guardrails() -> GuardrailConfig {
    use ActionKind::{ModifyFirewall, Restart, ScaleUp};
    let mut config = GuardrailConfig::default();
    config.allow(GCE_INSTANCE, [ScaleUp, Restart, ModifyFirewall]);
    config.allow(INSTANCE_GROUP, [ScaleUp, Restart]);
    config.allow(CLOUDSQL_DATABASE, [ScaleUp]);
    config.monthly_prices = catalog().price_table();
    config.machine_ladder = catalog().compute_ladder();
    config.earned_autonomy.enabled = false;
    config
}
