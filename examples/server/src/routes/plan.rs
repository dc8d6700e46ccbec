//! Planning: a goal to a plan and its graph, a run's Terraform files.

use super::{body, load_run, parse, run_id};
use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use infraai_core::*;
use serde::Deserialize;
use serde_json::{json, Value};
use tracing::info;
use utoipa::ToSchema;

/// Longest accepted goal text.
pub const MAX_GOAL_CHARS: usize = 4000;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct GoalBody {
    /// The goal (`prompt` is accepted too, as the product plan's front end sends it).
    #[schema(min_length = 1, max_length = 4000)]
    #[serde(alias = "prompt")]
    goal: String,
}

/// The plan as a graph: resources and monitoring policies as nodes;
/// `depends_on` and policy → resource as edges.
pub fn graph(plan: &InfraPlan) -> Value {
    let mut nodes = Vec::new();
    let mut edges = Vec::new();
    for r in &plan.resources {
        nodes.push(json!({
            "id": format!("resource:{}", r.name),
            "type": "resource",
            "label": r.name.to_string(),
            "kind": r.kind,
            "resource_type": r.resource_type,
            "machine_type": r.machine_type,
            "count": r.count,
            "description": r.description,
        }));
        for d in &r.depends_on {
            edges.push(json!({"from": format!("resource:{}", r.name), "to": format!("resource:{d}"), "type": "depends_on"}));
        }
    }
    for m in &plan.monitoring {
        let id = format!("policy:{}:{}", m.resource_ref, m.metric_name);
        nodes.push(json!({
            "id": id,
            "type": "monitoring_policy",
            "label": m.metric_name,
            "metric": m.metric_path,
            "threshold": m.threshold,
            "comparison": m.comparison,
            "duration_secs": m.duration_secs,
            "duration": format!("{}s", m.duration_secs),
            "resource_node": format!("resource:{}", m.resource_ref),
            "severity": m.severity,
        }));
        edges.push(
            json!({"from": id, "to": format!("resource:{}", m.resource_ref), "type": "monitors"}),
        );
    }
    json!({"nodes": nodes, "edges": edges})
}

/// The plan as served: each monitoring policy also carries the product
/// plan's `duration` (`"60s"`, beside `duration_secs`) and `resource_node`,
/// the id of the graph node it monitors (`resource:<resource_ref>`).
pub(crate) fn plan_view(plan: &InfraPlan) -> Value {
    let mut view = json!(plan);
    let policies = view["monitoring"].as_array_mut().into_iter().flatten();
    for (json, policy) in policies.zip(&plan.monitoring) {
        json["duration"] = json!(format!("{}s", policy.duration_secs));
        json["resource_node"] = json!(format!("resource:{}", policy.resource_ref));
    }
    view
}

/// Plan a goal: returns the run id, the plan and its resource/monitoring graph.
#[utoipa::path(post, path = "/generate-graph", request_body = GoalBody, responses((status = 201, description = "Planned")))]
pub(crate) async fn generate_graph(
    State(s): State<AppState>,
    b: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let req: GoalBody = parse(&body(b)?)?;
    let goal = req.goal.trim();
    if goal.is_empty() {
        return Err(ApiError::unprocessable("goal is empty"));
    }
    if goal.chars().count() > MAX_GOAL_CHARS {
        return Err(ApiError::unprocessable(format!(
            "goal is longer than {MAX_GOAL_CHARS} characters"
        )));
    }
    let run = s.deploy.plan(goal).await?;
    let plan = run.plan.as_ref().ok_or_else(|| {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "planned run has no plan")
    })?;
    info!(run_id = %run.id, "run planned over the API");
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "run_id": run.id,
            "simulated": s.simulated,
            "summary": plan.summary,
            "plan": plan_view(plan),
            "graph": graph(plan),
        })),
    )
        .into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RunRef {
    #[schema(format = Uuid)]
    run_id: String,
}

/// The Terraform files of a planned run.
#[utoipa::path(post, path = "/generate_terraform", request_body = RunRef)]
pub(crate) async fn generate_terraform(
    State(s): State<AppState>,
    b: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let req: RunRef = parse(&body(b)?)?;
    let run = load_run(&s, run_id(&req.run_id)?).await?;
    let files = run
        .files
        .ok_or_else(|| ApiError::conflict(format!("run {} has no Terraform files", run.id)))?;
    Ok(Json(json!({"run_id": run.id, "files": files.files})))
}
