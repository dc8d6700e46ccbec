//! Rows ↔ domain types. Decoding never panics: every stored value that does
//! not parse (or has an unexpected SQL type) becomes [`StoreError::Corrupt`]
//! naming the row and column.

use super::{Db, COMPONENT};
use crate::codec::{self, status_name};
use crate::error::{StoreError, StoreResult};
use crate::sql::{self, Cols, INCIDENT_COLS};
use chrono::Utc;
use infraai_core::lifecycle::IngestStep;
use infraai_core::*;
use tokio_postgres::error::SqlState;

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

pub(super) async fn get_run(c: &dyn Db, id: RunId) -> StoreResult<Option<Run>> {
    const OP: &str = "get_run";
    let rows = c
        .rows(&format!("{RUN_COLS} WHERE r.id = $1"), &[&id.to_string()])
        .await
        .map_err(qerr(OP, format!("run {id}")))?;
    rows.first().map(|r| sql::run(r, OP)).transpose()
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
    rows.iter().map(|r| sql::run(r, OP)).collect()
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
    rows.first().map(|r| sql::deployment(r, OP)).transpose()
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
    rows.iter().map(|r| sql::deployment(r, OP)).collect()
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
    rows.first().map(|r| sql::deployment(r, OP)).transpose()
}

// ------------------------------------------------------------------ incidents

pub(super) async fn get_incident(
    c: &dyn Db,
    id: &str,
    op: &'static str,
) -> StoreResult<Option<Incident>> {
    let rows = c
        .rows(&format!("{INCIDENT_COLS} WHERE id = $1"), &[&id])
        .await
        .map_err(qerr(op, format!("incident {id}")))?;
    rows.first().map(|r| sql::incident(r, op)).transpose()
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
    rows.iter().map(|r| sql::incident(r, OP)).collect()
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
        sql::UPDATE_ALERT,
        &[
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
            &id,
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
        sql::INSERT_INCIDENT,
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
    let (step, id) = match open.first() {
        Some(r) => {
            let (cols, id) = Cols::keyed(r, op, "incident")?;
            (lifecycle::ingest_open(a.state, cols.name(1)?), Some(id))
        }
        None => {
            // The latest closed incident: asked only when the fingerprint
            // has no open incident, so it is the latest of all.
            let rows = c
                .rows(codec::LATEST_CLOSED_OF_FINGERPRINT, &[&a.fingerprint])
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
    let rows = c
        .rows(
            "SELECT approved, actor_json, effective, at FROM approvals \
             WHERE incident_id = $1 ORDER BY seq",
            &[&id.to_string()],
        )
        .await
        .map_err(qerr(OP, format!("approvals of incident {id}")))?;
    rows.iter().map(|r| sql::approval(r, OP, id)).collect()
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
    rows.iter().map(|r| sql::action(r, OP, id)).collect()
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
        Some(r) => Cols::new(r, OP, "actions".into()).get(0)?,
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
    rows.iter().rev().map(|r| sql::audit(r, OP)).collect()
}
