//! The SQLite side of each record: its statements, run on one connection
//! (records are decoded and their parameters listed in [`crate::sql`]).

use super::COMPONENT;
use crate::codec;
use crate::error::{StoreError, StoreResult};
use crate::sql::{self, INCIDENT_COLS};
use infraai_core::lifecycle::IngestStep;
use infraai_core::*;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Params, Row};
use std::sync::Arc;

/// What a statement was about, named in its error. A closure is called only
/// when the statement failed: the alert path formats no ids it never shows.
pub(super) trait What {
    fn describe(self) -> String;
}

impl What for &str {
    fn describe(self) -> String {
        self.to_owned()
    }
}

impl What for String {
    fn describe(self) -> String {
        self
    }
}

impl<F: FnOnce() -> String> What for F {
    fn describe(self) -> String {
        self()
    }
}

/// Maps a rusqlite error; type mismatches in stored values are corruption.
pub(super) fn rerr(
    op: &'static str,
    what: impl What,
) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |e| {
        let what = what.describe();
        match e {
            rusqlite::Error::InvalidColumnType(..)
            | rusqlite::Error::FromSqlConversionFailure(..)
            | rusqlite::Error::IntegralValueOutOfRange(..) => StoreError::Corrupt {
                component: COMPONENT,
                op,
                what,
                detail: e.to_string(),
            },
            e => StoreError::Sqlite {
                op,
                id: Some(what),
                source: Arc::new(e),
            },
        }
    }
}

/// Maps an insert error: a duplicate key is a conflict.
fn insert_err(op: &'static str, what: impl What) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |e| {
        let what = what.describe();
        match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::ConstraintViolation) => StoreError::Conflict {
                what,
                detail: format!("already stored ({e})"),
            },
            _ => StoreError::Sqlite {
                op,
                id: Some(what),
                source: Arc::new(e),
            },
        }
    }
}

/// Every row of a cached statement, each decoded by `f`.
pub(super) fn all<T>(
    c: &Connection,
    sql: &str,
    p: impl Params,
    err: impl FnOnce(rusqlite::Error) -> StoreError,
    f: impl Fn(&Row<'_>) -> StoreResult<T>,
) -> StoreResult<Vec<T>> {
    c.prepare_cached(sql)
        .and_then(|mut s| {
            s.query_map(p, |r| Ok(f(r)))?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(err)?
        .into_iter()
        .collect()
}

/// The first row of a cached statement, if any, decoded by `f`.
pub(super) fn one<T>(
    c: &Connection,
    sql: &str,
    p: impl Params,
    err: impl FnOnce(rusqlite::Error) -> StoreError,
    f: impl FnOnce(&Row<'_>) -> StoreResult<T>,
) -> StoreResult<Option<T>> {
    c.prepare_cached(sql)
        .and_then(|mut s| s.query_row(p, |r| Ok(f(r))).optional())
        .map_err(err)?
        .transpose()
}

/// Runs a cached statement; the number of rows it changed.
pub(super) fn exec(
    c: &Connection,
    sql: &str,
    p: impl Params,
    err: impl FnOnce(rusqlite::Error) -> StoreError,
) -> StoreResult<usize> {
    c.prepare_cached(sql)
        .and_then(|mut s| s.execute(p))
        .map_err(err)
}

fn limit(l: Option<usize>) -> i64 {
    l.map_or(-1, |l| i64::try_from(l).unwrap_or(i64::MAX))
}

// ------------------------------------------------------------------ runs

pub(super) fn put_run(c: &Connection, run: &Run) -> StoreResult<()> {
    const OP: &str = "put_run";
    let what = format!("run {}", run.id);
    let id = run.id.to_string();
    let p = params_from_iter(sql::run_params(run, COMPONENT)?);
    exec(c, sql::PUT_RUN, p, rerr(OP, what.clone()))?;
    exec(
        c,
        "DELETE FROM run_phases WHERE run_id = ?1",
        [&id],
        rerr(OP, what.clone()),
    )?;
    let mut insert = c
        .prepare_cached(
            "INSERT INTO run_phases (run_id, seq, phase, at, note) VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .map_err(rerr(OP, what.clone()))?;
    for (seq, p) in run.history.iter().enumerate() {
        insert
            .execute(params![
                id,
                seq as i64,
                p.phase.to_string(),
                codec::time(p.at),
                p.note
            ])
            .map_err(rerr(OP, what.clone()))?;
    }
    Ok(())
}

/// The run columns, with the phase history as a JSON array of
/// `[phase, at, note]` (one statement, one snapshot).
const RUN_COLS: &str = "SELECT r.id, r.doc_json, (SELECT json_group_array(json_array(p.phase, \
     p.at, p.note) ORDER BY p.seq) FROM run_phases p WHERE p.run_id = r.id) FROM runs r";

pub(super) fn get_run(c: &Connection, id: RunId, op: &'static str) -> StoreResult<Option<Run>> {
    let sql = format!("{RUN_COLS} WHERE r.id = ?1");
    one(
        c,
        &sql,
        [id.to_string()],
        rerr(op, || format!("run {id}")),
        |r| sql::run(r, op),
    )
}

pub(super) fn list_runs(c: &Connection, q: &RunQuery) -> StoreResult<Vec<Run>> {
    const OP: &str = "list_runs";
    let (after_at, after_id) = codec::page_after(q.after);
    let sql = format!(
        "{RUN_COLS} WHERE (?1 IS NULL OR r.deployment_id = ?1) \
         AND (?3 IS NULL OR (r.created_at, r.id) < (?3, ?4)) \
         ORDER BY r.created_at DESC, r.id DESC LIMIT ?2"
    );
    let deployment = q.deployment_id.map(|d| d.to_string());
    let p = params![deployment, limit(q.limit), after_at, after_id];
    all(c, &sql, p, rerr(OP, "runs"), |r| sql::run(r, OP))
}

// ------------------------------------------------------------------ deployments

pub(super) fn put_deployment(c: &Connection, d: &Deployment) -> StoreResult<()> {
    const OP: &str = "put_deployment";
    let what = format!("deployment {}", d.deployment_id);
    let id = d.deployment_id.to_string();
    let p = params_from_iter(sql::deployment_params(d, COMPONENT)?);
    exec(c, sql::PUT_DEPLOYMENT, p, rerr(OP, what.clone()))?;
    exec(
        c,
        "DELETE FROM deployment_resources WHERE deployment_id = ?1",
        [&id],
        rerr(OP, what.clone()),
    )?;
    let mut insert = c
        .prepare_cached(
            "INSERT INTO deployment_resources (deployment_id, resource) VALUES (?1, ?2)",
        )
        .map_err(rerr(OP, what.clone()))?;
    for resource in d.resource_map.keys() {
        insert
            .execute(params![id, resource])
            .map_err(rerr(OP, what.clone()))?;
    }
    Ok(())
}

pub(super) fn get_deployment(c: &Connection, id: DeploymentId) -> StoreResult<Option<Deployment>> {
    const OP: &str = "get_deployment";
    let err = rerr(OP, || format!("deployment {id}"));
    one(c, sql::DEPLOYMENT, [id.to_string()], err, |r| {
        sql::deployment(r, OP)
    })
}

pub(super) fn list_deployments(c: &Connection) -> StoreResult<Vec<Deployment>> {
    const OP: &str = "list_deployments";
    all(c, sql::DEPLOYMENTS, [], rerr(OP, "deployments"), |r| {
        sql::deployment(r, OP)
    })
}

pub(super) fn find_deployment_by_resource(
    c: &Connection,
    resource: &str,
) -> StoreResult<Option<Deployment>> {
    const OP: &str = "find_deployment_by_resource";
    let err = rerr(OP, || format!("resource {resource}"));
    one(c, sql::DEPLOYMENT_OF_RESOURCE, [resource], err, |r| {
        sql::deployment(r, OP)
    })
}

// ------------------------------------------------------------------ incidents

pub(super) fn get_incident(
    c: &Connection,
    id: &str,
    op: &'static str,
) -> StoreResult<Option<Incident>> {
    let sql = format!("{INCIDENT_COLS} WHERE id = ?1");
    one(c, &sql, [id], rerr(op, || format!("incident {id}")), |r| {
        sql::incident(r, op)
    })
}

/// An incident that must exist.
pub(super) fn load_incident(c: &Connection, id: &str, op: &'static str) -> StoreResult<Incident> {
    get_incident(c, id, op)?.ok_or_else(|| StoreError::NotFound {
        what: format!("incident {id}"),
    })
}

pub(super) fn list_incidents(c: &Connection, q: &IncidentQuery) -> StoreResult<Vec<Incident>> {
    const OP: &str = "list_incidents";
    let (sql, p) = sql::list_incidents(COMPONENT, q)?;
    let p = rusqlite::params_from_iter(p);
    all(c, &sql, p, rerr(OP, "incidents"), |r| sql::incident(r, OP))
}

/// Counted in SQLite: the statuses from their index, the actions from the
/// decisions table (one row per decided incident), no incident loaded.
pub(super) fn incident_counts(c: &Connection) -> StoreResult<IncidentCounts> {
    let groups = |sql: &str| -> StoreResult<Vec<(Option<String>, i64)>> {
        c.prepare_cached(sql)
            .and_then(|mut s| s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect())
            .map_err(rerr("incident_counts", "incidents"))
    };
    sql::incident_counts(
        COMPONENT,
        groups(sql::COUNT_BY_STATUS)?,
        groups(sql::COUNT_BY_ACTION)?,
    )
}

/// What [`record_alert`] did with the rows.
// One per alert, moved once into the answer: boxing would cost an allocation.
#[allow(clippy::large_enum_variant)]
pub(super) enum Recorded {
    /// Inserted the prepared incident.
    Opened,
    /// Changed or noted the stored incident (loaded after the change), or
    /// skipped the alert (`None`).
    Stored(Option<Incident>),
}

/// Deduplicates by fingerprint: updates the open incident or opens the
/// prepared one (the partial unique index makes two open incidents per
/// fingerprint impossible). Only binds: `prepared` was encoded by the caller.
pub(super) fn record_alert(
    c: &Connection,
    a: &Alert,
    prepared: &[sql::Param<'static>],
    op: &'static str,
) -> StoreResult<(IngestOutcome, Recorded)> {
    let fp = [&a.fingerprint];
    let err = || rerr(op, || format!("fingerprint {}", a.fingerprint));
    // A stored status that does not parse is an error, never silently overwritten.
    let open = one(c, sql::OPEN_OF_FINGERPRINT, fp, err(), |r| {
        let (cols, id) = sql::Cols::keyed(r, op, "incident")?;
        Ok((id, cols.name(1)?))
    })?;
    let (step, id) = match open {
        Some((id, status)) => (lifecycle::ingest_open(a.state, status), Some(id)),
        None => {
            // The latest closed incident: asked only when the fingerprint
            // has no open incident, so it is the latest of all.
            let closed = one(c, sql::LATEST_CLOSED_OF_FINGERPRINT, fp, err(), |r| {
                let (cols, id) = sql::Cols::keyed(r, op, "incident")?;
                Ok((id, (cols.name(1)?, cols.time(2)?)))
            })?;
            let (id, last) = closed.unzip();
            (lifecycle::ingest_closed(a, last), id)
        }
    };
    let recorded = match (step, id) {
        (IngestStep::Open, _) => {
            let p = params_from_iter(prepared);
            exec(
                c,
                sql::INSERT_INCIDENT,
                p,
                rerr(op, || "a new incident".to_string()),
            )?;
            Recorded::Opened
        }
        (IngestStep::Skip, _) | (_, None) => Recorded::Stored(None),
        (IngestStep::Note, Some(id)) => Recorded::Stored(Some(load_incident(c, &id, op)?)),
        (IngestStep::Repeat | IngestStep::Resolve, Some(id)) => {
            let change = (step == IngestStep::Repeat, step == IngestStep::Resolve);
            let tail = sql::update_alert_tail(&id, change);
            let p = params_from_iter(prepared[sql::ALERT_COLUMNS].iter().chain(&tail));
            exec(
                c,
                sql::UPDATE_ALERT,
                p,
                rerr(op, || format!("incident {id}")),
            )?;
            Recorded::Stored(Some(load_incident(c, &id, op)?))
        }
    };
    Ok((step.outcome(), recorded))
}

// ------------------------------------------------------------------ approvals, actions

pub(super) fn insert_approval(c: &Connection, a: &ApprovalRecord) -> StoreResult<()> {
    let p = params_from_iter(sql::approval_params(a, COMPONENT)?);
    let err = rerr("record_approval", || format!("incident {}", a.incident_id));
    exec(c, sql::INSERT_APPROVAL, p, err)?;
    Ok(())
}

pub(super) fn list_approvals(c: &Connection, id: IncidentId) -> StoreResult<Vec<ApprovalRecord>> {
    const OP: &str = "list_approvals";
    let err = rerr(OP, || format!("approvals of incident {id}"));
    all(c, sql::APPROVALS, [id.to_string()], err, |r| {
        sql::approval(r, OP, id)
    })
}

pub(super) fn insert_action(c: &Connection, o: &ActionOutcome) -> StoreResult<()> {
    let p = params_from_iter(sql::action_params(o, COMPONENT)?);
    let err = insert_err("record_action", || format!("action {}", o.id));
    exec(c, sql::INSERT_ACTION, p, err)?;
    Ok(())
}

pub(super) fn list_actions(c: &Connection, id: IncidentId) -> StoreResult<Vec<ActionOutcome>> {
    const OP: &str = "list_actions";
    let err = rerr(OP, || format!("actions of incident {id}"));
    all(c, sql::ACTIONS, [id.to_string()], err, |r| {
        sql::action(r, OP, id)
    })
}

// ------------------------------------------------------------------ audit

pub(super) fn insert_audit(c: &Connection, r: &AuditRecord) -> StoreResult<()> {
    let input = sql::audit_input(r, COMPONENT)?;
    insert_audit_as(c, r, &input, r.incident_id, &r.outcome)
}

/// Inserts `r` with its input already encoded ([`sql::audit_input`]) and its
/// incident and outcome given: an alert's ingest audits its template so,
/// without copying it.
pub(super) fn insert_audit_as(
    c: &Connection,
    r: &AuditRecord,
    input: &str,
    incident_id: Option<IncidentId>,
    outcome: &str,
) -> StoreResult<()> {
    let p = sql::audit_params(r, input, incident_id, outcome, COMPONENT)?;
    let err = insert_err("append_audit", || format!("audit record {}", r.id));
    exec(c, sql::INSERT_AUDIT, params_from_iter(p), err)?;
    Ok(())
}

pub(super) fn list_audit(c: &Connection, q: &AuditQuery) -> StoreResult<Vec<AuditRecord>> {
    const OP: &str = "list_audit";
    let p = params![
        q.incident_id.map(|i| i.to_string()),
        q.run_id.map(|i| i.to_string()),
        q.before.map(|i| i.to_string()),
        limit(q.limit)
    ];
    let mut records = all(c, &sql::audit_sql(q), p, rerr(OP, "audit"), |r| {
        sql::audit(r, OP)
    })?;
    records.reverse();
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SQLite's plan for `sql` (three parameters, bound to NULL), one step per line.
    fn plan(c: &Connection, sql: &str) -> String {
        let mut s = c
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .expect("plan");
        let nulls = vec![rusqlite::types::Null; s.parameter_count()];
        let steps: Vec<String> = s
            .query_map(rusqlite::params_from_iter(nulls), |r| r.get(3))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        steps.join("\n")
    }

    #[test]
    fn fingerprint_lookups_take_their_partial_index_and_need_no_sort() {
        let mut c = Connection::open_in_memory().expect("open");
        super::super::schema::migrate(&mut c).expect("migrate");
        for (sql, index) in [
            (sql::OPEN_OF_FINGERPRINT, "incidents_open_fingerprint"),
            (
                sql::LATEST_CLOSED_OF_FINGERPRINT,
                "incidents_closed_fingerprint",
            ),
        ] {
            let p = plan(&c, sql);
            assert!(
                p.contains(&format!("USING INDEX {index} (fingerprint=?)")),
                "{sql}: {p}"
            );
            assert!(!p.contains("TEMP B-TREE"), "{sql} sorts: {p}");
        }
        // No index holds every incident by fingerprint: a new one enters the
        // open index only, and the closed one when it closes.
        let indexes: Vec<String> = c
            .prepare("SELECT name FROM pragma_index_list('incidents') WHERE partial = 0")
            .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
            .expect("indexes");
        for name in &indexes {
            let columns: Vec<String> = c
                .prepare("SELECT name FROM pragma_index_info(?1)")
                .and_then(|mut s| s.query_map([name], |r| r.get(0))?.collect())
                .expect("columns");
            assert!(
                !columns.contains(&"fingerprint".into()),
                "{name}: {columns:?}"
            );
        }
    }

    #[test]
    fn the_scrape_counts_come_from_indexes_without_a_sort() {
        let mut c = Connection::open_in_memory().expect("open");
        super::super::schema::migrate(&mut c).expect("migrate");
        for (sql, index) in [
            (sql::COUNT_BY_STATUS, "incidents_by_status"),
            (sql::COUNT_BY_ACTION, "decisions_by_action"),
        ] {
            let p = plan(&c, sql);
            assert!(p.contains(&format!("INDEX {index}")), "{sql}: {p}");
            assert!(!p.contains("TEMP B-TREE"), "{sql} sorts: {p}");
        }
    }

    #[test]
    fn incident_pages_walk_one_index_in_order() {
        let mut c = Connection::open_in_memory().expect("open");
        super::super::schema::migrate(&mut c).expect("migrate");
        let after = Some(PageKey {
            created_at: chrono::Utc::now(),
            id: IncidentId::new(),
        });
        let cases = [
            (IncidentQuery::default(), "incidents_by_created"),
            (
                IncidentQuery {
                    statuses: vec![IncidentStatus::Blocked],
                    ..IncidentQuery::default()
                },
                "incidents_by_status (status=?)",
            ),
            (
                IncidentQuery {
                    statuses: vec![IncidentStatus::Pending],
                    severity: Some(Severity::Critical),
                    after,
                    ..IncidentQuery::default()
                },
                "incidents_by_status (status=? AND",
            ),
            (
                IncidentQuery {
                    resource: Some("vm-1".into()),
                    ..IncidentQuery::default()
                },
                "incidents_by_resource (resource=?)",
            ),
        ];
        for (q, index) in cases {
            let (sql, _) = sql::list_incidents(COMPONENT, &q).expect("sql");
            let p = plan(&c, &sql);
            assert!(p.contains(&format!("INDEX {index}")), "{q:?}: {p}");
            // Ties of `created_at` may be ordered by id as they come
            // ("FOR LAST TERM"); never the whole match set.
            assert!(!p.contains("TEMP B-TREE FOR ORDER BY"), "{q:?} sorts: {p}");
        }
    }

    #[test]
    fn audit_queries_take_their_index_and_need_no_sort() {
        let mut c = Connection::open_in_memory().expect("open");
        super::super::schema::migrate(&mut c).expect("migrate");
        let incident = AuditQuery {
            incident_id: Some(IncidentId::new()),
            ..AuditQuery::default()
        };
        let both = AuditQuery {
            run_id: Some(RunId::new()),
            ..incident.clone()
        };
        let run = AuditQuery {
            run_id: Some(RunId::new()),
            ..AuditQuery::default()
        };
        for (q, index) in [
            (&incident, "USING INDEX audit_by_incident"),
            (&both, "USING INDEX audit_by_incident"),
            (&run, "USING INDEX audit_by_run"),
            (&AuditQuery::default(), "SCAN audit"),
        ] {
            let p = plan(&c, &sql::audit_sql(q));
            assert!(p.contains(index), "{q:?}: {p}");
            assert!(!p.contains("TEMP B-TREE"), "{q:?} sorts: {p}");
        }
        // Partial: a record keeps no entry in the index of the kind it is not.
        for (index, column) in [
            ("audit_by_incident", "incident_id"),
            ("audit_by_run", "run_id"),
        ] {
            let sql: String = c
                .query_row(
                    "SELECT sql FROM sqlite_schema WHERE name = ?1",
                    [index],
                    |r| r.get(0),
                )
                .expect("index");
            assert!(
                sql.ends_with(&format!("WHERE {column} IS NOT NULL")),
                "{sql}"
            );
        }
    }
}
