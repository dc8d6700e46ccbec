//! The HTTP API: routes, authentication, body limits, timeouts and handlers.

use crate::error::{problem, ApiError, ApiResult};
use crate::metrics::Metrics;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, MatchedPath, Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::stream::{self, Stream};
use infraai_core::*;
use infraai_discord::DiscordApprover;
use infraai_gcp::GcpWebhookSource;
use infraai_prometheus::{rules_file, AlertmanagerSource, PromQueries, ReceiverAuth};
use infraai_telegram::TelegramApprover;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;
use tokio::sync::{broadcast, watch};
use tracing::{info, warn};

/// Largest accepted request body, except on the alert webhooks.
pub const BODY_LIMIT: usize = 256 * 1024;
/// Largest accepted alert webhook body (`/ops/webhook`,
/// `/ops/webhook/alertmanager`): an Alertmanager notification carries every
/// alert of its group unless `max_alerts` is set, and a refused one is lost
/// (Alertmanager does not retry a 4xx).
pub const ALERT_BODY_LIMIT: usize = 4 * 1024 * 1024;
/// Longest accepted goal text.
pub const MAX_GOAL_CHARS: usize = 4000;
/// Header carrying the alert-webhook token (or query parameter `token`).
pub const WEBHOOK_TOKEN_HEADER: &str = "x-infraai-webhook-token";

/// Everything a handler needs, behind one `Arc`: every request clones it
/// (middleware and handler each), and that is one reference count, not one
/// per field.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    /// Wraps the shared parts.
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What [`AppState`] shares.
pub struct Shared {
    /// Deploy loop.
    pub deploy: Arc<DeployAgent>,
    /// Ops loop.
    pub ops: Arc<OpsAgent>,
    /// Store.
    pub store: Arc<dyn MetadataStore>,
    /// Action handler (previews).
    pub actions: Arc<dyn ActionHandler>,
    /// Telegram webhook channel.
    pub telegram: Option<Arc<TelegramApprover>>,
    /// Discord interactions channel.
    pub discord: Option<Arc<DiscordApprover>>,
    /// Operator bearer token.
    pub operator_token: Arc<str>,
    /// Operator name (`web:<name>`).
    pub operator_name: Arc<str>,
    /// Alert webhook token.
    pub webhook_token: Arc<str>,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Runs accepted by `/execute` and not yet finished.
    pub executing: Arc<Mutex<HashSet<RunId>>>,
    /// Flips to `true` at shutdown (ends event streams).
    pub shutdown: watch::Receiver<bool>,
    /// Per-request timeout.
    pub request_timeout: Duration,
    /// This replica's id (in every request's tracing span).
    pub replica_id: Arc<str>,
    /// Metric source (with history) for `GET /ops/alerts/{id}/series`.
    pub metric_source: Arc<dyn MetricSource>,
    /// PromQL of the cloud's metrics (for the exported alerting rules).
    pub prom_queries: Arc<PromQueries>,
    /// AWS SNS alarm notifications on `/ops/webhook`, when configured.
    pub sns: Option<Arc<infraai_aws::SnsAlertSource>>,
    /// New incidents to decide, in arrival order: a few workers
    /// ([`decision_workers`]) take them, so an alert flood queues ids (16
    /// bytes each) rather than spawning one large decision task per alert.
    pub decide: tokio::sync::mpsc::UnboundedSender<IncidentId>,
    /// Alert ingests in flight; the decision workers give way to them.
    pub ingesting: Arc<AtomicUsize>,
}

/// How many decision flows run at once.
pub const DECISION_WORKERS: usize = 4;

/// Longest a decision waits for alert ingest to pause (see
/// [`decision_workers`]).
pub const DECISION_YIELD_MAX: Duration = Duration::from_millis(250);

/// Starts the workers that decide queued new incidents; they stop when every
/// sender is gone. An incident still queued when the process stops is `new`
/// in the store, and [`OpsAgent::recover`] decides it at the next start.
///
/// Ingest comes first: while alerts are being received (`ingesting` > 0) a
/// worker waits up to [`DECISION_YIELD_MAX`] before its next decision, so an
/// alert flood is acknowledged at full speed (every alert is durable before
/// its 2xx) while decisions go on at no less than `DECISION_WORKERS /
/// DECISION_YIELD_MAX` (16/s), then at full speed once the flood ends.
pub fn decision_workers(
    ops: Arc<OpsAgent>,
    queue: tokio::sync::mpsc::UnboundedReceiver<IncidentId>,
    ingesting: Arc<AtomicUsize>,
) {
    let queue = Arc::new(tokio::sync::Mutex::new(queue));
    for _ in 0..DECISION_WORKERS {
        let (ops, queue, ingesting) = (ops.clone(), queue.clone(), ingesting.clone());
        tokio::spawn(async move {
            loop {
                let next = queue.lock().await.recv().await;
                let Some(id) = next else { break };
                let deadline = tokio::time::Instant::now() + DECISION_YIELD_MAX;
                while ingesting.load(Ordering::Relaxed) > 0
                    && tokio::time::Instant::now() < deadline
                {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                match ops.process(id).await {
                    Ok(i) => info!(incident_id = %id, status = %i.status, "incident processed"),
                    Err(e) => warn!(incident_id = %id, error = %e, "incident processing failed"),
                }
            }
        });
    }
}

/// Counts an alert ingest in flight while alive.
struct Ingesting<'a>(&'a AtomicUsize);

impl<'a> Ingesting<'a> {
    fn start(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Self(count)
    }
}

impl Drop for Ingesting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The router.
pub fn router(state: AppState) -> Router {
    let operator = Router::new()
        .route("/generate-graph", post(generate_graph))
        .route("/generate_terraform", post(generate_terraform))
        .route("/execute", post(execute))
        .route("/runs/{id}/status", get(run_status))
        .route("/runs/{id}/destroy", post(destroy_run))
        .route("/ops/alerts", get(list_alerts))
        .route("/ops/alerts/{id}", get(get_alert))
        .route("/ops/alerts/{id}/preview", get(preview))
        .route("/ops/alerts/{id}/series", get(series))
        .route("/runs/{id}", get(get_run))
        .route("/ops/alerts/{id}/approve", post(approve))
        .route("/ops/alerts/{id}/reject", post(reject))
        .route("/ops/prometheus/rules", get(prometheus_rules))
        .route("/ops/autonomy", get(autonomy))
        .route("/ops/autonomy/stop", post(stop_autonomy))
        .route("/ops/autonomy/resume", post(resume_autonomy))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            require_operator,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), timeout));
    // Event streams last as long as the run: no request timeout.
    let streams = Router::new()
        .route("/runs/{id}/events", get(run_events))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            require_operator,
        ));
    let public = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .route("/", get(dashboard))
        .route("/assets/app.js", get(dashboard_js))
        .route("/assets/style.css", get(dashboard_css))
        .route("/assets/views.js", get(dashboard_views_js))
        .route("/assets/vendor/codemirror.js", get(vendor_codemirror_js))
        .merge(
            // Inside the router's own limit, so this one applies here.
            Router::new()
                .route("/ops/webhook", post(alert_webhook))
                .route("/ops/webhook/alertmanager", post(alertmanager_webhook))
                .layer(DefaultBodyLimit::max(ALERT_BODY_LIMIT)),
        )
        .route("/ops/telegram", post(telegram_webhook))
        .route("/ops/discord", post(discord_interactions))
        .layer(middleware::from_fn_with_state(state.clone(), timeout));
    Router::new()
        .merge(operator)
        .merge(streams)
        .merge(public)
        .fallback(|| async { ApiError::not_found("no such route; see /openapi.json") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed on this route; see /openapi.json",
            )
        })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

// ------------------------------------------------------------ middleware

fn same(a: &str, b: &str) -> bool {
    !b.is_empty() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

async fn require_operator(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let (reason, detail) = match given {
        Some(t) if same(t, &s.operator_token) => return next.run(req).await,
        Some(_) => ("wrong operator token", "wrong operator token"),
        None => (
            "missing operator token",
            "missing operator token: send `Authorization: Bearer <token>` (printed at first start, stored in <data_dir>/operator-token)",
        ),
    };
    let mut refusal = AuthRefusal::from_origin("web", reason, &origin(&req));
    // Tag the incident a refused approve/reject named, so its trail shows it.
    refusal.incident_id = req
        .uri()
        .path()
        .strip_prefix("/ops/alerts/")
        .and_then(|rest| rest.split('/').next())
        .and_then(|id| id.parse().ok());
    s.ops.audit_auth_refusal(&refusal).await;
    ApiError::unauthorized(detail).into_response()
}

/// The route and peer of a request, for the audit of a refusal: the socket
/// peer when the server records it, and `X-Forwarded-For` (client-supplied,
/// so only informative) when present.
fn origin(req: &Request) -> RequestOrigin {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| req.uri().path().to_string());
    origin_of(
        req.method().as_str(),
        &route,
        req.headers(),
        req.extensions(),
    )
}

fn origin_of(
    method: &str,
    route: &str,
    headers: &HeaderMap,
    extensions: &axum::http::Extensions,
) -> RequestOrigin {
    let peer = extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.to_string());
    let forwarded = headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .map(|v| format!("forwarded-for {v}"));
    let remote = match (peer, forwarded) {
        (Some(p), Some(f)) => Some(format!("{p} ({f})")),
        (p, f) => p.or(f),
    };
    RequestOrigin {
        route: Some(format!("{method} {route}")),
        remote,
    }
}

async fn timeout(State(s): State<AppState>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(s.request_timeout, next.run(req)).await {
        Ok(r) => r,
        Err(_) => problem(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!(
                "the request did not finish within {}s",
                s.request_timeout.as_secs()
            ),
        ),
    }
}

async fn observe(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    // Both are cheap clones (a known method, an `Arc<str>`).
    let method = req.method().clone();
    let route = req.extensions().get::<MatchedPath>().cloned();
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    // Every log line of the request names the replica that served it.
    let span = tracing::info_span!("request", replica = %s.replica_id, %method, %route);
    let resp = tracing::Instrument::instrument(next.run(req), span.clone()).await;
    let status = resp.status();
    s.metrics.request(
        method.as_str(),
        route,
        status.as_str(),
        started.elapsed().as_secs_f64(),
    );
    span.in_scope(|| tracing::debug!(status = status.as_u16(), "request"));
    resp
}

// ------------------------------------------------------------ input helpers

fn body(b: Result<Bytes, BytesRejection>) -> ApiResult<Bytes> {
    body_within(b, BODY_LIMIT)
}

/// [`body`] on a route whose limit is `limit` bytes (for the message).
fn body_within(b: Result<Bytes, BytesRejection>, limit: usize) -> ApiResult<Bytes> {
    b.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body is larger than {} KiB", limit / 1024),
            )
        } else {
            ApiError::bad_request(format!("could not read the request body: {e}"))
        }
    })
}

fn parse<T: DeserializeOwned>(b: &[u8]) -> ApiResult<T> {
    if b.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "request body is empty; a JSON object is expected",
        ));
    }
    serde_json::from_slice(b).map_err(|e| {
        use serde_json::error::Category;
        match e.classify() {
            Category::Data => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("invalid request: {e}"),
            ),
            _ => ApiError::bad_request(format!("malformed JSON: {e}")),
        }
    })
}

/// Optional JSON body: empty means the default.
fn parse_opt<T: DeserializeOwned + Default>(b: &[u8]) -> ApiResult<T> {
    if b.iter().all(u8::is_ascii_whitespace) {
        Ok(T::default())
    } else {
        parse(b)
    }
}

/// A channel's error for a request it authenticated: a body that is not JSON
/// at all is the client's malformed JSON (400, like every other route), not
/// a payload of the wrong shape (422). Other errors map as usual.
fn channel_error(raw: &[u8], e: Error) -> ApiError {
    if matches!(e, Error::Invalid { .. }) {
        if let Err(j) = serde_json::from_slice::<serde::de::IgnoredAny>(raw) {
            if j.classify() != serde_json::error::Category::Data {
                return ApiError::bad_request(format!("malformed JSON: {j}"));
            }
        }
    }
    e.into()
}

fn run_id(s: &str) -> ApiResult<RunId> {
    s.parse()
        .map_err(|_| ApiError::bad_request(format!("{s:?} is not a run id (a UUID)")))
}

fn incident_id(s: &str) -> ApiResult<IncidentId> {
    s.parse()
        .map_err(|_| ApiError::bad_request(format!("{s:?} is not an incident id (a UUID)")))
}

async fn load_run(s: &AppState, id: RunId) -> ApiResult<Run> {
    s.store
        .get_run(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("run {id} not found")))
}

async fn load_incident(s: &AppState, id: IncidentId) -> ApiResult<Incident> {
    s.store
        .get_incident(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("incident {id} not found")))
}

fn inbound(headers: &HeaderMap, query: BTreeMap<String, String>, body: Bytes) -> InboundRequest {
    InboundRequest {
        headers: headers
            .iter()
            .filter_map(|(k, v)| {
                Some((
                    k.as_str().to_ascii_lowercase(),
                    v.to_str().ok()?.to_string(),
                ))
            })
            .collect(),
        query,
        body: body.to_vec(),
    }
}

fn operator(s: &AppState) -> Actor {
    let mut a = Actor::new("web", s.operator_name.to_string());
    a.name = Some(s.operator_name.to_string());
    a
}

// ------------------------------------------------------------ deploy

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GoalBody {
    goal: String,
}

/// The plan as a graph: resources and monitoring policies as nodes;
/// `depends_on` and policy → resource as edges.
pub fn graph(plan: &InfraPlan) -> Value {
    let mut nodes = Vec::new();
    let mut edges = Vec::new();
    for r in &plan.resources {
        nodes.push(json!({
            "id": format!("resource:{}", r.name),
            "type": "resource",
            "label": r.name.to_string(),
            "kind": r.kind,
            "resource_type": r.resource_type,
            "machine_type": r.machine_type,
            "count": r.count,
            "description": r.description,
        }));
        for d in &r.depends_on {
            edges.push(json!({"from": format!("resource:{}", r.name), "to": format!("resource:{d}"), "type": "depends_on"}));
        }
    }
    for m in &plan.monitoring {
        let id = format!("policy:{}:{}", m.resource_ref, m.metric_name);
        nodes.push(json!({
            "id": id,
            "type": "monitoring_policy",
            "label": m.metric_name,
            "metric": m.metric_path,
            "threshold": m.threshold,
            "comparison": m.comparison,
            "duration_secs": m.duration_secs,
            "severity": m.severity,
        }));
        edges.push(
            json!({"from": id, "to": format!("resource:{}", m.resource_ref), "type": "monitors"}),
        );
    }
    json!({"nodes": nodes, "edges": edges})
}

async fn generate_graph(
    State(s): State<AppState>,
    b: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let req: GoalBody = parse(&body(b)?)?;
    let goal = req.goal.trim();
    if goal.is_empty() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "goal is empty",
        ));
    }
    if goal.chars().count() > MAX_GOAL_CHARS {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("goal is longer than {MAX_GOAL_CHARS} characters"),
        ));
    }
    let run = s.deploy.plan(goal).await?;
    let plan = run.plan.as_ref().ok_or_else(|| {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "planned run has no plan")
    })?;
    info!(run_id = %run.id, "run planned over the API");
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "run_id": run.id,
            "summary": plan.summary,
            "plan": plan,
            "graph": graph(plan),
        })),
    )
        .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RunRef {
    run_id: String,
}

async fn generate_terraform(
    State(s): State<AppState>,
    b: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let req: RunRef = parse(&body(b)?)?;
    let run = load_run(&s, run_id(&req.run_id)?).await?;
    let files = run
        .files
        .ok_or_else(|| ApiError::conflict(format!("run {} has no Terraform files", run.id)))?;
    Ok(Json(json!({"run_id": run.id, "files": files.files})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExecuteBody {
    run_id: String,
    dry_run: bool,
}

async fn execute(
    State(s): State<AppState>,
    b: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let req: ExecuteBody = parse(&body(b)?)?;
    let id = run_id(&req.run_id)?;
    let run = load_run(&s, id).await?;
    let startable =
        run.phase == RunPhase::Starting || (run.phase == RunPhase::Completed && run.dry_run);
    if !startable {
        return Err(ApiError::conflict(format!(
            "run {id} is {} and cannot be executed again; plan a new run",
            run.phase
        )));
    }
    // A run that just finished (its terminal phase is already stored and
    // streamed) leaves the executing set a moment later: wait for that
    // rather than refuse a client that re-executes at once.
    let mut tries = 0;
    while !s
        .executing
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(id)
    {
        tries += 1;
        if tries > 40 || !load_run(&s, id).await?.phase.is_terminal() {
            return Err(ApiError::conflict(format!("run {id} is already executing")));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (deploy, executing, dry_run) = (s.deploy.clone(), s.executing.clone(), req.dry_run);
    tokio::spawn(async move {
        match deploy.execute(id, dry_run).await {
            Ok(run) => info!(run_id = %id, phase = %run.phase, "run finished"),
            Err(e) => warn!(run_id = %id, error = %e, "run could not execute"),
        }
        executing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
    });
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "run_id": id,
            "dry_run": dry_run,
            "status_url": format!("/runs/{id}/status"),
            "events_url": format!("/runs/{id}/events"),
        })),
    )
        .into_response())
}

async fn run_status(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let run = load_run(&s, run_id(&id)?).await?;
    Ok(Json(json!({
        "run_id": run.id,
        "goal": run.goal,
        "phase": run.phase,
        "dry_run": run.dry_run,
        "history": run.history,
        "fix_attempts": run.fix_attempts,
        "diagnostics": run.diagnostics,
        "change_set": run.change_set,
        "verification": run.verification,
        "outputs": run.outputs,
        "deployment_id": run.deployment_id,
        "error": run.error,
        "apply_diagnoses": run.apply_diagnoses,
        "resources": run.resources,
        "cleanup": run.cleanup,
        "created_at": run.created_at,
        "updated_at": run.updated_at,
    })))
}

/// Body of `POST /runs/{id}/destroy`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DestroyBody {
    #[serde(default = "preview_by_default")]
    dry_run: bool,
    /// The preview being approved; required to execute.
    #[serde(default)]
    change_set: Option<ChangeSet>,
}

fn preview_by_default() -> bool {
    true
}

impl Default for DestroyBody {
    fn default() -> Self {
        Self {
            dry_run: true,
            change_set: None,
        }
    }
}

/// "Destroy what this run created": a preview by default; executing needs
/// the previewed change set, and destroys exactly it.
async fn destroy_run(
    State(s): State<AppState>,
    Path(id): Path<String>,
    b: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let id = run_id(&id)?;
    let req: DestroyBody = parse_opt(&body(b)?)?;
    // A run that just finished leaves the executing set a moment after its
    // terminal phase is streamed: wait for that rather than refuse.
    let mut tries = 0;
    while s
        .executing
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .contains(&id)
    {
        tries += 1;
        if tries > 40 || !load_run(&s, id).await?.phase.is_terminal() {
            return Err(ApiError::conflict(format!("run {id} is executing")));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    load_run(&s, id).await?;
    if req.dry_run {
        let p = s.deploy.preview_destroy(id).await?;
        return Ok(Json(json!({
            "run_id": id,
            "dry_run": true,
            "summary": p.change_set.summary(),
            "resources": p.resources,
            "change_set": p.change_set,
        })));
    }
    let Some(approved) = req.change_set else {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "executing a destroy needs the previewed change_set (POST with dry_run: true first)",
        ));
    };
    let actor = format!("web:{}", s.operator_name);
    let run = s.deploy.destroy(id, Some(&approved), &actor).await?;
    info!(run_id = %id, actor, "run resources destroyed over the API");
    Ok(Json(json!({
        "run_id": id,
        "dry_run": false,
        "cleanup": run.cleanup,
        "resources": run.resources,
    })))
}

struct EventStream {
    run_id: RunId,
    pending: VecDeque<RunEvent>,
    rx: broadcast::Receiver<RunEvent>,
    shutdown: watch::Receiver<bool>,
    done: bool,
}

fn sse_event(ev: &RunEvent) -> Event {
    let name = match ev {
        RunEvent::Phase { .. } => "phase",
        RunEvent::Log { .. } => "log",
    };
    Event::default()
        .event(name)
        .data(serde_json::to_string(ev).unwrap_or_else(|_| "{}".into()))
}

async fn run_events(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let id = run_id(&id)?;
    let run = load_run(&s, id).await?;
    let (backlog, rx) = s.deploy.events().subscribe(id);
    let executing = s
        .executing
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .contains(&id);
    // A dry-run run can be executed again: its backlog then holds more than
    // one execution. Stream only the current one (or the last finished one).
    let ends: Vec<usize> = backlog
        .iter()
        .enumerate()
        .filter(|(_, e)| matches!(e, RunEvent::Phase { phase, .. } if phase.is_terminal()))
        .map(|(i, _)| i)
        .collect();
    let from = if executing || !run.phase.is_terminal() {
        ends.last().map_or(0, |i| i + 1)
    } else if ends.len() >= 2 {
        ends[ends.len() - 2] + 1
    } else {
        0
    };
    let mut pending: VecDeque<RunEvent> = backlog.into_iter().skip(from).collect();
    // A run that ended before this process saw it (restart, evicted backlog):
    // say how it ended and close.
    let backlog_ends = pending
        .iter()
        .any(|e| matches!(e, RunEvent::Phase { phase, .. } if phase.is_terminal()));
    if run.phase.is_terminal() && !backlog_ends && !executing {
        pending.push_back(RunEvent::Phase {
            run_id: id,
            phase: run.phase,
            note: run.error.clone(),
            at: run.updated_at,
        });
    }
    let state = EventStream {
        run_id: id,
        pending,
        rx,
        shutdown: s.shutdown.clone(),
        done: false,
    };
    let stream = stream::unfold(state, |mut st| async move {
        if st.done || *st.shutdown.borrow() {
            return None;
        }
        let ev = match st.pending.pop_front() {
            Some(ev) => ev,
            None => loop {
                tokio::select! {
                    r = st.rx.recv() => match r {
                        Ok(ev) if ev.run_id() == st.run_id => break ev,
                        Ok(_) => continue,
                        Err(broadcast::error::RecvError::Lagged(n)) => {
                            let e = Event::default().event("lagged").data(format!("{{\"missed\":{n}}}"));
                            return Some((Ok(e), st));
                        }
                        Err(broadcast::error::RecvError::Closed) => return None,
                    },
                    _ = st.shutdown.changed() => return None,
                }
            },
        };
        if matches!(&ev, RunEvent::Phase { phase, .. } if phase.is_terminal()) {
            st.done = true;
        }
        Some((Ok(sse_event(&ev)), st))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

// ------------------------------------------------------------ ops: inbound

/// Checks the alert-webhook token: `X-Infraai-Webhook-Token` (or
/// `X-Infraai-Token`), `?token=`, or `Authorization: Bearer`.
fn check_webhook_token(
    s: &AppState,
    headers: &HeaderMap,
    query: &BTreeMap<String, String>,
) -> ApiResult<()> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let given = headers
        .get(WEBHOOK_TOKEN_HEADER)
        .or_else(|| headers.get("x-infraai-token"))
        .and_then(|v| v.to_str().ok())
        .or(query.get("token").map(String::as_str))
        .or(bearer);
    match given {
        Some(t) if same(t, &s.webhook_token) => Ok(()),
        Some(_) => Err(ApiError::unauthorized("wrong webhook token")),
        None => Err(ApiError::unauthorized(format!(
            "missing webhook token: send header {WEBHOOK_TOKEN_HEADER}, Authorization: Bearer, or query parameter token"
        ))),
    }
}

fn alertmanager_alerts(raw: &[u8]) -> ApiResult<Vec<Alert>> {
    // The server authenticated the request; the source only normalizes.
    static SOURCE: std::sync::LazyLock<AlertmanagerSource> = std::sync::LazyLock::new(|| {
        AlertmanagerSource::new(ReceiverAuth::Bearer(Secret::new(String::new())))
    });
    Ok(SOURCE.normalize(raw)?)
}

async fn alert_webhook(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<BTreeMap<String, String>>,
    b: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Accepted>> {
    check_webhook_token(&s, &headers, &query)?;
    let raw = body_within(b, ALERT_BODY_LIMIT)?;
    let value: Value = parse(&raw)?;
    // Authenticated above; the sources only normalize (SNS also verifies the
    // message signature: the subscription is confirmed only when it holds).
    let alerts: Vec<Alert> = if headers.contains_key("x-amz-sns-message-type")
        || ["Type", "TopicArn", "Signature"]
            .iter()
            .all(|k| value.get(k).is_some())
    {
        let Some(sns) = &s.sns else {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "AWS SNS messages are not accepted here: run with INFRAAI_CLOUD=aws and INFRAAI_AWS_ACCOUNT_ID",
            ));
        };
        let alerts = sns.receive(&inbound(&headers, query, raw)).await?;
        if alerts.is_empty() {
            // Subscription confirmations and OK-less states: handled, nothing to record.
            return Ok(Json(Accepted::nothing(
                "SNS message handled; no alert in it",
            )));
        }
        alerts
    } else if value.get("incident").is_some() {
        // A Cloud Monitoring notification (schema 1.2).
        let alerts: Vec<Alert> = GcpWebhookSource::normalize(&raw)?.into_iter().collect();
        if alerts.is_empty() {
            // Console test notifications carry placeholders: acknowledge, record nothing.
            return Ok(Json(Accepted::nothing("test notification ignored")));
        }
        alerts
    } else if value.get("alerts").is_some() && value.get("receiver").is_some() {
        // An Alertmanager webhook (version 4).
        alertmanager_alerts(&raw)?
    } else {
        match value {
            Value::Array(_) => serde_json::from_value(value),
            v => serde_json::from_value(v).map(|a| vec![a]),
        }
        .map_err(|e| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("invalid alert: {e}"),
            )
        })?
    };
    ingest(&s, alerts).await
}

/// Alertmanager's webhook receiver (payload version 4) only; the same token
/// as `/ops/webhook` (`http_config.authorization` sends it as a bearer).
async fn alertmanager_webhook(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<BTreeMap<String, String>>,
    b: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Accepted>> {
    check_webhook_token(&s, &headers, &query)?;
    let raw = body_within(b, ALERT_BODY_LIMIT)?;
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "request body is empty; an Alertmanager webhook (version 4) is expected",
        ));
    }
    match alertmanager_alerts(&raw) {
        Ok(alerts) => ingest(&s, alerts).await,
        Err(e) => {
            // Not JSON at all: 400 like every route; a wrong shape stays 422.
            let _: serde::de::IgnoredAny = parse(&raw)?;
            Err(e)
        }
    }
}

/// Records every alert (validated first, so a bad batch records nothing),
/// answers only after they are committed, and decides new incidents in the
/// background.
async fn ingest(s: &AppState, alerts: Vec<Alert>) -> ApiResult<Json<Accepted>> {
    if alerts.is_empty() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "no alerts in the body",
        ));
    }
    let _ingesting = Ingesting::start(&s.ingesting);
    let fingerprints: Vec<String> = alerts.iter().map(|a| a.fingerprint.clone()).collect();
    // All validated before any is recorded, then committed together where the
    // store can (SQLite: one transaction, one sync for the whole webhook).
    let ingests = s.ops.record_alerts(alerts).await?;
    let results: Vec<Ingested> = fingerprints
        .into_iter()
        .zip(ingests)
        .map(|(fingerprint, ingest)| {
            s.metrics.alert(ingest.outcome.name());
            Ingested {
                fingerprint,
                outcome: ingest.outcome,
                incident_id: ingest.incident.map(|i| i.id),
            }
        })
        .collect();
    // Durable now: decide in the background and acknowledge.
    for r in &results {
        if let (IngestOutcome::Opened, Some(id)) = (r.outcome, r.incident_id) {
            if s.decide.send(id).is_err() {
                warn!(incident_id = %id, "decision queue closed; the next start decides it");
            }
        }
    }
    Ok(Json(Accepted {
        accepted: results.len(),
        results,
        note: None,
    }))
}

/// The answer to an alert webhook: what recording each alert did.
#[derive(Serialize)]
struct Accepted {
    accepted: usize,
    results: Vec<Ingested>,
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<&'static str>,
}

impl Accepted {
    /// A webhook handled with no alert to record, and why.
    fn nothing(note: &'static str) -> Self {
        Self {
            accepted: 0,
            results: Vec::new(),
            note: Some(note),
        }
    }
}

/// One alert's entry in [`Accepted`].
#[derive(Serialize)]
struct Ingested {
    fingerprint: String,
    outcome: IngestOutcome,
    incident_id: Option<IncidentId>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesQuery {
    deployment_id: Option<String>,
}

/// A query string's parameters; one that does not parse is a 400.
fn query<T>(q: Result<Query<T>, axum::extract::rejection::QueryRejection>) -> ApiResult<T> {
    q.map(|Query(q)| q)
        .map_err(|e| ApiError::bad_request(format!("invalid query: {e}")))
}

/// A count parameter: `default` when absent, otherwise 1 to `max` or a 400.
fn bounded(name: &str, value: Option<usize>, default: usize, max: usize) -> ApiResult<usize> {
    match value.unwrap_or(default) {
        n @ 1.. if n <= max => Ok(n),
        _ => Err(ApiError::bad_request(format!("{name} must be 1–{max}"))),
    }
}

/// The deployments' monitoring policies as Prometheus alerting rules (JSON,
/// which Prometheus reads as YAML): one group per deployment.
async fn prometheus_rules(
    State(s): State<AppState>,
    q: Result<Query<RulesQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Value>> {
    let q = query(q)?;
    let deployments = match &q.deployment_id {
        Some(id) => {
            let id: DeploymentId = id.parse().map_err(|_| {
                ApiError::bad_request(format!("{id:?} is not a deployment id (a UUID)"))
            })?;
            vec![s
                .store
                .get_deployment(id)
                .await?
                .ok_or_else(|| ApiError::not_found(format!("deployment {id} not found")))?]
        }
        None => s.store.list_deployments().await?,
    };
    let mut groups = Vec::new();
    for d in &deployments {
        let file: Value = serde_json::from_str(&rules_file(d, &s.prom_queries)?).map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("rules file: {e}"),
            )
        })?;
        if let Some(g) = file["groups"].as_array() {
            groups.extend(g.iter().cloned());
        }
    }
    Ok(Json(json!({"groups": groups})))
}

async fn telegram_webhook(
    State(s): State<AppState>,
    headers: HeaderMap,
    extensions: axum::http::Extensions,
    Query(query): Query<BTreeMap<String, String>>,
    b: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let Some(tg) = s.telegram.clone() else {
        return Err(ApiError::not_found(
            "Telegram is not configured (INFRAAI_TELEGRAM_BOT_TOKEN, INFRAAI_TELEGRAM_CHAT_ID, INFRAAI_TELEGRAM_WEBHOOK_SECRET)",
        ));
    };
    let origin = origin_of("POST", "/ops/telegram", &headers, &extensions);
    let req = inbound(&headers, query, body(b)?);
    let results = s
        .ops
        .handle_inbound_from(tg.as_ref(), &req, &origin)
        .await
        .map_err(|e| channel_error(&req.body, e))?;
    for r in &results {
        s.metrics
            .approval("telegram", matches!(r, Ok(o) if o.effective));
    }
    Ok(Json(json!({"ok": true, "commands": results.len()})))
}

async fn discord_interactions(
    State(s): State<AppState>,
    headers: HeaderMap,
    extensions: axum::http::Extensions,
    Query(query): Query<BTreeMap<String, String>>,
    b: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let Some(dc) = s.discord.clone() else {
        return Err(ApiError::not_found(
            "Discord is not configured (INFRAAI_DISCORD_PUBLIC_KEY, INFRAAI_DISCORD_BOT_TOKEN, INFRAAI_DISCORD_CHANNEL_ID)",
        ));
    };
    let origin = origin_of("POST", "/ops/discord", &headers, &extensions);
    let req = inbound(&headers, query, body(b)?);
    let answer = dc
        .handle_interaction_from(&s.ops, &req, &origin)
        .await
        .map_err(|e| channel_error(&req.body, e))?;
    Ok(Json(answer))
}

// ------------------------------------------------------------ ops: operator

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertsQuery {
    status: Option<String>,
    severity: Option<String>,
    resource: Option<String>,
    limit: Option<usize>,
}

async fn list_alerts(
    State(s): State<AppState>,
    q: Result<Query<AlertsQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Value>> {
    let q = query(q)?;
    let mut statuses = Vec::new();
    for st in q
        .status
        .iter()
        .flat_map(|s| s.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let status: IncidentStatus = serde_json::from_value(Value::String(st.into())).map_err(|_| {
            ApiError::bad_request(format!(
                "unknown status {st:?}; one of new, pending, approved, rejected, expired, auto, blocked, executing, executed, resolved, unresolved, escalated, ignored"
            ))
        })?;
        statuses.push(status);
    }
    let severity = match &q.severity {
        Some(v) => Some(
            serde_json::from_value::<Severity>(Value::String(v.clone()))
                .map_err(|_| ApiError::bad_request(format!("unknown severity {v:?}")))?,
        ),
        None => None,
    };
    let limit = bounded("limit", q.limit, 100, 1000)?;
    let incidents = s
        .store
        .list_incidents(&IncidentQuery {
            statuses,
            severity,
            resource: q.resource,
            limit: Some(limit),
        })
        .await?;
    Ok(Json(json!({"incidents": incidents})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertQuery {
    audit_limit: Option<usize>,
}

/// How many audit records an incident's view shows by default (the newest).
const AUDIT_SHOWN: usize = 200;

/// The most audit records an incident's view can ask for.
const AUDIT_SHOWN_MAX: usize = 10_000;

async fn get_alert(
    State(s): State<AppState>,
    Path(id): Path<String>,
    q: Result<Query<AlertQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Value>> {
    let q = query(q)?;
    let limit = bounded("audit_limit", q.audit_limit, AUDIT_SHOWN, AUDIT_SHOWN_MAX)?;
    let incident = load_incident(&s, incident_id(&id)?).await?;
    let approvals = s.store.list_approvals(incident.id).await?;
    let actions = s.store.list_actions(incident.id).await?;
    // One more than shown tells whether older records were left out.
    let mut audit = s
        .store
        .list_audit(&AuditQuery {
            incident_id: Some(incident.id),
            run_id: None,
            limit: Some(limit + 1),
        })
        .await?;
    let audit_truncated = audit.len() > limit;
    if audit_truncated {
        audit.remove(0);
    }
    let d = incident.decision.as_ref();
    Ok(Json(json!({
        "decision": d,
        "reasoning": d.map(|d| &d.reasoning),
        "confidence": d.map(|d| d.confidence),
        "action": d.map(|d| d.recommended_action.describe()),
        "guardrail_notes": incident.guardrail_notes,
        "approvals": approvals,
        "actions": actions,
        "audit": audit,
        "audit_truncated": audit_truncated,
        "incident": incident,
    })))
}

async fn preview(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let incident = load_incident(&s, incident_id(&id)?).await?;
    let Some(decision) = &incident.decision else {
        return Err(ApiError::conflict(format!(
            "incident {} has no decision yet",
            incident.id
        )));
    };
    if matches!(
        decision.recommended_action,
        Action::Ignore {} | Action::Escalate {}
    ) {
        return Err(ApiError::conflict(format!(
            "incident {} proposes no action to preview ({})",
            incident.id,
            decision.recommended_action.describe()
        )));
    }
    let request = ActionRequest {
        incident_id: incident.id,
        deployment_id: incident.deployment_id,
        resource: incident.alert.resource.clone(),
        resource_type: incident.alert.resource_type.clone(),
        action: decision.recommended_action.clone(),
    };
    let p = s.actions.preview(&request).await?;
    Ok(Json(
        json!({"incident_id": incident.id, "action": decision.recommended_action.describe(), "preview": p}),
    ))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ReasonBody {
    #[serde(default)]
    reason: Option<String>,
}

async fn command(s: &AppState, command: HumanCommand, label: &str) -> ApiResult<Json<Value>> {
    let reply = HumanReply::new(command, operator(s));
    let outcome = s.ops.handle_command_detached(&reply).await?;
    s.metrics.approval(label, outcome.effective);
    if !outcome.effective {
        return Err(ApiError::conflict(outcome.message));
    }
    Ok(Json(json!({
        "effective": outcome.effective,
        "message": outcome.message,
        "incident": outcome.incident,
    })))
}

fn reason(r: Option<String>) -> ApiResult<Option<String>> {
    match r.map(|r| r.trim().to_string()).filter(|r| !r.is_empty()) {
        Some(r) if r.chars().count() > 1000 => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "reason is longer than 1000 characters",
        )),
        r => Ok(r),
    }
}

async fn approve(
    State(s): State<AppState>,
    Path(id): Path<String>,
    b: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let _: ReasonBody = parse_opt(&body(b)?)?;
    let incident = load_incident(&s, incident_id(&id)?).await?;
    command(
        &s,
        HumanCommand::Approve {
            incident_id: incident.id,
        },
        "approve",
    )
    .await
}

async fn reject(
    State(s): State<AppState>,
    Path(id): Path<String>,
    b: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let r: ReasonBody = parse_opt(&body(b)?)?;
    let incident = load_incident(&s, incident_id(&id)?).await?;
    let reason = reason(r.reason)?;
    command(
        &s,
        HumanCommand::Reject {
            incident_id: incident.id,
            reason,
        },
        "reject",
    )
    .await
}

async fn autonomy(State(s): State<AppState>) -> ApiResult<Json<Value>> {
    let k = s.store.kill_switch().await?;
    Ok(Json(json!({"kill_switch": k})))
}

async fn stop_autonomy(
    State(s): State<AppState>,
    b: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let r: ReasonBody = parse_opt(&body(b)?)?;
    let reason = reason(r.reason)?;
    let Json(mut v) = command(&s, HumanCommand::StopAutonomy { reason }, "stop_autonomy").await?;
    v["kill_switch"] = json!(s.store.kill_switch().await?);
    Ok(Json(v))
}

async fn resume_autonomy(
    State(s): State<AppState>,
    b: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let _: ReasonBody = parse_opt(&body(b)?)?;
    let Json(mut v) = command(&s, HumanCommand::Resume, "resume").await?;
    v["kill_switch"] = json!(s.store.kill_switch().await?);
    Ok(Json(v))
}

// ------------------------------------------------------------ operations

async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

async fn readyz(State(s): State<AppState>) -> Response {
    match s.store.kill_switch().await {
        Ok(k) => {
            Json(json!({"status": "ready", "store": s.store.name(), "autonomy_stopped": k.engaged}))
                .into_response()
        }
        Err(e) => {
            warn!(error = %e, "readiness: store unreachable");
            problem(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("store {} is not reachable", s.store.name()),
            )
        }
    }
}

async fn metrics(State(s): State<AppState>) -> Response {
    let mut text = s.metrics.render();
    // Gauges read from the store at scrape time: they cover every path
    // (webhooks, watcher, chat channels, background executions).
    if let Ok(counts) = s.store.incident_counts().await {
        let by_status: BTreeMap<String, u64> = counts
            .by_status
            .into_iter()
            .map(|(status, n)| (status.to_string(), n))
            .collect();
        let by_action: BTreeMap<String, u64> = counts
            .by_action
            .into_iter()
            .map(|(kind, n)| (crate::observed::action_name(kind), n))
            .collect();
        text.push_str("# HELP infraai_incidents Incidents in the store, by status (executed/resolved/unresolved are execution outcomes).\n# TYPE infraai_incidents gauge\n");
        for (k, v) in by_status {
            text.push_str(&format!("infraai_incidents{{status=\"{k}\"}} {v}\n"));
        }
        text.push_str("# HELP infraai_decisions Decisions in the store, by recommended action.\n# TYPE infraai_decisions gauge\n");
        for (k, v) in by_action {
            text.push_str(&format!("infraai_decisions{{action=\"{k}\"}} {v}\n"));
        }
    }
    if let Ok(k) = s.store.kill_switch().await {
        text.push_str(&format!(
            "# HELP infraai_autonomy_stopped 1 while STOP AUTONOMY is engaged.\n# TYPE infraai_autonomy_stopped gauge\ninfraai_autonomy_stopped {}\n",
            u8::from(k.engaged)
        ));
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

async fn openapi() -> Json<Value> {
    Json(crate::openapi::document())
}

async fn dashboard() -> Html<&'static str> {
    Html(include_str!("../assets/index.html"))
}

async fn dashboard_js() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("../assets/app.js"),
    )
        .into_response()
}

async fn dashboard_css() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("../assets/style.css"),
    )
        .into_response()
}

async fn dashboard_views_js() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("../assets/views.js"),
    )
        .into_response()
}

/// The vendored CodeMirror 6 bundle of the Terraform view, built by
/// `editor-build/` and embedded like the other assets. `no-cache` with an
/// ETag: browsers revalidate (a 304 when unchanged) so an upgraded server
/// never pairs a new views.js with a stale bundle.
async fn vendor_codemirror_js(headers: HeaderMap) -> Response {
    const BUNDLE: &str = include_str!("../assets/vendor/codemirror.js");
    static ETAG: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let etag = ETAG.get_or_init(|| {
        // FNV-1a: the same tag for the same bundle on every build.
        let h = BUNDLE.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        format!("\"cm-{h:016x}\"")
    });
    let cache = [
        (header::CACHE_CONTROL, "no-cache"),
        (header::ETAG, etag.as_str()),
    ];
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .map(|t| t.trim().trim_start_matches("W/"))
                .any(|t| t == etag || t == "*")
        });
    if fresh {
        return (StatusCode::NOT_MODIFIED, cache).into_response();
    }
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        cache,
        BUNDLE,
    )
        .into_response()
}

/// The whole run record (plan, files, fix attempts with their files and
/// diagnostics, change set, history) for the dashboard's run views.
async fn get_run(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let run = load_run(&s, run_id(&id)?).await?;
    Ok(Json(json!({ "run": run })))
}

/// Minutes of metric shown before an incident's alert started and after it
/// closed.
pub const SERIES_MARGIN_MINUTES: i64 = 10;

/// The metric of an incident over its window, for the dashboard chart: from
/// a little before the alert started to a little after the incident closed
/// (or now), from the `MetricSource`'s history — Prometheus, Cloud
/// Monitoring and CloudWatch keep one; for the local cloud it is what the
/// threshold watcher and the re-checks read, kept in memory for an hour. An
/// open incident's current value is read too, so the chart is live. A
/// failed read is reported in `sample_error`, never invented.
async fn series(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let incident = load_incident(&s, incident_id(&id)?).await?;
    let alert = &incident.alert;
    let query = MetricQuery {
        resource: alert.resource.clone(),
        resource_type: alert.resource_type.clone(),
        metric: alert.metric.clone(),
        lookback_secs: 120,
    };
    let margin = chrono::Duration::minutes(SERIES_MARGIN_MINUTES);
    let now = chrono::Utc::now();
    let mut errors = Vec::new();
    if !incident.status.is_closed() {
        if let Err(e) = s.metric_source.current_value(&query).await {
            errors.push(e.to_string());
        }
    }
    let from = alert.started_at.min(incident.created_at) - margin;
    let to = if incident.status.is_closed() {
        (incident.updated_at + margin).min(now)
    } else {
        now
    };
    let history = match s.metric_source.history(&query, from, to).await {
        Ok(h) => h,
        Err(e) => {
            errors.push(e.to_string());
            Vec::new()
        }
    };
    let mut out: Vec<Value> = Vec::with_capacity(history.len() + 1);
    if let Some(v) = alert.value.filter(|v| v.is_finite()) {
        out.push(json!({"at": alert.started_at, "value": v, "source": "alert"}));
    }
    out.extend(
        history
            .iter()
            .filter(|p| p.value.is_finite())
            .map(|p| json!({"at": p.at, "value": p.value, "source": "sample"})),
    );
    Ok(Json(json!({
        "incident_id": incident.id,
        "metric": alert.metric,
        "resource": alert.resource,
        "threshold": alert.threshold,
        "from": from,
        "to": to,
        "points": out,
        "sample_error": (!errors.is_empty()).then(|| errors.join("; ")),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use infraai_core::rules::RulePolicy;
    use infraai_core::testing::*;
    use infraai_core::{
        AlertState, GuardrailConfig, Guardrails, IncidentStatus, MetricProfileRegistry, OpsConfig,
        OpsDeps,
    };

    #[test]
    fn count_parameters_default_and_are_bounded() {
        assert_eq!(bounded("limit", None, 100, 1000).unwrap(), 100);
        assert_eq!(bounded("limit", Some(1), 100, 1000).unwrap(), 1);
        assert_eq!(bounded("limit", Some(1000), 100, 1000).unwrap(), 1000);
        for bad in [0, 1001] {
            let e = bounded("limit", Some(bad), 100, 1000).unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST);
            assert_eq!(e.detail, "limit must be 1–1000");
        }
    }

    async fn status(store: &MemoryStore, id: IncidentId) -> IncidentStatus {
        store.get_incident(id).await.unwrap().unwrap().status
    }

    #[tokio::test(start_paused = true)]
    async fn decisions_give_way_to_ingest_but_never_stall() {
        let store = Arc::new(MemoryStore::new());
        let ops = Arc::new(OpsAgent::new(
            OpsDeps {
                store: store.clone(),
                policy: Arc::new(RulePolicy),
                approver: Arc::new(RecordingApprover::default()),
                actions: Arc::new(RecordingActions::default()),
                metrics: Arc::new(ScriptedMetrics::new(vec![0.1])),
                registry: Arc::new(MetricProfileRegistry::builtin()),
            },
            Guardrails::new(GuardrailConfig::default()),
            OpsConfig::default(),
        ));
        let open = |fp: &'static str| {
            let ops = ops.clone();
            async move {
                let a = alert(fp, AlertState::Firing, 0.97);
                ops.record_alert(&a).await.unwrap().incident.unwrap().id
            }
        };
        let ingesting = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        decision_workers(ops.clone(), rx, ingesting.clone());

        // No ingest in flight: decided at once.
        let quiet = open("quiet").await;
        tx.send(quiet).unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_ne!(status(&store, quiet).await, IncidentStatus::New);

        // A flood in progress: the decision waits, but not past the bound.
        let guard = Ingesting::start(&ingesting);
        let flooded = open("flooded").await;
        tx.send(flooded).unwrap();
        tokio::time::sleep(DECISION_YIELD_MAX - Duration::from_millis(50)).await;
        assert_eq!(status(&store, flooded).await, IncidentStatus::New);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_ne!(status(&store, flooded).await, IncidentStatus::New);

        // The flood ends: a waiting decision goes on within a few ms.
        let next = open("after").await;
        tx.send(next).unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(status(&store, next).await, IncidentStatus::New);
        drop(guard);
        assert_eq!(ingesting.load(Ordering::Relaxed), 0);
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_ne!(status(&store, next).await, IncidentStatus::New);
    }
}
