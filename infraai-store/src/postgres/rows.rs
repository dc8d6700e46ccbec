//! The PostgreSQL side of each record: its statements, run on a pooled
//! connection or in a transaction (records are decoded and their parameters
//! listed in [`crate::sql`]).

use super::{Db, COMPONENT};
use crate::codec;
use crate::error::{StoreError, StoreResult};
use crate::sql::{self, Cols, INCIDENT_COLS};
use chrono::Utc;
use infraai_core::lifecycle::IngestStep;
use infraai_core::*;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

/// Maps a query error to [`StoreError::Postgres`] about `what`.
pub(super) fn qerr(
    op: &'static str,
    what: impl Into<String>,
) -> impl FnOnce(tokio_postgres::Error) -> StoreError {
    let what = what.into();
    move |source| StoreError::Postgres {
        op,
        id: Some(what),
        source,
    }
}

/// Maps an insert error: a duplicate key is a conflict.
fn insert_err(op: &'static str, what: String) -> impl FnOnce(tokio_postgres::Error) -> StoreError {
    move |e| {
        if e.code() == Some(&SqlState::UNIQUE_VIOLATION) {
            StoreError::Conflict {
                what,
                detail: "already stored".into(),
            }
        } else {
            StoreError::Postgres {
                op,
                id: Some(what),
                source: e,
            }
        }
    }
}

/// Every row of a statement, each decoded by `f`.
pub(super) async fn all<T>(
    c: &dyn Db,
    sql: &str,
    p: &[&(dyn ToSql + Sync)],
    err: impl FnOnce(tokio_postgres::Error) -> StoreError,
    f: impl Fn(&Row) -> StoreResult<T>,
) -> StoreResult<Vec<T>> {
    c.rows(sql, p).await.map_err(err)?.iter().map(f).collect()
}

/// The first row of a statement, if any, decoded by `f`.
pub(super) async fn one<T>(
    c: &dyn Db,
    sql: &str,
    p: &[&(dyn ToSql + Sync)],
    err: impl FnOnce(tokio_postgres::Error) -> StoreError,
    f: impl FnOnce(&Row) -> StoreResult<T>,
) -> StoreResult<Option<T>> {
    c.rows(sql, p)
        .await
        .map_err(err)?
        .first()
        .map(f)
        .transpose()
}

fn limit(l: Option<usize>) -> Option<i64> {
    l.map(|l| i64::try_from(l).unwrap_or(i64::MAX))
}

// ------------------------------------------------------------------ runs

pub(super) async fn put_run(c: &dyn Db, run: &Run) -> StoreResult<()> {
    const OP: &str = "put_run";
    let what = format!("run {}", run.id);
    let id = run.id.to_string();
    let p = sql::run_params(run, COMPONENT)?;
    c.exec(sql::PUT_RUN, &sql::pg(&p))
        .await
        .map_err(qerr(OP, what.clone()))?;
    c.exec("DELETE FROM run_phases WHERE run_id = $1", &[&id])
        .await
        .map_err(qerr(OP, what.clone()))?;
    // One statement for the whole history.
    let (mut seqs, mut phases, mut ats, mut notes) = (vec![], vec![], vec![], vec![]);
    for (seq, p) in run.history.iter().enumerate() {
        seqs.push(seq as i64);
        phases.push(p.phase.to_string());
        ats.push(codec::time(p.at));
        notes.push(p.note.clone());
    }
    if !seqs.is_empty() {
        c.exec(
            "INSERT INTO run_phases (run_id, seq, phase, at, note) \
             SELECT $1, * FROM unnest($2::BIGINT[], $3::TEXT[], $4::TEXT[], $5::TEXT[])",
            &[&id, &seqs, &phases, &ats, &notes],
        )
        .await
        .map_err(qerr(OP, what))?;
    }
    Ok(())
}

/// The run columns, with the phase history as a JSON array of
/// `[phase, at, note]` (one statement, one snapshot).
const RUN_COLS: &str =
    "SELECT r.id, r.doc_json, COALESCE((SELECT json_agg(json_build_array(p.phase, p.at, p.note) \
     ORDER BY p.seq) FROM run_phases p WHERE p.run_id = r.id)::TEXT, '[]') FROM runs r";

pub(super) async fn get_run(c: &dyn Db, id: RunId) -> StoreResult<Option<Run>> {
    const OP: &str = "get_run";
    let sql = format!("{RUN_COLS} WHERE r.id = $1");
    let err = qerr(OP, format!("run {id}"));
    one(c, &sql, &[&id.to_string()], err, |r| sql::run(r, OP)).await
}

pub(super) async fn list_runs(c: &dyn Db, q: &RunQuery) -> StoreResult<Vec<Run>> {
    const OP: &str = "list_runs";
    let (after_at, after_id) = codec::page_after(q.after);
    let sql = format!(
        "{RUN_COLS} WHERE ($1::TEXT IS NULL OR r.deployment_id = $1) \
         AND ($3::TEXT IS NULL OR (r.created_at, r.id) < ($3, $4::TEXT)) \
         ORDER BY r.created_at DESC, r.id DESC LIMIT $2"
    );
    let deployment = q.deployment_id.map(|d| d.to_string());
    let p: [&(dyn ToSql + Sync); 4] = [&deployment, &limit(q.limit), &after_at, &after_id];
    all(c, &sql, &p, qerr(OP, "runs"), |r| sql::run(r, OP)).await
}

// ------------------------------------------------------------------ deployments

pub(super) async fn put_deployment(c: &dyn Db, d: &Deployment) -> StoreResult<()> {
    const OP: &str = "put_deployment";
    let what = format!("deployment {}", d.deployment_id);
    let id = d.deployment_id.to_string();
    let p = sql::deployment_params(d, COMPONENT)?;
    c.exec(sql::PUT_DEPLOYMENT, &sql::pg(&p))
        .await
        .map_err(qerr(OP, what.clone()))?;
    c.exec(
        "DELETE FROM deployment_resources WHERE deployment_id = $1",
        &[&id],
    )
    .await
    .map_err(qerr(OP, what.clone()))?;
    let resources: Vec<&str> = d.resource_map.keys().map(String::as_str).collect();
    if !resources.is_empty() {
        c.exec(
            "INSERT INTO deployment_resources (deployment_id, resource) \
             SELECT $1, * FROM unnest($2::TEXT[])",
            &[&id, &resources],
        )
        .await
        .map_err(qerr(OP, what))?;
    }
    Ok(())
}

pub(super) async fn get_deployment(
    c: &dyn Db,
    id: DeploymentId,
) -> StoreResult<Option<Deployment>> {
    const OP: &str = "get_deployment";
    let err = qerr(OP, format!("deployment {id}"));
    one(c, sql::DEPLOYMENT, &[&id.to_string()], err, |r| {
        sql::deployment(r, OP)
    })
    .await
}

pub(super) async fn list_deployments(c: &dyn Db) -> StoreResult<Vec<Deployment>> {
    const OP: &str = "list_deployments";
    let err = qerr(OP, "deployments");
    all(c, sql::DEPLOYMENTS, &[], err, |r| sql::deployment(r, OP)).await
}

pub(super) async fn find_deployment_by_resource(
    c: &dyn Db,
    resource: &str,
) -> StoreResult<Option<Deployment>> {
    const OP: &str = "find_deployment_by_resource";
    let err = qerr(OP, format!("resource {resource}"));
    let decode = |r: &Row| sql::deployment(r, OP);
    one(c, sql::DEPLOYMENT_OF_RESOURCE, &[&resource], err, decode).await
}

// ------------------------------------------------------------------ incidents

pub(super) async fn get_incident(
    c: &dyn Db,
    id: &str,
    op: &'static str,
) -> StoreResult<Option<Incident>> {
    let sql = format!("{INCIDENT_COLS} WHERE id = $1");
    let err = qerr(op, format!("incident {id}"));
    one(c, &sql, &[&id], err, |r| sql::incident(r, op)).await
}

/// An incident that must exist (the caller holds its row lock).
pub(super) async fn load_incident(c: &dyn Db, id: &str, op: &'static str) -> StoreResult<Incident> {
    get_incident(c, id, op)
        .await?
        .ok_or_else(|| StoreError::NotFound {
            what: format!("incident {id}"),
        })
}

pub(super) async fn list_incidents(c: &dyn Db, q: &IncidentQuery) -> StoreResult<Vec<Incident>> {
    const OP: &str = "list_incidents";
    let (sql, p) = sql::list_incidents(COMPONENT, q)?;
    all(c, &sql, &sql::pg(&p), qerr(OP, "incidents"), |r| {
        sql::incident(r, OP)
    })
    .await
}

/// Counted in PostgreSQL (as in SQLite): no incident loaded.
pub(super) async fn incident_counts(c: &dyn Db) -> StoreResult<IncidentCounts> {
    let groups = |sql: &'static str| async move {
        let err = || qerr("incident_counts", "incidents");
        let rows = c.rows(sql, &[]).await.map_err(err())?;
        rows.iter()
            .map(|r| Ok((r.try_get(0).map_err(err())?, r.try_get(1).map_err(err())?)))
            .collect::<StoreResult<Vec<_>>>()
    };
    sql::incident_counts(
        COMPONENT,
        groups(sql::COUNT_BY_STATUS).await?,
        groups(sql::COUNT_BY_ACTION).await?,
    )
}

/// Takes the transaction-scoped advisory locks of `alerts`' fingerprints,
/// each once, in the order of their lock keys: every transaction takes them
/// in one order, so two batches cannot wait for each other. `OFFSET 0` keeps
/// the ordered subquery from being flattened, so the locks are taken in its
/// order. [`record_alert`] needs its fingerprint's lock held.
pub(super) async fn lock_fingerprints(
    c: &dyn Db,
    alerts: impl Iterator<Item = &Alert>,
    op: &'static str,
) -> StoreResult<()> {
    let fingerprints: Vec<&str> = alerts.map(|a| a.fingerprint.as_str()).collect();
    c.exec(
        "SELECT pg_advisory_xact_lock($1, k) FROM \
         (SELECT DISTINCT hashtext(f) AS k FROM unnest($2::text[]) AS f ORDER BY k OFFSET 0) AS keys",
        &[&super::incidents::FINGERPRINT_LOCK_CLASS, &fingerprints],
    )
    .await
    .map_err(qerr(op, format!("{} fingerprints", fingerprints.len())))?;
    Ok(())
}

/// Deduplicates by fingerprint, inside the caller's transaction: updates the
/// open incident or opens one.
///
/// Concurrency: the caller's transaction holds the fingerprint's advisory
/// lock ([`lock_fingerprints`]), so every ingest of one fingerprint — on any
/// replica — runs one after the other, and each sees the previous one's
/// commit (READ COMMITTED takes a new snapshot per statement). The open
/// incident is also locked `FOR UPDATE` against concurrent transitions, and
/// the partial unique index makes two open incidents per fingerprint
/// impossible whatever happens.
pub(super) async fn record_alert(
    c: &dyn Db,
    a: &Alert,
    op: &'static str,
) -> StoreResult<AlertIngest> {
    let open = c
        .rows(
            &format!("{} FOR UPDATE", sql::OPEN_OF_FINGERPRINT),
            &[&a.fingerprint],
        )
        .await
        .map_err(qerr(op, format!("fingerprint {}", a.fingerprint)))?;
    // A stored status that does not parse is an error, never silently overwritten.
    let (step, id) = match open.first() {
        Some(r) => {
            let (cols, id) = Cols::keyed(r, op, "incident")?;
            (lifecycle::ingest_open(a.state, cols.name(1)?), Some(id))
        }
        None => {
            // The latest closed incident: asked only when the fingerprint
            // has no open incident, so it is the latest of all.
            let rows = c
                .rows(sql::LATEST_CLOSED_OF_FINGERPRINT, &[&a.fingerprint])
                .await
                .map_err(qerr(op, format!("fingerprint {}", a.fingerprint)))?;
            let closed = rows.first().map(|r| {
                let (cols, id) = Cols::keyed(r, op, "incident")?;
                Ok::<_, StoreError>((id, (cols.name(1)?, cols.time(2)?)))
            });
            let (id, last) = closed.transpose()?.unzip();
            (lifecycle::ingest_closed(a, last), id)
        }
    };
    let incident = match (step, id) {
        (IngestStep::Open, _) => {
            let i = Incident::open(a.clone());
            let p = sql::incident_params(&i, COMPONENT, op)?;
            c.exec(sql::INSERT_INCIDENT, &sql::pg(&p))
                .await
                .map_err(qerr(op, format!("incident {}", i.id)))?;
            Some(i)
        }
        (IngestStep::Skip, _) | (_, None) => None,
        (IngestStep::Note, Some(id)) => Some(load_incident(c, &id, op).await?),
        (IngestStep::Repeat | IngestStep::Resolve, Some(id)) => {
            let change = (step == IngestStep::Repeat, step == IngestStep::Resolve);
            let p = sql::update_alert_params(&id, a, change, COMPONENT, op)?;
            c.exec(sql::UPDATE_ALERT, &sql::pg(&p))
                .await
                .map_err(qerr(op, format!("incident {id}")))?;
            Some(load_incident(c, &id, op).await?)
        }
    };
    Ok(AlertIngest {
        outcome: step.outcome(),
        incident,
    })
}

// ------------------------------------------------------------------ approvals, actions

pub(super) async fn insert_approval(c: &dyn Db, a: &ApprovalRecord) -> StoreResult<()> {
    let p = sql::approval_params(a, COMPONENT)?;
    c.exec(sql::INSERT_APPROVAL, &sql::pg(&p))
        .await
        .map_err(qerr(
            "record_approval",
            format!("incident {}", a.incident_id),
        ))?;
    Ok(())
}

pub(super) async fn list_approvals(c: &dyn Db, id: IncidentId) -> StoreResult<Vec<ApprovalRecord>> {
    const OP: &str = "list_approvals";
    let err = qerr(OP, format!("approvals of incident {id}"));
    all(c, sql::APPROVALS, &[&id.to_string()], err, |r| {
        sql::approval(r, OP, id)
    })
    .await
}

pub(super) async fn insert_action(c: &dyn Db, o: &ActionOutcome) -> StoreResult<()> {
    let p = sql::action_params(o, COMPONENT)?;
    c.exec(sql::INSERT_ACTION, &sql::pg(&p))
        .await
        .map_err(insert_err("record_action", format!("action {}", o.id)))?;
    Ok(())
}

pub(super) async fn list_actions(c: &dyn Db, id: IncidentId) -> StoreResult<Vec<ActionOutcome>> {
    const OP: &str = "list_actions";
    let err = qerr(OP, format!("actions of incident {id}"));
    all(c, sql::ACTIONS, &[&id.to_string()], err, |r| {
        sql::action(r, OP, id)
    })
    .await
}

pub(super) async fn count_actions_since(
    c: &dyn Db,
    resource: &str,
    since: chrono::DateTime<Utc>,
) -> StoreResult<u64> {
    const OP: &str = "count_actions_since";
    let p: [&(dyn ToSql + Sync); 2] = [&resource, &codec::time(since)];
    let err = qerr(OP, format!("resource {resource}"));
    let count = |r: &Row| Cols::new(r, OP, "actions".into()).get::<i64>(0);
    let n = one(c, sql::COUNT_ACTIONS_SINCE, &p, err, count).await?;
    Ok(u64::try_from(n.unwrap_or(0)).unwrap_or(0))
}

// ------------------------------------------------------------------ audit

pub(super) async fn insert_audit(c: &dyn Db, r: &AuditRecord) -> StoreResult<()> {
    let input = sql::audit_input(r, COMPONENT)?;
    let p = sql::audit_params(r, &input, r.incident_id, &r.outcome, COMPONENT)?;
    c.exec(sql::INSERT_AUDIT, &sql::pg(&p))
        .await
        .map_err(insert_err("append_audit", format!("audit record {}", r.id)))?;
    Ok(())
}

pub(super) async fn list_audit(c: &dyn Db, q: &AuditQuery) -> StoreResult<Vec<AuditRecord>> {
    const OP: &str = "list_audit";
    let rows = c
        .rows(
            &sql::audit_sql(q),
            &[
                &q.incident_id.map(|i| i.to_string()),
                &q.run_id.map(|i| i.to_string()),
                &q.before.map(|i| i.to_string()),
                &limit(q.limit),
            ],
        )
        .await
        .map_err(qerr(OP, "audit"))?;
    rows.iter().rev().map(|r| sql::audit(r, OP)).collect()
}
