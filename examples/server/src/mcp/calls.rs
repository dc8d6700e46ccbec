//! One MCP call: who makes it (token and client name), within their budget
//! and scope; then its outcome audited and counted.

use super::access::{Identity, Scope};
use super::tools::{text, McpTools};
use crate::app::AppState;
use infraai_core::*;
use rmcp::model::{CallToolResult, ContentBlock};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer};
use serde_json::{json, Value};
use tracing::{info, warn};

/// A call under way.
pub(super) struct Call {
    state: AppState,
    tool: &'static str,
    client: String,
    identity: Identity,
    args: Value,
}

/// The client's name from `clientInfo`, cut to 64 plain characters (it is
/// the client's own claim, kept for the audit and the proposer's label).
fn client_name(ctx: &RequestContext<RoleServer>) -> String {
    let name = ctx.client_info().map(|i| i.name).unwrap_or_default();
    let clean: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c))
        .take(64)
        .collect();
    if clean.is_empty() {
        "unknown".into()
    } else {
        clean
    }
}

/// `args` with any value under a key that names a secret replaced.
fn redacted(args: &Value) -> Value {
    match args {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let key = k.to_ascii_lowercase();
                    let secret = ["token", "secret", "password", "key"]
                        .iter()
                        .any(|s| key.contains(s));
                    let v = if secret {
                        json!("(redacted)")
                    } else {
                        redacted(v)
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(redacted).collect()),
        v => v.clone(),
    }
}

impl Call {
    /// The caller, checked against the per-token budget and the scope the
    /// tool needs; a refusal is audited and answered as an error.
    pub async fn start(
        tools: &McpTools,
        ctx: &RequestContext<RoleServer>,
        tool: &'static str,
        args: Value,
        needs: Scope,
    ) -> Result<Self, McpError> {
        let parts = ctx.extensions.get::<axum::http::request::Parts>();
        let identity = tools
            .fixed
            .clone()
            .or_else(|| parts.and_then(|p| p.extensions.get::<Identity>()).cloned())
            .ok_or_else(|| McpError::invalid_request("not authenticated", None))?;
        let call = Self {
            state: tools.state.clone(),
            tool,
            client: client_name(ctx),
            identity,
            args: redacted(&args),
        };
        let access = &call.state.mcp;
        if !access.admit(call.identity.token) {
            let why = format!(
                "rate limit: at most {} MCP calls a minute for this token",
                access.per_minute()
            );
            call.finish("rate_limited", &format!("refused: {why}"))
                .await;
            return Err(McpError::invalid_request(why, None));
        }
        if needs == Scope::Propose && call.identity.scope != Scope::Propose {
            let why = format!("{tool} needs a token with propose scope; this one may only read");
            call.finish("forbidden", &format!("refused: {why}")).await;
            return Err(McpError::invalid_request(why, None));
        }
        Ok(call)
    }

    /// The caller as an actor: channel `mcp:<client name>`, id the token.
    pub fn actor(&self) -> Actor {
        Actor::new(format!("mcp:{}", self.client), self.identity.token)
    }

    /// Runs the tool's work: its value as the result, its error as a tool
    /// error the client's model can read.
    pub async fn run(
        self,
        work: impl std::future::Future<Output = Result<Value>>,
    ) -> Result<CallToolResult, McpError> {
        match self.settle(work.await).await {
            Ok(value) => Ok(text(&value)),
            Err(e) => Ok(CallToolResult::error(vec![ContentBlock::text(e)])),
        }
    }

    /// Audits and counts the outcome of the call's work; the error as text.
    pub async fn settle<T>(self, result: Result<T>) -> std::result::Result<T, String> {
        match result {
            Ok(value) => {
                self.finish("ok", "ok").await;
                Ok(value)
            }
            Err(e) => {
                let outcome = match &e {
                    Error::Forbidden { .. } => "refused",
                    Error::Invalid { .. } => "invalid",
                    Error::NotFound { .. } => "not_found",
                    Error::Conflict { .. } => "conflict",
                    _ => "error",
                };
                self.finish(outcome, &format!("{outcome}: {e}")).await;
                Err(e.to_string())
            }
        }
    }

    /// Audits and counts the call.
    async fn finish(&self, outcome: &str, detail: &str) {
        self.state.metrics.mcp_call(self.tool, outcome);
        let mut record = AuditRecord::agent(AuditStep::McpCall, format!("{}: {detail}", self.tool))
            .by(self.actor().label())
            .input(json!({
                "tool": self.tool,
                "arguments": self.args,
                "client": self.client,
                "token": self.identity.token,
            }));
        // In the incident's trail too, when the call names one.
        let named = (self.args.get("incident_id").or(self.args.get("id")))
            .and_then(Value::as_str)
            .and_then(|id| id.parse::<IncidentId>().ok());
        if let Some(id) = named {
            record = record.incident(id);
        }
        if let Err(e) = self.state.store.append_audit(&record).await {
            warn!(tool = self.tool, error = %e, "could not audit an MCP call");
        }
        info!(tool = self.tool, client = %self.client, token = self.identity.token, outcome, "MCP call");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn secrets_are_redacted_at_any_depth() {
        let args =
            serde_json::json!({"goal": "x", "api_key": "k", "nested": [{"Token": "t", "ok": 1}]});
        let r = super::redacted(&args);
        assert_eq!(r["goal"], "x");
        assert_eq!(r["api_key"], "(redacted)");
        assert_eq!(r["nested"][0]["Token"], "(redacted)");
        assert_eq!(r["nested"][0]["ok"], 1);
    }
}
