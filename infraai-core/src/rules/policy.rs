//! The seed's known-fix table as a decision policy.

use crate::domain::{
    Action, ActionKind, Alert, Cidr, FirewallChange, IncidentStatus, OpsDecision, Protocol,
    ResourceName, Risk, Severity,
};
use crate::traits::{DecisionContext, DecisionPolicy};
use crate::Result;
use async_trait::async_trait;

/// The offline decision policy:
///
/// | symptom | action | confidence |
/// |---|---|---|
/// | CPU high on a group that may grow | scale out by one instance | 0.85 |
/// | CPU high | scale up one step | 0.85 |
/// | connections near the limit | scale up one step (more connections) | 0.80 |
/// | memory pressure | scale up one step | 0.80 |
/// | instance unhealthy / down | restart | 0.80 |
/// | firewall blocking traffic (labels name rule, port, source range; not the whole internet) | allow the traffic | 0.75 |
/// | a disk filling up | escalate, naming the steps (no action adds disk) | 0 |
/// | anything else | escalate | 0 |
///
/// When the action is not allowed on the resource type, or there is no larger
/// machine type, it escalates instead. A group at the guardrails' maximum
/// instance count is scaled up instead of out.
///
/// Earlier incidents on the resource weigh in (`weigh_precedent`): the
/// same kind of fix that did not hold in the last day, or that resolved the
/// same alert less than an hour ago, is not tried again — the incident is
/// escalated; one that held is cited as the decision's `precedent`.
#[derive(Clone, Copy, Debug, Default)]
pub struct RulePolicy;

enum Symptom {
    Cpu,
    Connections,
    Memory,
    Unhealthy,
    FirewallBlocking,
    DiskFilling,
    Unknown,
}

fn symptom(alert: &Alert) -> Symptom {
    let text = format!("{} {}", alert.metric, alert.policy_name).to_lowercase();
    let has = |k: &str| text.contains(k);
    if has("firewall") || has("connection refused") || has("blocked") {
        Symptom::FirewallBlocking
    } else if has("cpu") {
        Symptom::Cpu
    } else if has("filesystem")
        || (has("disk") && (has("full") || has("used") || has("usage") || has("space")))
    {
        Symptom::DiskFilling
    } else if has("connections") {
        Symptom::Connections
    } else if has("memory") || has("mem_") || has("oom") {
        Symptom::Memory
    } else if has("uptime")
        || has("health")
        || has("unhealthy")
        || has("instance down")
        || text.split_whitespace().any(|w| w == "up" || w == "down")
    {
        Symptom::Unhealthy
    } else {
        Symptom::Unknown
    }
}

/// The firewall change an alert's labels ask for (`firewall_rule`, `port`,
/// `source_range`), when they are all present and valid.
fn firewall_change(alert: &Alert) -> Option<FirewallChange> {
    let rule = ResourceName::new(alert.labels.get("firewall_rule")?.clone()).ok()?;
    let port: u16 = alert.labels.get("port")?.parse().ok()?;
    let range: Cidr = alert.labels.get("source_range")?.parse().ok()?;
    Some(FirewallChange {
        rule,
        allow: true,
        protocol: Protocol::Tcp,
        ports: vec![port],
        source_ranges: vec![range],
    })
}

/// One incident as the rules see it.
struct Case<'a> {
    ctx: &'a DecisionContext,
    alert: &'a Alert,
    /// "metric = value (threshold t)", for the reasoning.
    observed: String,
}

impl Case<'_> {
    fn allowed(&self, k: ActionKind) -> bool {
        self.ctx.allowed_actions.contains(&k)
    }

    fn decision(&self, action: Action, confidence: f64, risk: Risk, why: String) -> OpsDecision {
        OpsDecision {
            severity: self.alert.severity,
            recommended_action: action,
            requires_approval: self.alert.severity == Severity::Critical,
            confidence,
            reasoning: why,
            risk,
            precedent: None,
        }
    }

    fn escalate(&self, why: String) -> OpsDecision {
        OpsDecision::escalate(self.alert.severity, why)
    }

    /// A database or cache restarts to change size: its clients lose their
    /// connections, so a human approves it.
    fn stateful(&self) -> bool {
        (self.ctx.deployment.as_ref())
            .and_then(|d| d.resource(&self.alert.resource))
            .is_some_and(|r| r.kind.is_stateful())
    }

    fn scale_up(&self, what: &str, confidence: f64) -> OpsDecision {
        let (ctx, resource, observed) = (self.ctx, &self.alert.resource, &self.observed);
        let Some(next) = &ctx.next_machine_type else {
            return self.escalate(format!("{what} on {resource}: {observed}, but there is no known larger machine type to scale to."));
        };
        if !self.allowed(ActionKind::ScaleUp) {
            let rt = &self.alert.resource_type;
            return self.escalate(format!(
                "{what} on {resource}: {observed}, but scaling up is not allowed on {rt}."
            ));
        }
        let from = (ctx.current_machine_type.as_ref())
            .map_or_else(|| "the current type".into(), |m| m.to_string());
        let action = Action::ScaleUp {
            machine_type: next.clone(),
        };
        if self.stateful() {
            let mut d = self.decision(action, confidence, Risk::High, format!(
                "{what} on {resource}: {observed}. Known fix: scale up one step from {from} to {next}; the server restarts once (its data is kept, its clients reconnect), so a human approves."));
            d.requires_approval = true;
            return d;
        }
        self.decision(action, confidence, Risk::Medium, format!(
            "{what} on {resource}: {observed}. Known fix: scale up one step from {from} to {next} (the instance restarts once)."))
    }

    /// Out when the resource is a group that may grow, else up.
    fn cpu(&self) -> OpsDecision {
        match (self.ctx.current_count, self.ctx.next_instance_count) {
            (Some(from), Some(to)) if self.allowed(ActionKind::ScaleOut) => self.decision(
                Action::ScaleOut { instances: to },
                0.85,
                Risk::Low,
                format!(
                    "CPU high on {}: {}. Known fix: add an instance to the group ({from} → {to}); no instance restarts.",
                    self.alert.resource, self.observed
                ),
            ),
            _ => self.scale_up("CPU high", 0.85),
        }
    }

    fn firewall(&self) -> OpsDecision {
        let (resource, observed) = (&self.alert.resource, &self.observed);
        match firewall_change(self.alert) {
            Some(change) if change.source_ranges.iter().any(|c| c.is_anywhere()) => self.escalate(format!(
                "Traffic to {resource} looks blocked ({observed}) and the alert asks to open port(s) {:?} to the whole internet; that is not a known fix to take on an alert's word.",
                change.ports
            )),
            Some(change) if self.allowed(ActionKind::ModifyFirewall) => self.decision(
                Action::ModifyFirewall { change },
                0.75,
                Risk::Medium,
                format!("Traffic to {resource} is blocked ({observed}). Known fix: allow it on the named rule."),
            ),
            _ => self.escalate(format!("Traffic to {resource} looks blocked ({observed}) but the alert does not name a valid rule, port and source range.")),
        }
    }
}

/// A fix of the same kind that stayed unresolved this long ago or less is
/// not repeated.
const FAILED_FIX_MEMORY: chrono::Duration = chrono::Duration::hours(24);
/// The same alert back this soon after its fix resolved it: the fix did not
/// hold.
const RELAPSE: chrono::Duration = chrono::Duration::hours(1);

/// Weighs `decision` against the earlier incidents on its resource (newest
/// first): the latest one whose decision was the same kind of action
/// decides. It stayed unresolved within [`FAILED_FIX_MEMORY`], or resolved
/// the same alert (fingerprint) within [`RELAPSE`] → escalate, citing it;
/// it resolved → keep the decision, citing it as precedent.
fn weigh_precedent(ctx: &DecisionContext, decision: OpsDecision) -> OpsDecision {
    let action = &decision.recommended_action;
    if !action.is_executable() {
        return decision;
    }
    let alert = &ctx.incident.alert;
    let Some(past) = ctx.recent_incidents.iter().find(|i| {
        (i.decision.as_ref()).is_some_and(|d| d.recommended_action.kind() == action.kind())
            && matches!(
                i.status,
                IncidentStatus::Resolved | IncidentStatus::Unresolved
            )
    }) else {
        return decision;
    };
    let ago = chrono::Utc::now() - past.updated_at;
    let when = past.updated_at.format("%Y-%m-%d %H:%M UTC");
    let what = action.describe();
    let cited = format!(
        "{when}: {what} on {} for {:?} ended {:?}{}",
        alert.resource,
        past.alert.policy_name,
        past.status,
        past.note
            .as_deref()
            .map(|n| format!(" ({n})"))
            .unwrap_or_default()
    );
    let failed = past.status == IncidentStatus::Unresolved && ago <= FAILED_FIX_MEMORY;
    let relapsed = past.status == IncidentStatus::Resolved
        && past.fingerprint == ctx.incident.fingerprint
        && ago <= RELAPSE;
    if failed || relapsed {
        let why = if failed {
            "did not hold"
        } else {
            "held for less than an hour"
        };
        let mut d = OpsDecision::escalate(decision.severity, format!(
            "{} on {}: the known fix ({what}) {why} the last time ({cited}). Repeating it is unlikely to help — a leak, a runaway process or a bad change is likelier than load; a human should look.",
            alert.policy_name, alert.resource
        ));
        d.precedent = Some(cited);
        return d;
    }
    OpsDecision {
        precedent: Some(cited),
        ..decision
    }
}

impl RulePolicy {
    fn decide_sync(&self, ctx: &DecisionContext) -> OpsDecision {
        weigh_precedent(ctx, self.decide_fresh(ctx))
    }

    fn decide_fresh(&self, ctx: &DecisionContext) -> OpsDecision {
        let alert = &ctx.incident.alert;
        let observed = match (alert.value, alert.threshold) {
            (Some(v), Some(t)) => format!("{} = {v} (threshold {t})", alert.metric),
            (Some(v), None) => format!("{} = {v}", alert.metric),
            _ => alert.metric.clone(),
        };
        let case = Case {
            ctx,
            alert,
            observed,
        };
        match symptom(alert) {
            Symptom::Cpu => case.cpu(),
            Symptom::Connections => case.scale_up("Connections near the limit", 0.80),
            Symptom::Memory => case.scale_up("Memory pressure", 0.80),
            Symptom::Unhealthy if case.allowed(ActionKind::Restart) => case.decision(
                Action::Restart {},
                0.80,
                Risk::Medium,
                format!(
                    "{} looks unhealthy ({}). Known fix: restart it.",
                    alert.resource, case.observed
                ),
            ),
            Symptom::FirewallBlocking => case.firewall(),
            // No action of ours adds disk space, and the ones we have
            // (restart, a larger machine type) only look like they might.
            Symptom::DiskFilling => case.escalate(format!(
                "The disk of {} is filling ({}). No automatic action frees disk space: \
                 a restart or a larger machine type does not add any. Free space (logs, \
                 temporary files, old releases) or grow the volume; a human should look.",
                alert.resource, case.observed
            )),
            Symptom::Unhealthy | Symptom::Unknown => case.escalate(format!(
                "No known fix for {} on {} ({}); a human should look.",
                alert.policy_name, alert.resource, case.observed
            )),
        }
    }
}

#[async_trait]
impl DecisionPolicy for RulePolicy {
    fn name(&self) -> &str {
        "rules"
    }

    async fn decide(&self, context: &DecisionContext) -> Result<OpsDecision> {
        Ok(self.decide_sync(context))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{AlertState, Incident, MachineType};

    fn ctx(metric: &str, policy: &str, severity: Severity) -> DecisionContext {
        let alert = Alert {
            source: "test".into(),
            fingerprint: "fp".into(),
            policy_name: policy.into(),
            resource: "web-1".into(),
            resource_type: "gce_instance".into(),
            cloud: "gcp".into(),
            metric: metric.into(),
            value: Some(0.97),
            threshold: Some(0.8),
            severity,
            state: AlertState::Firing,
            started_at: chrono::Utc::now(),
            labels: Default::default(),
            raw: serde_json::Value::Null,
        };
        DecisionContext {
            incident: Incident::open(alert),
            deployment: None,
            current_machine_type: Some(MachineType::new("e2-medium").unwrap()),
            next_machine_type: Some(MachineType::new("e2-standard-2").unwrap()),
            current_count: Some(1),
            next_instance_count: Some(2),
            allowed_actions: vec![
                ActionKind::ScaleUp,
                ActionKind::Restart,
                ActionKind::ModifyFirewall,
            ],
            recent_incidents: vec![],
        }
    }

    async fn decide(c: &DecisionContext) -> OpsDecision {
        RulePolicy.decide(c).await.unwrap()
    }

    #[tokio::test]
    async fn groups_scale_out_and_databases_scale_up_on_connections() {
        let mut c = ctx("local/group/cpu/utilization", "cpu_high", Severity::Warning);
        c.allowed_actions.push(ActionKind::ScaleOut);
        (c.current_count, c.next_instance_count) = (Some(2), Some(3));
        let d = decide(&c).await;
        assert_eq!(d.recommended_action, Action::ScaleOut { instances: 3 });
        assert!(d.reasoning.contains("(2 → 3)"), "{}", d.reasoning);
        // At the maximum: up instead of out.
        c.next_instance_count = None;
        assert_eq!(
            decide(&c).await.recommended_action.kind(),
            ActionKind::ScaleUp
        );

        let mut c = ctx(
            "local/postgres/connections/utilization",
            "sql_connections_high",
            Severity::Warning,
        );
        let d = decide(&c).await;
        assert_eq!(d.recommended_action.kind(), ActionKind::ScaleUp);
        assert!(
            d.reasoning.starts_with("Connections near the limit"),
            "{}",
            d.reasoning
        );
        assert!(!d.requires_approval, "not known to be a database");
        // A database restarts to scale up: a human approves, even for a warning.
        let mut deployment = crate::testing::deployment_with("web-1", "e2-medium");
        deployment.resources[0].kind = crate::domain::ResourceKind::Database;
        c.deployment = Some(deployment);
        let d = decide(&c).await;
        assert!(d.requires_approval && d.risk == Risk::High, "{d:?}");
        assert!(d.reasoning.contains("data is kept"), "{}", d.reasoning);
    }

    #[tokio::test]
    async fn known_fix_table() {
        let d = decide(&ctx(
            "compute.googleapis.com/instance/cpu/utilization",
            "High CPU",
            Severity::Critical,
        ))
        .await;
        assert_eq!(
            d.recommended_action,
            Action::ScaleUp {
                machine_type: MachineType::new("e2-standard-2").unwrap()
            }
        );
        assert_eq!(d.confidence, 0.85);
        assert!(d.requires_approval);
        assert!(
            d.reasoning.contains("e2-medium to e2-standard-2"),
            "{}",
            d.reasoning
        );

        let d = decide(&ctx(
            "agent.googleapis.com/memory/percent_used",
            "Memory pressure",
            Severity::Warning,
        ))
        .await;
        assert_eq!(d.recommended_action.kind(), ActionKind::ScaleUp);
        assert!(!d.requires_approval);

        let d = decide(&ctx(
            "monitoring.googleapis.com/uptime_check/check_passed",
            "Instance unhealthy",
            Severity::Warning,
        ))
        .await;
        assert_eq!(d.recommended_action, Action::Restart {});

        let d = decide(&ctx(
            "compute.googleapis.com/instance/disk/read_bytes_count",
            "Disk read high",
            Severity::Warning,
        ))
        .await;
        assert_eq!(d.recommended_action, Action::Escalate {});
        assert_eq!(d.confidence, 0.0);
    }

    #[tokio::test]
    async fn firewall_needs_the_labels() {
        let mut c = ctx(
            "custom/connection_refused",
            "Firewall blocking traffic",
            Severity::Warning,
        );
        assert_eq!(decide(&c).await.recommended_action, Action::Escalate {});
        let labels = &mut c.incident.alert.labels;
        labels.insert("firewall_rule".into(), "allow-app".into());
        labels.insert("port".into(), "8080".into());
        labels.insert("source_range".into(), "10.0.0.0/8".into());
        let d = decide(&c).await;
        assert_eq!(d.recommended_action.kind(), ActionKind::ModifyFirewall);
        c.incident
            .alert
            .labels
            .insert("source_range".into(), "not-a-range".into());
        assert_eq!(decide(&c).await.recommended_action, Action::Escalate {});
    }

    #[tokio::test]
    async fn escalates_when_it_cannot_act() {
        let mut c = ctx(
            "compute.googleapis.com/instance/cpu/utilization",
            "High CPU",
            Severity::Warning,
        );
        c.next_machine_type = None;
        assert_eq!(decide(&c).await.recommended_action, Action::Escalate {});
        let mut c = ctx(
            "compute.googleapis.com/instance/cpu/utilization",
            "High CPU",
            Severity::Warning,
        );
        c.allowed_actions.clear();
        assert_eq!(decide(&c).await.recommended_action, Action::Escalate {});
    }

    #[tokio::test]
    async fn a_filling_disk_escalates_with_the_steps_and_disk_reads_do_not_count() {
        let c = ctx(
            "node_filesystem_used_ratio",
            "DiskAlmostFull",
            Severity::Critical,
        );
        let d = decide(&c).await;
        assert_eq!(d.recommended_action, Action::Escalate {});
        assert!(d.reasoning.contains("grow the volume"), "{}", d.reasoning);
        let c = ctx(
            "compute.googleapis.com/instance/disk/read_bytes_count",
            "disk_read_high",
            Severity::Warning,
        );
        let d = decide(&c).await;
        assert!(d.reasoning.starts_with("No known fix"), "{}", d.reasoning);
    }

    #[tokio::test]
    async fn firewall_changes_from_an_alert_never_open_to_the_whole_internet() {
        let mut c = ctx(
            "custom/blocked",
            "Firewall blocking traffic",
            Severity::Warning,
        );
        let labels = &mut c.incident.alert.labels;
        labels.insert("firewall_rule".into(), "allow-app".into());
        labels.insert("port".into(), "3306".into());
        labels.insert("source_range".into(), "0.0.0.0/0".into());
        let d = decide(&c).await;
        assert_eq!(d.recommended_action, Action::Escalate {});
        assert!(d.reasoning.contains("whole internet"), "{}", d.reasoning);
    }

    /// An earlier incident on the resource whose decision was `action`,
    /// ended `status` `minutes` ago, with `fingerprint`.
    fn past(action: Action, status: IncidentStatus, minutes: i64, fingerprint: &str) -> Incident {
        let mut alert = ctx("m", "High CPU", Severity::Warning).incident.alert;
        alert.fingerprint = fingerprint.into();
        let mut i = Incident::open(alert);
        i.decision = Some(OpsDecision::escalate(Severity::Warning, "x"));
        if let Some(d) = i.decision.as_mut() {
            d.recommended_action = action;
        }
        i.status = status;
        i.note = Some("cpu still 0.95".into());
        i.updated_at = chrono::Utc::now() - chrono::Duration::minutes(minutes);
        i
    }

    #[tokio::test]
    async fn a_fix_that_did_not_hold_is_not_repeated_and_one_that_held_is_cited() {
        let cpu = "compute.googleapis.com/instance/cpu/utilization";
        let up = Action::ScaleUp {
            machine_type: MachineType::new("e2-medium").unwrap(),
        };
        let with = |history: Vec<Incident>| {
            let mut c = ctx(cpu, "High CPU", Severity::Warning);
            c.current_count = None;
            c.recent_incidents = history;
            c
        };
        // Unresolved an hour ago: escalated, citing it.
        let d = decide(&with(vec![past(
            up.clone(),
            IncidentStatus::Unresolved,
            60,
            "a",
        )]))
        .await;
        assert_eq!(d.recommended_action, Action::Escalate {});
        assert!(d.reasoning.contains("did not hold"), "{}", d.reasoning);
        assert!(d
            .precedent
            .as_deref()
            .is_some_and(|p| p.contains("cpu still 0.95")));
        // Unresolved two days ago: tried again.
        let d = decide(&with(vec![past(
            up.clone(),
            IncidentStatus::Unresolved,
            2880,
            "a",
        )]))
        .await;
        assert_eq!(d.recommended_action.kind(), ActionKind::ScaleUp);
        // The same alert back ten minutes after its fix resolved it.
        let d = decide(&with(vec![past(
            up.clone(),
            IncidentStatus::Resolved,
            10,
            "fp",
        )]))
        .await;
        assert_eq!(d.recommended_action, Action::Escalate {});
        assert!(d.reasoning.contains("less than an hour"), "{}", d.reasoning);
        // Another alert resolved by the same fix: kept, cited as precedent.
        let d = decide(&with(vec![past(
            up.clone(),
            IncidentStatus::Resolved,
            10,
            "other",
        )]))
        .await;
        assert_eq!(d.recommended_action.kind(), ActionKind::ScaleUp);
        assert!(
            d.precedent
                .as_deref()
                .is_some_and(|p| p.contains("Resolved")),
            "{d:?}"
        );
        // A restart that failed says nothing about a scale-up.
        let d = decide(&with(vec![past(
            Action::Restart {},
            IncidentStatus::Unresolved,
            5,
            "a",
        )]))
        .await;
        assert_eq!(d.recommended_action.kind(), ActionKind::ScaleUp);
        assert_eq!(d.precedent, None);
    }
}
