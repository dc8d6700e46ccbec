//! Which adapter implements each port, chosen from the configuration.
//!
//! This is the one file that changes when an adapter lands: the SQLite store
//! (`infraai-store`) and the local cloud (`infraai_local::LocalCloud` /
//! `LocalActions`) replace the placeholders marked `PLACEHOLDER` below.

use crate::approvers::{FanoutApprover, WebApprover};
use crate::config::Config;
use anyhow::Context;
use infraai_core::llm::{LlmDecisionPolicy, LlmFixer, LlmPlanner};
use infraai_core::rules::{RulePlanner, RulePolicy};
use infraai_core::testing::{
    FakeGenerator, MemoryStore, RecordingActions, ScriptedMetrics, ScriptedTfRunner, StaticVerifier,
};
use infraai_core::*;
use infraai_discord::{DiscordApprover, DiscordConfig};
use infraai_gemini::{GeminiConfig, GeminiProvider};
use infraai_telegram::{TelegramApprover, TelegramConfig};
use std::sync::Arc;

/// Every adapter the server drives.
pub struct Wiring {
    /// The store.
    pub store: Arc<dyn MetadataStore>,
    /// Planner, generator, runner, fixers, verifier.
    pub deploy: DeployDeps,
    /// Guardrails for the configured cloud.
    pub guardrails: GuardrailConfig,
    /// Decision policy.
    pub policy: Arc<dyn DecisionPolicy>,
    /// Action handler (also used for previews).
    pub actions: Arc<dyn ActionHandler>,
    /// Metric source (re-checks and the threshold watcher).
    pub metrics: Arc<dyn MetricSource>,
    /// Whether the threshold watcher should run (clouds without native alerting).
    pub run_watcher: bool,
    /// All approval channels together.
    pub approver: Arc<dyn Approver>,
    /// Telegram, when configured.
    pub telegram: Option<Arc<TelegramApprover>>,
    /// Discord, when configured.
    pub discord: Option<Arc<DiscordApprover>>,
    /// Allow-list of approvers.
    pub approvers: ApproverAllowList,
    /// Metric-profile registry.
    pub registry: Arc<MetricProfileRegistry>,
    /// One line per port: which adapter is active and what a real one needs.
    pub report: Vec<String>,
}

/// Builds the adapters. Never logs a secret.
pub fn build(config: &Config) -> anyhow::Result<Wiring> {
    let mut report = Vec::new();

    // ---- store -------------------------------------------------------------
    // PLACEHOLDER until `infraai-store` is on main: then
    // `Arc::new(infraai_store::SqliteStore::open(config.data_dir.join("infraai.db"))?)`.
    let store: Arc<dyn MetadataStore> = Arc::new(MemoryStore::new());
    report.push(
        "store: in-memory (SQLite store not yet wired) — incidents, runs and the kill-switch are LOST on restart".into(),
    );

    // ---- cloud -------------------------------------------------------------
    let mut registry = MetricProfileRegistry::builtin();
    infraai_local::profiles::register_profiles(&mut registry);
    let registry = Arc::new(registry);
    if let Some(project) = &config.gcp_project {
        report.push(format!(
            "gcp: project {project:?} is configured, but the GCP adapter does not exist yet; it is NOT used"
        ));
    }
    // PLACEHOLDER until `infraai_local::LocalCloud` / `LocalActions` are on main:
    // then generator = LocalCloud, runner = TerraformRunner, verifier =
    // HttpVerifier, actions = LocalActions, metrics = LocalMetrics, guardrails =
    // infraai_local::profiles::guardrails(..).
    let generator: Arc<dyn TerraformGenerator> = Arc::new(FakeGenerator);
    let runner: Arc<dyn TfRunner> = Arc::new(ScriptedTfRunner::valid());
    let verifier: Arc<dyn Verifier> = Arc::new(StaticVerifier::default());
    let actions: Arc<dyn ActionHandler> = Arc::new(RecordingActions::default());
    let metrics: Arc<dyn MetricSource> = Arc::new(ScriptedMetrics::new(vec![0.35]));
    let guardrails = GuardrailConfig::default();
    report.push(
        "cloud: placeholder (local cloud not yet wired) — fake HCL, scripted Terraform, actions are only recorded, metrics are scripted; nothing real is created or changed".into(),
    );

    // ---- LLM ---------------------------------------------------------------
    let rule_planner: Arc<dyn Planner> = Arc::new(RulePlanner::default());
    let rule_policy: Arc<dyn DecisionPolicy> = Arc::new(RulePolicy);
    let mut fixers: Vec<Arc<dyn Fixer>> = infraai_terraform::deterministic_fixers();
    let (planner, policy): (Arc<dyn Planner>, Arc<dyn DecisionPolicy>) = match &config
        .gemini_api_key
    {
        Some(key) => {
            let mut gc = GeminiConfig::new(Secret::new(key.clone()));
            if let Some(model) = &config.gemini_model {
                gc.model = model.clone();
            }
            let model = gc.model.clone();
            let provider: Arc<dyn LlmProvider> =
                Arc::new(GeminiProvider::new(gc).context("building the Gemini provider")?);
            fixers.push(Arc::new(
                LlmFixer::new(provider.clone()).with_audit(store.clone()),
            ));
            report.push(format!(
                    "llm: Gemini ({model}) planner, decision policy and fixer, with the rule-based planner/policy as fallback"
                ));
            (
                Arc::new(
                    LlmPlanner::new(provider.clone())
                        .with_audit(store.clone())
                        .with_fallback(rule_planner),
                ),
                Arc::new(
                    LlmDecisionPolicy::new(provider)
                        .with_audit(store.clone())
                        .with_budget_fallback(rule_policy),
                ),
            )
        }
        None => {
            report.push(
                    "llm: none — rule-based planner and decision policy, deterministic fixers (set GEMINI_API_KEY for Gemini)".into(),
                );
            (rule_planner, rule_policy)
        }
    };

    // ---- approvals -----------------------------------------------------------
    let mut approvers = ApproverAllowList::none().allow_all_authenticated("web");
    let mut channels: Vec<Arc<dyn Approver>> = vec![Arc::new(WebApprover)];
    report.push("approvals: web dashboard/API (operator bearer token)".into());
    let telegram = match &config.telegram {
        Some(t) => {
            let mut tc = TelegramConfig::new(Secret::new(t.bot_token.clone()), t.chat_id);
            tc.webhook_secret = t.webhook_secret.clone().map(Secret::new);
            if let Some(base) = &t.api_base {
                tc.api_base = base.clone();
            }
            let approver = Arc::new(TelegramApprover::new(tc).context("building Telegram")?);
            for id in &t.approvers {
                approvers = approvers.allow_user("telegram", id.trim());
            }
            report.push(format!(
                "approvals: Telegram chat {} via {}, {} allow-listed approver(s){}",
                t.chat_id,
                if t.webhook_secret.is_some() {
                    "webhook POST /ops/telegram"
                } else {
                    "long polling"
                },
                t.approvers.len(),
                if t.approvers.is_empty() {
                    " — nobody can approve from Telegram until INFRAAI_TELEGRAM_APPROVERS is set"
                } else {
                    ""
                }
            ));
            channels.push(approver.clone());
            Some(approver)
        }
        None => {
            report.push("approvals: Telegram off (needs INFRAAI_TELEGRAM_BOT_TOKEN and INFRAAI_TELEGRAM_CHAT_ID)".into());
            None
        }
    };
    let discord = match &config.discord {
        Some(d) => {
            let mut dc = DiscordConfig::new(
                d.public_key.clone(),
                Secret::new(d.bot_token.clone()),
                d.channel_id.clone(),
            );
            if let Some(base) = &d.api_base {
                dc.api_base = base.clone();
            }
            let approver = Arc::new(DiscordApprover::new(dc).context("building Discord")?);
            for id in &d.approvers {
                approvers = approvers.allow_user("discord", id.trim());
            }
            for role in &d.approver_roles {
                approvers = approvers.allow_role("discord", role.trim());
            }
            report.push(format!(
                "approvals: Discord channel {} via POST /ops/discord, {} user(s) and {} role(s) allow-listed",
                d.channel_id,
                d.approvers.len(),
                d.approver_roles.len()
            ));
            channels.push(approver.clone());
            Some(approver)
        }
        None => {
            report.push("approvals: Discord off (needs INFRAAI_DISCORD_PUBLIC_KEY, INFRAAI_DISCORD_BOT_TOKEN and INFRAAI_DISCORD_CHANNEL_ID)".into());
            None
        }
    };
    report.extend(config.notes.iter().cloned());

    let events = EventBus::new();
    Ok(Wiring {
        deploy: DeployDeps {
            planner,
            generator,
            fixers,
            runner,
            verifier,
            store: store.clone(),
            registry: registry.clone(),
            events,
        },
        store,
        guardrails,
        policy,
        actions,
        metrics,
        run_watcher: true,
        approver: Arc::new(FanoutApprover::new(channels)),
        telegram,
        discord,
        approvers,
        registry,
        report,
    })
}
