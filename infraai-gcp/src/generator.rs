//! The GCP Terraform generator: an [`InfraPlan`] → one `main.tf` for the
//! hashicorp/google provider (6.x), written through the safe HCL writer of
//! `infraai-terraform`, with Cloud Monitoring alert policies bound from the
//! metric-profile registry and a webhook notification channel that posts to
//! the agent.

use crate::catalog::{CLOUDSQL_DATABASE, GCE_INSTANCE, INSTANCE_GROUP};
use infraai_core::{
    Aligner, Comparison, Error, GenerateRequest, InfraPlan, MonitoringPolicy, PlannedResource,
    ResourceKind, Result, RunId, Severity, TerraformFiles, TerraformGenerator,
};
use infraai_terraform::hcl::{Block, Body, Expr, Part};
// `machine_type_<name>` per instance, group and database: the variable the
// Terraform scale-up path (`GcpActions::with_terraform`) sets.
use infraai_terraform::machine_type_var;
use std::collections::BTreeSet;
use std::net::IpAddr;

/// Resource type of firewall rules (the Cloud Logging / asset name; Cloud
/// Monitoring has no metrics for them).
pub const GCE_FIREWALL_RULE: &str = "gce_firewall_rule";

/// The variable holding the sensitive token appended to the notification
/// channel's URL (`?token=…`). It has no default: pass it to Terraform in
/// the environment as `TF_VAR_ops_webhook_token`, never in a file.
pub const WEBHOOK_TOKEN_VAR: &str = "ops_webhook_token";

/// The variable holding the agent's alert webhook URL (`…/ops/webhook`).
pub const WEBHOOK_URL_VAR: &str = "ops_webhook_url";

/// The provider version constraint written into `required_providers`; the
/// offline schema ([`crate::SchemaChecker`]) is the one of 6.50.0.
pub const GOOGLE_PROVIDER_CONSTRAINT: &str = "~> 6.50";

/// The startup script of [`GcpConfig::new`]: nginx answers on port 80, so a
/// fresh deployment can be verified over HTTP before the real service is
/// installed.
pub const DEFAULT_STARTUP_SCRIPT: &str = "#!/bin/sh\nset -e\nif ! command -v nginx >/dev/null 2>&1; then\n  apt-get update\n  DEBIAN_FRONTEND=noninteractive apt-get install -y nginx\nfi\nsystemctl enable --now nginx\n";

/// Where and how the GCP generator deploys.
#[derive(Clone, Debug, PartialEq)]
pub struct GcpConfig {
    /// The project (`var.project_id` defaults to it).
    pub project_id: String,
    /// The region the agent deploys to; a plan for another region is refused
    /// (its zone would be unknown).
    pub region: String,
    /// The zone for instances and instance groups, in `region`.
    pub zone: String,
    /// CIDR ranges allowed to reach port 22. Empty: no SSH rule at all.
    /// Ranges open to the whole internet (`0.0.0.0/0`, `::/0`) are refused.
    pub ssh_source_ranges: Vec<String>,
    /// Boot image, e.g. `debian-cloud/debian-12` (a family or an image).
    pub image: String,
    /// The VPC network instances and firewall rules attach to.
    pub network: String,
    /// Startup script of every instance (`None`: none).
    pub startup_script: Option<String>,
    /// Cloud SQL engine, e.g. `POSTGRES_16`.
    pub database_version: String,
    /// Cloud SQL `deletion_protection` (keep it on in production: with it,
    /// `terraform destroy` cannot drop the database).
    pub database_deletion_protection: bool,
    /// Autoscaled groups may grow to this many times their planned size
    /// (at least one instance more, at most 100).
    pub max_replicas_factor: u32,
    /// The autoscaler's target CPU utilization (0–1).
    pub autoscaling_cpu_target: f64,
}

impl GcpConfig {
    /// A configuration with defaults: Debian 12, the `default` network,
    /// nginx as startup script, PostgreSQL 16 with deletion protection, no
    /// SSH, groups growing to 2× at 60 % CPU.
    pub fn new(
        project_id: impl Into<String>,
        region: impl Into<String>,
        zone: impl Into<String>,
    ) -> Self {
        Self {
            project_id: project_id.into(),
            region: region.into(),
            zone: zone.into(),
            ssh_source_ranges: Vec::new(),
            image: "debian-cloud/debian-12".into(),
            network: "default".into(),
            startup_script: Some(DEFAULT_STARTUP_SCRIPT.into()),
            database_version: "POSTGRES_16".into(),
            database_deletion_protection: true,
            max_replicas_factor: 2,
            autoscaling_cpu_target: 0.6,
        }
    }

    /// Checks every field; the messages name the field and the rule.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: &str, detail: String| Err(Error::invalid(format!("GCP {what}"), detail));
        // Project ids: 6–30 characters, lowercase letters, digits and hyphens,
        // starting with a letter and not ending with a hyphen.
        let p = &self.project_id;
        if !(6..=30).contains(&p.len())
            || !p.starts_with(|c: char| c.is_ascii_lowercase())
            || p.ends_with('-')
            || !p
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return bad(
                "project id",
                format!(
                    "{p:?} is not a project id (6–30 of a-z, 0-9, '-', starting with a letter)"
                ),
            );
        }
        if !is_gce_name(&self.region) {
            return bad("region", format!("{:?} is not a region name", self.region));
        }
        if !is_gce_name(&self.zone) || !self.zone.starts_with(&format!("{}-", self.region)) {
            return bad(
                "zone",
                format!("{:?} is not a zone of region {}", self.zone, self.region),
            );
        }
        for range in &self.ssh_source_ranges {
            let (ip, len) = parse_cidr(range).ok_or_else(|| {
                Error::invalid(
                    "GCP ssh source range",
                    format!("{range:?} is not a CIDR range"),
                )
            })?;
            if len == 0 {
                return bad(
                    "ssh source range",
                    format!("{range} opens SSH to the whole internet ({ip}/0); name the ranges that may connect"),
                );
            }
        }
        let path_ok = |s: &str| {
            !s.is_empty()
                && s.len() <= 1024
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./:".contains(c))
        };
        if !path_ok(&self.image) {
            return bad("image", format!("{:?} is not an image name", self.image));
        }
        if !path_ok(&self.network) {
            return bad(
                "network",
                format!("{:?} is not a network name", self.network),
            );
        }
        if self.database_version.is_empty()
            || !self
                .database_version
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        {
            return bad(
                "database version",
                format!(
                    "{:?} is not a Cloud SQL version such as POSTGRES_16",
                    self.database_version
                ),
            );
        }
        if self.max_replicas_factor < 1 {
            return bad("max replicas factor", "must be at least 1".into());
        }
        if !(self.autoscaling_cpu_target > 0.0 && self.autoscaling_cpu_target <= 1.0) {
            return bad(
                "autoscaling CPU target",
                format!("{} is not in (0, 1]", self.autoscaling_cpu_target),
            );
        }
        Ok(())
    }
}

/// `a.b.c.d/n` or an IPv6 CIDR → (address, prefix length).
fn parse_cidr(s: &str) -> Option<(IpAddr, u8)> {
    let (ip, len) = s.split_once('/')?;
    let ip: IpAddr = ip.parse().ok()?;
    let len: u8 = len.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    (len <= max).then_some((ip, len))
}

/// GCE resource names: `[a-z]([-a-z0-9]*[a-z0-9])?`, at most 63 characters.
fn is_gce_name(s: &str) -> bool {
    s.len() <= 63
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && !s.ends_with('-')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// The GCE name of a plan resource: its name with `_` written as `-`
/// (GCE names have no underscores).
pub fn gce_name(resource: &str) -> Result<String> {
    let name = resource.replace('_', "-");
    if is_gce_name(&name) {
        Ok(name)
    } else {
        Err(Error::invalid(
            "resource name",
            format!("{resource:?} cannot be a GCE name (letters, digits and '-', ending with a letter or digit)"),
        ))
    }
}

/// The Cloud SQL instance name of a database resource in a run: the name
/// and the run id's last eight hex digits, because a deleted Cloud SQL name
/// stays reserved for up to a week.
pub fn sql_instance_name(resource: &str, run_id: RunId) -> Result<String> {
    let base = gce_name(resource)?;
    let base = &base[..base.len().min(63 - 9)];
    Ok(format!(
        "{}-{}",
        base.trim_end_matches('-'),
        short_run(run_id)
    ))
}

/// A label value: lowercase letters, digits, `_` and `-`, at most 63.
fn label_value(s: &str) -> String {
    tf_part(s).chars().take(63).collect()
}

/// A Terraform name part: `[a-z0-9_-]`, other characters as `_`.
fn tf_part(s: &str) -> String {
    s.chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| match c {
            'a'..='z' | '0'..='9' | '_' | '-' => c,
            _ => '_',
        })
        .collect()
}

fn short_run(run_id: RunId) -> String {
    let id = run_id.0.simple().to_string();
    id[id.len() - 8..].to_string()
}

/// How a compute-like resource is deployed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    /// One VM named like the resource.
    Single,
    /// `count` VMs named `<name>-0` … `<name>-<n-1>`.
    Several(u32),
    /// A managed instance group (instances `<name>-xxxx`), autoscaled or not.
    Group { autoscaled: bool },
}

/// The monitored resource of a metric and the filter clause selecting one
/// plan resource's time series.
struct Selector {
    monitored: &'static str,
    clause: Vec<Part>,
}

/// The GCP cloud as a [`TerraformGenerator`]: Compute Engine instances (or
/// managed instance groups with an autoscaler and a target-pool load
/// balancer), firewall rules, Cloud SQL, and Cloud Monitoring alert policies
/// with a webhook notification channel.
///
/// Variables of the generated configuration: `project_id`, `region`, `zone`
/// (defaults from the config and the plan), `machine_type_<resource>` per
/// compute, group and database resource, `ops_webhook_url` (the request's
/// alert webhook) and the sensitive `ops_webhook_token` without a default —
/// give it to Terraform as `TF_VAR_ops_webhook_token`. Outputs: `public_ips`
/// and `urls`, maps from instance (or group) name to address and
/// `http://<ip>/`, the shape of the local cloud's outputs, plus
/// `sql_connection_names`. Every configuration passes
/// [`SchemaChecker::google`](crate::SchemaChecker::google) before it is
/// returned.
///
/// ```
/// use infraai_core::{GenerateRequest, MetricProfileRegistry, RunId, TerraformGenerator};
/// use infraai_gcp::{GcpCloud, GcpConfig, SchemaChecker};
///
/// let cloud = GcpCloud::new(GcpConfig {
///     ssh_source_ranges: vec!["203.0.113.0/24".into()],
///     ..GcpConfig::new("demo-project", "us-central1", "us-central1-a")
/// })?;
/// # let mut plan: infraai_core::InfraPlan = serde_json::from_value(serde_json::json!({
/// #   "cloud": "gcp", "stack_type": "backend_api", "region": "us-central1",
/// #   "machine_type": "e2-medium", "autoscaling": false, "estimated_cost_usd": 24.46,
/// #   "resources": [{"name": "api", "kind": "compute", "machine_type": "e2-medium"}],
/// #   "confidence": 0.9, "summary": "one API VM"})).unwrap();
/// // As the deploy loop does: resource types, then monitoring from the registry.
/// for r in &mut plan.resources {
///     r.resource_type = cloud.resource_type(r.kind);
/// }
/// let mut registry = MetricProfileRegistry::empty();
/// infraai_gcp::register_profiles(&mut registry);
/// plan.monitoring = registry.bind(&plan);
/// let files = cloud.generate(&GenerateRequest {
///     run_id: RunId::new(),
///     plan: &plan,
///     alert_webhook: Some("https://agent.example.com/ops/webhook".into()),
/// })?;
/// let main = &files.files["main.tf"];
/// assert!(main.contains(r#"resource "google_monitoring_alert_policy" "api_cpu_high""#));
/// assert!(SchemaChecker::google().check_files(&files).is_empty());
/// # Ok::<(), infraai_core::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct GcpCloud {
    config: GcpConfig,
}

impl GcpCloud {
    /// A generator for `config` (validated here).
    pub fn new(config: GcpConfig) -> Result<Self> {
        config.validate()?;
        Ok(Self { config })
    }

    /// Its configuration.
    pub fn config(&self) -> &GcpConfig {
        &self.config
    }

    fn shape(plan: &InfraPlan, r: &PlannedResource) -> Option<Shape> {
        match r.kind {
            ResourceKind::InstanceGroup => Some(Shape::Group {
                autoscaled: plan.autoscaling,
            }),
            ResourceKind::Compute if plan.autoscaling => Some(Shape::Group { autoscaled: true }),
            ResourceKind::Compute if r.count > 1 => Some(Shape::Several(r.count)),
            ResourceKind::Compute => Some(Shape::Single),
            _ => None,
        }
    }
}

impl TerraformGenerator for GcpCloud {
    fn cloud(&self) -> &str {
        "gcp"
    }

    /// `compute` → `gce_instance`, `instance_group` → `instance_group`,
    /// `database` → `cloudsql_database`, `firewall` → `gce_firewall_rule`;
    /// load balancers and networks are not generated (`None`).
    fn resource_type(&self, kind: ResourceKind) -> Option<String> {
        match kind {
            ResourceKind::Compute => Some(GCE_INSTANCE.into()),
            ResourceKind::InstanceGroup => Some(INSTANCE_GROUP.into()),
            ResourceKind::Database => Some(CLOUDSQL_DATABASE.into()),
            ResourceKind::Firewall => Some(GCE_FIREWALL_RULE.into()),
            ResourceKind::Cache | ResourceKind::LoadBalancer | ResourceKind::Network => None,
        }
    }

    // `machine_type` keeps the planner's names: they are GCP's own.

    fn failure_patterns(&self) -> Vec<infraai_core::FailurePattern> {
        crate::failure_patterns()
    }

    fn generate(&self, request: &GenerateRequest<'_>) -> Result<TerraformFiles> {
        let main = Writer::new(&self.config, request)?.write()?;
        let files = TerraformFiles::single(main);
        // The provider cannot be installed offline, so `terraform validate`
        // may never see these files before apply: check them against the
        // provider's schema here. An issue is a generator defect.
        crate::SchemaChecker::google().validate(&files)?;
        Ok(files)
    }
}

/// One generation.
struct Writer<'a> {
    config: &'a GcpConfig,
    plan: &'a InfraPlan,
    run_id: RunId,
    webhook: Option<&'a str>,
    body: Body,
    /// (type, name) of every resource written, to refuse duplicates.
    written: BTreeSet<(String, String)>,
    public_ips: Vec<(String, Expr)>,
    sql_names: Vec<(String, Expr)>,
}

/// A block without labels (`Block::new` needs their type).
const NO_LABELS: [&str; 0] = [];

fn var(name: &str) -> Result<Expr> {
    Ok(Expr::reference(&format!("var.{name}"))?)
}

fn reference(path: &str) -> Result<Expr> {
    Ok(Expr::reference(path)?)
}

fn lit(s: impl Into<String>) -> Part {
    Part::lit(s)
}

fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

impl<'a> Writer<'a> {
    fn new(config: &'a GcpConfig, request: &'a GenerateRequest<'a>) -> Result<Self> {
        let plan = request.plan;
        plan.validate()?;
        if plan.region != config.region {
            return Err(Error::invalid(
                "plan",
                format!(
                    "is for region {} but the GCP cloud deploys to {} (zone {}); plan with region {}",
                    plan.region, config.region, config.zone, config.region
                ),
            ));
        }
        let webhook = request.alert_webhook.as_deref();
        if let Some(url) = webhook {
            let scheme_ok = url.starts_with("https://") || url.starts_with("http://");
            if !scheme_ok || url.contains(['?', '#']) || url.chars().any(char::is_whitespace) {
                return Err(Error::invalid(
                    "alert webhook URL",
                    format!("{url:?} must be an http(s) URL without query or fragment (the channel adds ?token=…)"),
                ));
            }
        }
        Ok(Self {
            config,
            plan,
            run_id: request.run_id,
            webhook,
            body: Body::new(),
            written: BTreeSet::new(),
            public_ips: Vec::new(),
            sql_names: Vec::new(),
        })
    }

    /// Adds a `resource` block, refusing a second one of the same type and name.
    fn push_resource(&mut self, block: Block) -> Result<()> {
        let labels: Vec<String> = block.labels().map(str::to_string).collect();
        let [kind, name] = &labels[..] else {
            return Err(Error::invalid(
                "plan",
                "a resource block needs a type and a name",
            ));
        };
        if !self.written.insert((kind.clone(), name.clone())) {
            return Err(Error::invalid(
                "plan",
                format!("two resources would both be {kind}.{name}"),
            ));
        }
        self.body.push(block);
        Ok(())
    }

    fn labels(&self, resource: &str) -> Expr {
        Expr::Object(vec![
            ("infraai-managed".into(), "true".into()),
            ("infraai-resource".into(), label_value(resource).into()),
            (
                "infraai-run".into(),
                label_value(&self.run_id.to_string()).into(),
            ),
        ])
    }

    fn write(mut self) -> Result<String> {
        let plan = self.plan;
        for r in &plan.resources {
            if matches!(
                r.kind,
                ResourceKind::Cache | ResourceKind::LoadBalancer | ResourceKind::Network
            ) {
                return Err(Error::invalid(
                    "plan",
                    format!(
                        "resource {} is a {:?}; the GCP generator does not create caches, load balancers or networks yet (groups get their own target-pool balancer, instances use network {:?})",
                        r.name, r.kind, self.config.network
                    ),
                ));
            }
        }
        if let Some(p) = plan
            .monitoring
            .iter()
            .find(|m| plan.resource(m.resource_ref.as_str()).is_none())
        {
            return Err(Error::invalid(
                "monitoring policy",
                format!(
                    "{} refers to unknown resource {}",
                    p.metric_name, p.resource_ref
                ),
            ));
        }
        self.header()?;
        self.variables()?;
        for r in &plan.resources {
            match (r.kind, GcpCloud::shape(plan, r)) {
                (_, Some(Shape::Group { autoscaled })) => self.group(r, autoscaled)?,
                (_, Some(shape)) => self.instances(r, shape)?,
                (ResourceKind::Database, None) => self.database(r)?,
                (ResourceKind::Firewall, None) => self.firewall(r)?,
                _ => {}
            }
        }
        self.monitoring()?;
        self.outputs()?;
        Ok(self.body.to_string())
    }

    fn header(&mut self) -> Result<()> {
        let google = Expr::Object(vec![
            ("source".into(), "hashicorp/google".into()),
            ("version".into(), GOOGLE_PROVIDER_CONSTRAINT.into()),
        ]);
        let mut providers = Block::new("required_providers", NO_LABELS)?;
        providers.body_mut().set("google", google)?;
        self.body.push(
            Block::new("terraform", NO_LABELS)?
                .attr("required_version", ">= 1.5.0")?
                .block(providers),
        );
        self.body.push(
            Block::provider("google")?
                .attr("project", var("project_id")?)?
                .attr("region", var("region")?)?
                .attr("zone", var("zone")?)?,
        );
        Ok(())
    }

    fn variable(&mut self, name: &str, description: &str, default: Option<Expr>) -> Result<()> {
        let mut block = Block::variable(name)?
            .attr("description", description)?
            .attr("type", reference("string")?)?;
        if let Some(d) = default {
            block = block.attr("default", d)?;
        }
        self.body.push(block);
        Ok(())
    }

    fn variables(&mut self) -> Result<()> {
        let plan = self.plan;
        self.variable(
            "project_id",
            "GCP project to deploy into.",
            Some(self.config.project_id.as_str().into()),
        )?;
        self.variable("region", "GCP region.", Some(plan.region.as_str().into()))?;
        self.variable(
            "zone",
            "GCP zone for instances and instance groups.",
            Some(self.config.zone.as_str().into()),
        )?;
        for r in &plan.resources {
            let planned = r.machine_type.as_ref().map(|m| m.as_str());
            let (what, default) = match r.kind {
                ResourceKind::Compute | ResourceKind::InstanceGroup => (
                    "Machine type",
                    planned.unwrap_or(plan.machine_type.as_str()),
                ),
                ResourceKind::Database => ("Cloud SQL tier", planned.unwrap_or("db-f1-micro")),
                _ => continue,
            };
            let description = format!("{what} of {}.", r.name);
            let name = machine_type_var(r.name.as_str());
            self.variable(&name, &description, Some(default.into()))?;
        }
        if self.webhook.is_some() && !self.plan.monitoring.is_empty() {
            self.variable(
                WEBHOOK_URL_VAR,
                "The agent's alert webhook (POST /ops/webhook).",
                self.webhook.map(Expr::from),
            )?;
            self.body.push(
                Block::variable(WEBHOOK_TOKEN_VAR)?
                    .attr(
                        "description",
                        "Token the agent's webhook accepts (pass it as TF_VAR_ops_webhook_token).",
                    )?
                    .attr("type", reference("string")?)?
                    .attr("sensitive", true)?,
            );
        }
        Ok(())
    }

    fn machine_type(&self, r: &PlannedResource) -> Result<Expr> {
        var(&machine_type_var(r.name.as_str()))
    }

    fn network_interface(&self) -> Result<Block> {
        Ok(Block::new("network_interface", NO_LABELS)?
            .attr("network", self.config.network.as_str())?
            // An empty access_config gives the instance an ephemeral external IP.
            .block(Block::new("access_config", NO_LABELS)?))
    }

    fn instances(&mut self, r: &PlannedResource, shape: Shape) -> Result<()> {
        let name = gce_name(r.name.as_str())?;
        let label = r.name.as_str();
        let mut block = Block::resource("google_compute_instance", label)?;
        let count = match shape {
            Shape::Several(n) => {
                if name.len() + 1 + n.to_string().len() > 63 {
                    return Err(Error::invalid(
                        "resource name",
                        format!("{name} is too long for {n} numbered instances"),
                    ));
                }
                block = block.attr("count", n)?.attr(
                    "name",
                    Expr::template([
                        lit(format!("{name}-")),
                        Part::Interp(reference("count.index")?),
                    ]),
                )?;
                Some(n)
            }
            _ => {
                block = block.attr("name", name.as_str())?;
                None
            }
        };
        block = block
            .attr("machine_type", self.machine_type(r)?)?
            .attr("zone", var("zone")?)?
            .attr("tags", vec![name.as_str()])?
            .attr("labels", self.labels(label))?
            // Lets a machine-type change (scale-up) stop and start the VM.
            .attr("allow_stopping_for_update", true)?;
        if let Some(script) = &self.config.startup_script {
            block = block.attr("metadata_startup_script", script.as_str())?;
        }
        block = block
            .block(
                Block::new("boot_disk", NO_LABELS)?.block(
                    Block::new("initialize_params", NO_LABELS)?
                        .attr("image", self.config.image.as_str())?,
                ),
            )
            .block(self.network_interface()?);
        self.push_resource(block)?;
        let ip = |index: Option<u32>| -> Result<Expr> {
            let at = index.map(|i| format!("[{i}]")).unwrap_or_default();
            reference(&format!(
                "google_compute_instance.{label}{at}.network_interface[0].access_config[0].nat_ip"
            ))
        };
        match count {
            Some(n) => {
                for i in 0..n {
                    self.public_ips.push((format!("{name}-{i}"), ip(Some(i))?));
                }
            }
            None => self.public_ips.push((name, ip(None)?)),
        }
        Ok(())
    }

    fn group(&mut self, r: &PlannedResource, autoscaled: bool) -> Result<()> {
        let name = gce_name(r.name.as_str())?;
        // Instance names are `<base>-xxxx`; keep room for the suffix.
        if name.len() > 58 {
            return Err(Error::invalid(
                "resource name",
                format!("{name} is too long for an instance group's instance names"),
            ));
        }
        let label = r.name.as_str();
        let mut metadata = Vec::new();
        if let Some(script) = &self.config.startup_script {
            metadata.push(("startup-script".to_string(), Expr::from(script.as_str())));
        }
        let mut template = Block::resource("google_compute_instance_template", label)?
            .attr("name_prefix", format!("{name}-"))?
            .attr("machine_type", self.machine_type(r)?)?
            .attr("tags", vec![name.as_str()])?
            .attr("labels", self.labels(label))?;
        if !metadata.is_empty() {
            template = template.attr("metadata", Expr::Object(metadata))?;
        }
        template = template
            .block(
                Block::new("disk", NO_LABELS)?
                    .attr("source_image", self.config.image.as_str())?
                    .attr("boot", true)?
                    .attr("auto_delete", true)?,
            )
            .block(self.network_interface()?)
            // Templates cannot change in place: a new one is made before the
            // old one goes, so the group always has a template.
            .block(Block::new("lifecycle", NO_LABELS)?.attr("create_before_destroy", true)?);
        self.push_resource(template)?;

        self.push_resource(
            Block::resource("google_compute_target_pool", label)?
                .attr("name", name.as_str())?
                .attr("region", var("region")?)?,
        )?;

        let mut manager = Block::resource("google_compute_instance_group_manager", label)?
            .attr("name", name.as_str())?
            .attr("zone", var("zone")?)?
            .attr("base_instance_name", name.as_str())?
            .attr(
                "target_pools",
                Expr::List(vec![reference(&format!(
                    "google_compute_target_pool.{label}.self_link"
                ))?]),
            )?;
        if !autoscaled {
            manager = manager.attr("target_size", r.count)?;
        }
        manager = manager
            .block(Block::new("version", NO_LABELS)?.attr(
                "instance_template",
                reference(&format!(
                    "google_compute_instance_template.{label}.self_link_unique"
                ))?,
            )?)
            .block(
                Block::new("named_port", NO_LABELS)?
                    .attr("name", "http")?
                    .attr("port", 80)?,
            );
        self.push_resource(manager)?;

        if autoscaled {
            let min = r.count.max(1);
            let max = min
                .saturating_mul(self.config.max_replicas_factor)
                .max(min + 1)
                .min(100.max(min));
            self.push_resource(
                Block::resource("google_compute_autoscaler", label)?
                    .attr("name", name.as_str())?
                    .attr("zone", var("zone")?)?
                    .attr(
                        "target",
                        reference(&format!("google_compute_instance_group_manager.{label}.id"))?,
                    )?
                    .block(
                        Block::new("autoscaling_policy", NO_LABELS)?
                            .attr("min_replicas", min)?
                            .attr("max_replicas", max)?
                            .attr("cooldown_period", 60)?
                            .block(Block::new("cpu_utilization", NO_LABELS)?.attr(
                                "target",
                                Expr::number(self.config.autoscaling_cpu_target)?,
                            )?),
                    ),
            )?;
        }

        self.push_resource(
            Block::resource("google_compute_forwarding_rule", label)?
                .attr("name", name.as_str())?
                .attr("region", var("region")?)?
                .attr("load_balancing_scheme", "EXTERNAL")?
                .attr("ip_protocol", "TCP")?
                .attr("port_range", "80")?
                .attr(
                    "target",
                    reference(&format!("google_compute_target_pool.{label}.id"))?,
                )?,
        )?;
        self.public_ips.push((
            name,
            reference(&format!(
                "google_compute_forwarding_rule.{label}.ip_address"
            ))?,
        ));
        Ok(())
    }

    fn database(&mut self, r: &PlannedResource) -> Result<()> {
        let label = r.name.as_str();
        if r.count != 1 {
            return Err(Error::invalid(
                "plan",
                format!(
                    "database {label} has count {}; the GCP generator creates one Cloud SQL instance per database resource (no read replicas yet)",
                    r.count
                ),
            ));
        }
        let name = sql_instance_name(label, self.run_id)?;
        let block = Block::resource("google_sql_database_instance", label)?
            .attr("name", name.as_str())?
            .attr("region", var("region")?)?
            .attr("database_version", self.config.database_version.as_str())?
            .attr(
                "deletion_protection",
                self.config.database_deletion_protection,
            )?
            .block(
                Block::new("settings", NO_LABELS)?
                    .attr("tier", self.machine_type(r)?)?
                    // Shared-core tiers (db-f1-micro, db-g1-small) exist only in Enterprise.
                    .attr("edition", "ENTERPRISE")?
                    .attr("user_labels", self.labels(label))?
                    .block(Block::new("backup_configuration", NO_LABELS)?.attr("enabled", true)?),
            );
        self.push_resource(block)?;
        self.sql_names.push((
            label.to_string(),
            reference(&format!(
                "google_sql_database_instance.{label}.connection_name"
            ))?,
        ));
        Ok(())
    }

    fn firewall(&mut self, r: &PlannedResource) -> Result<()> {
        let plan = self.plan;
        let compute = |n: &str| {
            plan.resource(n)
                .is_some_and(|t| GcpCloud::shape(plan, t).is_some())
        };
        let mut targets: Vec<String> = r
            .depends_on
            .iter()
            .filter(|d| compute(d.as_str()))
            .map(|d| gce_name(d.as_str()))
            .collect::<Result<_>>()?;
        if targets.is_empty() {
            targets = plan
                .resources
                .iter()
                .filter(|t| compute(t.name.as_str()))
                .map(|t| gce_name(t.name.as_str()))
                .collect::<Result<_>>()?;
        }
        if targets.is_empty() {
            return Err(Error::invalid(
                "plan",
                format!("firewall {} has no instance to apply to (a rule without target tags would open every VM in the network)", r.name),
            ));
        }
        let label = r.name.as_str();
        let name = gce_name(label)?;
        let rule = |label: &str,
                    name: &str,
                    ranges: Vec<String>,
                    ports: Vec<&str>,
                    description: &str|
         -> Result<Block> {
            Ok(Block::resource("google_compute_firewall", label)?
                .attr("name", name)?
                .attr("description", description)?
                .attr("network", self.config.network.as_str())?
                .attr("direction", "INGRESS")?
                .attr("source_ranges", ranges)?
                .attr("target_tags", targets.clone())?
                .block(
                    Block::new("allow", NO_LABELS)?
                        .attr("protocol", "tcp")?
                        .attr("ports", ports)?,
                ))
        };
        let http = rule(
            label,
            &name,
            vec!["0.0.0.0/0".into()],
            vec!["80", "443"],
            "infraai: HTTP and HTTPS to the service",
        )?;
        self.push_resource(http)?;
        if !self.config.ssh_source_ranges.is_empty() {
            let ssh_name = format!("{name}-ssh");
            if !is_gce_name(&ssh_name) {
                return Err(Error::invalid(
                    "resource name",
                    format!("{name} is too long for its SSH rule"),
                ));
            }
            let ssh_label = format!("{label}_ssh");
            let ssh = rule(
                &ssh_label,
                &ssh_name,
                self.config.ssh_source_ranges.clone(),
                vec!["22"],
                "infraai: SSH from the configured ranges only",
            )?;
            self.push_resource(ssh)?;
        }
        Ok(())
    }

    /// The filter clause selecting one plan resource's time series of a
    /// metric, through a label the metric has.
    fn selector(&self, policy: &MonitoringPolicy) -> Result<Selector> {
        let plan = self.plan;
        let resource = plan
            .resource(policy.resource_ref.as_str())
            .ok_or_else(|| Error::not_found(format!("plan resource {}", policy.resource_ref)))?;
        let name = gce_name(resource.name.as_str())?;
        let metric = policy.metric_path.as_str();
        if metric.starts_with("compute.googleapis.com/instance/") {
            let value = match GcpCloud::shape(plan, resource) {
                Some(Shape::Single) => quoted(&name),
                Some(Shape::Several(_)) => {
                    format!(
                        "monitoring.regex.full_match({})",
                        quoted(&format!("{name}-[0-9]+"))
                    )
                }
                Some(Shape::Group { .. }) => format!(
                    "monitoring.regex.full_match({})",
                    quoted(&format!("{name}-[a-z0-9]{{4}}"))
                ),
                None => {
                    return Err(Error::invalid(
                        "monitoring policy",
                        format!(
                            "{} watches instance metric {metric} on {}, which is not an instance",
                            policy.metric_name, resource.name
                        ),
                    ))
                }
            };
            return Ok(Selector {
                monitored: GCE_INSTANCE,
                clause: vec![lit(format!("metric.label.instance_name = {value}"))],
            });
        }
        if metric.starts_with("cloudsql.googleapis.com/database/") {
            if resource.kind != ResourceKind::Database {
                return Err(Error::invalid(
                    "monitoring policy",
                    format!(
                        "{} watches Cloud SQL metric {metric} on {}, which is not a database",
                        policy.metric_name, resource.name
                    ),
                ));
            }
            let instance = sql_instance_name(resource.name.as_str(), self.run_id)?;
            return Ok(Selector {
                monitored: CLOUDSQL_DATABASE,
                clause: vec![
                    lit("resource.label.database_id = \""),
                    Part::Interp(var("project_id")?),
                    lit(format!(":{instance}\"")),
                ],
            });
        }
        Err(Error::invalid(
            "monitoring policy",
            format!(
                "{} uses metric {metric}; the GCP generator knows the monitored resources of compute.googleapis.com/instance/* and cloudsql.googleapis.com/database/* only",
                policy.metric_name
            ),
        ))
    }

    fn monitoring(&mut self) -> Result<()> {
        let policies = &self.plan.monitoring;
        if policies.is_empty() {
            return Ok(());
        }
        let run = short_run(self.run_id);
        let channel = if self.webhook.is_some() {
            // webhook_tokenauth: the token rides in the URL; the agent's
            // /ops/webhook accepts it as the `token` query parameter.
            let url = Expr::template([
                Part::Interp(var(WEBHOOK_URL_VAR)?),
                lit("?token="),
                Part::Interp(Expr::call("urlencode", [var(WEBHOOK_TOKEN_VAR)?])?),
            ]);
            self.push_resource(
                Block::resource("google_monitoring_notification_channel", "ops_webhook")?
                    .attr("display_name", format!("infraai ops webhook (run {run})"))?
                    .attr("type", "webhook_tokenauth")?
                    .attr("labels", Expr::Object(vec![("url".into(), url)]))?
                    .attr("user_labels", self.labels("ops-webhook"))?,
            )?;
            Some(reference(
                "google_monitoring_notification_channel.ops_webhook.name",
            )?)
        } else {
            tracing::warn!(run_id = %self.run_id, "no alert webhook configured: alert policies will notify nobody");
            None
        };
        for policy in policies {
            self.alert_policy(policy, channel.clone(), &run)?;
        }
        Ok(())
    }

    fn alert_policy(
        &mut self,
        p: &MonitoringPolicy,
        channel: Option<Expr>,
        run: &str,
    ) -> Result<()> {
        let what = format!("monitoring policy {} on {}", p.metric_name, p.resource_ref);
        if !p.duration_secs.is_multiple_of(60) {
            return Err(Error::invalid(
                what,
                format!(
                    "duration {}s is not a whole number of minutes (Cloud Monitoring accepts 0, 60, 120, … seconds)",
                    p.duration_secs
                ),
            ));
        }
        let aligner = match p.aligner {
            Aligner::Mean => "ALIGN_MEAN",
            Aligner::Rate => "ALIGN_RATE",
            Aligner::Max => "ALIGN_MAX",
        };
        if p.aligner == Aligner::Rate && metric_kind(&p.metric_path) == Some(MetricKind::Gauge) {
            return Err(Error::invalid(
                what,
                format!(
                    "{} is a gauge; ALIGN_RATE applies to counters only (use mean)",
                    p.metric_path
                ),
            ));
        }
        let comparison = match p.comparison {
            Comparison::GreaterThan => "COMPARISON_GT",
            Comparison::LessThan => "COMPARISON_LT",
        };
        let selector = self.selector(p)?;
        let mut filter = vec![lit(format!(
            "metric.type = {} AND resource.type = {} AND ",
            quoted(&p.metric_path),
            quoted(selector.monitored)
        ))];
        filter.extend(selector.clause);
        let label = format!(
            "{}_{}",
            tf_part(p.resource_ref.as_str()),
            tf_part(&p.metric_name)
        );
        let symbol = match p.comparison {
            Comparison::GreaterThan => ">",
            Comparison::LessThan => "<",
        };
        let threshold = Expr::number(p.threshold)?;
        let user_label = |k: &str, v: &str| (k.to_string(), Expr::from(label_value(v)));
        let mut labels: Vec<(String, Expr)> = Vec::new();
        let several = self
            .plan
            .resource(p.resource_ref.as_str())
            .and_then(|r| GcpCloud::shape(self.plan, r))
            .is_some_and(|s| matches!(s, Shape::Several(_)));
        if !several {
            // The webhook source reads these two back, so an alert names the
            // plan resource (not a group member or a Cloud SQL id). Numbered
            // instances keep their own names: an action targets one of them.
            labels.push(user_label("infraai-resource", p.resource_ref.as_str()));
            labels.push(user_label("infraai-resource-type", &p.resource_type));
        }
        labels.push(user_label("infraai-profile", &p.metric_name));
        labels.push(user_label("infraai-run", &self.run_id.to_string()));
        let condition = Block::new("conditions", NO_LABELS)?
            .attr(
                "display_name",
                format!(
                    "{}: {} {symbol} {} for {}s",
                    p.resource_ref, p.metric_path, p.threshold, p.duration_secs
                ),
            )?
            .block(
                Block::new("condition_threshold", NO_LABELS)?
                    .attr("filter", Expr::template(filter))?
                    .attr("comparison", comparison)?
                    .attr("threshold_value", threshold)?
                    .attr("duration", format!("{}s", p.duration_secs))?
                    .block(
                        Block::new("aggregations", NO_LABELS)?
                            .attr("alignment_period", "60s")?
                            .attr("per_series_aligner", aligner)?,
                    )
                    .block(Block::new("trigger", NO_LABELS)?.attr("count", 1)?),
            );
        let mut block = Block::resource("google_monitoring_alert_policy", &label)?
            .attr(
                "display_name",
                format!("infraai {} {} (run {run})", p.resource_ref, p.metric_name),
            )?
            .attr("combiner", "OR")?
            .attr("enabled", true)?;
        match p.severity {
            Severity::Critical => block = block.attr("severity", "CRITICAL")?,
            Severity::Warning => block = block.attr("severity", "WARNING")?,
            // No INFO in Cloud Monitoring: a policy without severity reads as info.
            Severity::Info => {}
        }
        block = block
            .attr("notification_channels", Expr::List(channel.into_iter().collect()))?
            .attr("user_labels", Expr::Object(labels))?
            .block(condition)
            .block(
                Block::new("documentation", NO_LABELS)?
                    .attr(
                        "content",
                        format!(
                            "infraai watches {} ({}) for {}: {} {symbol} {} for {}s. The agent decides and asks for approval on its ops webhook.",
                            p.resource_ref, p.resource_type, p.metric_name, p.metric_path, p.threshold, p.duration_secs
                        ),
                    )?
                    .attr("mime_type", "text/markdown")?,
            );
        self.push_resource(block)
    }

    fn outputs(&mut self) -> Result<()> {
        let urls: Vec<(String, Expr)> = self
            .public_ips
            .iter()
            .map(|(k, ip)| {
                let url = Expr::template([lit("http://"), Part::Interp(ip.clone()), lit("/")]);
                (k.clone(), url)
            })
            .collect();
        let ips = std::mem::take(&mut self.public_ips);
        let mut outputs = vec![
            (
                "public_ips",
                "External IP per instance (or group balancer).",
                ips,
            ),
            ("urls", "HTTP URL per instance (or group balancer).", urls),
        ];
        if !self.sql_names.is_empty() {
            let sql = std::mem::take(&mut self.sql_names);
            outputs.push((
                "sql_connection_names",
                "Cloud SQL connection name per database.",
                sql,
            ));
        }
        for (name, description, value) in outputs {
            self.body.push(
                Block::output(name)?
                    .attr("description", description)?
                    .attr("value", Expr::Object(value))?,
            );
        }
        Ok(())
    }
}

/// Kinds of the metrics the built-in profiles use (Cloud Monitoring metric
/// list); `None` for others.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MetricKind {
    Gauge,
    Delta,
}

fn metric_kind(path: &str) -> Option<MetricKind> {
    Some(match path {
        "compute.googleapis.com/instance/cpu/utilization"
        | "cloudsql.googleapis.com/database/cpu/utilization"
        | "cloudsql.googleapis.com/database/network/connections"
        | "cloudsql.googleapis.com/database/memory/utilization"
        | "cloudsql.googleapis.com/database/disk/utilization" => MetricKind::Gauge,
        "compute.googleapis.com/instance/disk/read_bytes_count"
        | "compute.googleapis.com/instance/disk/write_bytes_count"
        | "compute.googleapis.com/instance/network/received_bytes_count"
        | "compute.googleapis.com/instance/network/sent_bytes_count" => MetricKind::Delta,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_validation_names_the_field() {
        let ok = GcpConfig::new("demo-project", "us-central1", "us-central1-a");
        assert!(ok.validate().is_ok());
        let cases: Vec<(GcpConfig, &str)> = vec![
            (
                GcpConfig::new("Demo", "us-central1", "us-central1-a"),
                "project id",
            ),
            (
                GcpConfig::new("demo-project", "us-central1", "europe-west1-b"),
                "zone",
            ),
            (
                GcpConfig {
                    ssh_source_ranges: vec!["0.0.0.0/0".into()],
                    ..ok.clone()
                },
                "whole internet",
            ),
            (
                GcpConfig {
                    ssh_source_ranges: vec!["::/0".into()],
                    ..ok.clone()
                },
                "whole internet",
            ),
            (
                GcpConfig {
                    ssh_source_ranges: vec!["10.0.0.0/33".into()],
                    ..ok.clone()
                },
                "not a CIDR",
            ),
            (
                GcpConfig {
                    image: "debian\" {".into(),
                    ..ok.clone()
                },
                "image",
            ),
            (
                GcpConfig {
                    autoscaling_cpu_target: 1.5,
                    ..ok.clone()
                },
                "CPU target",
            ),
        ];
        for (config, needle) in cases {
            let err = config.validate().unwrap_err().to_string();
            assert!(err.contains(needle), "{err} should mention {needle}");
            assert!(GcpCloud::new(config).is_err());
        }
        let with_ssh = GcpConfig {
            ssh_source_ranges: vec!["203.0.113.0/24".into(), "2001:db8::/32".into()],
            ..ok
        };
        assert!(with_ssh.validate().is_ok());
    }

    #[test]
    fn names() {
        assert_eq!(gce_name("web_server").unwrap(), "web-server");
        assert!(gce_name("web_").is_err());
        let run: RunId = "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b".parse().unwrap();
        assert_eq!(sql_instance_name("db", run).unwrap(), "db-2e3f4a5b");
        let long = "d".repeat(63);
        let n = sql_instance_name(&long, run).unwrap();
        assert!(n.len() <= 63 && is_gce_name(&n), "{n}");
        assert_eq!(label_value("High CPU!"), "high_cpu_");
    }
}
