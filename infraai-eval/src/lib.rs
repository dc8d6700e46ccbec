//! Decision evaluation: how often the agent picks an acceptable action,
//! escalates when it should, and never runs a harmful one alone.
//!
//! A corpus of scenarios (`eval/scenarios/*.json`) — a deployment, its
//! recent incidents, open change windows, alerts as Cloud Monitoring,
//! Alertmanager or CloudWatch-through-SNS send them, and the acceptable and
//! harmful handlings — runs through the real ops loop (sources'
//! normalizers, ingest, policy, guardrails, recorded actions, re-check)
//! under each policy. [`report::gate`] compares the scores with the
//! committed baseline.
//!
//! ```no_run
//! # async fn demo() -> infraai_eval::Result<()> {
//! use infraai_eval::{evaluate, policy::PolicyChoice, report, scenario};
//! let scenarios = scenario::load_dir("eval/scenarios".as_ref())?;
//! let runs = evaluate(&scenarios, &[PolicyChoice::Rules]).await?;
//! println!("{}", report::table(&runs));
//! let baseline = report::Baseline::load("eval/baseline.json".as_ref())?;
//! assert!(report::gate(&runs, &baseline).holds());
//! # Ok(()) }
//! ```

pub mod policy;
pub mod report;
pub mod run;
pub mod scenario;

use policy::PolicyChoice;
use report::PolicyRun;
use std::path::Path;

/// What can go wrong.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A scenario, recorded answer or baseline is malformed, or a scenario
    /// could not be run.
    #[error("{path}: {detail}")]
    Scenario {
        /// The file or scenario.
        path: String,
        /// What is wrong.
        detail: String,
    },
}

impl EvalError {
    fn scenario(id: &str, detail: impl std::fmt::Display) -> Self {
        EvalError::Scenario {
            path: id.to_string(),
            detail: detail.to_string(),
        }
    }

    fn io(path: &Path, source: std::io::Error) -> Self {
        EvalError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

/// The crate's result.
pub type Result<T> = std::result::Result<T, EvalError>;

/// Runs every scenario under every policy.
pub async fn evaluate(
    scenarios: &[scenario::Scenario],
    policies: &[PolicyChoice],
) -> Result<Vec<PolicyRun>> {
    let mut runs = Vec::new();
    for choice in policies {
        let mut results = Vec::new();
        for s in scenarios {
            results.push(run::run(s, choice).await?);
        }
        let name = choice.name();
        runs.push(PolicyRun {
            summary: report::summarize(&name, scenarios, &results),
            results,
        });
    }
    Ok(runs)
}
