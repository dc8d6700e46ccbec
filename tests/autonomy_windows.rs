//! Priced, scheduled and earned autonomy in the ops loop (in memory): the
//! daily cost cap, freeze / quiet / maintenance windows, and earned
//! autonomy's promotion and demotion from outcomes.

use chrono::{Duration, Utc};
use infraai::guardrails::{AutonomyLevel, ChangeWindow, WindowKind, WindowSchedule};
use infraai::testing::*;
use infraai::*;
use std::sync::Arc;

fn web(id: &str) -> Actor {
    Actor::new("web", id)
}

async fn agent(
    guardrails: GuardrailConfig,
    metric_after: Vec<f64>,
) -> (TestOps, Arc<RecordingApprover>) {
    let approver = Arc::new(RecordingApprover::default());
    let approvers = ApproverAllowList::none().allow_all_authenticated("web");
    let ops = TestOps::with(approver.clone(), approvers, guardrails, metric_after).await;
    (ops, approver)
}

/// An "instance down" alert on `web-1`: the rule policy restarts it
/// (confidence 0.8, nothing added to the bill).
fn down(fingerprint: &str) -> Alert {
    let mut a = alert(fingerprint, AlertState::Firing, 1.0);
    a.metric = "custom.googleapis.com/uptime_check/failed".into();
    a.policy_name = "Instance down".into();
    a.threshold = Some(0.5);
    a
}

/// A queue alert the rule policy escalates (no known fix), then a restart
/// proposed for it: a warning incident waiting for approval.
async fn proposed_restart(ops: &TestOps, fingerprint: &str) -> Incident {
    let mut queue = alert(fingerprint, AlertState::Firing, 0.97);
    queue.metric = "custom.googleapis.com/queue/depth".into();
    queue.policy_name = "Queue depth".into();
    let escalated = handle(ops, &queue).await;
    let pending = ops.agent.propose(&restart_proposal(escalated.id)).await;
    let pending = pending.unwrap();
    assert_eq!(pending.status, IncidentStatus::Pending);
    pending
}

fn restart_proposal(incident_id: IncidentId) -> infraai::ops::Proposal {
    infraai::ops::Proposal {
        incident_id,
        action: Action::Restart {},
        reasoning: "a restart is the known fix".into(),
        confidence: Some(0.9),
        proposer: Actor::new("mcp:test", "token"),
    }
}

async fn handle(ops: &TestOps, a: &Alert) -> Incident {
    let handled = ops.agent.handle_alert(a).await.expect("alert handled");
    handled.incident.expect("an incident")
}

fn window(kind: WindowKind, resources: &[&str], open_for: Duration) -> ChangeWindow {
    let now = Utc::now();
    ChangeWindow {
        id: String::new(),
        name: format!("{kind:?} test"),
        kind,
        schedule: WindowSchedule::Once {
            start: now - Duration::seconds(1),
            end: now + open_for,
        },
        resources: resources.iter().map(|r| r.to_string()).collect(),
        created_by: String::new(),
        created_at: now,
    }
}

async fn wait_until_closed(w: &ChangeWindow) {
    let WindowSchedule::Once { end, .. } = w.schedule else {
        panic!("a one-off window");
    };
    if let Ok(left) = (end - Utc::now()).to_std() {
        tokio::time::sleep(left + std::time::Duration::from_millis(50)).await;
    }
}

async fn audit_of(ops: &TestOps, step: AuditStep) -> Vec<AuditRecord> {
    let all = ops.store.list_audit(&AuditQuery::default()).await.unwrap();
    all.into_iter().filter(|r| r.step == step).collect()
}

#[tokio::test]
async fn an_alert_under_maintenance_is_recorded_then_decided_once_when_the_window_ends() {
    let (ops, approver) = agent(guardrails(), vec![0.0]).await;
    let w = ops
        .agent
        .create_window(
            window(
                WindowKind::Maintenance,
                &["web-1"],
                Duration::milliseconds(1500),
            ),
            "web:ops",
        )
        .await
        .unwrap();

    let held = handle(&ops, &down("maint-1")).await;
    assert_eq!(held.status, IncidentStatus::New, "recorded, not decided");
    assert!(held.decision.is_none());
    let about_held = || {
        let notes = approver
            .notifications()
            .into_iter()
            .filter_map(|n| n.incident_id);
        let asked = approver.requests().into_iter().map(|r| r.incident.id);
        notes.chain(asked).filter(|id| *id == held.id).count()
    };
    assert_eq!(about_held(), 0, "not notified");
    // Another resource is not under maintenance.
    let mut other = down("maint-other");
    other.resource = "web-2".into();
    assert_ne!(handle(&ops, &other).await.status, IncidentStatus::New);
    // Held again by a recovery pass: still new, the hold audited once.
    assert_eq!(
        ops.agent.process(held.id).await.unwrap().status,
        IncidentStatus::New
    );
    let holds = audit_of(&ops, AuditStep::ChangeWindow).await;
    let holds: Vec<_> = holds
        .iter()
        .filter(|r| r.incident_id == Some(held.id))
        .collect();
    assert_eq!(holds.len(), 1, "{holds:?}");
    assert!(
        holds[0].outcome.contains("under maintenance"),
        "{}",
        holds[0].outcome
    );
    assert_eq!(about_held(), 0, "not notified");

    // When the window has closed, the recovery pass decides it.
    wait_until_closed(&w).await;
    let recovered = ops.agent.recover(std::time::Duration::ZERO, None).await;
    assert!(recovered.unwrap() >= 1);
    let decided = ops.store.get_incident(held.id).await.unwrap().unwrap();
    assert_eq!(decided.status, IncidentStatus::Resolved, "{decided:?}");
    assert_eq!(
        decided.decision.unwrap().recommended_action,
        Action::Restart {}
    );
    assert_eq!(
        ops.agent.process(held.id).await.unwrap().status,
        IncidentStatus::Resolved
    );
    let decisions = audit_of(&ops, AuditStep::Decision).await;
    assert_eq!(
        decisions
            .iter()
            .filter(|r| r.incident_id == Some(held.id))
            .count(),
        1
    );
    assert_eq!(about_held(), 1, "its outcome is notified");
}

#[tokio::test]
async fn a_proposal_cannot_decide_an_incident_held_by_maintenance() {
    let (ops, approver) = agent(guardrails(), vec![0.0]).await;
    let w = window(WindowKind::Maintenance, &["web-1"], Duration::minutes(10));
    ops.agent.create_window(w, "web:ops").await.unwrap();
    let held = handle(&ops, &down("maint-proposal")).await;
    let refused = ops.agent.propose(&restart_proposal(held.id)).await;
    assert!(
        matches!(&refused, Err(Error::Conflict { detail, .. }) if detail.contains("under maintenance")),
        "{refused:?}"
    );
    assert!(approver.requests().is_empty());
    let still = ops.store.get_incident(held.id).await.unwrap().unwrap();
    assert_eq!(still.status, IncidentStatus::New);
}

#[tokio::test]
async fn an_alert_resolved_during_maintenance_is_never_decided() {
    let (ops, _) = agent(guardrails(), vec![0.0]).await;
    let w = window(
        WindowKind::Maintenance,
        &["web-1"],
        Duration::milliseconds(800),
    );
    let w = ops.agent.create_window(w, "web:ops").await.unwrap();
    let mut a = down("maint-cleared");
    let held = handle(&ops, &a).await;
    a.state = AlertState::Resolved;
    handle(&ops, &a).await;
    wait_until_closed(&w).await;
    let after = ops.agent.process(held.id).await.unwrap();
    assert_eq!(after.status, IncidentStatus::Resolved);
    assert!(after.decision.is_none(), "never decided");
}

#[tokio::test]
async fn a_freeze_asks_a_human_and_the_message_says_so() {
    let (ops, approver) = agent(guardrails(), vec![0.0]).await;
    ops.agent
        .create_window(
            window(WindowKind::Freeze, &[], Duration::minutes(10)),
            "web:ops",
        )
        .await
        .unwrap();
    let frozen = handle(&ops, &down("freeze-1")).await;
    assert_eq!(frozen.status, IncidentStatus::Pending);
    let request = approver.requests().pop().expect("an approval request");
    let lines = request.detail_lines(|s| s.to_string()).join("\n");
    assert!(
        lines.contains("Change freeze: freeze \"Freeze test\""),
        "{lines}"
    );
    assert!(lines.contains("approving runs it anyway"), "{lines}");
    // Approving still runs it.
    let reply = HumanReply::new(
        HumanCommand::Approve {
            incident_id: frozen.id,
        },
        web("ana"),
    );
    let done = ops.agent.handle_command(&reply).await.unwrap();
    assert_eq!(done.incident.unwrap().status, IncidentStatus::Resolved);
}

#[tokio::test]
async fn a_quiet_window_holds_notifications_for_one_digest_except_critical() {
    let (ops, approver) = agent(guardrails(), vec![0.0]).await;
    let w = window(WindowKind::Quiet, &[], Duration::milliseconds(1500));
    let w = ops.agent.create_window(w, "web:ops").await.unwrap();
    // Resolved alone: its "Resolved" notification is held.
    assert_eq!(
        handle(&ops, &down("quiet-1")).await.status,
        IncidentStatus::Resolved
    );
    // An escalation (held), then a proposal's approval request (held too).
    let pending = proposed_restart(&ops, "quiet-queue").await;
    assert!(approver.requests().is_empty(), "held for the digest");
    assert!(approver.notifications().is_empty(), "held for the digest");
    // A critical incident is not held.
    let mut critical = down("quiet-critical");
    critical.severity = Severity::Critical;
    critical.resource = "web-3".into();
    let other = infraai::testing::deployment_with("web-3", "e2-medium");
    ops.store.put_deployment(&other).await.unwrap();
    assert_eq!(
        handle(&ops, &critical).await.status,
        IncidentStatus::Pending
    );
    assert_eq!(approver.requests().len(), 1, "critical goes out at once");

    assert_eq!(
        ops.agent.send_closed_digests().await.unwrap(),
        0,
        "still open"
    );
    wait_until_closed(&w).await;
    assert_eq!(ops.agent.send_closed_digests().await.unwrap(), 1);
    let digest = approver.notifications();
    let digest: Vec<_> = digest
        .iter()
        .filter(|n| n.title.starts_with("Digest"))
        .collect();
    assert_eq!(digest.len(), 1, "one digest");
    assert!(digest[0].body.contains("Resolved"), "{}", digest[0].body);
    let requests = approver.requests();
    assert!(
        requests.iter().any(|r| r.incident.id == pending.id),
        "the held request goes out"
    );
    assert_eq!(
        ops.agent.send_closed_digests().await.unwrap(),
        0,
        "sent once"
    );
}

#[tokio::test]
async fn the_daily_cap_asks_a_human_once_the_days_automatic_increases_reach_it() {
    let mut config = guardrails();
    config.max_auto_daily_increase_usd = 30.0;
    let (ops, _) = agent(config, vec![0.2]).await;
    // e2-medium → e2-standard-2: +$24.45, within both caps: runs alone.
    let first = handle(&ops, &alert("cpu-day-1", AlertState::Firing, 0.95)).await;
    assert_eq!(first.status, IncidentStatus::Resolved, "{first:?}");
    // e2-standard-2 → e2-standard-4: +$48.92 < $50 per action, but the day
    // would reach $73.37 > $30.
    let second = handle(&ops, &alert("cpu-day-2", AlertState::Firing, 0.95)).await;
    assert_eq!(second.status, IncidentStatus::Pending);
    let notes = second.guardrail_notes.join("; ");
    assert!(
        notes.contains("last 24 hours") && notes.contains("$30.00"),
        "{notes}"
    );
}

/// With earned autonomy on (promotion after 3 decisions): approved and
/// resolved restarts promote the pair; the next runs alone; a failed
/// feedback check demotes it; the next asks again. Audited.
#[tokio::test]
async fn earned_autonomy_is_promoted_by_outcomes_and_demoted_by_a_failure() {
    let mut config = guardrails();
    config.earned_autonomy.enabled = true;
    config.earned_autonomy.min_decisions = 3;
    config.max_auto_actions = 100;
    // After each action: resolved, resolved, resolved, resolved, then still down.
    let (ops, _) = agent(config, vec![0.0, 0.0, 0.0, 0.0, 1.0]).await;
    for n in 0..3 {
        let i = handle(&ops, &down(&format!("earn-{n}"))).await;
        assert_eq!(i.status, IncidentStatus::Pending, "shadow asks ({n})");
        assert!(i
            .guardrail_notes
            .join(" ")
            .contains("has not earned autonomy"));
        let reply = HumanReply::new(HumanCommand::Approve { incident_id: i.id }, web("ana"));
        let done = ops.agent.handle_command(&reply).await.unwrap();
        assert_eq!(done.incident.unwrap().status, IncidentStatus::Resolved);
    }
    let records = ops.agent.autonomy().await.unwrap();
    assert_eq!(records.len(), 1);
    let r = &records[0];
    assert_eq!(
        (r.level, r.promotions, r.approved, r.resolved),
        (AutonomyLevel::Auto, 1, 3, 3)
    );

    let alone = handle(&ops, &down("earn-auto")).await;
    assert_eq!(
        alone.status,
        IncidentStatus::Resolved,
        "runs without a human"
    );
    let failed = handle(&ops, &down("earn-fail")).await;
    assert_eq!(failed.status, IncidentStatus::Unresolved);
    let r = ops.agent.autonomy().await.unwrap().remove(0);
    assert_eq!((r.level, r.demotions), (AutonomyLevel::Shadow, 1));
    // Another instance (web-1's own failed restart is not repeated: the
    // rule policy escalates it).
    let other = infraai::testing::deployment_with("web-2", "e2-medium");
    ops.store.put_deployment(&other).await.unwrap();
    let mut next = down("earn-next");
    next.resource = "web-2".into();
    let next = handle(&ops, &next).await;
    assert_eq!(next.status, IncidentStatus::Pending);
    let notes = next.guardrail_notes.join("; ");
    assert!(
        notes.contains("has not earned autonomy yet: 0/0"),
        "{notes}"
    );

    let changes = audit_of(&ops, AuditStep::Autonomy).await;
    let outcomes: Vec<_> = changes.iter().map(|r| r.outcome.as_str()).collect();
    assert_eq!(outcomes.len(), 2, "{outcomes:?}");
    assert!(outcomes[0].ends_with("shadow → auto"), "{outcomes:?}");
    assert!(outcomes[1].ends_with("auto → shadow"), "{outcomes:?}");
    assert!(changes[1]
        .reasoning
        .as_deref()
        .unwrap_or("")
        .contains("did not resolve"));
}

#[tokio::test]
async fn an_operator_pins_a_pair_and_the_pin_holds() {
    let mut config = guardrails();
    config.earned_autonomy.enabled = true;
    let (ops, _) = agent(config, vec![0.0]).await;
    let pinned = ops
        .agent
        .pin_autonomy(
            ActionKind::Restart,
            GCE_INSTANCE,
            Some(AutonomyLevel::Never),
            "web:ops",
        )
        .await
        .unwrap();
    assert!(pinned.pinned);
    let refused = handle(&ops, &down("pin-never")).await;
    assert_eq!(refused.status, IncidentStatus::Escalated);
    ops.agent
        .pin_autonomy(
            ActionKind::Restart,
            GCE_INSTANCE,
            Some(AutonomyLevel::Auto),
            "web:ops",
        )
        .await
        .unwrap();
    assert_eq!(
        handle(&ops, &down("pin-auto")).await.status,
        IncidentStatus::Resolved
    );
    let unknown = ops
        .agent
        .pin_autonomy(ActionKind::ScaleOut, GCE_INSTANCE, None, "web:ops")
        .await;
    assert!(matches!(unknown, Err(Error::Invalid { .. })), "{unknown:?}");
    let pins = audit_of(&ops, AuditStep::Autonomy).await;
    assert_eq!(pins.len(), 2);
    assert_eq!(pins[0].actor, "web:ops");
}

fn llm_scale_up(machine_type: &str) -> serde_json::Value {
    serde_json::json!({"severity": "warning",
        "recommended_action": {"type": "scale_up", "machine_type": machine_type},
        "requires_approval": false, "confidence": 0.99,
        "reasoning": "CPU is saturated; a bigger machine fixes it", "risk": "low", "precedent": null})
}

/// A confident LLM policy (answers replayed) on `web-1`, an e2-medium: two
/// steps at once are refused; one step under the $50 cap runs alone; one
/// step over it asks a human — the guardrails price every action.
#[tokio::test]
async fn confident_llm_decisions_are_bounded_and_priced() {
    use infraai::llm::{LlmDecisionPolicy, ReplayProvider};
    let store = Arc::new(MemoryStore::new());
    store
        .put_deployment(&deployment_with("web-1", "e2-medium"))
        .await
        .unwrap();
    let answers = [
        "e2-standard-4",
        "e2-standard-2",
        "e2-standard-4",
        "e2-standard-8",
    ];
    let provider = Arc::new(ReplayProvider::sequence(
        answers.iter().map(|m| llm_scale_up(m)).collect(),
    ));
    let policy = LlmDecisionPolicy::new(provider).with_cache_ttl(std::time::Duration::ZERO);
    let o = infraai::testing::llm::llm_ops_with(store, Arc::new(policy));
    let cpu = |n: usize| alert(&format!("llm-cost-{n}"), AlertState::Firing, 0.97);

    let two_steps = o.incident(&cpu(1)).await;
    assert_eq!(two_steps.status, IncidentStatus::Escalated);
    assert!(two_steps.guardrail_notes.join(" ").contains("2 steps"));
    // e2-medium → e2-standard-2: +$24.45.
    assert_eq!(o.incident(&cpu(2)).await.status, IncidentStatus::Resolved);
    // e2-standard-2 → e2-standard-4: +$48.92.
    assert_eq!(o.incident(&cpu(3)).await.status, IncidentStatus::Resolved);
    // e2-standard-4 → e2-standard-8: +$97.83, over $50.
    let over = o.incident(&cpu(4)).await;
    assert_eq!(over.status, IncidentStatus::Pending);
    let notes = over.guardrail_notes.join(" ");
    assert!(
        notes.contains("cost_cap: e2-standard-4 → e2-standard-8: +$97.83/month"),
        "{notes}"
    );
    let asked = o.approver.requests().pop().expect("asked");
    let lines = asked.detail_lines(|s| s.to_string()).join("\n");
    assert!(
        lines.contains("Cost change: e2-standard-4 → e2-standard-8: +$97.83/month"),
        "{lines}"
    );
    assert_eq!(o.actions.executed().len(), 2);
}

/// A deployment that turns earned autonomy off runs its actions alone, and
/// those earn the pair nothing: elsewhere it still asks a human.
#[tokio::test]
async fn actions_run_where_autonomy_is_off_do_not_earn_it_elsewhere() {
    let mut config = guardrails();
    config.earned_autonomy.enabled = true;
    config.max_auto_actions = 1000;
    let (ops, _) = agent(config, vec![0.0]).await;
    let deployment = ops.store.list_deployments().await.unwrap().remove(0);
    let off = infraai::guardrails::GuardrailOverrides {
        earned_autonomy: Some(false),
        ..Default::default()
    };
    (ops.agent)
        .set_deployment_guardrails(deployment.deployment_id, off, "web:ops")
        .await
        .unwrap();
    for n in 0..25 {
        let alone = handle(&ops, &down(&format!("opt-out-{n}"))).await;
        assert_eq!(alone.status, IncidentStatus::Resolved, "{n}");
    }
    let r = ops.agent.autonomy().await.unwrap().remove(0);
    assert_eq!(
        (r.level, r.resolved, r.approved, r.promotions),
        (AutonomyLevel::Shadow, 25, 0, 0)
    );
    // web-9 belongs to a deployment without the override: a human decides.
    let other = infraai::testing::deployment_with("web-9", "e2-medium");
    ops.store.put_deployment(&other).await.unwrap();
    let mut elsewhere = down("opt-out-elsewhere");
    elsewhere.resource = "web-9".into();
    let asked = handle(&ops, &elsewhere).await;
    assert_eq!(asked.status, IncidentStatus::Pending);
    assert!(asked
        .guardrail_notes
        .join(" ")
        .contains("has not earned autonomy"));
}

/// An approval request a quiet window holds does not expire while held,
/// and its wait counts from when it finally goes out.
#[tokio::test]
async fn a_held_approval_request_waits_from_when_it_goes_out() {
    let (ops, approver) = agent(guardrails(), vec![0.0]).await;
    let w = window(WindowKind::Quiet, &[], Duration::milliseconds(1200));
    let w = ops.agent.create_window(w, "web:ops").await.unwrap();
    let pending = proposed_restart(&ops, "quiet-expiry").await;
    let expire_all = std::time::Duration::ZERO;
    assert_eq!(
        ops.agent.expire_pending(expire_all).await.unwrap(),
        0,
        "held"
    );
    wait_until_closed(&w).await;
    ops.agent.send_closed_digests().await.unwrap();
    assert_eq!(approver.requests().len(), 1, "sent when the window closed");
    let hour = std::time::Duration::from_secs(3600);
    assert_eq!(
        ops.agent.expire_pending(hour).await.unwrap(),
        0,
        "an hour from now"
    );
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    assert_eq!(ops.agent.expire_pending(expire_all).await.unwrap(), 1);
    ops.agent.send_closed_digests().await.unwrap();
    let after = ops.store.get_incident(pending.id).await.unwrap().unwrap();
    assert_eq!(after.status, IncidentStatus::Expired);
}
