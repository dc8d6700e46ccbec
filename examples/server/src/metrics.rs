//! Prometheus counters, rendered by hand in the text exposition format.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

/// A labelled counter family: label set (already rendered) → value.
#[derive(Default)]
struct Family(Mutex<BTreeMap<String, f64>>);

thread_local! {
    /// The label set being looked up, rendered here so that counting an
    /// existing series allocates nothing.
    static KEY: RefCell<String> = const { RefCell::new(String::new()) };
}

impl Family {
    fn add(&self, pairs: &[(&str, &str)], v: f64) {
        KEY.with_borrow_mut(|key| {
            key.clear();
            write_labels(key, pairs);
            let mut series = self.0.lock().unwrap_or_else(|p| p.into_inner());
            match series.get_mut(key.as_str()) {
                Some(x) => *x += v,
                None => {
                    series.insert(key.clone(), v);
                }
            }
        });
    }

    fn render(&self, out: &mut String, name: &str, help: &str, kind: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, v) in self.0.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let _ = writeln!(out, "{name}{labels} {v}");
        }
    }
}

/// Renders `{k="v",…}` (nothing for no pairs), escaping the values.
fn write_labels(out: &mut String, pairs: &[(&str, &str)]) {
    for (i, (k, v)) in pairs.iter().enumerate() {
        out.push(if i == 0 { '{' } else { ',' });
        out.push_str(k);
        out.push_str("=\"");
        for c in v.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    if !pairs.is_empty() {
        out.push('}');
    }
}

/// The server's counters.
#[derive(Default)]
pub struct Metrics {
    alerts: Family,
    decisions: Family,
    approvals: Family,
    executions: Family,
    run_phases: Family,
    requests: Family,
    latency_sum: Family,
    latency_count: Family,
    llm_tokens: Family,
    llm_calls: Family,
}

impl Metrics {
    /// An alert was recorded with this ingest outcome (`opened`, `repeated`, …).
    pub fn alert(&self, outcome: &str) {
        self.alerts.add(&[("outcome", outcome)], 1.0);
    }
    /// A decision was made.
    pub fn decision(&self, action: &str, route: &str) {
        self.decisions
            .add(&[("action", action), ("status", route)], 1.0);
    }
    /// A human command arrived.
    pub fn approval(&self, command: &str, effective: bool) {
        let e = if effective { "true" } else { "false" };
        self.approvals
            .add(&[("command", command), ("effective", e)], 1.0);
    }
    /// An action finished (`executed`, `resolved`, `unresolved`, `failed`, `blocked`).
    pub fn execution(&self, outcome: &str) {
        self.executions.add(&[("outcome", outcome)], 1.0);
    }
    /// A run entered a phase.
    pub fn run_phase(&self, phase: &str) {
        self.run_phases.add(&[("phase", phase)], 1.0);
    }
    /// A request was answered.
    pub fn request(&self, method: &str, route: &str, status: &str, seconds: f64) {
        self.requests.add(
            &[("method", method), ("route", route), ("status", status)],
            1.0,
        );
        let l = [("method", method), ("route", route)];
        self.latency_sum.add(&l, seconds);
        self.latency_count.add(&l, 1.0);
    }

    /// An LLM exchange ended (`ok`, `invalid`, `error`, `over_budget`,
    /// `cached`) and spent these tokens.
    pub fn llm_call(&self, component: &str, outcome: &str, prompt: u64, completion: u64) {
        self.llm_calls
            .add(&[("component", component), ("outcome", outcome)], 1.0);
        // u64 → f64 is exact up to 2^53 tokens.
        self.llm_tokens.add(&[("kind", "prompt")], prompt as f64);
        self.llm_tokens
            .add(&[("kind", "completion")], completion as f64);
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        self.alerts.render(
            &mut out,
            "infraai_alerts_received_total",
            "Alerts recorded, by ingest outcome (repeated = deduplicated).",
            "counter",
        );
        self.decisions.render(
            &mut out,
            "infraai_decisions_total",
            "Decisions made, by recommended action and routing.",
            "counter",
        );
        self.approvals.render(
            &mut out,
            "infraai_human_commands_total",
            "Human commands received over the API, by command.",
            "counter",
        );
        self.executions.render(
            &mut out,
            "infraai_executions_total",
            "Incidents reaching an execution outcome, as observed by the server.",
            "counter",
        );
        self.run_phases.render(
            &mut out,
            "infraai_run_phases_total",
            "Deploy-run phase entries.",
            "counter",
        );
        self.requests.render(
            &mut out,
            "infraai_http_requests_total",
            "HTTP requests answered.",
            "counter",
        );
        self.latency_sum.render(
            &mut out,
            "infraai_http_request_duration_seconds_sum",
            "Total request latency.",
            "counter",
        );
        self.latency_count.render(
            &mut out,
            "infraai_http_request_duration_seconds_count",
            "Requests timed.",
            "counter",
        );
        self.llm_tokens.render(
            &mut out,
            "infraai_llm_tokens_total",
            "LLM tokens spent by the planner, decision policy and fixer, by kind.",
            "counter",
        );
        self.llm_calls.render(
            &mut out,
            "infraai_llm_calls_total",
            "LLM exchanges by component and outcome (over_budget and cached made no call).",
            "counter",
        );
        out
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
    fn renders_labelled_counters() {
        let m = Metrics::default();
        m.alert("opened");
        m.alert("opened");
        m.request("GET", "/x\"y", "200", 0.5);
        m.request("GET", "/x\"y", "200", 0.5);
        let text = m.render();
        assert!(text.contains("infraai_alerts_received_total{outcome=\"opened\"} 2"));
        assert!(text.contains(
            "infraai_http_requests_total{method=\"GET\",route=\"/x\\\"y\",status=\"200\"} 2"
        ));
    }
}
