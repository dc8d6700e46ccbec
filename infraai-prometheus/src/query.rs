//! Prometheus as a [`MetricSource`], and monitoring policies as alerting rules.

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use infraai_core::{Deployment, Error, MetricQuery, MetricSample, MetricSource, Result};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;

/// Metric path → PromQL, with `{resource}` replaced by the resource name
/// (escaped for a label value). Metrics without an entry are queried as
/// `<metric>{instance=~"<resource>(:[0-9]+)?"}`.
#[derive(Clone, Debug, Default)]
pub struct PromQueries(pub BTreeMap<String, String>);

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn escape_regex(v: &str) -> String {
    v.chars()
        .flat_map(|c| {
            let special = "\\.+*?()|[]{}^$".contains(c);
            (special.then_some('\\'))
                .into_iter()
                .chain(std::iter::once(c))
        })
        .collect()
}

impl PromQueries {
    /// The PromQL for a metric of a resource.
    pub fn promql(&self, metric: &str, resource: &str) -> Result<String> {
        if let Some(t) = self.0.get(metric) {
            return Ok(t.replace("{resource}", &escape_label(resource)));
        }
        let valid = !metric.is_empty()
            && metric
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
            && !metric.starts_with(|c: char| c.is_ascii_digit());
        if !valid {
            return Err(Error::invalid(
                "Prometheus metric",
                format!("{metric:?} has no query configured and is not a metric name"),
            ));
        }
        Ok(format!(
            "{metric}{{instance=~\"{}\"}}",
            escape_label(&format!("{}(:[0-9]+)?", escape_regex(resource)))
        ))
    }
}

/// Reads current values with `/api/v1/query` (instant vectors).
pub struct PrometheusMetrics {
    base: String,
    queries: PromQueries,
    http: reqwest::Client,
}

impl PrometheusMetrics {
    /// A source reading from the Prometheus at `base` (e.g. `http://127.0.0.1:9090`).
    pub fn new(base: impl Into<String>, queries: PromQueries) -> Self {
        Self {
            base: base.into(),
            queries,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
        }
    }

    /// Runs one query API call and returns its `data`, with Prometheus's
    /// errors mapped: a 4xx is a bad query, anything else a backend error.
    async fn api(&self, endpoint: &str, promql: &str, params: &[(&str, String)]) -> Result<Value> {
        let url = format!("{}/api/v1/{endpoint}", self.base.trim_end_matches('/'));
        let response = self
            .http
            .get(&url)
            .query(&[("query", promql)])
            .query(params)
            .send()
            .await
            .map_err(|e| Error::backend("prometheus", "query", true, e.without_url()))?;
        let status = response.status();
        let mut body: Value = response.json().await.map_err(|e| {
            Error::backend(
                "prometheus",
                "query",
                status.is_server_error(),
                e.without_url(),
            )
        })?;
        if body["status"] != "success" {
            let detail = format!(
                "{} ({}): {}",
                body["errorType"].as_str().unwrap_or("error"),
                status,
                body["error"].as_str().unwrap_or_default()
            );
            return Err(if status.is_client_error() {
                Error::invalid(format!("PromQL {promql}"), detail)
            } else {
                Error::backend("prometheus", "query", status.is_server_error(), detail)
            });
        }
        Ok(body["data"].take())
    }
}

/// A `[<unix seconds>, "<value>"]` pair of the query API.
fn sample(pair: &Value) -> Result<MetricSample> {
    let invalid = || Error::invalid("Prometheus sample", pair.to_string());
    let at = pair.get(0).and_then(Value::as_f64).ok_or_else(invalid)?;
    let value: f64 = pair
        .get(1)
        .and_then(Value::as_str)
        .and_then(|v| v.parse().ok())
        .ok_or_else(invalid)?;
    let at = Utc
        .timestamp_millis_opt((at * 1000.0) as i64)
        .single()
        .ok_or_else(invalid)?;
    Ok(MetricSample { value, at })
}

/// Points a chart asks for over a window (the step is the window divided by
/// this, at least a second).
pub const HISTORY_POINTS: i64 = 250;

#[async_trait]
impl MetricSource for PrometheusMetrics {
    async fn current_value(&self, query: &MetricQuery) -> Result<MetricSample> {
        let promql = self.queries.promql(&query.metric, &query.resource)?;
        let data = self.api("query", &promql, &[]).await?;
        let first = data["result"].as_array().and_then(|r| r.first());
        let Some(pair) = first.map(|s| &s["value"]) else {
            return Err(Error::not_found(format!("data for {promql}")));
        };
        sample(pair)
    }

    /// `/api/v1/query_range` over the window, the first series' points.
    async fn history(
        &self,
        query: &MetricQuery,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<MetricSample>> {
        if to < from {
            return Err(Error::invalid("history window", "ends before it starts"));
        }
        let promql = self.queries.promql(&query.metric, &query.resource)?;
        let step = ((to - from).num_seconds() / HISTORY_POINTS).max(1);
        let params = [
            ("start", from.timestamp().to_string()),
            ("end", to.timestamp().to_string()),
            ("step", format!("{step}s")),
        ];
        let data = self.api("query_range", &promql, &params).await?;
        let values = data["result"]
            .as_array()
            .and_then(|r| r.first())
            .and_then(|s| s["values"].as_array());
        values
            .into_iter()
            .flatten()
            .map(sample)
            .filter(|s| !matches!(s, Ok(s) if !s.value.is_finite()))
            .collect()
    }
}

/// A Prometheus rules file (JSON, which Prometheus reads as YAML) with one
/// alerting rule per monitoring policy of the deployment: `expr` from the
/// query mapping and the policy's comparison and threshold, `for` from its
/// duration, labels carrying resource, resource type, metric name and severity.
pub fn rules_file(deployment: &Deployment, queries: &PromQueries) -> Result<String> {
    let mut rules = Vec::new();
    for p in &deployment.monitoring {
        let op = match p.comparison {
            infraai_core::Comparison::GreaterThan => ">",
            infraai_core::Comparison::LessThan => "<",
        };
        let expr = format!(
            "({}) {op} {}",
            queries.promql(&p.metric_path, p.resource_ref.as_str())?,
            p.threshold
        );
        rules.push(json!({
            "alert": format!("{}_{}", p.metric_name, p.resource_ref),
            "expr": expr,
            "for": format!("{}s", p.duration_secs),
            "labels": {
                "severity": serde_json::to_value(p.severity).unwrap_or_default(),
                "resource": p.resource_ref.as_str(),
                "instance": p.resource_ref.as_str(),
                "resource_type": p.resource_type,
                "metric": p.metric_path,
                "metric_name": p.metric_name,
                "threshold": p.threshold.to_string(),
                "deployment_id": deployment.deployment_id.to_string(),
            },
            "annotations": {
                "summary": format!("{} on {}: {} {op} {}", p.metric_name, p.resource_ref, p.metric_path, p.threshold),
                "value": "{{ $value }}",
            },
        }));
    }
    let file = json!({"groups": [{"name": format!("infraai-{}", deployment.deployment_id), "rules": rules}]});
    serde_json::to_string_pretty(&file).map_err(|e| Error::invalid("rules file", e.to_string()))
}
