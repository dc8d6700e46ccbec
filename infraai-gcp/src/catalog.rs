//! What infraai knows about Google Cloud (resource types, alert profiles,
//! guardrails, sizes, prices, regions, failure patterns), for the wiring.

use infraai_core::rules::PlanningCatalog;
use infraai_core::{
    ActionKind, Aligner, FailurePattern, GuardrailConfig, MetricProfile, MetricProfileRegistry,
    Severity,
};

/// Compute Engine instance (Cloud Monitoring monitored-resource type).
pub const GCE_INSTANCE: &str = "gce_instance";
/// Cloud SQL database.
pub const CLOUDSQL_DATABASE: &str = "cloudsql_database";
/// Managed instance group.
pub const INSTANCE_GROUP: &str = "instance_group";

/// Regions the planner may choose; the first is the default.
#[rustfmt::skip]
pub const REGIONS: &[&str] = &[
    "us-central1", "us-east1", "us-east4", "us-west1", "us-west2", "europe-west1", "europe-west2",
    "europe-west3", "europe-west4", "asia-east1", "asia-northeast1", "asia-southeast1",
    "australia-southeast1", "southamerica-east1",
];

/// Monthly on-demand prices in USD for `us-central1` (730 hours), rounded to
/// cents, from Google Cloud's public Compute Engine and Cloud SQL price
/// lists (cloud.google.com/compute/vm-instance-pricing and
/// cloud.google.com/sql/pricing; e.g. e2-medium $0.03350571/hour), written
/// into this table in November 2026 and not re-read since: this repository
/// has no network to Google. Estimates for planning and the cost cap, not
/// quotes: sustained-use discounts, disks, egress and other regions are not
/// included. The `e2` sizes, smallest first, are also the scale-up ladder.
#[rustfmt::skip]
pub fn catalog() -> PlanningCatalog {
    PlanningCatalog::new(
        "gcp",
        REGIONS,
        &[("e2-micro", 6.11), ("e2-small", 12.23), ("e2-medium", 24.46), ("e2-standard-2", 48.91),
          ("e2-standard-4", 97.83), ("e2-standard-8", 195.66), ("e2-standard-16", 391.32)],
        // Cloud SQL (PostgreSQL/MySQL) tiers, instance price only.
        &[("db-f1-micro", 7.67), ("db-g1-small", 25.55), ("db-custom-1-3840", 49.92),
          ("db-custom-2-7680", 99.84)],
    )
}

/// (resource type, name, metric, threshold, seconds, severity, aligner).
#[rustfmt::skip]
const PROFILES: &[(&str, &str, &str, f64, u64, Severity, Aligner)] = &[
    (GCE_INSTANCE, "cpu_high", "compute.googleapis.com/instance/cpu/utilization", 0.80, 60, Severity::Critical, Aligner::Mean),
    (GCE_INSTANCE, "disk_read_high", "compute.googleapis.com/instance/disk/read_bytes_count", 1e8, 120, Severity::Warning, Aligner::Rate),
    (CLOUDSQL_DATABASE, "sql_cpu_high", "cloudsql.googleapis.com/database/cpu/utilization", 0.75, 60, Severity::Critical, Aligner::Mean),
    (CLOUDSQL_DATABASE, "sql_connections_high", "cloudsql.googleapis.com/database/network/connections", 100.0, 60, Severity::Warning, Aligner::Mean),
    (INSTANCE_GROUP, "asg_cpu_high", "compute.googleapis.com/instance/cpu/utilization", 0.70, 120, Severity::Critical, Aligner::Mean),
];

/// Adds the GCP profiles: CPU and disk reads on instances, CPU and
/// connections on Cloud SQL, CPU on instance groups.
pub fn register_profiles(registry: &mut MetricProfileRegistry) {
    for &(rtype, name, metric, threshold, secs, severity, aligner) in PROFILES {
        let profile = MetricProfile::above(name, metric, threshold, secs, severity, aligner);
        registry.register(rtype, profile);
    }
}

/// Guardrails for GCP: scale-up, restart and firewall changes on instances,
/// scale-up and restart on groups, scale-up on Cloud SQL, along the `e2`
/// ladder.
pub fn guardrails(mut config: GuardrailConfig) -> GuardrailConfig {
    use ActionKind::{ModifyFirewall, Restart, ScaleUp};
    config.allow(GCE_INSTANCE, [ScaleUp, Restart, ModifyFirewall]);
    config.allow(INSTANCE_GROUP, [ScaleUp, Restart]);
    config.allow(CLOUDSQL_DATABASE, [ScaleUp]);
    config.machine_ladder = catalog().compute_ladder();
    config.monthly_prices = catalog().price_table();
    config
}

/// GCP's apply-failure patterns (`failure_patterns.json`: `googleapi`
/// errors, quotas, disabled APIs, permissions).
pub fn failure_patterns() -> Vec<FailurePattern> {
    FailurePattern::compiled_in("gcp", include_str!("failure_patterns.json"))
}
