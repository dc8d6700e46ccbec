//! Configuration: command-line flags, environment variables (each flag has
//! one, `INFRAAI_…`) and an optional TOML file (`--config`). A flag or
//! variable wins over the file; the file wins over the embedded default.

use anyhow::{bail, Context};
use clap::Parser;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Command line and environment. Every field is optional so that the TOML
/// file can fill what is not given here.
#[derive(Default, Parser)]
#[command(
    name = "infraai-server",
    version,
    about = "infraai: plan, deploy and operate infrastructure with a human in the loop"
)]
pub struct Cli {
    /// TOML configuration file (keys as below, in snake_case).
    #[arg(long, env = "INFRAAI_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "INFRAAI_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Directory for the database and generated secrets [default: ./data].
    #[arg(long, env = "INFRAAI_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// SQLite database file [default: DATA_DIR/infraai.db].
    #[arg(long, env = "INFRAAI_DATABASE")]
    pub database: Option<PathBuf>,
    /// PostgreSQL store shared by replicas:
    /// `postgres://user:password@host:port/database`; add `?sslmode=require`
    /// for TLS with a verified certificate (without it: plain TCP, for
    /// loopback or a private network only) [default: none, the SQLite file].
    #[arg(long, env = "INFRAAI_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// PEM CA certificates trusted for `sslmode=require` in database_url,
    /// besides the public (webpki) roots.
    #[arg(long, env = "INFRAAI_DATABASE_CA_FILE")]
    pub database_ca_file: Option<PathBuf>,
    /// This replica's id, in the start-up banner, request log spans and the
    /// PostgreSQL `application_name` [default: HOSTNAME-PID].
    #[arg(long, env = "INFRAAI_REPLICA_ID")]
    pub replica_id: Option<String>,
    /// Operator bearer token for the API and dashboard [default: generated
    /// once and stored in DATA_DIR/operator-token].
    #[arg(long, env = "INFRAAI_OPERATOR_TOKEN", hide_env_values = true)]
    pub operator_token: Option<String>,
    /// Operator name recorded in the audit trail as `web:<name>` [default: operator].
    #[arg(long, env = "INFRAAI_OPERATOR_NAME")]
    pub operator_name: Option<String>,
    /// Token alert webhooks must send (header `X-Infraai-Webhook-Token` or
    /// query `token`) [default: generated once, DATA_DIR/webhook-token].
    #[arg(long, env = "INFRAAI_WEBHOOK_TOKEN", hide_env_values = true)]
    pub webhook_token: Option<String>,
    /// Public base URL of this server (alert policies post to URL/ops/webhook).
    #[arg(long, env = "INFRAAI_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Gemini API key: turns on the LLM planner, decision policy and fixer.
    #[arg(long, env = "GEMINI_API_KEY", hide_env_values = true)]
    pub gemini_api_key: Option<String>,
    /// Gemini model [default: the provider's default].
    #[arg(long, env = "INFRAAI_GEMINI_MODEL")]
    pub gemini_model: Option<String>,
    /// Gemini API base up to `/models` (Vertex AI express mode:
    /// `https://aiplatform.googleapis.com/v1/publishers/google`; or a proxy)
    /// [default: `https://generativelanguage.googleapis.com/v1beta`].
    #[arg(long, env = "INFRAAI_GEMINI_BASE_URL")]
    pub gemini_base_url: Option<String>,
    /// OpenAI-compatible model (turns on the OpenAI-compatible provider:
    /// OpenAI, Ollama, vLLM, Groq), e.g. `gpt-4o-mini`, `llama3.1`.
    #[arg(long, env = "INFRAAI_OPENAI_MODEL")]
    pub openai_model: Option<String>,
    /// OpenAI-compatible API base up to `/chat/completions` (Ollama:
    /// `http://localhost:11434/v1`, Groq: `https://api.groq.com/openai/v1`)
    /// [default: `https://api.openai.com/v1`].
    #[arg(long, env = "INFRAAI_OPENAI_BASE_URL")]
    pub openai_base_url: Option<String>,
    /// Bearer key of the OpenAI-compatible API (none for a local Ollama).
    #[arg(long, env = "INFRAAI_OPENAI_API_KEY", hide_env_values = true)]
    pub openai_api_key: Option<String>,
    /// Tokens (prompt + completion) the LLM may use per hour, shared by the
    /// planner, decision policy and fixer; past it the rules decide [default: 500000].
    #[arg(long, env = "INFRAAI_LLM_TOKEN_BUDGET_PER_HOUR")]
    pub llm_token_budget_per_hour: Option<u64>,
    /// Seconds an LLM decision is reused for an identical incident context
    /// (0: never) [default: 600].
    #[arg(long, env = "INFRAAI_DECISION_CACHE_TTL_SECS")]
    pub decision_cache_ttl_secs: Option<u64>,
    /// Cloud: `local` (real processes on this machine through Terraform),
    /// `gcp` (Google Cloud through Terraform and the Compute Engine API),
    /// `aws` (AWS through Terraform and the EC2 API) or
    /// `simulated` (in-memory stand-ins; nothing is created) [default: gcp
    /// when a GCP project is set, else local].
    #[arg(long, env = "INFRAAI_CLOUD")]
    pub cloud: Option<String>,
    /// Terraform binary for the local cloud [default: $TERRAFORM_BIN, else `terraform` on PATH].
    #[arg(long, env = "INFRAAI_TERRAFORM_BIN")]
    pub terraform_bin: Option<PathBuf>,
    /// GCP project: turns on the GCP cloud (Terraform with the Google
    /// provider, Compute Engine actions, Cloud Monitoring metrics).
    #[arg(long, env = "INFRAAI_GCP_PROJECT")]
    pub gcp_project: Option<String>,
    /// GCP zone for instances [default: REGION-a].
    #[arg(long, env = "INFRAAI_GCP_ZONE")]
    pub gcp_zone: Option<String>,
    /// Service-account JSON key file for the GCP APIs and Terraform [default:
    /// an access token from GOOGLE_OAUTH_ACCESS_TOKEN, else the metadata server].
    #[arg(long, env = "GOOGLE_APPLICATION_CREDENTIALS")]
    pub gcp_credentials_file: Option<PathBuf>,
    /// A fixed GCP access token (not refreshed; e.g. `gcloud auth print-access-token`).
    #[arg(long, env = "GOOGLE_OAUTH_ACCESS_TOKEN", hide_env_values = true)]
    pub gcp_access_token: Option<String>,
    /// Source ranges allowed to reach SSH on GCP instances (comma separated;
    /// none: no SSH rule) [default: none].
    #[arg(long, env = "INFRAAI_GCP_SSH_RANGES", value_delimiter = ',')]
    pub gcp_ssh_ranges: Option<Vec<String>>,
    /// Compute Engine API base [default: `https://compute.googleapis.com/compute/v1`].
    #[arg(long, env = "INFRAAI_GCP_COMPUTE_URL")]
    pub gcp_compute_url: Option<String>,
    /// Cloud Monitoring API base [default: `https://monitoring.googleapis.com`].
    #[arg(long, env = "INFRAAI_GCP_MONITORING_URL")]
    pub gcp_monitoring_url: Option<String>,
    /// Metadata server base [default: `http://metadata.google.internal`].
    #[arg(long, env = "INFRAAI_GCP_METADATA_URL")]
    pub gcp_metadata_url: Option<String>,
    /// AWS region [default: us-east-1].
    #[arg(long, env = "AWS_REGION")]
    pub aws_region: Option<String>,
    /// AWS access key id (Terraform's AWS provider reads the same variable).
    #[arg(long, env = "AWS_ACCESS_KEY_ID")]
    pub aws_access_key_id: Option<String>,
    /// AWS secret access key.
    #[arg(long, env = "AWS_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub aws_secret_access_key: Option<String>,
    /// AWS session token of temporary credentials.
    #[arg(long, env = "AWS_SESSION_TOKEN", hide_env_values = true)]
    pub aws_session_token: Option<String>,
    /// AMI for EC2 instances (plans cannot apply without one).
    #[arg(long, env = "INFRAAI_AWS_AMI")]
    pub aws_ami: Option<String>,
    /// AWS account id: SNS alarm notifications are accepted only from this
    /// account's `infraai-alerts-*` topics.
    #[arg(long, env = "INFRAAI_AWS_ACCOUNT_ID")]
    pub aws_account_id: Option<String>,
    /// Source ranges allowed to reach SSH on AWS instances (comma separated) [default: none].
    #[arg(long, env = "INFRAAI_AWS_SSH_RANGES", value_delimiter = ',')]
    pub aws_ssh_ranges: Option<Vec<String>>,
    /// EC2 API base [default: `https://ec2.REGION.amazonaws.com`].
    #[arg(long, env = "INFRAAI_AWS_EC2_URL")]
    pub aws_ec2_url: Option<String>,
    /// CloudWatch API base [default: `https://monitoring.REGION.amazonaws.com`].
    #[arg(long, env = "INFRAAI_AWS_MONITORING_URL")]
    pub aws_monitoring_url: Option<String>,
    /// Region passed to the planner (and the GCP region) [default for GCP: us-central1].
    #[arg(long, env = "INFRAAI_REGION")]
    pub region: Option<String>,
    /// Telegram bot token (turns on Telegram approvals with a chat id).
    #[arg(long, env = "INFRAAI_TELEGRAM_BOT_TOKEN", hide_env_values = true)]
    pub telegram_bot_token: Option<String>,
    /// Telegram chat approval requests go to.
    #[arg(long, env = "INFRAAI_TELEGRAM_CHAT_ID")]
    pub telegram_chat_id: Option<i64>,
    /// Telegram webhook secret; without it the server long-polls instead.
    #[arg(long, env = "INFRAAI_TELEGRAM_WEBHOOK_SECRET", hide_env_values = true)]
    pub telegram_webhook_secret: Option<String>,
    /// Telegram Bot API base URL [default: `https://api.telegram.org`].
    #[arg(long, env = "INFRAAI_TELEGRAM_API_BASE")]
    pub telegram_api_base: Option<String>,
    /// Telegram user ids allowed to approve (comma separated).
    #[arg(long, env = "INFRAAI_TELEGRAM_APPROVERS", value_delimiter = ',')]
    pub telegram_approvers: Option<Vec<String>>,
    /// Discord application public key (hex).
    #[arg(long, env = "INFRAAI_DISCORD_PUBLIC_KEY")]
    pub discord_public_key: Option<String>,
    /// Discord bot token.
    #[arg(long, env = "INFRAAI_DISCORD_BOT_TOKEN", hide_env_values = true)]
    pub discord_bot_token: Option<String>,
    /// Discord channel approval requests go to.
    #[arg(long, env = "INFRAAI_DISCORD_CHANNEL_ID")]
    pub discord_channel_id: Option<String>,
    /// Discord REST API base [default: `https://discord.com/api/v10`].
    #[arg(long, env = "INFRAAI_DISCORD_API_BASE")]
    pub discord_api_base: Option<String>,
    /// Discord user ids allowed to approve (comma separated).
    #[arg(long, env = "INFRAAI_DISCORD_APPROVERS", value_delimiter = ',')]
    pub discord_approvers: Option<Vec<String>>,
    /// Discord role ids whose holders may approve (comma separated).
    #[arg(long, env = "INFRAAI_DISCORD_APPROVER_ROLES", value_delimiter = ',')]
    pub discord_approver_roles: Option<Vec<String>>,
    /// Seconds a pending approval waits before it expires [default: 3600].
    #[arg(long, env = "INFRAAI_APPROVAL_TIMEOUT_SECS")]
    pub approval_timeout_secs: Option<u64>,
    /// Seconds between an action and the metric re-check [default: 30].
    #[arg(long, env = "INFRAAI_FEEDBACK_DELAY_SECS")]
    pub feedback_delay_secs: Option<u64>,
    /// Seconds between threshold-watcher passes [default: 15].
    #[arg(long, env = "INFRAAI_WATCH_INTERVAL_SECS")]
    pub watch_interval_secs: Option<u64>,
    /// Seconds a replica's hold on a piece of background work lasts without
    /// renewal: another replica takes over the work of one that died after
    /// at most this long [default: 30].
    #[arg(long, env = "INFRAAI_LEASE_SECS")]
    pub lease_secs: Option<u64>,
    /// Per-request timeout in seconds (not for event streams; LLM planning can
    /// take up to two minutes) [default: 150].
    #[arg(long, env = "INFRAAI_REQUEST_TIMEOUT_SECS")]
    pub request_timeout_secs: Option<u64>,
    /// Prometheus base URL (e.g. `http://127.0.0.1:9090`): the metric re-check
    /// reads Prometheus, and the threshold watcher is off (Prometheus alerts
    /// through Alertmanager to `/ops/webhook/alertmanager`).
    #[arg(long, env = "INFRAAI_PROMETHEUS_URL")]
    pub prometheus_url: Option<String>,
}

/// The TOML file: the same keys as the flags, in snake_case.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    database: Option<PathBuf>,
    database_url: Option<String>,
    database_ca_file: Option<PathBuf>,
    replica_id: Option<String>,
    operator_token: Option<String>,
    operator_name: Option<String>,
    webhook_token: Option<String>,
    public_url: Option<String>,
    gemini_api_key: Option<String>,
    gemini_model: Option<String>,
    gemini_base_url: Option<String>,
    openai_model: Option<String>,
    openai_base_url: Option<String>,
    openai_api_key: Option<String>,
    llm_token_budget_per_hour: Option<u64>,
    decision_cache_ttl_secs: Option<u64>,
    gcp_project: Option<String>,
    gcp_zone: Option<String>,
    gcp_credentials_file: Option<PathBuf>,
    gcp_access_token: Option<String>,
    gcp_ssh_ranges: Option<Vec<String>>,
    gcp_compute_url: Option<String>,
    gcp_monitoring_url: Option<String>,
    gcp_metadata_url: Option<String>,
    aws_region: Option<String>,
    aws_access_key_id: Option<String>,
    aws_secret_access_key: Option<String>,
    aws_session_token: Option<String>,
    aws_ami: Option<String>,
    aws_account_id: Option<String>,
    aws_ssh_ranges: Option<Vec<String>>,
    aws_ec2_url: Option<String>,
    aws_monitoring_url: Option<String>,
    cloud: Option<String>,
    terraform_bin: Option<PathBuf>,
    region: Option<String>,
    telegram_bot_token: Option<String>,
    telegram_chat_id: Option<i64>,
    telegram_webhook_secret: Option<String>,
    telegram_api_base: Option<String>,
    telegram_approvers: Option<Vec<String>>,
    discord_public_key: Option<String>,
    discord_bot_token: Option<String>,
    discord_channel_id: Option<String>,
    discord_api_base: Option<String>,
    discord_approvers: Option<Vec<String>>,
    discord_approver_roles: Option<Vec<String>>,
    approval_timeout_secs: Option<u64>,
    feedback_delay_secs: Option<u64>,
    watch_interval_secs: Option<u64>,
    lease_secs: Option<u64>,
    request_timeout_secs: Option<u64>,
    prometheus_url: Option<String>,
}

/// Telegram settings, when a bot is configured. No `Debug`: it holds secrets.
#[derive(Clone)]
pub struct TelegramSettings {
    /// Bot token (secret).
    pub bot_token: String,
    /// Chat for approval requests.
    pub chat_id: i64,
    /// Webhook secret; `None` means long polling.
    pub webhook_secret: Option<String>,
    /// API base override.
    pub api_base: Option<String>,
    /// Allowed approvers.
    pub approvers: Vec<String>,
}

/// Discord settings, when a bot is configured. No `Debug`: it holds secrets.
#[derive(Clone)]
pub struct DiscordSettings {
    /// Application public key (hex).
    pub public_key: String,
    /// Bot token (secret).
    pub bot_token: String,
    /// Channel for approval requests.
    pub channel_id: String,
    /// API base override.
    pub api_base: Option<String>,
    /// Allowed approver user ids.
    pub approvers: Vec<String>,
    /// Allowed approver role ids.
    pub approver_roles: Vec<String>,
}

/// GCP settings. No `Debug`: it holds secrets.
#[derive(Clone)]
pub struct GcpSettings {
    /// Project id.
    pub project: String,
    /// Zone (inside the region).
    pub zone: String,
    /// Service-account key file.
    pub credentials_file: Option<PathBuf>,
    /// Fixed access token (secret).
    pub access_token: Option<String>,
    /// SSH source ranges.
    pub ssh_ranges: Vec<String>,
    /// Compute Engine API base override.
    pub compute_url: Option<String>,
    /// Cloud Monitoring API base override.
    pub monitoring_url: Option<String>,
    /// Metadata server base override.
    pub metadata_url: Option<String>,
}

/// AWS settings. No `Debug`: it holds secrets.
#[derive(Clone)]
pub struct AwsSettings {
    /// Region.
    pub region: String,
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key (secret).
    pub secret_access_key: String,
    /// Session token (secret).
    pub session_token: Option<String>,
    /// AMI for instances.
    pub ami: Option<String>,
    /// Account whose `infraai-alerts-*` topics may notify.
    pub account_id: Option<String>,
    /// SSH source ranges.
    pub ssh_ranges: Vec<String>,
    /// EC2 API base override.
    pub ec2_url: Option<String>,
    /// CloudWatch API base override.
    pub monitoring_url: Option<String>,
}

/// The LLM provider behind the planner, decision policy and fixer. No
/// `Debug`: it holds secrets.
#[derive(Clone)]
pub enum LlmSettings {
    /// Gemini `generateContent`.
    Gemini {
        /// API key (secret).
        api_key: String,
        /// Model, when not the provider's default.
        model: Option<String>,
        /// API base, when not Google's public endpoint.
        base_url: Option<String>,
    },
    /// An OpenAI-compatible chat-completions API.
    OpenAi {
        /// Bearer key (secret); none for servers without auth.
        api_key: Option<String>,
        /// Model.
        model: String,
        /// API base, when not OpenAI's.
        base_url: Option<String>,
    },
}

/// Default hourly LLM token budget.
pub const DEFAULT_LLM_TOKEN_BUDGET_PER_HOUR: u64 = 500_000;

/// Which cloud adapter deploys and acts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloudChoice {
    /// `infraai-local`: real processes on this machine, through Terraform.
    Local,
    /// `infraai-gcp`: Google Cloud, through Terraform and the Compute Engine API.
    Gcp,
    /// `infraai-aws`: AWS, through Terraform and the EC2 API.
    Aws,
    /// In-memory stand-ins: scripted Terraform, recorded actions.
    Simulated,
}

/// The resolved configuration. No `Debug`: it holds secrets.
#[derive(Clone)]
pub struct Config {
    /// Listen address.
    pub listen: SocketAddr,
    /// Data directory (created at start).
    pub data_dir: PathBuf,
    /// SQLite file, when not the default.
    pub database: Option<PathBuf>,
    /// PostgreSQL URL (secret: it may hold a password); selects the
    /// PostgreSQL store instead of SQLite.
    pub database_url: Option<infraai_core::Secret>,
    /// CA file for PostgreSQL TLS.
    pub database_ca_file: Option<PathBuf>,
    /// This replica's id.
    pub replica_id: String,
    /// Configured operator token, if any.
    pub operator_token: Option<String>,
    /// Operator name (`web:<name>` in the audit trail).
    pub operator_name: String,
    /// Configured webhook token, if any.
    pub webhook_token: Option<String>,
    /// Public URL of this server.
    pub public_url: Option<String>,
    /// The LLM provider; `None`: rule-based planner and policy.
    pub llm: Option<LlmSettings>,
    /// Hourly token budget shared by the LLM components.
    pub llm_token_budget_per_hour: u64,
    /// How long an LLM decision is reused for an identical incident context.
    pub decision_cache_ttl: Duration,
    /// GCP settings, when the cloud is GCP.
    pub gcp: Option<GcpSettings>,
    /// AWS settings, when the cloud is AWS.
    pub aws: Option<AwsSettings>,
    /// The cloud adapter.
    pub cloud: CloudChoice,
    /// Terraform binary, when configured.
    pub terraform_bin: Option<PathBuf>,
    /// Planner region.
    pub region: Option<String>,
    /// Telegram, when configured.
    pub telegram: Option<TelegramSettings>,
    /// Discord, when configured.
    pub discord: Option<DiscordSettings>,
    /// Partial chat configuration problems (said at start-up).
    pub notes: Vec<String>,
    /// Pending approvals expire after this.
    pub approval_timeout: Duration,
    /// Wait between an action and the re-check.
    pub feedback_delay: Duration,
    /// Watcher period.
    pub watch_interval: Duration,
    /// Lease of this replica's jobs.
    pub lease: Duration,
    /// Request timeout.
    pub request_timeout: Duration,
    /// Prometheus for re-checks (the watcher is off when set).
    pub prometheus_url: Option<String>,
}

fn nonempty(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

impl Config {
    /// Resolves flags/env over the file over the defaults.
    pub fn load(cli: Cli) -> anyhow::Result<Self> {
        let file = match &cli.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        Self::merge(cli, file)
    }

    fn merge(c: Cli, f: FileConfig) -> anyhow::Result<Self> {
        let (database_url, replica_id) = store_settings(&c, &f)?;
        let operator_name =
            nonempty(c.operator_name.or(f.operator_name)).unwrap_or_else(|| "operator".into());
        if !operator_name
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || "-_.@".contains(ch))
        {
            bail!("operator_name may only hold letters, digits and - _ . @");
        }
        let mut notes = Vec::new();
        let tg_token = nonempty(c.telegram_bot_token.or(f.telegram_bot_token));
        let tg_chat = c.telegram_chat_id.or(f.telegram_chat_id);
        let telegram = match (tg_token, tg_chat) {
            (Some(bot_token), Some(chat_id)) => Some(TelegramSettings {
                bot_token,
                chat_id,
                webhook_secret: nonempty(c.telegram_webhook_secret.or(f.telegram_webhook_secret)),
                api_base: nonempty(c.telegram_api_base.or(f.telegram_api_base)),
                approvers: c
                    .telegram_approvers
                    .or(f.telegram_approvers)
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|s| !s.trim().is_empty())
                    .collect(),
            }),
            (Some(_), None) => {
                notes.push(
                    "telegram: bot token set but no chat id (INFRAAI_TELEGRAM_CHAT_ID)".into(),
                );
                None
            }
            (None, Some(_)) => {
                notes.push(
                    "telegram: chat id set but no bot token (INFRAAI_TELEGRAM_BOT_TOKEN)".into(),
                );
                None
            }
            (None, None) => None,
        };
        let dc_key = nonempty(c.discord_public_key.or(f.discord_public_key));
        let dc_token = nonempty(c.discord_bot_token.or(f.discord_bot_token));
        let dc_channel = nonempty(c.discord_channel_id.or(f.discord_channel_id));
        let discord = match (dc_key, dc_token, dc_channel) {
            (Some(public_key), Some(bot_token), Some(channel_id)) => Some(DiscordSettings {
                public_key,
                bot_token,
                channel_id,
                api_base: nonempty(c.discord_api_base.or(f.discord_api_base)),
                approvers: c
                    .discord_approvers
                    .or(f.discord_approvers)
                    .unwrap_or_default(),
                approver_roles: c
                    .discord_approver_roles
                    .or(f.discord_approver_roles)
                    .unwrap_or_default(),
            }),
            (None, None, None) => None,
            _ => {
                notes.push("discord: needs all of public key, bot token and channel id (INFRAAI_DISCORD_PUBLIC_KEY, INFRAAI_DISCORD_BOT_TOKEN, INFRAAI_DISCORD_CHANNEL_ID)".into());
                None
            }
        };
        let list = |v: Option<Vec<String>>| -> Vec<String> {
            v.unwrap_or_default()
                .into_iter()
                .map(|r| r.trim().to_string())
                .filter(|r| !r.is_empty())
                .collect()
        };
        let gcp_project = nonempty(c.gcp_project.or(f.gcp_project));
        let cloud = match nonempty(c.cloud.or(f.cloud)).as_deref() {
            None if gcp_project.is_some() => CloudChoice::Gcp,
            None | Some("local") => CloudChoice::Local,
            Some("gcp") => CloudChoice::Gcp,
            Some("aws") => CloudChoice::Aws,
            Some("simulated") => CloudChoice::Simulated,
            Some(other) => {
                bail!("unknown cloud {other:?}: expected \"local\", \"gcp\", \"aws\" or \"simulated\"")
            }
        };
        let mut region = nonempty(c.region.or(f.region));
        let gcp = match (cloud, gcp_project) {
            (CloudChoice::Gcp, None) => {
                bail!("cloud \"gcp\" needs a project (INFRAAI_GCP_PROJECT or gcp_project)")
            }
            (CloudChoice::Gcp, Some(project)) => {
                let region = region.get_or_insert_with(|| "us-central1".into()).clone();
                Some(GcpSettings {
                    project,
                    zone: nonempty(c.gcp_zone.or(f.gcp_zone))
                        .unwrap_or_else(|| format!("{region}-a")),
                    credentials_file: c.gcp_credentials_file.or(f.gcp_credentials_file),
                    access_token: nonempty(c.gcp_access_token.or(f.gcp_access_token)),
                    ssh_ranges: list(c.gcp_ssh_ranges.or(f.gcp_ssh_ranges)),
                    compute_url: nonempty(c.gcp_compute_url.or(f.gcp_compute_url)),
                    monitoring_url: nonempty(c.gcp_monitoring_url.or(f.gcp_monitoring_url)),
                    metadata_url: nonempty(c.gcp_metadata_url.or(f.gcp_metadata_url)),
                })
            }
            (_, Some(_)) => {
                notes.push(format!(
                    "gcp: a project is set but the cloud is {cloud:?}; the GCP adapters are not used"
                ));
                None
            }
            (_, None) => None,
        };
        let aws = if cloud == CloudChoice::Aws {
            let aws_region =
                nonempty(c.aws_region.or(f.aws_region)).unwrap_or_else(|| "us-east-1".into());
            region.get_or_insert_with(|| aws_region.clone());
            let (Some(access_key_id), Some(secret_access_key)) = (
                nonempty(c.aws_access_key_id.or(f.aws_access_key_id)),
                nonempty(c.aws_secret_access_key.or(f.aws_secret_access_key)),
            ) else {
                bail!(
                    "cloud \"aws\" needs credentials (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
                )
            };
            Some(AwsSettings {
                region: aws_region,
                access_key_id,
                secret_access_key,
                session_token: nonempty(c.aws_session_token.or(f.aws_session_token)),
                ami: nonempty(c.aws_ami.or(f.aws_ami)),
                account_id: nonempty(c.aws_account_id.or(f.aws_account_id)),
                ssh_ranges: list(c.aws_ssh_ranges.or(f.aws_ssh_ranges)),
                ec2_url: nonempty(c.aws_ec2_url.or(f.aws_ec2_url)),
                monitoring_url: nonempty(c.aws_monitoring_url.or(f.aws_monitoring_url)),
            })
        } else {
            None
        };
        let llm = llm_settings(
            nonempty(c.gemini_api_key.or(f.gemini_api_key)),
            nonempty(c.gemini_model.or(f.gemini_model)),
            nonempty(c.gemini_base_url.or(f.gemini_base_url)),
            nonempty(c.openai_api_key.or(f.openai_api_key)),
            nonempty(c.openai_model.or(f.openai_model)),
            nonempty(c.openai_base_url.or(f.openai_base_url)),
            &mut notes,
        )?;
        let secs = |v: Option<u64>, d: u64| Duration::from_secs(v.unwrap_or(d));
        Ok(Self {
            listen: c
                .listen
                .or(f.listen)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
            data_dir: c.data_dir.or(f.data_dir).unwrap_or_else(|| "./data".into()),
            database: c.database.or(f.database),
            database_url,
            database_ca_file: c.database_ca_file.or(f.database_ca_file),
            replica_id,
            operator_token: nonempty(c.operator_token.or(f.operator_token)),
            operator_name,
            webhook_token: nonempty(c.webhook_token.or(f.webhook_token)),
            public_url: nonempty(c.public_url.or(f.public_url)),
            llm,
            llm_token_budget_per_hour: c
                .llm_token_budget_per_hour
                .or(f.llm_token_budget_per_hour)
                .unwrap_or(DEFAULT_LLM_TOKEN_BUDGET_PER_HOUR),
            decision_cache_ttl: secs(c.decision_cache_ttl_secs.or(f.decision_cache_ttl_secs), 600),
            gcp,
            aws,
            cloud,
            terraform_bin: c.terraform_bin.or(f.terraform_bin),
            region,
            telegram,
            discord,
            notes,
            approval_timeout: secs(c.approval_timeout_secs.or(f.approval_timeout_secs), 3600),
            feedback_delay: secs(c.feedback_delay_secs.or(f.feedback_delay_secs), 30),
            watch_interval: secs(c.watch_interval_secs.or(f.watch_interval_secs), 15)
                .max(Duration::from_secs(1)),
            lease: secs(c.lease_secs.or(f.lease_secs), 30).max(Duration::from_secs(3)),
            request_timeout: secs(c.request_timeout_secs.or(f.request_timeout_secs), 150)
                .max(Duration::from_secs(1)),
            prometheus_url: nonempty(c.prometheus_url.or(f.prometheus_url)),
        })
    }
}

/// One LLM provider at most; settings of the other one are a mistake worth
/// refusing rather than silently ignoring.
fn llm_settings(
    gemini_key: Option<String>,
    gemini_model: Option<String>,
    gemini_base_url: Option<String>,
    openai_key: Option<String>,
    openai_model: Option<String>,
    openai_base_url: Option<String>,
    notes: &mut Vec<String>,
) -> anyhow::Result<Option<LlmSettings>> {
    let openai_any = openai_key.is_some() || openai_model.is_some() || openai_base_url.is_some();
    if gemini_key.is_some() && openai_any {
        bail!("both Gemini (GEMINI_API_KEY) and an OpenAI-compatible provider (INFRAAI_OPENAI_*) are configured; set only one");
    }
    if let Some(api_key) = gemini_key {
        return Ok(Some(LlmSettings::Gemini {
            api_key,
            model: gemini_model,
            base_url: gemini_base_url,
        }));
    }
    if gemini_model.is_some() || gemini_base_url.is_some() {
        notes.push(
            "llm: a Gemini model or base URL is set but no key (GEMINI_API_KEY); Gemini is off"
                .into(),
        );
    }
    match openai_model {
        Some(model) => Ok(Some(LlmSettings::OpenAi {
            api_key: openai_key,
            model,
            base_url: openai_base_url,
        })),
        None if openai_any => bail!(
            "the OpenAI-compatible provider needs a model (INFRAAI_OPENAI_MODEL or openai_model)"
        ),
        None => Ok(None),
    }
}

/// The PostgreSQL URL (checked for its scheme, never echoed) and the replica id.
fn store_settings(
    c: &Cli,
    f: &FileConfig,
) -> anyhow::Result<(Option<infraai_core::Secret>, String)> {
    let url = nonempty(c.database_url.clone().or_else(|| f.database_url.clone()));
    if let Some(u) = &url {
        if !(u.starts_with("postgres://") || u.starts_with("postgresql://")) {
            bail!("database_url must be a postgres:// or postgresql:// URL (the SQLite file is `database`)");
        }
        if c.database.is_some() || f.database.is_some() {
            bail!("set either database (a SQLite file) or database_url (PostgreSQL), not both");
        }
    }
    let replica_id = nonempty(c.replica_id.clone().or_else(|| f.replica_id.clone()))
        .unwrap_or_else(default_replica_id);
    if replica_id.len() > 48
        || !replica_id
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || "-_.".contains(ch))
    {
        bail!("replica_id may only hold up to 48 letters, digits and - _ .");
    }
    Ok((url.map(infraai_core::Secret::new), replica_id))
}

/// `HOSTNAME-PID`, with the host name cut to the characters a replica id allows.
fn default_replica_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default();
    let host: String = host
        .trim()
        .chars()
        .filter(|ch| ch.is_ascii_alphanumeric() || "-_.".contains(*ch))
        .take(32)
        .collect();
    let host = if host.is_empty() {
        "infraai".into()
    } else {
        host
    };
    format!("{host}-{}", std::process::id())
}

fn read_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading configuration file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing configuration file {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_the_file_and_the_file_over_defaults() {
        let file: FileConfig = toml::from_str(
            "listen = \"127.0.0.1:9000\"\noperator_name = \"ada\"\ntelegram_bot_token = \"1:x\"\n",
        )
        .unwrap();
        let cli = Cli {
            operator_name: Some("grace".into()),
            ..Default::default()
        };
        let c = Config::merge(cli, file).unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.operator_name, "grace");
        assert_eq!(c.data_dir, PathBuf::from("./data"));
        assert!(c.telegram.is_none());
        assert_eq!(c.notes.len(), 1, "{:?}", c.notes);
    }

    #[test]
    fn one_llm_provider_at_most_with_budget_and_cache_settings() {
        let file: FileConfig = toml::from_str(
            "openai_model = \"llama3.1\"\nopenai_base_url = \"http://localhost:11434/v1\"\nllm_token_budget_per_hour = 1234\ndecision_cache_ttl_secs = 0\n",
        )
        .unwrap();
        let c = Config::merge(Cli::default(), file).unwrap();
        match &c.llm {
            Some(LlmSettings::OpenAi {
                api_key,
                model,
                base_url,
            }) => {
                assert!(api_key.is_none());
                assert_eq!(model, "llama3.1");
                assert_eq!(base_url.as_deref(), Some("http://localhost:11434/v1"));
            }
            _ => panic!("expected the OpenAI-compatible provider"),
        }
        assert_eq!(c.llm_token_budget_per_hour, 1234);
        assert_eq!(c.decision_cache_ttl, Duration::ZERO);

        let defaults = Config::merge(Cli::default(), FileConfig::default()).unwrap();
        assert!(defaults.llm.is_none());
        assert_eq!(
            defaults.llm_token_budget_per_hour,
            DEFAULT_LLM_TOKEN_BUDGET_PER_HOUR
        );
        assert_eq!(defaults.decision_cache_ttl, Duration::from_secs(600));

        let both = Cli {
            gemini_api_key: Some("g".into()),
            openai_model: Some("gpt-4o-mini".into()),
            ..Default::default()
        };
        let e = Config::merge(both, FileConfig::default()).err().unwrap();
        assert!(e.to_string().contains("set only one"), "{e}");

        let no_model = Cli {
            openai_api_key: Some("sk-x".into()),
            ..Default::default()
        };
        let e = Config::merge(no_model, FileConfig::default())
            .err()
            .unwrap();
        assert!(e.to_string().contains("needs a model"), "{e}");

        let gemini = Cli {
            gemini_api_key: Some("g".into()),
            gemini_base_url: Some("https://proxy.example/v1beta".into()),
            ..Default::default()
        };
        let c = Config::merge(gemini, FileConfig::default()).unwrap();
        assert!(matches!(
            &c.llm,
            Some(LlmSettings::Gemini { base_url: Some(b), model: None, .. }) if b == "https://proxy.example/v1beta"
        ));
    }

    #[test]
    fn unknown_file_keys_and_bad_names_are_refused() {
        assert!(toml::from_str::<FileConfig>("listn = \"x\"").is_err());
        let cli = Cli {
            operator_name: Some("a b".into()),
            ..Default::default()
        };
        assert!(Config::merge(cli, FileConfig::default()).is_err());
    }

    #[test]
    fn database_url_selects_postgres_and_replica_ids_are_checked() {
        let file: FileConfig =
            toml::from_str("database_url = \"postgres://u:pw-secret@db:5432/infraai\"\n").unwrap();
        let c = Config::merge(Cli::default(), file).unwrap();
        let url = c.database_url.expect("postgres selected");
        assert_eq!(url.expose(), "postgres://u:pw-secret@db:5432/infraai");
        assert!(!format!("{url:?} {url}").contains("pw-secret"));
        assert!(!c.replica_id.is_empty());
        assert!(c.replica_id.ends_with(&format!("-{}", std::process::id())));

        let c = Config::merge(
            Cli {
                replica_id: Some("eu-1".into()),
                ..Default::default()
            },
            FileConfig::default(),
        )
        .unwrap();
        assert!(c.database_url.is_none(), "SQLite stays the default");
        assert_eq!(c.replica_id, "eu-1");

        for cli in [
            Cli {
                database_url: Some("mysql://u:pw-secret@db/x".into()),
                ..Default::default()
            },
            Cli {
                database_url: Some("postgres://u:pw-secret@db/x".into()),
                database: Some("x.db".into()),
                ..Default::default()
            },
            Cli {
                replica_id: Some("bad id".into()),
                ..Default::default()
            },
        ] {
            let err = Config::merge(cli, FileConfig::default())
                .err()
                .expect("refused");
            assert!(!format!("{err:#}").contains("pw-secret"), "{err:#}");
        }
    }
}
