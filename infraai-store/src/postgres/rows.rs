//! Rows ↔ domain types. Decoding never panics: every stored value that does
//! not parse (or has an unexpected SQL type) becomes [`StoreError::Corrupt`]
//! naming the row and column.

use super::{Db, COMPONENT};
use crate::codec::{self, status_name, Site};
use crate::error::{StoreError, StoreResult};
use chrono::{DateTime, Utc};
use infraai_core::lifecycle::IngestStep;
use infraai_core::*;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::FromSql;
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

/// A column, typed; a stored value of another type (or NULL where none may be)
/// is corruption.
fn col<'a, T: FromSql<'a>>(r: &'a Row, i: usize, op: &'static str, what: &str) -> StoreResult<T> {
    r.try_get(i).map_err(|e| StoreError::Corrupt {
        component: COMPONENT,
        op,
        what: format!(
            "{what} column {}",
            r.columns().get(i).map_or("?", |c| c.name())
        ),
        detail: e.to_string(),
    })
}

fn enc<T: serde::Serialize + ?Sized>(
    op: &'static str,
    what: &'static str,
    v: &T,
) -> StoreResult<String> {
    codec::json(COMPONENT, op, what, v)
}

fn limit(l: Option<usize>) -> Option<i64> {
    l.map(|l| i64::try_from(l).unwrap_or(i64::MAX))
}

// ------------------------------------------------------------------ runs

pub(super) async fn put_run(c: &dyn Db, run: &Run) -> StoreResult<()> {
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
    c.exec(
        "INSERT INTO runs (id, goal, phase, deployment_id, dry_run, error, created_at, updated_at, doc_json) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (id) DO UPDATE SET \
         goal = excluded.goal, phase = excluded.phase, deployment_id = excluded.deployment_id, \
         dry_run = excluded.dry_run, error = excluded.error, created_at = excluded.created_at, \
         updated_at = excluded.updated_at, doc_json = excluded.doc_json",
        &[
            &id,
            &run.goal,
            &run.phase.to_string(),
            &run.deployment_id.map(|d| d.to_string()),
            &run.dry_run,
            &run.error,
            &codec::time(run.created_at),
            &codec::time(run.updated_at),
            &doc,
        ],
    )
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

fn decode_run(r: &Row, op: &'static str) -> StoreResult<Run> {
    let id: String = col(r, 0, op, "run")?;
    let what = format!("run {id}");
    let doc: String = col(r, 1, op, &what)?;
    let phases: String = col(r, 2, op, &what)?;
    let site = Site {
        component: COMPONENT,
        op,
        what: &what,
    };
    let mut doc: serde_json::Value = site.json("doc_json", &doc)?;
    let phases: Vec<(String, String, Option<String>)> = site.json("run_phases", &phases)?;
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

pub(super) async fn get_run(c: &dyn Db, id: RunId) -> StoreResult<Option<Run>> {
    const OP: &str = "get_run";
    let rows = c
        .rows(&format!("{RUN_COLS} WHERE r.id = $1"), &[&id.to_string()])
        .await
        .map_err(qerr(OP, format!("run {id}")))?;
    rows.first().map(|r| decode_run(r, OP)).transpose()
}

pub(super) async fn list_runs(c: &dyn Db, q: &RunQuery) -> StoreResult<Vec<Run>> {
    const OP: &str = "list_runs";
    let rows = c
        .rows(
            &format!(
                "{RUN_COLS} WHERE ($1::TEXT IS NULL OR r.deployment_id = $1) \
                 ORDER BY r.created_at DESC, r.id DESC LIMIT $2"
            ),
            &[&q.deployment_id.map(|d| d.to_string()), &limit(q.limit)],
        )
        .await
        .map_err(qerr(OP, "runs"))?;
    rows.iter().map(|r| decode_run(r, OP)).collect()
}

// ------------------------------------------------------------------ deployments

pub(super) async fn put_deployment(c: &dyn Db, d: &Deployment) -> StoreResult<()> {
    const OP: &str = "put_deployment";
    let what = format!("deployment {}", d.deployment_id);
    let id = d.deployment_id.to_string();
    let doc = enc(OP, "deployment", d)?;
    c.exec(
        "INSERT INTO deployments (id, cloud, region, created_at, updated_at, doc_json) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO UPDATE SET cloud = excluded.cloud, \
         region = excluded.region, created_at = excluded.created_at, \
         updated_at = excluded.updated_at, doc_json = excluded.doc_json",
        &[
            &id,
            &d.cloud,
            &d.region,
            &codec::time(d.created_at),
            &codec::time(d.updated_at),
            &doc,
        ],
    )
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

fn decode_deployment(r: &Row, op: &'static str) -> StoreResult<Deployment> {
    let id: String = col(r, 0, op, "deployment")?;
    let what = format!("deployment {id}");
    let doc: String = col(r, 1, op, &what)?;
    Site {
        component: COMPONENT,
        op,
        what: &what,
    }
    .json("doc_json", &doc)
}

pub(super) async fn get_deployment(
    c: &dyn Db,
    id: DeploymentId,
) -> StoreResult<Option<Deployment>> {
    const OP: &str = "get_deployment";
    let rows = c
        .rows(
            "SELECT id, doc_json FROM deployments WHERE id = $1",
            &[&id.to_string()],
        )
        .await
        .map_err(qerr(OP, format!("deployment {id}")))?;
    rows.first().map(|r| decode_deployment(r, OP)).transpose()
}

pub(super) async fn list_deployments(c: &dyn Db) -> StoreResult<Vec<Deployment>> {
    const OP: &str = "list_deployments";
    let rows = c
        .rows(
            "SELECT id, doc_json FROM deployments ORDER BY created_at DESC, id DESC",
            &[],
        )
        .await
        .map_err(qerr(OP, "deployments"))?;
    rows.iter().map(|r| decode_deployment(r, OP)).collect()
}

pub(super) async fn find_deployment_by_resource(
    c: &dyn Db,
    resource: &str,
) -> StoreResult<Option<Deployment>> {
    const OP: &str = "find_deployment_by_resource";
    let rows = c
        .rows(
            "SELECT d.id, d.doc_json FROM deployments d \
             JOIN deployment_resources r ON r.deployment_id = d.id \
             WHERE r.resource = $1 ORDER BY d.created_at DESC, d.id DESC LIMIT 1",
            &[&resource],
        )
        .await
        .map_err(qerr(OP, format!("resource {resource}")))?;
    rows.first().map(|r| decode_deployment(r, OP)).transpose()
}

// ------------------------------------------------------------------ incidents

pub(super) const INCIDENT_COLS: &str =
    "SELECT id, fingerprint, status, source, policy_name, resource, \
     resource_type, cloud, metric, value, threshold, severity, alert_state, started_at, \
     labels_json, raw_json, occurrences, decision_json, guardrail_notes_json, deployment_id, \
     note, created_at, updated_at FROM incidents";

pub(super) fn decode_incident(r: &Row, op: &'static str) -> StoreResult<Incident> {
    let id: String = col(r, 0, op, "incident")?;
    let what = format!("incident {id}");
    let w = what.as_str();
    let site = Site {
        component: COMPONENT,
        op,
        what: w,
    };
    let text = |i: usize| col::<String>(r, i, op, w);
    let fingerprint = text(1)?;
    let alert = Alert {
        source: text(3)?,
        fingerprint: fingerprint.clone(),
        policy_name: text(4)?,
        resource: text(5)?,
        resource_type: text(6)?,
        cloud: text(7)?,
        metric: text(8)?,
        value: col(r, 9, op, w)?,
        threshold: col(r, 10, op, w)?,
        severity: site.name("severity", &text(11)?)?,
        state: site.name("alert_state", &text(12)?)?,
        started_at: site.time("started_at", &text(13)?)?,
        labels: site.json("labels_json", &text(14)?)?,
        raw: site.json("raw_json", &text(15)?)?,
    };
    let occurrences: i64 = col(r, 16, op, w)?;
    let decision: Option<String> = col(r, 17, op, w)?;
    let deployment_id: Option<String> = col(r, 19, op, w)?;
    Ok(Incident {
        id: site.id("id", &id)?,
        fingerprint,
        status: site.name("status", &text(2)?)?,
        alert,
        occurrences: u64::try_from(occurrences).map_err(|e| site.corrupt("occurrences", e))?,
        decision: decision
            .map(|d| site.json("decision_json", &d))
            .transpose()?,
        guardrail_notes: site.json("guardrail_notes_json", &text(18)?)?,
        deployment_id: deployment_id
            .map(|d| site.id("deployment_id", &d))
            .transpose()?,
        note: col(r, 20, op, w)?,
        created_at: site.time("created_at", &text(21)?)?,
        updated_at: site.time("updated_at", &text(22)?)?,
    })
}

pub(super) async fn get_incident(
    c: &dyn Db,
    id: &str,
    op: &'static str,
) -> StoreResult<Option<Incident>> {
    let rows = c
        .rows(&format!("{INCIDENT_COLS} WHERE id = $1"), &[&id])
        .await
        .map_err(qerr(op, format!("incident {id}")))?;
    rows.first().map(|r| decode_incident(r, op)).transpose()
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
    let statuses: Option<Vec<&str>> =
        (!q.statuses.is_empty()).then(|| q.statuses.iter().map(|s| status_name(*s)).collect());
    let severity = q
        .severity
        .map(|s| codec::name(COMPONENT, OP, &s))
        .transpose()?;
    // With a resource, its index narrows the rows first (as in SQLite).
    let filter = if q.resource.is_some() {
        "resource = $3 AND"
    } else {
        "$3::TEXT IS NULL AND"
    };
    let rows = c
        .rows(
            &format!(
                "{INCIDENT_COLS} WHERE {filter} ($1::TEXT[] IS NULL OR status = ANY($1)) \
                 AND ($2::TEXT IS NULL OR severity = $2) \
                 ORDER BY created_at DESC, id DESC LIMIT $4"
            ),
            &[&statuses, &severity, &q.resource, &limit(q.limit)],
        )
        .await
        .map_err(qerr(OP, "incidents"))?;
    rows.iter().map(|r| decode_incident(r, OP)).collect()
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
    codec::incident_counts(
        COMPONENT,
        groups(codec::COUNT_BY_STATUS).await?,
        groups(
            "SELECT decision_json::jsonb -> 'recommended_action' ->> 'type', COUNT(*) \
             FROM decisions GROUP BY 1",
        )
        .await?,
    )
}

async fn update_alert(
    c: &dyn Db,
    id: &str,
    a: &Alert,
    bump: bool,
    resolve: bool,
    op: &'static str,
) -> StoreResult<()> {
    c.exec(
        "UPDATE incidents SET source = $2, policy_name = $3, resource = $4, resource_type = $5, \
         cloud = $6, metric = $7, value = $8, threshold = $9, severity = $10, alert_state = $11, \
         started_at = $12, labels_json = $13, raw_json = $14, \
         occurrences = occurrences + $15, updated_at = $16, \
         status = CASE WHEN $17 THEN 'resolved' ELSE status END, \
         note = CASE WHEN $17 THEN $18 ELSE note END \
         WHERE id = $1",
        &[
            &id,
            &a.source,
            &a.policy_name,
            &a.resource,
            &a.resource_type,
            &a.cloud,
            &a.metric,
            &a.value,
            &a.threshold,
            &codec::name(COMPONENT, op, &a.severity)?,
            &codec::name(COMPONENT, op, &a.state)?,
            &codec::time(a.started_at),
            &enc(op, "alert labels", &a.labels)?,
            &enc(op, "raw alert", &a.raw)?,
            &i64::from(bump),
            &codec::time(Utc::now()),
            &resolve,
            &lifecycle::CLEARED_NOTE,
        ],
    )
    .await
    .map_err(qerr(op, format!("incident {id}")))?;
    Ok(())
}

async fn insert_incident(c: &dyn Db, i: &Incident, op: &'static str) -> StoreResult<()> {
    let a = &i.alert;
    let decision = i
        .decision
        .as_ref()
        .map(|d| enc(op, "decision", d))
        .transpose()?;
    c.exec(
        "INSERT INTO incidents (id, fingerprint, status, source, policy_name, resource, \
         resource_type, cloud, metric, value, threshold, severity, alert_state, started_at, \
         labels_json, raw_json, occurrences, decision_json, guardrail_notes_json, deployment_id, \
         note, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, \
         $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23)",
        &[
            &i.id.to_string(),
            &i.fingerprint,
            &status_name(i.status),
            &a.source,
            &a.policy_name,
            &a.resource,
            &a.resource_type,
            &a.cloud,
            &a.metric,
            &a.value,
            &a.threshold,
            &codec::name(COMPONENT, op, &a.severity)?,
            &codec::name(COMPONENT, op, &a.state)?,
            &codec::time(a.started_at),
            &enc(op, "alert labels", &a.labels)?,
            &enc(op, "raw alert", &a.raw)?,
            &i64::try_from(i.occurrences).unwrap_or(i64::MAX),
            &decision,
            &enc(op, "guardrail notes", &i.guardrail_notes)?,
            &i.deployment_id.map(|d| d.to_string()),
            &i.note,
            &codec::time(i.created_at),
            &codec::time(i.updated_at),
        ],
    )
    .await
    .map_err(qerr(op, format!("incident {}", i.id)))?;
    Ok(())
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
        &[&super::FINGERPRINT_LOCK_CLASS, &fingerprints],
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
            &format!("{} FOR UPDATE", codec::OPEN_OF_FINGERPRINT),
            &[&a.fingerprint],
        )
        .await
        .map_err(qerr(op, format!("fingerprint {}", a.fingerprint)))?;
    // A stored status that does not parse is an error, never silently overwritten.
    let open = match open.first() {
        Some(r) => {
            let id: String = col(r, 0, op, "incident")?;
            let what = format!("incident {id}");
            let status: String = col(r, 1, op, &what)?;
            let status: IncidentStatus = Site {
                component: COMPONENT,
                op,
                what: &what,
            }
            .name("status", &status)?;
            Some((id, status))
        }
        None => None,
    };
    let (step, id) = match open {
        Some((id, status)) => (lifecycle::ingest_open(a.state, status), Some(id)),
        None => match latest_closed(c, a, op).await? {
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
            insert_incident(c, &i, op).await?;
            Some(i)
        }
        (IngestStep::Skip, _) | (_, None) => None,
        (IngestStep::Note, Some(id)) => Some(load_incident(c, &id, op).await?),
        (IngestStep::Repeat | IngestStep::Resolve, Some(id)) => {
            let (bump, resolve) = (step == IngestStep::Repeat, step == IngestStep::Resolve);
            update_alert(c, &id, a, bump, resolve, op).await?;
            Some(load_incident(c, &id, op).await?)
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
async fn latest_closed(
    c: &dyn Db,
    a: &Alert,
    op: &'static str,
) -> StoreResult<Option<(String, IncidentStatus, DateTime<Utc>)>> {
    let rows = c
        .rows(codec::LATEST_CLOSED_OF_FINGERPRINT, &[&a.fingerprint])
        .await
        .map_err(qerr(op, format!("fingerprint {}", a.fingerprint)))?;
    let Some(r) = rows.first() else {
        return Ok(None);
    };
    let id: String = col(r, 0, op, "incident")?;
    let what = format!("incident {id}");
    let status: String = col(r, 1, op, &what)?;
    let started_at: String = col(r, 2, op, &what)?;
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

pub(super) async fn insert_approval(c: &dyn Db, a: &ApprovalRecord) -> StoreResult<()> {
    const OP: &str = "record_approval";
    let actor = enc(OP, "actor", &a.actor)?;
    c.exec(
        "INSERT INTO approvals (incident_id, approved, actor_channel, actor_id, actor_json, effective, at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[
            &a.incident_id.to_string(),
            &a.approved,
            &a.actor.channel,
            &a.actor.id,
            &actor,
            &a.effective,
            &codec::time(a.at),
        ],
    )
    .await
    .map_err(qerr(OP, format!("incident {}", a.incident_id)))?;
    Ok(())
}

pub(super) async fn list_approvals(c: &dyn Db, id: IncidentId) -> StoreResult<Vec<ApprovalRecord>> {
    const OP: &str = "list_approvals";
    let what = format!("approvals of incident {id}");
    let rows = c
        .rows(
            "SELECT approved, actor_json, effective, at FROM approvals \
             WHERE incident_id = $1 ORDER BY seq",
            &[&id.to_string()],
        )
        .await
        .map_err(qerr(OP, what.clone()))?;
    let site = Site {
        component: COMPONENT,
        op: OP,
        what: &what,
    };
    rows.iter()
        .map(|r| {
            Ok(ApprovalRecord {
                incident_id: id,
                approved: col(r, 0, OP, &what)?,
                actor: site.json("actor_json", &col::<String>(r, 1, OP, &what)?)?,
                effective: col(r, 2, OP, &what)?,
                at: site.time("at", &col::<String>(r, 3, OP, &what)?)?,
            })
        })
        .collect()
}

pub(super) async fn insert_action(c: &dyn Db, o: &ActionOutcome) -> StoreResult<()> {
    const OP: &str = "record_action";
    let action = enc(OP, "action", &o.action)?;
    let details = enc(OP, "action details", &o.details)?;
    c.exec(
        "INSERT INTO actions (id, incident_id, resource, action_json, success, summary, \
         details_json, started_at, finished_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        &[
            &o.id.to_string(),
            &o.incident_id.to_string(),
            &o.resource,
            &action,
            &o.success,
            &o.summary,
            &details,
            &codec::time(o.started_at),
            &codec::time(o.finished_at),
        ],
    )
    .await
    .map_err(insert_err(OP, format!("action {}", o.id)))?;
    Ok(())
}

pub(super) async fn list_actions(c: &dyn Db, id: IncidentId) -> StoreResult<Vec<ActionOutcome>> {
    const OP: &str = "list_actions";
    let rows = c
        .rows(
            "SELECT id, resource, action_json, success, summary, details_json, started_at, \
             finished_at FROM actions WHERE incident_id = $1 ORDER BY seq",
            &[&id.to_string()],
        )
        .await
        .map_err(qerr(OP, format!("actions of incident {id}")))?;
    rows.iter()
        .map(|r| {
            let aid: String = col(r, 0, OP, "action")?;
            let what = format!("action {aid}");
            let w = what.as_str();
            let site = Site {
                component: COMPONENT,
                op: OP,
                what: w,
            };
            Ok(ActionOutcome {
                id: site.id("id", &aid)?,
                incident_id: id,
                action: site.json("action_json", &col::<String>(r, 2, OP, w)?)?,
                resource: col(r, 1, OP, w)?,
                success: col(r, 3, OP, w)?,
                summary: col(r, 4, OP, w)?,
                details: site.json("details_json", &col::<String>(r, 5, OP, w)?)?,
                started_at: site.time("started_at", &col::<String>(r, 6, OP, w)?)?,
                finished_at: site.time("finished_at", &col::<String>(r, 7, OP, w)?)?,
            })
        })
        .collect()
}

pub(super) async fn count_actions_since(
    c: &dyn Db,
    resource: &str,
    since: chrono::DateTime<Utc>,
) -> StoreResult<u64> {
    const OP: &str = "count_actions_since";
    let rows = c
        .rows(
            "SELECT COUNT(*) FROM actions WHERE resource = $1 AND started_at >= $2",
            &[&resource, &codec::time(since)],
        )
        .await
        .map_err(qerr(OP, format!("resource {resource}")))?;
    let n: i64 = match rows.first() {
        Some(r) => col(r, 0, OP, "actions")?,
        None => 0,
    };
    Ok(u64::try_from(n).unwrap_or(0))
}

// ------------------------------------------------------------------ audit

pub(super) async fn insert_audit(c: &dyn Db, r: &AuditRecord) -> StoreResult<()> {
    const OP: &str = "append_audit";
    let step = codec::name(COMPONENT, OP, &r.step)?;
    let input = enc(OP, "audit input", &r.input)?;
    c.exec(
        "INSERT INTO audit (id, at, step, incident_id, run_id, actor, input_json, reasoning, \
         confidence, outcome, replica) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        &[
            &r.id.to_string(),
            &codec::time(r.at),
            &step,
            &r.incident_id.map(|i| i.to_string()),
            &r.run_id.map(|i| i.to_string()),
            &r.actor,
            &input,
            &r.reasoning,
            &r.confidence,
            &r.outcome,
            &r.replica,
        ],
    )
    .await
    .map_err(insert_err(OP, format!("audit record {}", r.id)))?;
    Ok(())
}

pub(super) async fn list_audit(c: &dyn Db, q: &AuditQuery) -> StoreResult<Vec<AuditRecord>> {
    const OP: &str = "list_audit";
    let rows = c
        .rows(
            &codec::audit_sql(q),
            &[
                &q.incident_id.map(|i| i.to_string()),
                &q.run_id.map(|i| i.to_string()),
                &limit(q.limit),
            ],
        )
        .await
        .map_err(qerr(OP, "audit"))?;
    rows.iter()
        .rev()
        .map(|r| {
            let id: String = col(r, 0, OP, "audit record")?;
            let what = format!("audit record {id}");
            let w = what.as_str();
            let site = Site {
                component: COMPONENT,
                op: OP,
                what: w,
            };
            let incident: Option<String> = col(r, 3, OP, w)?;
            let run: Option<String> = col(r, 4, OP, w)?;
            Ok(AuditRecord {
                id: site.id("id", &id)?,
                at: site.time("at", &col::<String>(r, 1, OP, w)?)?,
                step: site.name("step", &col::<String>(r, 2, OP, w)?)?,
                incident_id: incident.map(|i| site.id("incident_id", &i)).transpose()?,
                run_id: run.map(|i| site.id("run_id", &i)).transpose()?,
                actor: col(r, 5, OP, w)?,
                input: site.json("input_json", &col::<String>(r, 6, OP, w)?)?,
                reasoning: col(r, 7, OP, w)?,
                confidence: col(r, 8, OP, w)?,
                outcome: col(r, 9, OP, w)?,
                replica: col(r, 10, OP, w)?,
            })
        })
        .collect()
}

/// The columns of a job, in the order [`jobs`] reads them.
pub(super) const JOB_COLUMNS: &str = "key, owner, lease_until, claims";

/// `jobs` rows ([`JOB_COLUMNS`]).
pub(super) fn jobs(rows: &[Row], op: &'static str) -> StoreResult<Vec<Job>> {
    rows.iter()
        .map(|r| {
            let key: String = col(r, 0, op, "job")?;
            let what = format!("job {key}");
            let site = Site {
                component: COMPONENT,
                op,
                what: &what,
            };
            let until: Option<String> = col(r, 2, op, &what)?;
            let claims: i32 = col(r, 3, op, &what)?;
            Ok(Job {
                owner: col(r, 1, op, &what)?,
                lease_until: until.map(|t| site.time("lease_until", &t)).transpose()?,
                claims: u32::try_from(claims).map_err(|e| site.corrupt("claims", e))?,
                key,
            })
        })
        .collect()
}
