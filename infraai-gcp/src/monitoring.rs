//! Cloud Monitoring `timeSeries.list` as a [`MetricSource`].

use crate::catalog::CLOUDSQL_DATABASE;
use crate::credential::Credentials;
use async_trait::async_trait;
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use infraai_core::{Error, MetricQuery, MetricSample, MetricSource, Result};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// Reads the newest aligned point of a metric for one resource.
pub struct CloudMonitoringMetrics {
    base: String,
    project: String,
    credentials: Arc<dyn Credentials>,
    http: reqwest::Client,
}

fn quote(v: &str) -> String {
    format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The label identifying a resource of a type in metric filters.
fn resource_label(resource_type: &str) -> &'static str {
    match resource_type {
        CLOUDSQL_DATABASE => "resource.labels.database_id",
        // `gce_instance` and any other type.
        _ => "metric.labels.instance_name",
    }
}

/// HTTP status → core error kind, in one place.
fn status_error(status: reqwest::StatusCode, body: &Value, what: &str) -> Error {
    let message = body["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    match status.as_u16() {
        400 => Error::invalid(what, message),
        401 => Error::Unauthenticated { detail: message },
        403 => Error::Forbidden { detail: message },
        404 => Error::not_found(format!("{what}: {message}")),
        s => Error::backend(
            "gcp-monitoring",
            "timeSeries.list",
            s == 429 || s >= 500,
            format!("HTTP {status}: {message}"),
        ),
    }
}

impl CloudMonitoringMetrics {
    /// Metrics of `project` from the Monitoring API at `base` (default
    /// `https://monitoring.googleapis.com`).
    pub fn new(
        base: impl Into<String>,
        project: impl Into<String>,
        credentials: Arc<dyn Credentials>,
    ) -> Self {
        Self {
            base: base.into(),
            project: project.into(),
            credentials,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(15))
                .build()
                .unwrap_or_default(),
        }
    }

    /// The `filter` for a query.
    pub fn filter(query: &MetricQuery) -> String {
        format!(
            "metric.type = {} AND resource.type = {} AND {} = {}",
            quote(&query.metric),
            quote(&query.resource_type),
            resource_label(&query.resource_type),
            quote(&query.resource)
        )
    }

    /// `timeSeries.list` over `[start, end]`, aligned by minute means: the
    /// first series' points, newest first (Cloud Monitoring's order).
    async fn points(
        &self,
        query: &MetricQuery,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<Vec<MetricSample>> {
        let token = self.credentials.token().await?;
        let url = format!(
            "{}/v3/projects/{}/timeSeries",
            self.base.trim_end_matches('/'),
            self.project
        );
        let response = self
            .http
            .get(url)
            .bearer_auth(token.expose())
            .query(&[
                ("filter", Self::filter(query)),
                ("interval.startTime", start.to_rfc3339()),
                ("interval.endTime", end.to_rfc3339()),
                ("aggregation.alignmentPeriod", "60s".into()),
                ("aggregation.perSeriesAligner", "ALIGN_MEAN".into()),
            ])
            .send()
            .await
            .map_err(|e| {
                Error::backend("gcp-monitoring", "timeSeries.list", true, e.without_url())
            })?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            let what = format!("metric {} of {}", query.metric, query.resource);
            return Err(status_error(status, &body, &what));
        }
        // `timeSeries` is missing when there is no data.
        let points = body["timeSeries"]
            .as_array()
            .and_then(|s| s.first())
            .and_then(|s| s["points"].as_array());
        points.into_iter().flatten().map(point).collect()
    }
}

/// One point of a time series: its value and the end of its interval.
fn point(point: &Value) -> Result<MetricSample> {
    let v = &point["value"];
    let value = v["doubleValue"]
        .as_f64()
        .or_else(|| {
            v["int64Value"]
                .as_str()
                .and_then(|s| s.parse::<i64>().ok())
                .map(|i| i as f64)
        })
        .or_else(|| v["int64Value"].as_i64().map(|i| i as f64))
        .ok_or_else(|| Error::invalid("Cloud Monitoring point", v.to_string()))?;
    let at = point["interval"]["endTime"]
        .as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| Error::invalid("Cloud Monitoring point", point.to_string()))?;
    Ok(MetricSample { value, at })
}

#[async_trait]
impl MetricSource for CloudMonitoringMetrics {
    async fn current_value(&self, query: &MetricQuery) -> Result<MetricSample> {
        let end = Utc::now();
        let start = end - ChronoDuration::seconds(query.lookback_secs.max(60) as i64);
        self.points(query, start, end)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| {
                Error::not_found(format!(
                    "data for metric {} of {}",
                    query.metric, query.resource
                ))
            })
    }

    async fn history(
        &self,
        query: &MetricQuery,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<MetricSample>> {
        if to < from {
            return Err(Error::invalid("history window", "ends before it starts"));
        }
        let mut points = self.points(query, from, to).await?;
        points.reverse();
        Ok(points)
    }
}
