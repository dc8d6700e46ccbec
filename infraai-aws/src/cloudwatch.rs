//! CloudWatch `GetMetricData` (JSON 1.0 protocol) as a [`MetricSource`].

use crate::client::AwsApi;
use crate::generator::{
    OUTPUT_AUTOSCALING_GROUPS, OUTPUT_DATABASE_IDENTIFIERS, OUTPUT_INSTANCE_IDS,
};
use crate::profiles::{AWS_AUTOSCALING_GROUP, AWS_EC2_INSTANCE, AWS_RDS_INSTANCE};
use crate::resolve;
use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use infraai_core::{Error, MetricQuery, MetricSample, MetricSource, Result, RunStore};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

const TARGET: &str = "GraniteServiceVersion20100801";

/// Reads the latest CloudWatch value of a metric for a resource. The
/// resource is a plan name (`api`), resolved to its AWS id through the
/// deployment's outputs; an id that is not a plan name (an alarm made
/// outside infraai names the instance itself) is used as it is.
pub struct CloudWatchMetrics {
    api: AwsApi,
    store: Arc<dyn RunStore>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Answer {
    #[serde(default)]
    metric_data_results: Vec<Series>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Series {
    #[serde(default)]
    timestamps: Vec<f64>,
    #[serde(default)]
    values: Vec<f64>,
}

impl CloudWatchMetrics {
    /// Metrics over a signed API for the `monitoring` service.
    pub fn new(api: AwsApi, store: Arc<dyn RunStore>) -> Self {
        Self { api, store }
    }

    async fn dimension(&self, query: &MetricQuery) -> Result<(&'static str, String)> {
        let (name, output) = match query.resource_type.as_str() {
            AWS_EC2_INSTANCE => ("InstanceId", OUTPUT_INSTANCE_IDS),
            AWS_AUTOSCALING_GROUP => ("AutoScalingGroupName", OUTPUT_AUTOSCALING_GROUPS),
            AWS_RDS_INSTANCE => ("DBInstanceIdentifier", OUTPUT_DATABASE_IDENTIFIERS),
            other => {
                return Err(Error::NotSupported {
                    component: "aws-cloudwatch".into(),
                    op: format!("metrics of {other}"),
                })
            }
        };
        match resolve::deployment(self.store.as_ref(), None, &query.resource).await {
            Ok(d) => Ok((name, resolve::output_id(&d, output, &query.resource)?)),
            Err(Error::NotFound { .. }) => Ok((name, resolve::plain_id(&query.resource)?)),
            Err(e) => Err(e),
        }
    }

    /// `GetMetricData` for one metric of one resource over `[start, end]`
    /// (unix seconds), by minute: the finite points, oldest first.
    async fn datapoints(
        &self,
        query: &MetricQuery,
        start: i64,
        end: i64,
    ) -> Result<Vec<MetricSample>> {
        let (namespace, metric) = query.metric.rsplit_once('/').ok_or_else(|| {
            Error::invalid("CloudWatch metric", "must be <namespace>/<metric name>")
        })?;
        let (dim, value) = self.dimension(query).await?;
        let stat = if metric == "StatusCheckFailed" {
            "Maximum"
        } else {
            "Average"
        };
        let input = json!({
            "MetricDataQueries": [{
                "Id": "m1",
                "MetricStat": {
                    "Metric": {
                        "Namespace": namespace,
                        "MetricName": metric,
                        "Dimensions": [{"Name": dim, "Value": value}]
                    },
                    "Period": 60,
                    "Stat": stat
                },
                "ReturnData": true
            }],
            "StartTime": start,
            "EndTime": end,
            "ScanBy": "TimestampDescending",
            "MaxDatapoints": MAX_DATAPOINTS
        });
        let answer = self.api.json(TARGET, "GetMetricData", &input).await?;
        let answer: Answer = serde_json::from_value(answer)
            .map_err(|e| Error::backend("aws-monitoring", "GetMetricData", false, e))?;
        // Sorted here, in case a proxy reorders.
        let mut points: Vec<MetricSample> = answer
            .metric_data_results
            .iter()
            .flat_map(|s| s.timestamps.iter().zip(&s.values))
            .filter(|(_, v)| v.is_finite())
            .filter_map(|(at, v)| {
                let at = Utc.timestamp_millis_opt((at * 1000.0) as i64).single()?;
                Some(MetricSample { value: *v, at })
            })
            .collect();
        points.sort_by_key(|p| p.at);
        Ok(points)
    }
}

/// Most points one call returns: a day of minutes.
const MAX_DATAPOINTS: i64 = 1440;

#[async_trait]
impl MetricSource for CloudWatchMetrics {
    async fn current_value(&self, query: &MetricQuery) -> Result<MetricSample> {
        // To the end of the current minute: a point put a moment ago (at a
        // fraction of a second) is inside the window whether the service
        // buckets by period (CloudWatch) or compares raw timestamps.
        let now = Utc::now().timestamp();
        let end = now - now.rem_euclid(60) + 60;
        let start = now - i64::try_from(query.lookback_secs.clamp(60, 86_400)).unwrap_or(3600);
        let latest = self.datapoints(query, start, end).await?.pop();
        latest.ok_or_else(|| {
            Error::not_found(format!(
                "CloudWatch data for {} {} in the last {} s",
                query.resource, query.metric, query.lookback_secs
            ))
        })
    }

    /// At most a day of minutes, ending at `to`.
    async fn history(
        &self,
        query: &MetricQuery,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<MetricSample>> {
        if to < from {
            return Err(Error::invalid("history window", "ends before it starts"));
        }
        let start = from.timestamp().max(to.timestamp() - MAX_DATAPOINTS * 60);
        self.datapoints(query, start, to.timestamp()).await
    }
}
