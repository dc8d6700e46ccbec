//! Alertmanager webhook against the recorded payloads, Prometheus queries
//! against a mock HTTP API, and the rules export.

use infraai_core::testing::*;
use infraai_core::*;
use infraai_prometheus::*;
use serde_json::json;
use std::sync::Arc;
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn fixture(name: &str) -> Vec<u8> {
    let p = format!(
        "{}/../tests/fixtures/alertmanager/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

fn bearer(body: Vec<u8>, token: &str) -> InboundRequest {
    let mut r = InboundRequest {
        body,
        ..Default::default()
    };
    r.headers
        .insert("authorization".into(), format!("Bearer {token}"));
    r
}

#[tokio::test]
async fn firing_then_resolved_through_the_ops_loop() {
    let source = AlertmanagerSource::new(WebhookAuth::Token(Secret::new("am-token")));
    let firing = source
        .receive(&bearer(fixture("webhook-firing.json"), "am-token"))
        .await
        .unwrap();
    assert_eq!(firing.len(), 2);
    let a = &firing[0];
    assert_eq!(a.fingerprint, "am:3f2a9c1d7b6e4a05");
    assert_eq!(
        (
            a.resource.as_str(),
            a.policy_name.as_str(),
            a.metric.as_str()
        ),
        ("web-1", "HighCPU", "HighCPU")
    );
    assert_eq!(
        (a.severity, a.state),
        (Severity::Critical, AlertState::Firing)
    );
    assert_eq!(a.started_at.to_rfc3339(), "2026-11-25T16:00:00.123+00:00");
    assert_eq!(a.labels["zone"], "us-central1-a");
    assert_eq!(firing[1].resource, "web-2");

    let resolved = source
        .receive(&bearer(fixture("webhook-resolved.json"), "am-token"))
        .await
        .unwrap();
    assert!(resolved.iter().all(|r| r.state == AlertState::Resolved));
    assert_eq!(
        resolved[0].fingerprint, a.fingerprint,
        "fingerprints are stable across firing and resolved"
    );

    let ops = TestOps::new(
        Arc::new(RecordingApprover::default()),
        ApproverAllowList::none(),
    )
    .await;
    assert_eq!(
        ops.agent.handle_alert(a).await.unwrap().outcome,
        IngestOutcome::Opened
    );
    assert_eq!(
        ops.agent.handle_alert(a).await.unwrap().outcome,
        IngestOutcome::Repeated
    );
    assert_eq!(
        ops.agent.handle_alert(&resolved[0]).await.unwrap().outcome,
        IngestOutcome::Resolved
    );
}

#[tokio::test]
async fn auth_and_bad_payloads() {
    let source = AlertmanagerSource::new(WebhookAuth::Token(Secret::new("am-token")));
    for r in [
        bearer(fixture("webhook-firing.json"), "nope"),
        InboundRequest {
            body: fixture("webhook-firing.json"),
            ..Default::default()
        },
    ] {
        assert!(matches!(
            source.receive(&r).await,
            Err(Error::Unauthenticated { .. })
        ));
    }
    for bad in [
        &b"{"[..],
        br#"{"version":"3","alerts":[]}"#,
        br#"{"version":"4","alerts":[{"status":"weird","fingerprint":"x"}]}"#,
    ] {
        assert!(
            matches!(source.normalize(bad), Err(Error::Invalid { .. })),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
    // A custom mapping: resource from another label, value from an annotation.
    let mapped = source.with_mapping(LabelMapping {
        resource: "zone".into(),
        ..LabelMapping::default()
    });
    let body = br#"{"version":"4","alerts":[{"status":"firing","fingerprint":"f1","labels":{"alertname":"A","zone":"z1","resource_type":"local_instance"},"annotations":{"value":"0.91","threshold":"0.8"}}]}"#;
    let a = mapped.normalize(body).unwrap().remove(0);
    assert_eq!(
        (
            a.resource.as_str(),
            a.resource_type.as_str(),
            a.value,
            a.threshold
        ),
        ("z1", "local_instance", Some(0.91), Some(0.8))
    );
}

#[test]
fn a_truncated_notification_records_what_it_carries_and_warns_of_the_rest() {
    let source = AlertmanagerSource::new(WebhookAuth::Token(Secret::new("am-token")));
    let mut payload: serde_json::Value =
        serde_json::from_slice(&fixture("webhook-firing.json")).unwrap();
    let carried = payload["alerts"].as_array().unwrap().len();
    let log = CapturedLogs::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer({
            let log = log.clone();
            move || log.clone()
        })
        .with_ansi(false)
        .finish();
    let alerts = tracing::subscriber::with_default(subscriber, || {
        let whole = source.normalize(&serde_json::to_vec(&payload).unwrap());
        payload["truncatedAlerts"] = json!(7);
        let cut = source.normalize(&serde_json::to_vec(&payload).unwrap());
        (whole.unwrap(), cut.unwrap())
    });
    assert_eq!((alerts.0.len(), alerts.1.len()), (carried, carried));
    let text = log.text();
    assert_eq!(
        text.lines().count(),
        1,
        "one warning, for the cut one: {text}"
    );
    assert!(
        text.contains("WARN") && text.contains("truncated=7") && text.contains("max_alerts"),
        "{text}"
    );
}

#[tokio::test]
async fn prometheus_instant_queries() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v1/query"))
        .and(query_param("query", "rate(process_cpu_seconds_total{instance=\"web\"}[1m]) / 0.25"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "status": "success",
            "data": {"resultType": "vector", "result": [{"metric": {"instance": "web"}, "value": [1764086400.5, "1.2"]}]}
        })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v1/query"))
        .and(query_param(
            "query",
            "up{instance=~\"web\\\\.1(:[0-9]+)?\"}",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"status": "success", "data": {"resultType": "vector", "result": []}}),
        ))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v1/query"))
        .and(query_param("query", "broken("))
        .respond_with(ResponseTemplate::new(400).set_body_json(
            json!({"status": "error", "errorType": "bad_data", "error": "parse error"}),
        ))
        .mount(&server)
        .await;
    let mut queries = PromQueries::default();
    queries.0.insert(
        "cpu".into(),
        "rate(process_cpu_seconds_total{instance=\"{resource}\"}[1m]) / 0.25".into(),
    );
    queries.0.insert("broken".into(), "broken(".into());
    let m = PrometheusMetrics::new(server.uri(), queries);
    let q = |metric: &str, resource: &str| MetricQuery {
        resource: resource.into(),
        resource_type: "local_instance".into(),
        metric: metric.into(),
        lookback_secs: 60,
    };
    let s = m.current_value(&q("cpu", "web")).await.unwrap();
    assert_eq!(s.value, 1.2);
    assert_eq!(s.at.timestamp_millis(), 1764086400500);
    assert!(matches!(
        m.current_value(&q("up", "web.1")).await,
        Err(Error::NotFound { .. })
    ));
    let err = m.current_value(&q("broken", "web")).await.unwrap_err();
    assert!(
        matches!(err, Error::Invalid { .. }) && err.to_string().contains("parse error"),
        "{err}"
    );
    assert!(matches!(
        m.current_value(&q("not a metric{}", "web")).await,
        Err(Error::Invalid { .. })
    ));
}

#[tokio::test]
async fn prometheus_range_queries_give_the_history_oldest_first() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v1/query_range"))
        .and(query_param("query", "cpu_used{instance=\"web\"}"))
        .and(query_param("start", "1764086000"))
        .and(query_param("end", "1764086600"))
        .and(query_param("step", "2s"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "status": "success",
            "data": {"resultType": "matrix", "result": [{"metric": {"instance": "web"},
                "values": [[1764086000, "0.5"], [1764086002, "NaN"], [1764086004, "0.93"]]}]}
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v1/query_range"))
        .and(query_param("query", "bad_sample{instance=\"web\"}"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "status": "success",
            "data": {"resultType": "matrix", "result": [{"values": [[1764086000, "x"]]}]}
        })))
        .mount(&server)
        .await;
    let mut queries = PromQueries::default();
    queries
        .0
        .insert("cpu".into(), "cpu_used{instance=\"{resource}\"}".into());
    queries
        .0
        .insert("bad".into(), "bad_sample{instance=\"{resource}\"}".into());
    let m = PrometheusMetrics::new(server.uri(), queries);
    let q = |metric: &str| MetricQuery {
        resource: "web".into(),
        resource_type: "local_instance".into(),
        metric: metric.into(),
        lookback_secs: 60,
    };
    let at = |t: i64| chrono::DateTime::from_timestamp(t, 0).unwrap();
    let h = m
        .history(&q("cpu"), at(1764086000), at(1764086600))
        .await
        .unwrap();
    assert_eq!(
        h.iter()
            .map(|s| (s.at.timestamp(), s.value))
            .collect::<Vec<_>>(),
        [(1764086000, 0.5), (1764086004, 0.93)],
        "NaN points are left out"
    );
    let err = m
        .history(&q("bad"), at(1764086000), at(1764086600))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Invalid { .. }), "{err}");
    assert!(matches!(
        m.history(&q("cpu"), at(1764086600), at(1764086000)).await,
        Err(Error::Invalid { .. })
    ));
}

#[test]
fn monitoring_policies_become_alerting_rules() {
    let mut d = deployment_with("web", "e2-medium");
    d.monitoring = vec![MonitoringPolicy {
        resource_ref: ResourceName::new("web").unwrap(),
        resource_type: "local_instance".into(),
        metric_name: "cpu_high".into(),
        metric_path: "cpu".into(),
        threshold: 0.8,
        duration_secs: 30,
        severity: Severity::Critical,
        comparison: Comparison::GreaterThan,
        aligner: Aligner::Mean,
    }];
    let mut queries = PromQueries::default();
    queries.0.insert(
        "cpu".into(),
        "rate(process_cpu_seconds_total{instance=\"{resource}\"}[1m]) / 0.25".into(),
    );
    let file: serde_json::Value = serde_json::from_str(&rules_file(&d, &queries).unwrap()).unwrap();
    let rule = &file["groups"][0]["rules"][0];
    assert_eq!(rule["alert"], "cpu_high_web");
    assert_eq!(
        rule["expr"],
        "(rate(process_cpu_seconds_total{instance=\"web\"}[1m]) / 0.25) > 0.8"
    );
    assert_eq!(rule["for"], "30s");
    assert_eq!(rule["labels"]["severity"], "critical");
    assert_eq!(rule["labels"]["resource"], "web");
    assert_eq!(rule["labels"]["metric_name"], "cpu_high");
    // An alert from this rule maps back to the same resource and threshold.
    let body = json!({"version": "4", "alerts": [{"status": "firing", "fingerprint": "ab",
        "labels": rule["labels"], "annotations": {"value": "1.2"}}]});
    let a = AlertmanagerSource::new(WebhookAuth::Token(Secret::new("t")))
        .normalize(&serde_json::to_vec(&body).unwrap())
        .unwrap()
        .remove(0);
    assert_eq!(
        (
            a.resource.as_str(),
            a.resource_type.as_str(),
            a.metric.as_str()
        ),
        ("web", "local_instance", "cpu")
    );
    assert_eq!(
        (a.value, a.threshold, a.severity),
        (Some(1.2), Some(0.8), Severity::Critical)
    );
}
