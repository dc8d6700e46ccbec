//! The rule-based planner and decision policy: the offline default when no
//! LLM key is configured, and the fallback when the LLM fails.

mod catalog;
mod planner;
mod policy;

pub use catalog::PlanningCatalog;
pub use planner::{GoalFacts, RulePlanner};
pub use policy::RulePolicy;
