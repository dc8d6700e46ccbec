//! The incidents of a [`PostgresStore`]: alerts recorded under advisory
//! locks on their fingerprints, lifecycle moves and claims under row locks,
//! and the kill-switch.

use super::{pg, rows, Db, PostgresStore, COMPONENT};
use crate::codec::{self, status_name};
use crate::error::{StoreError, StoreResult};
use crate::sql::{self, Cols};
use async_trait::async_trait;
use chrono::Utc;
use infraai_core::*;
use rows::qerr;
use tokio_postgres::types::ToSql;

/// The advisory lock class of fingerprints (`pg_advisory_xact_lock(class,
/// hashtext(fingerprint))`); two-key locks never collide with the one-key
/// migration lock.
pub(super) const FINGERPRINT_LOCK_CLASS: i32 = 0x6966_7070; // "ifpp"

/// Most alerts of a batch recorded in one transaction: each fingerprint's
/// advisory lock takes a slot of the server's shared lock table
/// (`max_locks_per_transaction` × `max_connections`, 6,400 by default), so a
/// larger batch is recorded in several transactions, one after the other.
pub(super) const MAX_ALERTS_PER_TRANSACTION: usize = 256;

/// Locks the incident row and reads its status (and whether it has a decision).
async fn lock_incident(
    c: &dyn Db,
    id: &str,
    op: &'static str,
) -> StoreResult<(IncidentStatus, bool)> {
    let rows = c
        .rows(
            "SELECT status, decision_json IS NOT NULL FROM incidents WHERE id = $1 FOR UPDATE",
            &[&id],
        )
        .await
        .map_err(qerr(op, format!("incident {id}")))?;
    let r = rows.first().ok_or_else(|| StoreError::NotFound {
        what: format!("incident {id}"),
    })?;
    let cols = Cols::new(r, op, format!("incident {id}"));
    Ok((cols.name(0)?, cols.get(1)?))
}

/// Moves a locked incident to `to` and answers with it as moved (one
/// round trip: `RETURNING`).
async fn move_incident(
    c: &dyn Db,
    id: &str,
    to: IncidentStatus,
    note: Option<&str>,
    op: &'static str,
) -> StoreResult<Incident> {
    let p: [&(dyn ToSql + Sync); 4] = [&status_name(to), &note, &codec::time(Utc::now()), &id];
    let rows = (c.rows(sql::SET_STATUS_RETURNING, &p).await)
        .map_err(qerr(op, format!("incident {id}")))?;
    let row = rows.first().ok_or_else(|| StoreError::NotFound {
        what: format!("incident {id}"),
    })?;
    sql::incident(row, op)
}

/// Locks the incident of `change`, checks the move against the lifecycle and
/// makes it — to `to`, which a claim in the same transaction may have taken
/// further — with the human's decision recorded (sent with the move: one
/// round trip). The incident as moved.
async fn make_move(
    tx: &dyn Db,
    change: Transition<'_>,
    to: IncidentStatus,
    op: &'static str,
) -> StoreResult<Incident> {
    let id = change.id.to_string();
    let (status, _) = lock_incident(tx, &id, op).await?;
    lifecycle::transition(change.id, status, change.from, change.to)?;
    let approved = async {
        match change.approval {
            Some(a) => rows::insert_approval(tx, a).await,
            None => Ok(()),
        }
    };
    let (moved, approved) = tokio::join!(move_incident(tx, &id, to, change.note, op), approved);
    approved?;
    moved
}

/// The kill-switch row; `lock` takes it `FOR SHARE` (a claim in flight).
async fn kill_switch_row(c: &dyn Db, op: &'static str, lock: bool) -> StoreResult<KillSwitch> {
    let sql = if lock {
        format!("{} FOR SHARE", sql::KILL_SWITCH)
    } else {
        sql::KILL_SWITCH.to_owned()
    };
    let rows = c.rows(&sql, &[]).await.map_err(pg(op))?;
    rows.first()
        .map_or(Ok(KillSwitch::released()), |r| sql::kill_switch(r, op))
}

#[async_trait]
impl IncidentStore for PostgresStore {
    async fn record_alerts(&self, batch: Vec<AlertRecord>) -> Result<Vec<AlertIngest>> {
        const OP: &str = "record_alert";
        validate_alerts(&batch)?;
        let mut ingests = Vec::with_capacity(batch.len());
        for chunk in batch.chunks(MAX_ALERTS_PER_TRANSACTION) {
            ingests.extend(in_tx!(self, OP, |tx| {
                rows::lock_fingerprints(tx, chunk.iter().map(|r| &r.alert), OP).await?;
                let mut ingests = Vec::with_capacity(chunk.len());
                for AlertRecord { alert, audit } in chunk {
                    let ingest = rows::record_alert(tx, alert, OP).await?;
                    if let Some(record) = audit.as_ref().and_then(|a| alert_audit(&ingest, a)) {
                        rows::insert_audit(tx, &record).await?;
                    }
                    ingests.push(ingest);
                }
                Ok(ingests)
            })?);
        }
        Ok(ingests)
    }

    async fn get_incident(&self, id: IncidentId) -> Result<Option<Incident>> {
        let c = self.client("get_incident").await?;
        Ok(rows::get_incident(&c, &id.to_string(), "get_incident").await?)
    }

    async fn list_incidents(&self, query: &IncidentQuery) -> Result<Vec<Incident>> {
        let c = self.client("list_incidents").await?;
        Ok(rows::list_incidents(&c, query).await?)
    }

    async fn incident_counts(&self) -> Result<IncidentCounts> {
        let c = self.client("incident_counts").await?;
        Ok(rows::incident_counts(&c).await?)
    }

    async fn record_decision(&self, record: DecisionRecord<'_>) -> Result<Incident> {
        let DecisionRecord {
            id,
            decision,
            guardrail_notes,
            to,
            replaces,
        } = record;
        const OP: &str = "record_decision";
        let incident = id;
        let decision_json = codec::json(COMPONENT, OP, "decision", decision)?;
        let notes_json = codec::json(COMPONENT, OP, "guardrail notes", guardrail_notes)?;
        let id = id.to_string();
        Ok(in_tx!(self, OP, |tx| {
            let (status, decided) = lock_incident(tx, &id, OP).await?;
            lifecycle::decide(incident, status, decided, replaces, to)?;
            let now = codec::time(Utc::now());
            let p: [&(dyn ToSql + Sync); 5] =
                [&decision_json, &notes_json, &status_name(to), &now, &id];
            for statement in sql::DECIDE {
                let err = qerr(OP, format!("incident {id}"));
                tx.exec(statement, &p).await.map_err(err)?;
            }
            rows::load_incident(tx, &id, OP).await
        })?)
    }

    async fn transition(&self, change: Transition<'_>) -> Result<Incident> {
        const OP: &str = "transition";
        Ok(in_tx!(self, OP, |tx| {
            make_move(tx, change, change.to, OP).await
        })?)
    }

    async fn claim_execution(&self, id: IncidentId) -> Result<Claim> {
        const OP: &str = "claim_execution";
        let id = id.to_string();
        Ok(in_tx!(self, OP, |tx| {
            // The switch is read in the same transaction as the claim,
            // and locked first: engaging it waits for this claim, and
            // this claim waits for an engagement in flight.
            let engaged = kill_switch_row(tx, OP, true).await?.engaged;
            let (status, _) = lock_incident(tx, &id, OP).await?;
            let step = lifecycle::claim(status, engaged);
            let incident = match step.to() {
                Some(to) => move_incident(tx, &id, to, None, OP).await?,
                None => rows::load_incident(tx, &id, OP).await?,
            };
            Ok(Claim::of(step, incident))
        })?)
    }

    async fn transition_and_claim(&self, change: Transition<'_>) -> Result<Claim> {
        const OP: &str = "transition_and_claim";
        Ok(in_tx!(self, OP, |tx| {
            // Locked in the claim's order: the kill-switch, then the incident;
            // one update, to where the claim leaves it.
            let step = lifecycle::claim(change.to, kill_switch_row(tx, OP, true).await?.engaged);
            let moved = make_move(tx, change, step.to().unwrap_or(change.to), OP).await?;
            Ok(Claim::of(step, moved))
        })?)
    }

    async fn kill_switch(&self) -> Result<KillSwitch> {
        let c = self.client("kill_switch").await?;
        Ok(kill_switch_row(&c, "kill_switch", false).await?)
    }

    async fn set_kill_switch(&self, request: KillSwitchRequest<'_>) -> Result<KillSwitchChange> {
        let KillSwitchRequest {
            engaged,
            actor,
            reason,
        } = request;
        const OP: &str = "set_kill_switch";
        Ok(in_tx!(self, OP, |tx| {
            let now = Utc::now();
            let state = KillSwitch {
                engaged,
                set_by: Some(actor.to_owned()),
                reason: reason.map(str::to_owned),
                set_at: Some(now),
            };
            let p: [&(dyn ToSql + Sync); 4] =
                [&engaged, &state.set_by, &state.reason, &codec::time(now)];
            tx.exec(sql::SET_KILL_SWITCH, &p).await.map_err(pg(OP))?;
            let Some((from, to)) = lifecycle::kill_switch_moves(engaged) else {
                tracing::info!(engaged, "kill-switch set");
                return Ok(KillSwitchChange {
                    state,
                    affected: vec![],
                });
            };
            let from: Vec<&str> = from.iter().map(|s| status_name(*s)).collect();
            let ids = tx
                .rows(
                    "UPDATE incidents SET status = $2, updated_at = $3 \
                             WHERE status = ANY($1) RETURNING id",
                    &[&from, &status_name(to), &codec::time(now)],
                )
                .await
                .map_err(pg(OP))?;
            let mut affected = ids
                .iter()
                .map(|r| Cols::new(r, OP, "incidents".into()).id(0))
                .collect::<StoreResult<Vec<IncidentId>>>()?;
            affected.sort();
            tracing::info!(engaged, affected = affected.len(), "kill-switch set");
            Ok(KillSwitchChange { state, affected })
        })?)
    }
}
