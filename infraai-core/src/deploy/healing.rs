//! Healing a failed plan or apply: the failure is diagnosed
//! ([`crate::heal`]) and acted on by class — a transient failure is retried
//! after a backoff, a name in use renames this run's resources, an invalid
//! configuration goes to the fixers, and anything else (or a class out of
//! attempts) stops the run with what an operator must do.

use super::pipeline::Progress;
use super::DeployAgent;
use crate::domain::*;
use crate::traits::*;
use crate::{Error, Result, RunId};
use std::collections::HashMap;
use std::ops::ControlFlow;
use tracing::{info, warn};

impl DeployAgent {
    /// Diagnoses the failure of `step` (`diagnosing`) and acts on its class.
    /// `Continue`: try again; `Break`: the run stopped (failed, humans told).
    pub(super) async fn heal(
        &self,
        run: &mut Run,
        p: &mut Progress,
        step: TerraformStep,
        error: Error,
        log: &dyn LogSink,
    ) -> Result<ControlFlow<()>> {
        // What exists now, whatever happens next: a failed run never
        // leaves a half-known state.
        if step == TerraformStep::Apply {
            let state = self.deps.runner.state(&p.ws).await;
            self.record_state(run, state, log);
        }
        // A cancel is a human decision, not a failure to diagnose or retry.
        if matches!(error, Error::Cancelled { .. }) {
            return Err(error);
        }
        let d = self.classifier.classify(&error, step, p.attempt);
        let pattern = d.pattern.as_deref().unwrap_or("no pattern");
        let note = format!("{step} failed: {} ({pattern})", d.class);
        self.enter(run, RunPhase::Diagnosing, Some(note)).await?;
        let max_fixes = self.max_fixes();
        let why = match d.class {
            FailureClass::Transient if p.retries < self.max_retries() => {
                return self.retry(run, p, d, log).await;
            }
            FailureClass::NameInUse if p.fixes < max_fixes => {
                return self.rename(run, p, d, &error, log).await;
            }
            FailureClass::InvalidConfiguration if p.fixes < max_fixes => {
                return self.fix_failed(run, p, d, &error, log).await;
            }
            FailureClass::Transient => format!("still failing after {} retries", p.retries),
            FailureClass::NameInUse | FailureClass::InvalidConfiguration => {
                format!("no fix attempts left ({} of {max_fixes} used)", p.fixes)
            }
            _ => "an operator must act".to_string(),
        };
        self.stop(run, &d, why, log).await
    }

    /// A transient failure: `apply_retry_N`, the backoff, then plan again.
    async fn retry(
        &self,
        run: &mut Run,
        p: &mut Progress,
        mut d: ApplyDiagnosis,
        log: &dyn LogSink,
    ) -> Result<ControlFlow<()>> {
        p.retries += 1;
        let (retries, max_retries) = (p.retries, self.max_retries());
        let wait = self.config.backoff(retries);
        d.decision = format!(
            "retry {retries} of {max_retries}: re-plan and re-apply in {}s",
            wait.as_secs_f64()
        );
        self.record_diagnosis(run, &d, log).await;
        let note = format!("{}; {}", d.decision, d.reasoning);
        self.enter(run, RunPhase::ApplyRetry(retries), Some(note))
            .await?;
        let outcome = format!(
            "retry {retries} of {max_retries} after {}s",
            wait.as_secs_f64()
        );
        let record = AuditRecord::agent(AuditStep::ApplyRetry, outcome)
            .input(
                serde_json::json!({ "attempt": p.attempt, "step": d.step, "evidence": d.evidence }),
            )
            .reasoning(d.reasoning.clone(), None);
        self.audit(run, record).await;
        tokio::time::sleep(wait).await;
        Ok(ControlFlow::Continue(()))
    }

    /// A name in use: fix attempt `fix_attempt_N` renames this run's
    /// resources (from the original plan) with a fresh suffix.
    async fn rename(
        &self,
        run: &mut Run,
        p: &mut Progress,
        mut d: ApplyDiagnosis,
        error: &Error,
        log: &dyn LogSink,
    ) -> Result<ControlFlow<()>> {
        p.fixes += 1;
        let attempt = p.fixes;
        let suffix = rename_suffix(run.id, attempt);
        d.decision = format!(
            "rename this run's resources with suffix {suffix} and re-plan (fix attempt {attempt} of {})",
            self.max_fixes()
        );
        self.record_diagnosis(run, &d, log).await;
        self.enter(run, RunPhase::FixAttempt(attempt), Some(d.decision.clone()))
            .await?;
        let renamed = match rename_plan(&p.original, &suffix) {
            Ok(plan) => plan,
            Err(e) => {
                return self
                    .stop(run, &d, format!("renaming failed: {e}"), log)
                    .await
            }
        };
        let files = self.generate(run.id, &renamed)?;
        run.fix_attempts.push(FixAttempt {
            attempt,
            diagnostics: diagnostics_of(error),
            fixer: format!("rename{suffix}"),
            files: Some(files.clone()),
            files_before: (attempt == 1).then(|| p.files.clone()),
        });
        run.plan = Some(renamed.clone());
        p.plan = renamed;
        self.rewrite(run, p, files).await?;
        Ok(ControlFlow::Continue(()))
    }

    /// An invalid configuration only plan or apply noticed: fix attempt
    /// `fix_attempt_N` gives the fixers its diagnostics.
    async fn fix_failed(
        &self,
        run: &mut Run,
        p: &mut Progress,
        mut d: ApplyDiagnosis,
        error: &Error,
        log: &dyn LogSink,
    ) -> Result<ControlFlow<()>> {
        p.fixes += 1;
        d.decision = format!(
            "fix loop with the {} diagnostics (fix attempt {} of {})",
            d.step,
            p.fixes,
            self.max_fixes()
        );
        self.record_diagnosis(run, &d, log).await;
        self.enter(run, RunPhase::FixAttempt(p.fixes), Some(d.decision.clone()))
            .await?;
        if self.fix(run, p, diagnostics_of(error)).await? {
            return Ok(ControlFlow::Continue(()));
        }
        let why = format!("no fixer could repair the {} failure", d.step);
        self.stop(run, &d, why, log).await
    }

    /// Keeps a diagnosis on the run, in the audit trail and in the run log.
    async fn record_diagnosis(&self, run: &mut Run, d: &ApplyDiagnosis, log: &dyn LogSink) {
        info!(run_id = %run.id, class = %d.class, pattern = ?d.pattern, decision = %d.decision, "apply failure diagnosed");
        log.log(LogLine {
            level: if d.class.needs_operator() {
                LogLevel::Error
            } else {
                LogLevel::Warn
            },
            source: "deploy".into(),
            message: format!(
                "{} failed ({}): {} Next: {}",
                d.step, d.class, d.reasoning, d.decision
            ),
            fields: serde_json::to_value(d).unwrap_or_default(),
        });
        run.apply_diagnoses.push(d.clone());
        let outcome = format!("{}: {}", d.class, d.decision);
        let record = AuditRecord::agent(AuditStep::ApplyDiagnosis, outcome)
            .input(serde_json::to_value(d).unwrap_or_default())
            .reasoning(d.reasoning.clone(), None);
        self.audit(run, record).await;
    }

    /// Ends the run as failed with the diagnosis, and tells the humans.
    async fn stop(
        &self,
        run: &mut Run,
        d: &ApplyDiagnosis,
        why: String,
        log: &dyn LogSink,
    ) -> Result<ControlFlow<()>> {
        let mut d = d.clone();
        d.decision = format!("stopped: {why}");
        self.record_diagnosis(run, &d, log).await;
        let message = format!(
            "{} failed ({}): {} Error: {}",
            d.step,
            d.class,
            d.advice,
            first_line(&d.evidence, 400)
        );
        if let Some(notifier) = &self.notifier {
            if let Err(e) = notifier.notify(&stop_notification(run, &d)).await {
                warn!(run_id = %run.id, error = %e, "notification failed");
            }
        }
        warn!(run_id = %run.id, class = %d.class, "run stopped");
        run.error = Some(message.clone());
        self.enter(run, RunPhase::Failed, Some(message)).await?;
        Ok(ControlFlow::Break(()))
    }
}

/// What the humans are told when a run stops: the advice, the failure, and
/// what of the run is left in its state.
fn stop_notification(run: &Run, d: &ApplyDiagnosis) -> Notification {
    let left = match &run.resources {
        Some(r) if !r.is_empty() => format!(
            "\n\n{} resource(s) of this run are in its Terraform state ({}); \
             preview \"destroy what this run created\" before removing them.",
            r.len(),
            r.iter()
                .map(|r| r.address.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Some(_) => "\n\nNothing of this run is in its Terraform state.".to_string(),
        None => String::new(),
    };
    Notification {
        incident_id: None,
        title: format!("Deploy run {} stopped: {}", run.id, d.class),
        body: format!(
            "{}\n\nGoal: {}\nStep: {} (attempt {})\nWhy: {}\nError: {}{left}",
            d.advice,
            run.goal,
            d.step,
            d.attempt,
            d.reasoning,
            first_line(&d.evidence, 600)
        ),
    }
}

/// The error's Terraform diagnostics, or one made of its message.
fn diagnostics_of(error: &Error) -> Vec<Diagnostic> {
    let d = error.diagnostics();
    if !d.is_empty() {
        return d;
    }
    vec![Diagnostic {
        severity: DiagnosticSeverity::Error,
        summary: error.to_string(),
        detail: String::new(),
        range: None,
    }]
}

/// The first non-blank line of `s`, cut to `max` characters.
fn first_line(s: &str, max: usize) -> String {
    let line = s
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    if line.chars().count() <= max {
        line.to_string()
    } else {
        format!("{}…", line.chars().take(max).collect::<String>())
    }
}

/// The suffix of rename attempt `attempt`: `-r<attempt><last 4 hex of the run id>`,
/// deterministic for a run.
pub fn rename_suffix(run_id: RunId, attempt: u8) -> String {
    let id = run_id.to_string();
    let tail: String = id
        .chars()
        .filter(char::is_ascii_hexdigit)
        .collect::<Vec<_>>()
        .iter()
        .rev()
        .take(4)
        .rev()
        .collect();
    format!("-r{attempt}{tail}")
}

/// The plan with every resource renamed `<name><suffix>` (names cut to fit
/// [`MAX_NAME_LEN`]), with dependencies and monitoring following.
pub fn rename_plan(plan: &InfraPlan, suffix: &str) -> Result<InfraPlan> {
    let keep = MAX_NAME_LEN.saturating_sub(suffix.len());
    let mut names: HashMap<String, ResourceName> = HashMap::new();
    for r in &plan.resources {
        let base: String = r.name.as_str().chars().take(keep).collect();
        names.insert(
            r.name.to_string(),
            ResourceName::new(format!("{base}{suffix}"))?,
        );
    }
    let rename = |n: &ResourceName| names.get(n.as_str()).cloned().unwrap_or_else(|| n.clone());
    let mut out = plan.clone();
    for r in &mut out.resources {
        r.name = rename(&r.name);
        r.depends_on = r.depends_on.iter().map(rename).collect();
    }
    for m in &mut out.monitoring {
        m.resource_ref = rename(&m.resource_ref);
    }
    out.validate()?;
    Ok(out)
}
