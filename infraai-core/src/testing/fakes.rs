//! Scripted and recording fakes of the adapter traits.

use crate::domain::*;
use crate::traits::*;
use crate::{Error, Result, RunId};
use async_trait::async_trait;
use chrono::Utc;
use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What [`ScriptedTfRunner::on_call`] runs.
type CallHook = Box<dyn Fn(&str) + Send + Sync>;

/// A [`TfRunner`] that follows a script: validation reports are returned in
/// order (the last one repeats), apply emits log lines, outputs are fixed.
/// Every call is recorded in [`ScriptedTfRunner::calls`].
pub struct ScriptedTfRunner {
    validations: Mutex<VecDeque<ValidationReport>>,
    change_set: ChangeSet,
    outputs: BTreeMap<String, serde_json::Value>,
    apply_error: Option<String>,
    apply_failures: Mutex<VecDeque<String>>,
    state: Mutex<Vec<StateResource>>,
    destroy_planned: Mutex<bool>,
    reports_left: bool,
    calls: Mutex<Vec<String>>,
    written: Mutex<Vec<TerraformFiles>>,
    on_call: Option<CallHook>,
}

impl ScriptedTfRunner {
    /// A runner whose configuration is valid at once.
    pub fn valid() -> Self {
        Self::with_validations(vec![ValidationReport {
            valid: true,
            diagnostics: vec![],
        }])
    }

    /// A runner returning these validation reports in order.
    pub fn with_validations(validations: Vec<ValidationReport>) -> Self {
        Self {
            validations: Mutex::new(validations.into()),
            change_set: ChangeSet {
                changes: vec![ResourceChange {
                    address: "fake_instance.api".into(),
                    action: ChangeAction::Create,
                    attributes: vec![],
                }],
            },
            outputs: BTreeMap::new(),
            apply_error: None,
            apply_failures: Mutex::default(),
            state: Mutex::default(),
            destroy_planned: Mutex::new(false),
            reports_left: false,
            calls: Mutex::default(),
            written: Mutex::default(),
            on_call: None,
        }
        .with_url("http://127.0.0.1:9/")
    }

    /// Outputs `url` as the deployment's service (`{"url": {"api": url}}`).
    pub fn with_url(mut self, url: &str) -> Self {
        self.outputs = BTreeMap::from([("url".to_string(), serde_json::json!({ "api": url }))]);
        self
    }

    /// Makes a successful `apply` report its outputs and state
    /// ([`Applied::left`]), as Terraform's runner does after a plan made to
    /// be applied at once.
    pub fn reporting_what_it_left(mut self) -> Self {
        self.reports_left = true;
        self
    }

    /// Makes `apply` fail with this message.
    pub fn failing_apply(mut self, message: &str) -> Self {
        self.apply_error = Some(message.into());
        self
    }

    /// Makes the next applies fail, one per message in order (each carrying
    /// the message as a Terraform error diagnostic), then succeed.
    pub fn failing_applies(self, messages: &[&str]) -> Self {
        *lock(&self.apply_failures) = messages.iter().map(|m| m.to_string()).collect();
        self
    }

    /// The operations called, in order (`write`, `init`, `validate`, `plan`,
    /// `apply`, `output`, `state`, `plan_destroy`).
    pub fn calls(&self) -> Vec<String> {
        lock(&self.calls).clone()
    }

    /// Every file set written, in order.
    pub fn written(&self) -> Vec<TerraformFiles> {
        lock(&self.written).clone()
    }

    /// Calls `hook` with each call's name (`init`, `validate`, `apply`, …)
    /// as the call starts, e.g. to engage STOP AUTONOMY mid-run.
    pub fn on_call(mut self, hook: impl Fn(&str) + Send + Sync + 'static) -> Self {
        self.on_call = Some(Box::new(hook));
        self
    }

    fn call(&self, name: &str) {
        lock(&self.calls).push(name.to_string());
        if let Some(hook) = &self.on_call {
            hook(name);
        }
    }
}

/// An invalid validation report with one error diagnostic.
pub fn invalid_report(summary: &str) -> ValidationReport {
    ValidationReport {
        valid: false,
        diagnostics: vec![Diagnostic {
            severity: DiagnosticSeverity::Error,
            summary: summary.into(),
            detail: String::new(),
            range: Some(SourceRange {
                filename: "main.tf".into(),
                start_line: 1,
                end_line: 1,
            }),
        }],
    }
}

#[async_trait]
impl TfRunner for ScriptedTfRunner {
    async fn write_files(&self, run_id: RunId, files: &TerraformFiles) -> Result<TfWorkspace> {
        self.call("write");
        lock(&self.written).push(files.clone());
        Ok(TfWorkspace {
            run_id,
            dir: PathBuf::from(format!("/nonexistent/scripted/{run_id}")),
        })
    }

    async fn init(&self, _: &TfWorkspace, log: &dyn LogSink) -> Result<()> {
        self.call("init");
        log.log(LogLine::info(
            "terraform",
            "Terraform has been successfully initialized!",
        ));
        Ok(())
    }

    async fn validate(&self, _: &TfWorkspace) -> Result<ValidationReport> {
        self.call("validate");
        let mut q = lock(&self.validations);
        let next = if q.len() > 1 {
            q.pop_front()
        } else {
            q.front().cloned()
        };
        next.ok_or_else(|| Error::invalid("script", "no validation reports scripted"))
    }

    async fn plan(&self, _: &TfWorkspace, _: &dyn LogSink) -> Result<ChangeSet> {
        self.call("plan");
        *lock(&self.destroy_planned) = false;
        Ok(self.change_set.clone())
    }

    async fn apply(&self, _: &TfWorkspace, log: &dyn LogSink) -> Result<Applied> {
        self.call("apply");
        if std::mem::take(&mut *lock(&self.destroy_planned)) {
            lock(&self.state).clear();
            return Ok(Applied::default());
        }
        *lock(&self.state) = self
            .change_set
            .changes
            .iter()
            .map(|c| StateResource {
                address: c.address.clone(),
                resource_type: c.address.split('.').next().unwrap_or_default().to_string(),
                tainted: false,
            })
            .collect();
        let scripted = lock(&self.apply_failures).pop_front();
        if let Some(message) = scripted {
            return Err(Error::backend(
                "scripted-terraform",
                "apply",
                false,
                crate::DiagnosticList(vec![Diagnostic {
                    severity: DiagnosticSeverity::Error,
                    summary: "apply failed".into(),
                    detail: message,
                    range: None,
                }]),
            ));
        }
        for c in &self.change_set.changes {
            log.log(LogLine::info(
                "terraform",
                format!("{}: Creating...", c.address),
            ));
            log.log(LogLine::info(
                "terraform",
                format!("{}: Creation complete", c.address),
            ));
        }
        match &self.apply_error {
            Some(m) => Err(Error::backend(
                "scripted-terraform",
                "apply",
                false,
                m.clone(),
            )),
            None => Ok(Applied {
                change_set: None,
                left: (self.reports_left)
                    .then(|| (self.outputs.clone(), lock(&self.state).clone())),
            }),
        }
    }

    async fn output(&self, _: &TfWorkspace) -> Result<BTreeMap<String, serde_json::Value>> {
        self.call("output");
        Ok(self.outputs.clone())
    }

    async fn destroy(&self, _: &TfWorkspace, _: &dyn LogSink) -> Result<()> {
        self.call("destroy");
        lock(&self.state).clear();
        Ok(())
    }

    async fn state(&self, _: &TfWorkspace) -> Result<Vec<StateResource>> {
        self.call("state");
        Ok(lock(&self.state).clone())
    }

    async fn plan_destroy(&self, _: &TfWorkspace, _: &dyn LogSink) -> Result<ChangeSet> {
        self.call("plan_destroy");
        *lock(&self.destroy_planned) = true;
        Ok(ChangeSet {
            changes: lock(&self.state)
                .iter()
                .map(|r| ResourceChange {
                    address: r.address.clone(),
                    action: ChangeAction::Delete,
                    attributes: vec![],
                })
                .collect(),
        })
    }
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
