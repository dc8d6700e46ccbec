//! The server's Prometheus metrics, kept and encoded (OpenMetrics text) by
//! `prometheus-client`.

use infraai_core::guardrails::AutonomyRecord;
use infraai_core::{ActionKind, IncidentCounts};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// A label set: `N` names with their values.
type Labels<const N: usize> = [(&'static str, String); N];
/// Counters by label set.
type Counters<const N: usize> = Family<Labels<N>, Counter>;

/// Request latency buckets, in seconds (Prometheus' default buckets).
const LATENCY_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Store operations take from tens of microseconds (a cached read) to a
/// few milliseconds (a synced commit): finer buckets than a request's.
const STORE_BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

/// The server's counters and the request-latency histogram.
pub struct Metrics {
    alerts: Counters<1>,
    decisions: Counters<2>,
    approvals: Counters<2>,
    executions: Counters<1>,
    run_phases: Counters<1>,
    requests: Counters<3>,
    latency: Family<Labels<2>, Histogram, fn() -> Histogram>,
    store_ops: Family<Labels<2>, Histogram, fn() -> Histogram>,
    llm_tokens: Counters<1>,
    llm_calls: Counters<2>,
    mcp_calls: Counters<2>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            alerts: Family::default(),
            decisions: Family::default(),
            approvals: Family::default(),
            executions: Family::default(),
            run_phases: Family::default(),
            requests: Family::default(),
            latency: Family::new_with_constructor(|| Histogram::new(LATENCY_BUCKETS)),
            store_ops: Family::new_with_constructor(|| Histogram::new(STORE_BUCKETS)),
            llm_tokens: Family::default(),
            llm_calls: Family::default(),
            mcp_calls: Family::default(),
        }
    }
}

impl Metrics {
    /// An alert was recorded with this ingest outcome (`opened`, `repeated`, …).
    pub fn alert(&self, outcome: &str) {
        self.alerts
            .get_or_create(&[("outcome", outcome.into())])
            .inc();
    }
    /// A decision was made.
    pub fn decision(&self, action: &str, route: &str) {
        let labels = [("action", action.into()), ("status", route.into())];
        self.decisions.get_or_create(&labels).inc();
    }
    /// A human command arrived.
    pub fn approval(&self, command: &str, effective: bool) {
        let labels = [
            ("command", command.into()),
            ("effective", effective.to_string()),
        ];
        self.approvals.get_or_create(&labels).inc();
    }
    /// An action finished (`executed`, `resolved`, `unresolved`, `failed`, `blocked`).
    pub fn execution(&self, outcome: &str) {
        self.executions
            .get_or_create(&[("outcome", outcome.into())])
            .inc();
    }
    /// A run entered a phase.
    pub fn run_phase(&self, phase: &str) {
        self.run_phases
            .get_or_create(&[("phase", phase.into())])
            .inc();
    }
    /// A request was answered.
    pub fn request(&self, method: &str, route: &str, status: &str, seconds: f64) {
        let labels = [
            ("method", method.into()),
            ("route", route.into()),
            ("status", status.into()),
        ];
        self.requests.get_or_create(&labels).inc();
        let [method, route, _] = labels;
        self.latency
            .get_or_create(&[method, route])
            .observe(seconds);
    }

    /// An LLM exchange ended (`ok`, `invalid`, `error`, `over_budget`,
    /// `cached`) and spent these tokens.
    pub fn llm_call(&self, component: &str, outcome: &str, prompt: u64, completion: u64) {
        let labels = [("component", component.into()), ("outcome", outcome.into())];
        self.llm_calls.get_or_create(&labels).inc();
        self.llm_tokens
            .get_or_create(&[("kind", "prompt".into())])
            .inc_by(prompt);
        self.llm_tokens
            .get_or_create(&[("kind", "completion".into())])
            .inc_by(completion);
    }

    /// An MCP tool call ended (`ok`, `refused`, `invalid`, `not_found`,
    /// `conflict`, `error`, `forbidden`, `rate_limited`).
    pub fn mcp_call(&self, tool: &str, outcome: &str) {
        let labels = [("tool", tool.into()), ("outcome", outcome.into())];
        self.mcp_calls.get_or_create(&labels).inc();
    }

    /// The exposition text: the counters, then the gauges read from the
    /// store at scrape time (`counts`, the kill-switch and the earned
    /// autonomy records, each left out when the store did not answer).
    pub fn render(
        &self,
        counts: Option<IncidentCounts>,
        autonomy_stopped: Option<bool>,
        earned: Option<&[AutonomyRecord]>,
    ) -> String {
        let mut r = Registry::default();
        let help = "Alerts recorded, by ingest outcome (repeated = deduplicated)";
        r.register("infraai_alerts_received", help, self.alerts.clone());
        let help = "Decisions made, by recommended action and routing";
        r.register("infraai_decisions", help, self.decisions.clone());
        let help = "Human commands received over the API, by command";
        r.register("infraai_human_commands", help, self.approvals.clone());
        let help = "Incidents reaching an execution outcome, as observed by the server";
        r.register("infraai_executions", help, self.executions.clone());
        r.register(
            "infraai_run_phases",
            "Deploy-run phase entries",
            self.run_phases.clone(),
        );
        r.register(
            "infraai_http_requests",
            "HTTP requests answered",
            self.requests.clone(),
        );
        let latency = self.latency.clone();
        r.register(
            "infraai_http_request_duration_seconds",
            "HTTP request latency",
            latency,
        );
        let help = "Store operation latency, by operation and result (ok, conflict, error)";
        r.register(
            "infraai_store_op_duration_seconds",
            help,
            self.store_ops.clone(),
        );
        let help = "LLM tokens spent by the planner, decision policy and fixer, by kind";
        r.register("infraai_llm_tokens", help, self.llm_tokens.clone());
        let help = "LLM exchanges by component and outcome (over_budget and cached made no call)";
        r.register("infraai_llm_calls", help, self.llm_calls.clone());
        let help = "MCP tool calls by tool and outcome";
        r.register("infraai_mcp_calls", help, self.mcp_calls.clone());
        if let Some(counts) = counts {
            let incidents = Family::<Labels<1>, Gauge>::default();
            for (status, n) in counts.by_status {
                gauge(&incidents, ("status", status.to_string()), n);
            }
            r.register("infraai_incidents", "Incidents in the store, by status (executed/resolved/unresolved are execution outcomes)", incidents);
            let decisions = Family::<Labels<1>, Gauge>::default();
            for (kind, n) in counts.by_action {
                gauge(&decisions, ("action", action_name(kind)), n);
            }
            r.register(
                "infraai_decisions",
                "Decisions in the store, by recommended action",
                decisions,
            );
        }
        if let Some(stopped) = autonomy_stopped {
            let g = Gauge::<i64>::default();
            g.set(i64::from(stopped));
            r.register(
                "infraai_autonomy_stopped",
                "1 while STOP AUTONOMY is engaged",
                g,
            );
        }
        if let Some(records) = earned {
            register_earned(&mut r, records);
        }
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &r);
        out
    }
}

/// Earned autonomy from the store: each pair's level (1 on the label of its
/// level), and its promotions and demotions so far.
fn register_earned(r: &mut Registry, records: &[AutonomyRecord]) {
    let levels = Family::<Labels<3>, Gauge>::default();
    let promotions = Family::<Labels<2>, Counter>::default();
    let demotions = Family::<Labels<2>, Counter>::default();
    for record in records {
        let action = record
            .action
            .map_or("unknown", ActionKind::name)
            .to_string();
        let pair = [
            ("action", action),
            ("resource_type", record.resource_type.clone()),
        ];
        let [a, t] = pair.clone();
        levels
            .get_or_create(&[a, t, ("level", record.level.name().into())])
            .set(1);
        promotions.get_or_create(&pair).inc_by(record.promotions);
        demotions.get_or_create(&pair).inc_by(record.demotions);
    }
    let help =
        "Earned autonomy: 1 on each (action, resource type) pair's level (shadow, auto, never)";
    r.register("infraai_autonomy_level", help, levels);
    let help = "Earned-autonomy promotions to auto, by pair";
    r.register("infraai_autonomy_promotions", help, promotions);
    let help = "Earned-autonomy demotions to shadow, by pair";
    r.register("infraai_autonomy_demotions", help, demotions);
}

fn gauge(family: &Family<Labels<1>, Gauge>, label: (&'static str, String), n: u64) {
    family
        .get_or_create(&[label])
        .set(i64::try_from(n).unwrap_or(i64::MAX));
}

/// The snake-case name of an action kind (`scale_up`, `restart`, …).
pub fn action_name(kind: infraai_core::ActionKind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| "unknown".into())
}

/// The execution outcome a committed transition stands for, if any:
/// `executed` (the action ran), `failed` (the action failed, or a restart
/// interrupted it so its outcome is unknown), `resolved` / `unresolved` (the
/// metric re-check after the action).
pub fn execution_outcome(
    from: &[infraai_core::IncidentStatus],
    to: infraai_core::IncidentStatus,
) -> Option<&'static str> {
    use infraai_core::IncidentStatus::*;
    match (from, to) {
        ([Executing], Executed) => Some("executed"),
        ([Executing], Unresolved) => Some("failed"),
        ([Executed], Resolved) => Some("resolved"),
        ([Executed], Unresolved) => Some("unresolved"),
        _ => None,
    }
}

/// Counts the ops loop's decisions (by action and routed status) and
/// execution outcomes (a move into one, a claim refused by the kill-switch)
/// as the store commits them, whichever path produced them.
impl infraai_core::StoreObserver for Metrics {
    fn observe(&self, op: &infraai_core::StoreOp<'_>) {
        use infraai_core::{Claim, Committed, Error};
        let result = match op.result {
            Ok(_) => "ok",
            Err(Error::Conflict { .. }) => "conflict",
            Err(_) => "error",
        };
        let labels = [("op", op.name.into()), ("result", result.into())];
        self.store_ops
            .get_or_create(&labels)
            .observe(op.elapsed.as_secs_f64());
        match op.result {
            Ok(Committed::Decided(incident)) => {
                if let Some(d) = &incident.decision {
                    let action = action_name(d.recommended_action.kind());
                    self.decision(&action, &incident.status.to_string());
                }
            }
            Ok(Committed::Moved { from, incident }) => {
                if let Some(outcome) = execution_outcome(from, incident.status) {
                    self.execution(outcome);
                }
            }
            Ok(Committed::Claimed(Claim::Blocked(_))) => self.execution("blocked"),
            _ => {}
        }
    }
}

impl infraai_core::llm::LlmObserver for Metrics {
    fn observe(&self, report: &infraai_core::llm::LlmCallReport) {
        self.llm_call(
            report.component,
            report.outcome.as_str(),
            report.usage.prompt_tokens,
            report.usage.completion_tokens,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_execution_transitions_are_outcomes() {
        use infraai_core::IncidentStatus::*;
        assert_eq!(execution_outcome(&[Executing], Executed), Some("executed"));
        assert_eq!(execution_outcome(&[Executing], Unresolved), Some("failed"));
        assert_eq!(execution_outcome(&[Executed], Resolved), Some("resolved"));
        assert_eq!(
            execution_outcome(&[Executed], Unresolved),
            Some("unresolved")
        );
        assert_eq!(execution_outcome(&[Pending], Approved), None);
        assert_eq!(execution_outcome(&[Pending, Blocked], Rejected), None);
    }

    #[tokio::test]
    async fn observed_store_passes_the_conformance_suite_and_counts() {
        use infraai_core::testing::MemoryStore;
        use std::sync::Arc;
        let metrics = Arc::new(Metrics::default());
        let inner = Arc::new(MemoryStore::new());
        let store = infraai_core::Observed::new(inner, metrics.clone());
        infraai_core::testing::conformance::run_all(Arc::new(store)).await;
        // The suite decides and claims incidents: the counters saw it.
        let text = metrics.render(None, None, None);
        assert!(text.contains("infraai_decisions_total{action="), "{text}");
        // It also claims an incident while the kill-switch is engaged.
        assert!(
            text.contains("infraai_executions_total{outcome=\"blocked\"}"),
            "{text}"
        );
        // Every operation is timed, with its result: the suite's stale
        // setting writes are conflicts.
        for series in [
            "{op=\"record_alerts\",result=\"ok\"}",
            "{op=\"put_setting\",result=\"conflict\"}",
        ] {
            let count = format!("infraai_store_op_duration_seconds_count{series} ");
            assert!(text.contains(&count), "{count} missing: {text}");
        }
    }

    #[test]
    fn renders_labelled_counters_and_store_gauges() {
        let m = Metrics::default();
        m.alert("opened");
        m.alert("opened");
        m.request("GET", "/x\"y", "200", 0.5);
        m.request("GET", "/x\"y", "200", 0.5);
        let text = m.render(None, Some(true), None);
        assert!(text.contains("infraai_alerts_received_total{outcome=\"opened\"} 2"));
        assert!(text.contains(
            "infraai_http_requests_total{method=\"GET\",route=\"/x\\\"y\",status=\"200\"} 2"
        ));
        assert!(text.contains(
            "infraai_http_request_duration_seconds_count{method=\"GET\",route=\"/x\\\"y\"} 2"
        ));
        assert!(text.contains("infraai_autonomy_stopped 1\n"));
        assert!(!text.contains("infraai_incidents"));
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
