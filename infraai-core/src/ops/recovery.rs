//! Recovery: expiring unanswered approvals and finishing incidents no live
//! replica is working on.

use super::{ago, all_in_statuses, in_statuses, OpsAgent, RECOVER_BATCH, RECOVER_CONCURRENCY};
use crate::domain::*;
use crate::traits::*;
use crate::{IncidentId, Result};
use std::sync::Arc;
use std::time::Duration;

impl OpsAgent {
    /// Expires incidents that have waited for approval longer than
    /// `max_wait` (a request a quiet window held counts from when it went
    /// out). Returns how many expired.
    pub async fn expire_pending(&self, max_wait: Duration) -> Result<usize> {
        use IncidentStatus::{Expired, Pending};
        let (store, cutoff) = (&self.deps.store, ago(max_wait));
        let pending = all_in_statuses(store.as_ref(), vec![Pending]).await?;
        let note = format!("no answer within {}s", max_wait.as_secs());
        let mut expired = 0;
        // A request a quiet window held waits from when it went out.
        let delayed = self.delayed_approvals().await?;
        let waited = |i: &Incident| match delayed.get(&i.id) {
            Some(None) => false,
            Some(Some(sent)) => *sent < cutoff,
            None => true,
        };
        for i in pending
            .into_iter()
            .filter(|i| i.updated_at < cutoff && waited(i))
        {
            let change =
                store.transition(Transition::new(i.id, &[Pending], Expired).note(Some(&note)));
            if change.await.is_ok() {
                expired += 1;
                let record = AuditRecord::agent(AuditStep::Escalation, format!("expired: {note}"));
                self.audit(record.incident(i.id)).await;
            }
        }
        Ok(expired)
    }

    /// Picks up incidents no live replica is working on — interrupted by a
    /// restart or left by a replica that died before it took their job —
    /// and finishes each under its job ([`Self::advance`]), a few at a time.
    /// Returns how many it took. An incident another replica holds is left
    /// to it; a `new` incident younger than `grace` is left too (it is
    /// probably queued for a decision on a live replica), and at most
    /// [`RECOVER_BATCH`] `new` incidents are taken per call. With `decide`,
    /// `new` incidents go to that queue (whose workers call
    /// [`Self::process`]) instead of being decided here.
    pub async fn recover(
        self: &Arc<Self>,
        grace: Duration,
        decide: Option<&tokio::sync::mpsc::UnboundedSender<IncidentId>>,
    ) -> Result<usize> {
        use IncidentStatus::*;
        let store = &self.deps.store;
        let unfinished = vec![Approved, Auto, Executing, Executed];
        let mut open = all_in_statuses(store.as_ref(), unfinished).await?;
        let new = IncidentQuery {
            limit: Some(RECOVER_BATCH),
            ..in_statuses(vec![New])
        };
        let cutoff = ago(grace);
        let new = store.list_incidents(&new).await?.into_iter();
        open.extend(new.filter(|i| i.created_at <= cutoff));
        if let Some(queue) = decide {
            let (new, rest): (Vec<_>, Vec<_>) = open.into_iter().partition(|i| i.status == New);
            for i in &new {
                let _ = queue.send(i.id);
            }
            open = rest;
        }
        let permits = Arc::new(tokio::sync::Semaphore::new(RECOVER_CONCURRENCY));
        let mut tasks = tokio::task::JoinSet::new();
        for incident in open {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                break;
            };
            let Some(held) = self.hold(incident.id).await? else {
                continue;
            };
            let ops = self.clone();
            tasks.spawn(async move {
                let result = ops.advance(incident.id).await;
                held.conclude(&result).await;
                drop(permit);
            });
        }
        let n = tasks.len();
        while tasks.join_next().await.is_some() {}
        Ok(n)
    }

    /// Finishes what an incident's job left, for a caller holding the job:
    /// decides `new` incidents, executes `approved`/`auto` ones that were
    /// never claimed, re-checks `executed` ones (at the time the action's
    /// feedback was due), and escalates `executing` ones — their outcome is
    /// unknown, so they are never run again automatically.
    pub async fn advance(&self, id: IncidentId) -> Result<Incident> {
        use IncidentStatus::*;
        let incident = self.load(id).await?;
        match incident.status {
            New => self.decide(id).await,
            Approved | Auto => self.execute_held(id).await,
            Executed => {
                let acted_at = self
                    .deps
                    .store
                    .list_actions(id)
                    .await?
                    .last()
                    .map_or(incident.updated_at, |a| a.finished_at);
                self.feedback(incident, acted_at).await
            }
            Executing => {
                let note = "the agent stopped while the action was running; its outcome is unknown";
                self.escalate_unresolved(id, Executing, note).await
            }
            _ => Ok(incident),
        }
    }
}
