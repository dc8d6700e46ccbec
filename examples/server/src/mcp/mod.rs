//! The MCP interface: infraai's typed reads, planning, dry runs and
//! proposals for coding assistants and other agents, over Streamable HTTP
//! at `/mcp` (bearer token: the operator token, or a read-only or propose
//! MCP token) and over stdio (`infraai-server mcp`). Every call is audited
//! (`mcp_call`), counted (`infraai_mcp_calls_total`) and budgeted per token.
//! A proposal passes the guardrails and then always waits for a human; no
//! tool approves, resumes or executes. Built on the official Rust SDK,
//! `rmcp`.

pub mod access;
mod calls;
mod reads;
mod tools;

pub use access::{Identity, McpAccess, Scope};
pub use tools::McpTools;

use crate::app::{origin_of, AppState};
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use infraai_core::AuthRefusal;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::ServiceExt;
use std::sync::Arc;

/// The route the MCP service is mounted at.
pub const PATH: &str = "/mcp";

/// The Streamable HTTP service. `hosts` are the `Host` values accepted
/// besides loopback (DNS-rebinding protection: a public server names its
/// own host, from `public_url`).
pub fn service(
    state: AppState,
    hosts: Vec<String>,
) -> StreamableHttpService<McpTools, LocalSessionManager> {
    let mut allowed = vec!["localhost".to_string(), "127.0.0.1".into(), "[::1]".into()];
    allowed.extend(hosts);
    let config = StreamableHttpServerConfig::default().with_allowed_hosts(allowed);
    StreamableHttpService::new(
        move || Ok(McpTools::new(state.clone(), None)),
        Arc::new(LocalSessionManager::default()),
        config,
    )
}

/// Lets through requests with a known MCP bearer token (and puts the
/// caller's [`Identity`] in the request); anything else gets 401 and is
/// audited like every refused request.
pub async fn authenticate(State(s): State<AppState>, mut req: Request, next: Next) -> Response {
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let reason = match bearer.map(|b| s.mcp.identify(b)) {
        Some(Some(identity)) => {
            req.extensions_mut().insert(identity);
            return next.run(req).await;
        }
        Some(None) => "wrong MCP token",
        None => "missing MCP token",
    };
    let origin = origin_of(req.method().as_str(), PATH, req.headers(), req.extensions());
    s.ops
        .audit_auth_refusal(&AuthRefusal::from_origin("mcp", reason, &origin))
        .await;
    let detail = format!("{reason}: send `Authorization: Bearer <token>` (the operator token, INFRAAI_MCP_READ_TOKEN or INFRAAI_MCP_PROPOSE_TOKEN)");
    let mut response = (StatusCode::UNAUTHORIZED, detail).into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer"),
    );
    response
}

/// Serves MCP on stdin/stdout until the client closes it. The local user
/// who runs the binary owns its data directory, so stdio calls have
/// propose scope (token `stdio`), within the same per-minute budget.
pub async fn serve_stdio(state: AppState) -> anyhow::Result<()> {
    let identity = Identity {
        token: "stdio",
        scope: Scope::Propose,
    };
    let running = McpTools::new(state, Some(identity))
        .serve(rmcp::transport::stdio())
        .await?;
    running.waiting().await?;
    Ok(())
}
