//! The ports of infraai: every adapter implements one of these traits.
//!
//! All traits are object safe, `Send + Sync` and used as `Arc<dyn Trait>`.
//! They return [`crate::Error`], whose kinds say what failed and whether
//! retrying can help. Request structs are used where a method has more than
//! two inputs, so signatures can grow without breaking implementors.

pub use crate::store::*;

use crate::domain::*;
use crate::{DeploymentId, IncidentId, Result, RunId};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

// ---------------------------------------------------------------- LLM

/// A structured-generation request: the answer must match `schema`.
#[derive(Clone, Debug, PartialEq)]
pub struct LlmRequest {
    /// System instruction.
    pub system: String,
    /// User prompt (untrusted text already fenced by the prompt template).
    pub prompt: String,
    /// Name of the schema (some providers require one).
    pub schema_name: String,
    /// JSON schema the answer must follow.
    pub schema: serde_json::Value,
    /// Sampling temperature.
    pub temperature: Option<f32>,
}

/// Tokens spent on one call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TokenUsage {
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Output tokens (including reasoning tokens where reported).
    pub completion_tokens: u64,
}

/// A structured answer.
#[derive(Clone, Debug, PartialEq)]
pub struct LlmResponse {
    /// The JSON answer (still to be validated by the caller).
    pub value: serde_json::Value,
    /// Tokens spent.
    pub usage: TokenUsage,
    /// The model that answered.
    pub model: String,
}

/// A large language model that answers with JSON matching a schema.
#[cfg_attr(feature = "testing", mockall::automock)]
#[async_trait]
pub trait LlmProvider: Send + Sync {
    /// Provider name for logs and audit (`gemini`, `openai`).
    fn name(&self) -> &str;
    /// The model requests go to, when the provider is configured with one;
    /// recorded in the audit record of a failed call (a successful one
    /// records the model that answered).
    fn model(&self) -> Option<String> {
        None
    }
    /// Generates a JSON value for the request.
    async fn generate(&self, request: &LlmRequest) -> Result<LlmResponse>;
}

// ---------------------------------------------------------------- planning

/// What to plan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PlanRequest {
    /// The user's goal text.
    pub goal: String,
    /// The cloud the plan is for (the configured cloud adapter's name).
    pub cloud: String,
    /// Preferred region, when configured.
    #[serde(default)]
    pub region: Option<String>,
}

/// Turns a goal into an [`InfraPlan`] (rules or LLM).
#[async_trait]
pub trait Planner: Send + Sync {
    /// Planner name for audit (`rules`, `gemini`).
    fn name(&self) -> &str;
    /// Plans the infrastructure. Monitoring in the result is ignored: the deploy
    /// loop binds it from the metric-profile registry.
    async fn plan(&self, request: &PlanRequest) -> Result<InfraPlan>;
}

/// Input of [`TerraformGenerator::generate`].
#[derive(Clone, Debug, PartialEq)]
pub struct GenerateRequest<'a> {
    /// The run the files belong to (used in labels).
    pub run_id: RunId,
    /// The plan, with resource types and monitoring bound.
    pub plan: &'a InfraPlan,
    /// URL alert policies should post to, when configured.
    pub alert_webhook: Option<String>,
}

/// A cloud adapter's HCL generator.
pub trait TerraformGenerator: Send + Sync {
    /// The cloud's name (`gcp`, `local`, `aws`); becomes [`InfraPlan::cloud`].
    fn cloud(&self) -> &str;
    /// The cloud's resource type for a kind (used to bind monitoring), or
    /// `None` when the cloud cannot host that kind.
    fn resource_type(&self, kind: ResourceKind) -> Option<String>;
    /// The cloud's own machine type for a planned one (planners speak the
    /// sizes of their [`crate::rules::PlanningCatalog`]; a cloud with its own
    /// sizes maps them here). Identity by default.
    fn machine_type(&self, planned: &MachineType) -> MachineType {
        planned.clone()
    }
    /// Writes the Terraform files for a plan.
    fn generate(&self, request: &GenerateRequest<'_>) -> Result<TerraformFiles>;
    /// This cloud's own apply-failure patterns, tried before the built-in
    /// ones by the deploy loop's [`crate::ApplyFailureClassifier`]. None by
    /// default.
    fn failure_patterns(&self) -> Vec<crate::FailurePattern> {
        Vec::new()
    }
}

/// Input of [`Fixer::fix`].
#[derive(Clone, Debug, PartialEq)]
pub struct FixRequest<'a> {
    /// The plan the files were generated from.
    pub plan: &'a InfraPlan,
    /// The invalid files.
    pub files: &'a TerraformFiles,
    /// Terraform's diagnostics.
    pub diagnostics: &'a [Diagnostic],
    /// 1-based attempt number.
    pub attempt: u8,
}

/// Repairs an invalid Terraform configuration (deterministic rules or LLM).
#[async_trait]
pub trait Fixer: Send + Sync {
    /// Fixer name, recorded in the run's fix attempts.
    fn name(&self) -> &str;
    /// New files, or `None` when this fixer cannot help.
    async fn fix(&self, request: &FixRequest<'_>) -> Result<Option<TerraformFiles>>;
}

// ---------------------------------------------------------------- terraform

/// Receives live log lines.
pub trait LogSink: Send + Sync {
    /// Publishes one line. Must not block.
    fn log(&self, line: LogLine);
}

/// A run's Terraform working directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TfWorkspace {
    /// The run.
    pub run_id: RunId,
    /// The directory holding the files and state.
    pub dir: PathBuf,
}

/// Drives Terraform for one work directory per run.
#[async_trait]
pub trait TfRunner: Send + Sync {
    /// Writes (replaces) the run's files and returns its workspace.
    async fn write_files(&self, run_id: RunId, files: &TerraformFiles) -> Result<TfWorkspace>;
    /// `terraform init`.
    async fn init(&self, ws: &TfWorkspace, log: &dyn LogSink) -> Result<()>;
    /// `terraform validate`.
    async fn validate(&self, ws: &TfWorkspace) -> Result<ValidationReport>;
    /// `terraform plan` into a saved plan; returns the change set, each
    /// change with its attributes (the dry-run preview).
    async fn plan(&self, ws: &TfWorkspace, log: &dyn LogSink) -> Result<ChangeSet>;
    /// `terraform plan` into a saved plan that [`TfRunner::apply`] applies
    /// next, with nobody to look at it in between: the change set may come
    /// with addresses and actions only, and `apply` return the attributes
    /// (read while it applies, so that reading them costs no time of its
    /// own). By default [`TfRunner::plan`].
    async fn plan_to_apply(&self, ws: &TfWorkspace, log: &dyn LogSink) -> Result<ChangeSet> {
        self.plan(ws, log).await
    }
    /// Applies exactly the saved plan, streaming events to `log`, and says
    /// what it knows of the result ([`Applied`]).
    async fn apply(&self, ws: &TfWorkspace, log: &dyn LogSink) -> Result<Applied>;
    /// `terraform output`.
    async fn output(&self, ws: &TfWorkspace) -> Result<BTreeMap<String, serde_json::Value>>;
    /// `terraform destroy`.
    async fn destroy(&self, ws: &TfWorkspace, log: &dyn LogSink) -> Result<()>;
    /// After an apply: the outputs ([`TfRunner::output`]) and the managed
    /// resources in the state, or why the state could not be read. A runner
    /// may read both at once (`terraform show -json` holds both).
    async fn output_and_state(&self, ws: &TfWorkspace) -> Result<OutputAndState> {
        let outputs = self.output(ws).await?;
        Ok((outputs, self.state(ws).await))
    }
    /// The managed resources in the workspace's state (`terraform show
    /// -json`), e.g. what a failed apply left behind. Not supported by default.
    async fn state(&self, ws: &TfWorkspace) -> Result<Vec<StateResource>> {
        let _ = ws;
        Err(crate::Error::NotSupported {
            component: "terraform runner".into(),
            op: "state".into(),
        })
    }
    /// `terraform plan -destroy` into the saved plan: the returned change set
    /// is the dry-run preview, and the next [`TfRunner::apply`] deletes
    /// exactly it. Not supported by default.
    async fn plan_destroy(&self, ws: &TfWorkspace, log: &dyn LogSink) -> Result<ChangeSet> {
        let _ = (ws, log);
        Err(crate::Error::NotSupported {
            component: "terraform runner".into(),
            op: "plan_destroy".into(),
        })
    }
}

/// What a successful [`TfRunner::apply`] knows without asking Terraform
/// again.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Applied {
    /// The applied change set with its attributes, when the plan was saved
    /// without them ([`TfRunner::plan_to_apply`]) and could be read.
    pub change_set: Option<ChangeSet>,
    /// The outputs (sensitive values masked as [`TfRunner::output`] masks
    /// them) and the managed resources the apply left, when the runner knows
    /// both without reading the state (from the apply's own events and the
    /// plan it applied); else the caller asks
    /// [`TfRunner::output_and_state`].
    pub left: Option<OutputsAndResources>,
}

/// A deploy's outputs (sensitive values masked) and the managed resources
/// in its state.
pub type OutputsAndResources = (BTreeMap<String, serde_json::Value>, Vec<StateResource>);

/// A deploy's outputs and the managed resources in its state (or why the
/// state could not be read).
pub type OutputAndState = (
    BTreeMap<String, serde_json::Value>,
    Result<Vec<StateResource>>,
);

/// Checks that a deployment answers over HTTP.
#[async_trait]
pub trait Verifier: Send + Sync {
    /// Verifies the endpoints found in the Terraform outputs.
    async fn verify(
        &self,
        outputs: &BTreeMap<String, serde_json::Value>,
    ) -> Result<VerificationReport>;
}

// ---------------------------------------------------------------- inbound

/// A raw inbound HTTP request (webhook or chat callback), as adapters see it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InboundRequest {
    /// Header names lowercased.
    pub headers: BTreeMap<String, String>,
    /// Query parameters.
    pub query: BTreeMap<String, String>,
    /// The raw body (signatures are over the exact bytes).
    pub body: Vec<u8>,
    /// Its route and peer, when known (in the audit of a refusal).
    pub origin: crate::RequestOrigin,
}

impl InboundRequest {
    /// A header by (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
}

/// Where alerts come from (GCP webhook, Alertmanager, …). A server holds a
/// list of them and gives a delivery to the first that
/// [accepts](AlertSource::accepts) it.
#[cfg_attr(feature = "testing", mockall::automock)]
#[async_trait]
pub trait AlertSource: Send + Sync {
    /// Source name (`gcp`, `alertmanager`).
    fn name(&self) -> &str;
    /// Whether the request is this source's kind of delivery, judged by its
    /// headers or the shape of its body, before any authentication.
    fn accepts(&self, request: &InboundRequest) -> bool;
    /// Authenticates the request ([`crate::Error::Unauthenticated`] otherwise)
    /// and normalizes its payload into alerts.
    async fn receive(&self, request: &InboundRequest) -> Result<Vec<Alert>>;
    /// What a delivery that carries no alert was, when that is normal for
    /// this source (a test notification, a subscription confirmation);
    /// `None` (the default) makes such a delivery a client error.
    fn empty_delivery_note(&self) -> Option<&'static str> {
        None
    }
}

// ---------------------------------------------------------------- decisions

/// What the decision policy knows about an incident.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DecisionContext {
    /// The incident (with its latest alert).
    pub incident: Incident,
    /// The deployment the resource belongs to, when known.
    pub deployment: Option<Deployment>,
    /// The resource's current machine type, when known.
    pub current_machine_type: Option<MachineType>,
    /// The next machine type up the ladder, when there is one.
    pub next_machine_type: Option<MachineType>,
    /// The resource's instance count, when its deployment knows it.
    #[serde(default)]
    pub current_count: Option<u32>,
    /// One instance more, when the guardrails' maximum allows it.
    #[serde(default)]
    pub next_instance_count: Option<u32>,
    /// Actions the guardrails allow for this resource type.
    pub allowed_actions: Vec<ActionKind>,
    /// Earlier incidents on the same resource, newest first (at most 5), as
    /// precedent.
    #[serde(default)]
    pub recent_incidents: Vec<Incident>,
}

/// Decides what to do about an incident (rules or LLM). It only recommends:
/// the guardrails decide whether anything runs.
#[cfg_attr(feature = "testing", mockall::automock)]
#[async_trait]
pub trait DecisionPolicy: Send + Sync {
    /// Policy name for audit (`rules`, `gemini`).
    fn name(&self) -> &str;
    /// Recommends a decision.
    async fn decide(&self, context: &DecisionContext) -> Result<OpsDecision>;
}

// ---------------------------------------------------------------- humans

/// What a human is asked to approve.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ApprovalRequest {
    /// The incident, with its decision.
    pub incident: Incident,
    /// Dry-run preview of the action, when the handler could make one.
    pub preview: Option<ActionPreview>,
    /// What the action adds to the monthly bill, when its prices are known.
    #[serde(default)]
    pub cost: Option<crate::guardrails::CostChange>,
}

impl ApprovalRequest {
    /// The facts a human needs to decide, one line each — policy, resource,
    /// metric = value (threshold), severity, suggested action, confidence and
    /// risk, reasoning, cost change, dry run, a change freeze, why a human
    /// is asked — with
    /// every untrusted piece passed through the channel's `escape`.
    pub fn detail_lines(&self, escape: impl Fn(&str) -> String) -> Vec<String> {
        let i = &self.incident;
        let a = &i.alert;
        let num = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_else(|| "?".into());
        let mut lines = vec![
            format!("Policy: {}", escape(&a.policy_name)),
            format!(
                "Resource: {} ({})",
                escape(&a.resource),
                escape(&a.resource_type)
            ),
            format!(
                "Metric: {} = {} (threshold {})",
                escape(&a.metric),
                num(a.value),
                num(a.threshold)
            ),
            format!("Severity: {:?}, seen {} time(s)", a.severity, i.occurrences),
        ];
        if let Some(d) = &i.decision {
            lines.push(format!(
                "Suggested action: {}",
                escape(&d.recommended_action.describe())
            ));
            lines.push(format!(
                "Confidence: {:.2}, risk {:?}",
                d.confidence, d.risk
            ));
            lines.push(format!("Reasoning: {}", escape(&d.reasoning)));
        }
        let executable =
            (i.decision.as_ref()).is_some_and(|d| d.recommended_action.is_executable());
        if self.cost.is_some() || executable {
            let text = crate::guardrails::CostChange::text(self.cost.as_ref());
            lines.push(format!("Cost change: {}", escape(&text)));
        }
        if let Some(p) = &self.preview {
            let changes = p
                .change_set
                .as_ref()
                .map(|c| format!(" ({})", c.summary()))
                .unwrap_or_default();
            lines.push(format!(
                "Dry run: {}{}",
                escape(&p.summary),
                escape(&changes)
            ));
        }
        let freeze = (i.guardrail_notes.iter()).find_map(|n| n.strip_prefix("change_freeze: "));
        if let Some(freeze) = freeze {
            lines.push(format!(
                "Change freeze: {}; approving runs it anyway",
                escape(freeze)
            ));
        }
        if !i.guardrail_notes.is_empty() {
            lines.push(format!(
                "Why a human: {}",
                escape(&i.guardrail_notes.join("; "))
            ));
        }
        lines
    }
}

/// A message for humans that asks for no button press (escalation, outcome).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Notification {
    /// The incident it is about, if any.
    pub incident_id: Option<IncidentId>,
    /// One-line title.
    pub title: String,
    /// Body text (untrusted parts already included verbatim; channels escape).
    pub body: String,
}

/// Sends messages to humans: approval requests, and notifications (outcomes,
/// escalations) that ask for no button press.
#[async_trait]
pub trait Notifier: Send + Sync {
    /// Channel name (`web`, `telegram`, `discord`).
    fn channel(&self) -> &str;
    /// Sends an approval request.
    async fn request_approval(&self, request: &ApprovalRequest) -> Result<()>;
    /// Sends a notification.
    async fn notify(&self, notification: &Notification) -> Result<()>;
}

/// A channel humans command the agent through: it authenticates a delivery,
/// parses the commands it carries, and answers each on the channel it came
/// from. Who may command is decided by core ([`crate::ApproverAllowList`]).
#[async_trait]
pub trait InboundChannel: Send + Sync {
    /// Channel name (`telegram`, `discord`).
    fn channel(&self) -> &str;
    /// Authenticates an inbound request from the channel and parses the
    /// human commands it carries ([`crate::Error::Unauthenticated`] when the
    /// request is not from the channel). Requests that carry no command
    /// (a chat message that is not one) give an empty list.
    async fn parse_inbound(&self, request: &InboundRequest) -> Result<Vec<HumanReply>>;
    /// Tells the sender what their command did (answers the button press,
    /// edits the request message, replies in the chat).
    async fn acknowledge(&self, reply: &HumanReply, outcome: &str) -> Result<()>;
    /// Tells the sender, and only them, that their command was refused (not
    /// an allow-listed approver). Unlike [`InboundChannel::acknowledge`] it
    /// must leave the request message and its buttons as they are, so a
    /// stranger cannot strip them. Defaults to
    /// [`InboundChannel::acknowledge`], for channels whose acknowledgement is
    /// private anyway.
    async fn refuse(&self, reply: &HumanReply, refusal: &str) -> Result<()> {
        self.acknowledge(reply, refusal).await
    }
}

// ---------------------------------------------------------------- actions

/// An action to preview or execute on one resource.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ActionRequest {
    /// The incident that asked for it.
    pub incident_id: IncidentId,
    /// The deployment the resource belongs to, when known.
    pub deployment_id: Option<DeploymentId>,
    /// The resource (instance name).
    pub resource: String,
    /// Its resource type.
    pub resource_type: String,
    /// The action.
    pub action: Action,
}

impl ActionRequest {
    /// `action` on the resource an incident's alert names.
    pub fn for_incident(incident: &Incident, action: Action) -> Self {
        Self {
            incident_id: incident.id,
            deployment_id: incident.deployment_id,
            resource: incident.alert.resource.clone(),
            resource_type: incident.alert.resource_type.clone(),
            action,
        }
    }
}

/// A dry-run preview of an action.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ActionPreview {
    /// One line for humans.
    pub summary: String,
    /// The Terraform change set, for Terraform-backed actions.
    pub change_set: Option<ChangeSet>,
}

/// What a successful execution reports.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ActionReport {
    /// One line for humans.
    pub summary: String,
    /// Adapter details.
    #[serde(default)]
    pub details: serde_json::Value,
}

/// Executes allow-listed actions on a cloud.
#[cfg_attr(feature = "testing", mockall::automock)]
#[async_trait]
pub trait ActionHandler: Send + Sync {
    /// Handler name for audit.
    fn name(&self) -> &str;
    /// Previews the action without changing anything.
    async fn preview(&self, request: &ActionRequest) -> Result<ActionPreview>;
    /// Executes the action. Called at most once per approval (the store's claim
    /// guarantees it).
    async fn execute(&self, request: &ActionRequest) -> Result<ActionReport>;
}

// ---------------------------------------------------------------- metrics

/// Which metric to read.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MetricQuery {
    /// The resource.
    pub resource: String,
    /// Its type.
    pub resource_type: String,
    /// Metric path.
    pub metric: String,
    /// How far back to look, in seconds.
    pub lookback_secs: u64,
}

/// A metric value at a time.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MetricSample {
    /// The aligned value.
    pub value: f64,
    /// When it was measured.
    pub at: DateTime<Utc>,
}

/// Reads metric values: the current one (threshold watcher, re-check after an
/// action) and, where the backend keeps them, past ones (incident charts).
#[cfg_attr(feature = "testing", mockall::automock)]
#[async_trait]
pub trait MetricSource: Send + Sync {
    /// The current value; [`crate::Error::NotFound`] when there is no data.
    async fn current_value(&self, query: &MetricQuery) -> Result<MetricSample>;

    /// The samples from `from` to `to`, oldest first (`query.lookback_secs` is
    /// ignored). Backends that keep no history answer
    /// [`crate::Error::NotSupported`] (the default);
    /// [`crate::metric_history::RecordingMetrics`] then serves the values it
    /// has seen.
    async fn history(
        &self,
        query: &MetricQuery,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<MetricSample>> {
        let _ = (from, to);
        Err(crate::Error::NotSupported {
            component: "metrics".into(),
            op: format!("history of {}", query.metric),
        })
    }
}
