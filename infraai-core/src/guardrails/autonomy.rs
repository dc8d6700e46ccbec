//! Earned autonomy: whether the agent may run an action type on a resource
//! type alone is measured from the outcomes of its earlier proposals.
//!
//! Each (action type, resource type) pair has an [`AutonomyRecord`]. A pair
//! starts in [`AutonomyLevel::Shadow`] (the agent proposes, a human always
//! approves). When at least [`EarnedAutonomy::min_decisions`] decisions have
//! concluded and the share of them that a human approved and the feedback
//! check resolved reaches [`EarnedAutonomy::precision`] (an action that ran
//! without a human earns nothing), it is promoted to
//! [`AutonomyLevel::Auto`]. A failed feedback check or a human rejection
//! while it is `auto` demotes it to `shadow`, and it earns its way back from
//! zero. An operator may pin a pair to any level; a pinned pair keeps it.

use super::{GuardrailConfig, GuardrailInput, GuardrailRule, RuleOutcome};
use crate::domain::ActionKind;
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How much a pair may do alone.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum AutonomyLevel {
    /// Proposes; a human approves every action.
    #[default]
    Shadow,
    /// Runs without a human when the other rules allow it.
    Auto,
    /// Never proposed: the incident goes to a human instead.
    Never,
}

impl AutonomyLevel {
    /// The level's name (`shadow`, `auto`, `never`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Shadow => "shadow",
            Self::Auto => "auto",
            Self::Never => "never",
        }
    }
}

impl std::str::FromStr for AutonomyLevel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "shadow" => Ok(Self::Shadow),
            "auto" => Ok(Self::Auto),
            "never" => Ok(Self::Never),
            other => Err(format!(
                "unknown autonomy level {other:?} (shadow, auto or never)"
            )),
        }
    }
}

/// The thresholds of earned autonomy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EarnedAutonomy {
    /// When off, an unpinned pair runs as if it were `auto` (the other
    /// rules still apply); pins always hold. Default on.
    pub enabled: bool,
    /// The decisions that must have concluded before a promotion; the
    /// precision is measured over the last this many (default 20).
    pub min_decisions: u32,
    /// The share of those decisions approved and resolved that promotes a
    /// pair (default 0.95).
    pub precision: f64,
}

impl Default for EarnedAutonomy {
    fn default() -> Self {
        Self {
            enabled: true,
            min_decisions: 20,
            precision: 0.95,
        }
    }
}

/// Something that happened to one proposal of a pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The agent proposed the action (whatever the route).
    Proposed,
    /// A human approved it.
    Approved,
    /// A human rejected it.
    Rejected,
    /// It ran.
    Executed,
    /// The feedback check found the metric back within its threshold;
    /// `approved` when a human approved the action. Only approved
    /// successes count toward a promotion: an action that ran alone (at
    /// `auto`, pinned, or with earned autonomy off) earns nothing.
    Resolved {
        /// A human approved the action.
        approved: bool,
    },
    /// The action failed, or the feedback check found the problem remains.
    Unresolved,
}

/// A pair's standing: its level, its counts and its recent outcomes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AutonomyRecord {
    /// The action type.
    pub action: Option<ActionKind>,
    /// The resource type.
    pub resource_type: String,
    /// The level now.
    pub level: AutonomyLevel,
    /// Whether an operator pinned the level.
    pub pinned: bool,
    /// Proposals made.
    pub proposed: u64,
    /// Approved by a human.
    pub approved: u64,
    /// Rejected by a human.
    pub rejected: u64,
    /// Executed.
    pub executed: u64,
    /// Resolved by the feedback check.
    pub resolved: u64,
    /// Failed, or unresolved by the feedback check.
    pub unresolved: u64,
    /// Promotions to `auto`.
    pub promotions: u64,
    /// Demotions to `shadow`.
    pub demotions: u64,
    /// The last concluded decisions since the last demotion, oldest first:
    /// `true` approved by a human and resolved, `false` rejected or
    /// unresolved (an action that ran alone and resolved is not listed).
    pub recent: Vec<bool>,
    /// The last change of level.
    pub last_change: Option<LevelChange>,
}

/// A change of a pair's level.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LevelChange {
    /// The level before.
    pub from: AutonomyLevel,
    /// The level after.
    pub to: AutonomyLevel,
    /// Why.
    pub reason: String,
    /// Who: `agent`, or the operator who pinned it.
    pub by: String,
    /// When.
    pub at: DateTime<Utc>,
}

impl AutonomyRecord {
    /// The store key of a pair's record.
    pub fn key(action: ActionKind, resource_type: &str) -> String {
        format!("{}{}/{resource_type}", Self::KEY_PREFIX, action.name())
    }

    /// `scale_up on local_instance`.
    pub fn pair(&self) -> String {
        let action = self.action.map_or("?", ActionKind::name);
        format!("{action} on {}", self.resource_type)
    }

    /// The prefix of every record's key.
    pub const KEY_PREFIX: &'static str = "autonomy/";

    /// The recent decisions resolved, and how many there are.
    pub fn successes(&self) -> (usize, usize) {
        (
            self.recent.iter().filter(|ok| **ok).count(),
            self.recent.len(),
        )
    }

    /// One line on the pair's standing, e.g. `12/13 approved and resolved
    /// (needs 95% of at least 20)`.
    pub fn describe(&self, config: &EarnedAutonomy) -> String {
        let (ok, n) = self.successes();
        format!(
            "{ok}/{n} of its recent decisions approved and resolved (needs {:.0}% of at least {})",
            config.precision * 100.0,
            config.min_decisions
        )
    }

    /// Counts `outcome` and changes the level when it earns or loses
    /// autonomy; returns the change.
    pub fn observe(
        &mut self,
        outcome: Outcome,
        config: &EarnedAutonomy,
        at: DateTime<Utc>,
    ) -> Option<LevelChange> {
        match outcome {
            Outcome::Proposed => self.proposed += 1,
            Outcome::Approved => self.approved += 1,
            Outcome::Executed => self.executed += 1,
            Outcome::Rejected => {
                self.rejected += 1;
                return self.conclude(false, "a human rejected its action", config, at);
            }
            Outcome::Resolved { approved } => {
                self.resolved += 1;
                if !approved {
                    return None;
                }
                return self.conclude(true, "", config, at);
            }
            Outcome::Unresolved => {
                self.unresolved += 1;
                return self.conclude(false, "its action did not resolve the alert", config, at);
            }
        }
        None
    }

    /// Adds a concluded decision and applies promotion or demotion.
    fn conclude(
        &mut self,
        success: bool,
        failure: &str,
        config: &EarnedAutonomy,
        at: DateTime<Utc>,
    ) -> Option<LevelChange> {
        let window = config.min_decisions.max(1) as usize;
        self.recent.push(success);
        if self.recent.len() > window {
            self.recent.remove(0);
        }
        if self.pinned {
            return None;
        }
        match self.level {
            AutonomyLevel::Auto if !success => {
                self.recent.clear();
                self.demotions += 1;
                self.change(AutonomyLevel::Shadow, failure.to_string(), "agent", at)
            }
            AutonomyLevel::Shadow if self.earned(config) => {
                self.promotions += 1;
                let reason = self.describe(config);
                self.change(AutonomyLevel::Auto, reason, "agent", at)
            }
            _ => None,
        }
    }

    /// Whether the recent decisions earn a promotion.
    fn earned(&self, config: &EarnedAutonomy) -> bool {
        let (ok, n) = self.successes();
        n >= config.min_decisions.max(1) as usize && ok as f64 / n as f64 >= config.precision
    }

    /// An operator pins the pair to `level`, or (`None`) unpins it: it is
    /// then `shadow` until it earns `auto` again — at once when its recent
    /// decisions already do. Returns the change (`from` may equal `to`).
    pub fn pin(
        &mut self,
        level: Option<AutonomyLevel>,
        by: &str,
        config: &EarnedAutonomy,
        at: DateTime<Utc>,
    ) -> LevelChange {
        self.pinned = level.is_some();
        let (to, reason) = match level {
            Some(l) => (l, format!("pinned to {} by an operator", l.name())),
            None if self.earned(config) => (AutonomyLevel::Auto, self.describe(config)),
            None => (AutonomyLevel::Shadow, "unpinned by an operator".to_string()),
        };
        self.set_level(to, reason, by, at)
    }

    /// Moves to `to` for `reason`; `None` when the level stays.
    fn change(
        &mut self,
        to: AutonomyLevel,
        reason: String,
        by: &str,
        at: DateTime<Utc>,
    ) -> Option<LevelChange> {
        let change = self.set_level(to, reason, by, at);
        (change.from != change.to).then_some(change)
    }

    fn set_level(
        &mut self,
        to: AutonomyLevel,
        reason: String,
        by: &str,
        at: DateTime<Utc>,
    ) -> LevelChange {
        let change = LevelChange {
            from: self.level,
            to,
            reason,
            by: by.to_string(),
            at,
        };
        self.level = to;
        self.last_change = Some(change.clone());
        change
    }
}

/// A pair runs alone only at `auto`: `shadow` asks a human, `never`
/// escalates. With earned autonomy off, only pins count.
pub struct EarnedAutonomyRule;

impl GuardrailRule for EarnedAutonomyRule {
    fn name(&self) -> &'static str {
        "earned_autonomy"
    }
    fn check(&self, input: &GuardrailInput<'_>, config: &GuardrailConfig) -> RuleOutcome {
        let fresh = AutonomyRecord::default();
        let record = input.standing.autonomy.as_ref().unwrap_or(&fresh);
        let settings = &config.earned_autonomy;
        if !settings.enabled && !record.pinned {
            return RuleOutcome::Pass;
        }
        let kind = input.decision.recommended_action.kind();
        let pair = format!("{} on {}", kind.name(), input.alert.resource_type);
        match record.level {
            AutonomyLevel::Auto => RuleOutcome::Pass,
            AutonomyLevel::Never => {
                RuleOutcome::Deny(format!("an operator pinned {pair} to never"))
            }
            AutonomyLevel::Shadow if record.pinned => {
                RuleOutcome::NeedsApproval(format!("an operator pinned {pair} to shadow"))
            }
            AutonomyLevel::Shadow => RuleOutcome::NeedsApproval(format!(
                "{pair} has not earned autonomy yet: {}",
                record.describe(settings)
            )),
        }
    }
}
