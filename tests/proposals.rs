//! Proposals (`OpsAgent::propose`): an action suggested by another agent
//! passes the guardrails, then always waits for a human — even at full
//! confidence — and STOP AUTONOMY blocks it.

use infraai::ops::Proposal;
use infraai::testing::*;
use infraai::*;
use std::sync::Arc;

/// A critical alert the rule policy has no fix for: escalated.
async fn escalated(ops: &TestOps, fingerprint: &str) -> Incident {
    let mut a = alert(fingerprint, AlertState::Firing, 0.97);
    a.severity = Severity::Critical;
    a.metric = "custom.googleapis.com/queue/depth".into();
    a.policy_name = "Queue depth".into();
    let incident = ops.agent.handle_alert(&a).await.unwrap().incident.unwrap();
    assert_eq!(incident.status, IncidentStatus::Escalated);
    incident
}

fn proposal(incident: &Incident, action: Action, confidence: f64) -> Proposal {
    Proposal {
        incident_id: incident.id,
        action,
        reasoning: "the queue backs up because the instance is CPU bound".into(),
        confidence: Some(confidence),
        proposer: Actor::new("mcp:claude-code", "token:propose"),
    }
}

fn scale_to(m: &str) -> Action {
    Action::ScaleUp {
        machine_type: MachineType::new(m).unwrap(),
    }
}

#[tokio::test]
async fn a_confident_proposal_still_waits_for_a_human_then_runs_once() {
    let approver = Arc::new(RecordingApprover::default());
    let ops = TestOps::new(
        approver.clone(),
        ApproverAllowList::none().allow_all_authenticated("web"),
    )
    .await;
    let incident = escalated(&ops, "queue-1").await;
    let proposed = ops
        .agent
        .propose(&proposal(&incident, scale_to("e2-standard-2"), 0.99))
        .await
        .unwrap();
    assert_eq!(proposed.status, IncidentStatus::Pending);
    let decision = proposed.decision.unwrap();
    assert!(decision.requires_approval);
    assert!(decision
        .reasoning
        .starts_with("Proposed by mcp:claude-code:token:propose: "));
    assert_eq!(approver.requests().len(), 1, "a human was asked");
    assert!(ops.actions.executed().is_empty());
    // A second proposal on the pending incident is refused.
    let again = ops
        .agent
        .propose(&proposal(&incident, scale_to("e2-standard-2"), 0.9))
        .await;
    assert!(matches!(again, Err(Error::Conflict { .. })), "{again:?}");
    let reply = HumanReply::new(
        HumanCommand::Approve {
            incident_id: incident.id,
        },
        Actor::new("web", "alice"),
    );
    ops.agent.handle_command(&reply).await.unwrap();
    ops.settle_actions(1).await;
    assert_eq!(ops.actions.executed().len(), 1);
    let audit = ops.store.list_audit(&AuditQuery::default()).await.unwrap();
    assert!(audit
        .iter()
        .any(|r| r.actor == "mcp:claude-code:token:propose" && r.outcome == "proposal pending"));
}

#[tokio::test]
async fn the_guardrails_refuse_a_proposal_outside_the_ladder_and_stop_blocks_the_rest() {
    let approver = Arc::new(RecordingApprover::default());
    let ops = TestOps::new(
        approver.clone(),
        ApproverAllowList::none().allow_all_authenticated("web"),
    )
    .await;
    let incident = escalated(&ops, "queue-2").await;
    let refused = ops
        .agent
        .propose(&proposal(&incident, scale_to("e2-standard-16"), 0.9))
        .await;
    let Err(Error::Forbidden { detail }) = refused else {
        panic!("{refused:?}")
    };
    assert!(
        detail.contains("the guardrails refuse scale up to e2-standard-16"),
        "{detail}"
    );
    let still = ops.store.get_incident(incident.id).await.unwrap().unwrap();
    assert_eq!(still.status, IncidentStatus::Escalated);
    let not_an_action = ops
        .agent
        .propose(&proposal(&incident, Action::Ignore {}, 0.9))
        .await;
    assert!(matches!(not_an_action, Err(Error::Invalid { .. })));

    // STOP AUTONOMY: the proposal is recorded, blocked, and nothing runs.
    let stop = HumanReply::new(
        HumanCommand::StopAutonomy { reason: None },
        Actor::new("web", "alice"),
    );
    ops.agent.handle_command(&stop).await.unwrap();
    let blocked = ops
        .agent
        .propose(&proposal(&incident, scale_to("e2-standard-2"), 0.9))
        .await
        .unwrap();
    assert_eq!(blocked.status, IncidentStatus::Blocked);
    let approve = HumanReply::new(
        HumanCommand::Approve {
            incident_id: incident.id,
        },
        Actor::new("web", "alice"),
    );
    let outcome = ops.agent.handle_command(&approve).await.unwrap();
    assert!(!outcome.effective, "{}", outcome.message);
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert!(ops.actions.executed().is_empty());
    assert!(
        approver.requests().is_empty(),
        "nobody is asked while stopped"
    );
}
