//! Verifying the identity provider's JWTs (API access tokens and the ID
//! tokens of sign-in) against its published keys.
//!
//! `jsonwebtoken` checks the signature and the registered claims; this file
//! finds the key. The provider's discovery document names its JWKS; the
//! keys are cached and fetched again when a token names a key id the cache
//! lacks (a rotation), at most every [`REFETCH_AFTER`], and at the latest
//! every [`MAX_AGE`]. Only RS256 and ES256 are accepted: `none`, HMAC (whose
//! "key" would be public) and everything else are refused before any key is
//! looked at.

use super::Unauthenticated;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::time::{Duration, Instant};
use tokio::sync::Mutex;
use tracing::{info, warn};

/// Soonest the keys are fetched again for an unknown key id.
pub const REFETCH_AFTER: Duration = Duration::from_secs(2);
/// Longest the keys are kept.
pub const MAX_AGE: Duration = Duration::from_secs(3600);
/// Clock skew allowed on `exp` and `nbf`.
pub const LEEWAY_SECS: u64 = 30;

/// What the provider's discovery document says (the parts used here).
#[derive(Clone, Debug, Deserialize)]
pub struct Discovery {
    /// Must equal the configured issuer.
    pub issuer: String,
    /// Where sign-in starts.
    pub authorization_endpoint: String,
    /// Where a code is exchanged for tokens.
    pub token_endpoint: String,
    /// The provider's public keys.
    pub jwks_uri: String,
}

struct Cache {
    discovery: Option<Discovery>,
    keys: JwkSet,
    fetched: Option<Instant>,
}

/// The provider's discovery document and keys, fetched when first needed.
pub struct Provider {
    issuer: String,
    http: reqwest::Client,
    cache: Mutex<Cache>,
}

impl Provider {
    /// A provider at `issuer` (nothing is fetched yet).
    pub fn new(issuer: &str, http: reqwest::Client) -> Self {
        Self {
            issuer: issuer.trim_end_matches('/').to_string(),
            http,
            cache: Mutex::new(Cache {
                discovery: None,
                keys: JwkSet { keys: vec![] },
                fetched: None,
            }),
        }
    }

    /// The issuer, as tokens must name it.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The discovery document, fetched once.
    pub async fn discovery(&self) -> Result<Discovery, Unauthenticated> {
        let mut cache = self.cache.lock().await;
        self.discovered(&mut cache).await
    }

    async fn discovered(&self, cache: &mut Cache) -> Result<Discovery, Unauthenticated> {
        if let Some(d) = &cache.discovery {
            return Ok(d.clone());
        }
        let url = format!("{}/.well-known/openid-configuration", self.issuer);
        let d: Discovery = self.get_json(&url).await?;
        if d.issuer.trim_end_matches('/') != self.issuer {
            warn!(configured = %self.issuer, discovered = %d.issuer, "identity provider names another issuer");
            return Err(unavailable(format!(
                "the identity provider's discovery document names the issuer {:?}, not {:?}",
                d.issuer, self.issuer
            )));
        }
        info!(issuer = %self.issuer, "identity provider discovered");
        cache.discovery = Some(d.clone());
        Ok(d)
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
    ) -> Result<T, Unauthenticated> {
        let fail = |e: String| {
            warn!(%url, error = %e, "identity provider unreachable");
            unavailable(format!("the identity provider did not answer {url}: {e}"))
        };
        let resp = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| fail(e.to_string()))?;
        let resp = resp.error_for_status().map_err(|e| fail(e.to_string()))?;
        resp.json().await.map_err(|e| fail(e.to_string()))
    }

    /// The decoding key of `kid`, fetching the keys again when it is
    /// unknown and the last fetch is older than [`REFETCH_AFTER`].
    async fn key(&self, kid: Option<&str>, alg: Algorithm) -> Result<DecodingKey, Unauthenticated> {
        let mut cache = self.cache.lock().await;
        let stale = |c: &Cache, after: Duration| c.fetched.is_none_or(|t| t.elapsed() >= after);
        let known = |c: &Cache| match kid {
            Some(kid) => c.keys.find(kid).is_some(),
            None => !c.keys.keys.is_empty(),
        };
        if stale(&cache, MAX_AGE) || (!known(&cache) && stale(&cache, REFETCH_AFTER)) {
            let jwks_uri = self.discovered(&mut cache).await?.jwks_uri;
            cache.keys = self.get_json(&jwks_uri).await?;
            cache.fetched = Some(Instant::now());
        }
        let jwk = match kid {
            Some(kid) => cache.keys.find(kid),
            // A token without a key id: the provider's only key of that kind.
            None => cache.keys.keys.iter().find(|k| {
                DecodingKey::from_jwk(k).is_ok()
                    && k.common
                        .key_algorithm
                        .is_none_or(|a| a.to_string() == format!("{alg:?}"))
            }),
        }
        .ok_or_else(|| {
            Unauthenticated::new(
                "unknown signing key",
                "the token is signed with a key the identity provider does not publish",
            )
        })?;
        if let Some(a) = jwk.common.key_algorithm {
            if a.to_string() != format!("{alg:?}") {
                return Err(refused("the token's algorithm is not its key's"));
            }
        }
        DecodingKey::from_jwk(jwk)
            .map_err(|_| refused("the identity provider's key cannot verify this token"))
    }

    /// The claims of `token` once its signature, issuer, audience (one of
    /// `audiences`), expiry and not-before time check out.
    pub async fn verify(
        &self,
        token: &str,
        audiences: &[&str],
    ) -> Result<Map<String, Value>, Unauthenticated> {
        let header = decode_header(token).map_err(|_| {
            refused("not a signed JWT (or an algorithm other than RS256 and ES256)")
        })?;
        if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
            return Err(refused("only RS256 and ES256 tokens are accepted"));
        }
        let key = self.key(header.kid.as_deref(), header.alg).await?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.issuer, &format!("{}/", self.issuer)]);
        validation.set_audience(audiences);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECS;
        let data = decode::<Map<String, Value>>(token, &key, &validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            refused(match e.kind() {
                K::ExpiredSignature => "the token has expired",
                K::ImmatureSignature => "the token is not valid yet (nbf)",
                K::InvalidAudience => "the token is for another audience",
                K::InvalidIssuer => "the token is from another issuer",
                K::InvalidSignature => "the token's signature does not verify",
                K::MissingRequiredClaim(_) => "the token lacks exp, iss, aud or sub",
                _ => "the token is not valid",
            })
        })?;
        Ok(data.claims)
    }
}

fn refused(detail: &str) -> Unauthenticated {
    Unauthenticated::new("invalid token", detail.to_string())
}

fn unavailable(detail: String) -> Unauthenticated {
    Unauthenticated::new("identity provider unavailable", detail)
}
