//! The operator's incident routes: list, view, preview, metric series,
//! approve and reject, the kill-switch, and the exported alerting rules.

use super::{body, bounded, incident_id, load_incident, parse_opt, query};
use crate::app::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::{Extension, Json};
use infraai_core::*;
use infraai_prometheus::rules_file;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct RulesQuery {
    /// Only this deployment's group.
    #[param(format = Uuid)]
    deployment_id: Option<String>,
}

/// The deployments' monitoring policies as a Prometheus rules file.
///
/// JSON, which Prometheus reads as YAML, with PromQL for the cloud's metrics: one group per
/// deployment.
#[utoipa::path(get, path = "/ops/prometheus/rules", params(RulesQuery))]
pub(crate) async fn prometheus_rules(
    State(s): State<AppState>,
    q: Result<Query<RulesQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Value>> {
    let q = query(q)?;
    let deployments = match &q.deployment_id {
        Some(id) => {
            let id: DeploymentId = id.parse().map_err(|_| {
                ApiError::bad_request(format!("{id:?} is not a deployment id (a UUID)"))
            })?;
            vec![s
                .store
                .get_deployment(id)
                .await?
                .ok_or_else(|| ApiError::not_found(format!("deployment {id} not found")))?]
        }
        None => s.store.list_deployments().await?,
    };
    let mut groups = Vec::new();
    for d in &deployments {
        let file: Value = serde_json::from_str(&rules_file(d, &s.prom_queries)?).map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("rules file: {e}"),
            )
        })?;
        if let Some(g) = file["groups"].as_array() {
            groups.extend(g.iter().cloned());
        }
    }
    Ok(Json(json!({"groups": groups})))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct AlertsQuery {
    /// Statuses, comma separated; `open` stands for every status but `resolved` and `expired`.
    status: Option<String>,
    severity: Option<String>,
    resource: Option<String>,
    #[param(minimum = 1, maximum = 1000, default = 100)]
    limit: Option<usize>,
    /// Where to go on: the `next` of the previous page (opaque).
    cursor: Option<String>,
}

/// Incidents, newest first, a page at a time.
///
/// `next` (also a `Link: <…>; rel="next"` header) is the cursor of the following page, `null` on
/// the last one. Paging is stable under concurrent inserts: incidents recorded meanwhile are newer
/// than every page handed out, so each incident that existed when paging began is listed once.
#[utoipa::path(get, path = "/ops/alerts", params(AlertsQuery))]
pub(crate) async fn list_alerts(
    State(s): State<AppState>,
    q: Result<Query<AlertsQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    let q = query(q)?;
    let statuses = statuses(q.status.as_deref())?;
    let severity: Option<ApiResult<Severity>> = q.severity.as_ref().map(|v| {
        serde_json::from_value(Value::String(v.clone()))
            .map_err(|_| ApiError::bad_request(format!("unknown severity {v:?}")))
    });
    let severity = severity.transpose()?;
    let limit = bounded("limit", q.limit, 100, 1000)?;
    let after = q.cursor.as_deref().map(str::parse).transpose()?;
    let incidents = s
        .store
        .list_incidents(&IncidentQuery {
            statuses,
            severity,
            resource: q.resource.clone(),
            limit: Some(limit + 1),
            after,
        })
        .await?;
    let filters = [
        ("status", &q.status),
        ("severity", &q.severity),
        ("resource", &q.resource),
    ];
    let items = ("incidents", incidents);
    Ok(super::page(
        "/ops/alerts",
        &filters,
        limit,
        items,
        PageKey::of,
        s.simulated,
    ))
}

/// The statuses of a `status` filter: names, comma separated, `open` for
/// every status that is not closed.
fn statuses(filter: Option<&str>) -> ApiResult<Vec<IncidentStatus>> {
    let mut statuses = Vec::new();
    for st in filter
        .into_iter()
        .flat_map(|s| s.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        if st == "open" {
            statuses.extend(
                IncidentStatus::ALL
                    .iter()
                    .filter(|s| !lifecycle::CLOSED.contains(s)),
            );
            continue;
        }
        let status: IncidentStatus = serde_json::from_value(Value::String(st.into())).map_err(|_| {
            ApiError::bad_request(format!(
                "unknown status {st:?}; open, or one of new, pending, approved, rejected, expired, auto, blocked, executing, executed, resolved, unresolved, escalated, ignored"
            ))
        })?;
        statuses.push(status);
    }
    Ok(statuses)
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct AlertQuery {
    /// How many of the newest audit records to show.
    #[param(minimum = 1, maximum = 10_000, default = 200)]
    audit_limit: Option<usize>,
    /// Older audit records: the `audit_next` of the previous answer (opaque).
    audit_cursor: Option<String>,
}

/// How many audit records an incident's view shows by default (the newest).
const AUDIT_SHOWN: usize = 200;

/// The most audit records an incident's view can ask for.
const AUDIT_SHOWN_MAX: usize = 10_000;

/// An incident with its decision, reasoning, confidence, approvals, actions and audit trail.
///
/// The audit trail is the newest `audit_limit` records, oldest first; `audit_truncated` is true
/// when older ones were left out, and `audit_next` then is the cursor (`audit_cursor`) of the
/// page before. Records appended meanwhile are newer than every page already handed out.
#[utoipa::path(get, path = "/ops/alerts/{id}", params(("id" = String, Path, format = Uuid), AlertQuery))]
pub(crate) async fn get_alert(
    State(s): State<AppState>,
    Path(id): Path<String>,
    q: Result<Query<AlertQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Value>> {
    let q = query(q)?;
    let limit = bounded("audit_limit", q.audit_limit, AUDIT_SHOWN, AUDIT_SHOWN_MAX)?;
    let before = q.audit_cursor.as_deref().map(str::parse::<AuditId>);
    let before = before
        .transpose()
        .map_err(|_| ApiError::bad_request("audit_cursor is not a cursor this server gave"))?;
    let incident = load_incident(&s, incident_id(&id)?).await?;
    let approvals = s.store.list_approvals(incident.id).await?;
    let actions = s.store.list_actions(incident.id).await?;
    // One more than shown tells whether older records were left out.
    let mut audit = s
        .store
        .list_audit(&AuditQuery {
            incident_id: Some(incident.id),
            run_id: None,
            limit: Some(limit + 1),
            before,
        })
        .await?;
    let audit_truncated = audit.len() > limit;
    if audit_truncated {
        audit.remove(0);
    }
    let audit_next = audit.first().filter(|_| audit_truncated).map(|r| r.id);
    let d = incident.decision.as_ref();
    Ok(Json(json!({
        "simulated": s.simulated,
        "decision": d,
        "reasoning": d.map(|d| &d.reasoning),
        "confidence": d.map(|d| d.confidence),
        "action": d.map(|d| d.recommended_action.describe()),
        // The product plan's words for the same decision (docs/server.md).
        "plan_vocabulary": d.map(|d| json!({
            "severity": d.severity.plan_name(),
            "action": d.recommended_action.kind().plan_name(),
        })),
        "guardrail_notes": incident.guardrail_notes,
        "approvals": approvals,
        "actions": actions,
        "audit": audit,
        "audit_truncated": audit_truncated,
        "audit_next": audit_next,
        "incident": incident,
    })))
}

/// Dry-run preview of the incident's proposed action (`ActionHandler::preview`), with its monthly cost change.
#[utoipa::path(get, path = "/ops/alerts/{id}/preview", params(("id" = String, Path, format = Uuid)))]
pub(crate) async fn preview(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let incident = load_incident(&s, incident_id(&id)?).await?;
    let Some(decision) = &incident.decision else {
        return Err(ApiError::conflict(format!(
            "incident {} has no decision yet",
            incident.id
        )));
    };
    if matches!(
        decision.recommended_action,
        Action::Ignore {} | Action::Escalate {}
    ) {
        return Err(ApiError::conflict(format!(
            "incident {} proposes no action to preview ({})",
            incident.id,
            decision.recommended_action.describe()
        )));
    }
    let request = ActionRequest::for_incident(&incident, decision.recommended_action.clone());
    let p = s.actions.preview(&request).await?;
    let cost = s.ops.cost_of(&incident).await;
    let cost_text = guardrails::CostChange::text(cost.as_ref());
    Ok(Json(json!({
        "incident_id": incident.id,
        "action": decision.recommended_action.describe(),
        "preview": p,
        "cost": cost,
        "cost_text": cost_text,
    })))
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReasonBody {
    #[serde(default)]
    #[schema(max_length = 1000)]
    pub(crate) reason: Option<String>,
}

pub(crate) async fn command(
    s: &AppState,
    who: &Principal,
    command: HumanCommand,
    label: &str,
) -> ApiResult<Json<Value>> {
    let reply = HumanReply::new(command, who.actor());
    let outcome = s.ops.handle_command_detached(&reply).await?;
    s.metrics.approval(label, outcome.effective);
    if !outcome.effective {
        return Err(ApiError::conflict(outcome.message));
    }
    Ok(Json(json!({
        "effective": outcome.effective,
        "message": outcome.message,
        "incident": outcome.incident,
    })))
}

fn reason(r: Option<String>) -> ApiResult<Option<String>> {
    match r.map(|r| r.trim().to_string()).filter(|r| !r.is_empty()) {
        Some(r) if r.chars().count() > 1000 => Err(ApiError::unprocessable(
            "reason is longer than 1000 characters",
        )),
        r => Ok(r),
    }
}

/// Approve the pending action as the caller (`web:<subject>`); it runs in the background.
///
/// 409 when nothing was approved (not pending, or autonomy stopped).
#[utoipa::path(post, path = "/ops/alerts/{id}/approve", params(("id" = String, Path, format = Uuid)))]
pub(crate) async fn approve(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    b: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let _: ReasonBody = parse_opt(&body(b)?)?;
    let incident_id = load_incident(&s, incident_id(&id)?).await?.id;
    command(&s, &who, HumanCommand::Approve { incident_id }, "approve").await
}

/// Reject the pending action, with an optional reason.
#[utoipa::path(post, path = "/ops/alerts/{id}/reject", params(("id" = String, Path, format = Uuid)), request_body = Option<ReasonBody>)]
pub(crate) async fn reject(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    b: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let r: ReasonBody = parse_opt(&body(b)?)?;
    let incident_id = load_incident(&s, incident_id(&id)?).await?.id;
    let reason = reason(r.reason)?;
    command(
        &s,
        &who,
        HumanCommand::Reject {
            incident_id,
            reason,
        },
        "reject",
    )
    .await
}

/// The kill-switch state.
#[utoipa::path(get, path = "/ops/autonomy")]
pub(crate) async fn autonomy(State(s): State<AppState>) -> ApiResult<Json<Value>> {
    let k = s.store.kill_switch().await?;
    Ok(Json(json!({"kill_switch": k})))
}

/// STOP AUTONOMY: nothing executes until resumed.
///
/// Pending/approved incidents become blocked.
#[utoipa::path(post, path = "/ops/autonomy/stop", request_body = Option<ReasonBody>)]
pub(crate) async fn stop_autonomy(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    b: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let r: ReasonBody = parse_opt(&body(b)?)?;
    let reason = reason(r.reason)?;
    let Json(mut v) = command(
        &s,
        &who,
        HumanCommand::StopAutonomy { reason },
        "stop_autonomy",
    )
    .await?;
    v["kill_switch"] = json!(s.store.kill_switch().await?);
    Ok(Json(v))
}

/// Resume autonomy.
///
/// Blocked incidents return to pending and need a fresh approval.
#[utoipa::path(post, path = "/ops/autonomy/resume")]
pub(crate) async fn resume_autonomy(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    b: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let _: ReasonBody = parse_opt(&body(b)?)?;
    let Json(mut v) = command(&s, &who, HumanCommand::Resume, "resume").await?;
    v["kill_switch"] = json!(s.store.kill_switch().await?);
    Ok(Json(v))
}

/// Minutes of metric shown before an incident's alert started and after it
/// closed.
pub const SERIES_MARGIN_MINUTES: i64 = 10;

/// The metric of an incident over its window, for the dashboard chart.
///
/// From a little before the alert started to a little after the incident closed
/// (or now), from the `MetricSource`'s history — Prometheus, Cloud
/// Monitoring and CloudWatch keep one; for the local cloud it is what the
/// threshold watcher and the re-checks read, kept in memory for an hour. An
/// open incident's current value is read too, so the chart is live. A
/// failed read is reported in `sample_error`, never invented.
#[utoipa::path(get, path = "/ops/alerts/{id}/series", params(("id" = String, Path, format = Uuid)))]
pub(crate) async fn series(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let incident = load_incident(&s, incident_id(&id)?).await?;
    let alert = &incident.alert;
    let query = MetricQuery {
        resource: alert.resource.clone(),
        resource_type: alert.resource_type.clone(),
        metric: alert.metric.clone(),
        lookback_secs: 120,
    };
    let margin = chrono::Duration::minutes(SERIES_MARGIN_MINUTES);
    let now = chrono::Utc::now();
    let mut errors = Vec::new();
    if !incident.status.is_closed() {
        if let Err(e) = s.metric_source.current_value(&query).await {
            errors.push(e.to_string());
        }
    }
    let from = alert.started_at.min(incident.created_at) - margin;
    let to = if incident.status.is_closed() {
        (incident.updated_at + margin).min(now)
    } else {
        now
    };
    let history = match s.metric_source.history(&query, from, to).await {
        Ok(h) => h,
        Err(e) => {
            errors.push(e.to_string());
            Vec::new()
        }
    };
    let mut out: Vec<Value> = Vec::with_capacity(history.len() + 1);
    if let Some(v) = alert.value.filter(|v| v.is_finite()) {
        out.push(json!({"at": alert.started_at, "value": v, "source": "alert"}));
    }
    out.extend(
        history
            .iter()
            .filter(|p| p.value.is_finite())
            .map(|p| json!({"at": p.at, "value": p.value, "source": "sample"})),
    );
    Ok(Json(json!({
        "incident_id": incident.id,
        "metric": alert.metric,
        "resource": alert.resource,
        "threshold": alert.threshold,
        "from": from,
        "to": to,
        "points": out,
        "sample_error": (!errors.is_empty()).then(|| errors.join("; ")),
    })))
}
