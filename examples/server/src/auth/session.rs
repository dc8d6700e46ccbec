//! The dashboard's session cookie, and the short-lived cookie that carries
//! a sign-in's state, nonce and PKCE verifier to the callback.
//!
//! Both are HS256 JWTs signed with the session key: no server-side session
//! table, so replicas sharing `INFRAAI_SESSION_SECRET` accept each other's
//! sessions. The cookies are `HttpOnly`, `SameSite=Lax` and, when the
//! server's public URL is HTTPS, `Secure`.

use super::{Principal, Role, Unauthenticated, Via};
use axum::http::{header, HeaderMap, HeaderValue};
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "infraai_session";
/// The sign-in cookie's name (state, nonce, PKCE verifier).
pub const LOGIN_COOKIE: &str = "infraai_login";
/// How long a sign-in may take at the provider.
pub const LOGIN_SECS: u64 = 600;
const SESSION_ISSUER: &str = "infraai-session";
const LOGIN_ISSUER: &str = "infraai-login";

/// What a session cookie holds.
#[derive(Serialize, Deserialize)]
struct SessionClaims {
    iss: String,
    sub: String,
    name: Option<String>,
    email: Option<String>,
    role: Role,
    csrf: String,
    exp: u64,
}

/// What the sign-in cookie holds until the callback.
#[derive(Serialize, Deserialize)]
pub struct LoginClaims {
    iss: String,
    /// The `state` sent to the provider.
    pub state: String,
    /// The `nonce` the ID token must carry.
    pub nonce: String,
    /// The PKCE code verifier.
    pub verifier: String,
    /// The redirect URI sent (the token request repeats it).
    pub redirect_uri: String,
    exp: u64,
}

/// Signs and reads the cookies.
pub struct Sessions {
    encoding: EncodingKey,
    decoding: DecodingKey,
    lifetime: Duration,
    secure: bool,
}

impl Sessions {
    /// Sessions signed with `secret` lasting `lifetime`; `secure` marks the
    /// cookies `Secure`.
    pub fn new(secret: &[u8], lifetime: Duration, secure: bool) -> Self {
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            lifetime,
            secure,
        }
    }

    fn sign<T: Serialize>(&self, claims: &T) -> String {
        // HS256 over a serializable struct cannot fail.
        encode(&Header::new(Algorithm::HS256), claims, &self.encoding).unwrap_or_default()
    }

    fn read<T: serde::de::DeserializeOwned>(&self, token: &str, issuer: &str) -> Option<T> {
        let mut v = Validation::new(Algorithm::HS256);
        v.set_issuer(&[issuer]);
        v.set_required_spec_claims(&["exp", "iss"]);
        v.leeway = 0;
        decode::<T>(token, &self.decoding, &v)
            .ok()
            .map(|d| d.claims)
    }

    fn cookie(&self, name: &str, value: &str, max_age: u64) -> HeaderValue {
        let secure = if self.secure { "; Secure" } else { "" };
        let text =
            format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}");
        HeaderValue::from_str(&text).unwrap_or(HeaderValue::from_static(""))
    }

    /// The `Set-Cookie` value of a new session for `p`.
    pub fn start(&self, p: &Principal) -> HeaderValue {
        let claims = SessionClaims {
            iss: SESSION_ISSUER.into(),
            sub: p.subject.clone(),
            name: p.name.clone(),
            email: p.email.clone(),
            role: p.role,
            csrf: super::oidc::random_token(),
            exp: now() + self.lifetime.as_secs(),
        };
        self.cookie(SESSION_COOKIE, &self.sign(&claims), self.lifetime.as_secs())
    }

    /// The `Set-Cookie` value that ends the session.
    pub fn end(&self) -> HeaderValue {
        self.cookie(SESSION_COOKIE, "", 0)
    }

    /// The signed-in caller of a request carrying a session cookie: `None`
    /// without one, refused when it is forged or expired.
    pub fn principal(&self, headers: &HeaderMap) -> Result<Option<Principal>, Unauthenticated> {
        let Some(token) = cookie(headers, SESSION_COOKIE).filter(|t| !t.is_empty()) else {
            return Ok(None);
        };
        let c: SessionClaims = self.read(token, SESSION_ISSUER).ok_or_else(|| {
            Unauthenticated::new(
                "expired session",
                "the session has expired or is not this server's: sign in again",
            )
        })?;
        Ok(Some(Principal {
            subject: c.sub,
            name: c.name,
            email: c.email,
            role: c.role,
            via: Via::Session,
            csrf: Some(c.csrf),
        }))
    }

    /// The `Set-Cookie` value carrying a sign-in's secrets to the callback.
    pub fn login(
        &self,
        state: String,
        nonce: String,
        verifier: String,
        redirect_uri: String,
    ) -> HeaderValue {
        let claims = LoginClaims {
            iss: LOGIN_ISSUER.into(),
            state,
            nonce,
            verifier,
            redirect_uri,
            exp: now() + LOGIN_SECS,
        };
        self.cookie(LOGIN_COOKIE, &self.sign(&claims), LOGIN_SECS)
    }

    /// The sign-in under way, from its cookie.
    pub fn pending_login(&self, headers: &HeaderMap) -> Option<LoginClaims> {
        self.read(cookie(headers, LOGIN_COOKIE)?, LOGIN_ISSUER)
    }

    /// The `Set-Cookie` value that clears the sign-in cookie.
    pub fn login_done(&self) -> HeaderValue {
        self.cookie(LOGIN_COOKIE, "", 0)
    }
}

/// The value of cookie `name` in a request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}
