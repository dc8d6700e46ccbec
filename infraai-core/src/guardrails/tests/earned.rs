//! Earned autonomy: promotion from measured outcomes, demotion, pins, and
//! the rule that no policy can talk past.

use super::*;
use crate::guardrails::{AutonomyLevel, AutonomyRecord, EarnedAutonomy, Outcome};
use chrono::Utc;

fn earning() -> GuardrailConfig {
    let mut cfg = guardrails();
    cfg.earned_autonomy.enabled = true;
    cfg
}

/// One approved proposal that the feedback check then resolves (`true`)
/// or not.
fn approved(r: &mut AutonomyRecord, resolved: bool) -> Option<crate::guardrails::LevelChange> {
    let cfg = EarnedAutonomy::default();
    let now = Utc::now();
    for o in [Outcome::Proposed, Outcome::Approved, Outcome::Executed] {
        assert_eq!(r.observe(o, &cfg, now), None);
    }
    let last = if resolved {
        Outcome::Resolved { approved: true }
    } else {
        Outcome::Unresolved
    };
    r.observe(last, &cfg, now)
}

fn route_with(record: Option<AutonomyRecord>, cfg: &GuardrailConfig, confidence: f64) -> Verdict {
    let d = decision(Action::Restart {}, confidence);
    let a = alert(Severity::Warning);
    Guardrails::new(cfg.clone()).evaluate(&GuardrailInput {
        decision: &d,
        alert: &a,
        current_machine_type: None,
        current_count: None,
        standing: &Standing {
            autonomy: record,
            ..Standing::now()
        },
    })
}

#[test]
fn twenty_approved_and_resolved_decisions_promote_a_pair() {
    let mut r = AutonomyRecord::default();
    for n in 0..19 {
        assert_eq!(approved(&mut r, true), None, "decision {n}");
    }
    assert_eq!(r.level, AutonomyLevel::Shadow);
    let change = approved(&mut r, true).expect("promoted on the 20th");
    assert_eq!(
        (change.from, change.to),
        (AutonomyLevel::Shadow, AutonomyLevel::Auto)
    );
    assert!(change.reason.contains("20/20"), "{}", change.reason);
    assert_eq!(
        (r.proposed, r.approved, r.executed, r.resolved),
        (20, 20, 20, 20)
    );
    assert_eq!(r.promotions, 1);
}

#[test]
fn precision_is_measured_over_the_last_twenty() {
    // 19 of 20 (95%) promotes; 18 of 20 (90%) does not.
    let mut r = AutonomyRecord::default();
    approved(&mut r, false);
    for _ in 0..18 {
        approved(&mut r, true);
    }
    assert!(approved(&mut r, true).is_some(), "19/20 reaches 95%");

    let cfg = EarnedAutonomy::default();
    let mut r = AutonomyRecord::default();
    r.observe(Outcome::Rejected, &cfg, Utc::now());
    approved(&mut r, false);
    for _ in 0..18 {
        assert_eq!(approved(&mut r, true), None);
    }
    assert_eq!(r.level, AutonomyLevel::Shadow);
    // One more success pushes the first failure out of the window: 19/20.
    assert!(approved(&mut r, true).is_some(), "19 of the last 20");
}

#[test]
fn a_failed_check_or_a_rejection_demotes_and_autonomy_is_earned_again() {
    let cfg = EarnedAutonomy::default();
    let mut r = AutonomyRecord::default();
    for _ in 0..20 {
        approved(&mut r, true);
    }
    let change = approved(&mut r, false).expect("demoted");
    assert_eq!(
        (change.from, change.to),
        (AutonomyLevel::Auto, AutonomyLevel::Shadow)
    );
    assert!(change.reason.contains("did not resolve"));
    assert!(r.recent.is_empty(), "starts over");
    for _ in 0..19 {
        assert_eq!(approved(&mut r, true), None);
    }
    assert!(
        approved(&mut r, true).is_some(),
        "earned again after 20 more"
    );
    let change = r
        .observe(Outcome::Rejected, &cfg, Utc::now())
        .expect("demoted");
    assert!(change.reason.contains("rejected"));
    assert_eq!(r.demotions, 2);
}

/// One action that ran without a human and resolved.
fn ran_alone(r: &mut AutonomyRecord) -> Option<crate::guardrails::LevelChange> {
    let cfg = EarnedAutonomy::default();
    let now = Utc::now();
    r.observe(Outcome::Proposed, &cfg, now);
    r.observe(Outcome::Executed, &cfg, now);
    r.observe(Outcome::Resolved { approved: false }, &cfg, now)
}

#[test]
fn actions_that_ran_without_a_human_earn_nothing() {
    // Earned autonomy off (or a pin to auto): a hundred resolved actions
    // that nobody approved promote nothing.
    let mut r = AutonomyRecord::default();
    for _ in 0..100 {
        assert_eq!(ran_alone(&mut r), None);
    }
    assert_eq!(
        (r.level, r.resolved, r.recent.len()),
        (AutonomyLevel::Shadow, 100, 0)
    );
    // They do not dilute what humans approved either.
    for _ in 0..19 {
        approved(&mut r, true);
    }
    assert!(approved(&mut r, true).is_some(), "20 approved and resolved");
}

#[test]
fn pins_hold_against_outcomes_and_unpinning_re_earns() {
    let cfg = EarnedAutonomy::default();
    let now = Utc::now();
    let mut r = AutonomyRecord::default();
    r.pin(Some(AutonomyLevel::Auto), "web:ops", &cfg, now);
    assert_eq!(
        approved(&mut r, false),
        None,
        "a pinned pair is not demoted"
    );
    assert_eq!(r.level, AutonomyLevel::Auto);
    // Pinned, it keeps counting: actions that ran alone earn nothing, the
    // human-approved ones do.
    for _ in 0..30 {
        ran_alone(&mut r);
    }
    let change = r.pin(None, "web:ops", &cfg, now);
    assert_eq!(
        (change.from, change.to),
        (AutonomyLevel::Auto, AutonomyLevel::Shadow)
    );
    assert_eq!(change.by, "web:ops");
    r.pin(Some(AutonomyLevel::Shadow), "web:ops", &cfg, now);
    for _ in 0..20 {
        assert_eq!(approved(&mut r, true), None, "pinned: no promotion");
    }
    // Unpinned with its last 20 approved and resolved: auto at once.
    let change = r.pin(None, "web:ops", &cfg, now);
    assert_eq!(change.to, AutonomyLevel::Auto);
    assert!(change.reason.contains("20/20"), "{}", change.reason);
}

#[test]
fn a_shadow_pair_asks_even_for_a_confident_llm_decision() {
    let cfg = earning();
    // Never seen: shadow.
    let v = route_with(None, &cfg, 0.99);
    assert_eq!(v.route, Route::AskHuman);
    assert!(
        v.notes[0].starts_with("earned_autonomy: restart on"),
        "{:?}",
        v.notes
    );
    assert!(v.notes[0].contains("0/0"), "{:?}", v.notes);
    let auto = AutonomyRecord {
        level: AutonomyLevel::Auto,
        ..Default::default()
    };
    assert_eq!(
        route_with(Some(auto.clone()), &cfg, 0.99).route,
        Route::AutoExecute
    );
    // The other rules still apply at auto.
    assert_eq!(route_with(Some(auto), &cfg, 0.5).route, Route::AskHuman);
    let never = AutonomyRecord {
        level: AutonomyLevel::Never,
        pinned: true,
        ..Default::default()
    };
    let v = route_with(Some(never.clone()), &cfg, 0.99);
    assert_eq!(v.route, Route::Escalate);
    assert_eq!(v.decision.recommended_action, Action::Escalate {});
    // Off: unpinned pairs run; a pin still holds.
    let mut off = earning();
    off.earned_autonomy.enabled = false;
    assert_eq!(route_with(None, &off, 0.99).route, Route::AutoExecute);
    assert_eq!(route_with(Some(never), &off, 0.99).route, Route::Escalate);
}

#[test]
fn levels_parse_and_keys_are_stable() {
    assert_eq!("auto".parse::<AutonomyLevel>(), Ok(AutonomyLevel::Auto));
    assert!("sometimes".parse::<AutonomyLevel>().is_err());
    assert_eq!(
        AutonomyRecord::key(ActionKind::ScaleUp, "local_instance"),
        "autonomy/scale_up/local_instance"
    );
}
