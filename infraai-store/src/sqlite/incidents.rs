//! The incidents of a [`SqliteStore`]: alerts recorded (encoded on the
//! caller's task, bound by the writer), lifecycle moves, claims and the
//! kill-switch.

use super::{rows, sql, SqliteStore, COMPONENT};
use crate::codec::{self, status_name};
use crate::error::{StoreError, StoreResult};
use async_trait::async_trait;
use chrono::Utc;
use infraai_core::*;
use rows::rerr;
use rusqlite::{params, Connection};

/// The status of an incident (and whether it has a decision) that must exist.
fn incident_status(
    conn: &Connection,
    id: &str,
    op: &'static str,
) -> StoreResult<(IncidentStatus, bool)> {
    let sql = "SELECT status, decision_json IS NOT NULL FROM incidents WHERE id = ?1";
    let row = rows::one(conn, sql, [id], rerr(op, || id.to_owned()), |r| {
        let c = crate::sql::Cols::new(r, op, format!("incident {id}"));
        Ok((c.name(0)?, c.get(1)?))
    })?;
    row.ok_or_else(|| StoreError::NotFound {
        what: format!("incident {id}"),
    })
}

fn set_status(
    conn: &Connection,
    id: &str,
    to: IncidentStatus,
    note: Option<&str>,
    op: &'static str,
) -> StoreResult<()> {
    let p = params![status_name(to), note, codec::time(Utc::now()), id];
    rows::exec(conn, crate::sql::SET_STATUS, p, rerr(op, || id.to_owned()))?;
    Ok(())
}

/// A [`Transition`] the writer thread owns.
struct Move {
    incident: IncidentId,
    id: String,
    from: Vec<IncidentStatus>,
    to: IncidentStatus,
    note: Option<String>,
    approval: Option<ApprovalRecord>,
}

impl Move {
    fn of(change: Transition<'_>) -> Self {
        Self {
            incident: change.id,
            id: change.id.to_string(),
            from: change.from.to_vec(),
            to: change.to,
            note: change.note.map(str::to_owned),
            approval: change.approval.cloned(),
        }
    }

    /// Checks the move against the lifecycle and makes it — to `to`, which
    /// a claim in the same transaction may have taken further — with the
    /// human's decision recorded. The incident as moved.
    fn make(&self, c: &Connection, to: IncidentStatus, op: &'static str) -> StoreResult<Incident> {
        let (status, _) = incident_status(c, &self.id, op)?;
        lifecycle::transition(self.incident, status, &self.from, self.to)?;
        set_status(c, &self.id, to, self.note.as_deref(), op)?;
        if let Some(a) = &self.approval {
            rows::insert_approval(c, a)?;
        }
        rows::load_incident(c, &self.id, op)
    }
}

fn kill_switch_row(conn: &Connection, op: &'static str) -> StoreResult<KillSwitch> {
    let row = rows::one(conn, crate::sql::KILL_SWITCH, [], sql(op), |r| {
        crate::sql::kill_switch(r, op)
    })?;
    Ok(row.unwrap_or_else(KillSwitch::released))
}

#[async_trait]
impl IncidentStore for SqliteStore {
    async fn record_alerts(&self, batch: Vec<AlertRecord>) -> Result<Vec<AlertIngest>> {
        const OP: &str = "record_alert";
        validate_alerts(&batch)?;
        // Encoded here, on the caller's task: the writer is the serial part,
        // and only binds. The incidents the alerts would open (each alert
        // moved into its own) come back with the answer.
        let mut jobs = Vec::with_capacity(batch.len());
        for AlertRecord { alert, audit } in batch {
            let audit = audit
                .map(|a| Ok::<_, StoreError>((crate::sql::audit_input(&a, COMPONENT)?, a)))
                .transpose()?;
            jobs.push((
                crate::sql::PreparedIncident::of(alert, COMPONENT, OP)?,
                audit,
            ));
        }
        // One writer job: one transaction, all or none.
        let (recorded, jobs) = self
            .write_with(OP, jobs, |c, jobs| {
                let mut out = Vec::with_capacity(jobs.len());
                for (fresh, audit) in jobs {
                    let alert = &fresh.incident.alert;
                    let (outcome, recorded) = rows::record_alert(c, alert, &fresh.params, OP)?;
                    let incident = match &recorded {
                        rows::Recorded::Opened => Some(fresh.incident.id),
                        rows::Recorded::Stored(i) => i.as_ref().map(|i| i.id),
                    };
                    let audited = outcome != IngestOutcome::Repeated;
                    if let (Some((input, audit)), Some(incident), true) = (audit, incident, audited)
                    {
                        rows::insert_audit_as(c, audit, input, Some(incident), outcome.name())?;
                    }
                    out.push((outcome, recorded));
                }
                Ok(out)
            })
            .await?;
        Ok(recorded
            .into_iter()
            .zip(jobs)
            .map(|((outcome, recorded), (fresh, _))| AlertIngest {
                outcome,
                incident: match recorded {
                    rows::Recorded::Opened => Some(fresh.incident),
                    rows::Recorded::Stored(i) => i,
                },
            })
            .collect())
    }

    async fn get_incident(&self, id: IncidentId) -> Result<Option<Incident>> {
        let id = id.to_string();
        self.read("get_incident", move |c| {
            rows::get_incident(c, &id, "get_incident")
        })
        .await
    }

    async fn list_incidents(&self, query: &IncidentQuery) -> Result<Vec<Incident>> {
        let query = query.clone();
        self.read("list_incidents", move |c| rows::list_incidents(c, &query))
            .await
    }

    async fn incident_counts(&self) -> Result<IncidentCounts> {
        self.read("incident_counts", rows::incident_counts).await
    }

    async fn record_decision(&self, record: DecisionRecord<'_>) -> Result<Incident> {
        const OP: &str = "record_decision";
        let (incident, to, replaces) = (record.id, record.to, record.replaces.to_vec());
        let decision_json = codec::json(COMPONENT, OP, "decision", record.decision)?;
        let notes_json = codec::json(COMPONENT, OP, "guardrail notes", record.guardrail_notes)?;
        let id = incident.to_string();
        self.write(OP, move |c| {
            let (status, decided) = incident_status(c, &id, OP)?;
            lifecycle::decide(incident, status, decided, &replaces, to)?;
            let now = codec::time(Utc::now());
            let values = params![decision_json, notes_json, status_name(to), now, id];
            for sql in crate::sql::DECIDE {
                rows::exec(c, sql, values, rerr(OP, id.clone()))?;
            }
            rows::load_incident(c, &id, OP)
        })
        .await
    }

    async fn transition(&self, change: Transition<'_>) -> Result<Incident> {
        const OP: &str = "transition";
        let m = Move::of(change);
        self.write(OP, move |c| m.make(c, m.to, OP)).await
    }

    async fn claim_execution(&self, id: IncidentId) -> Result<Claim> {
        const OP: &str = "claim_execution";
        let id = id.to_string();
        self.write(OP, move |c| {
            let (status, _) = incident_status(c, &id, OP)?;
            // The switch is read in the same transaction as the claim.
            let step = lifecycle::claim(status, kill_switch_row(c, OP)?.engaged);
            if let Some(to) = step.to() {
                set_status(c, &id, to, None, OP)?;
            }
            Ok(Claim::of(step, rows::load_incident(c, &id, OP)?))
        })
        .await
    }

    async fn transition_and_claim(&self, change: Transition<'_>) -> Result<Claim> {
        const OP: &str = "transition_and_claim";
        let m = Move::of(change);
        self.write(OP, move |c| {
            // One update, to where the claim leaves it.
            let step = lifecycle::claim(m.to, kill_switch_row(c, OP)?.engaged);
            Ok(Claim::of(step, m.make(c, step.to().unwrap_or(m.to), OP)?))
        })
        .await
    }

    async fn kill_switch(&self) -> Result<KillSwitch> {
        self.read("kill_switch", |c| kill_switch_row(c, "kill_switch"))
            .await
    }

    async fn set_kill_switch(&self, request: KillSwitchRequest<'_>) -> Result<KillSwitchChange> {
        const OP: &str = "set_kill_switch";
        let engaged = request.engaged;
        let (actor, reason) = (request.actor.to_owned(), request.reason.map(str::to_owned));
        self.write(OP, move |c| {
            let now = Utc::now();
            let state = KillSwitch {
                engaged,
                set_by: Some(actor.clone()),
                reason: reason.clone(),
                set_at: Some(now),
            };
            let p = params![engaged, state.set_by, state.reason, codec::time(now)];
            rows::exec(c, crate::sql::SET_KILL_SWITCH, p, sql(OP))?;
            let Some((from, to)) = lifecycle::kill_switch_moves(engaged) else {
                tracing::info!(engaged, "kill-switch set");
                return Ok(KillSwitchChange {
                    state,
                    affected: vec![],
                });
            };
            let from: Vec<&str> = from.iter().map(|s| status_name(*s)).collect();
            let from = codec::json(COMPONENT, OP, "statuses", &from)?;
            let mut affected = rows::all(
                c,
                "UPDATE incidents SET status = ?2, updated_at = ?3 \
                 WHERE status IN (SELECT value FROM json_each(?1)) RETURNING id",
                params![from, status_name(to), codec::time(now)],
                sql(OP),
                |r| crate::sql::Cols::new(r, OP, "incidents".into()).id::<IncidentId>(0),
            )?;
            affected.sort();
            tracing::info!(engaged, affected = affected.len(), "kill-switch set");
            Ok(KillSwitchChange { state, affected })
        })
        .await
    }
}
