//! Real metrics of local instances: CPU from /proc, health and latency over HTTP.

use crate::instances::{cpu_seconds, is_alive, InstanceDir};
use crate::ladder::allotment;
use crate::profiles::{CPU_UTILIZATION, ERROR_RATE, HEALTH_FAILING, REQUEST_LATENCY_MS};
use async_trait::async_trait;
use chrono::Utc;
use infraai_core::{Error, MetricQuery, MetricSample, MetricSource, Result};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Reads local instance metrics. CPU utilization is measured between two
/// readings of the process's CPU time: against the previous query of the same
/// instance when it is at least `min_window` old (so a watcher polling every
/// few seconds gets a rolling window), otherwise over a fresh `min_window`.
pub struct LocalMetrics {
    instances: InstanceDir,
    http: reqwest::Client,
    min_window: Duration,
    last: Mutex<HashMap<u32, (Instant, f64)>>,
}

impl LocalMetrics {
    /// Metrics of the instances recorded under `instances`.
    pub fn new(instances: InstanceDir) -> Self {
        Self {
            instances,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(3))
                .build()
                .unwrap_or_default(),
            min_window: Duration::from_secs(1),
            last: Mutex::new(HashMap::new()),
        }
    }

    async fn utilization(&self, pid: u32, machine_type: &str) -> Result<f64> {
        let cores = allotment(machine_type).ok_or_else(|| {
            Error::invalid(
                "local machine type",
                format!("{machine_type:?} is not on the local ladder"),
            )
        })?;
        let read = || cpu_seconds(pid).ok_or_else(|| Error::not_found(format!("process {pid}")));
        let now = Instant::now();
        let last = || self.last.lock().unwrap_or_else(|p| p.into_inner());
        let previous = last().get(&pid).copied();
        let (start, start_cpu) = match previous {
            Some((t, cpu)) if now.duration_since(t) >= self.min_window => (t, cpu),
            _ => {
                let start = (Instant::now(), read()?);
                tokio::time::sleep(self.min_window).await;
                start
            }
        };
        let end = (Instant::now(), read()?);
        last().insert(pid, end);
        let elapsed = end.0.duration_since(start).as_secs_f64();
        Ok(((end.1 - start_cpu) / elapsed / cores).max(0.0))
    }
}

#[async_trait]
impl MetricSource for LocalMetrics {
    async fn current_value(&self, query: &MetricQuery) -> Result<MetricSample> {
        let instance = self.instances.read(&query.resource).await;
        let value = match query.metric.as_str() {
            HEALTH_FAILING => match instance {
                Ok(i) if is_alive(i.pid) => {
                    let ok = self
                        .http
                        .get(format!("{}/healthz", i.url()))
                        .send()
                        .await
                        .is_ok_and(|r| r.status().is_success());
                    if ok {
                        0.0
                    } else {
                        1.0
                    }
                }
                // Gone or never recorded: failing.
                _ => 1.0,
            },
            CPU_UTILIZATION => {
                let i = instance?;
                if !is_alive(i.pid) {
                    return Err(Error::not_found(format!(
                        "process of local instance {}",
                        i.name
                    )));
                }
                self.utilization(i.pid, &i.machine_type).await?
            }
            REQUEST_LATENCY_MS | ERROR_RATE => {
                let i = instance?;
                let text = self
                    .http
                    .get(format!("{}/metrics", i.url()))
                    .send()
                    .await
                    .map_err(|e| Error::backend("local", "metrics", true, e.without_url()))?
                    .text()
                    .await
                    .map_err(|e| Error::backend("local", "metrics", true, e.without_url()))?;
                let get = |name: &str| {
                    text.lines()
                        .find_map(|l| {
                            l.strip_prefix(name)
                                .and_then(|v| v.trim().parse::<f64>().ok())
                        })
                        .unwrap_or(0.0)
                };
                let count = get("demo_request_duration_seconds_count ");
                if count == 0.0 {
                    return Err(Error::not_found(format!("requests on {}", i.name)));
                }
                if query.metric == ERROR_RATE {
                    get("demo_request_errors_total ") / count
                } else {
                    get("demo_request_duration_seconds_sum ") / count * 1000.0
                }
            }
            other => {
                return Err(Error::NotSupported {
                    component: "local".into(),
                    op: format!("metric {other}"),
                })
            }
        };
        Ok(MetricSample {
            value,
            at: Utc::now(),
        })
    }
}
