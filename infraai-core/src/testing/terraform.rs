//! A scripted Terraform runner.

use super::fakes::lock;
use crate::domain::*;
use crate::traits::*;
use crate::{Error, Result, RunId};
use async_trait::async_trait;
use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::Mutex;

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
                left: self
                    .reports_left
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
