//! End-to-end tests of both loops, assembled from infraai-core on the
//! in-memory adapters: the rule-based planner and policy, the real guardrails
//! and loops, scripted Terraform, scripted metrics, recording approver and
//! action handler.

use infraai::testing::*;
use infraai::*;
use std::sync::Arc;
use std::time::Duration;

const GOAL: &str = "a backend API for 10k users under $100/month";

struct World {
    store: Arc<MemoryStore>,
    runner: Arc<ScriptedTfRunner>,
    fixer: Arc<StaticFixer>,
    deploy: DeployAgent,
}

fn world(runner: ScriptedTfRunner) -> World {
    let store = Arc::new(MemoryStore::new());
    let runner = Arc::new(runner);
    let fixer = Arc::new(StaticFixer::new(
        "static",
        TerraformFiles::single("# repaired\n"),
    ));
    let deploy = DeployAgent::new(
        DeployDeps {
            planner: Arc::new(rules::RulePlanner::new(infraai::testing::catalog())),
            generator: Arc::new(FakeGenerator),
            fixers: vec![fixer.clone()],
            runner: runner.clone(),
            verifier: Arc::new(StaticVerifier::default()),
            store: store.clone(),
            registry: Arc::new(infraai::testing::profiles()),
            events: EventBus::new(),
        },
        DeployConfig::default(),
    );
    World {
        store,
        runner,
        fixer,
        deploy,
    }
}

struct Ops {
    agent: Arc<OpsAgent>,
    approver: Arc<RecordingApprover>,
    actions: Arc<RecordingActions>,
    metrics: Arc<ScriptedMetrics>,
    policy: Arc<CountingPolicy<rules::RulePolicy>>,
}

fn ops_with(store: Arc<MemoryStore>, metric_after: Vec<f64>, actions: RecordingActions) -> Ops {
    let approver = Arc::new(RecordingApprover::default());
    let actions = Arc::new(actions);
    let metrics = Arc::new(ScriptedMetrics::new(metric_after));
    let policy = Arc::new(CountingPolicy::new(rules::RulePolicy));
    let agent = Arc::new(OpsAgent::new(
        OpsDeps {
            store,
            policy: policy.clone(),
            notifier: approver.clone(),
            actions: actions.clone(),
            metrics: metrics.clone(),
            registry: Arc::new(infraai::testing::profiles()),
        },
        Guardrails::new(infraai::testing::guardrails()),
        OpsConfig {
            feedback_delay: Duration::from_millis(10),
            approvers: ApproverAllowList::none()
                .allow_all_authenticated("web")
                .allow_user("telegram", "42"),
            ..OpsConfig::default()
        },
    ));
    Ops {
        agent,
        approver,
        actions,
        metrics,
        policy,
    }
}

fn ops(store: Arc<MemoryStore>, metric_after: Vec<f64>) -> Ops {
    ops_with(store, metric_after, RecordingActions::default())
}

/// A critical CPU alert on the deployed `api` instance.
fn cpu_alert(fingerprint: &str, severity: Severity) -> Alert {
    let mut a = alert(fingerprint, AlertState::Firing, 0.95);
    a.resource = "api".into();
    a.severity = severity;
    a
}

fn web(id: &str) -> Actor {
    Actor::new("web", id)
}

fn approve(incident: &Incident, by: &str) -> HumanReply {
    HumanReply::new(
        HumanCommand::Approve {
            incident_id: incident.id,
        },
        web(by),
    )
}

async fn deployed(w: &World) -> (Run, Deployment) {
    let run = w.deploy.deploy(GOAL, false).await.expect("deploy");
    assert_eq!(run.phase, RunPhase::Verified, "run failed: {:?}", run.error);
    let id = run.deployment_id.expect("deployment id");
    let d = w
        .store
        .get_deployment(id)
        .await
        .unwrap()
        .expect("deployment stored");
    (run, d)
}

#[tokio::test]
async fn goal_to_deployment_then_cpu_alert_to_resolution() {
    // Deploy: validation fails twice and is fixed on attempt 2.
    let w = world(ScriptedTfRunner::with_validations(vec![
        invalid_report("Reference to undeclared input variable"),
        invalid_report("Unsupported argument"),
        ValidationReport {
            valid: true,
            diagnostics: vec![],
        },
    ]));
    let planned = w.deploy.plan(GOAL).await.unwrap();
    let (backlog, mut rx) = w.deploy.events().subscribe(planned.id);
    assert_eq!(
        backlog.len(),
        1,
        "the planned run's first event is in the backlog"
    );
    let run = w.deploy.execute(planned.id, false).await.unwrap();
    assert_eq!(run.phase, RunPhase::Verified, "{:?}", run.error);

    let phases: Vec<String> = run.history.iter().map(|h| h.phase.to_string()).collect();
    assert_eq!(
        phases,
        [
            "starting",
            "initializing",
            "validating",
            "fix_attempt_1",
            "validating",
            "fix_attempt_2",
            "validating",
            "planning",
            "applying",
            "verifying",
            "finalizing",
            "verified"
        ]
    );
    assert_eq!(run.fix_attempts.len(), 2);
    assert_eq!(run.fix_attempts[1].fixer, "static");
    assert_eq!(
        run.fix_attempts[1].diagnostics[0].summary,
        "Unsupported argument"
    );
    assert_eq!(w.fixer.asked(), 2);
    assert!(run.files.as_ref().unwrap().files["main.tf"].contains("attempt 2"));
    assert_eq!(
        w.runner.calls(),
        [
            "write", "init", "validate", "write", "validate", "write", "validate", "plan", "apply",
            "output", "state"
        ]
    );

    // Live events: every phase, in order, plus the apply log lines.
    let mut live = Vec::new();
    while let Ok(ev) = rx.try_recv() {
        live.push(ev);
    }
    let live_phases: Vec<String> = live
        .iter()
        .filter_map(|e| match e {
            RunEvent::Phase { phase, .. } => Some(phase.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(live_phases, phases[1..]);
    assert!(live.iter().any(|e| matches!(e,
        RunEvent::Log { line, .. } if line.message.contains("Creation complete"))));

    // The plan's monitoring comes from the registry, bound to the compute resource.
    let plan = run.plan.as_ref().unwrap();
    assert_eq!(plan.cloud, "memory");
    let cpu = plan
        .monitoring
        .iter()
        .find(|m| m.metric_name == "cpu_high")
        .expect("cpu_high bound");
    assert_eq!(
        (
            cpu.resource_ref.as_str(),
            cpu.resource_type.as_str(),
            cpu.threshold,
            cpu.duration_secs
        ),
        ("api", "gce_instance", 0.80, 60)
    );

    // The deployment is stored with its resource map and persisted run.
    let deployment = w
        .store
        .get_deployment(run.deployment_id.unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(deployment.resource_map.get("api"), Some(&run.id));
    assert_eq!(deployment.monitoring, plan.monitoring);
    assert_eq!(deployment.services, ["api"]);
    let stored_run = w.store.get_run(run.id).await.unwrap().unwrap();
    assert_eq!(stored_run, run);

    // Operate: a critical CPU alert on the deployed instance.
    let o = ops(w.store.clone(), vec![0.35]);
    let handled = o
        .agent
        .handle_alert(&cpu_alert("cpu-api", Severity::Critical))
        .await
        .unwrap();
    assert_eq!(handled.outcome, IngestOutcome::Opened);
    let incident = handled.incident.unwrap();
    assert_eq!(incident.status, IncidentStatus::Pending);
    let decision = incident.decision.clone().unwrap();
    assert_eq!(
        decision.recommended_action,
        Action::ScaleUp {
            machine_type: MachineType::new("e2-standard-2").unwrap()
        }
    );
    assert!(incident
        .guardrail_notes
        .iter()
        .any(|n| n.starts_with("critical_needs_approval")));
    let requests = o.approver.requests();
    assert_eq!(requests.len(), 1);
    assert!(requests[0]
        .preview
        .as_ref()
        .unwrap()
        .summary
        .contains("scale up to e2-standard-2"));
    assert!(
        o.actions.executed().is_empty(),
        "nothing runs before approval"
    );

    // Approve → executed once → metric re-checked → resolved.
    let outcome = o
        .agent
        .handle_command(&approve(&incident, "alice"))
        .await
        .unwrap();
    assert!(outcome.effective);
    let after = outcome.incident.unwrap();
    assert_eq!(after.status, IncidentStatus::Resolved, "{:?}", after.note);
    assert!(after.note.unwrap().contains("back within the threshold"));
    // The outcome message names who approved.
    let told = o.approver.notifications();
    let resolved = told
        .iter()
        .find(|n| n.title == "Resolved")
        .expect("a Resolved message");
    assert!(
        resolved.body.contains("Approved by web:alice."),
        "{}",
        resolved.body
    );
    assert_eq!(o.actions.executed().len(), 1);
    assert_eq!(o.metrics.reads(), 1);
    let actions = w.store.list_actions(incident.id).await.unwrap();
    assert_eq!(actions.len(), 1);
    assert!(actions[0].success);
    let approvals = w.store.list_approvals(incident.id).await.unwrap();
    assert_eq!(approvals.len(), 1);
    assert_eq!(approvals[0].actor.label(), "web:alice");

    // The deployment now records the new machine type, so the ladder continues from it.
    let deployment = w
        .store
        .get_deployment(deployment.deployment_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        deployment
            .resource("api")
            .unwrap()
            .machine_type
            .as_ref()
            .unwrap()
            .as_str(),
        "e2-standard-2"
    );

    // Every step is audited, with who and why.
    let audit = w
        .store
        .list_audit(&AuditQuery {
            incident_id: Some(incident.id),
            ..Default::default()
        })
        .await
        .unwrap();
    let steps: Vec<AuditStep> = audit.iter().map(|r| r.step).collect();
    for step in [
        AuditStep::AlertReceived,
        AuditStep::Decision,
        AuditStep::Guardrails,
        AuditStep::ApprovalRequested,
        AuditStep::HumanCommand,
        AuditStep::Action,
        AuditStep::Feedback,
    ] {
        assert!(
            steps.contains(&step),
            "missing audit step {step:?} in {steps:?}"
        );
    }
    let decision_record = audit
        .iter()
        .find(|r| r.step == AuditStep::Decision)
        .unwrap();
    assert_eq!(decision_record.confidence, Some(0.85));
    assert!(audit.iter().any(|r| r.actor == "web:alice"));
    let run_audit = w
        .store
        .list_audit(&AuditQuery {
            run_id: Some(run.id),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(
        run_audit.len() >= 12,
        "a record per phase and the deployment"
    );
}

#[tokio::test]
async fn problem_that_remains_is_re_escalated() {
    let w = world(ScriptedTfRunner::valid());
    deployed(&w).await;
    let o = ops(w.store.clone(), vec![0.97]);
    let incident = o
        .agent
        .handle_alert(&cpu_alert("cpu-stuck", Severity::Critical))
        .await
        .unwrap()
        .incident
        .unwrap();
    let outcome = o
        .agent
        .handle_command(&approve(&incident, "alice"))
        .await
        .unwrap();
    let after = outcome.incident.unwrap();
    assert_eq!(after.status, IncidentStatus::Unresolved);
    assert!(after.note.as_deref().unwrap().contains("still breaches"));
    assert_eq!(
        o.actions.executed().len(),
        1,
        "the action ran once and is not retried blindly"
    );
    let notes = o.approver.notifications();
    assert_eq!(notes.len(), 1);
    assert!(notes[0].title.contains("Still unresolved"));
    assert_eq!(notes[0].incident_id, Some(incident.id));
    let audit = w
        .store
        .list_audit(&AuditQuery {
            incident_id: Some(incident.id),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(audit.iter().any(|r| r.step == AuditStep::Escalation));
}

#[tokio::test]
async fn failed_action_is_escalated_not_retried() {
    let w = world(ScriptedTfRunner::valid());
    deployed(&w).await;
    let o = ops_with(w.store.clone(), vec![0.3], RecordingActions::failing());
    let incident = o
        .agent
        .handle_alert(&cpu_alert("cpu-fail", Severity::Critical))
        .await
        .unwrap()
        .incident
        .unwrap();
    let after = o
        .agent
        .handle_command(&approve(&incident, "alice"))
        .await
        .unwrap()
        .incident
        .unwrap();
    assert_eq!(after.status, IncidentStatus::Unresolved);
    assert!(after.note.unwrap().contains("failed"));
    assert_eq!(o.metrics.reads(), 0, "no re-check after a failed action");
    let actions = w.store.list_actions(incident.id).await.unwrap();
    assert!(!actions[0].success);
}

#[tokio::test]
async fn stop_autonomy_while_approval_pending_executes_nothing_until_resumed() {
    let w = world(ScriptedTfRunner::valid());
    deployed(&w).await;
    let o = ops(w.store.clone(), vec![0.3]);
    let incident = o
        .agent
        .handle_alert(&cpu_alert("cpu-ks", Severity::Critical))
        .await
        .unwrap()
        .incident
        .unwrap();
    assert_eq!(incident.status, IncidentStatus::Pending);

    let stop = HumanReply::new(
        HumanCommand::StopAutonomy {
            reason: Some("incident review".into()),
        },
        Actor::new("telegram", "42"),
    );
    let stopped = o.agent.handle_command(&stop).await.unwrap();
    assert!(stopped.effective);
    let ks = w.store.kill_switch().await.unwrap();
    assert!(ks.engaged);
    assert_eq!(ks.set_by.as_deref(), Some("telegram:42"));
    // STOP rewrites no incident: the approval request stays open.
    assert_eq!(
        w.store
            .get_incident(incident.id)
            .await
            .unwrap()
            .unwrap()
            .status,
        IncidentStatus::Pending
    );

    // The pending approval arrives after STOP: refused, nothing executes.
    let refused = o
        .agent
        .handle_command(&approve(&incident, "alice"))
        .await
        .unwrap();
    assert!(!refused.effective);
    assert!(
        refused.message.contains("Autonomy is stopped"),
        "{}",
        refused.message
    );
    assert!(o.actions.executed().is_empty());

    // New work while stopped is decided but blocked, and nothing runs — even
    // a warning that would otherwise auto-execute.
    let mut warn = cpu_alert("cpu-ks-2", Severity::Warning);
    warn.value = Some(0.9);
    let blocked = o.agent.handle_alert(&warn).await.unwrap().incident.unwrap();
    assert_eq!(blocked.status, IncidentStatus::Blocked);
    assert!(o.actions.executed().is_empty());

    // Resume: the blocked incident needs approval; the pending one is still
    // pending; new work proceeds.
    let resume = HumanReply::new(HumanCommand::Resume, web("alice"));
    let resumed = o.agent.handle_command(&resume).await.unwrap();
    assert!(
        resumed.message.contains("1 previously blocked"),
        "{}",
        resumed.message
    );
    assert!(!w.store.kill_switch().await.unwrap().engaged);
    assert_eq!(
        w.store
            .get_incident(incident.id)
            .await
            .unwrap()
            .unwrap()
            .status,
        IncidentStatus::Pending
    );
    assert_eq!(
        o.approver.requests().len(),
        2,
        "the first request + a request for the blocked incident"
    );
    let approved = o
        .agent
        .handle_command(&approve(&incident, "alice"))
        .await
        .unwrap();
    assert!(approved.effective);
    assert_eq!(approved.incident.unwrap().status, IncidentStatus::Resolved);
    assert_eq!(o.actions.executed().len(), 1);

    let fresh = o
        .agent
        .handle_alert(&cpu_alert("cpu-after-resume", Severity::Critical))
        .await
        .unwrap()
        .incident
        .unwrap();
    assert_eq!(fresh.status, IncidentStatus::Pending);

    // Detached (as the HTTP and chat handlers call it), RESUME answers once
    // the incidents are pending again; their approval requests follow.
    let asked = o.approver.requests().len();
    let stop = HumanReply::new(HumanCommand::StopAutonomy { reason: None }, web("alice"));
    o.agent.handle_command(&stop).await.unwrap();
    let while_stopped = cpu_alert("cpu-while-stopped", Severity::Critical);
    let held = o.agent.handle_alert(&while_stopped).await.unwrap();
    let held = held.incident.unwrap();
    assert_eq!(held.status, IncidentStatus::Blocked);
    let resume = HumanReply::new(HumanCommand::Resume, web("alice"));
    let resumed = o.agent.handle_command_detached(&resume).await.unwrap();
    assert!(
        resumed.message.contains("1 previously blocked"),
        "{}",
        resumed.message
    );
    for id in [fresh.id, held.id] {
        let status = w.store.get_incident(id).await.unwrap().unwrap().status;
        assert_eq!(status, IncidentStatus::Pending);
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while o.approver.requests().len() < asked + 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "the re-request never came"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn confident_warning_auto_executes_and_resolved_alert_closes_incidents() {
    let w = world(ScriptedTfRunner::valid());
    deployed(&w).await;
    let o = ops(w.store.clone(), vec![0.2]);
    let auto = o
        .agent
        .handle_alert(&cpu_alert("cpu-auto", Severity::Warning))
        .await
        .unwrap()
        .incident
        .unwrap();
    assert_eq!(auto.status, IncidentStatus::Resolved);
    assert!(o.approver.requests().is_empty(), "no human needed");
    assert_eq!(o.actions.executed().len(), 1);

    // A disk alert has no known fix: escalated; its resolved alert closes it.
    let mut disk = alert("disk-1", AlertState::Firing, 2e8);
    disk.metric = "compute.googleapis.com/instance/disk/read_bytes_count".into();
    disk.policy_name = "Disk read high".into();
    let escalated = o.agent.handle_alert(&disk).await.unwrap().incident.unwrap();
    assert_eq!(escalated.status, IncidentStatus::Escalated);
    disk.state = AlertState::Resolved;
    let closed = o.agent.handle_alert(&disk).await.unwrap();
    assert_eq!(closed.outcome, IngestOutcome::Resolved);
    assert_eq!(closed.incident.unwrap().status, IncidentStatus::Resolved);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_duplicate_alerts_make_one_decision_and_duplicate_approvals_one_execution() {
    let w = world(ScriptedTfRunner::valid());
    deployed(&w).await;
    let o = ops(w.store.clone(), vec![0.3]);
    let tasks: Vec<_> = (0..1000)
        .map(|_| {
            let agent = o.agent.clone();
            tokio::spawn(async move {
                agent
                    .handle_alert(&cpu_alert("cpu-storm", Severity::Critical))
                    .await
            })
        })
        .collect();
    let mut opened = 0;
    for t in tasks {
        if t.await.unwrap().unwrap().outcome == IngestOutcome::Opened {
            opened += 1;
        }
    }
    assert_eq!(opened, 1);
    assert_eq!(o.policy.calls(), 1, "one decision for 1000 duplicates");
    let incidents = w
        .store
        .list_incidents(&IncidentQuery::default())
        .await
        .unwrap();
    assert_eq!(incidents.len(), 1);
    assert_eq!(incidents[0].occurrences, 1000);
    assert_eq!(o.approver.requests().len(), 1);

    let incident = incidents[0].clone();
    let tasks: Vec<_> = (0..50)
        .map(|n| {
            let agent = o.agent.clone();
            let reply = approve(&incident, &format!("user{}", n % 3));
            tokio::spawn(async move { agent.handle_command(&reply).await })
        })
        .collect();
    let mut effective = 0;
    for t in tasks {
        if t.await.unwrap().unwrap().effective {
            effective += 1;
        }
    }
    assert_eq!(effective, 1);
    assert_eq!(
        o.actions.executed().len(),
        1,
        "duplicate approvals execute once"
    );
    let approvals = w.store.list_approvals(incident.id).await.unwrap();
    assert_eq!(approvals.len(), 50);
    assert_eq!(approvals.iter().filter(|a| a.effective).count(), 1);
}

#[tokio::test]
async fn restart_recovery_never_re_executes_an_action_in_flight() {
    let w = world(ScriptedTfRunner::valid());
    deployed(&w).await;
    let o = ops(w.store.clone(), vec![0.3]);
    let store: Arc<dyn MetadataStore> = w.store.clone();
    // Simulate a crash mid-execution: decided, approved and claimed, never finished.
    let incident = store
        .record_alert(&cpu_alert("cpu-crash", Severity::Critical))
        .await
        .unwrap()
        .incident
        .unwrap();
    let d = OpsDecision::escalate(Severity::Critical, "x");
    store
        .record_decision(DecisionRecord::new(
            incident.id,
            &d,
            IncidentStatus::Pending,
        ))
        .await
        .unwrap();
    store
        .transition(Transition::new(
            incident.id,
            &[IncidentStatus::Pending],
            IncidentStatus::Approved,
        ))
        .await
        .unwrap();
    assert!(matches!(
        store.claim_execution(incident.id).await.unwrap(),
        Claim::Claimed(_)
    ));
    // And one alert recorded (webhook acknowledged) but never processed.
    let fresh = store
        .record_alert(&cpu_alert("cpu-unprocessed", Severity::Critical))
        .await
        .unwrap()
        .incident
        .unwrap();

    assert_eq!(
        o.agent
            .recover(std::time::Duration::ZERO, None)
            .await
            .unwrap(),
        2
    );
    let crashed = store.get_incident(incident.id).await.unwrap().unwrap();
    assert_eq!(crashed.status, IncidentStatus::Unresolved);
    assert!(crashed.note.unwrap().contains("outcome is unknown"));
    assert!(o.actions.executed().is_empty());
    assert_eq!(
        store.get_incident(fresh.id).await.unwrap().unwrap().status,
        IncidentStatus::Pending
    );
}

#[tokio::test]
async fn dry_run_stops_after_planning_and_can_then_apply() {
    let w = world(ScriptedTfRunner::valid());
    let run = w.deploy.deploy(GOAL, true).await.unwrap();
    assert_eq!(run.phase, RunPhase::Completed);
    assert!(run
        .change_set
        .as_ref()
        .unwrap()
        .summary()
        .contains("1 to create"));
    assert!(!w.runner.calls().contains(&"apply".to_string()));
    assert!(run.deployment_id.is_none());
    let applied = w.deploy.execute(run.id, false).await.unwrap();
    assert_eq!(applied.phase, RunPhase::Verified);
    assert!(applied.deployment_id.is_some());
    let again = w.deploy.execute(run.id, false).await;
    assert!(matches!(again, Err(Error::Conflict { .. })));
}

#[tokio::test]
async fn failures_end_the_run_with_a_reason() {
    // Never valid: three fix attempts, then failed.
    let w = world(ScriptedTfRunner::with_validations(vec![invalid_report(
        "broken",
    )]));
    let run = w.deploy.deploy(GOAL, false).await.unwrap();
    assert_eq!(run.phase, RunPhase::Failed);
    assert_eq!(run.fix_attempts.len(), 3);
    assert!(run
        .error
        .unwrap()
        .contains("still invalid after 3 fix attempts: broken"));

    // Apply fails: failed, nothing stored.
    let w = world(ScriptedTfRunner::valid().failing_apply("quota exceeded"));
    let run = w.deploy.deploy(GOAL, false).await.unwrap();
    assert_eq!(run.phase, RunPhase::Failed);
    assert!(run.error.unwrap().contains("quota exceeded"));
    assert!(w.store.list_deployments().await.unwrap().is_empty());

    // Verification fails: the deployment is still recorded, the run ends
    // deploy_success_verify_failed with the reason.
    let mut w = world(ScriptedTfRunner::valid());
    w.deploy = DeployAgent::new(
        DeployDeps {
            planner: Arc::new(rules::RulePlanner::new(infraai::testing::catalog())),
            generator: Arc::new(FakeGenerator),
            fixers: vec![],
            runner: w.runner.clone(),
            verifier: Arc::new(StaticVerifier::failing()),
            store: w.store.clone(),
            registry: Arc::new(infraai::testing::profiles()),
            events: EventBus::new(),
        },
        DeployConfig::default(),
    );
    let run = w.deploy.deploy(GOAL, false).await.unwrap();
    assert_eq!(run.phase, RunPhase::VerifyFailed);
    assert!(run.error.unwrap().contains("verification failed"));
    assert_eq!(w.store.list_deployments().await.unwrap().len(), 1);

    // Bad input is a clear error, not a run.
    assert!(matches!(
        w.deploy.plan("  ").await,
        Err(Error::Invalid { .. })
    ));
}

#[tokio::test]
async fn a_failing_policy_escalates_to_a_human() {
    let store = Arc::new(MemoryStore::new());
    let mut policy = MockDecisionPolicy::new();
    policy.expect_name().return_const("llm".to_string());
    policy.expect_decide().times(1).returning(|_| {
        Err(Error::backend(
            "llm",
            "decide",
            true,
            "503 from the provider",
        ))
    });
    let approver = Arc::new(RecordingApprover::default());
    let actions = Arc::new(RecordingActions::default());
    let agent = OpsAgent::new(
        OpsDeps {
            store: store.clone(),
            policy: Arc::new(policy),
            notifier: approver.clone(),
            actions: actions.clone(),
            metrics: Arc::new(ScriptedMetrics::new(vec![0.1])),
            registry: Arc::new(infraai::testing::profiles()),
        },
        Guardrails::new(infraai::testing::guardrails()),
        OpsConfig::default(),
    );
    let incident = agent
        .handle_alert(&cpu_alert("cpu-policy-down", Severity::Warning))
        .await
        .unwrap()
        .incident
        .unwrap();
    assert_eq!(incident.status, IncidentStatus::Escalated);
    let decision = incident.decision.unwrap();
    assert_eq!(decision.recommended_action, Action::Escalate {});
    assert!(decision.reasoning.contains("503 from the provider"));
    assert_eq!(approver.notifications().len(), 1);
    assert!(actions.executed().is_empty());
}

#[tokio::test]
async fn only_allow_listed_approvers_can_command_the_agent() {
    let w = world(ScriptedTfRunner::valid());
    deployed(&w).await;
    let o = ops(w.store.clone(), vec![0.3]);
    let incident = o
        .agent
        .handle_alert(&cpu_alert("cpu-authz", Severity::Critical))
        .await
        .unwrap()
        .incident
        .unwrap();
    // A Telegram user who is merely in the chat: refused and audited, nothing runs.
    let stranger = HumanReply::new(
        HumanCommand::Approve {
            incident_id: incident.id,
        },
        Actor::new("telegram", "666"),
    );
    let err = o.agent.handle_command(&stranger).await.unwrap_err();
    assert!(matches!(err, Error::Forbidden { .. }), "{err}");
    assert!(err.to_string().contains("not on the approver list"));
    let stop = HumanReply::new(
        HumanCommand::StopAutonomy { reason: None },
        Actor::new("discord", "1"),
    );
    assert!(matches!(
        o.agent.handle_command(&stop).await,
        Err(Error::Forbidden { .. })
    ));
    assert!(!w.store.kill_switch().await.unwrap().engaged);
    assert!(o.actions.executed().is_empty());
    assert_eq!(
        w.store
            .get_incident(incident.id)
            .await
            .unwrap()
            .unwrap()
            .status,
        IncidentStatus::Pending
    );
    let refused: Vec<_> = w
        .store
        .list_audit(&AuditQuery::default())
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.outcome.starts_with("refused"))
        .map(|r| r.actor)
        .collect();
    assert_eq!(refused, ["telegram:666", "discord:1"]);
}

#[tokio::test]
async fn inbound_commands_are_acknowledged_at_once_and_run_in_the_background() {
    let w = world(ScriptedTfRunner::valid());
    deployed(&w).await;
    let o = ops(w.store.clone(), vec![0.3]);
    let incident = o
        .agent
        .handle_alert(&cpu_alert("cpu-inbound", Severity::Critical))
        .await
        .unwrap()
        .incident
        .unwrap();
    let body = serde_json::to_vec(&approve(&incident, "alice")).unwrap();
    let request = InboundRequest {
        body,
        ..Default::default()
    };
    let approver = o.approver.clone();
    let results = o
        .agent
        .handle_inbound(approver.as_ref(), &request)
        .await
        .unwrap();
    assert_eq!(results.len(), 1);
    let first = results[0].as_ref().unwrap();
    assert!(first.effective);
    assert!(
        first.message.starts_with("Approved; executing scale up"),
        "{}",
        first.message
    );
    let acks = o.approver.acknowledgements();
    assert_eq!(acks[0].1, first.message);

    // The same delivery again: acknowledged, executes nothing.
    let again = o
        .agent
        .handle_inbound(approver.as_ref(), &request)
        .await
        .unwrap();
    assert!(!again[0].as_ref().unwrap().effective);

    // The background execution finishes and tells the humans.
    for _ in 0..100 {
        if w.store
            .get_incident(incident.id)
            .await
            .unwrap()
            .unwrap()
            .status
            == IncidentStatus::Resolved
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        w.store
            .get_incident(incident.id)
            .await
            .unwrap()
            .unwrap()
            .status,
        IncidentStatus::Resolved
    );
    assert_eq!(o.actions.executed().len(), 1);
    assert!(o
        .approver
        .notifications()
        .iter()
        .any(|n| n.title == "Resolved"));

    // A stranger's inbound command is refused politely, and the refusal is acknowledged.
    let stranger = HumanReply::new(HumanCommand::Resume, Actor::new("telegram", "999"));
    let request = InboundRequest {
        body: serde_json::to_vec(&stranger).unwrap(),
        ..Default::default()
    };
    let refused = o
        .agent
        .handle_inbound(approver.as_ref(), &request)
        .await
        .unwrap();
    assert!(matches!(refused[0], Err(Error::Forbidden { .. })));
    assert!(o
        .approver
        .acknowledgements()
        .last()
        .unwrap()
        .1
        .contains("not on the approver list"));
}

async fn auth_refusals(store: &MemoryStore) -> Vec<AuditRecord> {
    store
        .list_audit(&AuditQuery::default())
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.step == AuditStep::AuthRefused)
        .collect()
}

#[tokio::test]
async fn an_unauthenticated_flood_is_audited_within_a_bound() {
    let store = Arc::new(MemoryStore::new());
    let agent = OpsAgent::new(
        OpsDeps {
            store: store.clone(),
            policy: Arc::new(rules::RulePolicy),
            notifier: Arc::new(RecordingApprover::default()),
            actions: Arc::new(RecordingActions::default()),
            metrics: Arc::new(ScriptedMetrics::new(vec![0.2])),
            registry: Arc::new(infraai::testing::profiles()),
        },
        Guardrails::new(infraai::testing::guardrails()),
        OpsConfig {
            refusal_audit_limit: RefusalAuditLimit {
                per_window: 3,
                window: Duration::from_millis(300),
            },
            ..OpsConfig::default()
        },
    );
    for i in 0..50 {
        let channel = if i % 2 == 0 { "telegram" } else { "web" };
        agent
            .audit_auth_refusal(
                &AuthRefusal::new(channel, "missing or wrong secret")
                    .route("POST /ops/telegram")
                    .remote("192.0.2.1:4000"),
            )
            .await;
    }
    let first = auth_refusals(&store).await;
    assert_eq!(first.len(), 3, "only the first 3 of the window one by one");
    assert_eq!(first[0].actor, "telegram:unauthenticated");
    assert_eq!(first[0].input["route"], "POST /ops/telegram");
    assert_eq!(first[0].input["remote"], "192.0.2.1:4000");
    assert_eq!(first[0].outcome, "refused: missing or wrong secret");

    // When the window ends, one record summarizes the rest.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let all = auth_refusals(&store).await;
    assert_eq!(all.len(), 4, "{all:?}");
    let summary = &all[3];
    assert_eq!(summary.input["count"], 47);
    assert_eq!(summary.input["by_channel"]["telegram"], 23);
    assert_eq!(summary.input["by_channel"]["web"], 24);
    assert!(
        summary.outcome.starts_with("47 more"),
        "{}",
        summary.outcome
    );

    // A new window audits one by one again.
    agent
        .audit_auth_refusal(&AuthRefusal::new("discord", "invalid signature"))
        .await;
    assert_eq!(auth_refusals(&store).await.len(), 5);
}

#[tokio::test]
async fn an_approval_after_a_rejection_or_an_expiry_says_so_and_executes_nothing() {
    let w = world(ScriptedTfRunner::valid());
    deployed(&w).await;
    let o = ops(w.store.clone(), vec![0.3]);
    let open = |fp: &'static str| {
        let agent = o.agent.clone();
        async move {
            agent
                .handle_alert(&cpu_alert(fp, Severity::Critical))
                .await
                .unwrap()
                .incident
                .unwrap()
        }
    };

    // Rejected, then approved: says it was rejected.
    let rejected = open("cpu-late-reject").await;
    let reject = HumanReply::new(
        HumanCommand::Reject {
            incident_id: rejected.id,
            reason: Some("not now".into()),
        },
        web("alice"),
    );
    assert!(o.agent.handle_command(&reject).await.unwrap().effective);
    let late = o
        .agent
        .handle_command(&approve(&rejected, "bob"))
        .await
        .unwrap();
    assert!(!late.effective);
    assert_eq!(
        late.message,
        "Nothing to approve: the incident is rejected."
    );
    assert_eq!(late.incident.unwrap().status, IncidentStatus::Rejected);

    // Left pending too long: expire_pending expires it, and a late approval says so.
    let stale = open("cpu-late-expire").await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let fresh_enough = o
        .agent
        .expire_pending(Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(fresh_enough, 0, "nothing has waited an hour");
    assert_eq!(
        o.agent
            .expire_pending(Duration::from_millis(10))
            .await
            .unwrap(),
        1
    );
    let expired = w.store.get_incident(stale.id).await.unwrap().unwrap();
    assert_eq!(expired.status, IncidentStatus::Expired);
    let late = o
        .agent
        .handle_command(&approve(&stale, "bob"))
        .await
        .unwrap();
    assert!(!late.effective);
    assert_eq!(late.message, "Nothing to approve: the incident is expired.");
    let trail = w
        .store
        .list_audit(&AuditQuery {
            incident_id: Some(stale.id),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(trail
        .iter()
        .any(|r| r.outcome.starts_with("expired: no answer")));

    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(o.actions.executed().is_empty(), "nothing executed");
    for id in [rejected.id, stale.id] {
        let approvals = w.store.list_approvals(id).await.unwrap();
        assert!(approvals
            .iter()
            .filter(|a| a.approved)
            .all(|a| !a.effective));
    }
}
