//! Priced, scheduled and earned autonomy: change windows, the earned
//! levels of (action, resource type) pairs and their pins, and what the
//! agent's actions cost.

use super::{body, bounded, parse, query};
use crate::app::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use infraai_core::guardrails::{
    AutonomyLevel, AutonomyRecord, ChangeWindow, DailySpend, DeploymentCost, GuardrailOverrides,
};
use infraai_core::store::read_setting;
use infraai_core::*;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};

/// This file's operator routes.
pub(crate) fn routes() -> utoipa_axum::router::OpenApiRouter<AppState> {
    use utoipa_axum::routes;
    utoipa_axum::router::OpenApiRouter::new()
        .routes(routes!(list_windows, create_window))
        .routes(routes!(delete_window))
        .routes(routes!(autonomy_levels))
        .routes(routes!(pin_level))
        .routes(routes!(costs))
        .routes(routes!(audit_trail))
        .routes(routes!(deployment_guardrails, set_deployment_guardrails))
}

/// A change window to create.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct WindowBody {
    /// A name for humans, e.g. `release 4.2`.
    #[schema(max_length = 200)]
    name: String,
    /// `freeze` (no automatic execution), `quiet` (non-critical notifications
    /// batched into a digest) or `maintenance` (alerts on `resources`
    /// recorded, decided when it ends).
    #[schema(example = "freeze")]
    kind: String,
    /// `{"type": "once", "start": "2026-12-07T18:00:00Z", "end": "2026-12-07T20:00:00Z"}` or
    /// `{"type": "recurring", "cron": "0 22 * * 1-5", "duration_minutes": 480, "time_zone": "Europe/Berlin"}`.
    #[schema(value_type = Object)]
    schedule: Value,
    /// The resources it applies to; empty for all (maintenance needs some).
    #[serde(default)]
    resources: Vec<String>,
}

/// A window with whether it is open now, and until when.
fn shown(w: &ChangeWindow) -> Value {
    let mut v = json!(w);
    v["open_until"] = json!(w.open_until(chrono::Utc::now()));
    v
}

/// The change windows, each with `open_until` (null while closed).
#[utoipa::path(get, path = "/ops/windows")]
pub(crate) async fn list_windows(State(s): State<AppState>) -> ApiResult<Json<Value>> {
    let windows = s.ops.windows().await?;
    let shown: Vec<Value> = windows.iter().map(shown).collect();
    Ok(Json(json!({ "windows": shown })))
}

/// Create a change window (audited as the operator).
///
/// 422 with the reason when the schedule does not parse (cron, time zone), a
/// one-off window ends before it starts, or a maintenance window names no
/// resource.
#[utoipa::path(post, path = "/ops/windows", request_body = WindowBody, responses((status = 201, description = "Created")))]
pub(crate) async fn create_window(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    b: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let w: WindowBody = parse(&body(b)?)?;
    if w.name.chars().count() > 200 {
        return Err(ApiError::unprocessable(
            "name is longer than 200 characters",
        ));
    }
    let window: ChangeWindow = serde_json::from_value(json!({
        "name": w.name, "kind": w.kind, "schedule": w.schedule, "resources": w.resources,
    }))
    .map_err(|e| ApiError::unprocessable(format!("invalid window: {e}")))?;
    let created = s.ops.create_window(window, &who.actor().label()).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "window": shown(&created) })),
    ))
}

/// Delete a change window (audited); what a quiet window held back is sent at once.
#[utoipa::path(delete, path = "/ops/windows/{id}", params(("id" = String, Path, format = Uuid)), responses((status = 204, description = "Deleted")))]
pub(crate) async fn delete_window(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    if id.parse::<uuid::Uuid>().is_err() {
        return Err(ApiError::bad_request(format!(
            "{id:?} is not a window id (a UUID)"
        )));
    }
    if s.ops.delete_window(&id, &who.actor().label()).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("window {id:?} not found")))
    }
}

/// Earned autonomy: its settings and every allowed (action, resource type)
/// pair with its level, counts and recent precision (a pair never seen is
/// `shadow` at 0/0).
#[utoipa::path(get, path = "/ops/autonomy/levels")]
pub(crate) async fn autonomy_levels(State(s): State<AppState>) -> ApiResult<Json<Value>> {
    let config = s.ops.guardrails().config();
    let mut records = s.ops.autonomy().await?;
    for (resource_type, kinds) in &config.allowed_actions {
        for kind in kinds {
            let seen = records
                .iter()
                .any(|r| r.action == Some(*kind) && &r.resource_type == resource_type);
            if !seen {
                records.push(AutonomyRecord {
                    action: Some(*kind),
                    resource_type: resource_type.clone(),
                    ..Default::default()
                });
            }
        }
    }
    records.sort_by(|a, b| (&a.resource_type, a.action).cmp(&(&b.resource_type, b.action)));
    let earned = &config.earned_autonomy;
    let pairs: Vec<Value> = (records.iter())
        .map(|r| {
            let (ok, n) = r.successes();
            let mut v = json!(r);
            v["precision"] = json!((n > 0).then(|| ok as f64 / n as f64));
            v["standing"] = json!(r.describe(earned));
            v
        })
        .collect();
    Ok(Json(json!({
        "enabled": earned.enabled,
        "min_decisions": earned.min_decisions,
        "precision": earned.precision,
        "pairs": pairs,
    })))
}

/// A pin: `never`, `shadow`, `auto`, or null to unpin.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PinBody {
    /// The level to hold, or null to let the pair earn its level again.
    #[schema(example = "never")]
    pin: Option<String>,
}

/// Pin an (action, resource type) pair to a level, or unpin it (audited).
///
/// 422 when the action is not allowed on the resource type at all.
#[utoipa::path(put, path = "/ops/autonomy/levels/{action}/{resource_type}", params(("action" = String, Path, example = "scale_up"), ("resource_type" = String, Path, example = "local_instance")), request_body = PinBody)]
pub(crate) async fn pin_level(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    Path((action, resource_type)): Path<(String, String)>,
    b: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let p: PinBody = parse(&body(b)?)?;
    let kind: ActionKind = serde_json::from_value(Value::String(action.clone()))
        .map_err(|_| ApiError::bad_request(format!("unknown action {action:?}")))?;
    let level = (p.pin.as_deref())
        .map(str::parse::<AutonomyLevel>)
        .transpose()
        .map_err(ApiError::unprocessable)?;
    let record = (s.ops)
        .pin_autonomy(kind, &resource_type, level, &who.actor().label())
        .await?;
    Ok(Json(json!({ "pair": record })))
}

/// What the agent's actions cost: the day's automatic increases against
/// their cap, and per deployment the sum of its executed actions' changes
/// (USD per month, list prices).
#[utoipa::path(get, path = "/ops/costs")]
pub(crate) async fn costs(State(s): State<AppState>) -> ApiResult<Json<Value>> {
    let config = s.ops.guardrails().config();
    let now = chrono::Utc::now();
    let spend: Option<DailySpend> = read_setting(s.store.as_ref(), DailySpend::KEY).await?;
    let spend = spend.unwrap_or_default();
    let mut deployments = serde_json::Map::new();
    for setting in s.store.list_settings(DeploymentCost::KEY_PREFIX).await? {
        let id = setting.key[DeploymentCost::KEY_PREFIX.len()..].to_string();
        let sum: DeploymentCost = serde_json::from_value(setting.value).unwrap_or_default();
        deployments.insert(id, json!(sum));
    }
    Ok(Json(json!({
        "automatic_last_24h_usd": spend.total(now),
        "max_auto_daily_increase_usd": config.max_auto_daily_increase_usd,
        "max_auto_monthly_increase_usd": config.max_auto_monthly_increase_usd,
        "deployments": deployments,
    })))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct AuditTrailQuery {
    /// Only records of this step (e.g. `autonomy`, `change_window`, `kill_switch`).
    step: Option<String>,
    #[param(minimum = 1, maximum = 1000, default = 100)]
    limit: Option<usize>,
    /// The `next` of the previous page: records older than it.
    before: Option<String>,
}

/// How many records one `GET /ops/audit?step=…` reads back at most.
const AUDIT_SCAN: usize = 20_000;

/// The audit trail, oldest first: the newest `limit` records (of one step
/// when `step` is given; then at most 20,000 records are read back per
/// request), and `next`, the cursor to read on from, when there is more.
#[utoipa::path(get, path = "/ops/audit", params(AuditTrailQuery))]
pub(crate) async fn audit_trail(
    State(s): State<AppState>,
    q: Result<Query<AuditTrailQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Value>> {
    let q = query(q)?;
    let limit = bounded("limit", q.limit, 100, 1000)?;
    let mut before = (q.before.as_deref().map(str::parse::<AuditId>))
        .transpose()
        .map_err(|_| ApiError::bad_request("before is not a cursor this server gave"))?;
    let step: Option<AuditStep> = (q.step.as_ref())
        .map(|v| serde_json::from_value(Value::String(v.clone())))
        .transpose()
        .map_err(|_| ApiError::bad_request(format!("unknown audit step {:?}", q.step)))?;
    let (mut found, mut scanned) = (Vec::new(), 0);
    let next = loop {
        let page = limit.max(1000 * usize::from(step.is_some()));
        let query = AuditQuery {
            limit: Some(page + 1),
            before,
            ..Default::default()
        };
        let mut records = s.store.list_audit(&query).await?;
        let more = records.len() > page;
        if more {
            records.remove(0);
        }
        scanned += records.len();
        before = records.first().map(|r| r.id);
        records.retain(|r| step.is_none_or(|s| r.step == s));
        records.append(&mut found);
        found = records;
        if found.len() >= limit || !more || scanned >= AUDIT_SCAN {
            let cut = found.len().saturating_sub(limit);
            // Cut records are older than what is returned: read on from them.
            let next = match cut {
                0 if more => before,
                0 => None,
                n => Some(found[n].id),
            };
            found.drain(..cut);
            break next;
        }
    };
    Ok(Json(json!({ "records": found, "next": next })))
}

/// A deployment's own guardrail settings; an absent or null field keeps
/// the global value.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct OverridesBody {
    /// The most one action on this deployment may add to the monthly bill
    /// and still run without a human (USD).
    max_auto_monthly_increase_usd: Option<f64>,
    /// Whether earned autonomy applies to this deployment (`false`: every
    /// unpinned pair trusted here).
    earned_autonomy: Option<bool>,
    /// Below this confidence a human approves (0–1).
    confidence_floor: Option<f64>,
}

async fn deployment_id(s: &AppState, id: &str) -> ApiResult<DeploymentId> {
    let id: DeploymentId = id
        .parse()
        .map_err(|_| ApiError::bad_request(format!("{id:?} is not a deployment id (a UUID)")))?;
    match s.store.get_deployment(id).await? {
        Some(_) => Ok(id),
        None => Err(ApiError::not_found(format!("deployment {id} not found"))),
    }
}

/// A deployment's guardrail overrides and the settings they make.
async fn overrides_view(s: &AppState, id: DeploymentId) -> ApiResult<Json<Value>> {
    let overrides = s.ops.deployment_guardrails(id).await?;
    let config = s.ops.guardrails().config().with_overrides(&overrides);
    Ok(Json(json!({
        "deployment_id": id,
        "overrides": overrides,
        "effective": {
            "max_auto_monthly_increase_usd": config.max_auto_monthly_increase_usd,
            "max_auto_daily_increase_usd": config.max_auto_daily_increase_usd,
            "earned_autonomy": config.earned_autonomy.enabled,
            "confidence_floor": config.confidence_floor,
        },
    })))
}

/// A deployment's guardrail overrides, and the settings in effect for it.
#[utoipa::path(get, path = "/ops/deployments/{id}/guardrails", params(("id" = String, Path, format = Uuid)))]
pub(crate) async fn deployment_guardrails(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = deployment_id(&s, &id).await?;
    overrides_view(&s, id).await
}

/// Set a deployment's guardrail overrides (replacing the previous ones; `{}`
/// restores the global settings); audited.
///
/// 422 for a negative cap or a floor outside 0–1.
#[utoipa::path(put, path = "/ops/deployments/{id}/guardrails", params(("id" = String, Path, format = Uuid)), request_body = OverridesBody)]
pub(crate) async fn set_deployment_guardrails(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    b: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let id = deployment_id(&s, &id).await?;
    let o: OverridesBody = parse(&body(b)?)?;
    let overrides = GuardrailOverrides {
        max_auto_monthly_increase_usd: o.max_auto_monthly_increase_usd,
        earned_autonomy: o.earned_autonomy,
        confidence_floor: o.confidence_floor,
    };
    (s.ops)
        .set_deployment_guardrails(id, overrides, &who.actor().label())
        .await?;
    overrides_view(&s, id).await
}
