//! Access tokens for Google APIs: a fixed token, the metadata server, or a
//! service-account key exchanged for tokens (RS256 JWT bearer grant).
//!
//! Every type here keeps its secrets in [`Secret`] and writes its own `Debug`,
//! so no token or private key can reach a log line or an error.

use async_trait::async_trait;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use infraai_core::{Error, Result, Secret};
use ring::rand::SystemRandom;
use ring::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
use serde::Deserialize;
use serde_json::json;
use std::fmt;
use std::future::Future;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;
use tracing::debug;

/// The scope of every call this crate makes.
pub const CLOUD_PLATFORM_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

/// How long before its expiry a cached token is replaced (default 60 s).
pub const DEFAULT_REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// Supplies OAuth access tokens.
#[async_trait]
pub trait Credentials: Send + Sync {
    /// A valid access token.
    async fn token(&self) -> Result<Secret>;
}

/// A fixed token: one the embedding program read from its environment (e.g.
/// `GOOGLE_OAUTH_ACCESS_TOKEN`, or `gcloud auth print-access-token`), or a
/// test token. It is never refreshed; when it expires, calls fail with
/// `Unauthenticated`.
#[derive(Clone, Debug)]
pub struct StaticToken(pub Secret);

#[async_trait]
impl Credentials for StaticToken {
    async fn token(&self) -> Result<Secret> {
        Ok(self.0.clone())
    }
}

/// One cached token, replaced `margin` before it expires. The lock is held
/// while fetching, so concurrent callers wait for one fetch instead of each
/// starting their own.
struct TokenCache {
    margin: Duration,
    slot: Mutex<Option<(Secret, Instant)>>,
}

impl TokenCache {
    fn new() -> Self {
        Self {
            margin: DEFAULT_REFRESH_MARGIN,
            slot: Mutex::new(None),
        }
    }

    async fn get<F, Fut>(&self, fetch: F) -> Result<Secret>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(Secret, Duration)>>,
    {
        let mut slot = self.slot.lock().await;
        if let Some((token, until)) = slot.as_ref() {
            if Instant::now() < *until {
                return Ok(token.clone());
            }
        }
        let (token, lifetime) = fetch().await?;
        let until = Instant::now() + lifetime.saturating_sub(self.margin);
        *slot = Some((token.clone(), until));
        Ok(token)
    }
}

/// The token response of the metadata server and of Google's OAuth endpoint.
#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: u64,
}

fn http_client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .unwrap_or_default()
}

/// Tokens from the metadata server of the VM or container the agent runs on
/// (the attached service account), cached until a minute before expiry.
pub struct MetadataServer {
    base: String,
    http: reqwest::Client,
    cache: TokenCache,
}

impl fmt::Debug for MetadataServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetadataServer")
            .field("base", &self.base)
            .field("refresh_margin", &self.cache.margin)
            .finish_non_exhaustive()
    }
}

impl MetadataServer {
    /// The metadata server at `base` (default
    /// `http://metadata.google.internal`).
    pub fn new(base: impl Into<String>) -> Self {
        Self {
            base: base.into(),
            http: http_client(Duration::from_secs(5)),
            cache: TokenCache::new(),
        }
    }

    /// Replaces a cached token this long before it expires (default 60 s).
    pub fn with_refresh_margin(mut self, margin: Duration) -> Self {
        self.cache.margin = margin;
        self
    }

    async fn fetch(&self) -> Result<(Secret, Duration)> {
        let url = format!(
            "{}/computeMetadata/v1/instance/service-accounts/default/token",
            self.base.trim_end_matches('/')
        );
        let response = self
            .http
            .get(url)
            .header("Metadata-Flavor", "Google")
            .send()
            .await
            .map_err(|e| Error::backend("gcp-metadata", "token", true, e.without_url()))?;
        let status = response.status();
        if !status.is_success() {
            return Err(Error::backend(
                "gcp-metadata",
                "token",
                status.is_server_error(),
                format!("metadata server answered HTTP {status}"),
            ));
        }
        let t: TokenResponse = response
            .json()
            .await
            .map_err(|e| Error::backend("gcp-metadata", "token", false, e.without_url()))?;
        debug!(
            expires_in = t.expires_in,
            "access token from the metadata server"
        );
        Ok((
            Secret::new(t.access_token),
            Duration::from_secs(t.expires_in),
        ))
    }
}

impl Default for MetadataServer {
    fn default() -> Self {
        Self::new("http://metadata.google.internal")
    }
}

#[async_trait]
impl Credentials for MetadataServer {
    async fn token(&self) -> Result<Secret> {
        self.cache.get(|| self.fetch()).await
    }
}

/// A service-account key file as the Cloud console downloads it (JSON). Only
/// the fields the token exchange needs are kept; `Debug` hides the key.
#[derive(Clone, Deserialize)]
pub struct ServiceAccountKey {
    /// `type`: must be `service_account` when present.
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    /// The service account, the JWT's issuer.
    pub client_email: String,
    /// The RSA private key, PEM (PKCS#8 `PRIVATE KEY` or PKCS#1 `RSA PRIVATE KEY`).
    pub private_key: Secret,
    /// Which of the account's keys this is (the JWT header's `kid`).
    pub private_key_id: Option<String>,
    /// Where assertions are exchanged for tokens (the JWT's audience).
    #[serde(default = "default_token_uri")]
    pub token_uri: String,
}

fn default_token_uri() -> String {
    "https://oauth2.googleapis.com/token".into()
}

impl fmt::Debug for ServiceAccountKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceAccountKey")
            .field("client_email", &self.client_email)
            .field("private_key", &self.private_key)
            .field("private_key_id", &self.private_key_id)
            .field("token_uri", &self.token_uri)
            .finish()
    }
}

impl ServiceAccountKey {
    /// Parses a key file. Errors name the problem, never the key.
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        let key: Self = serde_json::from_slice(bytes).map_err(|e| {
            // serde_json errors quote no input values, only positions and field names.
            Error::invalid("service-account key file", e.to_string())
        })?;
        if let Some(kind) = &key.kind {
            if kind != "service_account" {
                return Err(Error::invalid(
                    "service-account key file",
                    format!("type is {kind:?}, not \"service_account\""),
                ));
            }
        }
        Ok(key)
    }
}

/// PEM → DER of the first block with `label`.
fn pem_block(pem: &str, label: &str) -> Option<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem.find(&begin)? + begin.len();
    let stop = start + pem[start..].find(&end)?;
    let body: String = pem[start..stop]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    STANDARD.decode(body).ok()
}

/// An RS256 (RSASSA-PKCS1-v1_5 with SHA-256) signer over an RSA private key.
///
/// Built on `ring`, which the workspace already links for TLS (rustls), so
/// service-account support adds no crate to the build.
pub struct Rs256Signer {
    key: RsaKeyPair,
    rng: SystemRandom,
}

impl fmt::Debug for Rs256Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rs256Signer")
            .field("modulus_bits", &(self.key.public().modulus_len() * 8))
            .finish_non_exhaustive()
    }
}

impl Rs256Signer {
    /// Parses a PEM private key: PKCS#8 (`BEGIN PRIVATE KEY`, what Google
    /// issues) or PKCS#1 (`BEGIN RSA PRIVATE KEY`).
    pub fn from_pem(pem: &Secret) -> Result<Self> {
        let pem = pem.expose();
        let bad = |why: String| Error::invalid("service-account private key", why);
        let key = if let Some(der) = pem_block(pem, "PRIVATE KEY") {
            RsaKeyPair::from_pkcs8(&der)
        } else if let Some(der) = pem_block(pem, "RSA PRIVATE KEY") {
            RsaKeyPair::from_der(&der)
        } else {
            return Err(bad(
                "no PEM \"PRIVATE KEY\" or \"RSA PRIVATE KEY\" block".into()
            ));
        }
        .map_err(|e| bad(format!("not a usable RSA key: {e}")))?;
        Ok(Self {
            key,
            rng: SystemRandom::new(),
        })
    }

    /// The signature of `message`.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>> {
        let mut signature = vec![0; self.key.public().modulus_len()];
        self.key
            .sign(&RSA_PKCS1_SHA256, &self.rng, message, &mut signature)
            .map_err(|_| Error::backend("gcp-credentials", "sign", false, "RSA signing failed"))?;
        Ok(signature)
    }
}

/// Tokens for a service account from its JSON key: a JWT assertion signed
/// with the key (RS256) is POSTed to the key's `token_uri` with
/// `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`; the token is
/// cached until a minute before it expires.
pub struct ServiceAccount {
    key: ServiceAccountKey,
    signer: Rs256Signer,
    token_uri: String,
    scopes: Vec<String>,
    http: reqwest::Client,
    cache: TokenCache,
}

impl fmt::Debug for ServiceAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceAccount")
            .field("key", &self.key)
            .field("token_uri", &self.token_uri)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

/// Google's OAuth error body.
#[derive(Deserialize)]
struct OAuthError {
    error: String,
    error_description: Option<String>,
}

/// Lifetime asked for in assertions; Google's maximum.
const ASSERTION_LIFETIME_SECS: i64 = 3600;

impl ServiceAccount {
    /// Credentials for `key`, scope `cloud-platform`. A key that does not
    /// parse is an error here, not at the first call.
    pub fn new(key: ServiceAccountKey) -> Result<Self> {
        let signer = Rs256Signer::from_pem(&key.private_key)?;
        Ok(Self {
            token_uri: key.token_uri.clone(),
            key,
            signer,
            scopes: vec![CLOUD_PLATFORM_SCOPE.into()],
            http: http_client(Duration::from_secs(30)),
            cache: TokenCache::new(),
        })
    }

    /// Credentials from the bytes of a key file.
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        Self::new(ServiceAccountKey::from_json(bytes)?)
    }

    /// Exchanges assertions at `uri` instead of the key's `token_uri` (a
    /// private endpoint, or a test server). The JWT's audience follows.
    pub fn with_token_uri(mut self, uri: impl Into<String>) -> Self {
        self.token_uri = uri.into();
        self
    }

    /// Asks for these scopes instead of `cloud-platform`.
    pub fn with_scopes(mut self, scopes: Vec<String>) -> Self {
        self.scopes = scopes;
        self
    }

    /// Replaces a cached token this long before it expires (default 60 s).
    pub fn with_refresh_margin(mut self, margin: Duration) -> Self {
        self.cache.margin = margin;
        self
    }

    /// The service account's e-mail.
    pub fn client_email(&self) -> &str {
        &self.key.client_email
    }

    /// The signed JWT assertion issued at `now` (UNIX seconds): header
    /// `{alg: RS256, typ: JWT, kid}`, claims `{iss, scope, aud, iat, exp}`
    /// with `exp = iat + 3600`.
    pub fn assertion(&self, now: i64) -> Result<Secret> {
        let mut header = json!({"alg": "RS256", "typ": "JWT"});
        if let Some(kid) = &self.key.private_key_id {
            header["kid"] = json!(kid);
        }
        let claims = json!({
            "iss": self.key.client_email,
            "scope": self.scopes.join(" "),
            "aud": self.token_uri,
            "iat": now,
            "exp": now + ASSERTION_LIFETIME_SECS,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = self.signer.sign(signing_input.as_bytes())?;
        Ok(Secret::new(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        )))
    }

    async fn fetch(&self) -> Result<(Secret, Duration)> {
        let assertion = self.assertion(chrono::Utc::now().timestamp())?;
        let response = self
            .http
            .post(&self.token_uri)
            .form(&[
                ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                ("assertion", assertion.expose()),
            ])
            .send()
            .await
            .map_err(|e| Error::backend("gcp-oauth", "token", true, e.without_url()))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| Error::backend("gcp-oauth", "token", true, e.without_url()))?;
        if !status.is_success() {
            let why = serde_json::from_slice::<OAuthError>(&body)
                .map(|e| match e.error_description {
                    Some(d) => format!("{}: {d}", e.error),
                    None => e.error,
                })
                .unwrap_or_else(|_| format!("HTTP {status}"));
            let detail = format!(
                "the token endpoint refused the assertion for {}: {why}",
                self.key.client_email
            );
            return Err(match status.as_u16() {
                400 | 401 | 403 => Error::Unauthenticated { detail },
                s => Error::backend(
                    "gcp-oauth",
                    "token",
                    s == 429 || s >= 500,
                    format!("HTTP {status}: {detail}"),
                ),
            });
        }
        let t: TokenResponse = serde_json::from_slice(&body).map_err(|e| {
            Error::backend(
                "gcp-oauth",
                "token",
                false,
                format!("unexpected token response: {e}"),
            )
        })?;
        debug!(client_email = %self.key.client_email, expires_in = t.expires_in, "access token for a service account");
        Ok((
            Secret::new(t.access_token),
            Duration::from_secs(t.expires_in),
        ))
    }
}

#[async_trait]
impl Credentials for ServiceAccount {
    async fn token(&self) -> Result<Secret> {
        self.cache.get(|| self.fetch()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_blocks_are_found_and_decoded() {
        let pem = "junk\n-----BEGIN PRIVATE KEY-----\naGVs\nbG8=\n-----END PRIVATE KEY-----\n";
        assert_eq!(
            pem_block(pem, "PRIVATE KEY").as_deref(),
            Some(&b"hello"[..])
        );
        assert_eq!(pem_block(pem, "RSA PRIVATE KEY"), None);
        assert_eq!(
            pem_block(
                "-----BEGIN PRIVATE KEY-----\n!!\n-----END PRIVATE KEY-----",
                "PRIVATE KEY"
            ),
            None
        );
    }

    #[test]
    fn a_bad_key_is_a_clear_error_without_the_key() {
        let e = Rs256Signer::from_pem(&Secret::new(
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----",
        ))
        .unwrap_err();
        assert!(matches!(e, Error::Invalid { .. }), "{e}");
        assert!(!e.to_string().contains("AAAA"));
        let e = Rs256Signer::from_pem(&Secret::new("not pem")).unwrap_err();
        assert!(e.to_string().contains("no PEM"), "{e}");
        let e = ServiceAccountKey::from_json(
            br#"{"type":"authorized_user","client_email":"a","private_key":"k"}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("authorized_user"), "{e}");
    }
}
