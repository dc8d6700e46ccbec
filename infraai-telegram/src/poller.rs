//! Long polling with `getUpdates`, the offset kept in the store.

use crate::approver::TelegramApprover;
use infraai_core::{Error, LeaseStore, OpsAgent, Result};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, warn};

/// The store cursor holding the next `getUpdates` offset.
pub const OFFSET_CURSOR: &str = "telegram:update_offset";

/// Receives updates by long polling instead of a webhook (no public URL
/// needed).
///
/// Each update is applied, then the offset moves past it in the store, so a
/// restart neither loses an update nor applies one twice: an update applied
/// just before a crash is delivered again, and the commands are idempotent
/// (an approval executes at most once, a repeated STOP changes nothing).
pub struct TelegramPoller {
    approver: TelegramApprover,
    store: Arc<dyn LeaseStore>,
    wait: Duration,
}

impl TelegramPoller {
    /// A poller that waits up to `wait` per `getUpdates` call (Telegram
    /// allows up to 50 s; 25 s is a good value).
    pub fn new(approver: TelegramApprover, store: Arc<dyn LeaseStore>, wait: Duration) -> Self {
        Self {
            approver,
            store,
            wait,
        }
    }

    /// One `getUpdates` round: applies every update, advancing the stored
    /// offset after each. Returns how many updates arrived. A command that
    /// fails on a retryable error stops the round with that error and leaves
    /// the offset before its update, so it is fetched and applied again.
    pub async fn poll_once(&self, agent: &Arc<OpsAgent>) -> Result<usize> {
        let offset = self.store.get_cursor(OFFSET_CURSOR).await?;
        let updates = self
            .approver
            .client()
            .get_updates(offset, self.wait)
            .await?;
        for update in &updates {
            let replies = self.approver.replies_from_update(update).await;
            let results = agent.apply_replies(&self.approver, replies).await;
            // A command that failed on a transient error (the store was
            // briefly unavailable) is retried: the offset stays before its
            // update, so the next round gets it again. Commands are
            // idempotent, so whatever part of it did happen is not repeated.
            if let Some(e) = results
                .into_iter()
                .find_map(|r| r.err().filter(Error::is_retryable))
            {
                warn!(update_id = update.update_id, error = %e, "command failed on a transient error; its update will be fetched again");
                return Err(e);
            }
            self.store
                .set_cursor(OFFSET_CURSOR, update.update_id + 1)
                .await?;
        }
        Ok(updates.len())
    }

    /// Polls until `shutdown` completes, backing off after errors.
    pub async fn run(&self, agent: Arc<OpsAgent>, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        info!("Telegram long polling started");
        let mut backoff = Duration::from_secs(1);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                result = self.poll_once(&agent) => match result {
                    Ok(_) => backoff = Duration::from_secs(1),
                    Err(e) => {
                        warn!(error = %e, wait_secs = backoff.as_secs(), "Telegram polling failed");
                        tokio::select! {
                            _ = &mut shutdown => break,
                            _ = tokio::time::sleep(backoff) => {}
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(60));
                    }
                },
            }
        }
        info!("Telegram long polling stopped");
    }
}
