//! What an action adds to the monthly bill, from the cloud adapter's price
//! table, and the rule that lets only a small increase run without a human.

use super::{GuardrailConfig, GuardrailInput, GuardrailRule, RuleOutcome};
use crate::domain::{Action, MachineType};
use crate::IncidentId;
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The monthly cost change of an action.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CostChange {
    /// USD per month, added (positive) or saved (negative).
    pub monthly_usd: f64,
    /// What changes, e.g. `small → large` or `2 → 3 instances of small`.
    pub change: String,
}

impl CostChange {
    /// [`CostChange::describe`], or that the price is unknown.
    pub fn text(cost: Option<&CostChange>) -> String {
        cost.map_or_else(|| "unknown (no price for this size)".into(), Self::describe)
    }

    /// `small → large: +$24.45/month`.
    pub fn describe(&self) -> String {
        let sign = if self.monthly_usd < 0.0 { "-" } else { "+" };
        format!(
            "{}: {sign}${:.2}/month",
            self.change,
            self.monthly_usd.abs()
        )
    }
}

impl GuardrailConfig {
    /// The monthly price of a machine type, from [`GuardrailConfig::monthly_prices`].
    pub fn monthly_price(&self, machine_type: &MachineType) -> Option<f64> {
        self.monthly_prices.get(machine_type.as_str()).copied()
    }

    /// What `action` adds to the monthly bill of a resource now of
    /// `current` machine type and `count` instances: a scale-up the price
    /// difference times the instances, a scale-out the price of the added
    /// instances, a restart or firewall change nothing. `None` when a price
    /// it needs is unknown (or the action changes nothing at all).
    pub fn cost_change(
        &self,
        action: &Action,
        current: Option<&MachineType>,
        count: Option<u32>,
    ) -> Option<CostChange> {
        let count = count.unwrap_or(1).max(1);
        match action {
            Action::ScaleUp { machine_type } => {
                let from = current?;
                let delta = self.monthly_price(machine_type)? - self.monthly_price(from)?;
                let each = if count > 1 {
                    format!(" ×{count}")
                } else {
                    String::new()
                };
                Some(CostChange {
                    monthly_usd: round_cents(delta * f64::from(count)),
                    change: format!("{from} → {machine_type}{each}"),
                })
            }
            Action::ScaleOut { instances } => {
                let machine = current?;
                let added = instances.saturating_sub(count);
                Some(CostChange {
                    monthly_usd: round_cents(self.monthly_price(machine)? * f64::from(added)),
                    change: format!("{count} → {instances} instances of {machine}"),
                })
            }
            Action::Restart {} | Action::ModifyFirewall { .. } => Some(CostChange {
                monthly_usd: 0.0,
                change: "no change in size".into(),
            }),
            Action::Ignore {} | Action::Escalate {} => None,
        }
    }
}

fn round_cents(usd: f64) -> f64 {
    (usd * 100.0).round() / 100.0
}

/// What the automatic actions of the last day added to the monthly bill:
/// the ledger the daily cap is checked against.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DailySpend {
    /// Automatic increases, oldest first (none older than a day is kept).
    pub entries: Vec<SpendEntry>,
}

/// One automatic increase.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SpendEntry {
    /// When it was decided.
    pub at: DateTime<Utc>,
    /// What it adds per month.
    pub monthly_usd: f64,
    /// The incident it was for.
    pub incident_id: Option<IncidentId>,
}

impl DailySpend {
    /// The store key of the ledger.
    pub const KEY: &'static str = "spend/automatic";

    /// The sum of the increases of the 24 hours before `at`.
    pub fn total(&self, at: DateTime<Utc>) -> f64 {
        let since = at - chrono::Duration::hours(24);
        (self.entries.iter())
            .filter(|e| e.at > since)
            .map(|e| e.monthly_usd)
            .sum()
    }

    /// Adds an automatic increase when the day's total stays within `cap`
    /// (dropping entries older than a day); `false`, adding nothing, when it
    /// would not.
    pub fn reserve(&mut self, entry: SpendEntry, cap: f64) -> bool {
        let since = entry.at - chrono::Duration::hours(24);
        self.entries.retain(|e| e.at > since);
        if entry.monthly_usd > 0.0 && self.total(entry.at) + entry.monthly_usd > cap {
            return false;
        }
        self.entries.push(entry);
        true
    }
}

/// What the agent's executed actions added to one deployment's monthly
/// bill, summed.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DeploymentCost {
    /// USD per month added (negative: saved).
    pub monthly_usd: f64,
    /// How many executed actions with a known price.
    pub actions: u64,
}

impl DeploymentCost {
    /// The prefix of every deployment's key.
    pub const KEY_PREFIX: &'static str = "cost/deployment/";

    /// The store key of a deployment's sum.
    pub fn key(deployment: crate::DeploymentId) -> String {
        format!("{}{deployment}", Self::KEY_PREFIX)
    }

    /// Adds one executed action's change.
    pub fn add(&mut self, monthly_usd: f64) {
        self.monthly_usd = round_cents(self.monthly_usd + monthly_usd);
        self.actions += 1;
    }
}

/// Automatic execution only when an action adds at most
/// [`GuardrailConfig::max_auto_monthly_increase_usd`] to the monthly bill
/// and the automatic actions of the last day stay within
/// [`GuardrailConfig::max_auto_daily_increase_usd`]; a larger increase, or
/// one whose price is unknown, needs a human.
pub struct CostCap;

impl GuardrailRule for CostCap {
    fn name(&self) -> &'static str {
        "cost_cap"
    }
    fn check(&self, input: &GuardrailInput<'_>, config: &GuardrailConfig) -> RuleOutcome {
        let action = &input.decision.recommended_action;
        let cap = config.max_auto_monthly_increase_usd;
        let (spent, daily) = (
            input.standing.spent_today_usd,
            config.max_auto_daily_increase_usd,
        );
        match config.cost_change(action, input.current_machine_type, input.current_count) {
            Some(c) if c.monthly_usd > cap => RuleOutcome::NeedsApproval(format!(
                "{} is more than the ${cap:.2}/month a change may add without a human",
                c.describe()
            )),
            Some(c) if c.monthly_usd > 0.0 && spent + c.monthly_usd > daily => {
                RuleOutcome::NeedsApproval(format!(
                    "{} on top of the ${spent:.2}/month automatic actions added in the last 24 hours passes the daily ${daily:.2}/month",
                    c.describe()
                ))
            }
            Some(_) => RuleOutcome::Pass,
            None => RuleOutcome::NeedsApproval(format!(
                "no known price for {}; a human decides what it may cost",
                action.describe()
            )),
        }
    }
}
