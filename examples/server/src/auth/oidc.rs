//! Single sign-on with an OpenID Connect provider: the dashboard's
//! authorization code flow with PKCE (`/auth/login` → the provider →
//! `/auth/callback` → a session cookie), the provider's access tokens on
//! the API, and the claim that maps a user to a [`Role`].
//!
//! The flow is three requests over `reqwest`, written here rather than
//! taken from the `openidconnect` crate: its ID-token checks would run on a
//! second key cache and JWT stack beside the one API tokens need
//! ([`super::jwt`], on `jsonwebtoken`), and one verifier for both keeps one
//! set of rules (issuer, audience, expiry, RS256/ES256 only).

use super::jwt::Provider;
use super::session::Sessions;
use super::{Principal, Role, Unauthenticated, Via};
use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::rand::{SecureRandom, SystemRandom};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use tracing::{info, warn};

/// A random URL-safe token of 256 bits (state, nonce, PKCE verifier, CSRF).
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("the operating system's random number generator");
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The PKCE S256 challenge of `verifier`.
pub fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(ring::digest::digest(
        &ring::digest::SHA256,
        verifier.as_bytes(),
    ))
}

/// Claim values → roles.
pub struct RoleMap {
    path: Vec<String>,
    map: Vec<(String, Role)>,
    default: Option<Role>,
}

impl RoleMap {
    /// From the configuration: the claim's dotted path, `value=role`
    /// entries, and the default (`none`: no role).
    pub fn new(claim: &str, entries: &[String], default: &str) -> anyhow::Result<Self> {
        let map = entries
            .iter()
            .map(|e| {
                let (value, role) = e.split_once('=').ok_or_else(|| {
                    anyhow::anyhow!("oidc_role_map entry {e:?} is not value=role")
                })?;
                Ok((
                    value.trim().to_string(),
                    role.parse().map_err(anyhow::Error::msg)?,
                ))
            })
            .collect::<anyhow::Result<_>>()?;
        let default = match default.trim() {
            "none" => None,
            role => Some(
                role.parse()
                    .map_err(|e: String| anyhow::anyhow!("oidc_default_role: {e}"))?,
            ),
        };
        Ok(Self {
            path: claim.split('.').map(str::to_string).collect(),
            map,
            default,
        })
    }

    /// The highest role the claims' values map to, else the default.
    pub fn role(&self, claims: &Map<String, Value>) -> Option<Role> {
        let mut at = claims.get(self.path.first()?.as_str());
        for key in &self.path[1..] {
            at = at.and_then(|v| v.get(key));
        }
        let values: Vec<&str> = match at {
            Some(Value::String(s)) => vec![s.as_str()],
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        self.map
            .iter()
            .filter(|(v, _)| values.contains(&v.as_str()))
            .map(|(_, r)| *r)
            .max()
            .or(self.default)
    }
}

/// Sign-in with one provider.
pub struct SignIn {
    /// The provider.
    pub provider: Provider,
    /// This server's client id there.
    pub client_id: String,
    /// Its secret, for a confidential client.
    pub client_secret: Option<String>,
    /// The audience API access tokens must name.
    pub audience: String,
    /// The scopes asked for.
    pub scopes: String,
    /// Claims → role.
    pub roles: RoleMap,
    /// Session cookies.
    pub sessions: Sessions,
    /// The public base URL (the redirect URI is URL/auth/callback); else
    /// the request's `Host`.
    pub public_url: Option<String>,
}

impl SignIn {
    /// The caller of an API request with the provider's access token.
    pub async fn bearer(&self, token: &str) -> Result<Principal, Unauthenticated> {
        let claims = self.provider.verify(token, &[&self.audience]).await?;
        self.principal(&claims, Via::Bearer)
    }

    /// The caller of a request with a session cookie.
    pub fn session(&self, headers: &HeaderMap) -> Result<Option<Principal>, Unauthenticated> {
        self.sessions.principal(headers)
    }

    fn principal(
        &self,
        claims: &Map<String, Value>,
        via: Via,
    ) -> Result<Principal, Unauthenticated> {
        let text = |k: &str| claims.get(k).and_then(Value::as_str).map(str::to_string);
        let subject = text("sub").unwrap_or_default();
        let role = self.roles.role(claims).ok_or_else(|| {
            Unauthenticated::new(
                "no role",
                format!("{subject} is signed in but has no role here (see oidc_role_map)"),
            )
        })?;
        Ok(Principal {
            subject,
            name: text("name").or_else(|| text("preferred_username")),
            email: text("email"),
            role,
            via,
            csrf: None,
        })
    }

    fn redirect_uri(&self, headers: &HeaderMap) -> String {
        let base = match &self.public_url {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => {
                let host = headers
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .unwrap_or("localhost");
                format!("http://{host}")
            }
        };
        format!("{base}/auth/callback")
    }

    /// Exchanges `code` for tokens and returns the ID token's claims.
    async fn exchange(
        &self,
        code: &str,
        verifier: &str,
        redirect_uri: &str,
        nonce: &str,
    ) -> ApiResult<Map<String, Value>> {
        let endpoint = self
            .provider
            .discovery()
            .await
            .map_err(|e| ApiError::new(StatusCode::BAD_GATEWAY, e.detail))?
            .token_endpoint;
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", verifier),
            ("client_id", self.client_id.as_str()),
        ];
        let mut request = reqwest::Client::new().post(&endpoint);
        match &self.client_secret {
            Some(secret) => request = request.basic_auth(enc(&self.client_id), Some(enc(secret))),
            None => form.truncate(5),
        }
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let resp = request
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .map_err(|e| {
                ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    format!("the identity provider's token endpoint did not answer: {e}"),
                )
            })?;
        let status = resp.status();
        let answer: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            let why = answer["error_description"]
                .as_str()
                .or(answer["error"].as_str())
                .unwrap_or("no reason given");
            warn!(%status, reason = why, "code exchange refused");
            return Err(ApiError::unauthorized(format!(
                "the identity provider refused the sign-in: {why}"
            )));
        }
        let id_token = answer["id_token"].as_str().ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                "the identity provider sent no ID token",
            )
        })?;
        let claims = self
            .provider
            .verify(id_token, &[&self.client_id])
            .await
            .map_err(|e| {
                ApiError::unauthorized(format!("the ID token was refused: {}", e.detail))
            })?;
        if claims.get("nonce").and_then(Value::as_str) != Some(nonce) {
            return Err(ApiError::unauthorized(
                "the ID token's nonce is not this sign-in's",
            ));
        }
        Ok(claims)
    }
}

/// `application/x-www-form-urlencoded` encoding of a client credential
/// for HTTP Basic (RFC 6749 §2.3.1).
fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn sign_in(s: &AppState) -> ApiResult<&SignIn> {
    s.sign_in.as_deref().ok_or_else(|| {
        ApiError::not_found(
            "single sign-on is not configured (INFRAAI_OIDC_ISSUER, INFRAAI_OIDC_CLIENT_ID)",
        )
    })
}

/// Starts a sign-in: redirects to the provider.
#[utoipa::path(get, path = "/auth/login", tag = "auth", responses((status = 303, description = "to the identity provider"), (status = 404, description = "single sign-on is off")))]
pub(crate) async fn login(State(s): State<AppState>, headers: HeaderMap) -> ApiResult<Response> {
    let si = sign_in(&s)?;
    let d = si
        .provider
        .discovery()
        .await
        .map_err(|e| ApiError::new(StatusCode::BAD_GATEWAY, e.detail))?;
    let (state, nonce, verifier) = (random_token(), random_token(), random_token());
    let redirect_uri = si.redirect_uri(&headers);
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", "code")
        .append_pair("client_id", &si.client_id)
        .append_pair("redirect_uri", &redirect_uri)
        .append_pair("scope", &si.scopes)
        .append_pair("state", &state)
        .append_pair("nonce", &nonce)
        .append_pair("code_challenge", &pkce_challenge(&verifier))
        .append_pair("code_challenge_method", "S256")
        .finish();
    let join = if d.authorization_endpoint.contains('?') {
        '&'
    } else {
        '?'
    };
    let location = format!("{}{join}{query}", d.authorization_endpoint);
    let cookie = si.sessions.login(state, nonce, verifier, redirect_uri);
    Ok((
        StatusCode::SEE_OTHER,
        [(header::LOCATION, location)],
        [(header::SET_COOKIE, cookie)],
    )
        .into_response())
}

/// The provider's answer to a sign-in.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// Ends a sign-in: checks the state, exchanges the code (with the PKCE
/// verifier), verifies the ID token and its nonce, maps the role, and sets
/// the session cookie.
#[utoipa::path(get, path = "/auth/callback", tag = "auth", params(Callback), responses((status = 303, description = "signed in, to the dashboard"), (status = 401, description = "refused")))]
pub(crate) async fn callback(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<Callback>,
) -> ApiResult<Response> {
    let si = sign_in(&s)?;
    if let Some(error) = q.error {
        let why = q.error_description.unwrap_or_default();
        return Err(ApiError::unauthorized(format!(
            "the identity provider ended the sign-in: {error} {why}"
        )));
    }
    let pending = si
        .sessions
        .pending_login(&headers)
        .ok_or_else(|| ApiError::bad_request("no sign-in under way in this browser (or it took over 10 minutes): start again at /auth/login"))?;
    if !super::same(q.state.as_deref().unwrap_or_default(), &pending.state) {
        return Err(ApiError::bad_request(
            "the sign-in's state does not match: start again at /auth/login",
        ));
    }
    let code = q
        .code
        .ok_or_else(|| ApiError::bad_request("the identity provider sent no code"))?;
    let claims = si
        .exchange(
            &code,
            &pending.verifier,
            &pending.redirect_uri,
            &pending.nonce,
        )
        .await?;
    let p = si
        .principal(&claims, Via::Session)
        .map_err(|e| ApiError::new(StatusCode::FORBIDDEN, e.detail))?;
    info!(subject = %p.subject, role = %p.role, "signed in");
    Ok((
        StatusCode::SEE_OTHER,
        [(header::LOCATION, "/".to_string())],
        axum::response::AppendHeaders([
            (header::SET_COOKIE, si.sessions.start(&p)),
            (header::SET_COOKIE, si.sessions.login_done()),
        ]),
    )
        .into_response())
}

/// Signs out of the dashboard (clears the session cookie).
#[utoipa::path(post, path = "/auth/logout", tag = "auth", responses((status = 204, description = "signed out")))]
pub(crate) async fn logout(State(s): State<AppState>) -> Response {
    match &s.sign_in {
        Some(si) => (
            StatusCode::NO_CONTENT,
            [(header::SET_COOKIE, si.sessions.end())],
        )
            .into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    }
}

/// Who the caller is: subject, name, e-mail, role, how they signed in, and
/// for a session its CSRF token.
#[utoipa::path(get, path = "/auth/me", tag = "auth", responses((status = 200, body = Principal)))]
pub(crate) async fn me(Extension(p): Extension<Principal>) -> Json<Principal> {
    Json(p)
}

/// Whether single sign-on is on (public: the dashboard asks before anyone
/// signs in).
#[utoipa::path(get, path = "/auth/config", tag = "auth", responses((status = 200, description = "`{\"sign_in\": bool}`")))]
pub(crate) async fn config(State(s): State<AppState>) -> Json<Value> {
    Json(json!({"sign_in": s.sign_in.is_some()}))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn the_highest_mapped_role_wins_and_the_default_covers_the_rest() {
        let entries = ["sre=approver".to_string(), "platform=operator".to_string()];
        let map = RoleMap::new("groups", &entries, "viewer").unwrap();
        let role = |v| map.role(&claims(v));
        assert_eq!(
            role(json!({"groups": ["sre", "platform"]})),
            Some(Role::Operator)
        );
        assert_eq!(role(json!({"groups": "sre"})), Some(Role::Approver));
        assert_eq!(role(json!({"groups": ["staff"]})), Some(Role::Viewer));
        assert_eq!(role(json!({})), Some(Role::Viewer));
        let none = RoleMap::new("groups", &entries, "none").unwrap();
        assert_eq!(none.role(&claims(json!({"groups": ["staff"]}))), None);
    }

    #[test]
    fn a_dotted_claim_reaches_into_objects() {
        let map =
            RoleMap::new("realm_access.roles", &["infra-admin=admin".into()], "none").unwrap();
        let c = claims(json!({"realm_access": {"roles": ["offline_access", "infra-admin"]}}));
        assert_eq!(map.role(&c), Some(Role::Admin));
    }

    #[test]
    fn bad_mappings_are_refused_at_start() {
        assert!(RoleMap::new("groups", &["sre".into()], "viewer").is_err());
        assert!(RoleMap::new("groups", &["sre=root".into()], "viewer").is_err());
        assert!(RoleMap::new("groups", &[], "everyone").is_err());
    }

    #[test]
    fn the_pkce_challenge_is_rfc_7636s() {
        // RFC 7636, appendix B.
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        assert_eq!(
            pkce_challenge(verifier),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        assert_eq!(random_token().len(), 43);
        assert_ne!(random_token(), random_token());
    }
}
