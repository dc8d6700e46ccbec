//! The Cloud Monitoring webhook against the recorded notifications, through
//! the real ops loop.

use base64::Engine;
use infraai_core::testing::*;
use infraai_core::*;
use infraai_gcp::{GcpWebhookSource, WebhookAuth};
use std::sync::Arc;

fn fixture(name: &str) -> Vec<u8> {
    let p = format!(
        "{}/../tests/fixtures/gcp-monitoring/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

fn with_basic(body: Vec<u8>, user: &str, password: &str) -> InboundRequest {
    let mut r = InboundRequest {
        body,
        ..Default::default()
    };
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    r.headers
        .insert("authorization".into(), format!("Basic {token}"));
    r
}

fn basic() -> GcpWebhookSource {
    GcpWebhookSource::new(WebhookAuth::Basic {
        user: "monitoring".into(),
        password: Secret::new("s3cret"),
    })
}

#[tokio::test]
async fn open_and_closed_notifications_map_to_one_incident() {
    let source = basic();
    let open = source
        .receive(&with_basic(
            fixture("incident-open.json"),
            "monitoring",
            "s3cret",
        ))
        .await
        .unwrap();
    let a = &open[0];
    assert_eq!(a.fingerprint, "gcp:0.nvxk3q2ab9c1");
    assert_eq!(a.state, AlertState::Firing);
    assert_eq!(
        (a.resource.as_str(), a.resource_type.as_str()),
        ("web-1", "gce_instance")
    );
    assert_eq!(a.metric, "compute.googleapis.com/instance/cpu/utilization");
    assert_eq!((a.value, a.threshold), (Some(0.973), Some(0.9)));
    assert_eq!(a.severity, Severity::Critical);
    assert_eq!(a.policy_name, "High CPU on web tier");
    assert_eq!(a.started_at.timestamp(), 1764086400);
    assert_eq!(a.labels["resource.zone"], "us-central1-a");
    assert_eq!(a.labels["policy.team"], "ops");

    let closed = source
        .receive(&with_basic(
            fixture("incident-closed.json"),
            "monitoring",
            "s3cret",
        ))
        .await
        .unwrap();
    assert_eq!(closed[0].fingerprint, a.fingerprint);
    assert_eq!(closed[0].state, AlertState::Resolved);

    // Through the ops loop: one incident, opened then closed.
    let ops = TestOps::new(
        Arc::new(RecordingApprover::default()),
        ApproverAllowList::none(),
    )
    .await;
    let opened = ops.agent.handle_alert(a).await.unwrap();
    assert_eq!(opened.outcome, IngestOutcome::Opened);
    assert_eq!(opened.incident.unwrap().status, IncidentStatus::Pending);
    let done = ops.agent.handle_alert(&closed[0]).await.unwrap();
    assert_eq!(done.outcome, IngestOutcome::Resolved);
}

#[tokio::test]
async fn wrong_or_missing_credentials_are_refused() {
    let source = basic();
    for r in [
        with_basic(fixture("incident-open.json"), "monitoring", "wrong"),
        with_basic(fixture("incident-open.json"), "other", "s3cret"),
        InboundRequest {
            body: fixture("incident-open.json"),
            ..Default::default()
        },
    ] {
        assert!(matches!(
            source.receive(&r).await,
            Err(Error::Unauthenticated { .. })
        ));
    }
    let by_token = GcpWebhookSource::new(WebhookAuth::Token(Secret::new("t0ken")));
    let mut r = InboundRequest {
        body: fixture("incident-open.json"),
        ..Default::default()
    };
    assert!(by_token.receive(&r).await.is_err());
    r.query.insert("token".into(), "t0ken".into());
    assert_eq!(by_token.receive(&r).await.unwrap().len(), 1);
    r.query.insert("token".into(), "t0ke".into());
    assert!(matches!(
        by_token.receive(&r).await,
        Err(Error::Unauthenticated { .. })
    ));
}

#[test]
fn bad_payloads_are_clear_errors_and_test_notifications_are_ignored() {
    for bad in [
        &b"not json"[..],
        b"{}",
        br#"{"incident":{"incident_id":"x","state":"maybe"}}"#,
        br#"{"incident":{"incident_id":"","state":"open"}}"#,
    ] {
        assert!(
            matches!(GcpWebhookSource::normalize(bad), Err(Error::Invalid { .. })),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
    let test = br#"{"version":"test","incident":{"incident_id":"12345","state":"OPEN"}}"#;
    assert_eq!(GcpWebhookSource::normalize(test).unwrap(), None);
    // OPEN in capitals (console samples) is accepted.
    let upper = br#"{"version":"1.2","incident":{"incident_id":"9","state":"OPEN","resource_display_name":"web-2"}}"#;
    assert_eq!(
        GcpWebhookSource::normalize(upper).unwrap().unwrap().state,
        AlertState::Firing
    );
}

#[test]
fn numbers_arrive_as_numbers_or_numeric_strings_and_text_is_refused() {
    let open: serde_json::Value = serde_json::from_slice(&fixture("incident-open.json")).unwrap();
    let with = |changes: &[(&str, serde_json::Value)]| {
        let mut n = open.clone();
        for (k, v) in changes {
            n["incident"][*k] = v.clone();
        }
        GcpWebhookSource::normalize(&serde_json::to_vec(&n).unwrap())
    };
    let strings = with(&[
        ("started_at", serde_json::json!("1764086400")),
        ("observed_value", serde_json::json!("0.973")),
        ("threshold_value", serde_json::json!(0.9)),
        ("incident_id", serde_json::json!(12345)),
    ])
    .unwrap()
    .unwrap();
    assert_eq!(strings.started_at.timestamp(), 1764086400);
    assert_eq!((strings.value, strings.threshold), (Some(0.973), Some(0.9)));
    assert_eq!(strings.fingerprint, "gcp:12345");
    let mut numeric_labels = open.clone();
    numeric_labels["incident"]["resource"]["labels"]["instance_id"] = serde_json::json!(4242);
    let alert = GcpWebhookSource::normalize(&serde_json::to_vec(&numeric_labels).unwrap());
    assert_eq!(
        alert.unwrap().unwrap().labels["resource.instance_id"],
        "4242"
    );
    for (field, bad) in [
        ("started_at", serde_json::json!("yesterday")),
        ("observed_value", serde_json::json!("high")),
        ("threshold_value", serde_json::json!({"v": 1})),
    ] {
        match with(&[(field, bad.clone())]) {
            Err(Error::Invalid { detail, .. }) => {
                assert!(detail.contains(field), "{detail}")
            }
            other => panic!("{field} = {bad}: {other:?}"),
        }
    }
}
