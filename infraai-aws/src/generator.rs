//! The AWS [`TerraformGenerator`]: EC2 instances, Auto Scaling groups with
//! launch templates, RDS, security groups, CloudWatch alarms bound from the
//! metric-profile registry and an SNS topic with an HTTPS subscription to the
//! ops webhook. All HCL goes through [`infraai_terraform::hcl`].

use crate::config::{is_aws_region, AwsConfig};
use crate::ladder::map_planned;
use crate::profiles::{AWS_AUTOSCALING_GROUP, AWS_EC2_INSTANCE, AWS_RDS_INSTANCE};
use infraai_core::{
    Aligner, Comparison, Error, GenerateRequest, InfraPlan, MachineType, MonitoringPolicy,
    PlannedResource, ResourceKind, Result, TerraformFiles, TerraformGenerator,
};
use infraai_terraform::hcl::{Block, Body, Expr, Part};
use infraai_terraform::machine_type_var;
use serde_json::json;

/// The provider's `endpoints` keys of every service a generated
/// configuration (and the provider's own reads) use, for
/// [`AwsConfig::endpoint_url`].
const EMULATED_SERVICES: &[&str] = &[
    "autoscaling",
    "cloudwatch",
    "ec2",
    "elbv2",
    "iam",
    "rds",
    "sns",
    "sts",
];

/// The resource type of a generated security group (no metric profiles).
pub const AWS_SECURITY_GROUP: &str = "aws_security_group";

/// Output: plan resource name → EC2 instance id.
pub const OUTPUT_INSTANCE_IDS: &str = "instance_ids";
/// Output: plan resource name → Auto Scaling group name.
pub const OUTPUT_AUTOSCALING_GROUPS: &str = "autoscaling_groups";
/// Output: plan resource name → RDS instance identifier.
pub const OUTPUT_DATABASE_IDENTIFIERS: &str = "database_identifiers";
/// Output: firewall resource name → security group id.
pub const OUTPUT_SECURITY_GROUP_IDS: &str = "security_group_ids";

/// The SNS topic resource name alarms notify.
const TOPIC: &str = "infraai_alerts";

/// AWS as a [`TerraformGenerator`].
#[derive(Clone, Debug, Default)]
pub struct AwsCloud {
    config: AwsConfig,
}

fn no_labels() -> Vec<&'static str> {
    Vec::new()
}

/// Instance metadata through IMDSv2 (session tokens) only.
fn imds_v2() -> Result<Block> {
    Ok(Block::new("metadata_options", no_labels())?
        .attr("http_endpoint", "enabled")?
        .attr("http_tokens", "required")?)
}

fn var(name: &str) -> Result<Expr> {
    Ok(Expr::reference(&format!("var.{name}"))?)
}

fn reference(path: String) -> Result<Expr> {
    Ok(Expr::reference(&path)?)
}

/// Resource tags; the run id and `managed-by` come from the provider's
/// `default_tags`.
fn tags(name: &str, _run: &str) -> Expr {
    Expr::Object(vec![("Name".into(), name.into())])
}

/// `aws_security_group.<name>`, its name generated from `name`.
fn group_block(name: &str, description: &str, run: &str) -> Result<Block> {
    Ok(Block::resource("aws_security_group", name)?
        .attr("name_prefix", format!("{name}-"))?
        .attr("description", description)?
        .attr("tags", tags(name, run))?)
}

/// A name that AWS accepts where only letters, digits and hyphens are
/// allowed (RDS identifiers).
fn hyphenated(name: &str) -> String {
    name.replace('_', "-")
}

impl AwsCloud {
    /// The provider pointed at [`AwsConfig::endpoint_url`] when one is
    /// set: every service this generator uses there, and none of the
    /// lookups only real AWS answers.
    fn with_endpoint(&self, provider: Block) -> Result<Block> {
        let Some(url) = &self.config.endpoint_url else {
            return Ok(provider);
        };
        let mut endpoints = Block::new("endpoints", no_labels())?;
        for service in EMULATED_SERVICES {
            endpoints = endpoints.attr(service, url.as_str())?;
        }
        Ok(provider
            .attr("skip_credentials_validation", true)?
            .attr("skip_requesting_account_id", true)?
            .attr("skip_metadata_api_check", true)?
            .block(endpoints))
    }

    /// A generator with `config` (see [`AwsConfig::validate`]).
    pub fn new(config: AwsConfig) -> Result<Self> {
        config.validate()?;
        Ok(Self { config })
    }

    fn region(&self, plan: &InfraPlan) -> String {
        if is_aws_region(&plan.region) {
            plan.region.clone()
        } else {
            self.config.default_region.clone()
        }
    }

    fn machine_var(body: &mut Body, r: &PlannedResource, fallback: &str) -> Result<String> {
        let name = machine_type_var(r.name.as_str());
        let planned = match &r.machine_type {
            Some(m) => map_planned(m),
            None => MachineType::new(fallback)?,
        };
        body.push(
            Block::variable(&name)?
                .attr("type", Expr::reference("string")?)?
                .attr(
                    "description",
                    format!("Instance type of {}", r.name.as_str()),
                )?
                .attr("default", planned.as_str())?,
        );
        Ok(name)
    }

    fn security_group(&self, body: &mut Body, name: &str, run: &str) -> Result<()> {
        let description = "infraai: HTTP/HTTPS and SSH from configured ranges";
        body.push(group_block(name, description, run)?);
        let sg_id = reference(format!("aws_security_group.{name}.id"))?;
        let mut rules: Vec<(String, u16, &infraai_core::Cidr)> = Vec::new();
        for (i, cidr) in self.config.http_ranges.iter().enumerate() {
            rules.push((format!("{name}-http-{i}"), 80, cidr));
            rules.push((format!("{name}-https-{i}"), 443, cidr));
        }
        for (i, cidr) in self.config.ssh_ranges.iter().enumerate() {
            rules.push((format!("{name}-ssh-{i}"), 22, cidr));
        }
        for (rule, port, cidr) in rules {
            let family = if cidr.addr.is_ipv4() {
                "cidr_ipv4"
            } else {
                "cidr_ipv6"
            };
            body.push(
                Block::resource("aws_vpc_security_group_ingress_rule", &rule)?
                    .attr("security_group_id", sg_id.clone())?
                    .attr("ip_protocol", "tcp")?
                    .attr("from_port", u32::from(port))?
                    .attr("to_port", u32::from(port))?
                    .attr(family, cidr.to_string())?,
            );
        }
        body.push(
            Block::resource(
                "aws_vpc_security_group_egress_rule",
                &format!("{name}-egress"),
            )?
            .attr("security_group_id", sg_id)?
            .attr("ip_protocol", "-1")?
            .attr("cidr_ipv4", "0.0.0.0/0")?,
        );
        Ok(())
    }

    fn instance(&self, body: &mut Body, r: &PlannedResource, sgs: &Expr, run: &str) -> Result<()> {
        let name = r.name.as_str();
        let mt = Self::machine_var(body, r, "t3.small")?;
        let mut root = Block::new("root_block_device", no_labels())?
            .attr("encrypted", true)?
            .attr("volume_type", "gp3")?;
        if let Some(gib) = self.config.root_volume_gib {
            root = root.attr("volume_size", i64::from(gib))?;
        }
        body.push(
            Block::resource("aws_instance", name)?
                .attr("ami", var("ami_id")?)?
                .attr("instance_type", var(&mt)?)?
                .attr("vpc_security_group_ids", sgs.clone())?
                .block(imds_v2()?)
                .block(root)
                .attr("tags", tags(name, run))?,
        );
        Ok(())
    }

    fn autoscaling_group(
        body: &mut Body,
        r: &PlannedResource,
        sgs: &Expr,
        run: &str,
    ) -> Result<()> {
        let name = r.name.as_str();
        let mt = Self::machine_var(body, r, "t3.small")?;
        let size = r.count.clamp(1, 100);
        body.push(
            Block::resource("aws_launch_template", name)?
                .attr("name_prefix", format!("{name}-"))?
                .attr("image_id", var("ami_id")?)?
                .attr("instance_type", var(&mt)?)?
                .attr("vpc_security_group_ids", sgs.clone())?
                .block(imds_v2()?)
                .block(
                    Block::new("tag_specifications", no_labels())?
                        .attr("resource_type", "instance")?
                        .attr("tags", tags(name, run))?,
                ),
        );
        body.push(
            Block::resource("aws_autoscaling_group", name)?
                .attr("name_prefix", format!("{name}-"))?
                .attr("min_size", size)?
                .attr("max_size", (size * 2).min(100))?
                .attr("desired_capacity", size)?
                .attr("availability_zones", var("availability_zones")?)?
                .attr("health_check_type", "EC2")?
                .block(
                    Block::new("launch_template", no_labels())?
                        .attr("id", reference(format!("aws_launch_template.{name}.id"))?)?
                        .attr(
                            "version",
                            reference(format!("aws_launch_template.{name}.latest_version"))?,
                        )?,
                )
                // A new instance type (scale-up) rolls through the group.
                .block(Block::new("instance_refresh", no_labels())?.attr("strategy", "Rolling")?)
                .block(
                    Block::new("tag", no_labels())?
                        .attr("key", "Name")?
                        .attr("value", name)?
                        .attr("propagate_at_launch", true)?,
                ),
        );
        body.push(
            Block::resource("aws_autoscaling_policy", &format!("{name}-cpu"))?
                .attr("name", format!("{name}-cpu-target"))?
                .attr(
                    "autoscaling_group_name",
                    reference(format!("aws_autoscaling_group.{name}.name"))?,
                )?
                .attr("policy_type", "TargetTrackingScaling")?
                .block(
                    Block::new("target_tracking_configuration", no_labels())?
                        .block(
                            Block::new("predefined_metric_specification", no_labels())?
                                .attr("predefined_metric_type", "ASGAverageCPUUtilization")?,
                        )
                        .attr("target_value", 60)?,
                ),
        );
        Ok(())
    }

    fn database(body: &mut Body, r: &PlannedResource, app_sgs: &[String], run: &str) -> Result<()> {
        let name = r.name.as_str();
        let mt = Self::machine_var(body, r, "db.t3.micro")?;
        let sg = format!("{name}-sg");
        let description = "infraai: PostgreSQL from the application only";
        body.push(group_block(&sg, description, run)?);
        for app in app_sgs {
            body.push(
                Block::resource(
                    "aws_vpc_security_group_ingress_rule",
                    &format!("{sg}-from-{app}"),
                )?
                .attr(
                    "security_group_id",
                    reference(format!("aws_security_group.{sg}.id"))?,
                )?
                .attr(
                    "referenced_security_group_id",
                    reference(format!("aws_security_group.{app}.id"))?,
                )?
                .attr("ip_protocol", "tcp")?
                .attr("from_port", 5432)?
                .attr("to_port", 5432)?,
            );
        }
        let id = hyphenated(name);
        body.push(
            Block::resource("aws_db_instance", name)?
                .attr("identifier_prefix", format!("{id}-"))?
                .attr("engine", "postgres")?
                .attr("instance_class", var(&mt)?)?
                .attr("allocated_storage", 20)?
                .attr("storage_type", "gp3")?
                .attr("storage_encrypted", true)?
                .attr("username", "infraai")?
                // The password lives in Secrets Manager, never in HCL or state.
                .attr("manage_master_user_password", true)?
                .attr("backup_retention_period", 7)?
                .attr("skip_final_snapshot", false)?
                .attr("final_snapshot_identifier", format!("{id}-final-{run}"))?
                .attr("publicly_accessible", false)?
                .attr(
                    "vpc_security_group_ids",
                    Expr::List(vec![reference(format!("aws_security_group.{sg}.id"))?]),
                )?
                .attr("tags", tags(name, run))?,
        );
        Ok(())
    }

    fn alarm(
        body: &mut Body,
        m: &MonitoringPolicy,
        kind: ResourceKind,
        notify: bool,
        run: &str,
    ) -> Result<()> {
        let name = m.resource_ref.as_str();
        let (namespace, metric) = m.metric_path.rsplit_once('/').ok_or_else(|| {
            Error::invalid(
                "monitoring policy",
                format!("{:?} is not <namespace>/<metric>", m.metric_path),
            )
        })?;
        let dimension = match kind {
            ResourceKind::Compute => ("InstanceId", format!("aws_instance.{name}.id")),
            ResourceKind::InstanceGroup => (
                "AutoScalingGroupName",
                format!("aws_autoscaling_group.{name}.name"),
            ),
            ResourceKind::Database => (
                "DBInstanceIdentifier",
                format!("aws_db_instance.{name}.identifier"),
            ),
            other => {
                return Err(Error::invalid(
                    "monitoring policy",
                    format!("{name} is a {other:?}, which has no CloudWatch alarms here"),
                ))
            }
        };
        let period = 60u64;
        let periods = m.duration_secs.div_ceil(period).max(1);
        let statistic = match m.aligner {
            Aligner::Mean => "Average",
            Aligner::Max => "Maximum",
            Aligner::Rate => "Sum",
        };
        let comparison = match m.comparison {
            Comparison::GreaterThan => "GreaterThanThreshold",
            Comparison::LessThan => "LessThanThreshold",
        };
        // The alert source reads this back to name the resource and profile.
        let description = json!({
            "infraai": {
                "resource": name,
                "resource_type": m.resource_type,
                "profile": m.metric_name,
                "metric": m.metric_path,
                "severity": m.severity,
            }
        })
        .to_string();
        let mut alarm = Block::resource(
            "aws_cloudwatch_metric_alarm",
            &format!("{name}-{}", m.metric_name),
        )?
        .attr(
            "alarm_name",
            format!("infraai-{name}-{}-{run}", m.metric_name),
        )?
        .attr("alarm_description", description)?
        .attr("namespace", namespace)?
        .attr("metric_name", metric)?
        .attr(
            "dimensions",
            Expr::Object(vec![(dimension.0.into(), reference(dimension.1)?)]),
        )?
        .attr("statistic", statistic)?
        .attr("period", period)?
        .attr("evaluation_periods", periods)?
        .attr("threshold", Expr::number(m.threshold)?)?
        .attr("comparison_operator", comparison)?
        .attr("treat_missing_data", "missing")?;
        if notify {
            let topic = Expr::List(vec![reference(format!("aws_sns_topic.{TOPIC}.arn"))?]);
            alarm = alarm
                .attr("alarm_actions", topic.clone())?
                .attr("ok_actions", topic)?;
        }
        body.push(alarm);
        Ok(())
    }
}

impl TerraformGenerator for AwsCloud {
    fn cloud(&self) -> &str {
        "aws"
    }

    fn resource_type(&self, kind: ResourceKind) -> Option<String> {
        match kind {
            ResourceKind::Compute => Some(AWS_EC2_INSTANCE.into()),
            ResourceKind::InstanceGroup => Some(AWS_AUTOSCALING_GROUP.into()),
            ResourceKind::Database => Some(AWS_RDS_INSTANCE.into()),
            ResourceKind::Firewall => Some(AWS_SECURITY_GROUP.into()),
            ResourceKind::Cache | ResourceKind::LoadBalancer | ResourceKind::Network => None,
        }
    }

    fn machine_type(&self, planned: &MachineType) -> MachineType {
        map_planned(planned)
    }

    fn failure_patterns(&self) -> Vec<infraai_core::FailurePattern> {
        crate::failure_patterns()
    }

    fn generate(&self, request: &GenerateRequest<'_>) -> Result<TerraformFiles> {
        let plan = request.plan;
        let run_text = request.run_id.to_string();
        let run: String = run_text
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .rev()
            .take(8)
            .collect();
        let region = self.region(plan);
        let mut body = Body::new();
        body.push(Block::new("terraform", no_labels())?.block(
            Block::new("required_providers", no_labels())?.attr(
                "aws",
                Expr::Object(vec![
                    ("source".into(), "hashicorp/aws".into()),
                    ("version".into(), ">= 5.0, < 6.0".into()),
                ]),
            )?,
        ));
        let provider = Block::provider("aws")?
            .attr("region", var("region")?)?
            .block(Block::new("default_tags", no_labels())?.attr(
                "tags",
                Expr::Object(vec![
                    ("managed-by".into(), "infraai".into()),
                    ("infraai-run".into(), run_text.as_str().into()),
                ]),
            )?);
        body.push(self.with_endpoint(provider)?);
        body.push(
            Block::variable("region")?
                .attr("type", Expr::reference("string")?)?
                .attr("default", region.as_str())?,
        );
        let mut ami = Block::variable("ami_id")?
            .attr("type", Expr::reference("string")?)?
            .attr("description", "AMI of the application instances")?;
        if let Some(id) = &self.config.ami_id {
            ami = ami.attr("default", id.as_str())?;
        }
        body.push(ami);

        let hosts: Vec<&PlannedResource> = plan
            .resources
            .iter()
            .filter(|r| matches!(r.kind, ResourceKind::Compute | ResourceKind::InstanceGroup))
            .collect();
        if hosts.is_empty() {
            return Err(Error::invalid(
                "plan",
                "has no compute resource or instance group for AWS to run",
            ));
        }
        if let Some(cache) = plan
            .resources
            .iter()
            .find(|r| r.kind == ResourceKind::Cache)
        {
            return Err(Error::invalid(
                "plan",
                format!(
                    "resource {} is a cache; the AWS generator does not create caches yet",
                    cache.name
                ),
            ));
        }
        let mut firewalls: Vec<String> = plan
            .resources
            .iter()
            .filter(|r| r.kind == ResourceKind::Firewall)
            .map(|r| r.name.as_str().to_string())
            .collect();
        if firewalls.is_empty() {
            firewalls.push("app-firewall".into());
        }
        for fw in &firewalls {
            self.security_group(&mut body, fw, &run)?;
        }
        let sgs = Expr::List(
            firewalls
                .iter()
                .map(|fw| reference(format!("aws_security_group.{fw}.id")))
                .collect::<Result<_>>()?,
        );
        if hosts.iter().any(|r| r.kind == ResourceKind::InstanceGroup) {
            body.push(
                Block::variable("availability_zones")?
                    .attr("type", Expr::call("list", [Expr::reference("string")?])?)?
                    .attr("default", vec![format!("{region}a"), format!("{region}b")])?,
            );
        }

        let mut urls = Vec::new();
        let mut ips = Vec::new();
        let mut ids = Vec::new();
        let mut groups = Vec::new();
        let mut databases = Vec::new();
        let mut db_ids = Vec::new();
        for r in &plan.resources {
            let name = r.name.as_str();
            let entry = |path: String| Ok::<_, Error>((name.to_string(), reference(path)?));
            match r.kind {
                ResourceKind::Compute => {
                    self.instance(&mut body, r, &sgs, &run)?;
                    let (key, ip) = entry(format!("aws_instance.{name}.public_ip"))?;
                    let url = [
                        Part::lit("http://"),
                        Part::Interp(ip.clone()),
                        Part::lit("/"),
                    ];
                    urls.push((key.clone(), Expr::template(url)));
                    ips.push((key, ip));
                    ids.push(entry(format!("aws_instance.{name}.id"))?);
                }
                ResourceKind::InstanceGroup => {
                    Self::autoscaling_group(&mut body, r, &sgs, &run)?;
                    groups.push(entry(format!("aws_autoscaling_group.{name}.name"))?);
                }
                ResourceKind::Database => {
                    Self::database(&mut body, r, &firewalls, &run)?;
                    databases.push(entry(format!("aws_db_instance.{name}.address"))?);
                    db_ids.push(entry(format!("aws_db_instance.{name}.identifier"))?);
                }
                // Security groups are written above; the default VPC is used
                // and no load balancer is created (a known limit).
                ResourceKind::Firewall
                | ResourceKind::Cache
                | ResourceKind::LoadBalancer
                | ResourceKind::Network => {}
            }
        }

        let notify = match &request.alert_webhook {
            Some(url) => {
                let protocol = if url.starts_with("https://") {
                    "https"
                } else if url.starts_with("http://") {
                    "http"
                } else {
                    return Err(Error::invalid("alert webhook URL", "must be http(s)://"));
                };
                body.push(
                    Block::resource("aws_sns_topic", TOPIC)?
                        .attr("name_prefix", "infraai-alerts-")?
                        .attr("tags", tags("infraai-alerts", &run))?,
                );
                body.push(
                    Block::resource("aws_sns_topic_subscription", "ops_webhook")?
                        .attr(
                            "topic_arn",
                            reference(format!("aws_sns_topic.{TOPIC}.arn"))?,
                        )?
                        .attr("protocol", protocol)?
                        .attr("endpoint", url.as_str())?
                        .attr("endpoint_auto_confirms", false)?,
                );
                true
            }
            None => false,
        };
        for m in &plan.monitoring {
            let kind = plan
                .resources
                .iter()
                .find(|r| r.name == m.resource_ref)
                .map(|r| r.kind)
                .ok_or_else(|| {
                    Error::invalid(
                        "monitoring policy",
                        format!(
                            "watches {}, which is not in the plan",
                            m.resource_ref.as_str()
                        ),
                    )
                })?;
            Self::alarm(&mut body, m, kind, notify, &run)?;
        }

        let sg_ids = firewalls
            .iter()
            .map(|fw| {
                Ok((
                    fw.clone(),
                    reference(format!("aws_security_group.{fw}.id"))?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        for (name, items) in [
            ("urls", urls),
            ("public_ips", ips),
            (OUTPUT_INSTANCE_IDS, ids),
            (OUTPUT_AUTOSCALING_GROUPS, groups),
            ("database_addresses", databases),
            (OUTPUT_DATABASE_IDENTIFIERS, db_ids),
            (OUTPUT_SECURITY_GROUP_IDS, sg_ids),
        ] {
            body.push(Block::output(name)?.attr("value", Expr::Object(items))?);
        }
        if notify {
            body.push(
                Block::output("sns_topic_arn")?
                    .attr("value", reference(format!("aws_sns_topic.{TOPIC}.arn"))?)?,
            );
        }
        Ok(TerraformFiles::single(body.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use infraai_core::{MetricProfileRegistry, ResourceName, RunId, Severity, StackType};

    fn plan(kinds: &[(&str, ResourceKind, Option<&str>)]) -> InfraPlan {
        let cloud = AwsCloud::default();
        let mut plan = InfraPlan {
            cloud: "aws".into(),
            stack_type: StackType::BackendApi,
            region: "us-central1".into(),
            machine_type: MachineType::new("t3.small").unwrap(),
            autoscaling: false,
            estimated_cost_usd: 20.0,
            risk_flags: vec![],
            resources: kinds
                .iter()
                .map(|(n, k, m)| PlannedResource {
                    name: ResourceName::new(*n).unwrap(),
                    kind: *k,
                    resource_type: cloud.resource_type(*k),
                    machine_type: m.map(|m| MachineType::new(m).unwrap()),
                    count: 2,
                    depends_on: vec![],
                    description: String::new(),
                })
                .collect(),
            monitoring: vec![],
            confidence: 0.9,
            summary: String::new(),
        };
        let mut registry = MetricProfileRegistry::empty();
        crate::register_profiles(&mut registry);
        plan.monitoring = registry.bind(&plan);
        plan
    }

    fn hcl(plan: &InfraPlan, webhook: Option<&str>) -> Result<String> {
        AwsCloud::default()
            .generate(&GenerateRequest {
                run_id: RunId::new(),
                plan,
                alert_webhook: webhook.map(str::to_string),
            })
            // The writer aligns `=` like `terraform fmt`; compare with single spaces.
            .map(|f| {
                f.files["main.tf"]
                    .lines()
                    .map(|l| {
                        let indent = l.len() - l.trim_start().len();
                        let words: Vec<&str> = l.split_whitespace().collect();
                        format!("{}{}", &l[..indent], words.join(" "))
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
                    + "\n"
            })
    }

    #[test]
    fn registry_binds_cloudwatch_alarms_for_aws_types() {
        let p = plan(&[
            ("api", ResourceKind::Compute, Some("e2-medium")),
            ("db", ResourceKind::Database, Some("db-f1-micro")),
        ]);
        let bound: Vec<_> = p
            .monitoring
            .iter()
            .map(|m| (m.resource_ref.as_str(), m.metric_name.as_str(), m.threshold))
            .collect();
        assert_eq!(
            bound,
            [
                ("api", "cpu_high", 80.0),
                ("api", "instance_unhealthy", 0.0),
                ("db", "rds_cpu_high", 75.0),
                ("db", "rds_connections_high", 100.0)
            ]
        );
        assert_eq!(p.monitoring[0].severity, Severity::Critical);
        let text = hcl(&p, Some("https://ops.example.com/ops/webhook")).unwrap();
        // CPU > 80 % for 60 s: one 60-second period.
        let cpu = text
            .split("resource \"aws_cloudwatch_metric_alarm\" \"api-cpu_high\"")
            .nth(1)
            .unwrap();
        let cpu = &cpu[..cpu.find("\n}\n").unwrap()];
        for line in [
            "namespace = \"AWS/EC2\"",
            "metric_name = \"CPUUtilization\"",
            "period = 60",
            "evaluation_periods = 1",
            "threshold = 80.0",
            "comparison_operator = \"GreaterThanThreshold\"",
            "\"InstanceId\" = aws_instance.api.id",
            "alarm_actions = [aws_sns_topic.infraai_alerts.arn]",
        ] {
            assert!(cpu.contains(line), "{line} missing in {cpu}");
        }
        // StatusCheckFailed holds for 120 s: two periods, Maximum.
        assert!(text.contains("evaluation_periods = 2"));
        assert!(text.contains("statistic = \"Maximum\""));
        assert!(text.contains("\"DBInstanceIdentifier\" = aws_db_instance.db.identifier"));
        assert!(text.contains("instance_class = var.machine_type_db"));
        assert!(text.contains("default = \"db.t3.micro\""));
        assert!(text.contains("manage_master_user_password = true"));
        // Region falls back from the planner's GCP name.
        assert!(text.contains("default = \"us-east-1\""));
        assert!(text.contains("protocol = \"https\""));
    }

    #[test]
    fn without_a_webhook_there_is_no_topic_and_hostile_strings_stay_strings() {
        let p = plan(&[("web", ResourceKind::InstanceGroup, Some("e2-small"))]);
        let text = hcl(&p, None).unwrap();
        assert!(!text.contains("aws_sns_topic"));
        assert!(!text.contains("alarm_actions"));
        assert!(text.contains("resource \"aws_autoscaling_group\" \"web\""));
        assert!(text.contains("\"AutoScalingGroupName\" = aws_autoscaling_group.web.name"));
        let hostile = "https://x.example/ops?token=\"}\nresource \"aws_iam_user\" \"x\" {${var.region}%{if true}";
        let text = hcl(&p, Some(hostile)).unwrap();
        assert!(!text.contains("resource \"aws_iam_user\""));
        assert!(text.contains("$${var.region}%%{if true}"), "{text}");
        assert!(hcl(&p, Some("ftp://x")).is_err());
        let no_compute = plan(&[("db", ResourceKind::Database, None)]);
        assert!(matches!(hcl(&no_compute, None), Err(Error::Invalid { .. })));
        let cache = plan(&[
            ("web", ResourceKind::Compute, Some("e2-small")),
            ("cache", ResourceKind::Cache, None),
        ]);
        let refused = hcl(&cache, None).unwrap_err().to_string();
        assert!(
            refused.contains("cache is a cache; the AWS generator does not create caches"),
            "{refused}"
        );
    }
}
