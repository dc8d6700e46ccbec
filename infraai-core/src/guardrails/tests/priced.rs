//! The cost rules: per action and per day.

use super::*;
use crate::guardrails::{DailySpend, SpendEntry};
use chrono::{Duration, Utc};

fn with_spend(spent: f64, action: Action, current: &str, confidence: f64) -> Verdict {
    let d = decision(action, confidence);
    let a = alert(Severity::Warning);
    let current = mt(current);
    Guardrails::new(guardrails()).evaluate(&GuardrailInput {
        decision: &d,
        alert: &a,
        current_machine_type: Some(&current),
        current_count: None,
        standing: &Standing {
            spent_today_usd: spent,
            ..Standing::now()
        },
    })
}

#[test]
fn a_confident_llm_decision_is_priced_and_bounded() {
    // Two steps at once: refused whatever the confidence.
    let v = with_spend(0.0, scale_to("e2-standard-4"), "e2-medium", 0.99);
    assert_eq!(v.route, Route::Escalate);
    // One step under the cap ($24.45): automatic.
    let v = with_spend(0.0, scale_to("e2-standard-2"), "e2-medium", 0.99);
    assert_eq!(v.route, Route::AutoExecute, "{:?}", v.notes);
    // One step over the cap ($97.83): a human.
    let v = with_spend(0.0, scale_to("e2-standard-8"), "e2-standard-4", 0.99);
    assert_eq!(v.route, Route::AskHuman);
    assert!(v.notes[0].starts_with("cost_cap: e2-standard-4 → e2-standard-8: +$97.83/month"));
}

#[test]
fn the_daily_cap_counts_the_days_automatic_increases() {
    // $180 spent today + $24.45 passes $200.
    let v = with_spend(180.0, scale_to("e2-standard-2"), "e2-medium", 0.95);
    assert_eq!(v.route, Route::AskHuman);
    assert!(v.notes[0].contains("daily $200.00/month"), "{:?}", v.notes);
    let v = with_spend(175.0, scale_to("e2-standard-2"), "e2-medium", 0.95);
    assert_eq!(v.route, Route::AutoExecute, "{:?}", v.notes);
    // A restart adds nothing, whatever was spent.
    let v = with_spend(500.0, Action::Restart {}, "e2-medium", 0.95);
    assert_eq!(v.route, Route::AutoExecute);
}

#[test]
fn the_ledger_forgets_after_a_day_and_reserves_within_the_cap() {
    let now = Utc::now();
    let entry = |hours_ago: i64, usd: f64| SpendEntry {
        at: now - Duration::hours(hours_ago),
        monthly_usd: usd,
        incident_id: None,
    };
    let mut spend = DailySpend {
        entries: vec![entry(30, 150.0), entry(2, 150.0)],
    };
    assert_eq!(spend.total(now), 150.0);
    assert!(!spend.reserve(entry(0, 60.0), 200.0), "$210 passes $200");
    assert!(spend.reserve(entry(0, 50.0), 200.0), "$200 reaches it");
    assert_eq!(spend.entries.len(), 2, "the day-old entry is dropped");
    assert!(
        spend.reserve(entry(0, 0.0), 200.0),
        "nothing added always fits"
    );
}

#[test]
fn a_deployment_may_set_its_own_cap_floor_and_earned_autonomy() {
    use crate::guardrails::GuardrailOverrides;
    let global = guardrails();
    let d = decision(scale_to("e2-standard-8"), 0.75);
    let a = alert(Severity::Warning);
    let current = mt("e2-standard-4");
    let input = GuardrailInput {
        decision: &d,
        alert: &a,
        current_machine_type: Some(&current),
        current_count: None,
        standing: &Standing::now(),
    };
    let g = Guardrails::new(global.clone());
    // +$97.83 is over the global $50.
    assert_eq!(g.evaluate(&input).route, Route::AskHuman);
    let generous = GuardrailOverrides {
        max_auto_monthly_increase_usd: Some(100.0),
        ..Default::default()
    };
    let v = g.evaluate_with(&input, &global.with_overrides(&generous));
    assert_eq!(v.route, Route::AutoExecute, "{:?}", v.notes);
    // A stricter floor on this deployment: 0.75 is below 0.8.
    let strict = GuardrailOverrides {
        confidence_floor: Some(0.8),
        ..generous.clone()
    };
    let v = g.evaluate_with(&input, &global.with_overrides(&strict));
    assert!(v.notes[0].starts_with("confidence_floor"), "{:?}", v.notes);
    // Earned autonomy on for this deployment only: shadow asks.
    let earning = GuardrailOverrides {
        earned_autonomy: Some(true),
        ..generous
    };
    let v = g.evaluate_with(&input, &global.with_overrides(&earning));
    assert!(v.notes[0].starts_with("earned_autonomy"), "{:?}", v.notes);
    // Bad values are refused with the reason.
    let bad = GuardrailOverrides {
        max_auto_monthly_increase_usd: Some(-1.0),
        ..Default::default()
    };
    assert!(bad.validate().unwrap_err().contains("0 or more"));
    let bad = GuardrailOverrides {
        confidence_floor: Some(1.5),
        ..Default::default()
    };
    assert!(bad.validate().unwrap_err().contains("within 0–1"));
}
