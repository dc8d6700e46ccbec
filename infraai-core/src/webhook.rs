//! What alert sources share: webhook authentication by a shared secret, and
//! the core [`Alert`] JSON as a source of its own (the fallback of a list).

use crate::domain::Alert;
use crate::traits::{AlertSource, InboundRequest};
use crate::{basic_auth_matches, Error, Result, Secret};
use async_trait::async_trait;
use serde::de::IgnoredAny;
use std::collections::HashMap;

/// The header carrying a webhook token ([`WebhookAuth::Token`]).
pub const WEBHOOK_TOKEN_HEADER: &str = "x-infraai-webhook-token";

/// How a webhook sender without a signature of its own proves itself.
#[derive(Clone, Debug)]
pub enum WebhookAuth {
    /// A shared token in header `X-Infraai-Webhook-Token` (or
    /// `X-Infraai-Token`), query parameter `token` (what a Cloud Monitoring
    /// channel URL can carry), or `Authorization: Bearer` (Alertmanager's
    /// `http_config.authorization`). An empty token matches nothing.
    Token(Secret),
    /// `Authorization: Basic …` with these credentials.
    Basic {
        /// User name.
        user: String,
        /// Password.
        password: Secret,
    },
}

impl WebhookAuth {
    /// [`Error::Unauthenticated`] unless `request` carries the credentials.
    pub fn check(&self, request: &InboundRequest) -> Result<()> {
        let authorization = request.header("authorization");
        let detail = match self {
            WebhookAuth::Basic { user, password } => {
                if basic_auth_matches(authorization, user, password) {
                    return Ok(());
                }
                "missing or wrong webhook credentials".to_string()
            }
            WebhookAuth::Token(token) => match request
                .header(WEBHOOK_TOKEN_HEADER)
                .or_else(|| request.header("x-infraai-token"))
                .or(request.query.get("token").map(String::as_str))
                .or(authorization.and_then(|v| v.strip_prefix("Bearer ")).map(str::trim))
            {
                Some(t) if !token.expose().is_empty() && token.matches(t) => return Ok(()),
                Some(_) => "wrong webhook token".into(),
                None => format!("missing webhook token: send header {WEBHOOK_TOKEN_HEADER}, Authorization: Bearer, or query parameter token"),
            },
        };
        Err(Error::Unauthenticated { detail })
    }
}

impl InboundRequest {
    /// Whether the body is a JSON object with every one of `fields` (a cheap
    /// look at its shape, for [`AlertSource::accepts`]).
    pub fn has_json_fields(&self, fields: &[&str]) -> bool {
        serde_json::from_slice::<HashMap<String, IgnoredAny>>(&self.body)
            .is_ok_and(|object| fields.iter().all(|f| object.contains_key(*f)))
    }
}

/// The core [`Alert`] JSON (one object or an array) from any sender, behind
/// a [`WebhookAuth`]. It claims every request, so it goes last in a list.
#[derive(Clone, Debug)]
pub struct AlertJsonSource {
    auth: WebhookAuth,
}

impl AlertJsonSource {
    /// A source accepting deliveries authenticated by `auth`.
    pub fn new(auth: WebhookAuth) -> Self {
        Self { auth }
    }
}

#[async_trait]
impl AlertSource for AlertJsonSource {
    fn name(&self) -> &str {
        "alert-json"
    }

    fn accepts(&self, _request: &InboundRequest) -> bool {
        true
    }

    async fn receive(&self, request: &InboundRequest) -> Result<Vec<Alert>> {
        self.auth.check(request)?;
        let invalid = |e: serde_json::Error| Error::invalid("alert", e.to_string());
        match serde_json::from_slice(&request.body).map_err(invalid)? {
            many @ serde_json::Value::Array(_) => serde_json::from_value(many).map_err(invalid),
            one => Ok(vec![serde_json::from_value(one).map_err(invalid)?]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_taken_from_a_header_the_query_or_a_bearer() {
        let auth = WebhookAuth::Token(Secret::new("t0ken"));
        let check = |k: &str, v: &str| {
            let mut r = InboundRequest::default();
            match k {
                "token" => r.query.insert(k.into(), v.into()),
                _ => r.headers.insert(k.into(), v.into()),
            };
            auth.check(&r).map_err(|e| e.to_string())
        };
        for (k, v) in [
            ("x-infraai-webhook-token", "t0ken"),
            ("x-infraai-token", "t0ken"),
            ("authorization", "Bearer t0ken"),
            ("token", "t0ken"),
        ] {
            assert_eq!(check(k, v), Ok(()), "{k}");
        }
        assert_eq!(
            check("token", "t0ke"),
            Err("unauthenticated: wrong webhook token".into())
        );
        assert!(check("x-other", "t0ken").is_err_and(|e| e.contains("missing webhook token")));
        let empty = WebhookAuth::Token(Secret::new(""));
        let mut r = InboundRequest::default();
        r.query.insert("token".into(), String::new());
        assert!(empty.check(&r).is_err());
        assert!(!r.has_json_fields(&[]), "an empty body is no JSON object");
    }
}
