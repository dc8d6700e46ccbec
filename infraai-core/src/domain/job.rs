//! Leased jobs: background work that must run once per cluster of replicas.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A unit of background work held by one replica at a time under a lease
/// (see [`crate::LeaseStore::claim_job`]). The holder renews the lease
/// while it works; a job whose holder died (its lease expired) or gave it up
/// unfinished is taken by another replica with
/// [`crate::LeaseStore::claim_abandoned_jobs`]. What a job means is in its
/// key ([`crate::jobs::JobKey`]); its effects must be idempotent, because a
/// new holder cannot know how far the old one got.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    /// Unique key, e.g. `incident:<id>` or `loop:watcher`.
    pub key: String,
    /// The replica holding it; `None` once given up unfinished.
    pub owner: Option<String>,
    /// Until when the holder's lease runs.
    pub lease_until: Option<DateTime<Utc>>,
    /// How many times it has been taken (1 for the first holder; more
    /// means other holders died or gave up before finishing).
    pub claims: u32,
}

impl Job {
    /// Whether another replica may take it at `now`.
    pub fn is_free(&self, now: DateTime<Utc>) -> bool {
        self.owner.is_none() || self.lease_until.is_none_or(|until| until <= now)
    }
}
