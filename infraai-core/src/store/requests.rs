//! The requests of the store methods that would otherwise take a list of
//! loose arguments: what to write, named.

use crate::domain::{ApprovalRecord, IncidentStatus, OpsDecision};
use crate::IncidentId;
use chrono::{DateTime, Utc};
use std::time::Duration;

/// The one decision of a `new` incident and the status it moves to
/// ([`super::IncidentStore::record_decision`]).
#[derive(Clone, Copy, Debug)]
pub struct DecisionRecord<'a> {
    /// The incident.
    pub id: IncidentId,
    /// What was decided.
    pub decision: &'a OpsDecision,
    /// Why the guardrails objected, one line per rule (none by default).
    pub guardrail_notes: &'a [String],
    /// Where the incident goes: `pending`, `auto`, `escalated`, `ignored`, …
    pub to: IncidentStatus,
    /// Statuses whose decision this one may replace (none: only a `new`,
    /// undecided incident takes it). See [`DecisionRecord::proposal`].
    pub replaces: &'a [IncidentStatus],
}

impl<'a> DecisionRecord<'a> {
    /// `decision` moving incident `id` to `to`, with no guardrail notes.
    pub fn new(id: IncidentId, decision: &'a OpsDecision, to: IncidentStatus) -> Self {
        Self {
            id,
            decision,
            guardrail_notes: &[],
            to,
            replaces: &[],
        }
    }

    /// A proposal: `decision` replacing the one of an incident a human was
    /// left with ([`crate::lifecycle::PROPOSABLE`]), moving it to `to`.
    pub fn proposal(id: IncidentId, decision: &'a OpsDecision, to: IncidentStatus) -> Self {
        Self {
            replaces: crate::lifecycle::PROPOSABLE,
            ..Self::new(id, decision, to)
        }
    }

    /// With the guardrails' notes.
    pub fn notes(self, guardrail_notes: &'a [String]) -> Self {
        Self {
            guardrail_notes,
            ..self
        }
    }
}

/// A compare-and-set move of one incident ([`super::IncidentStore::transition`]).
#[derive(Clone, Copy, Debug)]
pub struct Transition<'a> {
    /// The incident.
    pub id: IncidentId,
    /// The statuses it must be in.
    pub from: &'a [IncidentStatus],
    /// The status it moves to.
    pub to: IncidentStatus,
    /// A note stored with the move (none by default).
    pub note: Option<&'a str>,
    /// A human's decision recorded in the same transaction as the move, and
    /// only if it is made (none by default): an effective approval or
    /// rejection never exists without its record. A store that cannot write
    /// both at once writes the record right after the move.
    pub approval: Option<&'a ApprovalRecord>,
}

impl<'a> Transition<'a> {
    /// Incident `id` from one of `from` to `to`, without a note.
    pub fn new(id: IncidentId, from: &'a [IncidentStatus], to: IncidentStatus) -> Self {
        Self {
            id,
            from,
            to,
            note: None,
            approval: None,
        }
    }

    /// With a note (`None` keeps it without).
    pub fn note(self, note: Option<&'a str>) -> Self {
        Self { note, ..self }
    }

    /// With the human's decision recorded along with the move.
    pub fn approval(self, approval: &'a ApprovalRecord) -> Self {
        Self {
            approval: Some(approval),
            ..self
        }
    }
}

/// Who takes or holds a job, as of when, and for how long
/// ([`super::LeaseStore`]).
#[derive(Clone, Copy, Debug)]
pub struct Lease<'a> {
    /// The replica taking or holding the job.
    pub owner: &'a str,
    /// The time the lease is measured from (now, by default).
    pub now: DateTime<Utc>,
    /// How long it runs from `now`.
    pub length: Duration,
}

impl<'a> Lease<'a> {
    /// A lease of `length` for `owner` from now.
    pub fn new(owner: &'a str, length: Duration) -> Self {
        Self {
            owner,
            now: Utc::now(),
            length,
        }
    }

    /// Measured from `now` instead.
    pub fn at(self, now: DateTime<Utc>) -> Self {
        Self { now, ..self }
    }

    /// When it ends.
    pub fn until(&self) -> DateTime<Utc> {
        chrono::Duration::from_std(self.length)
            .ok()
            .and_then(|d| self.now.checked_add_signed(d))
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }
}

/// The end of a hold on a job ([`super::LeaseStore::release_job`]).
#[derive(Clone, Copy, Debug)]
pub struct Release<'a> {
    /// The job.
    pub key: &'a str,
    /// Its holder.
    pub owner: &'a str,
    /// Finished (the job is deleted) or given up (another replica may take
    /// it at once).
    pub finished: bool,
}

/// Engaging or releasing the kill-switch ([`super::IncidentStore::set_kill_switch`]).
#[derive(Clone, Copy, Debug)]
pub struct KillSwitchRequest<'a> {
    /// Engage (stop autonomy) or release.
    pub engaged: bool,
    /// Who (`actor.label()`).
    pub actor: &'a str,
    /// Why.
    pub reason: Option<&'a str>,
}

impl<'a> KillSwitchRequest<'a> {
    /// STOP AUTONOMY by `actor`, for `reason`.
    pub fn engage(actor: &'a str, reason: Option<&'a str>) -> Self {
        Self {
            engaged: true,
            actor,
            reason,
        }
    }

    /// RESUME by `actor`.
    pub fn release(actor: &'a str) -> Self {
        Self {
            engaged: false,
            actor,
            reason: None,
        }
    }
}
