//! Change windows: schedules in time zones, validation, the freeze rule.

use super::*;
use crate::guardrails::{open_windows, ChangeWindow, WindowKind, WindowSchedule};
use chrono::{DateTime, Duration, Utc};

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn window(kind: WindowKind, schedule: WindowSchedule, resources: &[&str]) -> ChangeWindow {
    ChangeWindow {
        id: "w1".into(),
        name: "release".into(),
        kind,
        schedule,
        resources: resources.iter().map(|r| r.to_string()).collect(),
        created_by: "web:ops".into(),
        created_at: Utc::now(),
    }
}

fn nightly(tz: &str) -> WindowSchedule {
    WindowSchedule::Recurring {
        cron: "0 22 * * *".into(),
        duration_minutes: 8 * 60,
        time_zone: tz.into(),
    }
}

#[test]
fn a_recurring_window_opens_in_its_time_zone_including_summer_time() {
    let w = window(WindowKind::Quiet, nightly("Europe/Berlin"), &[]);
    // 21:30 UTC in December is 22:30 in Berlin (UTC+1): open until 06:00 Berlin.
    assert_eq!(
        w.open_until(at("2026-12-07T21:30:00Z")),
        Some(at("2026-12-08T05:00:00Z"))
    );
    assert_eq!(
        w.open_until(at("2026-12-08T04:59:00Z")),
        Some(at("2026-12-08T05:00:00Z"))
    );
    assert_eq!(w.open_until(at("2026-12-08T05:00:00Z")), None);
    assert_eq!(
        w.open_until(at("2026-12-07T20:59:00Z")),
        None,
        "21:59 in Berlin"
    );
    // July: UTC+2, so 20:30 UTC is 22:30 in Berlin.
    assert!(w.open_until(at("2026-07-01T20:30:00Z")).is_some());
    let utc = window(WindowKind::Quiet, nightly("UTC"), &[]);
    assert!(utc.open_until(at("2026-07-01T20:30:00Z")).is_none());
    // Weekdays only: Saturday 2026-12-12 is closed.
    let weekdays = window(
        WindowKind::Freeze,
        WindowSchedule::Recurring {
            cron: "0 9 * * 1-5".into(),
            duration_minutes: 60,
            time_zone: "UTC".into(),
        },
        &[],
    );
    assert!(weekdays.open_until(at("2026-12-11T09:30:00Z")).is_some());
    assert!(weekdays.open_until(at("2026-12-12T09:30:00Z")).is_none());
}

#[test]
fn a_one_off_window_is_open_from_its_start_until_its_end() {
    let once = WindowSchedule::Once {
        start: at("2026-12-07T10:00:00Z"),
        end: at("2026-12-07T12:00:00Z"),
    };
    let w = window(WindowKind::Freeze, once, &[]);
    assert!(w.open_until(at("2026-12-07T09:59:59Z")).is_none());
    assert!(w.open_until(at("2026-12-07T10:00:00Z")).is_some());
    assert!(w.open_until(at("2026-12-07T12:00:00Z")).is_none());
}

#[test]
fn bad_windows_are_refused_with_the_reason() {
    let bad = |kind, schedule, resources: &[&str]| {
        window(kind, schedule, resources).validate().unwrap_err()
    };
    let cron = |c: &str, minutes, tz: &str| WindowSchedule::Recurring {
        cron: c.into(),
        duration_minutes: minutes,
        time_zone: tz.into(),
    };
    assert!(bad(WindowKind::Quiet, cron("61 * * * *", 10, "UTC"), &[]).contains("cron"));
    assert!(bad(
        WindowKind::Quiet,
        cron("0 * * * *", 10, "Mars/Olympus"),
        &[]
    )
    .contains("time zone"));
    assert!(bad(WindowKind::Quiet, cron("0 * * * *", 0, "UTC"), &[]).contains("duration"));
    assert!(bad(WindowKind::Maintenance, nightly("UTC"), &[]).contains("names the resources"));
    let backwards = WindowSchedule::Once {
        start: at("2026-12-07T12:00:00Z"),
        end: at("2026-12-07T10:00:00Z"),
    };
    assert!(bad(WindowKind::Freeze, backwards, &[]).contains("before it starts"));
    assert!(window(WindowKind::Maintenance, nightly("UTC"), &["db"])
        .validate()
        .is_ok());
}

#[test]
fn a_decision_inside_a_freeze_asks_a_human_and_only_for_its_resources() {
    let now = Utc::now();
    let open = WindowSchedule::Once {
        start: now - Duration::minutes(5),
        end: now + Duration::minutes(55),
    };
    let d = decision(Action::Restart {}, 0.99);
    let a = alert(Severity::Warning);
    let verdict = |resources: &[&str]| {
        Guardrails::new(guardrails()).evaluate(&GuardrailInput {
            decision: &d,
            alert: &a,
            current_machine_type: None,
            current_count: None,
            standing: &Standing {
                windows: vec![window(WindowKind::Freeze, open.clone(), resources)],
                ..Standing::now()
            },
        })
    };
    let frozen = verdict(&[]);
    assert_eq!(frozen.route, Route::AskHuman);
    assert!(
        frozen.notes[0].starts_with("change_freeze: freeze \"release\" (until "),
        "{:?}",
        frozen.notes
    );
    assert_eq!(verdict(&["web-1"]).route, Route::AskHuman);
    assert_eq!(
        verdict(&["db-1"]).route,
        Route::AutoExecute,
        "another resource's freeze"
    );
    // Quiet and maintenance windows are not freezes.
    let quiet = window(WindowKind::Quiet, open, &[]);
    assert_eq!(
        open_windows(&[quiet], WindowKind::Freeze, "web-1", now).count(),
        0
    );
}
