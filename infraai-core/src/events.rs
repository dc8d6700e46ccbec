//! Live run events: phase changes and log lines, fanned out to subscribers.

use crate::domain::{LogLine, RunEvent, RunPhase};
use crate::traits::LogSink;
use crate::RunId;
use chrono::Utc;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

/// Lines kept per run for subscribers that arrive late.
const BACKLOG_PER_RUN: usize = 2000;
/// Runs whose backlog is kept.
const RUNS_KEPT: usize = 64;

#[derive(Default)]
struct Backlog {
    runs: HashMap<RunId, VecDeque<RunEvent>>,
    order: VecDeque<RunId>,
}

/// Publishes run events to any number of subscribers. Cheap to clone.
///
/// A subscriber that arrives late first gets the run's recent backlog, then
/// live events; a subscriber that falls too far behind sees a `Lagged` error
/// from the channel rather than blocking the deploy loop.
#[derive(Clone)]
pub struct EventBus {
    tx: broadcast::Sender<RunEvent>,
    backlog: Arc<Mutex<Backlog>>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}

impl EventBus {
    /// A bus with room for 4096 in-flight events per subscriber.
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(4096);
        Self {
            tx,
            backlog: Arc::default(),
        }
    }

    /// Publishes an event.
    pub fn publish(&self, event: RunEvent) {
        {
            let mut b = self.backlog.lock().unwrap_or_else(|p| p.into_inner());
            let run = event.run_id();
            if !b.runs.contains_key(&run) {
                b.order.push_back(run);
                while b.order.len() > RUNS_KEPT {
                    if let Some(old) = b.order.pop_front() {
                        b.runs.remove(&old);
                    }
                }
            }
            let q = b.runs.entry(run).or_default();
            if q.len() == BACKLOG_PER_RUN {
                q.pop_front();
            }
            q.push_back(event.clone());
        }
        // No receivers is fine: nobody is watching.
        let _ = self.tx.send(event);
    }

    /// Publishes a phase change.
    pub fn phase(&self, run_id: RunId, phase: RunPhase, note: Option<String>) {
        self.publish(RunEvent::Phase {
            run_id,
            phase,
            note,
            at: Utc::now(),
        });
    }

    /// The backlog of a run and a receiver for everything after it. Events of
    /// other runs also arrive on the receiver; filter by [`RunEvent::run_id`].
    pub fn subscribe(&self, run_id: RunId) -> (Vec<RunEvent>, broadcast::Receiver<RunEvent>) {
        let b = self.backlog.lock().unwrap_or_else(|p| p.into_inner());
        // Subscribing under the lock means no event falls between backlog and receiver.
        let rx = self.tx.subscribe();
        let backlog = b
            .runs
            .get(&run_id)
            .map(|q| q.iter().cloned().collect())
            .unwrap_or_default();
        (backlog, rx)
    }

    /// A [`LogSink`] that tags lines with `run_id` and publishes them.
    pub fn sink(&self, run_id: RunId) -> RunLog {
        RunLog {
            bus: self.clone(),
            run_id,
        }
    }
}

/// The [`LogSink`] of one run.
#[derive(Clone)]
pub struct RunLog {
    bus: EventBus,
    run_id: RunId,
}

impl LogSink for RunLog {
    fn log(&self, line: LogLine) {
        self.bus.publish(RunEvent::Log {
            run_id: self.run_id,
            line,
            at: Utc::now(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn late_subscribers_get_the_backlog_then_live_events() {
        let bus = EventBus::new();
        let run = RunId::new();
        bus.phase(run, RunPhase::Starting, None);
        bus.sink(run).log(LogLine::info("test", "hello"));
        let (backlog, mut rx) = bus.subscribe(run);
        assert_eq!(backlog.len(), 2);
        bus.phase(run, RunPhase::Completed, None);
        let ev = rx.recv().await.unwrap();
        assert!(matches!(
            ev,
            RunEvent::Phase {
                phase: RunPhase::Completed,
                ..
            }
        ));
    }

    #[test]
    fn backlog_is_bounded() {
        let bus = EventBus::new();
        for _ in 0..RUNS_KEPT + 5 {
            bus.phase(RunId::new(), RunPhase::Starting, None);
        }
        let run = RunId::new();
        for i in 0..BACKLOG_PER_RUN + 10 {
            bus.sink(run).log(LogLine::info("t", i.to_string()));
        }
        let b = bus.backlog.lock().unwrap();
        assert_eq!(b.runs.len(), RUNS_KEPT);
        assert_eq!(b.runs[&run].len(), BACKLOG_PER_RUN);
    }
}
