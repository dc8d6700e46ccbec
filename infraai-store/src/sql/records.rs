//! Each record of the SQL stores, once: the statements that read and write
//! it, the parameters it binds and its decoding from a row.

use super::{Cols, Param, SqlRow};
use crate::codec::{self, status_name, Site};
use crate::error::{StoreError, StoreResult};
use chrono::Utc;
use infraai_core::*;

/// The incident columns, in the order [`incident`] reads them.
macro_rules! incident_columns {
    () => {
        "id, fingerprint, status, source, policy_name, \
         resource, resource_type, cloud, metric, value, threshold, severity, alert_state, \
         started_at, labels_json, raw_json, occurrences, decision_json, guardrail_notes_json, \
         deployment_id, note, created_at, updated_at"
    };
}

/// The incident columns, in the order [`incident`] reads them.
pub(crate) const INCIDENT_COLS: &str = concat!("SELECT ", incident_columns!(), " FROM incidents");

/// The open incident of a fingerprint: at most one, by the partial unique
/// index `incidents_open_fingerprint`, whose condition this repeats (both
/// stores' schemas name the same closed statuses).
pub(crate) const OPEN_OF_FINGERPRINT: &str = "SELECT id, status FROM incidents \
     WHERE fingerprint = $1 AND status NOT IN ('resolved', 'expired')";

/// The latest closed incident of a fingerprint, from the partial index
/// `incidents_closed_fingerprint`, whose condition this repeats. Asked only
/// when the fingerprint has no open incident, so it is the latest of all.
pub(crate) const LATEST_CLOSED_OF_FINGERPRINT: &str = "SELECT id, status, started_at \
     FROM incidents WHERE fingerprint = $1 AND status IN ('resolved', 'expired') \
     ORDER BY created_at DESC LIMIT 1";

/// SQL that counts incidents by status (`status`, count rows); the same in
/// every SQL store.
pub(crate) const COUNT_BY_STATUS: &str = "SELECT status, COUNT(*) FROM incidents GROUP BY status";

/// Decisions by recommended action, from the `decisions_by_action` index on
/// the action extracted from the decision.
pub(crate) const COUNT_BY_ACTION: &str =
    "SELECT action_type, COUNT(*) FROM decisions GROUP BY action_type";

/// The audit listing for `q`'s filter, the same in every SQL store (`$n`
/// parameters: the incident, the run, the limit). Naming the filtered column
/// (`incident_id = $1`) lets the planner take that index; one query for all
/// filters (`$1 IS NULL OR incident_id = $1`) hides it from SQLite always
/// and from a PostgreSQL generic plan, and the listing then walks the whole
/// table newest first.
pub(crate) fn audit_sql(q: &AuditQuery) -> String {
    let filter = match (q.incident_id, q.run_id) {
        (Some(_), _) => "incident_id = $1 AND (CAST($2 AS TEXT) IS NULL OR run_id = $2)",
        (None, Some(_)) => "CAST($1 AS TEXT) IS NULL AND run_id = $2",
        (None, None) => "CAST($1 AS TEXT) IS NULL AND CAST($2 AS TEXT) IS NULL",
    };
    format!(
        "SELECT id, at, step, incident_id, run_id, actor, input_json, reasoning, confidence, \
         outcome, replica FROM audit WHERE {filter} \
         AND (CAST($3 AS TEXT) IS NULL OR seq < (SELECT seq FROM audit WHERE id = $3)) \
         ORDER BY seq DESC LIMIT $4"
    )
}

/// [`IncidentCounts`] from the rows of two `GROUP BY` queries: (status name,
/// count) and (the recommended action's `type`, count). A name that does not
/// parse is corruption.
pub(crate) fn incident_counts(
    component: &'static str,
    by_status: Vec<(Option<String>, i64)>,
    by_action: Vec<(Option<String>, i64)>,
) -> StoreResult<IncidentCounts> {
    let site = Site::new(component, "incident_counts", "incident counts");
    let count = |n: i64| u64::try_from(n).unwrap_or(0);
    let mut counts = IncidentCounts::default();
    for (status, n) in by_status {
        let status = site.name("status", status.as_deref().unwrap_or_default())?;
        counts.by_status.insert(status, count(n));
    }
    for (kind, n) in by_action {
        let kind = site.name(
            "recommended_action.type",
            kind.as_deref().unwrap_or_default(),
        )?;
        counts.by_action.insert(kind, count(n));
    }
    Ok(counts)
}

/// Upserts a run's row ([`run_params`]); its phases are rows of `run_phases`.
pub(crate) const PUT_RUN: &str = "INSERT INTO runs (id, goal, phase, deployment_id, dry_run, \
     error, created_at, updated_at, doc_json) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
     ON CONFLICT (id) DO UPDATE SET goal = excluded.goal, phase = excluded.phase, \
     deployment_id = excluded.deployment_id, dry_run = excluded.dry_run, error = excluded.error, \
     created_at = excluded.created_at, updated_at = excluded.updated_at, doc_json = excluded.doc_json";

/// [`PUT_RUN`]'s parameters: the run without its history, which lives in
/// `run_phases`.
pub(crate) fn run_params<'a>(run: &'a Run, component: &'static str) -> StoreResult<Vec<Param<'a>>> {
    let encode = |source| StoreError::Encode {
        component,
        op: "put_run",
        what: "run",
        source,
    };
    let mut doc = serde_json::to_value(run).map_err(encode)?;
    if let Some(obj) = doc.as_object_mut() {
        obj.remove("history");
    }
    Ok(vec![
        run.id.to_string().into(),
        (&run.goal).into(),
        run.phase.to_string().into(),
        run.deployment_id.map(|d| d.to_string()).into(),
        run.dry_run.into(),
        run.error.as_deref().into(),
        codec::time(run.created_at).into(),
        codec::time(run.updated_at).into(),
        serde_json::to_string(&doc).map_err(encode)?.into(),
    ])
}

/// Upserts a deployment's row ([`deployment_params`]); its resources are
/// rows of `deployment_resources`.
pub(crate) const PUT_DEPLOYMENT: &str = "INSERT INTO deployments (id, cloud, region, \
     created_at, updated_at, doc_json) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) \
     DO UPDATE SET cloud = excluded.cloud, region = excluded.region, \
     created_at = excluded.created_at, updated_at = excluded.updated_at, \
     doc_json = excluded.doc_json";

/// [`PUT_DEPLOYMENT`]'s parameters.
pub(crate) fn deployment_params<'a>(
    d: &'a Deployment,
    component: &'static str,
) -> StoreResult<Vec<Param<'a>>> {
    Ok(vec![
        d.deployment_id.to_string().into(),
        (&d.cloud).into(),
        (&d.region).into(),
        codec::time(d.created_at).into(),
        codec::time(d.updated_at).into(),
        codec::json(component, "put_deployment", "deployment", d)?.into(),
    ])
}

/// Inserts an incident ([`incident_params`]): the columns of
/// [`INCIDENT_COLS`], in its order.
pub(crate) const INSERT_INCIDENT: &str = "INSERT INTO incidents (id, fingerprint, status, source, \
     policy_name, resource, resource_type, cloud, metric, value, threshold, severity, alert_state, \
     started_at, labels_json, raw_json, occurrences, decision_json, guardrail_notes_json, \
     deployment_id, note, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, \
     $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23)";

/// [`INSERT_INCIDENT`]'s parameters.
pub(crate) fn incident_params<'a>(
    i: &'a Incident,
    component: &'static str,
    op: &'static str,
) -> StoreResult<Vec<Param<'a>>> {
    let mut p = vec![
        i.id.to_string().into(),
        (&i.fingerprint).into(),
        status_name(i.status).into(),
    ];
    p.extend(alert_params(&i.alert, component, op)?);
    p.extend([
        i64::try_from(i.occurrences).unwrap_or(i64::MAX).into(),
        i.decision
            .as_ref()
            .map(|d| codec::json(component, op, "decision", d))
            .transpose()?
            .into(),
        codec::json(component, op, "guardrail notes", &i.guardrail_notes)?.into(),
        i.deployment_id.map(|d| d.to_string()).into(),
        i.note.as_deref().into(),
        codec::time(i.created_at).into(),
        codec::time(i.updated_at).into(),
    ]);
    Ok(p)
}

/// Where the alert's columns (`source` … `raw_json`) sit in
/// [`incident_params`].
#[cfg(feature = "sqlite")]
pub(crate) const ALERT_COLUMNS: std::ops::Range<usize> = 3..16;

/// The incident an alert would open, and its row's parameters, encoded on
/// the caller's task before a write: the store's single writer then only
/// binds them (inserting the row when the alert opens an incident, or its
/// [`ALERT_COLUMNS`] into the open incident's row otherwise).
#[cfg(feature = "sqlite")]
pub(crate) struct PreparedIncident {
    /// The incident, kept by the caller.
    pub incident: Incident,
    /// Its [`INSERT_INCIDENT`] parameters.
    pub params: Vec<Param<'static>>,
}

#[cfg(feature = "sqlite")]
impl PreparedIncident {
    /// Builds and encodes the incident `alert` would open.
    pub(crate) fn of(alert: Alert, component: &'static str, op: &'static str) -> StoreResult<Self> {
        let incident = Incident::open(alert);
        let params = incident_params(&incident, component, op)?
            .into_iter()
            .map(Param::into_owned)
            .collect();
        Ok(Self { incident, params })
    }
}

/// The alert's columns of an incident row (`source` … `raw_json`).
fn alert_params<'a>(
    a: &'a Alert,
    component: &'static str,
    op: &'static str,
) -> StoreResult<Vec<Param<'a>>> {
    Ok(vec![
        (&a.source).into(),
        (&a.policy_name).into(),
        (&a.resource).into(),
        (&a.resource_type).into(),
        (&a.cloud).into(),
        (&a.metric).into(),
        a.value.into(),
        a.threshold.into(),
        codec::name(component, op, &a.severity)?.into(),
        codec::name(component, op, &a.state)?.into(),
        codec::time(a.started_at).into(),
        codec::json(component, op, "alert labels", &a.labels)?.into(),
        codec::json(component, op, "raw alert", &a.raw)?.into(),
    ])
}

/// Stores a repeated or resolved alert on its incident
/// ([`update_alert_params`]).
pub(crate) const UPDATE_ALERT: &str = "UPDATE incidents SET source = $1, policy_name = $2, \
     resource = $3, resource_type = $4, cloud = $5, metric = $6, value = $7, threshold = $8, \
     severity = $9, alert_state = $10, started_at = $11, labels_json = $12, raw_json = $13, \
     occurrences = occurrences + $14, updated_at = $15, \
     status = CASE WHEN $16 THEN 'resolved' ELSE status END, \
     note = CASE WHEN $16 THEN $17 ELSE note END WHERE id = $18";

/// [`UPDATE_ALERT`]'s parameters after the alert's columns (which the
/// caller takes from a [`PreparedIncident`]): one more occurrence with
/// `bump`; with `resolve`, the incident is resolved with the lifecycle's note.
pub(crate) fn update_alert_tail(id: &str, (bump, resolve): (bool, bool)) -> [Param<'_>; 5] {
    [
        i64::from(bump).into(),
        codec::time(Utc::now()).into(),
        resolve.into(),
        lifecycle::CLEARED_NOTE.into(),
        id.into(),
    ]
}

/// [`UPDATE_ALERT`]'s parameters: the alert's columns; one more occurrence
/// with `bump`; with `resolve`, the incident is resolved with the lifecycle's
/// note. (PostgreSQL's; SQLite binds the columns it encoded already.)
#[cfg(feature = "postgres")]
pub(crate) fn update_alert_params<'a>(
    id: &'a str,
    a: &'a Alert,
    change: (bool, bool),
    component: &'static str,
    op: &'static str,
) -> StoreResult<Vec<Param<'a>>> {
    let mut p = alert_params(a, component, op)?;
    p.extend(update_alert_tail(id, change));
    Ok(p)
}

/// Records a decision on an incident, and in the decisions table (its
/// current decision: a proposal replaces the row, the audit trail keeps
/// both): the decision (`$1`), the guardrail notes (`$2`), the status it
/// routes to (`$3`), when (`$4`), the incident (`$5`).
pub(crate) const DECIDE: [&str; 2] = [
    "UPDATE incidents SET decision_json = $1, guardrail_notes_json = $2, status = $3, \
     updated_at = $4 WHERE id = $5",
    "INSERT INTO decisions (decision_json, guardrail_notes_json, routed_to, decided_at, \
     incident_id) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (incident_id) DO UPDATE SET \
     decision_json = excluded.decision_json, guardrail_notes_json = \
     excluded.guardrail_notes_json, routed_to = excluded.routed_to, \
     decided_at = excluded.decided_at",
];

/// Moves an incident (`$4`) to a status (`$1`), noting `$2` if given, at `$3`.
#[cfg(feature = "sqlite")]
pub(crate) const SET_STATUS: &str = "UPDATE incidents SET status = $1, \
     note = COALESCE($2, note), updated_at = $3 WHERE id = $4";

/// [`SET_STATUS`] answering with the incident as moved ([`incident`]'s
/// columns): one round trip instead of two where the store has `RETURNING`.
#[cfg(feature = "postgres")]
pub(crate) const SET_STATUS_RETURNING: &str = concat!(
    "UPDATE incidents SET status = $1, note = COALESCE($2, note), updated_at = $3 \
     WHERE id = $4 RETURNING ",
    incident_columns!()
);

/// Inserts an approval ([`approval_params`]).
pub(crate) const INSERT_APPROVAL: &str = "INSERT INTO approvals (incident_id, approved, \
     actor_channel, actor_id, actor_json, effective, at) VALUES ($1, $2, $3, $4, $5, $6, $7)";

/// [`INSERT_APPROVAL`]'s parameters.
pub(crate) fn approval_params<'a>(
    a: &'a ApprovalRecord,
    component: &'static str,
) -> StoreResult<Vec<Param<'a>>> {
    Ok(vec![
        a.incident_id.to_string().into(),
        a.approved.into(),
        (&a.actor.channel).into(),
        (&a.actor.id).into(),
        codec::json(component, "record_approval", "actor", &a.actor)?.into(),
        a.effective.into(),
        codec::time(a.at).into(),
    ])
}

/// Inserts an action ([`action_params`]).
pub(crate) const INSERT_ACTION: &str = "INSERT INTO actions (id, incident_id, resource, \
     action_json, success, summary, details_json, started_at, finished_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";

/// [`INSERT_ACTION`]'s parameters.
pub(crate) fn action_params<'a>(
    o: &'a ActionOutcome,
    component: &'static str,
) -> StoreResult<Vec<Param<'a>>> {
    const OP: &str = "record_action";
    Ok(vec![
        o.id.to_string().into(),
        o.incident_id.to_string().into(),
        (&o.resource).into(),
        codec::json(component, OP, "action", &o.action)?.into(),
        o.success.into(),
        (&o.summary).into(),
        codec::json(component, OP, "action details", &o.details)?.into(),
        codec::time(o.started_at).into(),
        codec::time(o.finished_at).into(),
    ])
}

/// Inserts an audit record ([`audit_params`]).
pub(crate) const INSERT_AUDIT: &str = "INSERT INTO audit (id, at, step, incident_id, run_id, \
     actor, input_json, reasoning, confidence, outcome, replica) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";

/// [`INSERT_AUDIT`]'s parameters: `r` with its input already encoded
/// ([`audit_input`]) and its incident and outcome given (an alert's ingest
/// audits its template so, without copying it).
pub(crate) fn audit_params<'a>(
    r: &'a AuditRecord,
    input: &'a str,
    incident_id: Option<IncidentId>,
    outcome: &'a str,
    component: &'static str,
) -> StoreResult<Vec<Param<'a>>> {
    Ok(vec![
        r.id.to_string().into(),
        codec::time(r.at).into(),
        codec::name(component, "append_audit", &r.step)?.into(),
        incident_id.map(|i| i.to_string()).into(),
        r.run_id.map(|i| i.to_string()).into(),
        (&r.actor).into(),
        input.into(),
        r.reasoning.as_deref().into(),
        r.confidence.into(),
        outcome.into(),
        r.replica.as_deref().into(),
    ])
}

/// An audit record's input as stored (JSON text).
pub(crate) fn audit_input(r: &AuditRecord, component: &'static str) -> StoreResult<String> {
    codec::json(component, "append_audit", "audit input", &r.input)
}

/// An incident row ([`INCIDENT_COLS`]).
pub(crate) fn incident<R: SqlRow>(r: &R, op: &'static str) -> StoreResult<Incident> {
    let (c, id) = Cols::keyed(r, op, "incident")?;
    let fingerprint: String = c.get(1)?;
    let alert = Alert {
        source: c.get(3)?,
        fingerprint: fingerprint.clone(),
        policy_name: c.get(4)?,
        resource: c.get(5)?,
        resource_type: c.get(6)?,
        cloud: c.get(7)?,
        metric: c.get(8)?,
        value: c.get(9)?,
        threshold: c.get(10)?,
        severity: c.name(11)?,
        state: c.name(12)?,
        started_at: c.time(13)?,
        labels: c.json(14)?,
        raw: c.json(15)?,
    };
    Ok(Incident {
        id: c.site().id("id", &id)?,
        fingerprint,
        status: c.name(2)?,
        alert,
        occurrences: u64::try_from(c.get::<i64>(16)?).map_err(|e| c.corrupt(16, e))?,
        decision: c.opt_json(17)?,
        guardrail_notes: c.json(18)?,
        deployment_id: c.opt_id(19)?,
        note: c.get(20)?,
        created_at: c.time(21)?,
        updated_at: c.time(22)?,
    })
}

/// A deployment by id.
pub(crate) const DEPLOYMENT: &str = "SELECT id, doc_json FROM deployments WHERE id = $1";

/// Every deployment, newest first.
pub(crate) const DEPLOYMENTS: &str =
    "SELECT id, doc_json FROM deployments ORDER BY created_at DESC, id DESC";

/// The newest deployment that created a resource.
pub(crate) const DEPLOYMENT_OF_RESOURCE: &str = "SELECT d.id, d.doc_json FROM deployments d \
     JOIN deployment_resources r ON r.deployment_id = d.id \
     WHERE r.resource = $1 ORDER BY d.created_at DESC, d.id DESC LIMIT 1";

/// A deployment row (`id, doc_json`: [`DEPLOYMENT`], [`DEPLOYMENTS`],
/// [`DEPLOYMENT_OF_RESOURCE`]).
pub(crate) fn deployment<R: SqlRow>(r: &R, op: &'static str) -> StoreResult<Deployment> {
    Cols::keyed(r, op, "deployment")?.0.json(1)
}

/// A run row (`id, doc_json`, then its phase history as a JSON array of
/// `[phase, at, note]`, oldest first: `run_phases` keeps it out of the
/// document).
pub(crate) fn run<R: SqlRow>(r: &R, op: &'static str) -> StoreResult<Run> {
    let (c, _) = Cols::keyed(r, op, "run")?;
    let site = c.site();
    let mut doc: serde_json::Value = c.json(1)?;
    let phases: Vec<(String, String, Option<String>)> =
        site.json("run_phases", &c.get::<String>(2)?)?;
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

/// The approvals of an incident, oldest first.
pub(crate) const APPROVALS: &str = "SELECT approved, actor_json, effective, at FROM approvals \
     WHERE incident_id = $1 ORDER BY seq";

/// An approval row ([`APPROVALS`]) of `incident`.
pub(crate) fn approval<R: SqlRow>(
    r: &R,
    op: &'static str,
    incident_id: IncidentId,
) -> StoreResult<ApprovalRecord> {
    let c = Cols::new(r, op, format!("approvals of incident {incident_id}"));
    Ok(ApprovalRecord {
        incident_id,
        approved: c.get(0)?,
        actor: c.json(1)?,
        effective: c.get(2)?,
        at: c.time(3)?,
    })
}

/// The actions of an incident, oldest first.
pub(crate) const ACTIONS: &str = "SELECT id, resource, action_json, success, summary, \
     details_json, started_at, finished_at FROM actions WHERE incident_id = $1 ORDER BY seq";

/// How many actions touched a resource since a time.
pub(crate) const COUNT_ACTIONS_SINCE: &str =
    "SELECT COUNT(*) FROM actions WHERE resource = $1 AND started_at >= $2";

/// An action row ([`ACTIONS`]) of `incident`.
pub(crate) fn action<R: SqlRow>(
    r: &R,
    op: &'static str,
    incident_id: IncidentId,
) -> StoreResult<ActionOutcome> {
    let (c, id) = Cols::keyed(r, op, "action")?;
    Ok(ActionOutcome {
        id: c.site().id("id", &id)?,
        incident_id,
        resource: c.get(1)?,
        action: c.json(2)?,
        success: c.get(3)?,
        summary: c.get(4)?,
        details: c.json(5)?,
        started_at: c.time(6)?,
        finished_at: c.time(7)?,
    })
}

/// An audit row ([`audit_sql`]'s columns).
pub(crate) fn audit<R: SqlRow>(r: &R, op: &'static str) -> StoreResult<AuditRecord> {
    let (c, id) = Cols::keyed(r, op, "audit record")?;
    Ok(AuditRecord {
        id: c.site().id("id", &id)?,
        at: c.time(1)?,
        step: c.name(2)?,
        incident_id: c.opt_id(3)?,
        run_id: c.opt_id(4)?,
        actor: c.get(5)?,
        input: c.json(6)?,
        reasoning: c.get(7)?,
        confidence: c.get(8)?,
        outcome: c.get(9)?,
        replica: c.get(10)?,
    })
}
