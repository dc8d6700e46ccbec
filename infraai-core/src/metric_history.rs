//! A metric source that remembers what it read, for charts over sources
//! without a history of their own.
//!
//! The threshold watcher and the feedback step read current values every few
//! seconds; [`RecordingMetrics`] keeps those readings (bounded, in memory) and
//! answers [`MetricSource::history`] from them when the wrapped source keeps
//! no history (the local cloud reads `/proc`, which has no past). Sources with
//! a real history (Prometheus, Cloud Monitoring, CloudWatch) answer from it.

use crate::{Error, MetricQuery, MetricSample, MetricSource, Result};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

/// Readings kept per (resource, metric): at one reading every 5 s, an hour.
pub const DEFAULT_POINTS_PER_SERIES: usize = 720;
/// Series kept; the one read least recently is dropped first.
pub const DEFAULT_SERIES: usize = 500;

type Key = (String, String);

struct Series {
    points: VecDeque<MetricSample>,
    touched: u64,
}

/// Wraps a [`MetricSource`]: every successful [`MetricSource::current_value`]
/// is remembered, and [`MetricSource::history`] falls back to those readings
/// when the wrapped source answers [`Error::NotSupported`]. Lost on restart.
pub struct RecordingMetrics {
    inner: Arc<dyn MetricSource>,
    seen: Mutex<(u64, HashMap<Key, Series>)>,
    points_per_series: usize,
    max_series: usize,
}

impl RecordingMetrics {
    /// Remembers the readings of `inner` with the default bounds.
    pub fn new(inner: Arc<dyn MetricSource>) -> Self {
        Self::with_bounds(inner, DEFAULT_POINTS_PER_SERIES, DEFAULT_SERIES)
    }

    /// Remembers at most `points_per_series` readings of at most `max_series`
    /// (resource, metric) pairs.
    pub fn with_bounds(
        inner: Arc<dyn MetricSource>,
        points_per_series: usize,
        max_series: usize,
    ) -> Self {
        Self {
            inner,
            seen: Mutex::new((0, HashMap::new())),
            points_per_series: points_per_series.max(1),
            max_series: max_series.max(1),
        }
    }

    fn record(&self, query: &MetricQuery, sample: MetricSample) {
        if !sample.value.is_finite() {
            return;
        }
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let (clock, series) = &mut *seen;
        *clock += 1;
        let key = (query.resource.clone(), query.metric.clone());
        if !series.contains_key(&key) && series.len() >= self.max_series {
            if let Some(stale) = series
                .iter()
                .min_by_key(|(_, s)| s.touched)
                .map(|(k, _)| k.clone())
            {
                series.remove(&stale);
            }
        }
        let entry = series.entry(key).or_insert_with(|| Series {
            points: VecDeque::new(),
            touched: 0,
        });
        entry.touched = *clock;
        // Keep time order; a reading no newer than the last adds nothing.
        if entry.points.back().is_some_and(|last| last.at >= sample.at) {
            return;
        }
        if entry.points.len() >= self.points_per_series {
            entry.points.pop_front();
        }
        entry.points.push_back(sample);
    }

    fn recorded(
        &self,
        query: &MetricQuery,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Vec<MetricSample> {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.1
            .get(&(query.resource.clone(), query.metric.clone()))
            .map(|s| {
                s.points
                    .iter()
                    .filter(|p| p.at >= from && p.at <= to)
                    .copied()
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[async_trait]
impl MetricSource for RecordingMetrics {
    async fn current_value(&self, query: &MetricQuery) -> Result<MetricSample> {
        let sample = self.inner.current_value(query).await?;
        self.record(query, sample);
        Ok(sample)
    }

    async fn history(
        &self,
        query: &MetricQuery,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<MetricSample>> {
        match self.inner.history(query, from, to).await {
            Err(Error::NotSupported { .. }) => Ok(self.recorded(query, from, to)),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    /// Answers the scripted values in turn, one second apart; no history.
    struct Script(Mutex<Vec<f64>>, DateTime<Utc>);

    #[async_trait]
    impl MetricSource for Script {
        async fn current_value(&self, _: &MetricQuery) -> Result<MetricSample> {
            let mut values = self.0.lock().unwrap();
            if values.is_empty() {
                return Err(Error::not_found("data"));
            }
            let value = values.remove(0);
            let n = 10 - values.len() as i64;
            Ok(MetricSample {
                value,
                at: self.1 + Duration::seconds(n),
            })
        }
    }

    fn query(resource: &str) -> MetricQuery {
        MetricQuery {
            resource: resource.into(),
            resource_type: "t".into(),
            metric: "cpu".into(),
            lookback_secs: 60,
        }
    }

    #[tokio::test]
    async fn readings_are_served_as_history_oldest_first_within_the_window_and_bounded() {
        let t0 = Utc::now();
        let values = vec![0.1, 0.2, f64::NAN, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0];
        let m = RecordingMetrics::with_bounds(Arc::new(Script(Mutex::new(values), t0)), 8, 2);
        for _ in 0..10 {
            m.current_value(&query("a")).await.unwrap();
        }
        let all = m
            .history(&query("a"), t0, t0 + Duration::seconds(60))
            .await
            .unwrap();
        let values: Vec<f64> = all.iter().map(|s| s.value).collect();
        assert_eq!(
            values,
            [0.2, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0],
            "the newest 8 readings, never NaN"
        );
        assert!(all.windows(2).all(|w| w[0].at < w[1].at));
        let window = m
            .history(
                &query("a"),
                t0 + Duration::seconds(7),
                t0 + Duration::seconds(8),
            )
            .await
            .unwrap();
        assert_eq!(
            window.iter().map(|s| s.value).collect::<Vec<_>>(),
            [0.7, 0.8]
        );
        assert!(m
            .history(&query("other"), t0, t0 + Duration::seconds(60))
            .await
            .unwrap()
            .is_empty());
    }

    #[tokio::test]
    async fn the_least_recently_read_series_is_dropped_first() {
        let t0 = Utc::now();
        let m = RecordingMetrics::with_bounds(
            Arc::new(Script(Mutex::new(vec![1.0, 2.0, 3.0, 4.0]), t0)),
            10,
            2,
        );
        m.current_value(&query("a")).await.unwrap();
        m.current_value(&query("b")).await.unwrap();
        m.current_value(&query("a")).await.unwrap();
        m.current_value(&query("c")).await.unwrap(); // drops b
        let end = t0 + Duration::seconds(60);
        let len = |r: Vec<MetricSample>| r.len();
        assert_eq!(len(m.history(&query("a"), t0, end).await.unwrap()), 2);
        assert_eq!(len(m.history(&query("b"), t0, end).await.unwrap()), 0);
        assert_eq!(len(m.history(&query("c"), t0, end).await.unwrap()), 1);
    }

    #[tokio::test]
    async fn a_source_with_history_answers_itself() {
        struct Remote;
        #[async_trait]
        impl MetricSource for Remote {
            async fn current_value(&self, _: &MetricQuery) -> Result<MetricSample> {
                Err(Error::not_found("data"))
            }
            async fn history(
                &self,
                _: &MetricQuery,
                from: DateTime<Utc>,
                _: DateTime<Utc>,
            ) -> Result<Vec<MetricSample>> {
                Ok(vec![MetricSample {
                    value: 42.0,
                    at: from,
                }])
            }
        }
        let m = RecordingMetrics::new(Arc::new(Remote));
        let t0 = Utc::now();
        let h = m.history(&query("a"), t0, t0).await.unwrap();
        assert_eq!(
            h,
            [MetricSample {
                value: 42.0,
                at: t0
            }]
        );
        assert!(m.current_value(&query("a")).await.is_err());
    }
}
