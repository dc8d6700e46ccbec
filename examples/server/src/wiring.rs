//! Which adapter implements each port, chosen from the configuration.
//!
//! This is the one file that changes when an adapter lands (GCP, Redis as the
//! store, another LLM provider).

use crate::approvers::{FanoutApprover, WebApprover};
use crate::config::{CloudChoice, Config};
use anyhow::Context;
use infraai_core::llm::{LlmDecisionPolicy, LlmFixer, LlmPlanner};
use infraai_core::rules::{RulePlanner, RulePolicy};
use infraai_core::testing::{
    FakeGenerator, RecordingActions, ScriptedMetrics, ScriptedTfRunner, StaticVerifier,
};
use infraai_core::*;
use infraai_discord::{DiscordApprover, DiscordConfig};
use infraai_gemini::{GeminiConfig, GeminiProvider};
use infraai_local::{LocalActions, LocalCloud, LocalConfig, LocalMetrics};
use infraai_prometheus::{PromQueries, PrometheusMetrics};
use infraai_store::SqliteStore;
use infraai_telegram::{TelegramApprover, TelegramConfig};
use infraai_terraform::{TerraformConfig, TerraformRunner};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

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
    /// PromQL of the cloud's metrics (re-checks through Prometheus, rules export).
    pub prom_queries: Arc<PromQueries>,
    /// One line per port: which adapter is active and what a real one needs.
    pub report: Vec<String>,
}

/// PromQL for the local cloud's metrics, computed from what Prometheus scrapes
/// off each instance's `/metrics` (targets labelled `instance="<name>"`).
/// `irate` over the last two scrapes keeps alerts and re-checks as quick as
/// the scrape interval; the `1m` range only bounds how far back it looks.
pub fn local_prom_queries() -> PromQueries {
    use infraai_local::profiles::{CPU_UTILIZATION, HEALTH_FAILING};
    PromQueries(
        [
            (
                CPU_UTILIZATION.to_string(),
                "irate(process_cpu_seconds_total{instance=\"{resource}\"}[1m]) / demo_cpu_allotment_cores{instance=\"{resource}\"}".to_string(),
            ),
            (
                HEALTH_FAILING.to_string(),
                "1 - up{instance=\"{resource}\"}".to_string(),
            ),
        ]
        .into_iter()
        .collect(),
    )
}

/// The subcommand that runs the local cloud's demo service.
pub const DEMO_SERVICE: &str = "demo-service";

type CloudParts = (
    Arc<dyn TerraformGenerator>,
    Arc<dyn TfRunner>,
    Arc<dyn Verifier>,
    Arc<dyn ActionHandler>,
    Arc<dyn MetricSource>,
    GuardrailConfig,
    bool,
);

/// The local cloud, when Terraform answers; otherwise why not.
async fn local_cloud(
    config: &Config,
    store: Arc<dyn MetadataStore>,
) -> Result<(CloudParts, String), String> {
    let binary = config
        .terraform_bin
        .clone()
        .or_else(|| std::env::var_os("TERRAFORM_BIN").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("terraform"));
    let data =
        std::fs::canonicalize(&config.data_dir).map_err(|e| format!("data directory: {e}"))?;
    let tf = TerraformConfig::new(data.join("terraform")).with_binary(binary.clone());
    let runner = Arc::new(TerraformRunner::new(tf));
    let version = runner.version().await.map_err(|e| {
        format!(
            "the local cloud needs Terraform and {} did not answer: {e}; install terraform, set TERRAFORM_BIN, or eval \"$(../shared/tools/terraform-env.sh)\"",
            binary.display()
        )
    })?;
    let program = std::env::current_exe().map_err(|e| format!("own executable: {e}"))?;
    let cloud = LocalCloud::new(LocalConfig {
        state_dir: data.join("local"),
        service_program: program,
        service_subcommand: Some(DEMO_SERVICE.into()),
    });
    let instances = cloud.instances();
    let line = format!(
        "cloud: local — real processes on this machine through Terraform {version} ({}); state in {}",
        binary.display(),
        data.join("local").display()
    );
    Ok((
        (
            Arc::new(cloud),
            runner.clone(),
            Arc::new(HttpVerifier::new(5, Duration::from_millis(500))),
            Arc::new(crate::retry::BusyRetry(Arc::new(LocalActions::new(
                runner,
                store,
                instances.clone(),
            )))),
            Arc::new(LocalMetrics::new(instances)),
            infraai_local::profiles::guardrails(GuardrailConfig::default()),
            true,
        ),
        line,
    ))
}

/// Builds the adapters. Never logs a secret.
pub async fn build(config: &Config) -> anyhow::Result<Wiring> {
    let mut report = Vec::new();

    // ---- store -------------------------------------------------------------
    let db = config
        .database
        .clone()
        .unwrap_or_else(|| config.data_dir.join("infraai.db"));
    let store: Arc<dyn MetadataStore> = Arc::new(
        SqliteStore::open_path(&db)
            .await
            .with_context(|| format!("opening the SQLite store {}", db.display()))?,
    );
    report.push(format!(
        "store: SQLite {} (durable: incidents, runs, audit and the kill-switch survive restarts)",
        db.display()
    ));

    // ---- cloud -------------------------------------------------------------
    let mut registry = MetricProfileRegistry::builtin();
    infraai_local::profiles::register_profiles(&mut registry);
    let registry = Arc::new(registry);
    if let Some(project) = &config.gcp_project {
        report.push(format!(
            "gcp: project {project:?} is configured, but the GCP adapter does not exist yet; it is NOT used"
        ));
    }
    let cloud = match config.cloud {
        CloudChoice::Local => local_cloud(config, store.clone()).await,
        CloudChoice::Simulated => Err("INFRAAI_CLOUD=simulated".to_string()),
    };
    let (generator, runner, verifier, actions, mut metrics, guardrails, mut run_watcher) =
        match cloud {
            Ok((c, line)) => {
                report.push(line);
                c
            }
            Err(why) => {
                report.push(format!(
                "cloud: SIMULATED ({why}) — scripted Terraform, actions are only recorded, metrics are scripted; nothing real is created or changed"
            ));
                let c: CloudParts = (
                    Arc::new(FakeGenerator),
                    Arc::new(ScriptedTfRunner::valid()),
                    Arc::new(StaticVerifier::default()),
                    Arc::new(RecordingActions::default()),
                    Arc::new(ScriptedMetrics::new(vec![0.35])),
                    GuardrailConfig::default(),
                    false,
                );
                c
            }
        };

    let prom_queries = Arc::new(local_prom_queries());
    if let Some(url) = &config.prometheus_url {
        metrics = Arc::new(PrometheusMetrics::new(url.clone(), (*prom_queries).clone()));
        run_watcher = false;
        report.push(format!(
            "metrics: Prometheus at {url} for re-checks; the threshold watcher is off (alerts come from Alertmanager on POST /ops/webhook/alertmanager; rules for Prometheus at GET /ops/prometheus/rules)"
        ));
    }

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
        run_watcher,
        approver: Arc::new(FanoutApprover::new(channels)),
        telegram,
        discord,
        approvers,
        registry,
        prom_queries,
        report,
    })
}
