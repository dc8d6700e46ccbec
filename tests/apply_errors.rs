//! The apply-failure classifier with each cloud adapter's patterns against
//! real provider error texts (tests/data/apply-errors.json: each entry
//! names the public issue it is copied from).

use infraai::{
    ApplyFailureClassifier, Diagnostic, DiagnosticList, DiagnosticSeverity, Error, FailureClass,
    TerraformStep,
};
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Deserialize)]
struct Corpus {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    cloud: String,
    class: FailureClass,
    text: String,
    source: String,
    #[serde(default)]
    details: BTreeMap<String, String>,
    #[serde(default)]
    pattern: Option<String>,
}

/// What the deploy loop classifies with on `cloud`: its generator's
/// patterns, then the built-in ones.
fn classifier(cloud: &str) -> ApplyFailureClassifier {
    let patterns = match cloud {
        "gcp" => infraai::gcp::failure_patterns(),
        "aws" => infraai::aws::failure_patterns(),
        other => panic!("no patterns for {other}"),
    };
    ApplyFailureClassifier::builtin().prepend(patterns)
}

fn corpus() -> Vec<Case> {
    let json = include_str!("data/apply-errors.json");
    serde_json::from_str::<Corpus>(json)
        .expect("corpus parses")
        .cases
}

#[test]
fn the_corpus_is_big_enough_and_sourced() {
    let cases = corpus();
    assert!(cases.len() >= 30, "{} cases", cases.len());
    for cloud in ["gcp", "aws"] {
        assert!(
            cases.iter().filter(|c| c.cloud == cloud).count() >= 10,
            "{cloud}"
        );
    }
    for class in [
        FailureClass::Transient,
        FailureClass::QuotaExceeded,
        FailureClass::ApiNotEnabled,
        FailureClass::PermissionDenied,
        FailureClass::NameInUse,
        FailureClass::InvalidConfiguration,
    ] {
        assert!(cases.iter().any(|c| c.class == class), "no case of {class}");
    }
    for c in &cases {
        assert!(c.source.starts_with("https://github.com/"), "{}", c.source);
    }
    for cloud in ["gcp", "aws"] {
        let c = classifier(cloud);
        let mut ids = std::collections::HashSet::new();
        for p in c.patterns() {
            assert!(ids.insert(p.spec().id.clone()), "duplicate {}", p.spec().id);
            assert!(!p.spec().source.trim().is_empty(), "{}", p.spec().id);
        }
    }
}

#[test]
fn every_real_error_text_is_classified_correctly() {
    let mut wrong = Vec::new();
    for c in corpus() {
        let classifier = classifier(&c.cloud);
        // As Terraform's -json diagnostic would carry it...
        let e = Error::backend(
            "terraform",
            "apply",
            false,
            DiagnosticList(vec![Diagnostic {
                severity: DiagnosticSeverity::Error,
                summary: "apply failed".into(),
                detail: c.text.clone(),
                range: None,
            }]),
        );
        let d = classifier.classify(&e, TerraformStep::Apply, 1);
        // ...and as a bare message.
        let bare = classifier.classify_message(&c.text);
        if d.class != c.class || bare != c.class {
            wrong.push(format!(
                "{:?} (got {:?}/{:?}): {}",
                c.class, d.class, bare, c.text
            ));
            continue;
        }
        if let Some(p) = &c.pattern {
            assert_eq!(d.pattern.as_ref(), Some(p), "{}", c.text);
        }
        for (k, v) in &c.details {
            assert_eq!(d.details.get(k), Some(v), "detail {k} of {}", c.text);
        }
        assert!(d.pattern_source.is_some(), "{}", c.text);
        if c.class.needs_operator() {
            // The advice names what the operator must change when the text does.
            for key in ["api", "permission", "quota", "code"] {
                if let Some(v) = d.details.get(key) {
                    assert!(
                        d.advice.contains(v.as_str()),
                        "advice {:?} lacks {v}",
                        d.advice
                    );
                }
            }
        }
    }
    assert!(wrong.is_empty(), "misclassified:\n{}", wrong.join("\n"));
}

#[test]
fn operator_advice_is_specific() {
    let c = classifier("gcp");
    let api = corpus()
        .into_iter()
        .find(|c| c.class == FailureClass::ApiNotEnabled && c.text.contains("1025699268247"))
        .unwrap();
    let d = c.classify(
        &Error::backend("terraform", "apply", false, api.text),
        TerraformStep::Apply,
        1,
    );
    assert_eq!(
        d.advice,
        "Enable the compute.googleapis.com API for project 1025699268247 (`gcloud services enable compute.googleapis.com --project 1025699268247`, or APIs & Services → Library in the console), wait a few minutes for it to propagate, then run the deploy again."
    );
    let quota = c.classify_message("Quota 'CPUS' exceeded.  Limit: 8.0 in region us-east1.");
    assert_eq!(quota, FailureClass::QuotaExceeded);
    let d = c.classify(
        &Error::backend(
            "terraform",
            "apply",
            false,
            "Quota 'CPUS' exceeded.  Limit: 8.0 in region us-east1.",
        ),
        TerraformStep::Apply,
        1,
    );
    assert!(
        d.advice
            .starts_with("Raise the CPUS quota in region us-east1 (limit now 8.0)"),
        "{}",
        d.advice
    );
    let unknown = c.classify(
        &Error::backend("terraform", "apply", false, "the flux capacitor broke"),
        TerraformStep::Apply,
        1,
    );
    assert_eq!(unknown.class, FailureClass::Unknown);
    assert!(unknown.pattern.is_none());
}
