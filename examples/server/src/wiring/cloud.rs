//! The cloud adapters: generator, Terraform runner, verifier, actions and
//! metrics of the configured cloud (or the simulated stand-ins).

use super::DEMO_SERVICE;
use crate::config::{AwsSettings, CloudChoice, Config, GcpSettings};
use anyhow::Context;
use infraai_aws::{
    ApiEndpoint, AwsActions, AwsApi, AwsCloud, AwsConfig, AwsCredentials, CloudWatchMetrics,
    Ec2Client, SnsAlertSource, SnsConfig,
};
use infraai_core::testing::{
    FakeGenerator, RecordingActions, ScriptedMetrics, ScriptedTfRunner, StaticVerifier,
};
use infraai_core::*;
use infraai_gcp::{
    CloudMonitoringMetrics, ComputeConfig, ComputeEngine, Credentials, GcpActions, GcpCloud,
    GcpConfig, MetadataServer, ServiceAccount, StaticToken,
};
use infraai_local::{LocalActions, LocalCloud, LocalConfig, LocalMetrics};
use infraai_prometheus::{PromQueries, PrometheusMetrics};
use infraai_terraform::{TerraformConfig, TerraformRunner};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The configured cloud (the simulated one when the local cloud's Terraform
/// does not answer), the SNS alert source on AWS, and Prometheus for
/// re-checks when configured.
pub(super) async fn select(
    config: &Config,
    webhook_token: &str,
    store: Arc<dyn MetadataStore>,
    prom_queries: &PromQueries,
) -> anyhow::Result<(CloudParts, Option<Arc<SnsAlertSource>>)> {
    let mut sns = None;
    let mut parts = match config.cloud() {
        CloudChoice::Gcp => gcp_cloud(config, webhook_token, store).await?,
        CloudChoice::Aws => {
            let (parts, source) = aws_cloud(config, webhook_token, store).await?;
            sns = source;
            parts
        }
        CloudChoice::Local => local_cloud(config, store).await.unwrap_or_else(simulated),
        CloudChoice::Simulated => simulated("INFRAAI_CLOUD=simulated".into()),
    };
    if matches!(config.cloud(), CloudChoice::Local | CloudChoice::Simulated) {
        parts.report.push(REAL_CLOUDS_OFF.into());
    }
    if let Some(url) = &config.ops.prometheus_url {
        parts.metrics = Arc::new(PrometheusMetrics::new(url.clone(), prom_queries.clone()));
        parts.run_watcher = false;
        parts.report.push(format!(
            "metrics: Prometheus at {url} for re-checks; the threshold watcher is off (alerts come from Alertmanager on POST /ops/webhook/alertmanager; rules for Prometheus at GET /ops/prometheus/rules)"
        ));
    }
    Ok((parts, sns))
}

/// What a cloud adapter contributes.
pub(super) struct CloudParts {
    pub generator: Arc<dyn TerraformGenerator>,
    pub runner: Arc<dyn TfRunner>,
    pub verifier: Arc<dyn Verifier>,
    pub actions: Arc<dyn ActionHandler>,
    pub metrics: Arc<dyn MetricSource>,
    pub guardrails: GuardrailConfig,
    /// Whether the threshold watcher runs (clouds without native alerting).
    pub run_watcher: bool,
    /// Whether this is the simulated cloud (nothing real is created).
    pub simulated: bool,
    /// Start-up banner lines.
    pub report: Vec<String>,
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
        reachable: Reachable,
    ) -> Self {
        let verifier = HttpVerifier::new(30, Duration::from_secs(10)).with_reachable(reachable);
        Self {
            generator,
            runner,
            verifier: Arc::new(verifier),
            actions: Arc::new(crate::retry::BusyRetry(actions)),
            metrics,
            guardrails,
            run_watcher: false,
            simulated: false,
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
        verifier: Arc::new(
            HttpVerifier::new(5, Duration::from_millis(500))
                .with_reachable(config.cloud.verify_reachable),
        ),
        actions: Arc::new(crate::retry::BusyRetry(Arc::new(LocalActions::new(
            runner,
            store,
            instances.clone(),
        )))),
        metrics: Arc::new(LocalMetrics::new(instances)),
        guardrails: infraai_local::profiles::guardrails(GuardrailConfig::default()),
        run_watcher: true,
        simulated: false,
        report: vec![line],
    })
}

/// The GCP credentials (a service-account key file, a fixed token or the
/// metadata server) and a phrase naming their source.
fn gcp_credentials(gcp: &GcpSettings) -> anyhow::Result<(Arc<dyn Credentials>, String)> {
    if let Some(file) = &gcp.gcp_credentials_file {
        let json = std::fs::read(file)
            .with_context(|| format!("reading the service-account key {}", file.display()))?;
        let account = ServiceAccount::from_json(&json)
            .with_context(|| format!("parsing the service-account key {}", file.display()))?;
        let source = format!("service account {}", account.client_email());
        return Ok((Arc::new(account), source));
    }
    if let Some(token) = &gcp.gcp_access_token {
        let source = "a fixed access token (GOOGLE_OAUTH_ACCESS_TOKEN; not refreshed)";
        return Ok((
            Arc::new(StaticToken(Secret::new(token.clone()))),
            source.into(),
        ));
    }
    let server = match &gcp.gcp_metadata_url {
        Some(base) => MetadataServer::new(base.clone()),
        None => MetadataServer::default(),
    };
    let source = "the metadata server (the VM's service account)";
    Ok((Arc::new(server), source.into()))
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
    let (credentials, source) = gcp_credentials(gcp)?;
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
    let guardrails = infraai_gcp::guardrails(GuardrailConfig::default());
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
        config.cloud.verify_reachable,
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
        root_volume_gib: aws.aws_root_volume_gib,
        endpoint_url: aws.aws_endpoint_url.clone(),
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
    let (ec2, monitoring) = aws_clients(aws, &region, credentials)?;
    let guardrails = infraai_aws::ladder::guardrails(GuardrailConfig::default());
    let actions = AwsActions::new(ec2, runner.clone(), store.clone(), guardrails.clone());
    let metrics = CloudWatchMetrics::new(monitoring, store);
    let mut lines = vec![format!(
        "cloud: aws — region {} through {terraform} (the AWS provider is fetched from the registry at init); EC2 actions and CloudWatch metrics with access key {}",
        region, access_key_id
    )];
    if let Some(url) = &aws.aws_endpoint_url {
        lines.push(format!(
            "aws: every AWS API at {url} (an AWS API emulator; not real AWS)"
        ));
    }
    if aws.aws_ami.is_none() {
        lines.push("aws: no INFRAAI_AWS_AMI — configurations validate, but a plan cannot apply without an AMI".into());
    }
    let sns = sns_source(aws, &region, webhook_token, &mut lines);
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
            config.cloud.verify_reachable,
        ),
        sns,
    ))
}

/// The EC2 client and the CloudWatch API, at their public endpoints for
/// the region unless configured.
fn aws_clients(
    aws: &AwsSettings,
    region: &str,
    credentials: AwsCredentials,
) -> anyhow::Result<(Ec2Client, AwsApi)> {
    let endpoint = |service: &str, base: &Option<String>| match base
        .as_ref()
        .or(aws.aws_endpoint_url.as_ref())
    {
        Some(url) => ApiEndpoint {
            region: region.to_string(),
            base_url: url.clone(),
        },
        None => ApiEndpoint::public(service, region),
    };
    let http = AwsApi::default_http();
    let ec2 = AwsApi::new(
        http.clone(),
        credentials.clone(),
        endpoint("ec2", &aws.aws_ec2_url),
        "ec2",
    )
    .context("EC2 client")?;
    let monitoring = endpoint("monitoring", &aws.aws_monitoring_url);
    let monitoring =
        AwsApi::new(http, credentials, monitoring, "monitoring").context("CloudWatch client")?;
    Ok((Ec2Client::new(ec2), monitoring))
}

/// SNS alarm notifications, accepted from the account's `infraai-alerts-*`
/// topics only (none without an account id), with the webhook token.
fn sns_source(
    aws: &AwsSettings,
    region: &str,
    webhook_token: &str,
    lines: &mut Vec<String>,
) -> Option<Arc<SnsAlertSource>> {
    let Some(account) = &aws.aws_account_id else {
        lines.push("aws: no INFRAAI_AWS_ACCOUNT_ID — SNS alarm notifications are refused, so no CloudWatch alarm reaches this server".into());
        return None;
    };
    lines.push(format!(
        "aws: SNS alarm notifications on /ops/webhook from topics arn:aws:sns:{region}:{account}:infraai-alerts-* (signatures verified)"
    ));
    let mut sns = SnsConfig::new(vec![format!(
        "arn:aws:sns:{region}:{account}:infraai-alerts-*"
    )]);
    sns.auth = Some(WebhookAuth::Token(Secret::new(webhook_token)));
    Some(Arc::new(SnsAlertSource::new(sns)))
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
        guardrails: infraai_core::testing::guardrails(),
        run_watcher: false,
        simulated: true,
        report: vec![format!(
            "cloud: SIMULATED ({why}) — scripted Terraform, actions are only recorded, metrics are scripted; nothing real is created or changed. For the real local cloud (real processes through Terraform), install terraform (≥ 1.4) or set TERRAFORM_BIN, and restart"
        )],
    }
}
