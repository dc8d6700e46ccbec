//! Rows ↔ domain types. Decoding never panics: every stored value that does
//! not parse becomes [`StoreError::Corrupt`] naming the row and column.

use super::COMPONENT;
use crate::codec::{self, status_name, Site};
use crate::error::{StoreError, StoreResult};
use chrono::{DateTime, Utc};
use infraai_core::lifecycle::IngestStep;
use infraai_core::*;
use rusqlite::{params, Connection, OptionalExtension, Row};
use std::sync::Arc;

/// What a statement was about, named in its error. A closure is called only
/// when the statement failed: the alert path formats no ids it never shows.
trait What {
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
fn rerr(op: &'static str, what: impl What) -> impl FnOnce(rusqlite::Error) -> StoreError {
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

fn enc<T: serde::Serialize + ?Sized>(
    op: &'static str,
    what: &'static str,
    v: &T,
) -> StoreResult<String> {
    codec::json(COMPONENT, op, what, v)
}

// ------------------------------------------------------------------ runs

pub(super) fn put_run(c: &Connection, run: &Run) -> StoreResult<()> {
    const OP: &str = "put_run";
    let what = format!("run {}", run.id);
    let mut doc = serde_json::to_value(run).map_err(|source| StoreError::Encode {
        component: COMPONENT,
        op: OP,
        what: "run",
        source,
    })?;
    // The phase history lives in run_phases.
    if let Some(obj) = doc.as_object_mut() {
        obj.remove("history");
    }
    let doc = enc(OP, "run", &doc)?;
    let id = run.id.to_string();
    c.prepare_cached(
        "INSERT INTO runs (id, goal, phase, deployment_id, dry_run, error, created_at, updated_at, doc_json) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT (id) DO UPDATE SET \
         goal = excluded.goal, phase = excluded.phase, deployment_id = excluded.deployment_id, \
         dry_run = excluded.dry_run, error = excluded.error, created_at = excluded.created_at, \
         updated_at = excluded.updated_at, doc_json = excluded.doc_json",
    )
    .and_then(|mut s| {
        s.execute(params![
            id,
            run.goal,
            run.phase.to_string(),
            run.deployment_id.map(|d| d.to_string()),
            run.dry_run,
            run.error,
            codec::time(run.created_at),
            codec::time(run.updated_at),
            doc
        ])
    })
    .map_err(rerr(OP, what.clone()))?;
    c.prepare_cached("DELETE FROM run_phases WHERE run_id = ?1")
        .and_then(|mut s| s.execute([&id]))
        .map_err(rerr(OP, what.clone()))?;
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

const RUN_COLS: &str = "SELECT id, doc_json FROM runs";

fn decode_run(c: &Connection, id: String, doc: String, op: &'static str) -> StoreResult<Run> {
    let what = format!("run {id}");
    let site = Site {
        component: COMPONENT,
        op,
        what: &what,
    };
    let mut doc: serde_json::Value = site.json("doc_json", &doc)?;
    let phases: Vec<(String, String, Option<String>)> = c
        .prepare_cached("SELECT phase, at, note FROM run_phases WHERE run_id = ?1 ORDER BY seq")
        .and_then(|mut s| {
            s.query_map([&id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect()
        })
        .map_err(rerr(op, what.clone()))?;
    let history = phases
        .into_iter()
        .map(|(phase, at, note)| {
            Ok(PhaseChange {
                phase: phase
                    .parse()
                    .map_err(|e: infraai_core::Error| site.corrupt("run_phases.phase", e))?,
                at: site.time("run_phases.at", &at)?,
                note,
            })
        })
        .collect::<StoreResult<Vec<_>>>()?;
    let obj = doc
        .as_object_mut()
        .ok_or_else(|| site.corrupt("doc_json", "not a JSON object"))?;
    obj.insert(
        "history".into(),
        serde_json::to_value(history).map_err(|e| site.corrupt("run_phases", e))?,
    );
    serde_json::from_value(doc).map_err(|e| site.corrupt("doc_json", e))
}

pub(super) fn get_run(c: &Connection, id: RunId, op: &'static str) -> StoreResult<Option<Run>> {
    let row: Option<(String, String)> = c
        .prepare_cached(&format!("{RUN_COLS} WHERE id = ?1"))
        .and_then(|mut s| {
            s.query_row([id.to_string()], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
        })
        .map_err(rerr(op, || format!("run {id}")))?;
    row.map(|(id, doc)| decode_run(c, id, doc, op)).transpose()
}

pub(super) fn list_runs(c: &Connection, q: &RunQuery) -> StoreResult<Vec<Run>> {
    const OP: &str = "list_runs";
    let limit = q.limit.map_or(-1, |l| i64::try_from(l).unwrap_or(i64::MAX));
    let rows: Vec<(String, String)> = c
        .prepare_cached(&format!(
            "{RUN_COLS} WHERE (?1 IS NULL OR deployment_id = ?1) \
             ORDER BY created_at DESC, id DESC LIMIT ?2"
        ))
        .and_then(|mut s| {
            s.query_map(
                params![q.deployment_id.map(|d| d.to_string()), limit],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?
            .collect()
        })
        .map_err(rerr(OP, "runs"))?;
    rows.into_iter()
        .map(|(id, doc)| decode_run(c, id, doc, OP))
        .collect()
}

// ------------------------------------------------------------------ deployments

pub(super) fn put_deployment(c: &Connection, d: &Deployment) -> StoreResult<()> {
    const OP: &str = "put_deployment";
    let what = format!("deployment {}", d.deployment_id);
    let id = d.deployment_id.to_string();
    let doc = enc(OP, "deployment", d)?;
    c.prepare_cached(
        "INSERT INTO deployments (id, cloud, region, created_at, updated_at, doc_json) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (id) DO UPDATE SET cloud = excluded.cloud, \
         region = excluded.region, created_at = excluded.created_at, \
         updated_at = excluded.updated_at, doc_json = excluded.doc_json",
    )
    .and_then(|mut s| {
        s.execute(params![
            id,
            d.cloud,
            d.region,
            codec::time(d.created_at),
            codec::time(d.updated_at),
            doc
        ])
    })
    .map_err(rerr(OP, what.clone()))?;
    c.prepare_cached("DELETE FROM deployment_resources WHERE deployment_id = ?1")
        .and_then(|mut s| s.execute([&id]))
        .map_err(rerr(OP, what.clone()))?;
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

fn decode_deployment(id: &str, doc: &str, op: &'static str) -> StoreResult<Deployment> {
    let what = format!("deployment {id}");
    Site {
        component: COMPONENT,
        op,
        what: &what,
    }
    .json("doc_json", doc)
}

pub(super) fn get_deployment(c: &Connection, id: DeploymentId) -> StoreResult<Option<Deployment>> {
    const OP: &str = "get_deployment";
    let doc: Option<String> = c
        .prepare_cached("SELECT doc_json FROM deployments WHERE id = ?1")
        .and_then(|mut s| s.query_row([id.to_string()], |r| r.get(0)).optional())
        .map_err(rerr(OP, || format!("deployment {id}")))?;
    doc.map(|d| decode_deployment(&id.to_string(), &d, OP))
        .transpose()
}

pub(super) fn list_deployments(c: &Connection) -> StoreResult<Vec<Deployment>> {
    const OP: &str = "list_deployments";
    let rows: Vec<(String, String)> = c
        .prepare_cached("SELECT id, doc_json FROM deployments ORDER BY created_at DESC, id DESC")
        .and_then(|mut s| s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect())
        .map_err(rerr(OP, "deployments"))?;
    rows.iter()
        .map(|(id, doc)| decode_deployment(id, doc, OP))
        .collect()
}

pub(super) fn find_deployment_by_resource(
    c: &Connection,
    resource: &str,
) -> StoreResult<Option<Deployment>> {
    const OP: &str = "find_deployment_by_resource";
    let row: Option<(String, String)> = c
        .prepare_cached(
            "SELECT d.id, d.doc_json FROM deployments d \
             JOIN deployment_resources r ON r.deployment_id = d.id \
             WHERE r.resource = ?1 ORDER BY d.created_at DESC, d.id DESC LIMIT 1",
        )
        .and_then(|mut s| {
            s.query_row([resource], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
        })
        .map_err(rerr(OP, || format!("resource {resource}")))?;
    row.map(|(id, doc)| decode_deployment(&id, &doc, OP))
        .transpose()
}

// ------------------------------------------------------------------ incidents

const INCIDENT_COLS: &str = "SELECT id, fingerprint, status, source, policy_name, resource, \
     resource_type, cloud, metric, value, threshold, severity, alert_state, started_at, \
     labels_json, raw_json, occurrences, decision_json, guardrail_notes_json, deployment_id, \
     note, created_at, updated_at FROM incidents";

struct IncidentRow {
    id: String,
    fingerprint: String,
    status: String,
    source: String,
    policy_name: String,
    resource: String,
    resource_type: String,
    cloud: String,
    metric: String,
    value: Option<f64>,
    threshold: Option<f64>,
    severity: String,
    alert_state: String,
    started_at: String,
    labels_json: String,
    raw_json: String,
    occurrences: i64,
    decision_json: Option<String>,
    guardrail_notes_json: String,
    deployment_id: Option<String>,
    note: Option<String>,
    created_at: String,
    updated_at: String,
}

fn incident_row(r: &Row<'_>) -> rusqlite::Result<IncidentRow> {
    Ok(IncidentRow {
        id: r.get(0)?,
        fingerprint: r.get(1)?,
        status: r.get(2)?,
        source: r.get(3)?,
        policy_name: r.get(4)?,
        resource: r.get(5)?,
        resource_type: r.get(6)?,
        cloud: r.get(7)?,
        metric: r.get(8)?,
        value: r.get(9)?,
        threshold: r.get(10)?,
        severity: r.get(11)?,
        alert_state: r.get(12)?,
        started_at: r.get(13)?,
        labels_json: r.get(14)?,
        raw_json: r.get(15)?,
        occurrences: r.get(16)?,
        decision_json: r.get(17)?,
        guardrail_notes_json: r.get(18)?,
        deployment_id: r.get(19)?,
        note: r.get(20)?,
        created_at: r.get(21)?,
        updated_at: r.get(22)?,
    })
}

impl IncidentRow {
    fn decode(self, op: &'static str) -> StoreResult<Incident> {
        let what = format!("incident {}", self.id);
        let site = Site {
            component: COMPONENT,
            op,
            what: &what,
        };
        let alert = Alert {
            source: self.source,
            fingerprint: self.fingerprint.clone(),
            policy_name: self.policy_name,
            resource: self.resource,
            resource_type: self.resource_type,
            cloud: self.cloud,
            metric: self.metric,
            value: self.value,
            threshold: self.threshold,
            severity: site.name("severity", &self.severity)?,
            state: site.name("alert_state", &self.alert_state)?,
            started_at: site.time("started_at", &self.started_at)?,
            labels: site.json("labels_json", &self.labels_json)?,
            raw: site.json("raw_json", &self.raw_json)?,
        };
        Ok(Incident {
            id: site.id("id", &self.id)?,
            fingerprint: self.fingerprint,
            status: site.name("status", &self.status)?,
            alert,
            occurrences: u64::try_from(self.occurrences)
                .map_err(|e| site.corrupt("occurrences", e))?,
            decision: self
                .decision_json
                .map(|d| site.json("decision_json", &d))
                .transpose()?,
            guardrail_notes: site.json("guardrail_notes_json", &self.guardrail_notes_json)?,
            deployment_id: self
                .deployment_id
                .map(|d| site.id("deployment_id", &d))
                .transpose()?,
            note: self.note,
            created_at: site.time("created_at", &self.created_at)?,
            updated_at: site.time("updated_at", &self.updated_at)?,
        })
    }
}

pub(super) fn get_incident(
    c: &Connection,
    id: IncidentId,
    op: &'static str,
) -> StoreResult<Option<Incident>> {
    let row = c
        .prepare_cached(&format!("{INCIDENT_COLS} WHERE id = ?1"))
        .and_then(|mut s| s.query_row([id.to_string()], incident_row).optional())
        .map_err(rerr(op, || format!("incident {id}")))?;
    row.map(|r| r.decode(op)).transpose()
}

pub(super) fn list_incidents(c: &Connection, q: &IncidentQuery) -> StoreResult<Vec<Incident>> {
    const OP: &str = "list_incidents";
    let statuses = if q.statuses.is_empty() {
        None
    } else {
        let names: Vec<&str> = q.statuses.iter().map(|s| status_name(*s)).collect();
        Some(enc(OP, "statuses", &names)?)
    };
    let severity = q
        .severity
        .map(|s| codec::name(COMPONENT, OP, &s))
        .transpose()?;
    let limit = q.limit.map_or(-1, |l| i64::try_from(l).unwrap_or(i64::MAX));
    // With a resource, its index narrows the rows first; `?3 IS NULL OR …`
    // would hide the index from the planner, which would then walk every
    // incident newest first (the decision flow asks this for each new one).
    let filter = if q.resource.is_some() {
        "resource = ?3 AND"
    } else {
        "?3 IS NULL AND"
    };
    let rows: Vec<IncidentRow> = c
        .prepare_cached(&format!(
            "{INCIDENT_COLS} WHERE {filter} (?1 IS NULL OR status IN (SELECT value FROM json_each(?1))) \
             AND (?2 IS NULL OR severity = ?2) \
             ORDER BY created_at DESC, id DESC LIMIT ?4"
        ))
        .and_then(|mut s| {
            s.query_map(params![statuses, severity, q.resource, limit], incident_row)?
                .collect()
        })
        .map_err(rerr(OP, "incidents"))?;
    rows.into_iter().map(|r| r.decode(OP)).collect()
}

/// Counted in SQLite: the statuses from their index, the actions from the
/// decisions table (one row per decided incident), no incident loaded.
pub(super) fn incident_counts(c: &Connection) -> StoreResult<IncidentCounts> {
    let groups = |sql: &str| -> StoreResult<Vec<(Option<String>, i64)>> {
        c.prepare_cached(sql)
            .and_then(|mut s| s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect())
            .map_err(rerr("incident_counts", "incidents"))
    };
    codec::incident_counts(
        COMPONENT,
        groups(codec::COUNT_BY_STATUS)?,
        groups(
            "SELECT json_extract(decision_json, '$.recommended_action.type'), COUNT(*) \
             FROM decisions GROUP BY 1",
        )?,
    )
}

/// The alert columns of an incident row, encoded.
struct AlertCols {
    severity: String,
    state: String,
    started_at: String,
    labels: String,
    raw: String,
}

fn alert_cols(a: &Alert, op: &'static str) -> StoreResult<AlertCols> {
    Ok(AlertCols {
        severity: codec::name(COMPONENT, op, &a.severity)?,
        state: codec::name(COMPONENT, op, &a.state)?,
        started_at: codec::time(a.started_at),
        labels: enc(op, "alert labels", &a.labels)?,
        raw: enc(op, "raw alert", &a.raw)?,
    })
}

fn update_alert(
    c: &Connection,
    id: &str,
    a: &Alert,
    bump: bool,
    resolve: bool,
    op: &'static str,
) -> StoreResult<()> {
    let cols = alert_cols(a, op)?;
    c.prepare_cached(
        "UPDATE incidents SET source = ?2, policy_name = ?3, resource = ?4, resource_type = ?5, \
         cloud = ?6, metric = ?7, value = ?8, threshold = ?9, severity = ?10, alert_state = ?11, \
         started_at = ?12, labels_json = ?13, raw_json = ?14, \
         occurrences = occurrences + ?15, updated_at = ?16, \
         status = CASE WHEN ?17 THEN 'resolved' ELSE status END, \
         note = CASE WHEN ?17 THEN ?18 ELSE note END \
         WHERE id = ?1",
    )
    .and_then(|mut s| {
        s.execute(params![
            id,
            a.source,
            a.policy_name,
            a.resource,
            a.resource_type,
            a.cloud,
            a.metric,
            a.value,
            a.threshold,
            cols.severity,
            cols.state,
            cols.started_at,
            cols.labels,
            cols.raw,
            i64::from(bump),
            codec::time(Utc::now()),
            resolve,
            lifecycle::CLEARED_NOTE
        ])
    })
    .map_err(rerr(op, || format!("incident {id}")))?;
    Ok(())
}

fn insert_incident(c: &Connection, i: &Incident, op: &'static str) -> StoreResult<()> {
    let a = &i.alert;
    let cols = alert_cols(a, op)?;
    let decision = i
        .decision
        .as_ref()
        .map(|d| enc(op, "decision", d))
        .transpose()?;
    let notes = enc(op, "guardrail notes", &i.guardrail_notes)?;
    c.prepare_cached(
        "INSERT INTO incidents (id, fingerprint, status, source, policy_name, resource, \
         resource_type, cloud, metric, value, threshold, severity, alert_state, started_at, \
         labels_json, raw_json, occurrences, decision_json, guardrail_notes_json, deployment_id, \
         note, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, \
         ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23)",
    )
    .and_then(|mut s| {
        s.execute(params![
            i.id.to_string(),
            i.fingerprint,
            status_name(i.status),
            a.source,
            a.policy_name,
            a.resource,
            a.resource_type,
            a.cloud,
            a.metric,
            a.value,
            a.threshold,
            cols.severity,
            cols.state,
            cols.started_at,
            cols.labels,
            cols.raw,
            i64::try_from(i.occurrences).unwrap_or(i64::MAX),
            decision,
            notes,
            i.deployment_id.map(|d| d.to_string()),
            i.note,
            codec::time(i.created_at),
            codec::time(i.updated_at)
        ])
    })
    .map_err(rerr(op, || format!("incident {}", i.id)))?;
    Ok(())
}

/// Deduplicates by fingerprint: updates the open incident or opens one
/// (the partial unique index makes two open incidents per fingerprint impossible).
pub(super) fn record_alert(
    c: &Connection,
    a: &Alert,
    op: &'static str,
) -> StoreResult<AlertIngest> {
    let open: Option<(String, String)> = c
        .prepare_cached(codec::OPEN_OF_FINGERPRINT)
        .and_then(|mut s| {
            s.query_row([&a.fingerprint], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
        })
        .map_err(rerr(op, || format!("fingerprint {}", a.fingerprint)))?;
    let reload = |id: &str| -> StoreResult<Incident> {
        let row = c
            .prepare_cached(&format!("{INCIDENT_COLS} WHERE id = ?1"))
            .and_then(|mut s| s.query_row([id], incident_row))
            .map_err(rerr(op, || format!("incident {id}")))?;
        row.decode(op)
    };
    // A stored status that does not parse is an error, never silently overwritten.
    let open = match open {
        Some((id, status)) => {
            let what = format!("incident {id}");
            let site = Site {
                component: COMPONENT,
                op,
                what: &what,
            };
            let status: IncidentStatus = site.name("status", &status)?;
            Some((id, status))
        }
        None => None,
    };
    let (step, id) = match open {
        Some((id, status)) => (lifecycle::ingest_open(a.state, status), Some(id)),
        None => match latest_closed(c, a, op)? {
            Some((id, status, started)) => (
                lifecycle::ingest_closed(a, Some((status, started))),
                Some(id),
            ),
            None => (lifecycle::ingest_closed(a, None), None),
        },
    };
    let incident = match (step, id) {
        (IngestStep::Open, _) => {
            let i = Incident::open(a.clone());
            insert_incident(c, &i, op)?;
            Some(i)
        }
        (IngestStep::Skip, _) | (_, None) => None,
        (IngestStep::Note, Some(id)) => Some(reload(&id)?),
        (IngestStep::Repeat | IngestStep::Resolve, Some(id)) => {
            update_alert(
                c,
                &id,
                a,
                step == IngestStep::Repeat,
                step == IngestStep::Resolve,
                op,
            )?;
            Some(reload(&id)?)
        }
    };
    Ok(AlertIngest {
        outcome: step.outcome(),
        incident,
    })
}

/// The latest closed incident of the alert's fingerprint: its id, status
/// and alert start. Asked only when the fingerprint has no open incident,
/// so the latest closed one is the latest of all.
fn latest_closed(
    c: &Connection,
    a: &Alert,
    op: &'static str,
) -> StoreResult<Option<(String, IncidentStatus, DateTime<Utc>)>> {
    let last: Option<(String, String, String)> = c
        .prepare_cached(codec::LATEST_CLOSED_OF_FINGERPRINT)
        .and_then(|mut s| {
            s.query_row([&a.fingerprint], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .optional()
        })
        .map_err(rerr(op, || format!("fingerprint {}", a.fingerprint)))?;
    let Some((id, status, started_at)) = last else {
        return Ok(None);
    };
    let what = format!("incident {id}");
    let site = Site {
        component: COMPONENT,
        op,
        what: &what,
    };
    let status = site.name("status", &status)?;
    let started = site.time("started_at", &started_at)?;
    Ok(Some((id, status, started)))
}

// ------------------------------------------------------------------ approvals, actions

pub(super) fn insert_approval(c: &Connection, a: &ApprovalRecord) -> StoreResult<()> {
    const OP: &str = "record_approval";
    let actor = enc(OP, "actor", &a.actor)?;
    c.prepare_cached(
        "INSERT INTO approvals (incident_id, approved, actor_channel, actor_id, actor_json, effective, at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )
    .and_then(|mut s| {
        s.execute(params![
            a.incident_id.to_string(),
            a.approved,
            a.actor.channel,
            a.actor.id,
            actor,
            a.effective,
            codec::time(a.at)
        ])
    })
    .map_err(rerr(OP, || format!("incident {}", a.incident_id)))?;
    Ok(())
}

pub(super) fn list_approvals(c: &Connection, id: IncidentId) -> StoreResult<Vec<ApprovalRecord>> {
    const OP: &str = "list_approvals";
    let what = format!("approvals of incident {id}");
    let rows: Vec<(bool, String, bool, String)> = c
        .prepare_cached(
            "SELECT approved, actor_json, effective, at FROM approvals \
             WHERE incident_id = ?1 ORDER BY seq",
        )
        .and_then(|mut s| {
            s.query_map([id.to_string()], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })?
            .collect()
        })
        .map_err(rerr(OP, what.clone()))?;
    let site = Site {
        component: COMPONENT,
        op: OP,
        what: &what,
    };
    rows.into_iter()
        .map(|(approved, actor, effective, at)| {
            Ok(ApprovalRecord {
                incident_id: id,
                approved,
                actor: site.json("actor_json", &actor)?,
                effective,
                at: site.time("at", &at)?,
            })
        })
        .collect()
}

pub(super) fn insert_action(c: &Connection, o: &ActionOutcome) -> StoreResult<()> {
    const OP: &str = "record_action";
    let action = enc(OP, "action", &o.action)?;
    let details = enc(OP, "action details", &o.details)?;
    c.prepare_cached(
        "INSERT INTO actions (id, incident_id, resource, action_json, success, summary, \
         details_json, started_at, finished_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )
    .and_then(|mut s| {
        s.execute(params![
            o.id.to_string(),
            o.incident_id.to_string(),
            o.resource,
            action,
            o.success,
            o.summary,
            details,
            codec::time(o.started_at),
            codec::time(o.finished_at)
        ])
    })
    .map_err(insert_err(OP, || format!("action {}", o.id)))?;
    Ok(())
}

pub(super) fn list_actions(c: &Connection, id: IncidentId) -> StoreResult<Vec<ActionOutcome>> {
    const OP: &str = "list_actions";
    type ActionRow = (String, String, String, bool, String, String, String, String);
    let rows: Vec<ActionRow> = c
        .prepare_cached(
            "SELECT id, resource, action_json, success, summary, details_json, started_at, \
             finished_at FROM actions WHERE incident_id = ?1 ORDER BY seq",
        )
        .and_then(|mut s| {
            s.query_map([id.to_string()], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                ))
            })?
            .collect()
        })
        .map_err(rerr(OP, || format!("actions of incident {id}")))?;
    rows.into_iter()
        .map(
            |(aid, resource, action, success, summary, details, started, finished)| {
                let what = format!("action {aid}");
                let site = Site {
                    component: COMPONENT,
                    op: OP,
                    what: &what,
                };
                Ok(ActionOutcome {
                    id: site.id("id", &aid)?,
                    incident_id: id,
                    action: site.json("action_json", &action)?,
                    resource,
                    success,
                    summary,
                    details: site.json("details_json", &details)?,
                    started_at: site.time("started_at", &started)?,
                    finished_at: site.time("finished_at", &finished)?,
                })
            },
        )
        .collect()
}

// ------------------------------------------------------------------ audit

pub(super) fn insert_audit(c: &Connection, r: &AuditRecord) -> StoreResult<()> {
    insert_audit_as(c, r, &audit_input(r)?, r.incident_id, &r.outcome)
}

/// An audit record's input as stored (JSON text).
pub(super) fn audit_input(r: &AuditRecord) -> StoreResult<String> {
    enc("append_audit", "audit input", &r.input)
}

/// Inserts `r` with its input already encoded ([`audit_input`]) and its
/// incident and outcome given: an alert's ingest audits its template so,
/// without copying it.
pub(super) fn insert_audit_as(
    c: &Connection,
    r: &AuditRecord,
    input: &str,
    incident_id: Option<IncidentId>,
    outcome: &str,
) -> StoreResult<()> {
    const OP: &str = "append_audit";
    let step = codec::name(COMPONENT, OP, &r.step)?;
    c.prepare_cached(
        "INSERT INTO audit (id, at, step, incident_id, run_id, actor, input_json, reasoning, \
         confidence, outcome, replica) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )
    .and_then(|mut s| {
        s.execute(params![
            r.id.to_string(),
            codec::time(r.at),
            step,
            incident_id.map(|i| i.to_string()),
            r.run_id.map(|i| i.to_string()),
            r.actor,
            input,
            r.reasoning,
            r.confidence,
            outcome,
            r.replica
        ])
    })
    .map_err(insert_err(OP, || format!("audit record {}", r.id)))?;
    Ok(())
}

pub(super) fn list_audit(c: &Connection, q: &AuditQuery) -> StoreResult<Vec<AuditRecord>> {
    const OP: &str = "list_audit";
    type AuditRow = (
        String,
        String,
        String,
        Option<String>,
        Option<String>,
        String,
        String,
        Option<String>,
        Option<f64>,
        String,
        Option<String>,
    );
    let limit = q.limit.map_or(-1, |l| i64::try_from(l).unwrap_or(i64::MAX));
    let mut rows: Vec<AuditRow> = c
        .prepare_cached(&codec::audit_sql(q))
        .and_then(|mut s| {
            s.query_map(
                params![
                    q.incident_id.map(|i| i.to_string()),
                    q.run_id.map(|i| i.to_string()),
                    limit
                ],
                |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                        r.get(7)?,
                        r.get(8)?,
                        r.get(9)?,
                        r.get(10)?,
                    ))
                },
            )?
            .collect()
        })
        .map_err(rerr(OP, "audit"))?;
    rows.reverse();
    rows.into_iter()
        .map(
            |(
                id,
                at,
                step,
                incident,
                run,
                actor,
                input,
                reasoning,
                confidence,
                outcome,
                replica,
            )| {
                let what = format!("audit record {id}");
                let site = Site {
                    component: COMPONENT,
                    op: OP,
                    what: &what,
                };
                Ok(AuditRecord {
                    id: site.id("id", &id)?,
                    at: site.time("at", &at)?,
                    step: site.name("step", &step)?,
                    incident_id: incident.map(|i| site.id("incident_id", &i)).transpose()?,
                    run_id: run.map(|i| site.id("run_id", &i)).transpose()?,
                    actor,
                    input: site.json("input_json", &input)?,
                    reasoning,
                    confidence,
                    outcome,
                    replica,
                })
            },
        )
        .collect()
}

/// The columns of a job, in the order [`job`] reads them.
pub(super) const JOB_COLUMNS: &str = "key, owner, lease_until, claims";

/// A `jobs` row ([`JOB_COLUMNS`]).
pub(super) fn job(op: &'static str, r: &rusqlite::Row<'_>) -> rusqlite::Result<StoreResult<Job>> {
    let key: String = r.get(0)?;
    let owner: Option<String> = r.get(1)?;
    let until: Option<String> = r.get(2)?;
    let claims: i64 = r.get(3)?;
    let what = format!("job {key}");
    let site = Site {
        component: COMPONENT,
        op,
        what: &what,
    };
    Ok((|| {
        Ok(Job {
            lease_until: until.map(|t| site.time("lease_until", &t)).transpose()?,
            claims: u32::try_from(claims).map_err(|e| site.corrupt("claims", e))?,
            key,
            owner,
        })
    })())
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
            (codec::OPEN_OF_FINGERPRINT, "incidents_open_fingerprint"),
            (
                codec::LATEST_CLOSED_OF_FINGERPRINT,
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
            let p = plan(&c, &codec::audit_sql(q));
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
