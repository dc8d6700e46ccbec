//! Cloud Monitoring metrics and metadata-server tokens against mock servers
//! serving the recorded shapes.

use infraai_core::*;
use infraai_gcp::*;
use std::sync::Arc;
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn fixture(p: &str) -> serde_json::Value {
    let p = format!("{}/../tests/fixtures/{p}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}")))
        .unwrap()
}

fn cpu(resource: &str) -> MetricQuery {
    MetricQuery {
        resource: resource.into(),
        resource_type: "gce_instance".into(),
        metric: "compute.googleapis.com/instance/cpu/utilization".into(),
        lookback_secs: 300,
    }
}

#[tokio::test]
async fn newest_point_with_a_metadata_token() {
    let metadata = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(
            "/computeMetadata/v1/instance/service-accounts/default/token",
        ))
        .and(header("Metadata-Flavor", "Google"))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("gcp-metadata/token.json")))
        .expect(1)
        .mount(&metadata)
        .await;
    let api = MockServer::start().await;
    let token = fixture("gcp-metadata/token.json")["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    Mock::given(method("GET"))
        .and(path("/v3/projects/demo-project/timeSeries"))
        .and(header("authorization", format!("Bearer {token}").as_str()))
        .and(query_param(
            "filter",
            CloudMonitoringMetrics::filter(&cpu("web-1")).as_str(),
        ))
        .and(query_param("aggregation.perSeriesAligner", "ALIGN_MEAN"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(fixture("gcp-monitoring/timeSeries-list.json")),
        )
        .mount(&api)
        .await;
    Mock::given(method("GET"))
        .and(path("/v3/projects/demo-project/timeSeries"))
        .and(query_param(
            "filter",
            CloudMonitoringMetrics::filter(&cpu("idle")).as_str(),
        ))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(fixture("gcp-monitoring/timeSeries-list-empty.json")),
        )
        .mount(&api)
        .await;
    let metrics = CloudMonitoringMetrics::new(
        api.uri(),
        "demo-project",
        Arc::new(MetadataServer::new(metadata.uri())),
    );
    let s = metrics.current_value(&cpu("web-1")).await.unwrap();
    assert_eq!(s.value, 0.973, "the newest point");
    assert_eq!(s.at.to_rfc3339(), "2026-11-25T16:05:00+00:00");
    // The token is cached: the second query asks the metadata server nothing.
    assert!(matches!(
        metrics.current_value(&cpu("idle")).await,
        Err(Error::NotFound { .. })
    ));
    assert_eq!(
        CloudMonitoringMetrics::filter(&cpu("we\"b")),
        "metric.type = \"compute.googleapis.com/instance/cpu/utilization\" AND resource.type = \"gce_instance\" AND metric.labels.instance_name = \"we\\\"b\""
    );
}

#[tokio::test]
async fn history_is_the_window_oldest_first() {
    let api = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v3/projects/demo-project/timeSeries"))
        .and(query_param(
            "interval.startTime",
            "2026-11-25T15:55:00+00:00",
        ))
        .and(query_param("interval.endTime", "2026-11-25T16:06:00+00:00"))
        .and(query_param("aggregation.alignmentPeriod", "60s"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(fixture("gcp-monitoring/timeSeries-list.json")),
        )
        .expect(1)
        .mount(&api)
        .await;
    let metrics = CloudMonitoringMetrics::new(
        api.uri(),
        "demo-project",
        Arc::new(StaticToken(Secret::new("t".to_string()))),
    );
    let at = |t: &str| {
        chrono::DateTime::parse_from_rfc3339(t)
            .unwrap()
            .with_timezone(&chrono::Utc)
    };
    let h = metrics
        .history(
            &cpu("web-1"),
            at("2026-11-25T15:55:00Z"),
            at("2026-11-25T16:06:00Z"),
        )
        .await
        .unwrap();
    assert_eq!(h.len(), 10);
    assert_eq!(
        (h[0].at.to_rfc3339().as_str(), h[0].value),
        ("2026-11-25T15:56:00+00:00", 0.91)
    );
    assert_eq!(h[9].value, 0.973, "the newest point last");
    assert!(h.windows(2).all(|w| w[0].at < w[1].at));
}

#[tokio::test]
async fn api_errors_map_to_kinds() {
    let api = MockServer::start().await;
    for (code, resource) in [(403, "forbidden"), (503, "busy"), (400, "bad")] {
        Mock::given(method("GET"))
            .and(query_param(
                "filter",
                CloudMonitoringMetrics::filter(&cpu(resource)).as_str(),
            ))
            .respond_with(ResponseTemplate::new(code).set_body_json(
                serde_json::json!({"error": {"code": code, "message": format!("m{code}")}}),
            ))
            .mount(&api)
            .await;
    }
    let metrics = CloudMonitoringMetrics::new(
        api.uri(),
        "demo-project",
        Arc::new(StaticToken(Secret::new("t"))),
    );
    assert!(matches!(
        metrics.current_value(&cpu("forbidden")).await,
        Err(Error::Forbidden { .. })
    ));
    let busy = metrics.current_value(&cpu("busy")).await.unwrap_err();
    assert!(busy.is_retryable(), "{busy}");
    assert!(matches!(
        metrics.current_value(&cpu("bad")).await,
        Err(Error::Invalid { .. })
    ));
}
