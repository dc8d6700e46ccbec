//! The built-in rules and the routing, one scenario each.

use super::*;
use crate::domain::{AlertState, Cidr, FirewallChange, Protocol, ResourceName, Risk};
use crate::testing::{guardrails, CLOUDSQL_DATABASE, GCE_INSTANCE};
use serde_json::json;

fn alert(severity: Severity) -> Alert {
    Alert {
        source: "test".into(),
        fingerprint: "fp".into(),
        policy_name: "cpu".into(),
        resource: "web-1".into(),
        resource_type: GCE_INSTANCE.into(),
        cloud: "gcp".into(),
        metric: "compute.googleapis.com/instance/cpu/utilization".into(),
        value: Some(0.95),
        threshold: Some(0.8),
        severity,
        state: AlertState::Firing,
        started_at: chrono::Utc::now(),
        labels: Default::default(),
        raw: json!({}),
    }
}

fn decision(action: Action, confidence: f64) -> OpsDecision {
    OpsDecision {
        severity: Severity::Warning,
        recommended_action: action,
        requires_approval: false,
        confidence,
        reasoning: "test".into(),
        risk: Risk::Low,
        precedent: None,
    }
}

fn mt(s: &str) -> MachineType {
    MachineType::new(s).unwrap()
}

fn eval(d: &OpsDecision, a: &Alert, current: Option<&str>) -> Verdict {
    let current = current.map(mt);
    Guardrails::new(guardrails()).evaluate(&GuardrailInput {
        decision: d,
        alert: a,
        current_machine_type: current.as_ref(),
        current_count: None,
        standing: &Standing::now(),
    })
}

/// Where a decision to take `action` with `confidence` on `a` goes.
fn route(action: Action, confidence: f64, a: &Alert, current: Option<&str>) -> Route {
    eval(&decision(action, confidence), a, current).route
}

fn scale_to(m: &str) -> Action {
    Action::ScaleUp {
        machine_type: mt(m),
    }
}

fn firewall(ports: Vec<u16>, range: &str, allow: bool) -> Action {
    Action::ModifyFirewall {
        change: FirewallChange {
            rule: ResourceName::new("allow-app").unwrap(),
            allow,
            protocol: Protocol::Tcp,
            ports,
            source_ranges: vec![range.parse::<Cidr>().unwrap()],
        },
    }
}

#[test]
fn confident_warning_one_step_up_runs_automatically() {
    let v = eval(
        &decision(scale_to("e2-standard-2"), 0.9),
        &alert(Severity::Warning),
        Some("e2-medium"),
    );
    assert_eq!(v.route, Route::AutoExecute, "{:?}", v.notes);
    assert!(v.notes.is_empty());
}

#[test]
fn critical_always_requires_approval_even_if_the_policy_says_warning() {
    let v = eval(
        &decision(scale_to("e2-standard-2"), 0.99),
        &alert(Severity::Critical),
        Some("e2-medium"),
    );
    assert_eq!(v.route, Route::AskHuman);
    assert!(v.notes[0].starts_with("critical_needs_approval"));
}

#[test]
fn low_confidence_requires_approval() {
    let v = eval(
        &decision(Action::Restart {}, 0.69),
        &alert(Severity::Warning),
        None,
    );
    assert_eq!(v.route, Route::AskHuman);
    assert!(v.notes[0].contains("below the floor 0.70"), "{:?}", v.notes);
    let r = route(Action::Restart {}, 0.7, &alert(Severity::Warning), None);
    assert_eq!(r, Route::AutoExecute);
}

#[test]
fn confidence_out_of_range_or_nan_is_denied() {
    for c in [1.5, -0.1, f64::NAN] {
        let v = eval(
            &decision(Action::Restart {}, c),
            &alert(Severity::Warning),
            None,
        );
        assert_eq!(v.route, Route::Escalate, "{c}");
        assert_eq!(v.decision.recommended_action, Action::Escalate {});
    }
}

#[test]
fn policy_asking_for_approval_is_respected() {
    let mut d = decision(Action::Restart {}, 0.9);
    d.requires_approval = true;
    assert_eq!(
        eval(&d, &alert(Severity::Info), None).route,
        Route::AskHuman
    );
}

#[test]
fn action_not_in_allow_list_is_escalated() {
    // ModifyFirewall is not allowed on Cloud SQL.
    let mut a = alert(Severity::Warning);
    a.resource_type = CLOUDSQL_DATABASE.into();
    let v = eval(
        &decision(firewall(vec![443], "10.0.0.0/8", true), 0.95),
        &a,
        None,
    );
    assert_eq!(v.route, Route::Escalate);
    assert_eq!(v.decision.recommended_action, Action::Escalate {});
    assert!(v
        .decision
        .reasoning
        .contains("not allowed on resource type"));
    // Unknown resource types allow nothing executable.
    a.resource_type = "k8s_pod".into();
    assert_eq!(route(Action::Restart {}, 0.95, &a, None), Route::Escalate);
}

#[test]
fn llm_style_decision_naming_an_unknown_action_becomes_escalation() {
    let raw = json!({"severity": "warning", "recommended_action": {"type": "delete_instance"},
        "requires_approval": false, "confidence": 0.99, "reasoning": "delete it", "risk": "low"});
    let d = OpsDecision::parse_or_escalate(&raw, Severity::Warning);
    assert_eq!(d.recommended_action, Action::Escalate {});
    assert!(d.reasoning.contains("invalid decision"), "{}", d.reasoning);
    assert_eq!(
        eval(&d, &alert(Severity::Warning), None).route,
        Route::Escalate
    );
}

#[test]
fn llm_style_decision_outside_the_ladder_becomes_escalation() {
    let raw = json!({"severity": "warning", "recommended_action": {"type": "scale_up", "machine_type": "n2-highmem-96"},
        "requires_approval": false, "confidence": 0.99, "reasoning": "go big", "risk": "low"});
    let d = OpsDecision::parse_or_escalate(&raw, Severity::Warning);
    assert_eq!(d.recommended_action.kind(), ActionKind::ScaleUp);
    let v = eval(&d, &alert(Severity::Warning), Some("e2-medium"));
    assert_eq!(v.route, Route::Escalate);
    assert!(v.notes[0].contains("not on the ladder"), "{:?}", v.notes);
}

#[test]
fn scale_up_bounds() {
    let a = alert(Severity::Warning);
    // two steps at once
    let v = eval(
        &decision(scale_to("e2-standard-4"), 0.9),
        &a,
        Some("e2-medium"),
    );
    assert_eq!(v.route, Route::Escalate);
    assert!(v.notes[0].contains("2 steps"));
    // down or sideways, or from a type off the ladder
    for (to, from) in [
        ("e2-small", "e2-medium"),
        ("e2-medium", "e2-medium"),
        ("e2-medium", "n1-standard-1"),
    ] {
        let r = route(scale_to(to), 0.9, &a, Some(from));
        assert_eq!(r, Route::Escalate, "{from} → {to}");
    }
    // unknown current: a human must approve
    let r = route(scale_to("e2-medium"), 0.9, &a, None);
    assert_eq!(r, Route::AskHuman);
    // a larger configured step
    let cfg = GuardrailConfig {
        max_ladder_steps: 2,
        ..guardrails()
    };
    let current = mt("e2-medium");
    let d = decision(scale_to("e2-standard-4"), 0.9);
    let input = GuardrailInput {
        decision: &d,
        alert: &a,
        current_machine_type: Some(&current),
        current_count: None,
        standing: &Standing::now(),
    };
    // Two steps are allowed now, but they add $73.37/month: over the cost cap.
    let v = Guardrails::new(cfg.clone()).evaluate(&input);
    assert_eq!(v.route, Route::AskHuman, "{:?}", v.notes);
    let cheap = GuardrailConfig {
        max_auto_monthly_increase_usd: 100.0,
        ..cfg
    };
    assert_eq!(
        Guardrails::new(cheap).evaluate(&input).route,
        Route::AutoExecute
    );
}

#[test]
fn the_cost_cap_lets_a_small_increase_run_and_asks_for_more_or_unknown() {
    let cfg = guardrails();
    let a = alert(Severity::Warning);
    let g = Guardrails::new(cfg.clone());
    let medium = mt("e2-medium");
    let verdict = |action: Action, current: Option<&MachineType>, count| {
        let d = decision(action, 0.95);
        g.evaluate(&GuardrailInput {
            decision: &d,
            alert: &a,
            current_machine_type: current,
            current_count: count,
            standing: &Standing::now(),
        })
    };
    // One step: e2-medium → e2-standard-2 adds $24.45/month: automatic.
    let under = verdict(scale_to("e2-standard-2"), Some(&medium), None);
    assert_eq!(under.route, Route::AutoExecute, "{:?}", under.notes);
    // The same step on 3 instances adds $73.35: a human decides.
    let over = verdict(scale_to("e2-standard-2"), Some(&medium), Some(3));
    assert_eq!(over.route, Route::AskHuman);
    assert!(
        over.notes[0]
            .contains("e2-medium → e2-standard-2 ×3: +$73.35/month is more than the $50.00/month"),
        "{:?}",
        over.notes
    );
    // A type on the ladder with no known price: a human decides.
    let mut unpriced = cfg.clone();
    unpriced.monthly_prices.remove("e2-standard-2");
    let d = decision(scale_to("e2-standard-2"), 0.95);
    let unknown = Guardrails::new(unpriced).evaluate(&GuardrailInput {
        decision: &d,
        alert: &a,
        current_machine_type: Some(&medium),
        current_count: None,
        standing: &Standing::now(),
    });
    assert_eq!(unknown.route, Route::AskHuman);
    assert_eq!(
        unknown.notes,
        ["cost_cap: no known price for scale up to e2-standard-2; a human decides what it may cost"]
    );
    // A restart costs nothing.
    assert_eq!(
        verdict(Action::Restart {}, None, None).route,
        Route::AutoExecute
    );
    let c = cfg
        .cost_change(
            &Action::ScaleOut { instances: 3 },
            Some(&mt("e2-small")),
            Some(2),
        )
        .unwrap();
    assert_eq!(c.describe(), "2 → 3 instances of e2-small: +$12.23/month");
}

#[test]
fn firewall_never_opens_ssh_or_rdp_to_the_world() {
    let a = alert(Severity::Warning);
    for (ports, range) in [
        (vec![22], "0.0.0.0/0"),
        (vec![80, 3389], "0.0.0.0/0"),
        (vec![22], "::/0"),
    ] {
        let v = eval(
            &decision(firewall(ports.clone(), range, true), 0.95),
            &a,
            None,
        );
        assert_eq!(v.route, Route::Escalate, "{ports:?} {range}");
        assert!(v.notes[0].contains("whole internet"));
    }
    // a private range, a web port to the world, or a deny rule are fine
    for (ports, range, allow) in [
        (vec![22], "10.0.0.0/8", true),
        (vec![443], "0.0.0.0/0", true),
        (vec![22], "0.0.0.0/0", false),
    ] {
        let r = route(firewall(ports, range, allow), 0.95, &a, None);
        assert_eq!(r, Route::AutoExecute, "{range}");
    }
    // structurally invalid
    for ports in [vec![0], vec![]] {
        let r = route(firewall(ports, "10.0.0.0/8", true), 0.95, &a, None);
        assert_eq!(r, Route::Escalate);
    }
}

#[test]
fn ignore_and_escalate() {
    let (warning, critical) = (alert(Severity::Warning), alert(Severity::Critical));
    assert_eq!(route(Action::Ignore {}, 0.9, &warning, None), Route::Ignore);
    let r = route(Action::Ignore {}, 0.9, &critical, None);
    assert_eq!(r, Route::Escalate, "a critical incident is never ignored");
    let r = route(Action::Escalate {}, 0.1, &alert(Severity::Info), None);
    assert_eq!(r, Route::Escalate);
}

#[test]
fn auto_action_budget() {
    let d = decision(Action::Restart {}, 0.9);
    let a = alert(Severity::Warning);
    let g = Guardrails::new(guardrails());
    let standing = |n| Standing {
        recent_actions: n,
        ..Standing::now()
    };
    let input = |s| GuardrailInput {
        decision: &d,
        alert: &a,
        current_machine_type: None,
        current_count: None,
        standing: s,
    };
    let (two, three) = (standing(2), standing(3));
    assert_eq!(g.evaluate(&input(&two)).route, Route::AutoExecute);
    let v = g.evaluate(&input(&three));
    assert_eq!(v.route, Route::AskHuman);
    assert!(v.notes[0].starts_with("auto_action_budget"));
}

#[test]
fn embedders_can_add_rules() {
    struct NoRestarts;
    impl GuardrailRule for NoRestarts {
        fn name(&self) -> &'static str {
            "no_restarts"
        }
        fn check(&self, input: &GuardrailInput<'_>, _: &GuardrailConfig) -> RuleOutcome {
            if input.decision.recommended_action == (Action::Restart {}) {
                RuleOutcome::Deny("change freeze".into())
            } else {
                RuleOutcome::Pass
            }
        }
    }
    let g = Guardrails::new(guardrails()).with_rule(Box::new(NoRestarts));
    let d = decision(Action::Restart {}, 0.9);
    let a = alert(Severity::Warning);
    let v = g.evaluate(&GuardrailInput {
        decision: &d,
        alert: &a,
        current_machine_type: None,
        current_count: None,
        standing: &Standing::now(),
    });
    assert_eq!(v.route, Route::Escalate);
    assert!(v.notes.iter().any(|n| n.contains("change freeze")));
}

#[test]
fn ladder_next_step() {
    let cfg = guardrails();
    assert_eq!(
        cfg.next_machine_type(&mt("e2-medium")),
        Some(mt("e2-standard-2"))
    );
    assert_eq!(cfg.next_machine_type(&mt("e2-standard-16")), None);
    assert_eq!(cfg.next_machine_type(&mt("n1-standard-1")), None);
}

#[test]
fn scale_out_grows_a_group_up_to_the_maximum() {
    let mut cfg = guardrails();
    cfg.allow(GCE_INSTANCE, [ActionKind::ScaleOut]);
    cfg.max_instances = 3;
    let g = Guardrails::new(cfg);
    let a = alert(Severity::Warning);
    let small = mt("e2-small");
    let verdict = |instances, current| {
        let d = decision(Action::ScaleOut { instances }, 0.9);
        g.evaluate(&GuardrailInput {
            decision: &d,
            alert: &a,
            current_machine_type: Some(&small),
            current_count: current,
            standing: &Standing::now(),
        })
    };
    assert_eq!(verdict(3, Some(2)).route, Route::AutoExecute);
    let over = verdict(4, Some(3));
    assert_eq!(over.route, Route::Escalate);
    assert!(
        over.notes[0].contains("more than the maximum of 3"),
        "{:?}",
        over.notes
    );
    let shrink = verdict(2, Some(2));
    assert_eq!(shrink.route, Route::Escalate);
    assert!(
        shrink.notes[0].contains("not more than the current 2"),
        "{:?}",
        shrink.notes
    );
    assert_eq!(verdict(3, None).route, Route::AskHuman);
    assert_eq!(g.config().next_instance_count(2), Some(3));
    assert_eq!(g.config().next_instance_count(3), None);
}

mod earned;
mod priced;
mod windows;

#[test]
fn nothing_runs_on_a_resource_no_deployment_contains() {
    let d = decision(Action::Restart {}, 0.95);
    let a = alert(Severity::Warning);
    let verdict = |managed| {
        Guardrails::new(guardrails()).evaluate(&GuardrailInput {
            decision: &d,
            alert: &a,
            current_machine_type: None,
            current_count: None,
            standing: &Standing {
                managed,
                ..Standing::now()
            },
        })
    };
    let unmanaged = verdict(false);
    assert_eq!(unmanaged.route, Route::Escalate);
    assert!(
        unmanaged
            .notes
            .iter()
            .any(|n| n.contains("managed_resource")
                && n.contains("\"web-1\" is not a resource of any deployment")),
        "{:?}",
        unmanaged.notes
    );
    let managed = verdict(true);
    assert_eq!(managed.route, Route::AutoExecute, "{:?}", managed.notes);
}

#[test]
fn data_keeping_resources_and_fixes_that_failed_lately_need_a_human() {
    let a = alert(Severity::Warning);
    let verdict = |d: &OpsDecision, standing: Standing| {
        Guardrails::new(guardrails()).evaluate(&GuardrailInput {
            decision: d,
            alert: &a,
            current_machine_type: Some(&mt("e2-medium")),
            current_count: None,
            standing: &standing,
        })
    };
    let restart = decision(Action::Restart {}, 0.95);
    let stateful = Standing {
        stateful: true,
        ..Standing::now()
    };
    let v = verdict(&restart, stateful.clone());
    assert_eq!(v.route, Route::AskHuman);
    assert!(
        v.notes.join(" ").contains("stateful_needs_approval"),
        "{:?}",
        v.notes
    );
    // A firewall change does not interrupt the database.
    let open = decision(firewall(vec![8080], "10.0.0.0/8", true), 0.95);
    assert_eq!(verdict(&open, stateful).route, Route::AutoExecute);

    let failed = Standing {
        failed_fixes: vec![(ActionKind::ScaleUp, "2026-12-07 06:00 UTC: cpu 0.95".into())],
        ..Standing::now()
    };
    let up = decision(scale_to("e2-standard-2"), 0.95);
    let v = verdict(&up, failed.clone());
    assert_eq!(v.route, Route::AskHuman);
    assert!(
        v.notes
            .join(" ")
            .contains("did not resolve \"web-1\" the last time (2026-12-07 06:00 UTC: cpu 0.95)"),
        "{:?}",
        v.notes
    );
    // A restart was not what failed.
    assert_eq!(verdict(&restart, failed).route, Route::AutoExecute);
}
