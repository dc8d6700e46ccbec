//! Health, readiness, metrics, the OpenAPI document and the dashboard assets.

use crate::app::AppState;
use crate::error::problem;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{json, Value};
use std::sync::Arc;
use tracing::warn;

/// Liveness.
#[utoipa::path(get, path = "/healthz")]
pub(crate) async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Readiness: 200 when the store answers, 503 otherwise.
#[utoipa::path(get, path = "/readyz")]
pub(crate) async fn readyz(State(s): State<AppState>) -> Response {
    match s.store.kill_switch().await {
        Ok(k) => {
            Json(json!({"status": "ready", "store": s.store.name(), "autonomy_stopped": k.engaged, "simulated": s.simulated}))
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

/// Prometheus metrics (OpenMetrics text).
#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "OpenMetrics text", content_type = "application/openmetrics-text")))]
pub(crate) async fn metrics(State(s): State<AppState>) -> Response {
    // Gauges read from the store at scrape time: they cover every path
    // (webhooks, watcher, chat channels, background executions).
    let counts = s.store.incident_counts().await.ok();
    let stopped = s.store.kill_switch().await.ok().map(|k| k.engaged);
    let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    let earned = s.ops.autonomy().await.ok();
    let text = s.metrics.render(counts, stopped, earned.as_deref());
    ([(header::CONTENT_TYPE, content_type)], text).into_response()
}

/// This document.
#[utoipa::path(get, path = "/openapi.json")]
pub(crate) async fn openapi(Extension(doc): Extension<Arc<Value>>) -> Json<Value> {
    Json(Value::clone(&doc))
}

/// The dashboard (HTML).
#[utoipa::path(get, path = "/")]
pub(crate) async fn dashboard() -> Html<&'static str> {
    Html(include_str!("../../assets/index.html"))
}

/// The dashboard opened at its ops view (the product plan's `/ops`).
#[utoipa::path(get, path = "/ops")]
pub(crate) async fn dashboard_ops() -> Html<&'static str> {
    dashboard().await
}

/// A dashboard asset: its content type and text.
type Asset = ([(header::HeaderName, &'static str); 1], &'static str);
const JS: [(header::HeaderName, &str); 1] =
    [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")];
const CSS: [(header::HeaderName, &str); 1] = [(header::CONTENT_TYPE, "text/css; charset=utf-8")];

/// Dashboard script.
#[utoipa::path(get, path = "/assets/app.js")]
pub(crate) async fn dashboard_js() -> Asset {
    (JS, include_str!("../../assets/app.js"))
}

/// Dashboard styles.
#[utoipa::path(get, path = "/assets/style.css")]
pub(crate) async fn dashboard_css() -> Asset {
    (CSS, include_str!("../../assets/style.css"))
}

/// Dashboard views script (architecture canvas, Terraform view, run timeline, incident view).
#[utoipa::path(get, path = "/assets/views.js")]
pub(crate) async fn dashboard_views_js() -> Asset {
    (JS, include_str!("../../assets/views.js"))
}

/// Dashboard autonomy script (cost, change windows, earned autonomy).
#[utoipa::path(get, path = "/assets/autonomy.js")]
pub(crate) async fn dashboard_autonomy_js() -> Asset {
    (JS, include_str!("../../assets/autonomy.js"))
}

/// The vendored CodeMirror 6 bundle of the Terraform view.
///
/// Built by `editor-build/` and embedded like the other assets. `no-cache` with an
/// ETag: browsers revalidate (a 304 when unchanged) so an upgraded server
/// never pairs a new views.js with a stale bundle.
#[utoipa::path(get, path = "/assets/vendor/codemirror.js")]
pub(crate) async fn vendor_codemirror_js(headers: HeaderMap) -> Response {
    const BUNDLE: &str = include_str!("../../assets/vendor/codemirror.js");
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
    (JS, cache, BUNDLE).into_response()
}
