//! Compute Engine REST calls (API v1) with reqwest: instances, firewalls and
//! the operations every mutating call returns.
//!
//! Each mutating call carries a `requestId` (the same on every retry, so the
//! API runs it at most once), is retried on 429/5xx with jittered exponential
//! backoff, and is followed by waiting on its operation until it is `DONE`;
//! a `DONE` operation with `error.errors[]` is a failure with its messages.
//! One deadline covers everything an action does.

use crate::credential::Credentials;
use infraai_core::{Error, FirewallChange, MachineType, Protocol, Result};
use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tracing::{debug, info, warn};

const COMPONENT: &str = "gcp-compute";

/// Retries of one HTTP call on 429 and 5xx answers and transport errors.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryConfig {
    /// Retries after the first attempt (default 4; 0 disables retrying).
    pub max_retries: u32,
    /// First backoff (default 500 ms); doubles each retry, jittered between
    /// half and all of it.
    #[serde(with = "millis")]
    pub initial_backoff: Duration,
    /// Longest single wait (default 30 s), also the cap on a `Retry-After`.
    #[serde(with = "millis")]
    pub max_backoff: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_retries: 4,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
        }
    }
}

mod millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

/// Where and how the Compute Engine API is called.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComputeConfig {
    /// Project id.
    pub project: String,
    /// Zone of the instances, e.g. `us-central1-a`.
    pub zone: String,
    /// API root (default `https://compute.googleapis.com/compute/v1`).
    pub base_url: String,
    /// Deadline of one whole action, waiting on its operations included
    /// (default 10 minutes).
    #[serde(with = "millis")]
    pub timeout: Duration,
    /// Limit of one HTTP request (default 150 s: `operations.wait` holds a
    /// request for up to about two minutes).
    #[serde(with = "millis")]
    pub request_timeout: Duration,
    /// Least time between two waits on an operation that is not `DONE`
    /// (default 2 s), so an early answer does not turn into a busy loop.
    #[serde(with = "millis")]
    pub poll_interval: Duration,
    /// Retries on 429/5xx.
    pub retry: RetryConfig,
}

impl ComputeConfig {
    /// The defaults for `project` and `zone`.
    pub fn new(project: impl Into<String>, zone: impl Into<String>) -> Self {
        Self {
            project: project.into(),
            zone: zone.into(),
            base_url: "https://compute.googleapis.com/compute/v1".into(),
            timeout: Duration::from_secs(600),
            request_timeout: Duration::from_secs(150),
            poll_interval: Duration::from_secs(2),
            retry: RetryConfig::default(),
        }
    }

    /// Same, with another API root (a test server, a private endpoint).
    pub fn with_base_url(mut self, base_url: impl Into<String>) -> Self {
        self.base_url = base_url.into();
        self
    }
}

/// One REST call, as a dry run lists it and a report records it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ApiCall {
    /// HTTP method.
    pub method: String,
    /// URL path, from the API root's path on (e.g.
    /// `/compute/v1/projects/p/zones/z/instances/web-1/reset`).
    pub path: String,
    /// JSON body, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    /// What the call is for.
    pub purpose: String,
}

impl fmt::Display for ApiCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, self.path)?;
        if let Some(body) = &self.body {
            write!(f, " {body}")?;
        }
        write!(f, " ({})", self.purpose)
    }
}

/// The fields of an instance the actions use.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instance {
    /// Name.
    pub name: String,
    /// Numeric id (a uint64 as a string).
    pub id: String,
    /// `RUNNING`, `TERMINATED`, `STOPPING`, …
    pub status: String,
    /// Machine type name (the last segment of the API's URL).
    pub machine_type: String,
    /// Zone name.
    pub zone: String,
}

/// A Compute Engine operation (zonal or global).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operation {
    /// Operation name, used to wait on it.
    pub name: String,
    /// `reset`, `stop`, `setMachineType`, `patch`, …
    pub operation_type: String,
    /// `PENDING`, `RUNNING` or `DONE`.
    pub status: String,
    /// The resource it changes (URL).
    pub target_link: String,
    /// The zone's name for zonal operations; `None` for global ones.
    pub zone: Option<String>,
    /// `code: message` of each error of a finished, failed operation.
    pub errors: Vec<String>,
    /// HTTP status the operation failed with, when it failed.
    pub http_error_status_code: Option<u16>,
}

/// Wire shapes (camelCase), private to this module.
mod wire {
    use serde::Deserialize;

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Instance {
        pub name: String,
        #[serde(default)]
        pub id: String,
        pub status: String,
        pub machine_type: String,
        #[serde(default)]
        pub zone: String,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Operation {
        pub name: String,
        #[serde(default)]
        pub operation_type: String,
        pub status: String,
        #[serde(default)]
        pub target_link: String,
        pub zone: Option<String>,
        pub error: Option<OperationErrors>,
        pub http_error_status_code: Option<u16>,
    }

    #[derive(Deserialize)]
    pub struct OperationErrors {
        #[serde(default)]
        pub errors: Vec<OperationError>,
    }

    #[derive(Deserialize)]
    pub struct OperationError {
        #[serde(default)]
        pub code: String,
        #[serde(default)]
        pub message: String,
    }
}

/// The last path segment of a resource URL (`…/machineTypes/e2-small` → `e2-small`).
fn last_segment(url: &str) -> &str {
    url.rsplit('/').next().unwrap_or(url)
}

impl From<wire::Operation> for Operation {
    fn from(o: wire::Operation) -> Self {
        Self {
            name: o.name,
            operation_type: o.operation_type,
            status: o.status,
            target_link: o.target_link,
            zone: o.zone.as_deref().map(|z| last_segment(z).to_string()),
            errors: o
                .error
                .map(|e| {
                    e.errors
                        .into_iter()
                        .map(|e| format!("{}: {}", e.code, e.message))
                        .collect()
                })
                .unwrap_or_default(),
            http_error_status_code: o.http_error_status_code,
        }
    }
}

/// A Compute Engine resource name: `[a-z]([-a-z0-9]{0,61}[a-z0-9])?`. Checked
/// before a name goes into a URL path, so no input can change the path.
pub fn check_resource_name(what: &str, name: &str) -> Result<()> {
    let b = name.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[b.len() - 1] != b'-';
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            what,
            format!(
                "{:?} is not a Compute Engine name ([a-z]([-a-z0-9]{{0,61}}[a-z0-9])?)",
                name.chars().take(80).collect::<String>()
            ),
        ))
    }
}

/// A project id (`my-project`, or domain-scoped `example.com:my-project`).
fn check_project(project: &str) -> Result<()> {
    let ok = !project.is_empty()
        && project.len() <= 100
        && project.bytes().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'-' | b'.' | b':')
        });
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "GCP project id",
            format!("{project:?} has characters a project id cannot have"),
        ))
    }
}

/// HTTP status of a failed call → core error kind, in one place.
fn status_error(status: StatusCode, body: &Value, what: &str) -> Error {
    let message = body["error"]["message"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| format!("HTTP {status}"));
    match status.as_u16() {
        400 => Error::invalid(what, message),
        401 => Error::Unauthenticated { detail: message },
        403 => Error::Forbidden { detail: message },
        404 => Error::not_found(format!("{what} ({message})")),
        409 | 412 => Error::conflict(what, message),
        s => Error::backend(
            COMPONENT,
            what.to_string(),
            s == 429 || s >= 500,
            format!("HTTP {status}: {message}"),
        ),
    }
}

/// A Compute Engine client for one project and zone.
pub struct ComputeEngine {
    config: ComputeConfig,
    /// The API root's URL path (`/compute/v1`), for dry-run listings.
    base_path: String,
    credentials: Arc<dyn Credentials>,
    http: reqwest::Client,
}

impl fmt::Debug for ComputeEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ComputeEngine")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Where a call goes and what it sends.
struct Call<'a> {
    method: Method,
    /// Path below the API root, starting with `/`.
    rest: String,
    body: Option<&'a Value>,
    /// For errors and logs: `instances.reset web-1`.
    what: String,
}

impl Call<'_> {
    /// A call without a body.
    fn new(method: Method, rest: String, what: String) -> Self {
        Self {
            method,
            rest,
            body: None,
            what,
        }
    }
}

impl ComputeEngine {
    /// A client for `config`'s project and zone, authenticating with
    /// `credentials`. Checks the project, zone and base URL.
    pub fn new(config: ComputeConfig, credentials: Arc<dyn Credentials>) -> Result<Self> {
        check_project(&config.project)?;
        check_resource_name("GCP zone", &config.zone)?;
        let url = reqwest::Url::parse(&config.base_url)
            .map_err(|e| Error::invalid("Compute Engine base URL", e.to_string()))?;
        let base_path = url.path().trim_end_matches('/').to_string();
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .build()
            .map_err(|e| Error::backend(COMPONENT, "client", false, e))?;
        Ok(Self {
            config,
            base_path,
            credentials,
            http,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ComputeConfig {
        &self.config
    }

    /// A deadline `config.timeout` from now, for the `*_by` methods.
    pub fn deadline(&self) -> Instant {
        Instant::now() + self.config.timeout
    }

    fn zone_path(&self) -> String {
        format!(
            "/projects/{}/zones/{}",
            self.config.project, self.config.zone
        )
    }

    fn instance_path(&self, name: &str) -> Result<String> {
        check_resource_name("instance name", name)?;
        Ok(format!("{}/instances/{name}", self.zone_path()))
    }

    fn firewall_path(&self, rule: &str) -> Result<String> {
        check_resource_name("firewall rule name", rule)?;
        Ok(format!(
            "/projects/{}/global/firewalls/{rule}",
            self.config.project
        ))
    }

    /// The listing of one call (path from the API root's path on).
    fn listed(&self, method: &str, rest: &str, body: Option<Value>, purpose: &str) -> ApiCall {
        ApiCall {
            method: method.into(),
            path: format!("{}{rest}", self.base_path),
            body,
            purpose: purpose.into(),
        }
    }

    /// `operations.wait` of an operation in `zone` (`None`: a global one).
    fn wait_path(&self, zone: Option<&str>, operation: &str) -> String {
        let project = &self.config.project;
        match zone {
            Some(zone) => format!("/projects/{project}/zones/{zone}/operations/{operation}/wait"),
            None => format!("/projects/{project}/global/operations/{operation}/wait"),
        }
    }

    fn wait_listing(&self, zonal: bool, of: &str) -> ApiCall {
        let rest = self.wait_path(zonal.then_some(self.config.zone.as_str()), "{operation}");
        let purpose = format!("wait until the {of} operation is DONE");
        self.listed("POST", &rest, None, &purpose)
    }

    /// One attempt: `Err` carries the failure and the server's `Retry-After`.
    async fn attempt(
        &self,
        call: &Call<'_>,
        url: &str,
        remaining: Duration,
    ) -> std::result::Result<Value, (Error, Option<Duration>)> {
        // A token endpoint that is briefly unavailable is retried like the API.
        let token = self.credentials.token().await.map_err(|e| (e, None))?;
        let mut request = self
            .http
            .request(call.method.clone(), url)
            .bearer_auth(token.expose())
            .timeout(remaining.min(self.config.request_timeout));
        if let Some(body) = call.body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| {
            let e = Error::backend(COMPONENT, call.what.clone(), true, e.without_url());
            (e, None)
        })?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            Ok(body)
        } else {
            Err((status_error(status, &body, &call.what), retry_after))
        }
    }

    /// Sends one call, retrying 429/5xx and transport failures with jittered
    /// exponential backoff until `retry.max_retries` or the deadline.
    async fn send(&self, call: Call<'_>, deadline: Instant) -> Result<Value> {
        let mut url = format!(
            "{}{}",
            self.config.base_url.trim_end_matches('/'),
            call.rest
        );
        if call.method != Method::GET && !call.rest.ends_with("/wait") {
            // The same id on every retry: the API performs the request once.
            url.push_str(&format!("?requestId={}", uuid::Uuid::now_v7()));
        }
        let retry = &self.config.retry;
        let mut attempt = 0u32;
        let mut last_failure = None;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                // Reached when a backoff sleep woke late, as on a loaded machine.
                return Err(self.out_of_time(&call, last_failure));
            }
            let (failure, retry_after) = match self.attempt(&call, &url, remaining).await {
                Ok(body) => return Ok(body),
                Err(failed) => failed,
            };
            if !failure.is_retryable() || attempt >= retry.max_retries {
                return Err(failure);
            }
            let exp = retry
                .initial_backoff
                .saturating_mul(1u32 << attempt.min(16))
                .min(retry.max_backoff);
            let jittered = exp.mul_f64(0.5 + fastrand::f64() * 0.5);
            let wait = retry_after.map_or(jittered, |r| r.min(retry.max_backoff));
            if Instant::now() + wait >= deadline {
                return Err(self.out_of_time(&call, Some(failure)));
            }
            attempt += 1;
            warn!(call = %call.what, attempt, wait_ms = wait.as_millis() as u64, error = %failure, "retrying a Compute Engine call");
            last_failure = Some(failure);
            tokio::time::sleep(wait).await;
        }
    }

    /// Out of time, with the last failure if the API had answered at all.
    fn out_of_time(&self, call: &Call<'_>, last_failure: Option<Error>) -> Error {
        let op = match last_failure {
            Some(failure) => format!("{} (last failure: {failure})", call.what),
            None => call.what.clone(),
        };
        Error::Timeout {
            component: COMPONENT.into(),
            op,
            after: self.config.timeout,
        }
    }

    /// `instances.get`.
    pub async fn get_instance(&self, name: &str) -> Result<Instance> {
        self.get_instance_by(name, self.deadline()).await
    }

    async fn get_instance_by(&self, name: &str, deadline: Instant) -> Result<Instance> {
        let call = Call::new(
            Method::GET,
            self.instance_path(name)?,
            format!("instance {name}"),
        );
        let v = self.send(call, deadline).await?;
        let i: wire::Instance = serde_json::from_value(v).map_err(|e| {
            Error::backend(
                COMPONENT,
                "instances.get",
                false,
                format!("unexpected instance: {e}"),
            )
        })?;
        Ok(Instance {
            machine_type: last_segment(&i.machine_type).to_string(),
            zone: last_segment(&i.zone).to_string(),
            name: i.name,
            id: i.id,
            status: i.status,
        })
    }

    /// `firewalls.get`, the raw resource.
    pub async fn get_firewall(&self, rule: &str) -> Result<Value> {
        let call = Call::new(
            Method::GET,
            self.firewall_path(rule)?,
            format!("firewall rule {rule}"),
        );
        self.send(call, self.deadline()).await
    }

    /// Sends a mutating call and waits for its operation to be `DONE`.
    async fn mutate(&self, call: Call<'_>, deadline: Instant) -> Result<Operation> {
        let what = call.what.clone();
        let v = self.send(call, deadline).await?;
        let op = parse_operation(v, &what)?;
        info!(operation = %op.name, kind = %op.operation_type, call = %what, "Compute Engine operation started");
        self.wait(op, deadline).await
    }

    /// Waits until `op` is `DONE` (`operations.wait`, looped: it answers
    /// after about two minutes even when the operation is still running);
    /// a finished operation with errors is an error carrying their messages.
    pub async fn wait(&self, mut op: Operation, deadline: Instant) -> Result<Operation> {
        loop {
            if op.status == "DONE" {
                if op.errors.is_empty() {
                    return Ok(op);
                }
                let code = op.http_error_status_code.unwrap_or(0);
                return Err(Error::backend(
                    COMPONENT,
                    format!("{} of {}", op.operation_type, last_segment(&op.target_link)),
                    code == 429 || code >= 500,
                    format!("operation {} failed: {}", op.name, op.errors.join("; ")),
                ));
            }
            if Instant::now() >= deadline {
                return Err(self.op_timeout(&op));
            }
            let rest = self.wait_path(op.zone.as_deref(), &op.name);
            check_resource_name("operation zone", op.zone.as_deref().unwrap_or("global"))?;
            if !op
                .name
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
            {
                return Err(Error::invalid("operation name", op.name.clone()));
            }
            let started = Instant::now();
            let call = Call::new(
                Method::POST,
                rest,
                format!("wait for operation {}", op.name),
            );
            let v = match self.send(call, deadline).await {
                Ok(v) => v,
                Err(Error::Timeout { .. }) => return Err(self.op_timeout(&op)),
                Err(e) => return Err(e),
            };
            op = parse_operation(v, "operations.wait")?;
            debug!(operation = %op.name, status = %op.status, "operation polled");
            if op.status != "DONE" {
                let pause = self.config.poll_interval.saturating_sub(started.elapsed());
                let remaining = deadline.saturating_duration_since(Instant::now());
                tokio::time::sleep(pause.min(remaining)).await;
            }
        }
    }

    fn op_timeout(&self, op: &Operation) -> Error {
        Error::Timeout {
            component: COMPONENT.into(),
            op: format!(
                "waiting for operation {} ({} of {}, last status {}; it may still finish)",
                op.name,
                op.operation_type,
                last_segment(&op.target_link),
                op.status
            ),
            after: self.config.timeout,
        }
    }

    async fn instance_op(&self, name: &str, verb: &str, deadline: Instant) -> Result<Operation> {
        let rest = format!("{}/{verb}", self.instance_path(name)?);
        let call = Call::new(Method::POST, rest, format!("instances.{verb} {name}"));
        self.mutate(call, deadline).await
    }

    /// `instances.reset` (a hard restart), waited on.
    pub async fn reset(&self, name: &str) -> Result<Operation> {
        self.instance_op(name, "reset", self.deadline()).await
    }

    /// The calls [`ComputeEngine::reset`] makes.
    pub fn reset_calls(&self, name: &str) -> Result<Vec<ApiCall>> {
        let rest = format!("{}/reset", self.instance_path(name)?);
        Ok(vec![
            self.listed("POST", &rest, None, &format!("hard-reset {name}")),
            self.wait_listing(true, "reset"),
        ])
    }

    fn machine_type_body(&self, machine_type: &MachineType) -> Value {
        json!({"machineType": format!("zones/{}/machineTypes/{machine_type}", self.config.zone)})
    }

    /// The calls [`ComputeEngine::change_machine_type`] makes on an instance
    /// that is running: stop, set, start, each waited on.
    pub fn change_machine_type_calls(
        &self,
        name: &str,
        machine_type: &MachineType,
    ) -> Result<Vec<ApiCall>> {
        let path = self.instance_path(name)?;
        let steps = [
            ("stop", None, format!("stop {name}")),
            (
                "setMachineType",
                Some(self.machine_type_body(machine_type)),
                format!("set {name}'s machine type to {machine_type}"),
            ),
            ("start", None, format!("start {name}")),
        ];
        Ok(steps
            .into_iter()
            .flat_map(|(verb, body, purpose)| {
                let call = self.listed("POST", &format!("{path}/{verb}"), body, &purpose);
                [call, self.wait_listing(true, verb)]
            })
            .collect())
    }

    /// Changes an instance's machine type: stop (when it is not stopped
    /// already), `setMachineType`, start again (when it was running), waiting
    /// on each operation. When `setMachineType` fails after the stop, the
    /// instance is started again with its old type and the error says so.
    pub async fn change_machine_type(
        &self,
        name: &str,
        machine_type: &MachineType,
    ) -> Result<MachineTypeChange> {
        let deadline = self.deadline();
        let before = self.get_instance_by(name, deadline).await?;
        if before.machine_type == machine_type.as_str() {
            return Ok(MachineTypeChange {
                from: before.machine_type,
                operations: vec![],
                was_running: before.status == "RUNNING",
            });
        }
        let was_stopped = before.status == "TERMINATED";
        let mut operations = Vec::new();
        if !was_stopped {
            operations.push(self.instance_op(name, "stop", deadline).await?);
        }
        let rest = format!("{}/setMachineType", self.instance_path(name)?);
        let body = self.machine_type_body(machine_type);
        let what = format!("instances.setMachineType {name} {machine_type}");
        let call = Call {
            body: Some(&body),
            ..Call::new(Method::POST, rest, what)
        };
        let set = self.mutate(call, deadline).await;
        match set {
            Ok(op) => operations.push(op),
            Err(e) if !was_stopped => {
                // Do not leave the service down because the resize failed.
                let restart = self.instance_op(name, "start", self.deadline()).await;
                let what = match restart {
                    Ok(_) => format!("{name} was started again as {}", before.machine_type),
                    Err(r) => format!("{name} could NOT be started again and is stopped: {r}"),
                };
                return Err(Error::backend(
                    COMPONENT,
                    format!("change machine type of {name}"),
                    e.is_retryable(),
                    format!("setMachineType to {machine_type} failed ({e}); {what}"),
                ));
            }
            Err(e) => return Err(e),
        }
        if !was_stopped {
            operations.push(self.instance_op(name, "start", deadline).await?);
        }
        Ok(MachineTypeChange {
            from: before.machine_type,
            operations,
            was_running: !was_stopped,
        })
    }

    /// The patch body for a firewall change: the rule's `allowed` (or
    /// `denied`) list becomes exactly this protocol and ports, and its source
    /// ranges exactly these.
    pub fn firewall_patch_body(change: &FirewallChange) -> Value {
        let protocol = match change.protocol {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        };
        let ports: Vec<String> = change.ports.iter().map(|p| p.to_string()).collect();
        let key = if change.allow { "allowed" } else { "denied" };
        json!({
            key: [{"IPProtocol": protocol, "ports": ports}],
            "sourceRanges": change.source_ranges.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
        })
    }

    /// The calls [`ComputeEngine::patch_firewall`] makes.
    pub fn patch_firewall_calls(&self, change: &FirewallChange) -> Result<Vec<ApiCall>> {
        let path = self.firewall_path(change.rule.as_str())?;
        Ok(vec![
            self.listed(
                "GET",
                &path,
                None,
                "read the rule (direction and action must match)",
            ),
            self.listed(
                "PATCH",
                &path,
                Some(Self::firewall_patch_body(change)),
                &format!("change rule {}", change.rule),
            ),
            self.wait_listing(false, "patch"),
        ])
    }

    /// `firewalls.patch` of an ingress rule, waited on. The rule must exist,
    /// be an ingress rule, and already be an allow (or deny) rule when the
    /// change allows (denies): the API cannot change a rule's direction or
    /// action. Returns the rule as it was and the operation.
    ///
    /// The caller checks the change against the guardrails first (see
    /// [`crate::GcpActions`]).
    pub async fn patch_firewall(&self, change: &FirewallChange) -> Result<(Value, Operation)> {
        let deadline = self.deadline();
        let rule = change.rule.as_str();
        let path = self.firewall_path(rule)?;
        let get = Call::new(Method::GET, path.clone(), format!("firewall rule {rule}"));
        let current = self.send(get, deadline).await?;
        check_rule_shape(&current, change)?;
        let body = Self::firewall_patch_body(change);
        let patch = Call {
            body: Some(&body),
            ..Call::new(Method::PATCH, path, format!("firewalls.patch {rule}"))
        };
        let op = self.mutate(patch, deadline).await?;
        Ok((current, op))
    }
}

/// The rule must be ingress and of the change's action.
pub(crate) fn check_rule_shape(current: &Value, change: &FirewallChange) -> Result<()> {
    let rule = change.rule.as_str();
    let direction = current["direction"].as_str().unwrap_or("INGRESS");
    if direction != "INGRESS" {
        return Err(Error::conflict(
            format!("firewall rule {rule}"),
            format!("it is an {direction} rule; only ingress rules are changed"),
        ));
    }
    let is_allow = current.get("allowed").is_some_and(|a| !a.is_null());
    if is_allow != change.allow {
        return Err(Error::conflict(
            format!("firewall rule {rule}"),
            format!(
                "it is {} rule and the change would make it {}; the API cannot change a rule's action (create a new rule instead)",
                if is_allow { "an allow" } else { "a deny" },
                if change.allow { "allow" } else { "deny" }
            ),
        ));
    }
    Ok(())
}

fn parse_operation(v: Value, what: &str) -> Result<Operation> {
    serde_json::from_value::<wire::Operation>(v)
        .map(Operation::from)
        .map_err(|e| {
            Error::backend(
                COMPONENT,
                what.to_string(),
                false,
                format!("expected an operation: {e}"),
            )
        })
}

/// What [`ComputeEngine::change_machine_type`] did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineTypeChange {
    /// The machine type before.
    pub from: String,
    /// The finished operations in order (empty when the instance already had
    /// the machine type).
    pub operations: Vec<Operation>,
    /// Whether it was running before (and so was stopped and started again).
    pub was_running: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_could_change_a_path_are_refused() {
        for bad in [
            "",
            "Web",
            "a/b",
            "../x",
            "web-",
            "1web",
            "a?b",
            &"a".repeat(64),
        ] {
            assert!(check_resource_name("n", bad).is_err(), "{bad:?}");
        }
        for good in ["a", "web-1", "allow-web-ingress", &"a".repeat(63)] {
            assert!(check_resource_name("n", good).is_ok(), "{good:?}");
        }
        assert!(check_project("demo-project").is_ok());
        assert!(check_project("example.com:p").is_ok());
        assert!(check_project("p/../../x").is_err());
    }

    #[test]
    fn urls_become_names() {
        assert_eq!(
            last_segment("https://x/projects/p/zones/z/machineTypes/e2-small"),
            "e2-small"
        );
    }
}
