//! Who is calling, and what their role lets them do.
//!
//! Four ways in, one [`Principal`] out:
//! - the static operator token (`Authorization: Bearer`): `admin`, for
//!   single-user set-ups and scripts;
//! - an API token an admin created ([`tokens`]): its role, until it expires;
//! - a JWT access token of the configured OpenID Connect provider
//!   ([`jwt`]): the role its claims map to;
//! - the dashboard's session cookie, set at sign-in through the provider
//!   ([`oidc`], [`session`]); state-changing requests also need its CSRF
//!   token in `X-CSRF-Token`.
//!
//! Every protected route's required role is in one table, [`ROUTE_ROLES`];
//! a route missing from it is refused to everyone.

pub mod jwt;
pub mod oidc;
pub mod session;
pub mod tokens;

use crate::app::AppState;
use crate::error::{problem, ApiError};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use infraai_core::{Actor, AuthRefusal};
use serde::{Deserialize, Serialize};
use std::fmt;
use subtle::ConstantTimeEq;

/// What a caller may do; each role may do everything the ones before it may.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads everything.
    Viewer,
    /// Also approves and rejects actions, and stops autonomy (a safety
    /// rule: whoever can act can stop).
    Approver,
    /// Also plans, deploys, destroys, resumes autonomy and manages change
    /// windows.
    Operator,
    /// Also configuration (autonomy pins, per-deployment guardrails) and API
    /// tokens.
    Admin,
}

impl Role {
    /// Every role, lowest first.
    pub const ALL: [Role; 4] = [Role::Viewer, Role::Approver, Role::Operator, Role::Admin];

    /// The role's name, as in configuration and API bodies.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Approver => "approver",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s.trim())
            .ok_or_else(|| format!("unknown role {s:?}: viewer, approver, operator or admin"))
    }
}

/// How a caller proved who they are.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    /// The static operator token.
    OperatorToken,
    /// An API token an admin created.
    ApiToken,
    /// The identity provider's JWT access token.
    Bearer,
    /// The dashboard's session cookie.
    Session,
}

/// An authenticated caller.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Principal {
    /// Stable id: the provider's `sub`, the API token's id, or the operator
    /// name.
    pub subject: String,
    /// Display name, when known.
    pub name: Option<String>,
    /// E-mail, when known.
    pub email: Option<String>,
    /// What they may do.
    pub role: Role,
    /// How they signed in.
    pub via: Via,
    /// The session's CSRF token (sessions only; the dashboard sends it back
    /// in `X-CSRF-Token`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub csrf: Option<String>,
}

impl Principal {
    /// The audit trail's actor: `web:<subject>`, with the name and e-mail
    /// as its display name and the role.
    pub fn actor(&self) -> Actor {
        let mut actor = Actor::new("web", self.subject.clone());
        actor.name = match (&self.name, &self.email) {
            (Some(n), Some(e)) if n != e => Some(format!("{n} <{e}>")),
            (Some(n), _) => Some(n.clone()),
            (None, e) => e.clone(),
        };
        actor.roles = vec![self.role.as_str().into()];
        actor
    }
}

/// Sign-in's own routes, which need no credentials: starting a sign-in,
/// its callback, and whether sign-in is on.
pub fn public_routes() -> utoipa_axum::router::OpenApiRouter<AppState> {
    use utoipa_axum::routes;
    utoipa_axum::router::OpenApiRouter::new()
        .routes(routes!(oidc::login))
        .routes(routes!(oidc::callback))
        .routes(routes!(oidc::config))
}

/// Who am I, signing out, and API tokens (behind [`authorize`]).
pub fn protected_routes() -> utoipa_axum::router::OpenApiRouter<AppState> {
    use utoipa_axum::routes;
    utoipa_axum::router::OpenApiRouter::new()
        .routes(routes!(oidc::me))
        .routes(routes!(oidc::logout))
        .routes(routes!(tokens::list, tokens::create))
        .routes(routes!(tokens::revoke))
}

/// The role each protected route needs: `(method, route, role)`, the route
/// as the router declares it. Reads are for viewers; approving, rejecting
/// and STOP AUTONOMY for approvers; changing infrastructure, RESUME and
/// windows for operators; configuration and tokens for admins.
pub const ROUTE_ROLES: &[(&str, &str, Role)] = &[
    ("GET", "/ops/alerts", Role::Viewer),
    ("GET", "/ops/alerts/{id}", Role::Viewer),
    ("GET", "/ops/alerts/{id}/preview", Role::Viewer),
    ("GET", "/ops/alerts/{id}/series", Role::Viewer),
    ("GET", "/ops/audit", Role::Viewer),
    ("GET", "/ops/autonomy", Role::Viewer),
    ("GET", "/ops/autonomy/levels", Role::Viewer),
    ("GET", "/ops/costs", Role::Viewer),
    ("GET", "/ops/deployments/{id}/guardrails", Role::Viewer),
    ("GET", "/ops/prometheus/rules", Role::Viewer),
    ("GET", "/ops/windows", Role::Viewer),
    ("GET", "/runs", Role::Viewer),
    ("GET", "/runs/{id}", Role::Viewer),
    ("GET", "/runs/{id}/events", Role::Viewer),
    ("GET", "/runs/{id}/status", Role::Viewer),
    ("GET", "/auth/me", Role::Viewer),
    ("POST", "/auth/logout", Role::Viewer),
    ("POST", "/ops/alerts/{id}/approve", Role::Approver),
    ("POST", "/ops/alerts/{id}/reject", Role::Approver),
    ("POST", "/ops/autonomy/stop", Role::Approver),
    ("POST", "/generate-graph", Role::Operator),
    ("POST", "/generate_terraform", Role::Operator),
    ("POST", "/execute", Role::Operator),
    ("POST", "/runs/{id}/cancel", Role::Operator),
    ("POST", "/runs/{id}/destroy", Role::Operator),
    ("POST", "/ops/autonomy/resume", Role::Operator),
    ("POST", "/ops/windows", Role::Operator),
    ("DELETE", "/ops/windows/{id}", Role::Operator),
    (
        "PUT",
        "/ops/autonomy/levels/{action}/{resource_type}",
        Role::Admin,
    ),
    ("PUT", "/ops/deployments/{id}/guardrails", Role::Admin),
    ("GET", "/auth/tokens", Role::Admin),
    ("POST", "/auth/tokens", Role::Admin),
    ("DELETE", "/auth/tokens/{id}", Role::Admin),
];

/// The role `route` needs for `method`; `None` when the table lacks it.
pub fn required_role(method: &Method, route: &str) -> Option<Role> {
    ROUTE_ROLES
        .iter()
        .find(|(m, r, _)| *m == method.as_str() && *r == route)
        .map(|(_, _, role)| *role)
}

/// Why a request was not authenticated: what the audit trail records, and
/// what the caller is told.
#[derive(Debug)]
pub struct Unauthenticated {
    /// Short reason for the audit trail.
    pub reason: &'static str,
    /// What the caller is told (never a secret).
    pub detail: String,
}

impl Unauthenticated {
    pub(crate) fn new(reason: &'static str, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: detail.into(),
        }
    }
}

pub(crate) fn same(a: &str, b: &str) -> bool {
    !b.is_empty() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// The caller of a request with `headers`, from its bearer token or session
/// cookie.
pub async fn identify(s: &AppState, headers: &HeaderMap) -> Result<Principal, Unauthenticated> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    if let Some(token) = bearer {
        if same(token, &s.operator_token) {
            return Ok(Principal {
                subject: s.operator_name.to_string(),
                name: Some(s.operator_name.to_string()),
                email: None,
                role: Role::Admin,
                via: Via::OperatorToken,
                csrf: None,
            });
        }
        if token.starts_with(tokens::PREFIX) {
            return tokens::identify(s.store.as_ref(), token).await;
        }
        return match &s.sign_in {
            Some(sign_in) if token.matches('.').count() == 2 => sign_in.bearer(token).await,
            _ => Err(Unauthenticated::new(
                "wrong operator token",
                "wrong operator token",
            )),
        };
    }
    if let Some(sign_in) = &s.sign_in {
        if let Some(p) = sign_in.session(headers)? {
            return Ok(p);
        }
    }
    Err(Unauthenticated::new(
        "missing operator token",
        "missing credentials: send `Authorization: Bearer <token>` (the operator token printed at first start and stored in <data_dir>/operator-token, an API token, or the identity provider's access token), or sign in on the dashboard",
    ))
}

/// The middleware of every protected route: identifies the caller, checks
/// the route's role (and a session's CSRF token on state-changing
/// requests), and hands the [`Principal`] to the handler.
pub async fn authorize(State(s): State<AppState>, mut req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| req.uri().path().to_string());
    let refused = Refused::of(&req);
    let principal = match identify(&s, req.headers()).await {
        Ok(p) => p,
        Err(e) => {
            refused.audit(&s, e.reason, None).await;
            return ApiError::unauthorized(e.detail).into_response();
        }
    };
    let Some(needed) = required_role(req.method(), &route) else {
        refused
            .audit(&s, "route without a role", Some(&principal))
            .await;
        return forbidden(format!(
            "{} {route} has no role in the route table",
            req.method()
        ));
    };
    if principal.role < needed {
        refused.audit(&s, "role too low", Some(&principal)).await;
        return forbidden(format!(
            "{} {route} needs the role {needed}; you ({}) are {}",
            req.method(),
            principal.subject,
            principal.role
        ));
    }
    if principal.via == Via::Session && !matches!(*req.method(), Method::GET | Method::HEAD) {
        let sent = req
            .headers()
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if !same(sent, principal.csrf.as_deref().unwrap_or_default()) {
            refused
                .audit(&s, "missing or wrong CSRF token", Some(&principal))
                .await;
            return forbidden("a signed-in request that changes something needs the session's CSRF token in X-CSRF-Token (from GET /auth/me)");
        }
    }
    req.extensions_mut().insert(principal);
    next.run(req).await
}

fn forbidden(detail: impl Into<String>) -> Response {
    problem(StatusCode::FORBIDDEN, &detail.into())
}

/// What the audit of a refused request records: its origin, and the
/// incident a refused approve/reject named.
struct Refused {
    origin: infraai_core::RequestOrigin,
    incident_id: Option<infraai_core::IncidentId>,
}

impl Refused {
    fn of(req: &Request) -> Self {
        Self {
            origin: crate::app::origin(req),
            incident_id: req
                .uri()
                .path()
                .strip_prefix("/ops/alerts/")
                .and_then(|rest| rest.split('/').next())
                .and_then(|id| id.parse().ok()),
        }
    }

    async fn audit(&self, s: &AppState, reason: &str, who: Option<&Principal>) {
        let reason = match who {
            Some(p) => format!("{reason}: web:{} ({})", p.subject, p.role),
            None => reason.to_string(),
        };
        let mut refusal = AuthRefusal::from_origin("web", reason, &self.origin);
        refusal.incident_id = self.incident_id;
        s.ops.audit_auth_refusal(&refusal).await;
    }
}
