//! The ports of infraai: every adapter implements one of these traits.
//!
//! All traits are object safe, `Send + Sync` and used as `Arc<dyn Trait>`.
//! They return [`crate::Error`], whose kinds say what failed and whether
//! retrying can help. Request structs are used where a method has more than
//! two inputs, so signatures can grow without breaking implementors.

use crate::domain::*;
use crate::{DeploymentId, IncidentId, Result, RunId};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
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
    /// The cloud's own machine type for a planned one (planners speak GCP's
    /// `e2-*` names; a cloud with its own sizes maps them here). Identity by
    /// default.
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
    /// `terraform plan` into a saved plan; returns the change set (the dry-run preview).
    async fn plan(&self, ws: &TfWorkspace, log: &dyn LogSink) -> Result<ChangeSet>;
    /// Applies exactly the saved plan, streaming events to `log`.
    async fn apply(&self, ws: &TfWorkspace, log: &dyn LogSink) -> Result<()>;
    /// `terraform output`.
    async fn output(&self, ws: &TfWorkspace) -> Result<BTreeMap<String, serde_json::Value>>;
    /// `terraform destroy`.
    async fn destroy(&self, ws: &TfWorkspace, log: &dyn LogSink) -> Result<()>;
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
}

impl InboundRequest {
    /// A header by (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
}

/// Where alerts come from (GCP webhook, Alertmanager, …).
#[cfg_attr(feature = "testing", mockall::automock)]
#[async_trait]
pub trait AlertSource: Send + Sync {
    /// Source name (`gcp`, `alertmanager`).
    fn name(&self) -> &str;
    /// Authenticates the request ([`crate::Error::Unauthenticated`] otherwise)
    /// and normalizes its payload into alerts.
    async fn receive(&self, request: &InboundRequest) -> Result<Vec<Alert>>;
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
}

impl ApprovalRequest {
    /// The facts a human needs to decide, one line each — policy, resource,
    /// metric = value (threshold), severity, suggested action, confidence and
    /// risk, reasoning, dry run, why a human is asked — with every untrusted
    /// piece passed through the channel's `escape`.
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

/// A channel through which humans approve, reject or stop the agent.
#[cfg_attr(feature = "testing", mockall::automock)]
#[async_trait]
pub trait Approver: Send + Sync {
    /// Channel name (`web`, `telegram`, `discord`).
    fn channel(&self) -> &str;
    /// Sends an approval request.
    async fn request_approval(&self, request: &ApprovalRequest) -> Result<()>;
    /// Sends a notification.
    async fn notify(&self, notification: &Notification) -> Result<()>;
    /// Authenticates an inbound request from the channel and parses the
    /// human commands it carries ([`crate::Error::Unauthenticated`] when the
    /// request is not from the channel). Requests that carry no command
    /// (a chat message that is not one) give an empty list.
    async fn parse_inbound(&self, request: &InboundRequest) -> Result<Vec<HumanReply>>;
    /// Tells the sender what their command did (answers the button press,
    /// edits the request message, replies in the chat).
    async fn acknowledge(&self, reply: &HumanReply, outcome: &str) -> Result<()>;
    /// Tells the sender, and only them, that their command was refused (not
    /// an allow-listed approver). Unlike [`Approver::acknowledge`] it must
    /// leave the request message and its buttons as they are, so a stranger
    /// cannot strip them. Defaults to [`Approver::acknowledge`], for channels
    /// whose acknowledgement is private anyway.
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

// ---------------------------------------------------------------- store

/// What recording an alert did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum IngestOutcome {
    /// A new incident was opened; it needs a decision.
    Opened,
    /// An open incident with the fingerprint was updated; no new decision.
    Repeated,
    /// A resolved alert closed the open incident.
    Resolved,
    /// A resolved alert arrived for no open incident (or one that is
    /// executing or executed — awaiting its re-check — whose feedback step
    /// decides), or an alert (firing or resolved) of an episode already
    /// resolved — the latest incident of its fingerprint is `resolved` and
    /// has the same `started_at`: a lagging repeat, an HA peer's late copy,
    /// the source's own late resolution. Then the incident is that one;
    /// nothing changed but the record.
    Noted,
}

impl IngestOutcome {
    /// The outcome's name as serialized (`opened`, `repeated`, `resolved`, `noted`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Opened => "opened",
            Self::Repeated => "repeated",
            Self::Resolved => "resolved",
            Self::Noted => "noted",
        }
    }
}

/// The audit record of an alert's ingest: `template` with the incident id and
/// the outcome (`opened`, `resolved`, `noted`) filled in; `None` for repeats
/// and for alerts without an incident (nothing to hang it on).
pub fn alert_audit(ingest: &AlertIngest, template: &AuditRecord) -> Option<AuditRecord> {
    let (incident, outcome) = alert_audit_subject(ingest)?;
    let mut record = template.clone().incident(incident);
    record.outcome = outcome.name().to_owned();
    Some(record)
}

/// The incident and outcome an alert's ingest is audited under (see
/// [`alert_audit`]), for a store that writes the template as it is.
pub fn alert_audit_subject(ingest: &AlertIngest) -> Option<(IncidentId, IngestOutcome)> {
    let incident = ingest.incident.as_ref()?;
    (ingest.outcome != IngestOutcome::Repeated).then_some((incident.id, ingest.outcome))
}

/// [`MetadataStore::incident_counts`] by listing every incident: for a store
/// with no cheaper way to count.
pub async fn count_by_listing<S: MetadataStore + ?Sized>(store: &S) -> Result<IncidentCounts> {
    Ok(IncidentCounts::of(
        &store.list_incidents(&IncidentQuery::default()).await?,
    ))
}

/// [`MetadataStore::record_alerts_audited`] one alert at a time in two steps,
/// for a store that cannot write an alert and its audit in one transaction:
/// the alert, then its audit. An audit that cannot be appended is logged, not
/// an error: the alert is recorded either way.
pub async fn record_then_audit<S: MetadataStore + ?Sized>(
    store: &S,
    batch: Vec<(Alert, AuditRecord)>,
) -> Result<Vec<AlertIngest>> {
    validate_alerts(&batch)?;
    let mut ingests = Vec::with_capacity(batch.len());
    for (alert, audit) in batch {
        let ingest = store.record_alert(&alert).await?;
        if let Some(record) = alert_audit(&ingest, &audit) {
            if let Err(e) = store.append_audit(&record).await {
                tracing::warn!(step = ?record.step, error = %e, "audit append failed");
            }
        }
        ingests.push(ingest);
    }
    Ok(ingests)
}

/// Validates every alert of a batch for [`MetadataStore::record_alerts_audited`],
/// so that a bad one rejects the batch before anything is recorded.
pub fn validate_alerts(batch: &[(Alert, AuditRecord)]) -> Result<()> {
    batch.iter().try_for_each(|(alert, _)| alert.validate())
}

/// Result of [`MetadataStore::incident_counts`]. Keys with a count of zero
/// are absent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IncidentCounts {
    /// Incidents by status.
    pub by_status: HashMap<IncidentStatus, u64>,
    /// Decided incidents by the kind of the recommended action.
    pub by_action: HashMap<ActionKind, u64>,
}

impl IncidentCounts {
    /// Counts `incidents`.
    pub fn of(incidents: &[Incident]) -> Self {
        let mut counts = Self::default();
        for i in incidents {
            *counts.by_status.entry(i.status).or_default() += 1;
            if let Some(d) = &i.decision {
                *counts
                    .by_action
                    .entry(d.recommended_action.kind())
                    .or_default() += 1;
            }
        }
        counts
    }
}

/// Result of [`MetadataStore::record_alert`].
#[derive(Clone, Debug, PartialEq)]
pub struct AlertIngest {
    /// What happened.
    pub outcome: IngestOutcome,
    /// The incident, when there is one.
    pub incident: Option<Incident>,
}

/// Result of [`MetadataStore::claim_execution`].
#[derive(Clone, Debug, PartialEq)]
pub enum Claim {
    /// This caller owns the execution; the incident is now `executing`.
    Claimed(Incident),
    /// The kill-switch is engaged; the incident is now `blocked`.
    Blocked(Incident),
    /// The incident is not `approved` or `auto` (already claimed, rejected, …).
    NotClaimable(Incident),
}

impl Claim {
    /// The claim a [`crate::lifecycle::claim`] step gives, with the incident
    /// as it is after the step.
    pub fn of(step: crate::lifecycle::ClaimStep, incident: Incident) -> Self {
        use crate::lifecycle::ClaimStep;
        match step {
            ClaimStep::Execute => Claim::Claimed(incident),
            ClaimStep::Block => Claim::Blocked(incident),
            ClaimStep::NotClaimable => Claim::NotClaimable(incident),
        }
    }
}

/// Result of [`MetadataStore::set_kill_switch`].
#[derive(Clone, Debug, PartialEq)]
pub struct KillSwitchChange {
    /// The new state.
    pub state: KillSwitch,
    /// Incidents moved to `blocked` (engage) or back to `pending` (release).
    pub affected: Vec<IncidentId>,
}

/// Which incidents to list (all conditions must hold).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct IncidentQuery {
    /// Only these statuses (all when empty).
    #[serde(default)]
    pub statuses: Vec<IncidentStatus>,
    /// Only this alert severity.
    #[serde(default)]
    pub severity: Option<Severity>,
    /// Only this resource.
    #[serde(default)]
    pub resource: Option<String>,
    /// At most this many, newest first.
    #[serde(default)]
    pub limit: Option<usize>,
}

impl IncidentQuery {
    /// Whether an incident matches (for stores that filter in memory).
    pub fn matches(&self, incident: &Incident) -> bool {
        (self.statuses.is_empty() || self.statuses.contains(&incident.status))
            && self.severity.is_none_or(|s| incident.alert.severity == s)
            && self
                .resource
                .as_ref()
                .is_none_or(|r| &incident.alert.resource == r)
    }
}

/// Which runs to list.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RunQuery {
    /// Only runs that produced this deployment.
    #[serde(default)]
    pub deployment_id: Option<DeploymentId>,
    /// At most this many, newest first.
    #[serde(default)]
    pub limit: Option<usize>,
}

/// The agent's memory. Every transition is atomic: implementations must make
/// the check and the write one transaction, so that concurrent callers (and
/// replicas) observe exactly-once behaviour. [`crate::testing::conformance`]
/// holds the scenarios every implementation must pass.
///
/// No method has a default body: a wrapper (such as a metrics decorator) that
/// forgot to forward one would otherwise fall back silently, e.g. to two
/// commits per alert instead of one. The fallbacks are functions to call
/// explicitly: [`count_by_listing`], [`record_then_audit`].
#[async_trait]
pub trait MetadataStore: Send + Sync {
    /// Backend name (`memory`, `sqlite`, `redis`, `postgres`).
    fn name(&self) -> &str;

    /// Inserts or replaces a run.
    async fn put_run(&self, run: &Run) -> Result<()>;
    /// A run by id.
    async fn get_run(&self, id: RunId) -> Result<Option<Run>>;
    /// Runs matching the query, newest first.
    async fn list_runs(&self, query: &RunQuery) -> Result<Vec<Run>>;

    /// Inserts or replaces a deployment.
    async fn put_deployment(&self, deployment: &Deployment) -> Result<()>;
    /// A deployment by id.
    async fn get_deployment(&self, id: DeploymentId) -> Result<Option<Deployment>>;
    /// All deployments, newest first.
    async fn list_deployments(&self) -> Result<Vec<Deployment>>;
    /// The newest deployment whose resource map holds `resource`.
    async fn find_deployment_by_resource(&self, resource: &str) -> Result<Option<Deployment>>;

    /// Records an alert, deduplicating by fingerprint among open incidents, in
    /// one transaction: exactly one of many concurrent firing alerts with a new
    /// fingerprint gets [`IngestOutcome::Opened`]. When this returns, the alert
    /// is durable (architecture rule 4).
    async fn record_alert(&self, alert: &Alert) -> Result<AlertIngest>;
    /// An incident by id.
    async fn get_incident(&self, id: IncidentId) -> Result<Option<Incident>>;
    /// Incidents, newest first.
    async fn list_incidents(&self, query: &IncidentQuery) -> Result<Vec<Incident>>;
    /// How many incidents there are by status, and decisions by action (the
    /// `/metrics` gauges). A store that cannot count without loading every
    /// incident can answer with [`count_by_listing`].
    async fn incident_counts(&self) -> Result<IncidentCounts>;
    /// Stores the one decision of a `new` incident and moves it to `to`.
    /// [`crate::Error::Conflict`] when the incident is no longer `new`.
    async fn record_decision(
        &self,
        id: IncidentId,
        decision: &OpsDecision,
        guardrail_notes: &[String],
        to: IncidentStatus,
    ) -> Result<Incident>;
    /// Moves an incident from one of `from` to `to` (compare-and-set), with an
    /// optional note. [`crate::Error::Conflict`] when its status is not in
    /// `from`; [`crate::Error::Invalid`] when the lifecycle does not allow the
    /// move ([`crate::lifecycle`]).
    async fn transition(
        &self,
        id: IncidentId,
        from: &[IncidentStatus],
        to: IncidentStatus,
        note: Option<&str>,
    ) -> Result<Incident>;
    /// Claims the execution of an `approved` or `auto` incident, reading the
    /// kill-switch in the same transaction (architecture rules 2 and 3).
    async fn claim_execution(&self, id: IncidentId) -> Result<Claim>;

    /// A named cursor (e.g. the Telegram `getUpdates` offset), if set.
    async fn get_cursor(&self, name: &str) -> Result<Option<i64>>;
    /// Sets a named cursor durably.
    async fn set_cursor(&self, name: &str, value: i64) -> Result<()>;

    /// Stores a human approval or rejection.
    async fn record_approval(&self, approval: &ApprovalRecord) -> Result<()>;
    /// Approvals of an incident, oldest first.
    async fn list_approvals(&self, id: IncidentId) -> Result<Vec<ApprovalRecord>>;
    /// Stores an action outcome.
    async fn record_action(&self, outcome: &ActionOutcome) -> Result<()>;
    /// Actions of an incident, oldest first.
    async fn list_actions(&self, id: IncidentId) -> Result<Vec<ActionOutcome>>;
    /// How many actions ran on `resource` since `since` (for the guardrails' budget).
    async fn count_actions_since(&self, resource: &str, since: DateTime<Utc>) -> Result<u64>;

    /// Appends an audit record (the log is append-only: there is no update or
    /// delete, and a record whose id is already stored is
    /// [`crate::Error::Conflict`], leaving the stored one unchanged).
    async fn append_audit(&self, record: &AuditRecord) -> Result<()>;
    /// Records alerts in order, each as [`MetadataStore::record_alert`] does,
    /// with its audit record ([`alert_audit`]: the template with the
    /// incident's id and the outcome filled in) for every outcome but
    /// [`IngestOutcome::Repeated`] that has an incident. Every alert is
    /// validated before any is recorded. A store that can writes the batch,
    /// audits included, in one transaction (all or none, one sync), or a
    /// large batch in a few, one after the other. One that cannot records
    /// the alerts one by one. Either stops at the first error; what was
    /// committed before it stays recorded, and a retry of the batch finds it
    /// deduplicated ([`record_then_audit`] records one by one with two
    /// writes per alert). When this returns, every alert is durable.
    async fn record_alerts_audited(
        &self,
        batch: Vec<(Alert, AuditRecord)>,
    ) -> Result<Vec<AlertIngest>>;
    /// Audit records, oldest first (the newest `limit` when a limit is set).
    async fn list_audit(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>>;

    /// Takes the job `key` for `owner` with a lease until `now + lease`: it
    /// is created when absent, and taken when nobody holds it or its
    /// holder's lease ended at or before `now`. `None` while any holder's
    /// lease runs — `owner` included, so one replica never runs a job twice.
    async fn claim_job(
        &self,
        key: &str,
        owner: &str,
        now: DateTime<Utc>,
        lease: std::time::Duration,
    ) -> Result<Option<Job>>;
    /// Takes up to `limit` jobs that nobody holds or whose lease ended at or
    /// before `now`, longest abandoned first, each as [`Self::claim_job`]
    /// would. Concurrent callers never get the same job.
    async fn claim_abandoned_jobs(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease: std::time::Duration,
        limit: usize,
    ) -> Result<Vec<Job>>;
    /// Extends `owner`'s lease on `key` to `now + lease`; `false` when
    /// `owner` no longer holds it (another replica took it after the lease
    /// ended, or it is finished).
    async fn renew_job(
        &self,
        key: &str,
        owner: &str,
        now: DateTime<Utc>,
        lease: std::time::Duration,
    ) -> Result<bool>;
    /// Ends `owner`'s hold on `key`: deletes the job when `finished`, else
    /// leaves it for another replica to take at once. `false` when `owner`
    /// did not hold it.
    async fn release_job(&self, key: &str, owner: &str, finished: bool) -> Result<bool>;

    /// The kill-switch state.
    async fn kill_switch(&self) -> Result<KillSwitch>;
    /// Engages or releases the kill-switch. Engaging moves every `pending`,
    /// `approved` and `auto` incident to `blocked`; releasing moves every
    /// `blocked` incident back to `pending` (a human must approve again). Both
    /// in the same transaction as the switch itself.
    async fn set_kill_switch(
        &self,
        engaged: bool,
        actor: &str,
        reason: Option<&str>,
    ) -> Result<KillSwitchChange>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ingest_outcome_names_are_their_serialized_form() {
        use IngestOutcome::*;
        for o in [Opened, Repeated, Resolved, Noted] {
            assert_eq!(serde_json::to_value(o).expect("serialize"), o.name());
        }
    }
}
