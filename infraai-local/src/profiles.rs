//! Resource type, metric names and alert profiles of the local cloud.

use infraai_core::{
    ActionKind, Aligner, GuardrailConfig, MetricProfile, MetricProfileRegistry, Severity,
};

/// The resource type of a local instance.
pub const LOCAL_INSTANCE: &str = "local_instance";
/// CPU utilization: CPU time / window / allotment.
pub const CPU_UTILIZATION: &str = "local/instance/cpu/utilization";
/// 1 while `GET /healthz` fails, 0 while it answers 200.
pub const HEALTH_FAILING: &str = "local/instance/health_failing";
/// Mean request latency in milliseconds since the process started.
pub const REQUEST_LATENCY_MS: &str = "local/instance/request_latency_ms";

/// Adds the local profiles: `cpu_high` (> 0.8 for 30 s, critical) and
/// `health_failing` (> 0 for 30 s, critical).
pub fn register_profiles(registry: &mut MetricProfileRegistry) {
    registry.register(
        LOCAL_INSTANCE,
        MetricProfile::above(
            "cpu_high",
            CPU_UTILIZATION,
            0.8,
            30,
            Severity::Critical,
            Aligner::Mean,
        ),
    );
    registry.register(
        LOCAL_INSTANCE,
        MetricProfile::above(
            "health_failing",
            HEALTH_FAILING,
            0.0,
            30,
            Severity::Critical,
            Aligner::Max,
        ),
    );
}

/// Guardrails for the local cloud: restart and scale-up allowed on local
/// instances, scale-ups along the local ladder.
pub fn guardrails(mut config: GuardrailConfig) -> GuardrailConfig {
    config.allow(LOCAL_INSTANCE, [ActionKind::ScaleUp, ActionKind::Restart]);
    config.machine_ladder = crate::ladder::machine_ladder();
    config
}
