//! Which adapter implements each port, chosen from the configuration.
//!
//! This module is where an adapter lands: the store here, clouds in `cloud`,
//! LLM providers in `llm`, approval channels in `channels`.

mod channels;
mod cloud;
mod llm;

pub use cloud::REAL_CLOUDS_OFF;
pub use llm::planner_config;

use crate::config::Config;
use anyhow::Context;
use infraai_aws::SnsAlertSource;
use infraai_core::llm::LlmObserver;
use infraai_core::*;
use infraai_discord::DiscordApprover;
use infraai_prometheus::{AlertmanagerSource, PromQueries};
use infraai_slack::SlackApprover;
use infraai_store::{PostgresConfig, PostgresStore, SqliteStore};
use infraai_telegram::TelegramApprover;
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
    /// Whether the cloud is the simulated one (nothing real is created).
    pub simulated: bool,
    /// Every notifier together (web, and the chat channels configured).
    pub notifier: Arc<dyn Notifier>,
    /// Telegram, when configured.
    pub telegram: Option<Arc<TelegramApprover>>,
    /// Discord, when configured.
    pub discord: Option<Arc<DiscordApprover>>,
    /// Slack, when configured.
    pub slack: Option<Arc<SlackApprover>>,
    /// Allow-list of approvers.
    pub approvers: ApproverAllowList,
    /// Metric-profile registry.
    pub registry: Arc<MetricProfileRegistry>,
    /// PromQL of the cloud's metrics (re-checks through Prometheus, rules export).
    pub prom_queries: Arc<PromQueries>,
    /// The alert sources of `/ops/webhook`, asked in order: a delivery goes
    /// to the first that accepts it (the core alert JSON, last, takes any).
    pub alert_sources: Vec<Arc<dyn AlertSource>>,
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

/// The PostgreSQL store (`database_url`), shared by every replica given the
/// same URL. The banner line names the server, never the password.
async fn postgres_store(
    config: &Config,
    url: &infraai_core::Secret,
    report: &mut Vec<String>,
) -> anyhow::Result<Arc<dyn MetadataStore>> {
    let mut pg = PostgresConfig::new(url.clone())
        .with_application_name(format!("infraai-{}", config.server.replica_id));
    pg.ca_file = config.store.database_ca_file.clone();
    // The error names the server and the cause, never the URL.
    let store = PostgresStore::connect(pg)
        .await
        .map_err(|e| anyhow::anyhow!("opening the PostgreSQL store: {e}"))?;
    report.push(format!(
        "store: PostgreSQL {} (shared by replicas with the same database_url; {})",
        store.describe(),
        if store.tls() {
            "TLS, certificate verified"
        } else {
            "plain TCP without TLS: loopback or a private network only (sslmode=require for TLS)"
        }
    ));
    Ok(Arc::new(store))
}

/// The SQLite store (the default) or the PostgreSQL one (`database_url`).
async fn store(
    config: &Config,
    report: &mut Vec<String>,
) -> anyhow::Result<Arc<dyn MetadataStore>> {
    if let Some(url) = &config.store.database_url {
        return postgres_store(config, url, report).await;
    }
    let db = config
        .store
        .database
        .clone()
        .unwrap_or_else(|| config.server.data_dir.join("infraai.db"));
    let store = SqliteStore::open_path(&db)
        .await
        .with_context(|| format!("opening the SQLite store {}", db.display()))?;
    report.push(format!(
        "store: SQLite {} (durable: incidents, runs, audit and the kill-switch survive restarts)",
        db.display()
    ));
    Ok(Arc::new(store))
}

/// Builds the adapters. Never logs a secret. `observer` sees every LLM
/// exchange (the `/metrics` counters).
pub async fn build(
    config: &Config,
    webhook_token: &str,
    observer: Arc<dyn LlmObserver>,
) -> anyhow::Result<Wiring> {
    let mut report = Vec::new();
    let store = store(config, &mut report).await?;
    let mut registry = MetricProfileRegistry::empty();
    infraai_gcp::register_profiles(&mut registry);
    infraai_aws::register_profiles(&mut registry);
    infraai_local::profiles::register_profiles(&mut registry);
    let registry = Arc::new(registry);
    let prom_queries = Arc::new(local_prom_queries());
    let (cloud, sns) = cloud::select(config, webhook_token, store.clone(), &prom_queries).await?;
    report.extend(cloud.report);
    let cloud_name = cloud.generator.cloud().to_string();
    let (planner, policy, llm_fixer) =
        llm::llm(config, &cloud_name, store.clone(), observer, &mut report)?;
    let mut fixers: Vec<Arc<dyn Fixer>> = infraai_terraform::deterministic_fixers();
    fixers.extend(llm_fixer);
    let channels = channels::approvals(config, &mut report)?;
    report.extend(config.notes.iter().cloned());
    Ok(Wiring {
        deploy: DeployDeps {
            planner,
            generator: cloud.generator,
            fixers,
            runner: cloud.runner,
            verifier: cloud.verifier,
            store: store.clone(),
            registry: registry.clone(),
            events: EventBus::new(),
        },
        store,
        guardrails: cloud.guardrails,
        policy,
        actions: cloud.actions,
        // Every reading (watcher, re-checks, the dashboard) is remembered, so
        // incident charts have a history on clouds whose metrics keep none.
        metrics: Arc::new(RecordingMetrics::new(cloud.metrics)),
        run_watcher: cloud.run_watcher,
        simulated: cloud.simulated,
        notifier: channels.notifier,
        telegram: channels.telegram,
        discord: channels.discord,
        slack: channels.slack,
        approvers: channels.approvers,
        registry,
        prom_queries,
        alert_sources: alert_sources(sns, webhook_token),
        report,
    })
}

/// The alert sources of `/ops/webhook`, each behind the webhook token.
fn alert_sources(sns: Option<Arc<SnsAlertSource>>, token: &str) -> Vec<Arc<dyn AlertSource>> {
    let token = WebhookAuth::Token(Secret::new(token));
    let sns: Arc<dyn AlertSource> = match sns {
        Some(sns) => sns,
        None => Arc::new(SnsRefused(token.clone())),
    };
    vec![
        sns,
        Arc::new(infraai_gcp::GcpWebhookSource::new(token.clone())),
        Arc::new(AlertmanagerSource::new(token.clone())),
        Arc::new(AlertJsonSource::new(token)),
    ]
}

/// SNS deliveries when SNS is not configured: refused with what it needs.
struct SnsRefused(WebhookAuth);

#[async_trait::async_trait]
impl AlertSource for SnsRefused {
    fn name(&self) -> &str {
        "aws-sns"
    }

    fn accepts(&self, request: &InboundRequest) -> bool {
        infraai_aws::is_sns_delivery(request)
    }

    async fn receive(&self, request: &InboundRequest) -> Result<Vec<Alert>> {
        self.0.check(request)?;
        let detail = "AWS SNS messages are not accepted here: run with INFRAAI_CLOUD=aws and INFRAAI_AWS_ACCOUNT_ID";
        Err(Error::Forbidden {
            detail: detail.into(),
        })
    }
}
