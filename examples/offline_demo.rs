//! Drives both agent loops offline and prints what happens.
//!
//! Real: the rule-based planner and decision policy, the metric-profile
//! registry, the guardrails, the deploy and ops loops, live events and the
//! audit trail. Stand-ins (from `infraai::testing`, until their adapter crates
//! land): Terraform is scripted, the store is in memory, the approver records
//! instead of messaging, the action handler records instead of acting, and
//! the metric re-check reads scripted values.
//!
//! ```sh
//! cargo run --example offline_demo --features testing -- "a backend API for 10k users under \$100/month"
//! ```

use infraai::testing::*;
use infraai::*;
use std::sync::Arc;
use std::time::Duration;

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let goal = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "a backend API for 10k users under $100/month".into());

    let store = Arc::new(MemoryStore::new());
    let registry = Arc::new(infraai::testing::profiles());
    let events = EventBus::new();
    let deploy = DeployAgent::new(
        DeployDeps {
            planner: Arc::new(rules::RulePlanner::new(infraai::testing::catalog())),
            generator: Arc::new(FakeGenerator),
            fixers: vec![],
            runner: Arc::new(ScriptedTfRunner::valid()),
            verifier: Arc::new(StaticVerifier::default()),
            store: store.clone(),
            registry: registry.clone(),
            events: events.clone(),
        },
        DeployConfig::default(),
    );

    println!("== DEPLOY LOOP: {goal:?}");
    let run = deploy.plan(&goal).await?;
    let plan = run.plan.clone().expect("a planned run has a plan");
    println!("plan: {}", plan.summary);
    println!(
        "  confidence {:.2}, risks: {}",
        plan.confidence,
        if plan.risk_flags.is_empty() {
            "none".into()
        } else {
            plan.risk_flags.join("; ")
        }
    );
    for r in &plan.resources {
        println!(
            "  resource {} ({:?}, {}) {}",
            r.name,
            r.kind,
            r.resource_type.as_deref().unwrap_or("-"),
            r.machine_type
                .as_ref()
                .map(|m| m.to_string())
                .unwrap_or_default()
        );
    }
    for m in &plan.monitoring {
        println!(
            "  monitoring {} on {}: {} {:?} {} for {}s ({:?})",
            m.metric_name,
            m.resource_ref,
            m.metric_path,
            m.comparison,
            m.threshold,
            m.duration_secs,
            m.severity
        );
    }

    let (_, mut rx) = events.subscribe(run.id);
    let printer = tokio::spawn(async move {
        while let Ok(ev) = rx.recv().await {
            match ev {
                RunEvent::Phase { phase, note, .. } => {
                    println!(
                        "  [phase] {phase}{}",
                        note.map(|n| format!(" — {n}")).unwrap_or_default()
                    );
                    if phase.is_terminal() {
                        break;
                    }
                }
                RunEvent::Log { line, .. } => println!("  [log]   {}", line.message),
            }
        }
    });
    let run = deploy.execute(run.id, false).await?;
    let _ = printer.await;
    let deployment_id = run
        .deployment_id
        .ok_or_else(|| Error::invalid("run", format!("{:?}", run.error)))?;
    println!("deployment {deployment_id} stored");

    println!("\n== OPS LOOP");
    let approver = Arc::new(RecordingApprover::default());
    let actions = Arc::new(RecordingActions::default());
    let ops = OpsAgent::new(
        OpsDeps {
            store: store.clone(),
            policy: Arc::new(rules::RulePolicy),
            notifier: approver.clone(),
            actions: actions.clone(),
            metrics: Arc::new(ScriptedMetrics::new(vec![0.35])),
            registry,
        },
        Guardrails::new(infraai::testing::guardrails()),
        OpsConfig {
            feedback_delay: Duration::from_millis(200),
            ..OpsConfig::default()
        },
    );
    let compute = plan
        .resources
        .iter()
        .find(|r| r.kind == ResourceKind::Compute || r.kind == ResourceKind::InstanceGroup)
        .map(|r| r.name.to_string())
        .unwrap_or_else(|| "api".into());
    let mut a = alert("demo-cpu", AlertState::Firing, 0.97);
    a.resource = compute.clone();
    a.severity = Severity::Critical;
    println!(
        "alert: {} on {}: {} = 0.97 (threshold 0.8), critical",
        a.policy_name, a.resource, a.metric
    );
    for _ in 0..3 {
        ops.handle_alert(&a).await?; // repeats are deduplicated into one incident
    }
    let incident = store
        .list_incidents(&IncidentQuery::default())
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| Error::not_found("incident"))?;
    let decision = incident.decision.clone().expect("decided");
    println!(
        "incident {} ({} alerts): {:?}\n  decision: {} (confidence {:.2}) — {}\n  guardrails: {}",
        incident.id,
        incident.occurrences,
        incident.status,
        decision.recommended_action.describe(),
        decision.confidence,
        decision.reasoning,
        incident.guardrail_notes.join("; ")
    );
    println!("  approval requested: {}", approver.requests().len());

    let approve = HumanReply::new(
        HumanCommand::Approve {
            incident_id: incident.id,
        },
        Actor::new("web", "demo-operator"),
    );
    let outcome = ops.handle_command(&approve).await?;
    println!("human approves → {}", outcome.message);
    if let Some(i) = &outcome.incident {
        println!("  note: {}", i.note.as_deref().unwrap_or("-"));
    }

    let stop = HumanReply::new(
        HumanCommand::StopAutonomy {
            reason: Some("demo".into()),
        },
        Actor::new("web", "demo-operator"),
    );
    println!(
        "STOP AUTONOMY → {}",
        ops.handle_command(&stop).await?.message
    );
    let mut b = a.clone();
    b.fingerprint = "demo-cpu-2".into();
    b.severity = Severity::Warning;
    let blocked = ops.handle_alert(&b).await?.incident.expect("incident");
    println!(
        "  a new warning alert while stopped → {:?}; executions so far: {}",
        blocked.status,
        actions.executed().len()
    );
    let resume = HumanReply::new(HumanCommand::Resume, Actor::new("web", "demo-operator"));
    println!("RESUME → {}", ops.handle_command(&resume).await?.message);

    println!("\n== AUDIT TRAIL of incident {}", incident.id);
    for r in store
        .list_audit(&AuditQuery {
            incident_id: Some(incident.id),
            ..Default::default()
        })
        .await?
    {
        println!(
            "  {} {:<18} {:<22} {}",
            r.at.format("%H:%M:%S%.3f"),
            format!("{:?}", r.step),
            r.actor,
            r.outcome
        );
    }
    Ok(())
}
