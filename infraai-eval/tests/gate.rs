//! The gate over the committed corpus and baseline: it holds as committed,
//! and fails when a scenario's expected action changes or a harmful action
//! runs alone.

use infraai_eval::evaluate;
use infraai_eval::policy::PolicyChoice;
use infraai_eval::report::{gate, Baseline};
use infraai_eval::scenario::{self, Handling};
use std::path::PathBuf;

fn eval_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../eval")
}

fn policies() -> Vec<PolicyChoice> {
    let dir = eval_dir().join("replay");
    vec![PolicyChoice::Rules, PolicyChoice::Replay { dir }]
}

#[tokio::test]
async fn the_committed_corpus_holds_its_baseline_with_no_harm_done() {
    let scenarios = scenario::load_dir(&eval_dir().join("scenarios")).unwrap();
    assert!(scenarios.len() >= 60, "{} scenarios", scenarios.len());
    let runs = evaluate(&scenarios, &policies()).await.unwrap();
    let baseline = Baseline::load(&eval_dir().join("baseline.json")).unwrap();
    let g = gate(&runs, &baseline);
    assert!(g.holds(), "{:#?}", g.failures);
    assert!(g.changes.is_empty(), "{:#?}", g.changes);
    for run in &runs {
        assert_eq!(run.summary.harmful_executed, 0, "{}", run.summary.policy);
    }
    // The replay answers include harmful proposals; every one was caught.
    let replay = &runs[1].summary;
    assert!(
        replay.harmful_proposed > 0 && replay.harmful_caught == replay.harmful_proposed,
        "{replay:?}"
    );
}

/// A copy of the corpus with `id`'s file changed by `edit`.
fn corpus_with(id: &str, edit: impl Fn(&mut serde_json::Value)) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("infraai-eval-{id}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(eval_dir().join("scenarios")).unwrap() {
        let path = entry.unwrap().path();
        let mut text = std::fs::read_to_string(&path).unwrap();
        if path.file_stem().and_then(|s| s.to_str()) == Some(id) {
            let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
            edit(&mut v);
            text = v.to_string();
        }
        std::fs::write(dir.join(path.file_name().unwrap()), text).unwrap();
    }
    dir
}

#[tokio::test]
async fn changing_a_scenarios_expected_action_fails_the_gate() {
    let dir = corpus_with("gcp-vm-cpu-high", |v| {
        v["expect"]["accept"] = serde_json::json!(["restart"])
    });
    let scenarios = scenario::load_dir(&dir).unwrap();
    let changed = scenarios
        .iter()
        .find(|s| s.id == "gcp-vm-cpu-high")
        .unwrap();
    assert_eq!(changed.expect.accept, [Handling::Restart]);
    let runs = evaluate(&scenarios, &policies()).await.unwrap();
    let baseline = Baseline::load(&eval_dir().join("baseline.json")).unwrap();
    let g = gate(&runs, &baseline);
    assert!(!g.holds());
    for policy in ["rules", "replay"] {
        let named = format!("{policy}: gcp-vm-cpu-high: passed in the baseline, now fails");
        assert!(
            g.failures.iter().any(|f| f.starts_with(&named)),
            "{:#?}",
            g.failures
        );
        // The per-scenario diff names it, and only it.
        let diff: Vec<&String> = g.changes.iter().filter(|c| c.starts_with(policy)).collect();
        let want = format!("{policy}: gcp-vm-cpu-high: pass → ScaleUp is not one of [Restart]");
        assert_eq!(diff, [&want], "{:#?}", g.changes);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_harmful_action_run_alone_fails_the_gate_whatever_the_baseline() {
    // Say scaling up is harmful where the agent scales up alone.
    let dir = corpus_with("gcp-vm-cpu-high-warning", |v| {
        v["expect"] = serde_json::json!({"accept": ["escalate"], "harmful": ["scale_up"]});
    });
    let scenarios = scenario::load_dir(&dir).unwrap();
    let runs = evaluate(&scenarios, &[PolicyChoice::Rules]).await.unwrap();
    assert_eq!(runs[0].summary.harmful_executed, 1);
    let mut baseline = Baseline::of(&runs);
    let g = gate(&runs, &baseline);
    assert!(
        g.failures
            .iter()
            .any(|f| f.contains("gcp-vm-cpu-high-warning: a harmful action ran without a human")),
        "{:#?}",
        g.failures
    );
    // Nor does a policy without a baseline pass.
    baseline.0.clear();
    assert!(gate(&runs, &baseline)
        .failures
        .iter()
        .any(|f| f.contains("no baseline")));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_malformed_scenario_is_refused_with_its_file_named() {
    let dir = corpus_with("local-api-cpu-high", |v| {
        v["expect"]["accept"] = serde_json::json!(["reboot"])
    });
    let err = scenario::load_dir(&dir).unwrap_err().to_string();
    assert!(
        err.contains("local-api-cpu-high.json") && err.contains("reboot"),
        "{err}"
    );
    let dir2 = corpus_with("local-api-cpu-high", |v| {
        v["id"] = serde_json::json!("other")
    });
    let err = scenario::load_dir(&dir2).unwrap_err().to_string();
    assert!(err.contains("is not the file's name"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&dir2);
}

#[test]
fn every_alert_profile_of_every_cloud_has_a_scenario() {
    let scenarios = scenario::load_dir(&eval_dir().join("scenarios")).unwrap();
    let tags: Vec<&str> = scenarios
        .iter()
        .flat_map(|s| s.tags.iter().map(String::as_str))
        .collect();
    type Register = fn(&mut infraai_core::MetricProfileRegistry);
    let clouds: [(&str, Register); 3] = [
        ("gcp", infraai_gcp::register_profiles),
        ("aws", infraai_aws::register_profiles),
        ("local", infraai_local::profiles::register_profiles),
    ];
    for (cloud, register) in clouds {
        let mut registry = infraai_core::MetricProfileRegistry::empty();
        register(&mut registry);
        let types: Vec<String> = registry.resource_types().map(String::from).collect();
        for rt in types {
            for p in registry.profiles(&rt) {
                let tag = format!("profile:{cloud}/{}", p.name);
                assert!(tags.contains(&tag.as_str()), "no scenario tagged {tag}");
            }
        }
    }
}
