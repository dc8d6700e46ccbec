//! Real metrics of local resources: CPU from /proc, health and latency over
//! HTTP, connections and memory from the database and cache themselves.

mod stores;

use crate::instances::{cpu_seconds, is_alive, tree_cpu_seconds, Instance, InstanceDir};
use crate::ladder::allotment;
use crate::profiles::{
    CPU_UTILIZATION, ERROR_RATE, HEALTH_FAILING, LOCAL_POSTGRES, LOCAL_REDIS, PG_CONNECTIONS,
    PG_CPU, REDIS_CLIENTS, REDIS_MEMORY, REQUEST_LATENCY_MS,
};
use async_trait::async_trait;
use chrono::Utc;
use infraai_core::{Error, MetricQuery, MetricSample, MetricSource, Result};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Reads local metrics. CPU utilization is measured between two readings of
/// the processes' CPU time: against the previous query of the same resource
/// (with the same processes) when it is at least `min_window` old, so a
/// watcher polling every few seconds gets a rolling window; otherwise over a
/// fresh `min_window`.
pub struct LocalMetrics {
    instances: InstanceDir,
    http: reqwest::Client,
    min_window: Duration,
    last: Mutex<HashMap<String, CpuReading>>,
}

#[derive(Clone, Debug)]
struct CpuReading {
    at: Instant,
    pids: Vec<u32>,
    seconds: f64,
}

fn gone(what: &str, name: &str) -> Error {
    Error::not_found(format!("process of local {what} {name}"))
}

impl LocalMetrics {
    /// Metrics of the resources recorded under `instances`.
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

    /// CPU time of `pids` (read by `read`) over a window / (`cores` each).
    async fn utilization(
        &self,
        key: &str,
        pids: Vec<u32>,
        read: fn(u32) -> Option<f64>,
        cores: f64,
    ) -> Result<f64> {
        let total = |pids: &[u32]| -> Result<f64> {
            pids.iter()
                .map(|p| read(*p).ok_or_else(|| Error::not_found(format!("process {p}"))))
                .sum()
        };
        let now = Instant::now();
        let last = || self.last.lock().unwrap_or_else(|p| p.into_inner());
        let previous = last().get(key).cloned();
        let start = match previous {
            Some(r) if r.pids == pids && now.duration_since(r.at) >= self.min_window => r,
            _ => {
                let start = CpuReading {
                    at: Instant::now(),
                    seconds: total(&pids)?,
                    pids: pids.clone(),
                };
                tokio::time::sleep(self.min_window).await;
                start
            }
        };
        let end = CpuReading {
            at: Instant::now(),
            seconds: total(&pids)?,
            pids,
        };
        let elapsed = end.at.duration_since(start.at).as_secs_f64();
        let used = (end.seconds - start.seconds) / elapsed;
        let allotted = cores * end.pids.len() as f64;
        last().insert(key.to_string(), end);
        Ok((used / allotted).max(0.0))
    }

    /// An instance's processes: a group's live instances, else its own.
    async fn processes(&self, name: &str) -> Result<Vec<Instance>> {
        let members = self.instances.members(name).await;
        let live: Vec<Instance> = if members.is_empty() {
            vec![self.instances.read(name).await?]
        } else {
            members
        };
        Ok(live.into_iter().filter(|i| is_alive(i.pid)).collect())
    }

    async fn instance_cpu(&self, name: &str) -> Result<f64> {
        let live = self.processes(name).await?;
        let Some(first) = live.first() else {
            return Err(gone("instance", name));
        };
        let cores = cores_of(&first.machine_type)?;
        let pids = live.iter().map(|i| i.pid).collect();
        self.utilization(&format!("instance/{name}"), pids, cpu_seconds, cores)
            .await
    }

    /// The share of an instance's (or group's) processes whose `/healthz`
    /// fails; 1 when none is running.
    async fn health_failing(&self, name: &str) -> f64 {
        let members = self.instances.members(name).await;
        let all = if members.is_empty() {
            match self.instances.read(name).await {
                Ok(i) => vec![i],
                Err(_) => return 1.0,
            }
        } else {
            members
        };
        let mut failing = 0;
        for i in &all {
            let ok = is_alive(i.pid)
                && self
                    .http
                    .get(format!("{}/healthz", i.url()))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
            failing += usize::from(!ok);
        }
        failing as f64 / all.len() as f64
    }

    /// Mean latency (ms) or error share since start, over an instance's
    /// (or group's) processes.
    async fn requests(&self, name: &str, metric: &str) -> Result<f64> {
        let (mut count, mut errors, mut seconds) = (0.0, 0.0, 0.0);
        for i in self.processes(name).await? {
            let text = self
                .http
                .get(format!("{}/metrics", i.url()))
                .send()
                .await
                .and_then(|r| r.error_for_status())
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
            count += get("demo_request_duration_seconds_count ");
            errors += get("demo_request_errors_total ");
            seconds += get("demo_request_duration_seconds_sum ");
        }
        if count == 0.0 {
            return Err(Error::not_found(format!("requests on {name}")));
        }
        Ok(if metric == ERROR_RATE {
            errors / count
        } else {
            seconds / count * 1000.0
        })
    }

    async fn postgres_cpu(&self, name: &str) -> Result<f64> {
        let db = self.instances.read(name).await?;
        if !is_alive(db.pid) {
            return Err(gone("database", name));
        }
        let cores = cores_of(&db.machine_type)?;
        self.utilization(
            &format!("postgres/{name}"),
            vec![db.pid],
            tree_cpu_seconds,
            cores,
        )
        .await
    }

    async fn value(&self, query: &MetricQuery) -> Result<f64> {
        let name = query.resource.as_str();
        match (query.resource_type.as_str(), query.metric.as_str()) {
            (LOCAL_POSTGRES, PG_CPU) => self.postgres_cpu(name).await,
            (LOCAL_POSTGRES, PG_CONNECTIONS) => {
                stores::postgres_connections(&self.instances.url(name).await?).await
            }
            (LOCAL_REDIS, REDIS_MEMORY | REDIS_CLIENTS) => {
                stores::redis_utilization(&self.instances.url(name).await?, &query.metric).await
            }
            (_, CPU_UTILIZATION) => self.instance_cpu(name).await,
            (_, HEALTH_FAILING) => Ok(self.health_failing(name).await),
            (_, REQUEST_LATENCY_MS | ERROR_RATE) => self.requests(name, &query.metric).await,
            (rt, other) => Err(Error::NotSupported {
                component: "local".into(),
                op: format!("metric {other} of {rt}"),
            }),
        }
    }
}

fn cores_of(machine_type: &str) -> Result<f64> {
    allotment(machine_type).ok_or_else(|| {
        Error::invalid(
            "local machine type",
            format!("{machine_type:?} is not on the local ladder"),
        )
    })
}

#[async_trait]
impl MetricSource for LocalMetrics {
    async fn current_value(&self, query: &MetricQuery) -> Result<MetricSample> {
        Ok(MetricSample {
            value: self.value(query).await?,
            at: Utc::now(),
        })
    }
}
