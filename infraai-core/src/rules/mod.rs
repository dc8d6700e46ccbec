//! The rule-based planner and decision policy: the offline default when no
//! LLM key is configured, and the fallback when the LLM fails.

mod planner;
mod policy;
mod prices;

pub use planner::{GoalFacts, RulePlanner};
pub use policy::RulePolicy;
pub use prices::{monthly_price_usd, PRICE_TABLE};
