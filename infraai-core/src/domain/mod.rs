//! Domain types shared by every crate (names fixed by ARCHITECTURE.md).

mod alert;
mod audit;
mod decision;
mod deployment;
mod diagnosis;
mod incident;
mod job;
pub(crate) mod names;
pub(crate) mod plan;
mod run;
mod terraform;
mod vocabulary;

pub use alert::*;
pub use audit::*;
pub use decision::*;
pub use deployment::*;
pub use diagnosis::*;
pub use incident::*;
pub use job::*;
pub use names::{MachineType, ResourceName, MAX_NAME_LEN};
pub use plan::*;
pub use run::*;
pub use terraform::*;
pub use vocabulary::decision_in_our_words;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How bad an alert or incident is. Ordered: `info < warning < critical`.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth knowing (the product plan's `low`, accepted on input).
    #[serde(alias = "low")]
    Info,
    /// Needs attention soon (the plan's `medium`).
    #[serde(alias = "medium")]
    Warning,
    /// Service is or will be affected; always needs human approval (the
    /// plan's `high`).
    #[serde(alias = "high")]
    Critical,
}
