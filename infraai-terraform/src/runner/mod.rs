//! [`TerraformRunner`]: [`TfRunner`] over the real `terraform` CLI.

use crate::config::TerraformConfig;
use crate::error::{Result, Stop, TerraformError};
use crate::hcl::is_identifier;
use crate::process::{self, CancelToken, Finished, Invocation, Stream};
use crate::wire::{self, TfOutput};
use async_trait::async_trait;
use infraai_core::{
    Applied, ChangeSet, LogLevel, LogLine, LogSink, RunId, TerraformFiles, TfRunner, TfWorkspace,
    ValidationReport,
};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::OsString;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tracing::{info, warn};

mod adapter;
mod lock;
mod tfvars;

use lock::DirLock;

pub use tfvars::TfvarsChange;

/// The saved plan's file name inside a run's directory.
pub const PLAN_FILE: &str = "infraai.tfplan";
/// The lock file inside a run's directory (held with `flock` during an operation).
pub const LOCK_FILE: &str = ".infraai.lock";

/// How long a directory's `flock` is retried before it counts as busy.
const LOCK_RETRY: Duration = Duration::from_secs(1);

/// Substrings of diagnostics that mean "run init first", not "fix the files".
const NEEDS_INIT: &[&str] = &[
    "Missing required provider",
    "Module not installed",
    "Required plugins are not installed",
    "Inconsistent dependency lock file",
    "missing or corrupted provider plugins",
];

struct Active {
    run_id: RunId,
    op: &'static str,
    token: CancelToken,
}

/// Drives the real `terraform` binary, one work directory per run
/// (`<work_root>/<run_id>`).
///
/// * Every command runs with `TF_IN_AUTOMATION=1` and `TF_INPUT=0` (plus
///   `-input=false` where the command takes it: init, plan, apply, destroy),
///   with `-json` output where terraform has it, in its own process group,
///   under a per-operation timeout.
/// * Operations only run in `<work_root>/<run_id>`: a [`TfWorkspace`] naming
///   any other directory is refused.
/// * One operation per directory at a time: a second one gets
///   [`TerraformError::Busy`] (in-process map plus an `flock` on
///   [`LOCK_FILE`] against other processes).
/// * [`TerraformRunner::cancel`] stops the running operation of a run: SIGINT,
///   then after [`TerraformConfig::kill_grace`] SIGKILL to the whole group; the
///   operation returns `Cancelled`. Dropping an operation's future kills the
///   group too.
/// * `plan` saves [`PLAN_FILE`]; `apply` applies exactly that file and removes it.
/// * [`TfRunner::output`] replaces sensitive values by `"(sensitive value)"`;
///   [`TerraformRunner::outputs`] returns them, for callers that need them.
pub struct TerraformRunner {
    config: TerraformConfig,
    active: Mutex<HashMap<PathBuf, Active>>,
    /// Runs cancelled until [`TerraformRunner::resume`].
    cancelled: Mutex<HashSet<RunId>>,
    /// Directories whose saved plan was not read yet
    /// ([`TfRunner::plan_to_apply`]): `apply` reads it while applying.
    unread: Mutex<HashSet<PathBuf>>,
}

/// What a plan returns of its change set.
#[derive(Clone, Copy, PartialEq, Eq)]
enum PlanView {
    /// Each change with its attributes: `show -json` of the saved plan.
    Attributes,
    /// Addresses and actions from the plan's own stream; `apply` reads the
    /// attributes while it applies.
    Actions,
}

/// A poisoned mutex still holds consistent maps (every update is one call).
fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A sink that drops lines (for internal commands nobody watches).
struct NoLog;

impl LogSink for NoLog {
    fn log(&self, _line: LogLine) {}
}

/// Passes an apply's lines on and tells when it began changing resources
/// (its first `apply_start` event): from there an apply mostly waits on the
/// cloud, and a read beside it costs it nothing.
struct Changing<'a> {
    log: &'a dyn LogSink,
    started: &'a tokio::sync::Notify,
    /// The outputs of the apply's `outputs` event, masked.
    outputs: Mutex<Option<BTreeMap<String, Value>>>,
}

impl LogSink for Changing<'_> {
    fn log(&self, line: LogLine) {
        match line.fields.get("type").and_then(Value::as_str) {
            Some("apply_start") => self.started.notify_one(),
            Some("outputs") => {
                *locked(&self.outputs) = line
                    .fields
                    .get("outputs")
                    .and_then(wire::parse_outputs_event);
            }
            _ => {}
        }
        self.log.log(line);
    }
}

fn io_err(op: &'static str, dir: &Path) -> impl FnOnce(std::io::Error) -> TerraformError {
    let dir = dir.to_path_buf();
    move |source| TerraformError::Io { op, dir, source }
}

fn parse_err(op: &'static str, dir: &Path) -> impl FnOnce(String) -> TerraformError {
    let dir = dir.to_path_buf();
    move |detail| TerraformError::Parse { op, dir, detail }
}

/// A failed command's error: its error diagnostics, else the end of its
/// stderr, else of its stdout.
fn failed(op: &'static str, dir: &Path, done: &Finished, errors: &[LogLine]) -> TerraformError {
    let diags = wire::error_diagnostics(errors);
    let message = if !diags.is_empty() {
        diags.join("; ")
    } else if !done.stderr.trim().is_empty() {
        tail(&done.stderr, 2000).to_string()
    } else {
        tail(&done.stdout, 2000).to_string()
    };
    TerraformError::Failed {
        op,
        dir: dir.to_path_buf(),
        status: done.status_text(),
        message,
        diagnostics: infraai_core::DiagnosticList(wire::error_diagnostic_list(errors)),
    }
}

/// The last `max` bytes of `s` (on a char boundary), trimmed.
fn tail(s: &str, max: usize) -> &str {
    let s = s.trim();
    if s.len() <= max {
        return s;
    }
    let mut start = s.len() - max;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

fn valid_file_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && !name.contains(['/', '\\', '\0'])
        && (name.ends_with(".tf") || name.ends_with(".tf.json"))
}

impl TerraformRunner {
    /// A runner. Nothing is checked until the first command: a missing binary
    /// is reported then as [`TerraformError::BinaryNotFound`] (see also
    /// [`TerraformRunner::version`]).
    pub fn new(config: TerraformConfig) -> Self {
        Self {
            config,
            active: Mutex::new(HashMap::new()),
            cancelled: Mutex::new(HashSet::new()),
            unread: Mutex::new(HashSet::new()),
        }
    }

    /// The settings.
    pub fn config(&self) -> &TerraformConfig {
        &self.config
    }

    /// The workspace of a run (`<work_root>/<run_id>`), whether or not it exists yet.
    pub fn workspace(&self, run_id: RunId) -> TfWorkspace {
        TfWorkspace {
            run_id,
            dir: self.config.work_root.join(run_id.to_string()),
        }
    }

    /// Cancels a run: the operation running for it (if any) stops and returns
    /// a `Cancelled` error once its process group is gone, and every later
    /// operation of the run is refused as `Cancelled` until
    /// [`TerraformRunner::resume`] — so a cancel that lands between two steps
    /// (say after plan, before apply) still stops the run. Returns whether an
    /// operation was running.
    pub fn cancel(&self, run_id: RunId) -> bool {
        locked(&self.cancelled).insert(run_id);
        let active = locked(&self.active);
        let mut found = false;
        for a in active.values().filter(|a| a.run_id == run_id) {
            warn!(run_id = %run_id, op = a.op, "cancelling terraform operation");
            a.token.cancel();
            found = true;
        }
        found
    }

    /// Allows operations of a cancelled run again (e.g. to destroy what it made).
    pub fn resume(&self, run_id: RunId) {
        locked(&self.cancelled).remove(&run_id);
    }

    /// The operation currently running for `run_id`, if any.
    pub fn running(&self, run_id: RunId) -> Option<&'static str> {
        let active = locked(&self.active);
        active.values().find(|a| a.run_id == run_id).map(|a| a.op)
    }

    /// `terraform version -json`: the version of the configured binary.
    pub async fn version(&self) -> Result<String> {
        let dir = self.config.work_root.clone();
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(io_err("version", &dir))?;
        let args = vec!["version".into(), "-json".into()];
        let (done, _) = self
            .exec("version", &dir, &CancelToken::new(), args, None)
            .await?;
        let v: Value = serde_json::from_str(&done.stdout)
            .map_err(|e| parse_err("version", &dir)(e.to_string()))?;
        v["terraform_version"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| parse_err("version", &dir)("no terraform_version".into()))
    }

    fn env(&self) -> Vec<(OsString, OsString)> {
        let mut env: Vec<(OsString, OsString)> = self
            .config
            .env
            .iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        if let Some(f) = &self.config.cli_config_file {
            env.push(("TF_CLI_CONFIG_FILE".into(), f.into()));
        }
        env
    }

    /// Runs one command; streams lines to `log` (parsed as `-json` events when
    /// the command has `-json`) and returns how it ended with the error-level
    /// events. A non-zero exit is returned, not raised: each caller decides
    /// what it means (validate exits 1 for an invalid configuration).
    async fn exec(
        &self,
        op: &'static str,
        dir: &Path,
        token: &CancelToken,
        args: Vec<OsString>,
        log: Option<&dyn LogSink>,
    ) -> Result<(Finished, Vec<LogLine>)> {
        let started = Instant::now();
        let json_events = log.is_some() && args.iter().any(|a| a == "-json");
        let log = log.unwrap_or(&NoLog);
        let t = &self.config.timeouts;
        let timeout = match op {
            "init" => t.init,
            "validate" => t.validate,
            "plan" | "show" => t.plan,
            "apply" => t.apply,
            "destroy" => t.destroy,
            _ => t.output,
        };
        let env = self.env();
        let mut events = Vec::new();
        let done = process::run(
            Invocation {
                op,
                binary: &self.config.binary,
                dir,
                args,
                env: &env,
                timeout,
                grace: self.config.kill_grace,
                cancel: token,
            },
            |stream, line| {
                let l = match stream {
                    Stream::Stdout if json_events => wire::event_line(line),
                    Stream::Stdout => LogLine::info("terraform", line),
                    Stream::Stderr => LogLine {
                        level: LogLevel::Warn,
                        ..LogLine::info("terraform", line)
                    },
                };
                if json_events && l.level == LogLevel::Error {
                    events.push(l.clone());
                }
                log.log(l);
            },
        )
        .await;
        let done = match done {
            Err(e @ (TerraformError::Cancelled { .. } | TerraformError::Timeout { .. })) => {
                log.log(LogLine {
                    level: LogLevel::Error,
                    ..LogLine::info("terraform", e.to_string())
                });
                return Err(e);
            }
            other => other?,
        };
        info!(op, dir = %dir.display(), status = %done.status_text(), elapsed_ms = started.elapsed().as_millis() as u64, "terraform finished");
        Ok((done, events))
    }

    async fn init_locked(
        &self,
        ws: &TfWorkspace,
        lock: &DirLock<'_>,
        log: &dyn LogSink,
    ) -> Result<()> {
        let args = ["init", "-input=false", "-no-color"];
        let (done, events) = lock.exec("init", args, Some(log)).await?;
        if done.status.success() {
            return Ok(());
        }
        // Init refuses invalid configurations; if validate explains why, the
        // deploy loop's validate/fix step can repair them, so init is deferred.
        let report = self.validate_locked(ws, lock).await?;
        let config_errors: Vec<&str> = report
            .diagnostics
            .iter()
            .filter(|d| !NEEDS_INIT.iter().any(|n| d.summary.contains(n)))
            .map(|d| d.summary.as_str())
            .collect();
        if !report.valid && !config_errors.is_empty() {
            let message = format!(
                "init deferred: the configuration is invalid ({}); validate will report it",
                config_errors.join("; ")
            );
            log.log(LogLine {
                level: LogLevel::Warn,
                ..LogLine::info("terraform", message)
            });
            return Ok(());
        }
        Err(failed("init", &ws.dir, &done, &events))
    }

    async fn validate_locked(
        &self,
        ws: &TfWorkspace,
        lock: &DirLock<'_>,
    ) -> Result<ValidationReport> {
        let args = ["validate", "-json", "-no-color"];
        let (done, _) = lock.exec("validate", args, None).await?;
        wire::parse_validate(&done.stdout).map_err(|detail| {
            if done.status.success() {
                parse_err("validate", &ws.dir)(detail)
            } else {
                failed("validate", &ws.dir, &done, &[])
            }
        })
    }

    async fn plan_locked(
        &self,
        ws: &TfWorkspace,
        lock: &DirLock<'_>,
        log: &dyn LogSink,
        extra: Vec<OsString>,
        plan_file: &str,
        view: PlanView,
    ) -> Result<ChangeSet> {
        let path = ws.dir.join(plan_file);
        match tokio::fs::remove_file(&path).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(io_err("plan", &ws.dir)(e))
            }
            _ => {}
        }
        let mut args: Vec<OsString> = vec![
            "plan".into(),
            "-input=false".into(),
            "-json".into(),
            format!("-out={plan_file}").into(),
        ];
        args.extend(extra);
        let planned = lock.exec_ok("plan", args, Some(log)).await?;
        let set = match view {
            PlanView::Attributes => self.read_plan(ws, lock, plan_file).await?.0,
            PlanView::Actions => {
                wire::parse_planned_changes(&planned.stdout).map_err(parse_err("plan", &ws.dir))?
            }
        };
        // Only the plan `apply` applies is read there (a preview has a file
        // of its own).
        if plan_file == PLAN_FILE {
            let mut unread = locked(&self.unread);
            match view {
                PlanView::Attributes => unread.remove(&ws.dir),
                PlanView::Actions => unread.insert(ws.dir.clone()),
            };
        }
        log.log(LogLine::info(
            "terraform",
            format!("plan: {}", set.summary()),
        ));
        info!(run_id = %ws.run_id, summary = %set.summary(), "terraform plan saved");
        Ok(set)
    }

    /// `terraform show -json` of a saved plan: its change set, attributes
    /// and all, and the managed resources it leaves once applied.
    async fn read_plan(
        &self,
        ws: &TfWorkspace,
        lock: &DirLock<'_>,
        plan_file: &str,
    ) -> Result<(ChangeSet, Vec<infraai_core::StateResource>)> {
        let args = ["show", "-json", "-no-color", plan_file];
        let shown = lock.exec_ok("show", args, None).await?;
        wire::parse_plan_and_state(&shown.stdout).map_err(parse_err("show", &ws.dir))
    }

    /// Applies the saved plan and removes it. When it was saved without its
    /// attributes ([`PlanView::Actions`]), reads them while it applies
    /// (from the apply's first resource change on: before that the apply
    /// starts up, which is CPU work; the plan file is removed only after
    /// both) and returns them, with the outputs of the apply's `outputs`
    /// event and the resources the plan leaves: no `terraform output` or
    /// state read after it. A plan that cannot be read is logged, not an
    /// error: it is applied all the same.
    async fn apply_locked(
        &self,
        ws: &TfWorkspace,
        lock: &DirLock<'_>,
        log: &dyn LogSink,
    ) -> Result<Applied> {
        let path = ws.dir.join(PLAN_FILE);
        if !tokio::fs::try_exists(&path).await.unwrap_or(false) {
            return Err(TerraformError::NoSavedPlan {
                op: "apply",
                dir: ws.dir.clone(),
            });
        }
        let unread = locked(&self.unread).remove(&ws.dir);
        let args = ["apply", "-input=false", "-json", "-auto-approve", PLAN_FILE];
        let started = tokio::sync::Notify::new();
        let log = Changing {
            log,
            started: &started,
            outputs: Mutex::new(None),
        };
        let applying = async {
            let result = lock.exec_ok("apply", args, Some(&log)).await;
            started.notify_one();
            result
        };
        let reading = async {
            started.notified().await;
            self.read_plan(ws, lock, PLAN_FILE).await
        };
        let (result, read) = if unread {
            let (result, read) = tokio::join!(applying, reading);
            (result, Some(read))
        } else {
            (applying.await, None)
        };
        // A plan is applied at most once, whatever happened: after a partial
        // apply it is stale, and a new preview must be approved.
        if let Err(e) = tokio::fs::remove_file(&path).await {
            warn!(dir = %ws.dir.display(), error = %e, "could not remove the applied plan");
        }
        result?;
        let read = read.and_then(|read| {
            read.map_err(
                |e| warn!(dir = %ws.dir.display(), error = %e, "could not read the applied plan"),
            )
            .ok()
        });
        let outputs = log.outputs.into_inner().unwrap_or_else(|e| e.into_inner());
        Ok(match (read, outputs) {
            (Some((change_set, resources)), Some(outputs)) => Applied {
                change_set: Some(change_set),
                left: Some((outputs, resources)),
            },
            (read, _) => Applied {
                change_set: read.map(|(change_set, _)| change_set),
                left: None,
            },
        })
    }

    /// The dry-run preview of a destroy: `plan -destroy` into the saved plan,
    /// so that [`TfRunner::apply`] deletes exactly what was approved.
    pub async fn plan_destroy(&self, ws: &TfWorkspace, log: &dyn LogSink) -> Result<ChangeSet> {
        let lock = self.lock(ws, "plan_destroy").await?;
        let (destroy, view) = (vec!["-destroy".into()], PlanView::Attributes);
        self.plan_locked(ws, &lock, log, destroy, PLAN_FILE, view)
            .await
    }

    /// `terraform show -json` of the state: its managed resources (address,
    /// type, tainted). Attribute values are read but never kept or logged.
    pub async fn state_resources(
        &self,
        ws: &TfWorkspace,
    ) -> Result<Vec<infraai_core::StateResource>> {
        Ok(self.shown_state(ws).await?.0)
    }

    /// One `terraform show -json` of the state: its managed resources and
    /// its outputs (sensitive values included: never log them). After an
    /// apply this replaces `terraform output` (one process less per deploy).
    pub async fn shown_state(&self, ws: &TfWorkspace) -> Result<wire::ShownState> {
        let lock = self.lock(ws, "state").await?;
        let args = ["show", "-json", "-no-color"];
        let (done, _) = lock.exec("state", args, None).await?;
        if !done.status.success() {
            // Never the stdout: a state holds every attribute, secrets included.
            return Err(TerraformError::Failed {
                op: "state",
                dir: ws.dir.clone(),
                status: done.status_text(),
                message: tail(&done.stderr, 2000).to_string(),
                diagnostics: infraai_core::DiagnosticList::default(),
            });
        }
        wire::parse_shown_state(&done.stdout).map_err(parse_err("state", &ws.dir))
    }

    /// `terraform output -json` with every output's sensitivity and type.
    /// Sensitive values are included: never log them.
    pub async fn outputs(&self, ws: &TfWorkspace) -> Result<BTreeMap<String, TfOutput>> {
        let lock = self.lock(ws, "output").await?;
        let args = ["output", "-json", "-no-color"];
        let done = lock.exec_ok("output", args, None).await?;
        wire::parse_outputs(&done.stdout).map_err(parse_err("output", &ws.dir))
    }
}

async fn write_atomic(dir: &Path, path: &Path, bytes: &[u8], op: &'static str) -> Result<()> {
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.tmp"));
    tokio::fs::write(&tmp, bytes)
        .await
        .map_err(io_err(op, dir))?;
    tokio::fs::rename(&tmp, path).await.map_err(io_err(op, dir))
}

#[cfg(test)]
mod tests;
