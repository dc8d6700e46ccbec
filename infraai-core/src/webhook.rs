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
        let refused = |detail: String| Err(Error::Unauthenticated { detail });
        match self {
            WebhookAuth::Basic { user, password } => {
                if basic_auth_matches(request.header("authorization"), user, password) {
                    Ok(())
                } else {
                    refused("missing or wrong webhook credentials".into())
                }
            }
            WebhookAuth::Token(token) => {
                let bearer = request
                    .header("authorization")
                    .and_then(|v| v.strip_prefix("Bearer "))
                    .map(str::trim);
                let given = request
                    .header(WEBHOOK_TOKEN_HEADER)
                    .or_else(|| request.header("x-infraai-token"))
                    .or(request.query.get("token").map(String::as_str))
                    .or(bearer);
                match given {
                    Some(t) if !token.expose().is_empty() && token.matches(t) => Ok(()),
                    Some(_) => refused("wrong webhook token".into()),
                    None => refused(format!(
                        "missing webhook token: send header {WEBHOOK_TOKEN_HEADER}, Authorization: Bearer, or query parameter token"
                    )),
                }
            }
        }
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

    fn request(headers: &[(&str, &str)], query: Option<&str>) -> InboundRequest {
        InboundRequest {
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            query: query
                .map(|t| [("token".to_string(), t.to_string())].into())
                .unwrap_or_default(),
            body: b"{}".to_vec(),
        }
    }

    #[test]
    fn a_token_is_taken_from_a_header_the_query_or_a_bearer() {
        let auth = WebhookAuth::Token(Secret::new("t0ken"));
        for ok in [
            request(&[("x-infraai-webhook-token", "t0ken")], None),
            request(&[("x-infraai-token", "t0ken")], None),
            request(&[("authorization", "Bearer t0ken")], None),
            request(&[], Some("t0ken")),
        ] {
            assert!(auth.check(&ok).is_ok(), "{ok:?}");
        }
        let detail = |r: &InboundRequest| match auth.check(r) {
            Err(Error::Unauthenticated { detail }) => detail,
            other => panic!("{other:?}"),
        };
        assert_eq!(detail(&request(&[], Some("t0ke"))), "wrong webhook token");
        assert!(detail(&request(&[], None)).starts_with("missing webhook token"));
        let empty = WebhookAuth::Token(Secret::new(""));
        assert!(empty.check(&request(&[], Some(""))).is_err());
    }

    #[test]
    fn json_shapes() {
        let r = InboundRequest {
            body: br#"{"alerts": [], "receiver": "x"}"#.to_vec(),
            ..Default::default()
        };
        assert!(r.has_json_fields(&["alerts", "receiver"]));
        assert!(!r.has_json_fields(&["incident"]));
        let array = InboundRequest {
            body: b"[]".to_vec(),
            ..Default::default()
        };
        assert!(!array.has_json_fields(&[]));
    }
}
