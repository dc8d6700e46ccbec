//! Change windows in the loop: created, listed and deleted by operators
//! (audited); maintenance holds an incident's decision; quiet defers
//! notifications into a digest sent when the window closes.

use super::OpsAgent;
use crate::domain::*;
use crate::guardrails::{open_windows, ChangeWindow, WindowKind};
use crate::store::{read_setting, read_settings, update_setting};
use crate::traits::*;
use crate::{Error, IncidentId, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use tracing::{info, warn};

/// The notifications a quiet window holds back.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Digest {
    entries: Vec<DigestEntry>,
}

/// One held-back notification, or an approval request to send later.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct DigestEntry {
    at: DateTime<Utc>,
    incident_id: Option<IncidentId>,
    title: String,
    body: String,
    /// An approval request: sent on its own when the window closes, if
    /// the incident still waits.
    approval: bool,
}

const DIGEST_PREFIX: &str = "digest/";

/// When the approval requests a quiet window held back went out, by
/// incident: their wait for an answer (and its expiry) starts then.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct LateApprovals {
    sent: BTreeMap<IncidentId, DateTime<Utc>>,
}

const LATE_APPROVALS: &str = "approvals/sent-after-quiet";

impl OpsAgent {
    /// Stores a new window (validated, with a fresh id, created by
    /// `actor`), audited.
    pub async fn create_window(
        &self,
        mut window: ChangeWindow,
        actor: &str,
    ) -> Result<ChangeWindow> {
        window
            .validate()
            .map_err(|why| Error::invalid("change window", why))?;
        window.id = uuid::Uuid::now_v7().to_string();
        window.created_by = actor.to_string();
        window.created_at = Utc::now();
        let value = serde_json::to_value(&window)
            .map_err(|e| Error::invalid("change window", e.to_string()))?;
        (self.deps.store)
            .put_setting(&ChangeWindow::key(&window.id), &value, 0)
            .await?;
        let what = format!("created {}", window.describe(Utc::now()));
        self.audit(
            AuditRecord::agent(AuditStep::ChangeWindow, what)
                .by(actor.to_string())
                .input(json!({ "window": window })),
        )
        .await;
        Ok(window)
    }

    /// Every configured window, oldest first.
    pub async fn windows(&self) -> Result<Vec<ChangeWindow>> {
        let store = self.deps.store.as_ref();
        let mut windows: Vec<ChangeWindow> = read_settings(store, ChangeWindow::KEY_PREFIX).await?;
        windows.sort_by_key(|w| w.created_at);
        Ok(windows)
    }

    /// Deletes window `id`, audited; what a quiet window held back goes out
    /// at once. `false` when there was no such window.
    pub async fn delete_window(&self, id: &str, actor: &str) -> Result<bool> {
        let key = ChangeWindow::key(id);
        let Some(stored) = self.deps.store.get_setting(&key).await? else {
            return Ok(false);
        };
        if !self.deps.store.delete_setting(&key).await? {
            return Ok(false);
        }
        self.send_digest(id, &format!("window {id} deleted")).await;
        self.audit(
            AuditRecord::agent(AuditStep::ChangeWindow, format!("deleted window {id}"))
                .by(actor.to_string())
                .input(json!({ "window": stored.value })),
        )
        .await;
        Ok(true)
    }

    /// The open maintenance window of `windows` that holds the incident's
    /// decision, if any; the first hold of an incident is audited.
    pub(super) async fn maintenance_hold(
        &self,
        incident: &Incident,
        windows: &[ChangeWindow],
    ) -> Result<Option<String>> {
        let now = Utc::now();
        let resource = incident.alert.resource.as_str();
        let Some(w) = open_windows(windows, WindowKind::Maintenance, resource, now).next() else {
            return Ok(None);
        };
        let why = format!(
            "held: {resource} is under maintenance {}; decided when it ends if still firing",
            w.describe(now)
        );
        let query = AuditQuery {
            incident_id: Some(incident.id),
            limit: Some(1),
            ..Default::default()
        };
        let last = self.deps.store.list_audit(&query).await?;
        if !last.iter().any(|r| r.outcome == why) {
            let record = AuditRecord::agent(AuditStep::ChangeWindow, why.clone());
            self.audit(record.incident(incident.id)).await;
        }
        Ok(Some(why))
    }

    /// The open quiet window that holds back the incident's notifications:
    /// none for a critical incident.
    async fn quiet_window(&self, incident: &Incident) -> Option<ChangeWindow> {
        let severity = (incident.decision.as_ref()).map_or(incident.alert.severity, |d| {
            d.severity.max(incident.alert.severity)
        });
        if severity == Severity::Critical {
            return None;
        }
        let windows = self.windows().await.ok()?;
        let resource = incident.alert.resource.as_str();
        let quiet = open_windows(&windows, WindowKind::Quiet, resource, Utc::now()).next();
        quiet.cloned()
    }

    /// Holds a notification (or, with `approval`, an approval request) back
    /// for a quiet window's digest; `false` when no quiet window is open
    /// for the incident (or the digest could not be stored).
    pub(super) async fn defer(
        &self,
        incident: &Incident,
        title: &str,
        body: &str,
        approval: bool,
    ) -> bool {
        let Some(window) = self.quiet_window(incident).await else {
            return false;
        };
        let entry = DigestEntry {
            at: Utc::now(),
            incident_id: Some(incident.id),
            title: title.to_string(),
            body: body.to_string(),
            approval,
        };
        let key = format!("{DIGEST_PREFIX}{}", window.id);
        let stored = update_setting(self.deps.store.as_ref(), &key, |d: &mut Digest| {
            d.entries.push(entry.clone());
        });
        match stored.await {
            Ok(_) => {
                info!(incident_id = %incident.id, window = %window.name, "notification held for the quiet window's digest");
                true
            }
            Err(e) => {
                warn!(incident_id = %incident.id, error = %e, "could not hold a notification back; sending it now");
                false
            }
        }
    }

    /// Sends the digest of every quiet window that has closed (or was
    /// deleted), and then the approval requests it held back for incidents
    /// still waiting. Returns how many digests went out. Call it
    /// periodically; replicas may call it concurrently (each entry is sent
    /// once).
    pub async fn send_closed_digests(&self) -> Result<usize> {
        let (windows, now) = (self.windows().await?, Utc::now());
        let digests = self.deps.store.list_settings(DIGEST_PREFIX).await?;
        let mut sent = 0;
        for digest in digests {
            let id = &digest.key[DIGEST_PREFIX.len()..];
            let window = windows.iter().find(|w| w.id == id);
            if window.is_some_and(|w| w.open_until(now).is_some()) {
                continue;
            }
            let name = window.map_or_else(|| format!("window {id}"), |w| format!("{:?}", w.name));
            if self.send_digest(id, &name).await {
                sent += 1;
            }
            if window.is_none() {
                let _ = self.deps.store.delete_setting(&digest.key).await;
            }
        }
        self.forget_answered_approvals().await?;
        Ok(sent)
    }

    /// Takes the digest of window `id` and sends it: one notification
    /// listing everything held back, then each held approval request whose
    /// incident still waits. `false` when it held nothing.
    async fn send_digest(&self, id: &str, name: &str) -> bool {
        let key = format!("{DIGEST_PREFIX}{id}");
        let taken = update_setting(self.deps.store.as_ref(), &key, |d: &mut Digest| {
            std::mem::take(&mut d.entries)
        });
        let entries = match taken.await {
            Ok((_, entries)) => entries,
            Err(e) => {
                warn!(window = %id, error = %e, "could not take a quiet window's digest");
                return false;
            }
        };
        if entries.is_empty() {
            return false;
        }
        let lines: Vec<String> = (entries.iter())
            .map(|e| format!("• {} — {}", e.at.format("%H:%M UTC"), e.title))
            .collect();
        let digest = Notification {
            incident_id: None,
            title: format!("Digest of quiet {name}: {} held back", entries.len()),
            body: lines.join("\n"),
        };
        if let Err(e) = self.deps.notifier.notify(&digest).await {
            warn!(window = %id, error = %e, "digest notification failed");
        }
        for entry in entries.iter().filter(|e| e.approval) {
            let Some(incident_id) = entry.incident_id else {
                continue;
            };
            let incident = self.deps.store.get_incident(incident_id).await;
            let Ok(Some(i)) = incident else { continue };
            if i.status == IncidentStatus::Pending && self.request_approval(&i).await {
                self.sent_late(incident_id).await;
            }
        }
        true
    }

    /// Records that a held approval request went out now.
    async fn sent_late(&self, id: IncidentId) {
        let now = Utc::now();
        let store = self.deps.store.as_ref();
        let recorded = update_setting(store, LATE_APPROVALS, |late: &mut LateApprovals| {
            late.sent.insert(id, now);
        });
        if let Err(e) = recorded.await {
            warn!(incident_id = %id, error = %e, "could not record when a held approval request went out");
        }
    }

    /// The pending approvals a quiet window delayed, by incident: `None`
    /// while the request is still held, else when it went out. Their
    /// expiry counts from then ([`OpsAgent::expire_pending`]).
    pub(super) async fn delayed_approvals(
        &self,
    ) -> Result<HashMap<IncidentId, Option<DateTime<Utc>>>> {
        let store = self.deps.store.as_ref();
        let mut delayed = HashMap::new();
        let late: Option<LateApprovals> = read_setting(store, LATE_APPROVALS).await?;
        for (id, at) in late.unwrap_or_default().sent {
            delayed.insert(id, Some(at));
        }
        let digests: Vec<Digest> = read_settings(store, DIGEST_PREFIX).await?;
        let held = digests
            .iter()
            .flat_map(|d| &d.entries)
            .filter(|e| e.approval);
        for id in held.filter_map(|e| e.incident_id) {
            delayed.insert(id, None);
        }
        Ok(delayed)
    }

    /// Forgets when held requests went out for incidents no longer pending.
    async fn forget_answered_approvals(&self) -> Result<()> {
        let store = self.deps.store.as_ref();
        let late: Option<LateApprovals> = read_setting(store, LATE_APPROVALS).await?;
        let mut answered = Vec::new();
        for id in late.unwrap_or_default().sent.into_keys() {
            let incident = store.get_incident(id).await?;
            if incident.is_none_or(|i| i.status != IncidentStatus::Pending) {
                answered.push(id);
            }
        }
        if !answered.is_empty() {
            update_setting(store, LATE_APPROVALS, |late: &mut LateApprovals| {
                answered.iter().for_each(|id| {
                    late.sent.remove(id);
                });
            })
            .await?;
        }
        Ok(())
    }
}
