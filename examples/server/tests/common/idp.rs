//! A small OpenID Connect issuer for tests: discovery, JWKS, an authorize
//! page with one sign-in link per user, and a token endpoint that checks
//! the code, the redirect URI, the client and the PKCE verifier. Tokens are
//! real RS256/ES256 JWTs; the published keys can be rotated.
#![allow(dead_code)]

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, RsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// A signing key and its public JWK.
#[derive(Clone)]
pub struct SigningKey {
    pub kid: String,
    pub alg: Algorithm,
    encoding: EncodingKey,
    pub jwk: Value,
}

impl SigningKey {
    /// RS256 with the committed test key `n` (1 or 2).
    pub fn rsa(n: u8, kid: &str) -> Self {
        let path = format!(
            "{}/tests/fixtures/oidc/rsa-{n}.der",
            env!("CARGO_MANIFEST_DIR")
        );
        let der = std::fs::read(&path).expect("test RSA key");
        let pair = RsaKeyPair::from_der(&der).expect("PKCS#1 RSA key");
        let public = ring::rsa::PublicKeyComponents::<Vec<u8>>::from(pair.public());
        Self {
            kid: kid.into(),
            alg: Algorithm::RS256,
            encoding: EncodingKey::from_rsa_der(&der),
            jwk: json!({"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
                "n": URL_SAFE_NO_PAD.encode(&public.n), "e": URL_SAFE_NO_PAD.encode(&public.e)}),
        }
    }

    /// ES256 with a key made now.
    pub fn ec(kid: &str) -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let point = pair.public_key().as_ref(); // 0x04 ‖ x ‖ y
        Self {
            kid: kid.into(),
            alg: Algorithm::ES256,
            encoding: EncodingKey::from_ec_der(pkcs8.as_ref()),
            jwk: json!({"kty": "EC", "crv": "P-256", "kid": kid, "use": "sig", "alg": "ES256",
                "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..65])}),
        }
    }

    /// `claims` signed with this key.
    pub fn sign(&self, claims: &Value) -> String {
        let mut h = Header::new(self.alg);
        h.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&h, claims, &self.encoding).unwrap()
    }
}

/// A user of the issuer.
#[derive(Clone)]
pub struct User {
    pub sub: &'static str,
    pub name: &'static str,
    pub email: &'static str,
    pub groups: &'static [&'static str],
}

/// Alice approves, Bob views, Olga operates.
pub const USERS: &[User] = &[
    User {
        sub: "alice-7f3a",
        name: "Alice Approver",
        email: "alice@example.com",
        groups: &["sre"],
    },
    User {
        sub: "bob-19c2",
        name: "Bob Viewer",
        email: "bob@example.com",
        groups: &["staff"],
    },
    User {
        sub: "olga-5d1e",
        name: "Olga Operator",
        email: "olga@example.com",
        groups: &["platform", "sre"],
    },
];

/// The client id the issuer knows.
pub const CLIENT_ID: &str = "infraai-dashboard";
/// Its secret.
pub const CLIENT_SECRET: &str = "test-client-secret";

struct Code {
    user: User,
    client_id: String,
    redirect_uri: String,
    nonce: String,
    challenge: String,
}

struct Inner {
    issuer: String,
    keys: Mutex<Vec<SigningKey>>,
    codes: Mutex<HashMap<String, Code>>,
}

/// The running issuer.
pub struct Idp {
    pub issuer: String,
    inner: Arc<Inner>,
}

impl Idp {
    /// Starts on a free loopback port, publishing `keys` (the first signs).
    pub async fn start(keys: Vec<SigningKey>) -> Idp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let inner = Arc::new(Inner {
            issuer: issuer.clone(),
            keys: Mutex::new(keys),
            codes: Mutex::default(),
        });
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .route("/authorize", get(authorize))
            .route("/authorize/as", get(authorize_as))
            .route("/token", post(token))
            .with_state(inner.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Idp { issuer, inner }
    }

    /// Publishes `keys` instead (a rotation); the first signs from now on.
    pub fn rotate(&self, keys: Vec<SigningKey>) {
        *self.inner.keys.lock().unwrap() = keys;
    }

    /// An access token for `user` with `aud`, valid for `ttl` seconds from
    /// now (negative: expired), signed by `key`.
    pub fn access_token(&self, key: &SigningKey, user: &User, aud: &str, ttl: i64) -> String {
        key.sign(&self.claims(user, aud, ttl))
    }

    /// The registered claims of a token for `user`.
    pub fn claims(&self, user: &User, aud: &str, ttl: i64) -> Value {
        let now = chrono::Utc::now().timestamp();
        json!({"iss": self.issuer, "sub": user.sub, "aud": aud, "iat": now, "exp": now + ttl,
               "name": user.name, "email": user.email, "groups": user.groups})
    }
}

async fn discovery(State(s): State<Arc<Inner>>) -> Json<Value> {
    let i = &s.issuer;
    Json(json!({
        "issuer": i, "authorization_endpoint": format!("{i}/authorize"), "token_endpoint": format!("{i}/token"),
        "jwks_uri": format!("{i}/jwks"), "response_types_supported": ["code"], "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256", "ES256"], "code_challenge_methods_supported": ["S256"],
    }))
}

async fn jwks(State(s): State<Arc<Inner>>) -> Json<Value> {
    let keys: Vec<Value> = s
        .keys
        .lock()
        .unwrap()
        .iter()
        .map(|k| k.jwk.clone())
        .collect();
    Json(json!({ "keys": keys }))
}

/// One link per user, carrying the request on.
async fn authorize(Query(q): Query<HashMap<String, String>>) -> Response {
    for needed in [
        "client_id",
        "redirect_uri",
        "state",
        "nonce",
        "code_challenge",
    ] {
        if !q.contains_key(needed) {
            return (StatusCode::BAD_REQUEST, format!("missing {needed}")).into_response();
        }
    }
    if q.get("code_challenge_method").map(String::as_str) != Some("S256")
        || q.get("response_type").map(String::as_str) != Some("code")
    {
        return (
            StatusCode::BAD_REQUEST,
            "PKCE S256 and response_type=code only",
        )
            .into_response();
    }
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(q.iter())
        .finish();
    let links: String = USERS
        .iter()
        .map(|u| format!("<li><a id=\"as-{0}\" href=\"/authorize/as?user={0}&{query}\">Sign in as {1}</a></li>", u.sub, u.name))
        .collect();
    Html(format!(
        "<!doctype html><title>Test issuer</title><h1>Test issuer</h1><ul>{links}</ul>"
    ))
    .into_response()
}

async fn authorize_as(
    State(s): State<Arc<Inner>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some(user) = USERS
        .iter()
        .find(|u| Some(u.sub) == q.get("user").map(String::as_str))
    else {
        return (StatusCode::BAD_REQUEST, "unknown user").into_response();
    };
    let code = URL_SAFE_NO_PAD.encode(uuid::Uuid::now_v7().as_bytes());
    s.codes.lock().unwrap().insert(
        code.clone(),
        Code {
            user: user.clone(),
            client_id: q["client_id"].clone(),
            redirect_uri: q["redirect_uri"].clone(),
            nonce: q["nonce"].clone(),
            challenge: q["code_challenge"].clone(),
        },
    );
    let back = form_urlencoded::Serializer::new(String::new())
        .append_pair("code", &code)
        .append_pair("state", &q["state"])
        .finish();
    (
        StatusCode::SEE_OTHER,
        [(header::LOCATION, format!("{}?{back}", q["redirect_uri"]))],
    )
        .into_response()
}

fn token_error(error: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": error, "error_description": format!("test issuer: {error}")})),
    )
        .into_response()
}

async fn token(State(s): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> Response {
    let f: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok());
    if basic.as_deref() != Some(&format!("{CLIENT_ID}:{CLIENT_SECRET}")) {
        return token_error("invalid_client");
    }
    if f.get("grant_type").map(String::as_str) != Some("authorization_code") {
        return token_error("unsupported_grant_type");
    }
    // A code is good once.
    let Some(code) = f
        .get("code")
        .and_then(|c| s.codes.lock().unwrap().remove(c))
    else {
        return token_error("invalid_grant");
    };
    let verifier = f.get("code_verifier").cloned().unwrap_or_default();
    let challenge = URL_SAFE_NO_PAD.encode(ring::digest::digest(
        &ring::digest::SHA256,
        verifier.as_bytes(),
    ));
    if challenge != code.challenge
        || f.get("redirect_uri") != Some(&code.redirect_uri)
        || code.client_id != CLIENT_ID
    {
        return token_error("invalid_grant");
    }
    let key = s.keys.lock().unwrap()[0].clone();
    let idp = Idp {
        issuer: s.issuer.clone(),
        inner: s.clone(),
    };
    let mut id = idp.claims(&code.user, CLIENT_ID, 300);
    id["nonce"] = json!(code.nonce);
    Json(json!({
        "token_type": "Bearer", "expires_in": 300,
        "id_token": key.sign(&id),
        "access_token": idp.access_token(&key, &code.user, CLIENT_ID, 300),
    }))
    .into_response()
}
