//! Audit records for requests refused before authentication (a forged
//! webhook secret, a bad signature, a missing operator token), bounded so an
//! unauthenticated flood cannot grow the audit log without limit.
//!
//! The first [`RefusalAuditLimit::per_window`] refusals of each window are
//! audited one by one; the rest are counted, and one summary record ("N more
//! unauthenticated requests refused") is written when that window ends. So a
//! flood writes at most `per_window + 1` records per window.

use crate::domain::{AuditRecord, AuditStep};
use crate::traits::HistoryStore;
use crate::IncidentId;
use chrono::{DateTime, Utc};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use tracing::{debug, warn};

/// Longest `reason`, `route` and `remote` kept in a record: they may carry
/// client-chosen text, which must not bloat the log either.
const MAX_FIELD_CHARS: usize = 200;

/// A request refused because it could not be authenticated. Holds no secret
/// and no body: only where it came from and why it was refused.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuthRefusal {
    /// The channel: `telegram`, `discord`, `web`, …
    pub channel: String,
    /// The route or endpoint, when known (`POST /ops/telegram`).
    pub route: Option<String>,
    /// Why it was refused (never the offered secret).
    pub reason: String,
    /// The peer address and any forwarding header, when known.
    pub remote: Option<String>,
    /// The incident the request named, when its path had one.
    pub incident_id: Option<IncidentId>,
}

/// Where an inbound request came from, as far as the HTTP layer knows: used
/// to describe a refusal.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestOrigin {
    /// The route (`POST /ops/telegram`).
    pub route: Option<String>,
    /// The peer address and any forwarding header.
    pub remote: Option<String>,
}

impl AuthRefusal {
    /// A refusal of a request from `origin` on `channel` for `reason`.
    pub fn from_origin(
        channel: impl Into<String>,
        reason: impl Into<String>,
        origin: &RequestOrigin,
    ) -> Self {
        Self {
            channel: channel.into(),
            reason: reason.into(),
            route: origin.route.clone(),
            remote: origin.remote.clone(),
            incident_id: None,
        }
    }

    /// A refusal on `channel` for `reason`.
    pub fn new(channel: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            channel: channel.into(),
            reason: reason.into(),
            ..Default::default()
        }
    }

    /// Sets the route.
    pub fn route(mut self, route: impl Into<String>) -> Self {
        self.route = Some(route.into());
        self
    }

    /// Sets the remote address information.
    pub fn remote(mut self, remote: impl Into<String>) -> Self {
        self.remote = Some(remote.into());
        self
    }

    /// Sets the incident.
    pub fn incident(mut self, id: IncidentId) -> Self {
        self.incident_id = Some(id);
        self
    }

    fn record(&self) -> AuditRecord {
        let mut r = AuditRecord::agent(
            AuditStep::AuthRefused,
            format!("refused: {}", clip(&self.reason)),
        )
        .by(format!("{}:unauthenticated", clip(&self.channel)))
        .input(json!({
            "channel": clip(&self.channel),
            "route": self.route.as_deref().map(clip),
            "remote": self.remote.as_deref().map(clip),
        }));
        r.incident_id = self.incident_id;
        r
    }
}

fn clip(s: &str) -> String {
    if s.chars().count() <= MAX_FIELD_CHARS {
        return s.to_string();
    }
    let mut out: String = s.chars().take(MAX_FIELD_CHARS - 1).collect();
    out.push('…');
    out
}

/// How many refusals are audited one by one per window (the rest are
/// summarized in one record at the end of the window).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RefusalAuditLimit {
    /// Refusals audited individually per window (default 20).
    pub per_window: u32,
    /// The window (default one minute).
    pub window: Duration,
}

impl Default for RefusalAuditLimit {
    fn default() -> Self {
        Self {
            per_window: 20,
            window: Duration::from_secs(60),
        }
    }
}

#[derive(Default)]
struct State {
    window_start: Option<Instant>,
    audited: u32,
    /// Refusals not audited one by one and not yet summarized.
    suppressed: u32,
    suppressed_since: Option<DateTime<Utc>>,
    by_channel: BTreeMap<String, u32>,
    flush_scheduled: bool,
}

/// Audits refusals within a [`RefusalAuditLimit`]. Cheap to clone.
#[derive(Clone, Default)]
pub(crate) struct RefusalAuditor {
    limit: RefusalAuditLimit,
    state: Arc<Mutex<State>>,
}

enum Next {
    Audit,
    Count { flush_at: Option<Instant> },
}

impl RefusalAuditor {
    pub(crate) fn new(limit: RefusalAuditLimit) -> Self {
        Self {
            limit,
            state: Arc::default(),
        }
    }

    pub(crate) async fn refuse(&self, store: Arc<dyn HistoryStore>, refusal: &AuthRefusal) {
        let next = {
            let mut s = match self.state.lock() {
                Ok(s) => s,
                Err(poisoned) => poisoned.into_inner(),
            };
            let now = Instant::now();
            let start = *s.window_start.get_or_insert(now);
            if now.duration_since(start) >= self.limit.window {
                s.window_start = Some(now);
                s.audited = 0;
            }
            if s.audited < self.limit.per_window {
                s.audited += 1;
                Next::Audit
            } else {
                s.suppressed += 1;
                s.suppressed_since.get_or_insert_with(Utc::now);
                *s.by_channel.entry(clip(&refusal.channel)).or_default() += 1;
                let flush_at = (!s.flush_scheduled).then(|| {
                    s.flush_scheduled = true;
                    s.window_start.unwrap_or(now) + self.limit.window
                });
                Next::Count { flush_at }
            }
        };
        // Logs are bounded like the audit: one line per audited refusal, one
        // when counting starts, then only debug lines.
        let route = refusal.route.as_deref().unwrap_or("");
        let remote = refusal.remote.as_deref().unwrap_or("");
        match next {
            Next::Audit => {
                warn!(channel = %refusal.channel, route, remote, reason = %refusal.reason, "unauthenticated request refused");
                append(&store, refusal.record()).await
            }
            Next::Count { flush_at: None } => {
                debug!(channel = %refusal.channel, route, remote, "unauthenticated request refused (counted)");
            }
            Next::Count { flush_at: Some(at) } => {
                warn!(
                    channel = %refusal.channel,
                    route,
                    remote,
                    limit = self.limit.per_window,
                    "unauthenticated requests over the audit limit: counting the rest of this window in one summary record"
                );
                let state = self.state.clone();
                tokio::spawn(async move {
                    tokio::time::sleep_until(at).await;
                    let summary = {
                        let mut s = match state.lock() {
                            Ok(s) => s,
                            Err(poisoned) => poisoned.into_inner(),
                        };
                        s.flush_scheduled = false;
                        let n = std::mem::take(&mut s.suppressed);
                        let since = s.suppressed_since.take();
                        let channels = std::mem::take(&mut s.by_channel);
                        AuditRecord::agent(
                            AuditStep::AuthRefused,
                            format!(
                                "{n} more unauthenticated request(s) refused (not audited one by one)"
                            ),
                        )
                        .by("unauthenticated")
                        .input(json!({
                            "count": n,
                            "since": since,
                            "by_channel": channels,
                        }))
                    };
                    append(&store, summary).await;
                });
            }
        }
    }
}

async fn append(store: &Arc<dyn HistoryStore>, record: AuditRecord) {
    if let Err(e) = store.append_audit(&record).await {
        warn!(error = %e, "audit append of a refused request failed");
    }
}
