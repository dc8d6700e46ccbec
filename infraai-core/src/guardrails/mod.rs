//! Guardrails: code, not the LLM, decides whether a recommended action runs.
//!
//! Each rule is a small [`GuardrailRule`]; [`Guardrails`] runs them all and
//! routes the decision. A rule can let it pass, ask for a human, or deny it —
//! a denied (invalid, unknown, out-of-bounds) decision becomes
//! "escalate to a human" and never an action (architecture rule 1).
//!
//! The kill-switch is deliberately not a rule here: it is enforced by the
//! store in the same transaction that claims an execution
//! ([`crate::IncidentStore::claim_execution`]), so no read-then-act race can
//! slip past it.

mod autonomy;
mod cost;
mod overrides;
mod resource;
mod windows;

pub use autonomy::{
    AutonomyLevel, AutonomyRecord, EarnedAutonomy, EarnedAutonomyRule, LevelChange, Outcome,
};
pub use cost::{CostCap, CostChange, DailySpend, DeploymentCost, SpendEntry};
pub use overrides::GuardrailOverrides;
pub use resource::{FailedFixNeedsApproval, ManagedResource, StatefulNeedsApproval};
pub use windows::{open_windows, ChangeFreeze, ChangeWindow, WindowKind, WindowSchedule};

use crate::domain::{
    Action, ActionKind, Alert, FirewallChange, MachineType, OpsDecision, Severity,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Tunable limits of the built-in rules.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GuardrailConfig {
    /// Executable actions allowed per resource type. `ignore` and `escalate`
    /// are always allowed; a resource type not listed allows nothing else.
    pub allowed_actions: BTreeMap<String, BTreeSet<ActionKind>>,
    /// Machine types from smallest to largest; scale-ups must go up this ladder.
    pub machine_ladder: Vec<MachineType>,
    /// How many ladder steps one scale-up may take (default 1).
    pub max_ladder_steps: usize,
    /// The most instances a scale-out may leave in a group (default 10).
    #[serde(default = "default_max_instances")]
    pub max_instances: u32,
    /// Below this confidence a human must approve (default 0.7).
    pub confidence_floor: f64,
    /// Ports that may never be opened to the whole internet: remote shells
    /// and desktops (22, 3389) and databases and caches (3306 MySQL, 5432
    /// PostgreSQL, 6379 Redis, 27017 MongoDB) by default.
    pub never_open_to_world: Vec<u16>,
    /// Most executions per resource within `budget_window` before a human must
    /// approve the next one (stops an agent from flapping a resource).
    pub max_auto_actions: u32,
    /// The window for `max_auto_actions`.
    #[serde(with = "crate::serde_secs")]
    pub budget_window: Duration,
    /// Monthly USD per machine type (the cloud adapter's price table), for
    /// the cost change of each action (none by default).
    #[serde(default)]
    pub monthly_prices: BTreeMap<String, f64>,
    /// The most an action may add to the monthly bill and still run without
    /// a human (default $50); an unknown price always asks a human.
    #[serde(default = "default_max_auto_increase")]
    pub max_auto_monthly_increase_usd: f64,
    /// The most the automatic actions of the last 24 hours may add to the
    /// monthly bill together (default $200).
    #[serde(default = "default_max_auto_daily_increase")]
    pub max_auto_daily_increase_usd: f64,
    /// When an action type has earned the right to run alone.
    #[serde(default)]
    pub earned_autonomy: EarnedAutonomy,
}

impl Default for GuardrailConfig {
    /// Nothing executable and an empty ladder: a cloud adapter adds its
    /// resource types and ladder (e.g. `infraai_gcp::guardrails`).
    fn default() -> Self {
        Self {
            allowed_actions: BTreeMap::new(),
            machine_ladder: Vec::new(),
            max_ladder_steps: 1,
            max_instances: default_max_instances(),
            confidence_floor: 0.7,
            never_open_to_world: vec![22, 3389, 3306, 5432, 6379, 27017],
            max_auto_actions: 3,
            budget_window: Duration::from_secs(3600),
            monthly_prices: BTreeMap::new(),
            max_auto_monthly_increase_usd: default_max_auto_increase(),
            max_auto_daily_increase_usd: default_max_auto_daily_increase(),
            earned_autonomy: EarnedAutonomy::default(),
        }
    }
}

fn default_max_instances() -> u32 {
    10
}

fn default_max_auto_increase() -> f64 {
    50.0
}

fn default_max_auto_daily_increase() -> f64 {
    200.0
}

impl GuardrailConfig {
    /// Allows `actions` on `resource_type` (adding to what is allowed).
    pub fn allow(
        &mut self,
        resource_type: &str,
        actions: impl IntoIterator<Item = ActionKind>,
    ) -> &mut Self {
        self.allowed_actions
            .entry(resource_type.to_string())
            .or_default()
            .extend(actions);
        self
    }

    /// The executable actions allowed on a resource type, plus ignore/escalate.
    pub fn allowed_for(&self, resource_type: &str) -> Vec<ActionKind> {
        let mut kinds: Vec<ActionKind> = self
            .allowed_actions
            .get(resource_type)
            .into_iter()
            .flatten()
            .copied()
            .collect();
        kinds.extend([ActionKind::Ignore, ActionKind::Escalate]);
        kinds
    }

    /// The machine type one step up the ladder from `current`.
    pub fn next_machine_type(&self, current: &MachineType) -> Option<MachineType> {
        let i = self.machine_ladder.iter().position(|m| m == current)?;
        self.machine_ladder.get(i + 1).cloned()
    }

    /// One more instance than `current`, unless that passes `max_instances`.
    pub fn next_instance_count(&self, current: u32) -> Option<u32> {
        current.checked_add(1).filter(|n| *n <= self.max_instances)
    }
}

/// Everything a rule may look at.
#[derive(Clone, Debug)]
pub struct GuardrailInput<'a> {
    /// The recommended decision.
    pub decision: &'a OpsDecision,
    /// The alert that triggered it.
    pub alert: &'a Alert,
    /// The resource's current machine type, when known.
    pub current_machine_type: Option<&'a MachineType>,
    /// The resource's current instance count, when known.
    pub current_count: Option<u32>,
    /// What the store knows that the rules weigh.
    pub standing: &'a Standing,
}

/// What the store knows that the rules weigh: the resource's recent
/// actions, the day's automatic spend, the pair's earned autonomy and the
/// change windows, as of `at`.
#[derive(Clone, Debug)]
pub struct Standing {
    /// The time the rules judge at.
    pub at: chrono::DateTime<chrono::Utc>,
    /// Executions (automatic or approved) on this resource within the budget
    /// window.
    pub recent_actions: u64,
    /// What the automatic actions of the last 24 hours added to the monthly
    /// bill.
    pub spent_today_usd: f64,
    /// The earned-autonomy record of the decision's (action, resource
    /// type) pair; `None` for a pair never seen (it starts in `shadow`).
    pub autonomy: Option<AutonomyRecord>,
    /// Every configured change window.
    pub windows: Vec<ChangeWindow>,
    /// Whether the resource belongs to a deployment this agent made
    /// ([`Standing::now`] assumes it does).
    pub managed: bool,
    /// Whether the resource keeps data (a database or cache).
    pub stateful: bool,
    /// Kinds of action that ran on the resource in the last day and left it
    /// unresolved, newest first, each with a line on that incident.
    pub failed_fixes: Vec<(ActionKind, String)>,
}

impl Standing {
    /// Nothing recorded, as of now.
    pub fn now() -> Self {
        Self {
            at: chrono::Utc::now(),
            recent_actions: 0,
            spent_today_usd: 0.0,
            autonomy: None,
            windows: Vec::new(),
            managed: true,
            stateful: false,
            failed_fixes: Vec::new(),
        }
    }
}

impl GuardrailInput<'_> {
    /// The higher of the alert's and the decision's severity: a policy cannot
    /// talk a critical alert down.
    pub fn severity(&self) -> Severity {
        self.alert.severity.max(self.decision.severity)
    }
}

/// What one rule says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RuleOutcome {
    /// No objection.
    Pass,
    /// Allowed only with a human's approval.
    NeedsApproval(String),
    /// Not allowed at all: the incident is escalated instead.
    Deny(String),
}

/// One guardrail.
pub trait GuardrailRule: Send + Sync {
    /// Rule name, recorded in notes.
    fn name(&self) -> &'static str;
    /// Checks an executable decision.
    fn check(&self, input: &GuardrailInput<'_>, config: &GuardrailConfig) -> RuleOutcome;
}

/// Where a decision goes after the guardrails.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Route {
    /// Execute without asking.
    AutoExecute,
    /// Ask a human to approve.
    AskHuman,
    /// No action; hand to a human.
    Escalate,
    /// No action needed.
    Ignore,
}

/// The guardrails' verdict.
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    /// Where the decision goes.
    pub route: Route,
    /// The decision to store: the policy's, or an escalation replacing a denied one.
    pub decision: OpsDecision,
    /// Why (one line per rule that objected).
    pub notes: Vec<String>,
}

/// The set of rules and their configuration.
pub struct Guardrails {
    config: GuardrailConfig,
    rules: Vec<Box<dyn GuardrailRule>>,
}

impl Guardrails {
    /// The built-in rules: managed resources only, allow-list, parameter
    /// bounds, confidence floor, critical-needs-approval, stateful and
    /// failed-before need approval, automatic-action budget, cost cap,
    /// earned autonomy, change freeze.
    pub fn new(config: GuardrailConfig) -> Self {
        Self {
            config,
            rules: vec![
                Box::new(ManagedResource),
                Box::new(AllowList),
                Box::new(ParameterBounds),
                Box::new(ConfidenceFloor),
                Box::new(CriticalNeedsApproval),
                Box::new(StatefulNeedsApproval),
                Box::new(FailedFixNeedsApproval),
                Box::new(AutoActionBudget),
                Box::new(CostCap),
                Box::new(EarnedAutonomyRule),
                Box::new(ChangeFreeze),
            ],
        }
    }

    /// Adds an embedder's rule.
    pub fn with_rule(mut self, rule: Box<dyn GuardrailRule>) -> Self {
        self.rules.push(rule);
        self
    }

    /// The configuration.
    pub fn config(&self) -> &GuardrailConfig {
        &self.config
    }

    /// Routes a decision.
    pub fn evaluate(&self, input: &GuardrailInput<'_>) -> Verdict {
        self.evaluate_with(input, &self.config)
    }

    /// Routes a decision under `config` instead of the global one (a
    /// deployment's, [`GuardrailConfig::with_overrides`]).
    pub fn evaluate_with(&self, input: &GuardrailInput<'_>, config: &GuardrailConfig) -> Verdict {
        let decision = input.decision;
        match decision.recommended_action {
            Action::Escalate {} => {
                return Verdict {
                    route: Route::Escalate,
                    decision: decision.clone(),
                    notes: vec![],
                }
            }
            Action::Ignore {} if input.severity() == Severity::Critical => {
                let note =
                    "critical_needs_approval: a critical alert is never ignored without a human"
                        .to_string();
                return Verdict {
                    route: Route::Escalate,
                    decision: escalated(decision, input.severity(), &note),
                    notes: vec![note],
                };
            }
            Action::Ignore {} => {
                return Verdict {
                    route: Route::Ignore,
                    decision: decision.clone(),
                    notes: vec![],
                }
            }
            _ => {}
        }

        let mut notes = Vec::new();
        let mut needs_human = false;
        let mut denied = false;
        for rule in &self.rules {
            match rule.check(input, config) {
                RuleOutcome::Pass => {}
                RuleOutcome::NeedsApproval(why) => {
                    needs_human = true;
                    notes.push(format!("{}: {why}", rule.name()));
                }
                RuleOutcome::Deny(why) => {
                    denied = true;
                    notes.push(format!("{}: denied: {why}", rule.name()));
                }
            }
        }
        if denied {
            let why = notes.join("; ");
            return Verdict {
                route: Route::Escalate,
                decision: escalated(decision, input.severity(), &why),
                notes,
            };
        }
        if decision.requires_approval {
            needs_human = true;
            notes.push("policy: the decision asks for approval".into());
        }
        Verdict {
            route: if needs_human {
                Route::AskHuman
            } else {
                Route::AutoExecute
            },
            decision: decision.clone(),
            notes,
        }
    }
}

fn escalated(original: &OpsDecision, severity: Severity, why: &str) -> OpsDecision {
    OpsDecision::escalate(
        severity,
        format!(
            "guardrails refused the recommended action ({}): {why}. Original reasoning: {}",
            original.recommended_action.describe(),
            original.reasoning
        ),
    )
}

/// Only actions allowed for the resource type.
pub struct AllowList;

impl GuardrailRule for AllowList {
    fn name(&self) -> &'static str {
        "allow_list"
    }
    fn check(&self, input: &GuardrailInput<'_>, config: &GuardrailConfig) -> RuleOutcome {
        let kind = input.decision.recommended_action.kind();
        let rt = &input.alert.resource_type;
        if config
            .allowed_actions
            .get(rt)
            .is_some_and(|set| set.contains(&kind))
        {
            RuleOutcome::Pass
        } else {
            RuleOutcome::Deny(format!("{kind:?} is not allowed on resource type {rt:?}"))
        }
    }
}

/// Machine types only up the ladder, a bounded number of steps; scale-outs
/// growing a group up to `max_instances`; firewall
/// changes structurally valid and never opening admin ports to the world.
pub struct ParameterBounds;

impl GuardrailRule for ParameterBounds {
    fn name(&self) -> &'static str {
        "parameter_bounds"
    }
    fn check(&self, input: &GuardrailInput<'_>, config: &GuardrailConfig) -> RuleOutcome {
        match &input.decision.recommended_action {
            Action::ScaleUp { machine_type } => {
                let ladder = &config.machine_ladder;
                let Some(target) = ladder.iter().position(|m| m == machine_type) else {
                    return RuleOutcome::Deny(format!(
                        "machine type {machine_type} is not on the ladder"
                    ));
                };
                let Some(current) = input.current_machine_type else {
                    return RuleOutcome::NeedsApproval(format!(
                        "current machine type unknown; cannot check that {machine_type} is one step up"
                    ));
                };
                let Some(from) = ladder.iter().position(|m| m == current) else {
                    return RuleOutcome::Deny(format!(
                        "current machine type {current} is not on the ladder"
                    ));
                };
                if target <= from {
                    RuleOutcome::Deny(format!(
                        "{machine_type} is not larger than the current {current}"
                    ))
                } else if target - from > config.max_ladder_steps {
                    RuleOutcome::Deny(format!(
                        "{current} → {machine_type} is {} steps; at most {} allowed",
                        target - from,
                        config.max_ladder_steps
                    ))
                } else {
                    RuleOutcome::Pass
                }
            }
            Action::ScaleOut { instances } => {
                scale_out_within_bounds(*instances, input.current_count, config.max_instances)
            }
            Action::ModifyFirewall { change } => match firewall_within_bounds(change, config) {
                Ok(()) => RuleOutcome::Pass,
                Err(why) => RuleOutcome::Deny(why),
            },
            Action::Restart {} | Action::Ignore {} | Action::Escalate {} => RuleOutcome::Pass,
        }
    }
}

/// A scale-out grows the group and stays within `max`; with the current
/// count unknown, a human checks it.
fn scale_out_within_bounds(target: u32, current: Option<u32>, max: u32) -> RuleOutcome {
    if target > max {
        return RuleOutcome::Deny(format!(
            "{target} instances is more than the maximum of {max}"
        ));
    }
    match current {
        None => RuleOutcome::NeedsApproval(format!(
            "current instance count unknown; cannot check that {target} adds instances"
        )),
        Some(n) if target <= n => RuleOutcome::Deny(format!(
            "{target} instances is not more than the current {n}"
        )),
        Some(_) => RuleOutcome::Pass,
    }
}

/// The firewall bounds of [`ParameterBounds`], for action handlers that check
/// again right before calling a cloud API: the change is structurally valid
/// ([`FirewallChange::validate`]) and does not open a port of
/// [`GuardrailConfig::never_open_to_world`] to the whole internet. `Err` says why.
pub fn firewall_within_bounds(
    change: &FirewallChange,
    config: &GuardrailConfig,
) -> std::result::Result<(), String> {
    change.validate().map_err(|e| e.to_string())?;
    let world = change.source_ranges.iter().any(|c| c.is_anywhere());
    let admin: Vec<u16> = change
        .ports
        .iter()
        .copied()
        .filter(|p| config.never_open_to_world.contains(p))
        .collect();
    if change.allow && world && !admin.is_empty() {
        Err(format!(
            "never opens port(s) {admin:?} to the whole internet"
        ))
    } else {
        Ok(())
    }
}

/// Below the confidence floor a human approves; a confidence outside 0–1 is invalid.
pub struct ConfidenceFloor;

impl GuardrailRule for ConfidenceFloor {
    fn name(&self) -> &'static str {
        "confidence_floor"
    }
    fn check(&self, input: &GuardrailInput<'_>, config: &GuardrailConfig) -> RuleOutcome {
        let c = input.decision.confidence;
        if !(0.0..=1.0).contains(&c) {
            RuleOutcome::Deny(format!("confidence {c} is outside 0–1"))
        } else if c < config.confidence_floor {
            RuleOutcome::NeedsApproval(format!(
                "confidence {c:.2} is below the floor {:.2}",
                config.confidence_floor
            ))
        } else {
            RuleOutcome::Pass
        }
    }
}

/// Critical incidents always need a human (the seed's rule).
pub struct CriticalNeedsApproval;

impl GuardrailRule for CriticalNeedsApproval {
    fn name(&self) -> &'static str {
        "critical_needs_approval"
    }
    fn check(&self, input: &GuardrailInput<'_>, _: &GuardrailConfig) -> RuleOutcome {
        if input.severity() == Severity::Critical {
            RuleOutcome::NeedsApproval("critical severity always requires approval".into())
        } else {
            RuleOutcome::Pass
        }
    }
}

/// A bounded number of automatic executions per resource and window.
pub struct AutoActionBudget;

impl GuardrailRule for AutoActionBudget {
    fn name(&self) -> &'static str {
        "auto_action_budget"
    }
    fn check(&self, input: &GuardrailInput<'_>, config: &GuardrailConfig) -> RuleOutcome {
        let recent = input.standing.recent_actions;
        if recent >= u64::from(config.max_auto_actions) {
            RuleOutcome::NeedsApproval(format!(
                "{recent} actions on this resource in the last {}s (budget {})",
                config.budget_window.as_secs(),
                config.max_auto_actions
            ))
        } else {
            RuleOutcome::Pass
        }
    }
}

#[cfg(test)]
mod tests;
