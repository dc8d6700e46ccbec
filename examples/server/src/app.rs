//! The HTTP API: shared state, the router, authentication, body limits and
//! timeouts. The handlers live in [`crate::routes`], one file per area.

use crate::error::{problem, ApiError};
use crate::metrics::Metrics;
use crate::openapi::{self, ApiDoc};
use crate::routes::{alerts, autonomy, channels, meta, ops, plan, runs};
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::{Extension, Router};
use infraai_core::*;
use infraai_discord::DiscordApprover;
use infraai_prometheus::PromQueries;
use infraai_slack::SlackApprover;
use infraai_telegram::TelegramApprover;
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tracing::{info, warn};
use utoipa::openapi::security::SecurityRequirement;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Largest accepted request body, except on the alert webhooks.
pub const BODY_LIMIT: usize = 256 * 1024;
/// Largest accepted alert webhook body (`/ops/webhook`,
/// `/ops/webhook/alertmanager`): an Alertmanager notification carries every
/// alert of its group unless `max_alerts` is set, and a refused one is lost
/// (Alertmanager does not retry a 4xx).
pub const ALERT_BODY_LIMIT: usize = 4 * 1024 * 1024;

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
    /// Slack interactions and slash-command channel.
    pub slack: Option<Arc<SlackApprover>>,
    /// Operator bearer token.
    pub operator_token: Arc<str>,
    /// Operator name (`web:<name>`).
    pub operator_name: Arc<str>,
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
    /// The alert sources of `/ops/webhook`, in the order they are asked.
    pub alert_sources: Vec<Arc<dyn AlertSource>>,
    /// New incidents to decide, in arrival order: a few workers
    /// ([`decision_workers`]) take them, so an alert flood queues ids (16
    /// bytes each) rather than spawning one large decision task per alert.
    pub decide: tokio::sync::mpsc::UnboundedSender<IncidentId>,
    /// Alert ingests in flight; the decision workers give way to them.
    pub ingesting: Arc<AtomicUsize>,
    /// Whether the cloud is the simulated one: plans, runs and incidents say
    /// `simulated: true`, and the dashboard shows a banner.
    pub simulated: bool,
    /// Who may call the MCP interface, and how often.
    pub mcp: Arc<crate::mcp::McpAccess>,
    /// Single sign-on, when configured.
    pub sign_in: Option<Arc<crate::auth::oidc::SignIn>>,
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
pub(crate) struct Ingesting<'a>(&'a AtomicUsize);

impl<'a> Ingesting<'a> {
    pub(crate) fn start(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Self(count)
    }
}

impl Drop for Ingesting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The router, and the OpenAPI document it serves, built from the same
/// `#[utoipa::path]` declarations.
pub fn router(state: AppState) -> Router {
    let operator = OpenApiRouter::new()
        .routes(routes!(plan::generate_graph))
        .routes(routes!(plan::generate_terraform))
        .routes(routes!(runs::execute))
        .routes(routes!(runs::run_status))
        .routes(routes!(runs::destroy_run))
        .routes(routes!(runs::cancel_run))
        .routes(routes!(ops::list_alerts))
        .routes(routes!(ops::get_alert))
        .routes(routes!(ops::preview))
        .routes(routes!(ops::series))
        .routes(routes!(runs::get_run))
        .routes(routes!(runs::list_runs))
        .routes(routes!(ops::approve))
        .routes(routes!(ops::reject))
        .routes(routes!(ops::prometheus_rules))
        .routes(routes!(ops::autonomy))
        .routes(routes!(ops::stop_autonomy))
        .routes(routes!(ops::resume_autonomy))
        .merge(crate::auth::protected_routes())
        .merge(autonomy::routes());
    let operator = operator_only(operator, &state)
        .layer(middleware::from_fn_with_state(state.clone(), timeout));
    // Event streams last as long as the run: no request timeout.
    let streams = operator_only(
        OpenApiRouter::new().routes(routes!(runs::run_events)),
        &state,
    );
    let public = OpenApiRouter::new()
        .routes(routes!(meta::healthz))
        .routes(routes!(meta::readyz))
        .routes(routes!(meta::metrics))
        .routes(routes!(meta::openapi))
        .routes(routes!(meta::dashboard))
        .routes(routes!(meta::dashboard_ops))
        .routes(routes!(meta::dashboard_js))
        .routes(routes!(meta::dashboard_css))
        .routes(routes!(meta::dashboard_views_js))
        .routes(routes!(meta::dashboard_autonomy_js))
        .routes(routes!(meta::vendor_codemirror_js))
        .merge(crate::auth::public_routes())
        .merge(
            // Inside the router's own limit, so this one applies here.
            OpenApiRouter::new()
                .routes(routes!(alerts::alert_webhook))
                .routes(routes!(alerts::alertmanager_webhook))
                .layer(DefaultBodyLimit::max(ALERT_BODY_LIMIT)),
        )
        .routes(routes!(channels::telegram_webhook))
        .routes(routes!(channels::discord_interactions))
        .routes(routes!(channels::slack_interactions))
        .routes(routes!(channels::slack_commands))
        .layer(middleware::from_fn_with_state(state.clone(), timeout));
    let (router, api) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(operator)
        .merge(streams)
        .merge(public)
        .split_for_parts();
    // MCP (Streamable HTTP) behind its own bearer check; its streams last
    // as long as the client keeps them, so no request timeout.
    let mcp_service = crate::mcp::service(state.clone(), state.mcp.hosts().to_vec());
    let mcp = Router::new()
        .nest_service(crate::mcp::PATH, mcp_service)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::mcp::authenticate,
        ));
    router
        .merge(mcp)
        .fallback(|| async { ApiError::not_found("no such route; see /openapi.json") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed on this route; see /openapi.json",
            )
        })
        .layer(Extension(Arc::new(openapi::document(api))))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// Puts `routes` behind authentication and the route table's roles
/// ([`crate::auth::ROUTE_ROLES`]), in the router and in the document alike.
fn operator_only(mut routes: OpenApiRouter<AppState>, state: &AppState) -> OpenApiRouter<AppState> {
    let operator = SecurityRequirement::new("operator", Vec::<String>::new());
    for item in routes.get_openapi_mut().paths.paths.values_mut() {
        let ops = [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.delete,
            &mut item.patch,
        ];
        for op in ops.into_iter().flatten() {
            op.security = Some(vec![operator.clone()]);
        }
    }
    routes.route_layer(middleware::from_fn_with_state(
        state.clone(),
        crate::auth::authorize,
    ))
}

// ------------------------------------------------------------ middleware

/// The route and peer of a request, for the audit of a refusal: the socket
/// peer when the server records it, and `X-Forwarded-For` (client-supplied,
/// so only informative) when present.
pub(crate) fn origin(req: &Request) -> RequestOrigin {
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

pub(crate) fn origin_of(
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

#[cfg(test)]
mod tests {
    use super::*;
    use infraai_core::rules::RulePolicy;
    use infraai_core::testing::*;
    use infraai_core::{AlertState, Guardrails, IncidentStatus, OpsConfig, OpsDeps};

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
                notifier: Arc::new(RecordingApprover::default()),
                actions: Arc::new(RecordingActions::default()),
                metrics: Arc::new(ScriptedMetrics::new(vec![0.1])),
                registry: Arc::new(infraai_core::testing::profiles()),
            },
            Guardrails::new(infraai_core::testing::guardrails()),
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
