//! Resource types, metric names and alert profiles of the local cloud.

use infraai_core::{
    ActionKind, Aligner, GuardrailConfig, MetricProfile, MetricProfileRegistry, Severity,
};

/// The resource type of a local instance (one demo-service process).
pub const LOCAL_INSTANCE: &str = "local_instance";
/// The resource type of a local instance group: N demo-service processes
/// behind a local load balancer.
pub const LOCAL_INSTANCE_GROUP: &str = "local_instance_group";
/// The resource type of a local PostgreSQL database (Debian's `postgresql`).
pub const LOCAL_POSTGRES: &str = "local_postgres";
/// The resource type of a local Redis cache (Debian's `redis-server`).
pub const LOCAL_REDIS: &str = "local_redis";

/// CPU utilization: CPU time / window / allotment (for a group, the mean
/// over its instances).
pub const CPU_UTILIZATION: &str = "local/instance/cpu/utilization";
/// 1 while `GET /healthz` fails, 0 while it answers 200 (for a group, the
/// share of its instances failing).
pub const HEALTH_FAILING: &str = "local/instance/health_failing";
/// Share of requests answered 5xx since the process started (0–1).
pub const ERROR_RATE: &str = "local/instance/error_rate";
/// Mean request latency in milliseconds since the process started.
pub const REQUEST_LATENCY_MS: &str = "local/instance/request_latency_ms";
/// Client connections in use / `max_connections` (0–1), from `pg_stat_activity`.
pub const PG_CONNECTIONS: &str = "local/postgres/connections/utilization";
/// CPU of the database's processes (the postmaster, its live children and
/// the children it has reaped) / window / allotment.
pub const PG_CPU: &str = "local/postgres/cpu/utilization";
/// Redis `used_memory` / `maxmemory` (0–1).
pub const REDIS_MEMORY: &str = "local/redis/memory/utilization";
/// Redis `connected_clients` / `maxclients` (0–1).
pub const REDIS_CLIENTS: &str = "local/redis/clients/utilization";

/// Adds the local profiles:
///
/// | resource type | profile | metric | threshold | for | severity |
/// |---|---|---|---|---|---|
/// | instance, group | `cpu_high` | [`CPU_UTILIZATION`] | 0.8 | 30 s | critical |
/// | instance, group | `health_failing` | [`HEALTH_FAILING`] | 0 | 30 s | critical |
/// | PostgreSQL | `sql_cpu_high` | [`PG_CPU`] | 0.75 | 60 s | critical |
/// | PostgreSQL | `sql_connections_high` | [`PG_CONNECTIONS`] | 0.8 | 60 s | warning |
/// | Redis | `cache_memory_high` | [`REDIS_MEMORY`] | 0.9 | 60 s | warning |
/// | Redis | `cache_clients_high` | [`REDIS_CLIENTS`] | 0.8 | 60 s | warning |
///
/// The database's names and durations mirror the plan's Cloud SQL profiles;
/// the connection threshold is a share of `max_connections`, so it follows a
/// scale-up.
pub fn register_profiles(registry: &mut MetricProfileRegistry) {
    use Severity::{Critical, Warning};
    for rt in [LOCAL_INSTANCE, LOCAL_INSTANCE_GROUP] {
        let cpu = (
            "cpu_high",
            CPU_UTILIZATION,
            0.8,
            30,
            Critical,
            Aligner::Mean,
        );
        let health = (
            "health_failing",
            HEALTH_FAILING,
            0.0,
            30,
            Critical,
            Aligner::Max,
        );
        for p in [cpu, health] {
            registry.register(rt, MetricProfile::above(p.0, p.1, p.2, p.3, p.4, p.5));
        }
    }
    let stores = [
        (LOCAL_POSTGRES, "sql_cpu_high", PG_CPU, 0.75, Critical),
        (
            LOCAL_POSTGRES,
            "sql_connections_high",
            PG_CONNECTIONS,
            0.8,
            Warning,
        ),
        (LOCAL_REDIS, "cache_memory_high", REDIS_MEMORY, 0.9, Warning),
        (
            LOCAL_REDIS,
            "cache_clients_high",
            REDIS_CLIENTS,
            0.8,
            Warning,
        ),
    ];
    for (rt, name, metric, threshold, severity) in stores {
        let profile = MetricProfile::above(name, metric, threshold, 60, severity, Aligner::Mean);
        registry.register(rt, profile);
    }
}

/// Guardrails for the local cloud: restart and scale-up on every local
/// resource type, scale-out on groups, scale-ups along the local ladder.
pub fn guardrails(mut config: GuardrailConfig) -> GuardrailConfig {
    use ActionKind::{Restart, ScaleOut, ScaleUp};
    for rt in [LOCAL_INSTANCE, LOCAL_POSTGRES, LOCAL_REDIS] {
        config.allow(rt, [ScaleUp, Restart]);
    }
    config.allow(LOCAL_INSTANCE_GROUP, [ScaleUp, Restart, ScaleOut]);
    config.machine_ladder = crate::ladder::machine_ladder();
    config.monthly_prices = crate::ladder::nominal_prices();
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_local_type_has_profiles_and_actions() {
        let mut registry = MetricProfileRegistry::empty();
        register_profiles(&mut registry);
        let names = |rt| -> Vec<String> {
            registry
                .profiles(rt)
                .iter()
                .map(|p| p.name.clone())
                .collect()
        };
        assert_eq!(
            names(LOCAL_POSTGRES),
            ["sql_cpu_high", "sql_connections_high"]
        );
        assert_eq!(
            names(LOCAL_REDIS),
            ["cache_memory_high", "cache_clients_high"]
        );
        assert_eq!(names(LOCAL_INSTANCE_GROUP), ["cpu_high", "health_failing"]);
        let g = guardrails(GuardrailConfig::default());
        assert!(g
            .allowed_for(LOCAL_INSTANCE_GROUP)
            .contains(&ActionKind::ScaleOut));
        assert!(!g
            .allowed_for(LOCAL_INSTANCE)
            .contains(&ActionKind::ScaleOut));
        assert!(g.allowed_for(LOCAL_POSTGRES).contains(&ActionKind::ScaleUp));
    }
}
