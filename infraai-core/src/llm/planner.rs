//! [`LlmPlanner`]: goal → [`InfraPlan`], checked and re-costed by code.

use super::budget::TokenBudget;
use super::call::{Call, LlmCaller};
use super::prompts::{self, quote_json, PLAN_PROMPT_VERSION};
use crate::domain::{
    InfraPlan, MachineType, PlannedResource, ResourceKind, ResourceName, StackType,
};
use crate::rules::{PlanningCatalog, RulePlanner};
use crate::traits::{HistoryStore, LlmProvider, PlanRequest, Planner};
use crate::{Error, Result};
use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use tracing::warn;

/// Which clouds and regions the LLM planner plans for, and when cost
/// estimates disagree.
#[derive(Clone, Debug, PartialEq)]
pub struct LlmPlannerConfig {
    /// Cloud name → its supported regions; the first is the default. A
    /// request for a cloud or region not listed is refused with a clear error.
    pub regions: BTreeMap<String, Vec<String>>,
    /// Relative difference between the LLM's cost estimate and the price
    /// table above which both figures are shown (default 0.2 = 20%).
    pub cost_tolerance: f64,
}

impl Default for LlmPlannerConfig {
    /// The local cloud only; [`LlmPlanner::new`] adds its catalog's cloud.
    fn default() -> Self {
        Self {
            regions: BTreeMap::from([("local".to_string(), vec!["local".to_string()])]),
            cost_tolerance: 0.2,
        }
    }
}

/// What the LLM is asked for: an [`InfraPlan`] without the fields code owns
/// (cloud, resource types, monitoring), so nothing it says about them survives.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct PlanDraft {
    stack_type: StackType,
    region: String,
    machine_type: MachineType,
    autoscaling: bool,
    estimated_cost_usd: f64,
    risk_flags: Vec<String>,
    resources: Vec<ResourceDraft>,
    confidence: f64,
    summary: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ResourceDraft {
    name: ResourceName,
    kind: ResourceKind,
    machine_type: Option<MachineType>,
    count: u32,
    depends_on: Vec<ResourceName>,
    description: String,
}

/// A [`Planner`] backed by an LLM, with the rule-based planner as fallback
/// (invalid answer twice, provider failure, token budget spent).
///
/// Code keeps the last word: the cloud comes from the request, the region
/// must be a supported one, monitoring is emptied (the deploy loop binds it
/// from the registry), the plan's invariants are validated, and the monthly
/// cost is re-estimated from the [catalog](PlanningCatalog)'s prices:
/// when the LLM's figure differs by more than 20%, both are shown in the
/// summary and risk flags and the table's figure is used.
pub struct LlmPlanner {
    caller: LlmCaller,
    name: String,
    config: LlmPlannerConfig,
    catalog: PlanningCatalog,
    fallback: Arc<dyn Planner>,
}

super::call::caller_options!(LlmPlanner);

impl LlmPlanner {
    /// A planner asking `provider`, pricing from `catalog`, for the
    /// catalog's cloud and regions and the local cloud.
    pub fn new(provider: Arc<dyn LlmProvider>, catalog: PlanningCatalog) -> Self {
        let mut config = LlmPlannerConfig::default();
        config
            .regions
            .insert(catalog.cloud.clone(), catalog.regions.clone());
        Self {
            name: format!("llm:{}", provider.name()),
            caller: LlmCaller::new(provider),
            config,
            fallback: Arc::new(RulePlanner::new(catalog.clone())),
            catalog,
        }
    }

    /// Replaces the clouds/regions and cost tolerance.
    pub fn with_config(mut self, config: LlmPlannerConfig) -> Self {
        self.config = config;
        self
    }

    /// The planner used when the LLM cannot plan (default [`RulePlanner`]).
    pub fn with_fallback(mut self, planner: Arc<dyn Planner>) -> Self {
        self.fallback = planner;
        self
    }

    fn schema(regions: &[String]) -> Value {
        let mut schema =
            serde_json::to_value(schemars::schema_for!(PlanDraft)).unwrap_or(Value::Bool(true));
        if let Some(props) = schema.get_mut("properties") {
            props["region"] = json!({"type": "string", "enum": regions});
            props["confidence"] = json!({"type": "number", "minimum": 0, "maximum": 1});
            props["estimated_cost_usd"] = json!({"type": "number", "minimum": 0});
        }
        schema
    }

    /// The monthly cost by the catalog, and the machine types it has no price for.
    fn table_cost(&self, plan: &InfraPlan) -> (f64, Vec<String>) {
        let mut total = 0.0;
        let mut unknown = Vec::new();
        for r in &plan.resources {
            let machine = match (&r.machine_type, r.kind) {
                (Some(m), _) => m,
                (None, ResourceKind::Compute | ResourceKind::InstanceGroup) => &plan.machine_type,
                (None, _) => continue,
            };
            match self.catalog.monthly_price_usd(machine.as_str()) {
                Some(p) => total += p * f64::from(r.count),
                None => unknown.push(machine.to_string()),
            }
        }
        ((total * 100.0).round() / 100.0, unknown)
    }

    fn finish(&self, draft: PlanDraft, cloud: &str) -> std::result::Result<InfraPlan, Vec<String>> {
        let mut plan = InfraPlan {
            cloud: cloud.to_string(),
            stack_type: draft.stack_type,
            region: draft.region,
            machine_type: draft.machine_type,
            autoscaling: draft.autoscaling,
            estimated_cost_usd: draft.estimated_cost_usd,
            risk_flags: draft.risk_flags,
            resources: draft
                .resources
                .into_iter()
                .map(|r| PlannedResource {
                    name: r.name,
                    kind: r.kind,
                    resource_type: None,
                    machine_type: r.machine_type,
                    count: r.count,
                    depends_on: r.depends_on,
                    description: r.description,
                })
                .collect(),
            // Bound from the registry by the deploy loop, never from the LLM.
            monitoring: vec![],
            confidence: draft.confidence,
            summary: draft.summary,
        };
        plan.validate().map_err(|e| vec![format!("/: {e}")])?;
        let llm = plan.estimated_cost_usd;
        let (table, unknown) = self.table_cost(&plan);
        if unknown.is_empty() {
            let apart = if table > 0.0 {
                (llm - table).abs() / table
            } else if llm > 0.0 {
                f64::INFINITY
            } else {
                0.0
            };
            if apart > self.config.cost_tolerance {
                plan.risk_flags.push(format!(
                    "cost estimate: the LLM said ${llm:.2}/month, the price table gives ${table:.2}/month; using the table's figure"
                ));
                plan.summary = format!(
                    "{} (cost: LLM estimate ${llm:.2}/month, price table ${table:.2}/month)",
                    plan.summary
                );
            }
            plan.estimated_cost_usd = table;
        } else {
            plan.risk_flags.push(format!(
                "cost estimate ${llm:.2}/month is the LLM's own: the price table has no price for {}",
                unknown.join(", ")
            ));
        }
        Ok(plan)
    }
}

#[async_trait]
impl Planner for LlmPlanner {
    fn name(&self) -> &str {
        &self.name
    }

    async fn plan(&self, request: &PlanRequest) -> Result<InfraPlan> {
        let goal = request.goal.trim();
        if goal.is_empty() || goal.len() > 4000 {
            return Err(Error::invalid("goal", "must be 1–4000 characters"));
        }
        let regions = self.config.regions.get(&request.cloud).ok_or_else(|| {
            Error::invalid(
                "cloud",
                format!(
                    "{:?} is not supported by the LLM planner (supported: {})",
                    request.cloud,
                    self.config
                        .regions
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })?;
        let regions: Vec<String> = match &request.region {
            Some(r) if regions.contains(r) => vec![r.clone()],
            Some(r) => {
                return Err(Error::invalid(
                    "region",
                    format!(
                        "{r:?} is not a supported region of {} (supported: {})",
                        request.cloud,
                        regions.join(", ")
                    ),
                ))
            }
            None => regions.clone(),
        };
        let default_region = regions.first().cloned().unwrap_or_default();
        let prices: Vec<String> = self
            .catalog
            .prices()
            .map(|(m, p)| format!("{m} ${p:.2}"))
            .collect();
        let call = Call {
            component: "plan",
            prompt_version: PLAN_PROMPT_VERSION,
            system: prompts::render(
                "plan.system",
                &json!({ "cloud": request.cloud, "default_region": default_region, "prices": prices.join(", ") }),
            )?,
            prompt: prompts::render("plan.user", &json!({ "goal": quote_json(&goal) }))?,
            schema_name: "infra_plan",
            schema: Self::schema(&regions),
            incident_id: None,
            run_id: None,
            normalize: |_| {},
        };
        let parse = |v: &Value| {
            let draft: PlanDraft =
                serde_json::from_value(v.clone()).map_err(|e| vec![format!("/: {e}")])?;
            self.finish(draft, &request.cloud)
        };
        match self.caller.run(&call, parse).await {
            Ok(plan) => Ok(plan),
            Err(failure) => {
                warn!(error = %failure, "LLM planner failed; using the rule-based planner");
                let mut plan = self.fallback.plan(request).await?;
                plan.risk_flags.push(format!(
                    "planned by the {} planner: {failure}",
                    self.fallback.name()
                ));
                Ok(plan)
            }
        }
    }
}
