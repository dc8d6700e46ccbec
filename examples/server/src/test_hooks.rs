//! Test hooks: behaviour only tests ask for, each printed at start-up when
//! on, and only available with the simulated cloud (nothing real is slowed).

use crate::config::{CloudChoice, Config};
use async_trait::async_trait;
use infraai_core::{ActionHandler, ActionPreview, ActionReport, ActionRequest, Result};
use std::sync::Arc;
use std::time::Duration;

/// Environment variable: milliseconds every simulated action preview and
/// execution waits before answering. Makes a request slow on purpose, so
/// tests can show the request timeout, graceful shutdown with a request in
/// flight, and a restart while decisions are still queued.
pub const ACTION_DELAY_ENV: &str = "INFRAAI_TEST_ACTION_DELAY_MS";

/// The action delay the environment asks for: `None` when unset; an error
/// when it is not a number or the cloud is not `simulated`.
pub fn action_delay(config: &Config) -> anyhow::Result<Option<Duration>> {
    let Ok(v) = std::env::var(ACTION_DELAY_ENV) else {
        return Ok(None);
    };
    let ms: u64 = v
        .trim()
        .parse()
        .map_err(|_| anyhow::anyhow!("{ACTION_DELAY_ENV} must be milliseconds, got {v:?}"))?;
    if config.cloud() != CloudChoice::Simulated {
        anyhow::bail!("{ACTION_DELAY_ENV} is a test hook for INFRAAI_CLOUD=simulated only");
    }
    Ok(Some(Duration::from_millis(ms)))
}

/// An action handler whose previews and executions wait `delay` first.
pub struct DelayedActions {
    inner: Arc<dyn ActionHandler>,
    delay: Duration,
}

impl DelayedActions {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn ActionHandler>, delay: Duration) -> Self {
        Self { inner, delay }
    }
}

#[async_trait]
impl ActionHandler for DelayedActions {
    fn name(&self) -> &str {
        self.inner.name()
    }
    async fn preview(&self, request: &ActionRequest) -> Result<ActionPreview> {
        tokio::time::sleep(self.delay).await;
        self.inner.preview(request).await
    }
    async fn execute(&self, request: &ActionRequest) -> Result<ActionReport> {
        tokio::time::sleep(self.delay).await;
        self.inner.execute(request).await
    }
}
