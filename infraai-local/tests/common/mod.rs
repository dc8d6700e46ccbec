//! Helpers of the local cloud's real-loop tests.
#![allow(dead_code)] // each test file uses a part

use infraai_core::testing::{MemoryStore, RecordingApprover};
use infraai_core::*;
use infraai_local::instances::InstanceDir;
use infraai_local::profiles::{
    register_profiles, LOCAL_INSTANCE, LOCAL_INSTANCE_GROUP, LOCAL_POSTGRES, LOCAL_REDIS,
};
use infraai_local::{LocalActions, LocalCloud, LocalConfig, LocalMetrics};
use infraai_terraform::{TerraformConfig, TerraformRunner};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// A planned resource on the smallest local size.
pub fn resource(name: &str, kind: ResourceKind, count: u32, deps: &[&str]) -> PlannedResource {
    PlannedResource {
        name: ResourceName::new(name).unwrap(),
        kind,
        resource_type: None,
        machine_type: Some(MachineType::new("local-small").unwrap()),
        count,
        depends_on: deps
            .iter()
            .map(|d| ResourceName::new(*d).unwrap())
            .collect(),
        description: String::new(),
    }
}

/// A planner that always plans these resources (a web app on the local
/// cloud's smallest size).
pub struct Fixed(pub Vec<PlannedResource>);

#[async_trait::async_trait]
impl Planner for Fixed {
    fn name(&self) -> &str {
        "fixed"
    }
    async fn plan(&self, request: &PlanRequest) -> Result<InfraPlan> {
        Ok(InfraPlan {
            cloud: request.cloud.clone(),
            stack_type: StackType::WebApp,
            region: "local".into(),
            machine_type: MachineType::new("local-small")?,
            autoscaling: false,
            estimated_cost_usd: 0.0,
            risk_flags: vec![],
            resources: self.0.clone(),
            monitoring: vec![],
            confidence: 0.9,
            summary: format!("{} resources", self.0.len()),
        })
    }
}

/// One test's local cloud: real Terraform, an in-memory store, and the local
/// profiles with their durations shortened to 3 s (the built-in ones hold
/// for 30–60 s) to keep CI fast. Kills what is left and removes its
/// directory when dropped.
pub struct Rig {
    pub state: PathBuf,
    pub records: InstanceDir,
    pub runner: Arc<TerraformRunner>,
    pub store: Arc<MemoryStore>,
    pub registry: Arc<MetricProfileRegistry>,
    pub cloud: LocalCloud,
}

impl Rig {
    /// `None` (after saying why) when Terraform is not available.
    pub fn new(test: &str) -> Option<Self> {
        let tf = terraform(test)?;
        let state = tf.work_root.parent()?.join("state");
        let mut registry = MetricProfileRegistry::empty();
        register_profiles(&mut registry);
        for rt in [
            LOCAL_INSTANCE,
            LOCAL_INSTANCE_GROUP,
            LOCAL_POSTGRES,
            LOCAL_REDIS,
        ] {
            for mut profile in registry.profiles(rt).to_vec() {
                profile.duration_secs = 3;
                registry.register(rt, profile);
            }
        }
        Some(Self {
            records: InstanceDir::new(&state),
            runner: Arc::new(TerraformRunner::new(tf)),
            store: Arc::new(MemoryStore::new()),
            registry: Arc::new(registry),
            cloud: LocalCloud::new(LocalConfig {
                state_dir: state.clone(),
                service_program: PathBuf::from(env!("CARGO_BIN_EXE_infraai-demo-service")),
                service_subcommand: None,
            }),
            state,
        })
    }

    /// The deploy loop with `planner` on this cloud.
    pub fn deploy_agent(&self, planner: Arc<dyn Planner>) -> DeployAgent {
        DeployAgent::new(
            DeployDeps {
                planner,
                generator: Arc::new(self.cloud.clone()),
                fixers: infraai_terraform::fixers::deterministic_fixers(),
                runner: self.runner.clone(),
                verifier: Arc::new(HttpVerifier::new(5, Duration::from_millis(300))),
                store: self.store.clone(),
                registry: self.registry.clone(),
                events: EventBus::new(),
            },
            DeployConfig::default(),
        )
    }

    /// The deploy loop with the rule planner.
    pub fn rule_deploy_agent(&self) -> DeployAgent {
        let catalog = infraai_core::testing::catalog();
        self.deploy_agent(Arc::new(rules::RulePlanner::new(catalog)))
    }

    /// The ops loop: the rule policy, the local guardrails (10 automatic
    /// actions an hour, `max_instances`, earned autonomy off: every pair
    /// trusted), the real actions and metrics, and `approver` asked for
    /// approvals.
    pub fn ops_agent(
        &self,
        approver: Arc<RecordingApprover>,
        max_instances: u32,
        feedback_delay: Duration,
    ) -> (OpsAgent, Arc<LocalMetrics>) {
        let mut guardrails = infraai_local::profiles::guardrails(GuardrailConfig::default());
        (guardrails.max_auto_actions, guardrails.max_instances) = (10, max_instances);
        guardrails.earned_autonomy.enabled = false;
        self.ops_agent_with(approver, guardrails, feedback_delay)
    }

    /// [`Rig::ops_agent`] with these guardrails.
    pub fn ops_agent_with(
        &self,
        approver: Arc<RecordingApprover>,
        guardrails: GuardrailConfig,
        feedback_delay: Duration,
    ) -> (OpsAgent, Arc<LocalMetrics>) {
        let metrics = Arc::new(LocalMetrics::new(self.records.clone()));
        let ops = OpsAgent::new(
            OpsDeps {
                store: self.store.clone(),
                policy: Arc::new(rules::RulePolicy),
                notifier: approver,
                actions: Arc::new(self.actions()),
                metrics: metrics.clone(),
                registry: self.registry.clone(),
            },
            Guardrails::new(guardrails),
            OpsConfig {
                feedback_delay,
                ..OpsConfig::default()
            },
        );
        (ops, metrics)
    }

    /// The local actions, for a test to run one by hand.
    pub fn actions(&self) -> LocalActions {
        LocalActions::new(
            self.runner.clone(),
            self.store.clone(),
            self.records.clone(),
        )
    }

    /// `terraform destroy` of what `run` deployed.
    pub async fn destroy(&self, run: &Run) {
        let id = run.deployment_id.expect("a deployed run");
        let deployment = self.store.get_deployment(id).await.unwrap().unwrap();
        let ws = TfWorkspace {
            run_id: run.id,
            dir: PathBuf::from(&deployment.terraform_state),
        };
        self.runner.destroy(&ws, &Quiet).await.unwrap();
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        reap(&self.state);
        if let Some(root) = self.state.parent() {
            let _ = std::fs::remove_dir_all(root);
        }
    }
}

pub fn terraform(test: &str) -> Option<TerraformConfig> {
    let skip = |reason: &str| {
        if std::env::var("INFRAAI_REQUIRE_SERVICES").as_deref() == Ok("1") {
            panic!("{test}: {reason}, but INFRAAI_REQUIRE_SERVICES=1");
        }
        eprintln!("skipping {test}: {reason}");
    };
    let Some(bin) = std::env::var_os("TERRAFORM_BIN") else {
        skip("TERRAFORM_BIN is not set (point it at a terraform binary; scripts/test-all.sh sets it)");
        return None;
    };
    let root = std::env::temp_dir().join(format!("infraai-local-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let mut c = TerraformConfig::new(root.join("runs")).with_binary(PathBuf::from(bin));
    if let Some(rc) = std::env::var_os("TF_CLI_CONFIG_FILE") {
        c = c.with_cli_config_file(PathBuf::from(rc));
    }
    Some(c)
}

/// Kills every process recorded under `state` (a test that failed half-way).
fn reap(state: &std::path::Path) {
    let mut records: Vec<PathBuf> = children(&state.join("instances"));
    for group in children(&state.join("groups")) {
        records.extend(children(&group));
    }
    for record in records {
        if let Ok(pid) = std::fs::read_to_string(record.join("pid")) {
            if let Ok(pid) = pid.trim().parse::<i32>() {
                // SAFETY: kill(2) with a recorded pid and SIGKILL has no memory effects.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
}

fn children(dir: &std::path::Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect()
}

/// A log sink that drops every line.
pub struct Quiet;
impl LogSink for Quiet {
    fn log(&self, _: LogLine) {}
}

pub struct Load(pub tokio::task::JoinHandle<()>);
impl Drop for Load {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// `cpu_ms` of CPU every 100 ms, fired without waiting for answers.
pub fn load(url: String, cpu_ms: u64) -> Load {
    Load(tokio::spawn(async move {
        let http = reqwest::Client::new();
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tick.tick().await;
            let (http, url) = (http.clone(), url.clone());
            tokio::spawn(async move { http.get(format!("{url}work?ms={cpu_ms}")).send().await });
        }
    }))
}

pub async fn wait_status(
    store: &MemoryStore,
    id: IncidentId,
    want: IncidentStatus,
    secs: u64,
) -> Incident {
    for _ in 0..secs * 10 {
        let i = store.get_incident(id).await.unwrap().unwrap();
        if i.status == want {
            return i;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let i = store.get_incident(id).await.unwrap().unwrap();
    panic!("incident never became {want}: {i:#?}");
}

/// Runs the watcher until it yields a firing alert, feeding it to the ops loop.
pub async fn watch_until_fired(
    watcher: &mut ThresholdWatcher,
    store: &MemoryStore,
    ops: &OpsAgent,
    metric: &str,
    secs: u64,
) -> Incident {
    for _ in 0..secs {
        let deployment = store.list_deployments().await.unwrap().remove(0);
        for alert in watcher.evaluate(&deployment, chrono::Utc::now()).await {
            if alert.metric == metric && alert.state == AlertState::Firing {
                return ops.handle_alert(&alert).await.unwrap().incident.unwrap();
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    panic!("the watcher never fired {metric}");
}

/// The Terraform change set of the first approval request's dry run.
pub fn asked_change_set(approver: &RecordingApprover) -> ChangeSet {
    let asked = approver.requests();
    let preview = asked[0].preview.as_ref().expect("a dry-run preview");
    preview.change_set.clone().expect("a Terraform change set")
}

/// Approves an incident as a web operator: the incident afterwards.
pub async fn approve(ops: &OpsAgent, id: IncidentId) -> Incident {
    let reply = HumanReply::new(
        HumanCommand::Approve { incident_id: id },
        Actor::new("web", "tester"),
    );
    let outcome = ops.handle_command(&reply).await.unwrap();
    outcome.incident.expect("the approved incident")
}
