//! An hourly token budget shared by the LLM components.

use crate::TokenUsage;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

const WINDOW: Duration = Duration::from_secs(3600);

/// At most `limit` tokens (prompt + completion) per hour, across every LLM
/// component holding the same `Arc<TokenBudget>`. Once spent, the components
/// take their rule-based path until the hour is over, and audit that they did.
///
/// The window is a fixed hour starting with the first call after the
/// previous window ended; a call already in flight may overshoot it once.
#[derive(Debug)]
pub struct TokenBudget {
    limit: u64,
    window: Mutex<Window>,
}

#[derive(Debug)]
struct Window {
    started: Instant,
    used: u64,
}

/// A budget's state, for audit records and dashboards.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct BudgetStatus {
    /// Tokens spent in the current hour.
    pub used: u64,
    /// The hourly limit.
    pub limit: u64,
}

impl TokenBudget {
    /// A budget of `limit` tokens per hour.
    pub fn per_hour(limit: u64) -> Self {
        Self {
            limit,
            window: Mutex::new(Window {
                started: Instant::now(),
                used: 0,
            }),
        }
    }

    fn current(&self) -> std::sync::MutexGuard<'_, Window> {
        let mut w = self.window.lock().unwrap_or_else(|p| p.into_inner());
        if w.started.elapsed() >= WINDOW {
            w.started = Instant::now();
            w.used = 0;
        }
        w
    }

    /// Tokens spent this hour and the limit.
    pub fn status(&self) -> BudgetStatus {
        BudgetStatus {
            used: self.current().used,
            limit: self.limit,
        }
    }

    /// Whether this hour's tokens are spent.
    pub fn exhausted(&self) -> bool {
        self.current().used >= self.limit
    }

    /// Records the tokens of one call.
    pub fn spend(&self, usage: TokenUsage) {
        let mut w = self.current();
        w.used = w
            .used
            .saturating_add(usage.prompt_tokens)
            .saturating_add(usage.completion_tokens);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_budget_refills_after_an_hour() {
        let b = TokenBudget::per_hour(100);
        b.spend(TokenUsage {
            prompt_tokens: 60,
            completion_tokens: 40,
        });
        assert!(b.exhausted());
        assert_eq!(
            b.status(),
            BudgetStatus {
                used: 100,
                limit: 100
            }
        );
        tokio::time::advance(Duration::from_secs(3599)).await;
        assert!(b.exhausted());
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(!b.exhausted());
        assert_eq!(b.status().used, 0);
    }
}
