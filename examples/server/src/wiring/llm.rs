//! The planner, decision policy and fixer: the configured LLM provider's,
//! or the rule-based ones.

use crate::config::{Config, LlmSettings};
use anyhow::Context;
use infraai_core::llm::{
    LlmDecisionPolicy, LlmFixer, LlmObserver, LlmPlanner, LlmPlannerConfig, TokenBudget,
};
use infraai_core::rules::{RulePlanner, RulePolicy};
use infraai_core::*;
use infraai_gemini::{GeminiConfig, GeminiProvider, OpenAiCompatConfig, OpenAiCompatProvider};
use std::sync::Arc;
use tracing::warn;

/// Regions the LLM planner may choose on the clouds the server knows; the
/// first is the default. `None` for a cloud it has no list for.
fn planner_regions(cloud: &str) -> Option<Vec<String>> {
    let regions = match cloud {
        "aws" => infraai_aws::REGIONS,
        // The simulated cloud plans like the rule planner: GCP machine types
        // and regions (its generator ignores the region).
        "gcp" | "memory" => infraai_gcp::REGIONS,
        "local" => &["local"],
        _ => return None,
    };
    Some(regions.iter().map(|r| r.to_string()).collect())
}

/// The LLM planner's clouds and regions for the active cloud: its own list,
/// with the configured region (which every plan request carries) first.
/// `None` when the server has no region list for the cloud.
pub fn planner_config(cloud: &str, region: Option<&str>) -> Option<LlmPlannerConfig> {
    let mut regions = planner_regions(cloud)?;
    if let Some(r) = region {
        regions.retain(|x| x != r);
        regions.insert(0, r.to_string());
    }
    let mut config = LlmPlannerConfig::default();
    config.regions.clear();
    config.regions.insert(cloud.to_string(), regions);
    Some(config)
}

/// The configured LLM provider (`Config::load` allows one at most) and a
/// phrase naming it for the start-up banner.
fn llm_provider(llm: &LlmSettings) -> anyhow::Result<Option<(Arc<dyn LlmProvider>, String)>> {
    if let Some(api_key) = &llm.gemini_api_key {
        let mut gc = GeminiConfig::new(Secret::new(api_key.clone()));
        if let Some(model) = &llm.gemini_model {
            gc.model = model.clone();
        }
        if let Some(base) = &llm.gemini_base_url {
            gc.base_url = base.trim_end_matches('/').to_string();
        }
        let what = format!("Gemini ({}) at {}", gc.model, gc.base_url);
        let provider = GeminiProvider::new(gc).context("building the Gemini provider")?;
        return Ok(Some((Arc::new(provider), what)));
    }
    let Some(model) = &llm.openai_model else {
        return Ok(None);
    };
    let mut oc =
        OpenAiCompatConfig::new(llm.openai_api_key.clone().map(Secret::new), model.clone());
    if let Some(base) = &llm.openai_base_url {
        oc.base_url = base.trim_end_matches('/').to_string();
    }
    let keyless = if oc.api_key.is_some() {
        ""
    } else {
        " without a key"
    };
    let what = format!(
        "OpenAI-compatible ({}) at {}{keyless}",
        oc.model, oc.base_url
    );
    let provider =
        OpenAiCompatProvider::new(oc).context("building the OpenAI-compatible provider")?;
    Ok(Some((Arc::new(provider), what)))
}

/// The planner, decision policy and LLM fixer for the configured provider,
/// sharing one hourly token budget and the observer; the rule-based planner
/// and policy without one.
#[allow(clippy::type_complexity)]
pub(super) fn llm(
    config: &Config,
    cloud: &str,
    store: Arc<dyn MetadataStore>,
    observer: Arc<dyn LlmObserver>,
    report: &mut Vec<String>,
) -> anyhow::Result<(
    Arc<dyn Planner>,
    Arc<dyn DecisionPolicy>,
    Option<Arc<dyn Fixer>>,
)> {
    // Plans speak GCP's sizes on every cloud; each generator maps them.
    let rule_planner: Arc<dyn Planner> = Arc::new(RulePlanner::new(infraai_gcp::catalog()));
    let rule_policy: Arc<dyn DecisionPolicy> = Arc::new(RulePolicy);
    let Some((provider, what)) = llm_provider(&config.llm)? else {
        report.push(
            "llm: none — rule-based planner and decision policy, deterministic fixers (set GEMINI_API_KEY for Gemini, or INFRAAI_OPENAI_MODEL for an OpenAI-compatible API)".into(),
        );
        return Ok((rule_planner, rule_policy, None));
    };
    let budget = Arc::new(TokenBudget::per_hour(config.llm.llm_token_budget_per_hour));
    let planner: Arc<dyn Planner> = match planner_config(cloud, config.cloud.region.as_deref()) {
        Some(pc) => {
            report.push(format!(
                "llm: {what} — planner (regions of {cloud}: {}), decision policy and fixer, with the rule-based planner/policy as fallback",
                pc.regions.get(cloud).map(|r| r.join(", ")).unwrap_or_default()
            ));
            Arc::new(
                LlmPlanner::new(provider.clone(), infraai_gcp::catalog())
                    .with_config(pc)
                    .with_audit(store.clone())
                    .with_budget(budget.clone())
                    .with_observer(observer.clone())
                    .with_fallback(rule_planner),
            )
        }
        None => {
            warn!(
                cloud,
                "the LLM planner has no region list for this cloud; the rule-based planner plans"
            );
            report.push(format!(
                "llm: {what} — decision policy and fixer; the rule-based planner plans (no LLM region list for cloud {cloud:?})"
            ));
            rule_planner
        }
    };
    report.push(format!(
        "llm: token budget {} tokens/hour shared by planner, policy and fixer (then the rules decide, audited); decisions reused for identical incidents for {} s",
        config.llm.llm_token_budget_per_hour,
        config.llm.decision_cache_ttl_secs.as_secs()
    ));
    let fixer: Arc<dyn Fixer> = Arc::new(
        LlmFixer::new(provider.clone())
            .with_audit(store.clone())
            .with_budget(budget.clone())
            .with_observer(observer.clone()),
    );
    let policy: Arc<dyn DecisionPolicy> = Arc::new(
        LlmDecisionPolicy::new(provider)
            .with_audit(store)
            .with_budget(budget)
            .with_observer(observer)
            .with_cache_ttl(config.llm.decision_cache_ttl_secs)
            .with_budget_fallback(rule_policy),
    );
    Ok((planner, policy, Some(fixer)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use infraai_core::llm::ReplayProvider;
    use serde_json::json;

    #[test]
    fn the_planner_knows_the_regions_of_every_cloud_the_server_runs() {
        for cloud in ["gcp", "local", "aws", "memory"] {
            let c = planner_config(cloud, None).unwrap_or_else(|| panic!("{cloud}"));
            assert_eq!(c.regions.len(), 1, "{cloud}: only the active cloud");
            assert!(!c.regions[cloud].is_empty(), "{cloud}");
        }
        let aws = planner_config("aws", Some("eu-central-1")).unwrap();
        assert_eq!(aws.regions["aws"][0], "eu-central-1", "configured first");
        assert_eq!(
            aws.regions["aws"]
                .iter()
                .filter(|r| *r == "eu-central-1")
                .count(),
            1
        );
        let odd = planner_config("gcp", Some("me-central2")).unwrap();
        assert_eq!(odd.regions["gcp"][0], "me-central2");
        assert!(planner_config("azure", None).is_none());
    }

    #[tokio::test]
    async fn an_aws_plan_in_the_configured_region_is_the_llms() {
        let answer = json!({
            "stack_type": "web_app", "region": "eu-west-1", "machine_type": "e2-small",
            "autoscaling": false, "estimated_cost_usd": 12.0, "risk_flags": [],
            "resources": [{"name": "web", "kind": "compute", "machine_type": null, "count": 1,
                           "depends_on": [], "description": ""}],
            "confidence": 0.7, "summary": "from the LLM"
        });
        let provider = Arc::new(ReplayProvider::sequence(vec![answer]));
        let planner = LlmPlanner::new(provider.clone(), infraai_gcp::catalog())
            .with_config(planner_config("aws", Some("eu-west-1")).unwrap());
        let plan = planner
            .plan(&PlanRequest {
                goal: "a small web app".into(),
                cloud: "aws".into(),
                region: Some("eu-west-1".into()),
            })
            .await
            .unwrap();
        assert_eq!(plan.summary, "from the LLM");
        assert_eq!(plan.cloud, "aws");
        assert_eq!(provider.requests().len(), 1);
    }
}
