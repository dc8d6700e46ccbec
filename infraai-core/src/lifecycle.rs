//! The incident lifecycle, once: pure functions with no I/O that every store
//! calls inside its own transaction (lock → read → ask here → write). The
//! Redis store's Lua scripts get their tables rendered from the constants
//! below ([`lua_tables`]), and a test against a real server proves the two
//! agree.

use crate::domain::{Alert, AlertState, IncidentStatus};
use crate::{Error, IncidentId, IngestOutcome};
use chrono::{DateTime, Utc};

use IncidentStatus::*;

/// Every incident status.
pub const ALL: [IncidentStatus; 13] = [
    New, Pending, Approved, Rejected, Expired, Auto, Blocked, Executing, Executed, Resolved,
    Unresolved, Escalated, Ignored,
];

/// The allowed moves: for each status, where it may go. Stores refuse every
/// other move, so no caller can, say, execute a rejected incident.
pub const MOVES: [(IncidentStatus, &[IncidentStatus]); 13] = [
    (New, &[Pending, Auto, Escalated, Ignored, Blocked, Resolved]),
    (Pending, &[Approved, Rejected, Expired, Resolved]),
    (Approved, &[Executing, Blocked, Resolved]),
    (Auto, &[Executing, Blocked, Resolved]),
    (Blocked, &[Pending, Rejected, Resolved]),
    (Executing, &[Executed, Unresolved]),
    (Executed, &[Resolved, Unresolved]),
    (Unresolved, &[Resolved, Pending, Blocked]),
    (Escalated, &[Resolved, Pending, Blocked]),
    (Ignored, &[Resolved]),
    (Rejected, &[Resolved]),
    (Resolved, &[]),
    (Expired, &[]),
];

/// Terminal states: a new firing alert of the fingerprint opens a new incident.
pub const CLOSED: &[IncidentStatus] = &[Resolved, Expired];

/// States from which an execution may be claimed; while STOP AUTONOMY is
/// engaged, a claim moves them to `blocked` instead ([`claim`]).
pub const CLAIMABLE: &[IncidentStatus] = &[Approved, Auto];

/// Open states a resolved alert does not close: while an action runs or
/// awaits its re-check, the feedback step decides.
pub const RESOLVE_ONLY_NOTED: &[IncidentStatus] = &[Executing, Executed];

/// The note a resolved alert leaves on the incident it closes.
pub const CLEARED_NOTE: &str = "the alert cleared";

/// Whether the lifecycle allows moving from `from` to `to`.
pub fn can_move(from: IncidentStatus, to: IncidentStatus) -> bool {
    MOVES
        .iter()
        .any(|(f, targets)| *f == from && targets.contains(&to))
}

/// What an alert does to its fingerprint's incidents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IngestStep {
    /// Update the open incident's alert and count one more occurrence.
    Repeat,
    /// Update the open incident's alert, move it to `resolved` with
    /// [`CLEARED_NOTE`].
    Resolve,
    /// Change nothing; the answer is the incident looked at (the open one,
    /// or the latest closed one).
    Note,
    /// Change nothing; there is no incident to answer with.
    Skip,
    /// Open a new incident ([`crate::Incident::open`]).
    Open,
}

impl IngestStep {
    /// The outcome a store reports for this step.
    pub fn outcome(self) -> IngestOutcome {
        match self {
            Self::Repeat => IngestOutcome::Repeated,
            Self::Resolve => IngestOutcome::Resolved,
            Self::Note | Self::Skip => IngestOutcome::Noted,
            Self::Open => IngestOutcome::Opened,
        }
    }
}

/// An alert against the open incident of its fingerprint (status `open`).
pub fn ingest_open(state: AlertState, open: IncidentStatus) -> IngestStep {
    match state {
        AlertState::Firing => IngestStep::Repeat,
        AlertState::Resolved if RESOLVE_ONLY_NOTED.contains(&open) => IngestStep::Note,
        AlertState::Resolved => IngestStep::Resolve,
    }
}

/// An alert whose fingerprint has no open incident, against the latest
/// closed one (its status and its alert's `started_at`). A copy of an
/// episode already resolved (same start: a lagging repeat, an HA peer's
/// duplicate, the source's own late resolution) is noted on it; a resolved
/// alert otherwise is skipped; a firing one opens an incident.
pub fn ingest_closed(alert: &Alert, latest: Option<(IncidentStatus, DateTime<Utc>)>) -> IngestStep {
    match latest {
        Some((Resolved, started)) if started == alert.started_at => IngestStep::Note,
        _ if alert.state == AlertState::Resolved => IngestStep::Skip,
        _ => IngestStep::Open,
    }
}

/// Why a store refuses a change of an incident.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The stored state does not allow it (lost race, already decided).
    #[error("{what}: conflict: {detail}")]
    Conflict {
        /// The incident.
        what: String,
        /// Why.
        detail: String,
    },
    /// The lifecycle forbids the move.
    #[error("invalid {what}: {detail}")]
    Invalid {
        /// The move.
        what: String,
        /// Why.
        detail: String,
    },
}

impl From<Refusal> for Error {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::Conflict { what, detail } => Error::Conflict { what, detail },
            Refusal::Invalid { what, detail } => Error::Invalid { what, detail },
        }
    }
}

fn check_move(id: IncidentId, from: IncidentStatus, to: IncidentStatus) -> Result<(), Refusal> {
    if can_move(from, to) {
        return Ok(());
    }
    Err(Refusal::Invalid {
        what: format!("transition of incident {id}"),
        detail: format!("{from:?} → {to:?} is not allowed by the lifecycle"),
    })
}

/// A compare-and-set move of incident `id`, now `current`, from one of
/// `from` to `to`: a conflict when `current` is not in `from`, invalid when
/// the lifecycle forbids the move.
pub fn transition(
    id: IncidentId,
    current: IncidentStatus,
    from: &[IncidentStatus],
    to: IncidentStatus,
) -> Result<(), Refusal> {
    if !from.contains(&current) {
        return Err(Refusal::Conflict {
            what: format!("incident {id}"),
            detail: format!("is {current:?}, expected one of {from:?}"),
        });
    }
    check_move(id, current, to)
}

/// Where a proposed action (a human's or another agent's, e.g. over MCP)
/// may replace the decision: incidents left to a human with no action.
pub const PROPOSABLE: &[IncidentStatus] = &[Escalated, Unresolved];

/// Whether a decision of incident `id` (now `current`, `decided` when it
/// already holds one) may be recorded, routing it to `to`: the first one of
/// a `new` incident, or one replacing the decision of an incident in
/// `replaces` (a proposal; see [`PROPOSABLE`]).
pub fn decide(
    id: IncidentId,
    current: IncidentStatus,
    decided: bool,
    replaces: &[IncidentStatus],
    to: IncidentStatus,
) -> Result<(), Refusal> {
    if (current != New || decided) && !replaces.contains(&current) {
        return Err(Refusal::Conflict {
            what: format!("incident {id}"),
            detail: format!("already decided ({current:?})"),
        });
    }
    check_move(id, current, to)
}

/// What claiming the execution of an incident does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClaimStep {
    /// Not `approved` or `auto`: nothing changes.
    NotClaimable,
    /// The kill-switch is engaged: the incident moves to `blocked`.
    Block,
    /// The caller owns the execution: the incident moves to `executing`.
    Execute,
}

impl ClaimStep {
    /// The status the incident moves to, if any.
    pub fn to(self) -> Option<IncidentStatus> {
        match self {
            Self::NotClaimable => None,
            Self::Block => Some(Blocked),
            Self::Execute => Some(Executing),
        }
    }
}

/// Claiming an incident that is `current`, with the kill-switch `engaged`
/// (read in the same transaction).
pub fn claim(current: IncidentStatus, engaged: bool) -> ClaimStep {
    match (CLAIMABLE.contains(&current), engaged) {
        (false, _) => ClaimStep::NotClaimable,
        (true, true) => ClaimStep::Block,
        (true, false) => ClaimStep::Execute,
    }
}

/// The statuses setting the kill-switch moves, and where. Engaging moves
/// nothing: it is the emergency brake, one row whatever the backlog, and it
/// is enforced where execution starts — every claim reads the switch in its
/// own transaction ([`claim`]) and a claimed `approved`/`auto` incident moves
/// to `blocked` instead; pending incidents stay pending (approving one
/// executes nothing until RESUME). Releasing moves every `blocked` incident
/// back to `pending`: a human must approve again.
pub fn kill_switch_moves(engaged: bool) -> Option<(&'static [IncidentStatus], IncidentStatus)> {
    (!engaged).then_some((&[Blocked], Pending))
}

/// The serialized (snake_case) name of a status.
pub fn status_name(s: IncidentStatus) -> &'static str {
    match s {
        New => "new",
        Pending => "pending",
        Approved => "approved",
        Rejected => "rejected",
        Expired => "expired",
        Auto => "auto",
        Blocked => "blocked",
        Executing => "executing",
        Executed => "executed",
        Resolved => "resolved",
        Unresolved => "unresolved",
        Escalated => "escalated",
        Ignored => "ignored",
    }
}

/// The lifecycle as Lua tables, for stores whose checks run in Lua: `KNOWN`,
/// `CLOSED`, `CLAIMABLE` and `RESOLVE_ONLY_NOTED` are sets of status names,
/// `MOVES[from][to]` is true for every allowed move, `CLEARED_NOTE` is
/// [`CLEARED_NOTE`].
pub fn lua_tables() -> String {
    let set = |statuses: &[IncidentStatus]| {
        let items: Vec<String> = statuses
            .iter()
            .map(|s| format!("['{}'] = true", status_name(*s)))
            .collect();
        format!("{{{}}}", items.join(", "))
    };
    let mut out = format!("local CLEARED_NOTE = '{CLEARED_NOTE}'\n");
    out += &format!("local KNOWN = {}\n", set(&ALL));
    out += &format!("local CLOSED = {}\n", set(CLOSED));
    out += &format!("local CLAIMABLE = {}\n", set(CLAIMABLE));
    out += &format!("local RESOLVE_ONLY_NOTED = {}\n", set(RESOLVE_ONLY_NOTED));
    out += "local MOVES = {}\n";
    for (from, targets) in MOVES {
        out += &format!("MOVES['{}'] = {}\n", status_name(from), set(targets));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_cover_every_status_once_and_closed_ones_go_nowhere() {
        for s in ALL {
            assert_eq!(MOVES.iter().filter(|(f, _)| *f == s).count(), 1, "{s:?}");
            assert_eq!(
                serde_json::to_value(s).expect("serialize"),
                serde_json::Value::String(status_name(s).into())
            );
            assert_eq!(s.is_closed(), CLOSED.contains(&s));
            if s.is_closed() {
                assert!(ALL.iter().all(|t| !can_move(s, *t)));
            }
        }
        for s in CLAIMABLE {
            assert!(can_move(*s, Blocked));
        }
        assert!(can_move(Blocked, Pending));
    }

    #[test]
    fn refusals_say_what_and_why() {
        let id = IncidentId::new();
        assert!(transition(id, Pending, &[Pending], Approved).is_ok());
        assert!(matches!(
            transition(id, Approved, &[Pending], Rejected),
            Err(Refusal::Conflict { .. })
        ));
        assert!(matches!(
            transition(id, Rejected, &[Rejected], Executing),
            Err(Refusal::Invalid { .. })
        ));
        assert!(matches!(
            decide(id, New, true, &[], Pending),
            Err(Refusal::Conflict { .. })
        ));
        // A proposal replaces an escalated incident's decision, never a pending one's.
        assert!(decide(id, Escalated, true, PROPOSABLE, Pending).is_ok());
        assert!(decide(id, Unresolved, true, PROPOSABLE, Blocked).is_ok());
        assert!(matches!(
            decide(id, Escalated, true, &[], Pending),
            Err(Refusal::Conflict { .. })
        ));
        assert!(matches!(
            decide(id, Pending, true, PROPOSABLE, Pending),
            Err(Refusal::Conflict { .. })
        ));
        assert!(matches!(
            decide(id, Escalated, true, PROPOSABLE, Auto),
            Err(Refusal::Invalid { .. })
        ));
        assert_eq!(claim(Auto, true), ClaimStep::Block);
        assert_eq!(claim(Pending, false), ClaimStep::NotClaimable);
    }

    #[test]
    fn lua_tables_name_every_move() {
        let lua = lua_tables();
        assert!(lua.contains("MOVES['blocked'] = {['pending'] = true, "));
        assert!(lua.contains("local CLAIMABLE = {['approved'] = true, ['auto'] = true}"));
    }
}
