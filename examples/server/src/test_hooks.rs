//! Test hooks: behaviour only tests ask for, each printed at start-up when
//! on, and only available with the simulated cloud (nothing real is slowed).

use crate::config::{CloudChoice, Config};
use crate::wiring::Wiring;
use async_trait::async_trait;
use infraai_core::testing::ScriptedTfRunner;
use infraai_core::{
    ActionHandler, ActionPreview, ActionReport, ActionRequest, HttpVerifier, Result,
};
use std::sync::Arc;
use std::time::Duration;

/// Environment variable: a URL the simulated cloud's deployments output as
/// their service, checked by the real HTTP verifier (with the configured
/// `verify_reachable` rule) instead of the simulated one. Lets tests show
/// over real HTTP how a 404-serving or an unreachable service is verified.
pub const SERVICE_URL_ENV: &str = "INFRAAI_TEST_SERVICE_URL";

/// Applies the test hooks the environment asks for to `w`, each with a
/// start-up line; an error when one is malformed or the cloud is not
/// `simulated`.
pub fn apply(config: &Config, w: &mut Wiring) -> anyhow::Result<()> {
    if let Some(delay) = action_delay(config)? {
        w.actions = Arc::new(DelayedActions::new(w.actions.clone(), delay));
        w.report.push(format!(
            "test hook: every simulated action preview and execution waits {} ms ({ACTION_DELAY_ENV})",
            delay.as_millis(),
        ));
    }
    if let Ok(url) = std::env::var(SERVICE_URL_ENV) {
        if config.cloud() != CloudChoice::Simulated {
            anyhow::bail!("{SERVICE_URL_ENV} is a test hook for INFRAAI_CLOUD=simulated only");
        }
        w.deploy.runner = Arc::new(ScriptedTfRunner::valid().with_url(&url));
        let verifier = HttpVerifier::new(2, Duration::from_millis(200));
        w.deploy.verifier = Arc::new(verifier.with_reachable(config.cloud.verify_reachable));
        w.report.push(format!(
            "test hook: simulated deployments serve {url}, verified over real HTTP ({SERVICE_URL_ENV})"
        ));
    }
    Ok(())
}

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
