//! What the read tools and resources return: the same documents as the
//! HTTP API (its handlers are called where one exists).

use super::tools::ListIncidentsArgs;
use crate::app::AppState;
use crate::error::ApiError;
use crate::routes::{ops, plan as planning, runs};
use axum::extract::{Path, State};
use infraai_core::*;
use rmcp::model::Resource;
use serde_json::{json, Value};

/// How many incidents a page holds by default, and at most.
const PAGE: usize = 50;
const PAGE_MAX: usize = 500;
/// Audit records shown with an incident.
const AUDIT_SHOWN: usize = 100;

/// An HTTP handler's error as core's.
fn from_api(e: ApiError) -> Error {
    match e.status.as_u16() {
        404 => Error::not_found(e.detail),
        409 => Error::Conflict {
            what: "request".into(),
            detail: e.detail,
        },
        400..=499 => Error::invalid("request", e.detail),
        _ => Error::backend("mcp", "read", false, e.detail),
    }
}

pub(super) async fn incidents(s: &AppState, a: ListIncidentsArgs) -> Result<Value> {
    let limit = a.limit.unwrap_or(PAGE).clamp(1, PAGE_MAX);
    let after = a.after.as_deref().map(str::parse::<PageKey<IncidentId>>);
    let after = after
        .transpose()
        .map_err(|_| Error::invalid("after", "is not a cursor this server gave"))?;
    let mut incidents = s
        .store
        .list_incidents(&IncidentQuery {
            statuses: a.statuses,
            resource: a.resource,
            limit: Some(limit + 1),
            after,
            ..Default::default()
        })
        .await?;
    let more = incidents.len() > limit;
    incidents.truncate(limit);
    let next = incidents
        .last()
        .filter(|_| more)
        .map(|i| PageKey::of(i).to_string());
    Ok(json!({"incidents": incidents, "next": next}))
}

async fn load(s: &AppState, id: IncidentId) -> Result<Incident> {
    let incident = s.store.get_incident(id).await?;
    incident.ok_or_else(|| Error::not_found(format!("incident {id}")))
}

pub(super) async fn incident(s: &AppState, id: IncidentId) -> Result<Value> {
    let incident = load(s, id).await?;
    let query = AuditQuery {
        incident_id: Some(id),
        limit: Some(AUDIT_SHOWN),
        ..Default::default()
    };
    Ok(json!({
        "incident": incident,
        "approvals": s.store.list_approvals(id).await?,
        "actions": s.store.list_actions(id).await?,
        "audit": s.store.list_audit(&query).await?,
    }))
}

pub(super) async fn run(s: &AppState, id: &str) -> Result<Value> {
    let answer = runs::get_run(State(s.clone()), Path(id.to_string())).await;
    Ok(answer.map_err(from_api)?.0["run"].take())
}

pub(super) async fn series(s: &AppState, id: IncidentId) -> Result<Value> {
    let answer = ops::series(State(s.clone()), Path(id.to_string())).await;
    Ok(answer.map_err(from_api)?.0)
}

pub(super) async fn plan(s: &AppState, goal: &str) -> Result<Value> {
    let run = s.deploy.plan(goal.trim()).await?;
    let plan = run
        .plan
        .as_ref()
        .ok_or_else(|| Error::backend("mcp", "plan_goal", false, "the planned run has no plan"))?;
    Ok(json!({
        "run_id": run.id,
        "simulated": s.simulated,
        "summary": plan.summary,
        "plan": planning::plan_view(plan),
        "graph": planning::graph(plan),
    }))
}

pub(super) async fn preview(s: &AppState, id: IncidentId, action: Action) -> Result<Value> {
    let incident = load(s, id).await?;
    let cost = s.ops.cost_of_action(&incident, &action).await;
    let request = ActionRequest::for_incident(&incident, action);
    Ok(json!({
        "preview": s.actions.preview(&request).await?,
        "cost": cost,
        "cost_text": guardrails::CostChange::text(cost.as_ref()),
    }))
}

/// `infraai://deployments/<id>` for each deployment and
/// `infraai://incidents/<id>` for each open incident (the newest 100).
pub(super) async fn resources(s: &AppState) -> Result<Vec<Resource>> {
    let mut out: Vec<Resource> = s
        .store
        .list_deployments()
        .await?
        .into_iter()
        .map(|d| {
            let name = format!(
                "deployment {} ({}, {})",
                d.deployment_id,
                d.cloud,
                d.services.join(", ")
            );
            Resource::new(format!("infraai://deployments/{}", d.deployment_id), name)
                .with_mime_type("application/json")
        })
        .collect();
    let open = IncidentQuery {
        statuses: lifecycle::ALL
            .into_iter()
            .filter(|s| !s.is_closed())
            .collect(),
        limit: Some(100),
        ..Default::default()
    };
    for i in s.store.list_incidents(&open).await? {
        let name = format!("incident {} ({}, {})", i.id, i.status, i.alert.resource);
        out.push(
            Resource::new(format!("infraai://incidents/{}", i.id), name)
                .with_mime_type("application/json"),
        );
    }
    Ok(out)
}

/// The JSON text of a resource.
pub(super) async fn resource(s: &AppState, uri: &str) -> Result<String> {
    let unknown = || Error::not_found(format!("resource {uri}"));
    let (kind, id) = uri
        .strip_prefix("infraai://")
        .and_then(|r| r.split_once('/'))
        .ok_or_else(unknown)?;
    let value = match kind {
        "incidents" => incident(s, id.parse().map_err(|_| unknown())?).await?,
        "deployments" => {
            let id: DeploymentId = id.parse().map_err(|_| unknown())?;
            json!(s.store.get_deployment(id).await?.ok_or_else(unknown)?)
        }
        _ => return Err(unknown()),
    };
    Ok(serde_json::to_string_pretty(&value).unwrap_or_default())
}
