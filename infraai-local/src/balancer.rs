//! A group's load balancer: the demo service in `--balance GROUP_DIR` mode.
//!
//! Every request goes, round robin, to one of the instances recorded under
//! `GROUP_DIR` (`<index>/pid`, `port`), read afresh for each request so an
//! instance added by a scale-out gets traffic as soon as it has recorded
//! itself. An instance that refuses the connection is skipped for the next
//! one; with none left the answer is 502 (503 when none is recorded). Each
//! answer names the instance that served it in `x-infraai-instance`.

use crate::instances::{is_alive, members_in};
use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The largest request body passed on (1 MiB).
const MAX_BODY: usize = 1 << 20;
/// The header naming the instance that answered.
pub const INSTANCE_HEADER: &str = "x-infraai-instance";

struct Balancer {
    name: String,
    group: PathBuf,
    next: AtomicUsize,
    http: reqwest::Client,
}

/// The balancer's routes: everything is passed on.
pub fn router(name: &str, group: &Path) -> Router {
    let balancer = Arc::new(Balancer {
        name: name.to_string(),
        group: group.to_path_buf(),
        next: AtomicUsize::new(0),
        http: reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap_or_default(),
    });
    Router::new().fallback(pass_on).with_state(balancer)
}

fn error(status: StatusCode, message: String) -> Response {
    (status, message).into_response()
}

async fn pass_on(State(b): State<Arc<Balancer>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(body) = to_bytes(body, MAX_BODY).await else {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request body over 1 MiB".into(),
        );
    };
    let members: Vec<_> = members_in(&b.group)
        .await
        .into_iter()
        .filter(|m| is_alive(m.pid))
        .collect();
    if members.is_empty() {
        let why = format!("no instance of {} is running", b.name);
        return error(StatusCode::SERVICE_UNAVAILABLE, why);
    }
    let Ok(method) = reqwest::Method::from_bytes(parts.method.as_str().as_bytes()) else {
        return error(StatusCode::METHOD_NOT_ALLOWED, "unsupported method".into());
    };
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let first = b.next.fetch_add(1, Ordering::Relaxed);
    let mut last_error = String::new();
    for k in 0..members.len() {
        let member = &members[(first + k) % members.len()];
        let mut forward = b
            .http
            .request(method.clone(), format!("{}{path}", member.url()))
            .body(body.clone());
        for (name, value) in parts.headers.iter().filter(|(n, _)| passed_on(n)) {
            forward = forward.header(name.as_str(), value.as_bytes());
        }
        match forward.send().await {
            Ok(answer) => return relay(answer, &format!("{}-{}", b.name, member.name)).await,
            // Refused or timed out before connecting: try the next instance.
            Err(e) if e.is_connect() => last_error = e.without_url().to_string(),
            Err(e) => return error(StatusCode::BAD_GATEWAY, e.without_url().to_string()),
        }
    }
    error(
        StatusCode::BAD_GATEWAY,
        format!("no instance of {} answered: {last_error}", b.name),
    )
}

/// Headers that describe one hop, not the request.
fn passed_on(name: &HeaderName) -> bool {
    !matches!(
        name.as_str(),
        "host" | "connection" | "content-length" | "transfer-encoding" | "keep-alive" | "upgrade"
    )
}

async fn relay(answer: reqwest::Response, instance: &str) -> Response {
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let content_type = answer.headers().get("content-type").cloned();
    let body = match answer.bytes().await {
        Ok(b) => b,
        Err(e) => return error(StatusCode::BAD_GATEWAY, e.without_url().to_string()),
    };
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    if let Some(ct) = content_type.and_then(|v| HeaderValue::from_bytes(v.as_bytes()).ok()) {
        headers.insert("content-type", ct);
    }
    if let Ok(v) = HeaderValue::from_str(instance) {
        headers.insert(INSTANCE_HEADER, v);
    }
    response
}
