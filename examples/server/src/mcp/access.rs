//! Who may call the MCP interface, with what scope, how often.

use infraai_core::Secret;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What a token allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// The read tools, planning and dry runs.
    Read,
    /// Also `propose_action` and `stop_autonomy`.
    Propose,
}

/// An authenticated MCP caller (put in the request's extensions by the
/// HTTP middleware; fixed for stdio).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// Which token: `operator`, `read`, `propose`, or `stdio`.
    pub token: &'static str,
    /// What it allows.
    pub scope: Scope,
}

/// The MCP tokens and the per-token call budget.
pub struct McpAccess {
    operator: Secret,
    read: Option<Secret>,
    propose: Option<Secret>,
    per_minute: u32,
    calls: Mutex<HashMap<&'static str, Window>>,
    hosts: Vec<String>,
}

/// Calls counted in the current minute.
struct Window {
    started: Instant,
    calls: u32,
}

impl McpAccess {
    /// The operator token (propose scope) and the configured MCP tokens.
    pub fn new(operator: &str, read: Option<&str>, propose: Option<&str>, per_minute: u32) -> Self {
        let secret = |t: Option<&str>| t.filter(|t| !t.is_empty()).map(Secret::new);
        Self {
            operator: Secret::new(operator),
            read: secret(read),
            propose: secret(propose),
            per_minute,
            calls: Mutex::default(),
            hosts: Vec::new(),
        }
    }

    /// Accepts MCP requests for `host` (the public URL's) besides loopback.
    pub fn with_hosts(mut self, host: Option<String>) -> Self {
        self.hosts.extend(host);
        self
    }

    /// The `Host` values accepted besides loopback.
    pub fn hosts(&self) -> &[String] {
        &self.hosts
    }

    /// The caller a bearer token names, compared in constant time.
    pub fn identify(&self, bearer: &str) -> Option<Identity> {
        let known = [
            (Some(&self.operator), "operator", Scope::Propose),
            (self.propose.as_ref(), "propose", Scope::Propose),
            (self.read.as_ref(), "read", Scope::Read),
        ];
        known
            .into_iter()
            .find(|(secret, _, _)| secret.is_some_and(|s| s.matches(bearer)))
            .map(|(_, token, scope)| Identity { token, scope })
    }

    /// Counts one call of `token`; `false` when its budget for the current
    /// minute is spent.
    pub fn admit(&self, token: &'static str) -> bool {
        let mut calls = self.calls.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let w = calls.entry(token).or_insert(Window {
            started: now,
            calls: 0,
        });
        if now.duration_since(w.started) >= Duration::from_secs(60) {
            *w = Window {
                started: now,
                calls: 0,
            };
        }
        w.calls += 1;
        w.calls <= self.per_minute
    }

    /// The per-minute budget.
    pub fn per_minute(&self) -> u32 {
        self.per_minute
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_name_scopes_and_budgets_are_per_token() {
        let a = McpAccess::new("op", Some("r"), Some("p"), 2);
        assert_eq!(a.identify("op").unwrap().scope, Scope::Propose);
        assert_eq!(
            a.identify("r").unwrap(),
            Identity {
                token: "read",
                scope: Scope::Read
            }
        );
        assert_eq!(a.identify("p").unwrap().token, "propose");
        assert!(a.identify("nope").is_none() && a.identify("").is_none());
        assert!(a.admit("read") && a.admit("read") && !a.admit("read"));
        assert!(a.admit("propose"), "another token has its own budget");
        let unset = McpAccess::new("op", Some(""), None, 1);
        assert!(
            unset.identify("").is_none(),
            "an empty token configures nothing"
        );
    }
}
