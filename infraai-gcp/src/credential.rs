//! Access tokens for Google APIs.

use async_trait::async_trait;
use infraai_core::{Error, Result, Secret};
use serde::Deserialize;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// Supplies OAuth access tokens.
#[async_trait]
pub trait Credentials: Send + Sync {
    /// A valid access token.
    async fn token(&self) -> Result<Secret>;
}

/// A fixed token (e.g. from `gcloud auth print-access-token`, or tests).
pub struct StaticToken(pub Secret);

#[async_trait]
impl Credentials for StaticToken {
    async fn token(&self) -> Result<Secret> {
        Ok(self.0.clone())
    }
}

/// Tokens from the metadata server of the VM or container the agent runs on
/// (the attached service account), cached until a minute before expiry.
pub struct MetadataServer {
    base: String,
    http: reqwest::Client,
    cached: Mutex<Option<(Secret, Instant)>>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: u64,
}

impl MetadataServer {
    /// The metadata server at `base` (default
    /// `http://metadata.google.internal`).
    pub fn new(base: impl Into<String>) -> Self {
        Self {
            base: base.into(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap_or_default(),
            cached: Mutex::new(None),
        }
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
        let mut cached = self.cached.lock().await;
        if let Some((token, until)) = cached.as_ref() {
            if Instant::now() < *until {
                return Ok(token.clone());
            }
        }
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
        let token = Secret::new(t.access_token);
        let life = Duration::from_secs(t.expires_in.saturating_sub(60));
        *cached = Some((token.clone(), Instant::now() + life));
        Ok(token)
    }
}
