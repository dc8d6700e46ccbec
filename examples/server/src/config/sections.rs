//! The configuration's sections: one field per key (its flag, variable and
//! TOML key come from the field), and the parsers of values that need one.

use anyhow::bail;
use clap::Args;
use infraai_core::{Reachable, Secret};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The HTTP server and its tokens.
#[derive(Args)]
#[command(next_help_heading = "Server")]
pub struct ServerSettings {
    /// Address to listen on.
    #[arg(long, env = "INFRAAI_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Directory for the database and generated secrets.
    #[arg(long, env = "INFRAAI_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// This replica's id, in the start-up banner, request log spans and the
    /// PostgreSQL `application_name` [default: HOSTNAME-PID].
    #[arg(long, env = "INFRAAI_REPLICA_ID", default_value = "", hide_default_value = true, value_parser = replica_id)]
    pub replica_id: String,
    /// Operator bearer token for the API and dashboard [default: generated
    /// once and stored in DATA_DIR/operator-token].
    #[arg(long, env = "INFRAAI_OPERATOR_TOKEN", hide_env_values = true)]
    pub operator_token: Option<String>,
    /// Operator name recorded in the audit trail as `web:<name>`.
    #[arg(long, env = "INFRAAI_OPERATOR_NAME", default_value = "operator", value_parser = operator_name)]
    pub operator_name: String,
    /// Token alert webhooks must send (header `X-Infraai-Webhook-Token` or
    /// query `token`) [default: generated once, DATA_DIR/webhook-token].
    #[arg(long, env = "INFRAAI_WEBHOOK_TOKEN", hide_env_values = true)]
    pub webhook_token: Option<String>,
    /// Public base URL of this server (alert policies post to URL/ops/webhook).
    #[arg(long, env = "INFRAAI_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Per-request timeout in seconds (not for event streams; LLM planning can
    /// take up to two minutes; at least 1).
    #[arg(long, env = "INFRAAI_REQUEST_TIMEOUT_SECS", default_value = "150", value_parser = secs::<1>)]
    pub request_timeout_secs: Duration,
}

/// The metadata store.
#[derive(Args)]
#[command(next_help_heading = "Store")]
pub struct StoreSettings {
    /// SQLite database file [default: DATA_DIR/infraai.db].
    #[arg(long, env = "INFRAAI_DATABASE")]
    pub database: Option<PathBuf>,
    /// PostgreSQL store shared by replicas:
    /// `postgres://user:password@host:port/database`; add `?sslmode=require`
    /// for TLS with a verified certificate (without it: plain TCP, for
    /// loopback or a private network only) [default: none, the SQLite file].
    #[arg(long, env = "INFRAAI_DATABASE_URL", hide_env_values = true, value_parser = secret)]
    pub database_url: Option<Secret>,
    /// PEM CA certificates trusted for `sslmode=require` in database_url,
    /// besides the public (webpki) roots.
    #[arg(long, env = "INFRAAI_DATABASE_CA_FILE")]
    pub database_ca_file: Option<PathBuf>,
}

/// The LLM provider (one at most) behind the planner, decision policy and fixer.
#[derive(Args)]
#[command(next_help_heading = "LLM")]
pub struct LlmSettings {
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
    /// planner, decision policy and fixer; past it the rules decide.
    #[arg(
        long,
        env = "INFRAAI_LLM_TOKEN_BUDGET_PER_HOUR",
        default_value = "500000"
    )]
    pub llm_token_budget_per_hour: u64,
    /// Seconds an LLM decision is reused for an identical incident context
    /// (0: never).
    #[arg(long, env = "INFRAAI_DECISION_CACHE_TTL_SECS", default_value = "600", value_parser = secs::<0>)]
    pub decision_cache_ttl_secs: Duration,
}

/// Which cloud deploys and acts, and where.
#[derive(Args)]
#[command(next_help_heading = "Cloud")]
pub struct CloudSettings {
    /// Cloud: `local` (real processes on this machine through Terraform),
    /// `gcp` (Google Cloud through Terraform and the Compute Engine API),
    /// `aws` (AWS through Terraform and the EC2 API) or
    /// `simulated` (in-memory stand-ins; nothing is created) [default: gcp
    /// when a GCP project is set, else local].
    #[arg(long, env = "INFRAAI_CLOUD", value_parser = CloudChoice::parse)]
    pub cloud: Option<CloudChoice>,
    /// Terraform binary for the local cloud [default: $TERRAFORM_BIN, else `terraform` on PATH].
    #[arg(long, env = "INFRAAI_TERRAFORM_BIN")]
    pub terraform_bin: Option<PathBuf>,
    /// Region passed to the planner (and the GCP region) [default for GCP:
    /// us-central1, for AWS: aws_region].
    #[arg(long, env = "INFRAAI_REGION")]
    pub region: Option<String>,
    /// Which answers verify a deployed service: `below-500` (any answer
    /// below 500; a fresh service's 404 is alive, as the product plan says)
    /// or `2xx`.
    #[arg(long, env = "INFRAAI_VERIFY_REACHABLE", default_value = "below-500", value_parser = reachable)]
    pub verify_reachable: Reachable,
}

fn reachable(s: &str) -> anyhow::Result<Reachable> {
    match s {
        "below-500" => Ok(Reachable::Below500),
        "2xx" => Ok(Reachable::Success),
        other => bail!("{other:?} is not `below-500` or `2xx`"),
    }
}

/// Google Cloud (`cloud = "gcp"`).
#[derive(Args)]
#[command(next_help_heading = "GCP")]
pub struct GcpSettings {
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
    pub gcp_ssh_ranges: Vec<String>,
    /// Compute Engine API base [default: `https://compute.googleapis.com/compute/v1`].
    #[arg(long, env = "INFRAAI_GCP_COMPUTE_URL")]
    pub gcp_compute_url: Option<String>,
    /// Cloud Monitoring API base [default: `https://monitoring.googleapis.com`].
    #[arg(long, env = "INFRAAI_GCP_MONITORING_URL")]
    pub gcp_monitoring_url: Option<String>,
    /// Metadata server base [default: `http://metadata.google.internal`].
    #[arg(long, env = "INFRAAI_GCP_METADATA_URL")]
    pub gcp_metadata_url: Option<String>,
}

/// AWS (`cloud = "aws"`).
#[derive(Args)]
#[command(next_help_heading = "AWS")]
pub struct AwsSettings {
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
    pub aws_ssh_ranges: Vec<String>,
    /// EC2 API base [default: `https://ec2.REGION.amazonaws.com`].
    #[arg(long, env = "INFRAAI_AWS_EC2_URL")]
    pub aws_ec2_url: Option<String>,
    /// CloudWatch API base [default: `https://monitoring.REGION.amazonaws.com`].
    #[arg(long, env = "INFRAAI_AWS_MONITORING_URL")]
    pub aws_monitoring_url: Option<String>,
    /// One endpoint for every AWS service, for an AWS API emulator (moto in
    /// server mode, LocalStack): Terraform's provider gets it for each
    /// service and skips what only real AWS answers; the EC2 and CloudWatch
    /// clients use it unless their own URL is set.
    #[arg(long, env = "INFRAAI_AWS_ENDPOINT_URL")]
    pub aws_endpoint_url: Option<String>,
    /// Root volume of each instance in GiB [default: the AMI's size].
    #[arg(long, env = "INFRAAI_AWS_ROOT_VOLUME_GIB", value_parser = clap::value_parser!(u32).range(1..=16384))]
    pub aws_root_volume_gib: Option<u32>,
}

/// Telegram approvals (on with a bot token and a chat id).
#[derive(Args)]
#[command(next_help_heading = "Telegram")]
pub struct TelegramSettings {
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
    pub telegram_approvers: Vec<String>,
}

/// Discord approvals (on with a public key, a bot token and a channel id).
#[derive(Args)]
#[command(next_help_heading = "Discord")]
pub struct DiscordSettings {
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
    pub discord_approvers: Vec<String>,
    /// Discord role ids whose holders may approve (comma separated).
    #[arg(long, env = "INFRAAI_DISCORD_APPROVER_ROLES", value_delimiter = ',')]
    pub discord_approver_roles: Vec<String>,
    /// How far (either way) an interaction's signed timestamp may be from
    /// now before it is refused with 401 as a replay.
    #[arg(long, env = "INFRAAI_DISCORD_REPLAY_WINDOW_SECS", default_value = "300", value_parser = secs::<1>)]
    pub discord_replay_window_secs: Duration,
}

/// Slack approvals (on with a bot token, a signing secret and a channel id).
#[derive(Args)]
#[command(next_help_heading = "Slack")]
pub struct SlackSettings {
    /// Slack bot token (`xoxb-…`).
    #[arg(long, env = "INFRAAI_SLACK_BOT_TOKEN", hide_env_values = true)]
    pub slack_bot_token: Option<String>,
    /// Slack app signing secret: every request from Slack is verified with it.
    #[arg(long, env = "INFRAAI_SLACK_SIGNING_SECRET", hide_env_values = true)]
    pub slack_signing_secret: Option<String>,
    /// Slack channel approval requests go to (`C…`).
    #[arg(long, env = "INFRAAI_SLACK_CHANNEL_ID")]
    pub slack_channel_id: Option<String>,
    /// Slack Web API base [default: `https://slack.com/api`].
    #[arg(long, env = "INFRAAI_SLACK_API_BASE")]
    pub slack_api_base: Option<String>,
    /// Slack user ids allowed to approve (comma separated).
    #[arg(long, env = "INFRAAI_SLACK_APPROVERS", value_delimiter = ',')]
    pub slack_approvers: Vec<String>,
    /// Slack user group ids (`S…`) whose members may approve (comma separated).
    #[arg(long, env = "INFRAAI_SLACK_APPROVER_GROUPS", value_delimiter = ',')]
    pub slack_approver_groups: Vec<String>,
}

/// The MCP interface (`/mcp` and `infraai-server mcp`).
#[derive(Args)]
#[command(next_help_heading = "MCP")]
pub struct McpSettings {
    /// Bearer token for MCP clients that may only read (incidents, runs,
    /// deployments, metrics, plans, dry runs). The operator token may also
    /// propose.
    #[arg(long, env = "INFRAAI_MCP_READ_TOKEN", hide_env_values = true)]
    pub mcp_read_token: Option<String>,
    /// Bearer token for MCP clients that may also propose actions (each
    /// still needs a human's approval) and stop autonomy.
    #[arg(long, env = "INFRAAI_MCP_PROPOSE_TOKEN", hide_env_values = true)]
    pub mcp_propose_token: Option<String>,
    /// Most MCP tool calls per minute for each token (and for stdio).
    #[arg(long, env = "INFRAAI_MCP_CALLS_PER_MINUTE", default_value = "120", value_parser = clap::value_parser!(u32).range(1..))]
    pub mcp_calls_per_minute: u32,
}

/// The ops loop's timing and metric source.
#[derive(Args)]
#[command(next_help_heading = "Ops loop")]
pub struct OpsSettings {
    /// Seconds a pending approval waits before it expires.
    #[arg(long, env = "INFRAAI_APPROVAL_TIMEOUT_SECS", default_value = "3600", value_parser = secs::<0>)]
    pub approval_timeout_secs: Duration,
    /// Seconds between an action and the metric re-check.
    #[arg(long, env = "INFRAAI_FEEDBACK_DELAY_SECS", default_value = "30", value_parser = secs::<0>)]
    pub feedback_delay_secs: Duration,
    /// Seconds between threshold-watcher passes (at least 1).
    #[arg(long, env = "INFRAAI_WATCH_INTERVAL_SECS", default_value = "15", value_parser = secs::<1>)]
    pub watch_interval_secs: Duration,
    /// Seconds a replica's hold on a piece of background work lasts without
    /// renewal: another replica takes over the work of one that died after
    /// at most this long (at least 3).
    #[arg(long, env = "INFRAAI_LEASE_SECS", default_value = "30", value_parser = secs::<3>)]
    pub lease_secs: Duration,
    /// Prometheus base URL (e.g. `http://127.0.0.1:9090`): the metric re-check
    /// reads Prometheus, and the threshold watcher is off (Prometheus alerts
    /// through Alertmanager to `/ops/webhook/alertmanager`).
    #[arg(long, env = "INFRAAI_PROMETHEUS_URL")]
    pub prometheus_url: Option<String>,
}

/// When the agent may act alone: what an automatic action may cost, and
/// when an action type has earned autonomy (`docs/autonomy.md`).
#[derive(Args)]
#[command(next_help_heading = "Autonomy")]
pub struct AutonomySettings {
    /// The most one action may add to the monthly bill (USD, list prices)
    /// and still run without a human.
    #[arg(long, env = "INFRAAI_MAX_AUTO_MONTHLY_INCREASE_USD", default_value = "50", value_parser = usd)]
    pub max_auto_monthly_increase_usd: f64,
    /// The most the automatic actions of the last 24 hours may add to the
    /// monthly bill together (USD).
    #[arg(long, env = "INFRAAI_MAX_AUTO_DAILY_INCREASE_USD", default_value = "200", value_parser = usd)]
    pub max_auto_daily_increase_usd: f64,
    /// Earned autonomy: an (action, resource type) pair asks a human until
    /// its approved-and-resolved record earns `auto`. `false` trusts every
    /// unpinned pair (the other guardrails still apply).
    #[arg(long, env = "INFRAAI_EARNED_AUTONOMY", default_value = "true", action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new())]
    pub earned_autonomy: bool,
    /// Concluded decisions a pair needs before a promotion; its precision is
    /// measured over the last this many.
    #[arg(long, env = "INFRAAI_AUTONOMY_MIN_DECISIONS", default_value = "20", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub autonomy_min_decisions: u32,
    /// The share of those decisions approved and resolved that promotes a
    /// pair to `auto` (0–1).
    #[arg(long, env = "INFRAAI_AUTONOMY_PRECISION", default_value = "0.95", value_parser = share)]
    pub autonomy_precision: f64,
}

impl AutonomySettings {
    /// Applies these settings to a cloud's guardrails.
    pub fn apply(&self, guardrails: &mut infraai_core::GuardrailConfig) {
        guardrails.max_auto_monthly_increase_usd = self.max_auto_monthly_increase_usd;
        guardrails.max_auto_daily_increase_usd = self.max_auto_daily_increase_usd;
        let earned = &mut guardrails.earned_autonomy;
        earned.enabled = self.earned_autonomy;
        earned.min_decisions = self.autonomy_min_decisions;
        earned.precision = self.autonomy_precision;
    }
}

fn usd(v: &str) -> anyhow::Result<f64> {
    match v.parse::<f64>() {
        Ok(n) if n.is_finite() && n >= 0.0 => Ok(n),
        _ => bail!("{v:?} is not an amount of USD (a number, 0 or more)"),
    }
}

fn share(v: &str) -> anyhow::Result<f64> {
    match v.parse::<f64>() {
        Ok(n) if (0.0..=1.0).contains(&n) => Ok(n),
        _ => bail!("{v:?} is not a share between 0 and 1"),
    }
}

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

impl CloudChoice {
    fn parse(s: &str) -> anyhow::Result<Self> {
        Ok(match s.trim() {
            // Empty means unset: the value is dropped before it is read.
            "" | "local" => Self::Local,
            "gcp" => Self::Gcp,
            "aws" => Self::Aws,
            "simulated" => Self::Simulated,
            other => bail!(
                "unknown cloud {other:?}: expected \"local\", \"gcp\", \"aws\" or \"simulated\""
            ),
        })
    }
}

impl StoreSettings {
    /// The PostgreSQL URL is checked for its scheme, never echoed.
    pub(super) fn check(&self) -> anyhow::Result<()> {
        if let Some(url) = &self.database_url {
            let u = url.expose();
            if !(u.starts_with("postgres://") || u.starts_with("postgresql://")) {
                bail!("database_url must be a postgres:// or postgresql:// URL (the SQLite file is `database`)");
            }
            if self.database.is_some() {
                bail!("set either database (a SQLite file) or database_url (PostgreSQL), not both");
            }
        }
        Ok(())
    }
}

impl LlmSettings {
    /// One provider at most: settings of the other one are a mistake worth
    /// refusing rather than silently ignoring.
    pub(super) fn check(&self, notes: &mut Vec<String>) -> anyhow::Result<()> {
        let openai_any = self.openai_api_key.is_some()
            || self.openai_model.is_some()
            || self.openai_base_url.is_some();
        if self.gemini_api_key.is_some() && openai_any {
            bail!("both Gemini (GEMINI_API_KEY) and an OpenAI-compatible provider (INFRAAI_OPENAI_*) are configured; set only one");
        }
        if self.gemini_api_key.is_none()
            && (self.gemini_model.is_some() || self.gemini_base_url.is_some())
        {
            notes.push(
                "llm: a Gemini model or base URL is set but no key (GEMINI_API_KEY); Gemini is off"
                    .into(),
            );
        }
        if openai_any && self.openai_model.is_none() {
            bail!("the OpenAI-compatible provider needs a model (INFRAAI_OPENAI_MODEL or openai_model)");
        }
        Ok(())
    }
}

impl AwsSettings {
    /// The AWS region, `us-east-1` unless set.
    pub fn region(&self) -> &str {
        self.aws_region.as_deref().unwrap_or("us-east-1")
    }
}

/// Seconds, at least `MIN`.
pub(super) fn secs<const MIN: u64>(s: &str) -> Result<Duration, std::num::ParseIntError> {
    Ok(Duration::from_secs(s.parse::<u64>()?.max(MIN)))
}

fn secret(s: &str) -> Result<Secret, std::convert::Infallible> {
    Ok(Secret::new(s.trim()))
}

fn operator_name(s: &str) -> anyhow::Result<String> {
    let name = match s.trim() {
        "" => "operator",
        name => name,
    };
    if !name
        .chars()
        .all(|ch| ch.is_ascii_alphanumeric() || "-_.@".contains(ch))
    {
        bail!("operator_name may only hold letters, digits and - _ . @");
    }
    Ok(name.to_string())
}

fn replica_id(s: &str) -> anyhow::Result<String> {
    let id = match s.trim() {
        "" => return Ok(default_replica_id()),
        id => id,
    };
    if id.len() > 48
        || !id
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || "-_.".contains(ch))
    {
        bail!("replica_id may only hold up to 48 letters, digits and - _ .");
    }
    Ok(id.to_string())
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
