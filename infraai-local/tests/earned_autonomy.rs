//! Earned autonomy on the local cloud, for real: eight demo-service
//! instances, each scale-up a real `terraform apply` that replaces the
//! process, each feedback check a real CPU reading.
//!
//! With the default thresholds (95% of at least 20): twenty approved and
//! resolved scale-ups promote `scale_up` on `local_instance` to `auto`; the
//! 21st CPU alert runs without a human; a scale-up whose feedback check
//! fails (the instance stays busy) demotes the pair; the next alert asks a
//! human again. The promotion and the demotion are in the audit trail and
//! the server's `/metrics` exposition.

use infraai_core::guardrails::AutonomyLevel;
use infraai_core::testing::RecordingApprover;
use infraai_core::*;
use infraai_local::profiles::{CPU_UTILIZATION, LOCAL_INSTANCE};
use std::sync::Arc;
use std::time::Duration;

mod common;
use common::*;

const INSTANCES: usize = 8;

/// A warning CPU alert on `resource` (the local profile's own `cpu_high` is
/// critical, which always asks a human whatever the autonomy).
fn cpu_alert(resource: &str, n: usize) -> Alert {
    Alert {
        source: "test".into(),
        fingerprint: format!("earned-{resource}-{n}"),
        policy_name: "cpu_high".into(),
        resource: resource.into(),
        resource_type: LOCAL_INSTANCE.into(),
        cloud: "local".into(),
        metric: CPU_UTILIZATION.into(),
        value: Some(0.95),
        threshold: Some(0.8),
        severity: Severity::Warning,
        state: AlertState::Firing,
        started_at: chrono::Utc::now(),
        labels: Default::default(),
        raw: serde_json::Value::Null,
    }
}

async fn alert(ops: &OpsAgent, resource: &str, n: usize) -> Incident {
    let handled = ops.handle_alert(&cpu_alert(resource, n)).await.unwrap();
    handled.incident.expect("an incident")
}

fn scale_up_to(incident: &Incident) -> String {
    match &incident.decision.as_ref().unwrap().recommended_action {
        Action::ScaleUp { machine_type } => machine_type.to_string(),
        other => panic!("not a scale-up: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_approved_scale_ups_earn_autonomy_and_a_failed_check_loses_it() {
    let Some(rig) = Rig::new("earned") else {
        return;
    };
    let names: Vec<String> = (1..=INSTANCES).map(|i| format!("web{i}")).collect();
    let planned = names
        .iter()
        .map(|n| resource(n, ResourceKind::Compute, 1, &[]))
        .collect();
    let run = rig
        .deploy_agent(Arc::new(Fixed(planned)))
        .deploy("eight small instances", false)
        .await
        .unwrap();
    assert_eq!(run.phase, RunPhase::Verified, "{:?}", run.error);

    let approver = Arc::new(RecordingApprover::default());
    let mut guardrails = infraai_local::profiles::guardrails(GuardrailConfig::default());
    guardrails.max_auto_actions = 100;
    assert!(guardrails.earned_autonomy.enabled, "on by default");
    assert_eq!(guardrails.earned_autonomy.min_decisions, 20);
    let (ops, _) = rig.ops_agent_with(approver.clone(), guardrails, Duration::from_secs(1));
    let level = || async {
        let records = ops.autonomy().await.unwrap();
        let r = records
            .into_iter()
            .find(|r| r.action == Some(ActionKind::ScaleUp));
        r.map(|r| (r.level, r.approved, r.resolved))
    };

    // Twenty approved and resolved scale-ups, three steps per instance
    // (small → medium → large → xlarge).
    let mut n = 0;
    for name in names.iter().take(7) {
        for _ in 0..3 {
            if n == 20 {
                break;
            }
            let asked = alert(&ops, name, n).await;
            assert_eq!(
                asked.status,
                IncidentStatus::Pending,
                "{n}: {:?}",
                asked.guardrail_notes
            );
            let notes = asked.guardrail_notes.join("; ");
            assert!(notes.contains("has not earned autonomy"), "{n}: {notes}");
            let done = approve(&ops, asked.id).await;
            assert_eq!(
                done.status,
                IncidentStatus::Resolved,
                "{n}: {:?}",
                done.note
            );
            n += 1;
        }
    }
    assert_eq!(level().await, Some((AutonomyLevel::Auto, 20, 20)));
    let asked_so_far = approver.requests().len();
    assert_eq!(asked_so_far, 20);

    // The 21st: web7 large → xlarge, without a human.
    let alone = alert(&ops, "web7", 21).await;
    assert_eq!(
        alone.status,
        IncidentStatus::Resolved,
        "{:?}",
        alone.guardrail_notes
    );
    assert_eq!(scale_up_to(&alone), "local-xlarge");
    assert_eq!(
        rig.records.read("web7").await.unwrap().machine_type,
        "local-xlarge"
    );
    assert_eq!(approver.requests().len(), asked_so_far, "nobody was asked");

    // web8 kept busy: 0.6 cores stay above 80% of a local-medium's 0.5.
    let web8 = rig.records.read("web8").await.unwrap();
    let busy = load(format!("http://127.0.0.1:{}/", web8.port), 60);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let failed = alert(&ops, "web8", 22).await;
    assert_eq!(scale_up_to(&failed), "local-medium");
    assert_eq!(
        failed.status,
        IncidentStatus::Unresolved,
        "{:?}",
        failed.note
    );
    drop(busy);
    let (lvl, _, _) = level().await.unwrap();
    assert_eq!(lvl, AutonomyLevel::Shadow, "demoted");

    // The next alert on web8: the scale-up that just failed is not
    // repeated (the rule policy weighs the precedent); a human is told and
    // nothing runs. (That a demoted pair asks again is shown in memory, in
    // tests/autonomy_windows.rs.)
    let next = alert(&ops, "web8", 23).await;
    assert_eq!(next.status, IncidentStatus::Escalated);
    let why = next.decision.map(|d| d.reasoning).unwrap_or_default();
    assert!(why.contains("did not hold"), "{why}");
    assert_eq!(approver.requests().len(), asked_so_far);

    let trail = rig.store.list_audit(&AuditQuery::default()).await.unwrap();
    let changes: Vec<&AuditRecord> = trail
        .iter()
        .filter(|r| r.step == AuditStep::Autonomy)
        .collect();
    let outcomes: Vec<&str> = changes.iter().map(|r| r.outcome.as_str()).collect();
    assert_eq!(
        outcomes,
        [
            "scale_up on local_instance: shadow → auto",
            "scale_up on local_instance: auto → shadow"
        ]
    );
    assert_eq!(changes[1].incident_id, Some(failed.id));
    // The server's /metrics exposition of the same records.
    let records = ops.autonomy().await.unwrap();
    let text = infraai_server::metrics::Metrics::default().render(None, None, Some(&records));
    let pair = "action=\"scale_up\",resource_type=\"local_instance\"";
    for line in [
        format!("infraai_autonomy_promotions_total{{{pair}}} 1"),
        format!("infraai_autonomy_demotions_total{{{pair}}} 1"),
        format!("infraai_autonomy_level{{{pair},level=\"shadow\"}} 1"),
    ] {
        assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
    }
    rig.destroy(&run).await;
}
