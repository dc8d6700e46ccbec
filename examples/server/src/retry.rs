//! Waits out a busy Terraform work directory instead of failing an action.
//!
//! The ops loop previews an action (a Terraform plan) while the approval
//! request goes out; a human who approves within that second, or a dashboard
//! asking for the same preview, would otherwise meet `TerraformError::Busy`.
//! Busy is refused before Terraform runs anything, so retrying it — and only
//! it — cannot run an action twice.

use async_trait::async_trait;
use infraai_core::*;
use infraai_terraform::TerraformError;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::info;

/// How long a busy work directory is waited for.
const BUSY_BUDGET: Duration = Duration::from_secs(60);

/// Whether `e` is Terraform refusing because the work directory is in use.
pub fn is_busy(e: &Error) -> bool {
    match e {
        Error::Backend { source, .. } => matches!(
            source.downcast_ref::<TerraformError>(),
            Some(TerraformError::Busy { .. })
        ),
        _ => false,
    }
}

/// An [`ActionHandler`] that retries busy-directory refusals.
pub struct BusyRetry(pub Arc<dyn ActionHandler>);

async fn retrying<T, F, Fut>(what: &str, mut f: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let start = Instant::now();
    loop {
        match f().await {
            Err(e) if is_busy(&e) && start.elapsed() < BUSY_BUDGET => {
                info!(what, "terraform work directory busy; waiting");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            other => return other,
        }
    }
}

#[async_trait]
impl ActionHandler for BusyRetry {
    fn name(&self) -> &str {
        self.0.name()
    }

    async fn preview(&self, request: &ActionRequest) -> Result<ActionPreview> {
        retrying("preview", || self.0.preview(request)).await
    }

    async fn execute(&self, request: &ActionRequest) -> Result<ActionReport> {
        retrying("execute", || self.0.execute(request)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_busy_counts() {
        let busy = Error::from(TerraformError::Busy {
            op: "plan",
            dir: "/x".into(),
            holder: "apply of this runner".into(),
        });
        assert!(is_busy(&busy));
        assert!(!is_busy(&Error::backend(
            "terraform",
            "apply",
            true,
            "timeout"
        )));
        assert!(!is_busy(&Error::invalid("x", "y")));
    }
}
