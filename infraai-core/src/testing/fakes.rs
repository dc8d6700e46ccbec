//! Scripted and recording fakes of the adapter traits.

use crate::domain::*;
use crate::traits::*;
use crate::{Error, Result};
use async_trait::async_trait;
use chrono::Utc;
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A [`TerraformGenerator`] for a fake cloud named `memory` that maps kinds
/// to the simulated resource types (so [`super::profiles`] bind) and writes a
/// small, readable stand-in for HCL.
#[derive(Default)]
pub struct FakeGenerator;

impl TerraformGenerator for FakeGenerator {
    fn cloud(&self) -> &str {
        "memory"
    }

    fn resource_type(&self, kind: ResourceKind) -> Option<String> {
        use super::simulated::*;
        match kind {
            ResourceKind::Compute => Some(GCE_INSTANCE.into()),
            ResourceKind::InstanceGroup => Some(INSTANCE_GROUP.into()),
            ResourceKind::Database => Some(CLOUDSQL_DATABASE.into()),
            _ => None,
        }
    }

    fn generate(&self, request: &GenerateRequest<'_>) -> Result<TerraformFiles> {
        let body: String = request
            .plan
            .resources
            .iter()
            .map(|r| format!("# fake_resource {} ({:?})\n", r.name, r.kind))
            .collect();
        Ok(TerraformFiles::single(body))
    }
}

/// A [`Fixer`] that returns fixed files on every attempt it is asked.
pub struct StaticFixer {
    name: String,
    files: TerraformFiles,
    asked: AtomicUsize,
}

impl StaticFixer {
    /// A fixer named `name` that proposes `files`.
    pub fn new(name: &str, files: TerraformFiles) -> Self {
        Self {
            name: name.into(),
            files,
            asked: AtomicUsize::new(0),
        }
    }

    /// How often it was asked.
    pub fn asked(&self) -> usize {
        self.asked.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl Fixer for StaticFixer {
    fn name(&self) -> &str {
        &self.name
    }

    async fn fix(&self, request: &FixRequest<'_>) -> Result<Option<TerraformFiles>> {
        self.asked.fetch_add(1, Ordering::SeqCst);
        let mut files = self.files.clone();
        // Each attempt yields different files, as a real fixer's would.
        if let Some(main) = files.files.get_mut("main.tf") {
            main.push_str(&format!(
                "# fixed by {} (attempt {})\n",
                self.name, request.attempt
            ));
        }
        Ok(Some(files))
    }
}

/// A [`Verifier`] that reports every URL output as OK (or, if built with
/// `failing`, as failed) without touching the network.
#[derive(Default)]
pub struct StaticVerifier {
    fail: bool,
}

impl StaticVerifier {
    /// A verifier whose checks fail.
    pub fn failing() -> Self {
        Self { fail: true }
    }
}

#[async_trait]
impl Verifier for StaticVerifier {
    async fn verify(
        &self,
        outputs: &BTreeMap<String, serde_json::Value>,
    ) -> Result<VerificationReport> {
        let checks: Vec<EndpointCheck> = outputs
            .values()
            .flat_map(|v| match v {
                serde_json::Value::Object(m) => m
                    .values()
                    .filter_map(|u| u.as_str().map(str::to_string))
                    .collect(),
                serde_json::Value::String(s) => vec![s.clone()],
                _ => vec![],
            })
            .map(|url| EndpointCheck {
                url,
                ok: !self.fail,
                status: (!self.fail).then_some(200),
                latency_ms: Some(1),
                error: self.fail.then(|| "connection refused".to_string()),
                body_prefix: None,
                attempts: 1,
            })
            .collect();
        Ok(VerificationReport::new(checks))
    }
}

/// A [`MetricSource`] returning scripted values in order (the last repeats).
pub struct ScriptedMetrics {
    values: Mutex<VecDeque<f64>>,
    reads: AtomicUsize,
}

impl ScriptedMetrics {
    /// Returns `values` in order, repeating the last.
    pub fn new(values: Vec<f64>) -> Self {
        Self {
            values: Mutex::new(values.into()),
            reads: AtomicUsize::new(0),
        }
    }

    /// How many times it was read.
    pub fn reads(&self) -> usize {
        self.reads.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl MetricSource for ScriptedMetrics {
    async fn current_value(&self, query: &MetricQuery) -> Result<MetricSample> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        let mut q = lock(&self.values);
        let v = if q.len() > 1 {
            q.pop_front()
        } else {
            q.front().copied()
        };
        v.map(|value| MetricSample {
            value,
            at: Utc::now(),
        })
        .ok_or_else(|| Error::not_found(format!("metric {} on {}", query.metric, query.resource)))
    }
}

/// A [`Notifier`] and [`InboundChannel`] that records what it was asked and
/// parses inbound JSON bodies as [`HumanReply`].
#[derive(Default)]
pub struct RecordingApprover {
    requests: Mutex<Vec<ApprovalRequest>>,
    notifications: Mutex<Vec<Notification>>,
    acknowledgements: Mutex<Vec<(HumanReply, String)>>,
}

impl RecordingApprover {
    /// Approval requests sent so far.
    pub fn requests(&self) -> Vec<ApprovalRequest> {
        lock(&self.requests).clone()
    }

    /// Notifications sent so far.
    pub fn notifications(&self) -> Vec<Notification> {
        lock(&self.notifications).clone()
    }

    /// Acknowledgements sent so far: the command and the text.
    pub fn acknowledgements(&self) -> Vec<(HumanReply, String)> {
        lock(&self.acknowledgements).clone()
    }
}

#[async_trait]
impl Notifier for RecordingApprover {
    fn channel(&self) -> &str {
        "recording"
    }

    async fn request_approval(&self, request: &ApprovalRequest) -> Result<()> {
        lock(&self.requests).push(request.clone());
        Ok(())
    }

    async fn notify(&self, notification: &Notification) -> Result<()> {
        lock(&self.notifications).push(notification.clone());
        Ok(())
    }
}

#[async_trait]
impl InboundChannel for RecordingApprover {
    fn channel(&self) -> &str {
        "recording"
    }

    async fn parse_inbound(&self, request: &InboundRequest) -> Result<Vec<HumanReply>> {
        let reply: HumanReply = serde_json::from_slice(&request.body)
            .map_err(|e| Error::invalid("human reply", e.to_string()))?;
        Ok(vec![reply])
    }

    async fn acknowledge(&self, reply: &HumanReply, outcome: &str) -> Result<()> {
        lock(&self.acknowledgements).push((reply.clone(), outcome.to_string()));
        Ok(())
    }
}

/// An [`ActionHandler`] that records executions and succeeds (or fails when
/// built with `failing`).
#[derive(Default)]
pub struct RecordingActions {
    executed: Mutex<VecDeque<ActionRequest>>,
    fail: bool,
    keep: Option<usize>,
}

impl RecordingActions {
    /// A handler whose executions fail.
    pub fn failing() -> Self {
        Self {
            fail: true,
            ..Self::default()
        }
    }

    /// A handler that remembers only its newest `n` executions, so that a
    /// long-running simulation does not grow without bound.
    pub fn keeping_last(n: usize) -> Self {
        Self {
            keep: Some(n),
            ..Self::default()
        }
    }

    /// Executions so far (the newest `n` when built with `keeping_last`).
    pub fn executed(&self) -> Vec<ActionRequest> {
        lock(&self.executed).iter().cloned().collect()
    }
}

#[async_trait]
impl ActionHandler for RecordingActions {
    fn name(&self) -> &str {
        "recording"
    }

    async fn preview(&self, request: &ActionRequest) -> Result<ActionPreview> {
        Ok(ActionPreview {
            summary: format!(
                "would {} on {}",
                request.action.describe(),
                request.resource
            ),
            change_set: None,
        })
    }

    async fn execute(&self, request: &ActionRequest) -> Result<ActionReport> {
        {
            let mut executed = lock(&self.executed);
            if self.keep.is_some_and(|n| executed.len() >= n) {
                executed.pop_front();
            }
            executed.push_back(request.clone());
        }
        // Yield so concurrent callers really interleave in tests.
        tokio::task::yield_now().await;
        if self.fail {
            return Err(Error::backend(
                "recording",
                "execute",
                false,
                "scripted failure",
            ));
        }
        Ok(ActionReport {
            summary: format!("{} on {}", request.action.describe(), request.resource),
            details: serde_json::Value::Null,
        })
    }
}

/// Wraps a [`DecisionPolicy`] and counts its calls.
pub struct CountingPolicy<P> {
    inner: P,
    calls: AtomicUsize,
}

impl<P> CountingPolicy<P> {
    /// Wraps `inner`.
    pub fn new(inner: P) -> Self {
        Self {
            inner,
            calls: AtomicUsize::new(0),
        }
    }

    /// How many decisions were asked for.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl<P: DecisionPolicy> DecisionPolicy for CountingPolicy<P> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    async fn decide(&self, context: &DecisionContext) -> Result<OpsDecision> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.decide(context).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::IncidentId;

    #[tokio::test]
    async fn recording_actions_can_keep_only_the_newest() {
        let actions = RecordingActions::keeping_last(2);
        for resource in ["a", "b", "c"] {
            let request = ActionRequest {
                incident_id: IncidentId::new(),
                deployment_id: None,
                resource: resource.into(),
                resource_type: "vm".into(),
                action: Action::Restart {},
            };
            actions.execute(&request).await.expect("execute");
        }
        let kept: Vec<String> = actions.executed().into_iter().map(|r| r.resource).collect();
        assert_eq!(kept, ["b", "c"]);
    }
}
