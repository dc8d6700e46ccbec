//! Which adapter implements each port, chosen from the configuration.
//!
//! This is the one file that changes when an adapter lands (GCP, Redis as the
//! store, another LLM provider).

use crate::approvers::{FanoutApprover, WebApprover};
use crate::config::{CloudChoice, Config, LlmSettings};
use anyhow::Context;
use infraai_aws::{
    ApiEndpoint, AwsActions, AwsApi, AwsCloud, AwsConfig, AwsCredentials, CloudWatchMetrics,
    Ec2Client, SnsAlertSource, SnsConfig,
};
use infraai_core::llm::{
    LlmDecisionPolicy, LlmFixer, LlmObserver, LlmPlanner, LlmPlannerConfig, TokenBudget,
};
use infraai_core::rules::{RulePlanner, RulePolicy};
use infraai_core::testing::{
    FakeGenerator, RecordingActions, ScriptedMetrics, ScriptedTfRunner, StaticVerifier,
};
use infraai_core::*;
use infraai_discord::{DiscordApprover, DiscordConfig};
use infraai_gcp::{
    CloudMonitoringMetrics, ComputeConfig, ComputeEngine, Credentials, GcpActions, GcpCloud,
    GcpConfig, MetadataServer, ServiceAccount, StaticToken,
};
use infraai_gemini::{GeminiConfig, GeminiProvider, OpenAiCompatConfig, OpenAiCompatProvider};
use infraai_local::{LocalActions, LocalCloud, LocalConfig, LocalMetrics};
use infraai_prometheus::{PromQueries, PrometheusMetrics};
use infraai_store::SqliteStore;
use infraai_store::{PostgresConfig, PostgresStore};
use infraai_telegram::{TelegramApprover, TelegramConfig};
use infraai_terraform::{TerraformConfig, TerraformRunner};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tracing::warn;

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
    /// AWS SNS alarm notifications, when the cloud is AWS with an account id.
    pub sns: Option<Arc<SnsAlertSource>>,
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

/// What a cloud adapter contributes.
struct CloudParts {
    generator: Arc<dyn TerraformGenerator>,
    runner: Arc<dyn TfRunner>,
    verifier: Arc<dyn Verifier>,
    actions: Arc<dyn ActionHandler>,
    metrics: Arc<dyn MetricSource>,
    guardrails: GuardrailConfig,
    /// Whether the threshold watcher runs (clouds without native alerting).
    run_watcher: bool,
    /// Start-up banner lines.
    report: Vec<String>,
}

impl CloudParts {
    /// A real cloud with its own alerting (GCP, AWS): new VMs get five
    /// minutes to answer, actions wait out a busy Terraform directory, and no
    /// threshold watcher runs.
    fn remote(
        generator: Arc<dyn TerraformGenerator>,
        runner: Arc<TerraformRunner>,
        actions: Arc<dyn ActionHandler>,
        metrics: Arc<dyn MetricSource>,
        guardrails: GuardrailConfig,
        report: Vec<String>,
    ) -> Self {
        Self {
            generator,
            runner,
            verifier: Arc::new(HttpVerifier::new(30, Duration::from_secs(10))),
            actions: Arc::new(crate::retry::BusyRetry(actions)),
            metrics,
            guardrails,
            run_watcher: false,
            report,
        }
    }
}

/// A Terraform runner under DATA_DIR/terraform, when the binary answers;
/// otherwise why not. Returns the runner and a "Terraform <version> (<path>)"
/// phrase for the start-up banner.
async fn terraform(
    config: &Config,
    data: &Path,
    env: &[(&str, &str)],
) -> Result<(Arc<TerraformRunner>, String), String> {
    let binary = config
        .cloud
        .terraform_bin
        .clone()
        .or_else(|| std::env::var_os("TERRAFORM_BIN").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("terraform"));
    let mut tf = TerraformConfig::new(data.join("terraform")).with_binary(binary.clone());
    for (key, value) in env {
        tf = tf.with_env(*key, *value);
    }
    let runner = Arc::new(TerraformRunner::new(tf));
    let version = runner.version().await.map_err(|e| {
        format!(
            "Terraform is needed and {} did not answer: {e}; install terraform or set TERRAFORM_BIN",
            binary.display()
        )
    })?;
    Ok((
        runner,
        format!("Terraform {version} ({})", binary.display()),
    ))
}

fn data_dir(config: &Config) -> Result<PathBuf, String> {
    std::fs::canonicalize(&config.server.data_dir).map_err(|e| format!("data directory: {e}"))
}

/// The local cloud, when Terraform answers; otherwise why not.
async fn local_cloud(config: &Config, store: Arc<dyn MetadataStore>) -> Result<CloudParts, String> {
    let data = data_dir(config)?;
    let (runner, terraform) = terraform(config, &data, &[]).await?;
    let program = std::env::current_exe().map_err(|e| format!("own executable: {e}"))?;
    let cloud = LocalCloud::new(LocalConfig {
        state_dir: data.join("local"),
        service_program: program,
        service_subcommand: Some(DEMO_SERVICE.into()),
    });
    let instances = cloud.instances();
    let line = format!(
        "cloud: local — real processes on this machine through {terraform}; state in {}",
        data.join("local").display()
    );
    Ok(CloudParts {
        generator: Arc::new(cloud),
        runner: runner.clone(),
        verifier: Arc::new(HttpVerifier::new(5, Duration::from_millis(500))),
        actions: Arc::new(crate::retry::BusyRetry(Arc::new(LocalActions::new(
            runner,
            store,
            instances.clone(),
        )))),
        metrics: Arc::new(LocalMetrics::new(instances)),
        guardrails: infraai_local::profiles::guardrails(GuardrailConfig::default()),
        run_watcher: true,
        report: vec![line],
    })
}

/// Google Cloud: the GCP generator, Terraform (with the webhook token as a
/// variable, never in the files), Compute Engine actions and Cloud Monitoring
/// metrics. Errors are configuration errors: the server does not start.
async fn gcp_cloud(
    config: &Config,
    webhook_token: &str,
    store: Arc<dyn MetadataStore>,
) -> anyhow::Result<CloudParts> {
    let gcp = &config.gcp;
    let project = gcp
        .gcp_project
        .clone()
        .context("cloud \"gcp\" needs a project (INFRAAI_GCP_PROJECT or gcp_project)")?;
    let region = config
        .cloud
        .region
        .clone()
        .unwrap_or_else(|| "us-central1".into());
    let zone = gcp
        .gcp_zone
        .clone()
        .unwrap_or_else(|| format!("{region}-a"));
    let generator = GcpCloud::new(GcpConfig {
        ssh_source_ranges: gcp.gcp_ssh_ranges.clone(),
        ..GcpConfig::new(project.clone(), region.clone(), zone.clone())
    })
    .context("GCP configuration")?;
    let (credentials, source): (Arc<dyn Credentials>, String) =
        match (&gcp.gcp_credentials_file, &gcp.gcp_access_token) {
            (Some(file), _) => {
                let json = std::fs::read(file).with_context(|| {
                    format!("reading the service-account key {}", file.display())
                })?;
                let account = ServiceAccount::from_json(&json).with_context(|| {
                    format!("parsing the service-account key {}", file.display())
                })?;
                let source = format!("service account {}", account.client_email());
                (Arc::new(account), source)
            }
            (None, Some(token)) => (
                Arc::new(StaticToken(Secret::new(token.clone()))),
                "a fixed access token (GOOGLE_OAUTH_ACCESS_TOKEN; not refreshed)".into(),
            ),
            (None, None) => (
                Arc::new(match &gcp.gcp_metadata_url {
                    Some(base) => MetadataServer::new(base.clone()),
                    None => MetadataServer::default(),
                }),
                "the metadata server (the VM's service account)".into(),
            ),
        };
    let data = data_dir(config).map_err(anyhow::Error::msg)?;
    let (runner, terraform) = terraform(
        config,
        &data,
        &[("TF_VAR_ops_webhook_token", webhook_token)],
    )
    .await
    .map_err(anyhow::Error::msg)?;
    let mut compute_config = ComputeConfig::new(project.clone(), zone.clone());
    if let Some(base) = &gcp.gcp_compute_url {
        compute_config = compute_config.with_base_url(base.clone());
    }
    let compute = Arc::new(
        ComputeEngine::new(compute_config, credentials.clone()).context("Compute Engine client")?,
    );
    let guardrails = GuardrailConfig::default();
    let actions =
        GcpActions::new(compute, guardrails.clone()).with_terraform(runner.clone(), store);
    let metrics = CloudMonitoringMetrics::new(
        gcp.gcp_monitoring_url
            .clone()
            .unwrap_or_else(|| "https://monitoring.googleapis.com".into()),
        project.clone(),
        credentials,
    );
    let mut lines = vec![format!(
        "cloud: gcp — project {:?}, region {region}, zone {} through {terraform} (the Google provider is fetched from the registry at init); Compute Engine actions and Cloud Monitoring metrics with credentials from {source}",
        project, zone
    )];
    if config.server.public_url.is_none() {
        lines.push("gcp: no INFRAAI_PUBLIC_URL — alert policies are created without the webhook notification channel, so no alert reaches this server".into());
    }
    Ok(CloudParts::remote(
        Arc::new(generator),
        runner,
        Arc::new(actions),
        Arc::new(metrics),
        guardrails,
        lines,
    ))
}

/// AWS: the AWS generator, Terraform (AWS credentials and the webhook token in
/// its environment, never in files), EC2 actions, CloudWatch metrics and the
/// SNS alert source. Errors are configuration errors: the server does not
/// start.
async fn aws_cloud(
    config: &Config,
    webhook_token: &str,
    store: Arc<dyn MetadataStore>,
) -> anyhow::Result<(CloudParts, Option<Arc<SnsAlertSource>>)> {
    let aws = &config.aws;
    let region = aws.region().to_string();
    let (Some(access_key_id), Some(secret_access_key)) =
        (&aws.aws_access_key_id, &aws.aws_secret_access_key)
    else {
        anyhow::bail!(
            "cloud \"aws\" needs credentials (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
        )
    };
    let cidrs = |ranges: &[String]| -> anyhow::Result<Vec<Cidr>> {
        ranges
            .iter()
            .map(|r| r.parse().with_context(|| format!("SSH range {r:?}")))
            .collect()
    };
    let generator = AwsCloud::new(AwsConfig {
        default_region: region.clone(),
        ami_id: aws.aws_ami.clone(),
        ssh_ranges: cidrs(&aws.aws_ssh_ranges)?,
        ..AwsConfig::default()
    })
    .context("AWS configuration")?;
    let data = data_dir(config).map_err(anyhow::Error::msg)?;
    let mut env = vec![
        ("AWS_REGION", region.as_str()),
        ("AWS_ACCESS_KEY_ID", access_key_id.as_str()),
        ("AWS_SECRET_ACCESS_KEY", secret_access_key.as_str()),
        ("TF_VAR_ops_webhook_token", webhook_token),
    ];
    if let Some(token) = &aws.aws_session_token {
        env.push(("AWS_SESSION_TOKEN", token.as_str()));
    }
    let (runner, terraform) = terraform(config, &data, &env)
        .await
        .map_err(anyhow::Error::msg)?;
    let credentials = AwsCredentials {
        access_key_id: access_key_id.clone(),
        secret_access_key: Secret::new(secret_access_key.clone()),
        session_token: aws.aws_session_token.clone().map(Secret::new),
    };
    let endpoint = |service: &str, base: &Option<String>| match base {
        Some(url) => ApiEndpoint {
            region: region.clone(),
            base_url: url.clone(),
        },
        None => ApiEndpoint::public(service, &region),
    };
    let http = AwsApi::default_http();
    let ec2 = Ec2Client::new(
        AwsApi::new(
            http.clone(),
            credentials.clone(),
            endpoint("ec2", &aws.aws_ec2_url),
            "ec2",
        )
        .context("EC2 client")?,
    );
    let guardrails = infraai_aws::ladder::guardrails(GuardrailConfig::default());
    let actions = AwsActions::new(ec2, runner.clone(), store.clone(), guardrails.clone());
    let metrics = CloudWatchMetrics::new(
        AwsApi::new(
            http,
            credentials,
            endpoint("monitoring", &aws.aws_monitoring_url),
            "monitoring",
        )
        .context("CloudWatch client")?,
        store,
    );
    let mut lines = vec![format!(
        "cloud: aws — region {} through {terraform} (the AWS provider is fetched from the registry at init); EC2 actions and CloudWatch metrics with access key {}",
        region, access_key_id
    )];
    if aws.aws_ami.is_none() {
        lines.push("aws: no INFRAAI_AWS_AMI — configurations validate, but a plan cannot apply without an AMI".into());
    }
    let sns = match &aws.aws_account_id {
        Some(account) => {
            lines.push(format!(
                "aws: SNS alarm notifications on /ops/webhook from topics arn:aws:sns:{}:{account}:infraai-alerts-* (signatures verified)",
                region
            ));
            Some(Arc::new(SnsAlertSource::new(SnsConfig::new(vec![
                format!("arn:aws:sns:{}:{account}:infraai-alerts-*", region),
            ]))))
        }
        None => {
            lines.push("aws: no INFRAAI_AWS_ACCOUNT_ID — SNS alarm notifications are refused, so no CloudWatch alarm reaches this server".into());
            None
        }
    };
    if config.server.public_url.is_none() {
        lines.push("aws: no INFRAAI_PUBLIC_URL — alarms are created without the SNS subscription to this server".into());
    }
    Ok((
        CloudParts::remote(
            Arc::new(generator),
            runner,
            Arc::new(actions),
            Arc::new(metrics),
            guardrails,
            lines,
        ),
        sns,
    ))
}

/// What the real clouds need, shown when the local or simulated cloud runs.
pub const REAL_CLOUDS_OFF: &str = "cloud: GCP and AWS off — GCP needs INFRAAI_GCP_PROJECT with credentials (GOOGLE_APPLICATION_CREDENTIALS, GOOGLE_OAUTH_ACCESS_TOKEN or the metadata server) and INFRAAI_PUBLIC_URL for alert notifications; AWS needs INFRAAI_CLOUD=aws with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (AWS_REGION, default us-east-1), INFRAAI_AWS_AMI to apply, INFRAAI_AWS_ACCOUNT_ID and INFRAAI_PUBLIC_URL for alarms";

/// Executions the simulated cloud remembers (the store keeps every action).
const SIMULATED_ACTIONS_KEPT: usize = 100;

/// In-memory stand-ins: nothing real is created or changed.
fn simulated(why: String) -> CloudParts {
    CloudParts {
        generator: Arc::new(FakeGenerator),
        runner: Arc::new(ScriptedTfRunner::valid()),
        verifier: Arc::new(StaticVerifier::default()),
        actions: Arc::new(RecordingActions::keeping_last(SIMULATED_ACTIONS_KEPT)),
        metrics: Arc::new(ScriptedMetrics::new(vec![0.35])),
        guardrails: GuardrailConfig::default(),
        run_watcher: false,
        report: vec![format!(
            "cloud: SIMULATED ({why}) — scripted Terraform, actions are only recorded, metrics are scripted; nothing real is created or changed"
        )],
    }
}

/// Regions the LLM planner may choose on the clouds the server knows; the
/// first is the default. `None` for a cloud it has no list for.
fn planner_regions(cloud: &str) -> Option<Vec<String>> {
    const AWS: &[&str] = &[
        "us-east-1",
        "us-east-2",
        "us-west-1",
        "us-west-2",
        "ca-central-1",
        "eu-west-1",
        "eu-west-2",
        "eu-west-3",
        "eu-central-1",
        "eu-north-1",
        "ap-south-1",
        "ap-southeast-1",
        "ap-southeast-2",
        "ap-northeast-1",
        "ap-northeast-2",
        "sa-east-1",
    ];
    let gcp = || LlmPlannerConfig::default().regions.get("gcp").cloned();
    match cloud {
        "aws" => Some(AWS.iter().map(|r| r.to_string()).collect()),
        // The simulated cloud plans like the rule planner: GCP machine types
        // and regions (its generator ignores the region).
        "gcp" | "memory" => gcp(),
        "local" => Some(vec!["local".into()]),
        _ => None,
    }
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
fn llm(
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
    let rule_planner: Arc<dyn Planner> = Arc::new(RulePlanner::default());
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
                LlmPlanner::new(provider.clone())
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

/// Builds the adapters. Never logs a secret. `observer` sees every LLM
/// exchange (the `/metrics` counters).
pub async fn build(
    config: &Config,
    webhook_token: &str,
    observer: Arc<dyn LlmObserver>,
) -> anyhow::Result<Wiring> {
    let mut report = Vec::new();

    // ---- store -------------------------------------------------------------
    let store: Arc<dyn MetadataStore> = if let Some(url) = &config.store.database_url {
        postgres_store(config, url, &mut report).await?
    } else {
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
        Arc::new(store)
    };

    // ---- cloud -------------------------------------------------------------
    let mut registry = MetricProfileRegistry::builtin();
    infraai_local::profiles::register_profiles(&mut registry);
    let registry = Arc::new(registry);
    let mut sns = None;
    let cloud = match config.cloud() {
        CloudChoice::Gcp => gcp_cloud(config, webhook_token, store.clone()).await?,
        CloudChoice::Aws => {
            let (parts, source) = aws_cloud(config, webhook_token, store.clone()).await?;
            sns = source;
            parts
        }
        CloudChoice::Local => local_cloud(config, store.clone())
            .await
            .unwrap_or_else(simulated),
        CloudChoice::Simulated => simulated("INFRAAI_CLOUD=simulated".into()),
    };
    let CloudParts {
        generator,
        runner,
        verifier,
        actions,
        mut metrics,
        guardrails,
        mut run_watcher,
        report: cloud_report,
    } = cloud;
    report.extend(cloud_report);
    if matches!(config.cloud(), CloudChoice::Local | CloudChoice::Simulated) {
        report.push(REAL_CLOUDS_OFF.into());
    }

    let prom_queries = Arc::new(local_prom_queries());
    if let Some(url) = &config.ops.prometheus_url {
        metrics = Arc::new(PrometheusMetrics::new(url.clone(), (*prom_queries).clone()));
        run_watcher = false;
        report.push(format!(
            "metrics: Prometheus at {url} for re-checks; the threshold watcher is off (alerts come from Alertmanager on POST /ops/webhook/alertmanager; rules for Prometheus at GET /ops/prometheus/rules)"
        ));
    }

    // ---- LLM ---------------------------------------------------------------
    let cloud_name = generator.cloud().to_string();
    let (planner, policy, llm_fixer) =
        llm(config, &cloud_name, store.clone(), observer, &mut report)?;
    let mut fixers: Vec<Arc<dyn Fixer>> = infraai_terraform::deterministic_fixers();
    fixers.extend(llm_fixer);

    // ---- approvals -----------------------------------------------------------
    let mut approvers = ApproverAllowList::none().allow_all_authenticated("web");
    let mut channels: Vec<Arc<dyn Approver>> = vec![Arc::new(WebApprover)];
    report.push("approvals: web dashboard/API (operator bearer token)".into());
    let t = &config.telegram;
    let telegram = match (&t.telegram_bot_token, t.telegram_chat_id) {
        (Some(bot_token), Some(chat_id)) => {
            let mut tc = TelegramConfig::new(Secret::new(bot_token.clone()), chat_id);
            tc.webhook_secret = t.telegram_webhook_secret.clone().map(Secret::new);
            if let Some(base) = &t.telegram_api_base {
                tc.api_base = base.clone();
            }
            let approver = Arc::new(TelegramApprover::new(tc).context("building Telegram")?);
            for id in &t.telegram_approvers {
                approvers = approvers.allow_user("telegram", id.trim());
            }
            report.push(format!(
                "approvals: Telegram chat {} via {}, {} allow-listed approver(s){}",
                chat_id,
                if t.telegram_webhook_secret.is_some() {
                    "webhook POST /ops/telegram"
                } else {
                    "long polling"
                },
                t.telegram_approvers.len(),
                if t.telegram_approvers.is_empty() {
                    " — nobody can approve from Telegram until INFRAAI_TELEGRAM_APPROVERS is set"
                } else {
                    ""
                }
            ));
            channels.push(approver.clone());
            Some(approver)
        }
        _ => {
            report.push("approvals: Telegram off (needs INFRAAI_TELEGRAM_BOT_TOKEN and INFRAAI_TELEGRAM_CHAT_ID)".into());
            None
        }
    };
    let d = &config.discord;
    let discord = match (
        &d.discord_public_key,
        &d.discord_bot_token,
        &d.discord_channel_id,
    ) {
        (Some(public_key), Some(bot_token), Some(channel_id)) => {
            let mut dc = DiscordConfig::new(
                public_key.clone(),
                Secret::new(bot_token.clone()),
                channel_id.clone(),
            );
            if let Some(base) = &d.discord_api_base {
                dc.api_base = base.clone();
            }
            let approver = Arc::new(DiscordApprover::new(dc).context("building Discord")?);
            for id in &d.discord_approvers {
                approvers = approvers.allow_user("discord", id.trim());
            }
            for role in &d.discord_approver_roles {
                approvers = approvers.allow_role("discord", role.trim());
            }
            report.push(format!(
                "approvals: Discord channel {} via POST /ops/discord, {} user(s) and {} role(s) allow-listed",
                channel_id,
                d.discord_approvers.len(),
                d.discord_approver_roles.len()
            ));
            channels.push(approver.clone());
            Some(approver)
        }
        _ => {
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
        // Every reading (watcher, re-checks, the dashboard) is remembered, so
        // incident charts have a history on clouds whose metrics keep none.
        metrics: Arc::new(RecordingMetrics::new(metrics)),
        run_watcher,
        approver: Arc::new(FanoutApprover::new(channels)),
        telegram,
        discord,
        approvers,
        registry,
        prom_queries,
        sns,
        report,
    })
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
        let planner = LlmPlanner::new(provider.clone())
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
