//! Runs: execute, status, the whole record, destroy, and the event stream.

use super::{body, load_run, parse, parse_opt, run_id};
use crate::app::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use futures_util::stream::{self, Stream};
use infraai_core::*;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::{HashSet, VecDeque};
use std::convert::Infallible;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{broadcast, watch};
use tracing::{info, warn};
use utoipa::ToSchema;

/// The set of executing runs (a poisoned lock still holds a consistent set).
fn locked(set: &Mutex<HashSet<RunId>>) -> MutexGuard<'_, HashSet<RunId>> {
    set.lock().unwrap_or_else(|p| p.into_inner())
}

/// Waits until `ready` holds for the executing set (it may change the set,
/// under its lock). A run that just finished (its terminal phase is already
/// stored and streamed) leaves the set a moment later: that is waited for
/// rather than refused; anything else is a conflict: `run <id> is <busy>`.
async fn wait_for_executing(
    s: &AppState,
    id: RunId,
    mut ready: impl FnMut(&mut HashSet<RunId>) -> bool,
    busy: &str,
) -> ApiResult<()> {
    let mut tries = 0;
    while !ready(&mut locked(&s.executing)) {
        tries += 1;
        if tries > 40 || !load_run(s, id).await?.phase.is_terminal() {
            return Err(ApiError::conflict(format!("run {id} is {busy}")));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExecuteBody {
    #[schema(format = Uuid)]
    run_id: String,
    /// Stop after `terraform plan` (default `false`).
    #[serde(default)]
    dry_run: bool,
}

/// Start the deploy loop of a run in the background (202).
///
/// `dry_run: true` stops after `terraform plan`.
#[utoipa::path(post, path = "/execute", request_body = ExecuteBody, responses((status = 202, description = "Accepted; the run executes in the background")))]
pub(crate) async fn execute(
    State(s): State<AppState>,
    b: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let req: ExecuteBody = parse(&body(b)?)?;
    let id = run_id(&req.run_id)?;
    let run = load_run(&s, id).await?;
    let startable =
        run.phase == RunPhase::Starting || (run.phase == RunPhase::Completed && run.dry_run);
    if !startable {
        return Err(ApiError::conflict(format!(
            "run {id} is {} and cannot be executed again; plan a new run",
            run.phase
        )));
    }
    wait_for_executing(&s, id, |set| set.insert(id), "already executing").await?;
    let (deploy, executing, dry_run) = (s.deploy.clone(), s.executing.clone(), req.dry_run);
    tokio::spawn(async move {
        match deploy.execute(id, dry_run).await {
            Ok(run) => info!(run_id = %id, phase = %run.phase, "run finished"),
            Err(e) => warn!(run_id = %id, error = %e, "run could not execute"),
        }
        locked(&executing).remove(&id);
    });
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "run_id": id,
            "dry_run": dry_run,
            "status_url": format!("/runs/{id}/status"),
            "events_url": format!("/runs/{id}/events"),
        })),
    )
        .into_response())
}

/// Cancel a run paused by STOP AUTONOMY (`paused_by_kill_switch`): it ends `failed`, saying who
/// cancelled it. A paused run otherwise continues where it stopped once autonomy is resumed.
/// 409 when the run is not paused on this replica.
#[utoipa::path(post, path = "/runs/{id}/cancel", params(("id" = String, Path, format = Uuid)), request_body = Option<super::ops::ReasonBody>, responses((status = 202, description = "The run ends failed, cancelled")))]
pub(crate) async fn cancel_run(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    b: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let id = run_id(&id)?;
    let reason = parse_opt::<super::ops::ReasonBody>(&body(b)?)?.reason;
    let actor = who.actor().label();
    let by = reason.map_or(actor.clone(), |r| format!("{actor} ({r})"));
    s.deploy.cancel_paused(id, &by).await?;
    info!(run_id = %id, actor, "paused run cancelled over the API");
    let status_url = format!("/runs/{id}/status");
    let body = json!({ "run_id": id, "cancelled_by": actor, "status_url": status_url });
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

/// Status, phase, history, fix attempts, diagnostics, change set and verification of a run.
///
/// In the product plan's words: `status` is `running`, `completed` (phase `verified` for a deploy
/// whose service answers, `completed` for a dry run), `deploy_success_verify_failed` (applied and
/// stored, but the service does not answer) or `failed`; `verification` carries `reachable`, `ip`
/// and `status_code` beside every check.
///
/// With the classified plan/apply failures (`apply_diagnoses`: class, reasoning, advice, what was
/// done), the resources in its state after the last apply (`resources`) and the destroy record
/// (`cleanup`).
#[utoipa::path(get, path = "/runs/{id}/status", params(("id" = String, Path, format = Uuid)))]
pub(crate) async fn run_status(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let run = load_run(&s, run_id(&id)?).await?;
    Ok(Json(json!({
        "run_id": run.id,
        "goal": run.goal,
        "status": RunStatus::from(run.phase),
        "simulated": s.simulated,
        "phase": run.phase,
        "dry_run": run.dry_run,
        "history": run.history,
        "fix_attempts": run.fix_attempts,
        "diagnostics": run.diagnostics,
        "change_set": run.change_set,
        "verification": run.verification,
        "outputs": run.outputs,
        "deployment_id": run.deployment_id,
        "error": run.error,
        "apply_diagnoses": run.apply_diagnoses,
        "resources": run.resources,
        "cleanup": run.cleanup,
        "created_at": run.created_at,
        "updated_at": run.updated_at,
    })))
}

/// Body of `POST /runs/{id}/destroy`.
#[derive(Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct DestroyBody {
    #[schema(default = true)]
    dry_run: bool,
    /// The `change_set` of the preview being approved (required when `dry_run` is false).
    #[schema(value_type = Option<Object>)]
    change_set: Option<ChangeSet>,
}

impl Default for DestroyBody {
    fn default() -> Self {
        Self {
            dry_run: true,
            change_set: None,
        }
    }
}

/// "Destroy what this run created", for a failed run that stored no deployment.
///
/// `dry_run: true` (the default, also for an empty body) previews: the resources in the run's
/// Terraform state and the `terraform plan -destroy` change set; nothing changes. `dry_run: false`
/// with that preview's `change_set` destroys exactly it and returns the cleanup record (what was
/// destroyed, what is left). 409 when the run did not fail, stored a deployment, is executing, has
/// nothing to destroy, or the destroy plan changed since the preview; 422 without a `change_set`.
#[utoipa::path(post, path = "/runs/{id}/destroy", params(("id" = String, Path, format = Uuid)), request_body = Option<DestroyBody>)]
pub(crate) async fn destroy_run(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    b: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let id = run_id(&id)?;
    let req: DestroyBody = parse_opt(&body(b)?)?;
    wait_for_executing(&s, id, |set| !set.contains(&id), "executing").await?;
    load_run(&s, id).await?;
    if req.dry_run {
        let p = s.deploy.preview_destroy(id).await?;
        return Ok(Json(json!({
            "run_id": id,
            "dry_run": true,
            "summary": p.change_set.summary(),
            "resources": p.resources,
            "change_set": p.change_set,
        })));
    }
    let Some(approved) = req.change_set else {
        return Err(ApiError::unprocessable(
            "executing a destroy needs the previewed change_set (POST with dry_run: true first)",
        ));
    };
    let actor = who.actor().label();
    let run = s.deploy.destroy(id, Some(&approved), &actor).await?;
    info!(run_id = %id, actor, "run resources destroyed over the API");
    Ok(Json(json!({
        "run_id": id,
        "dry_run": false,
        "cleanup": run.cleanup,
        "resources": run.resources,
    })))
}

struct EventStream {
    run_id: RunId,
    pending: VecDeque<RunEvent>,
    rx: broadcast::Receiver<RunEvent>,
    shutdown: watch::Receiver<bool>,
    done: bool,
    app: AppState,
}

fn sse_event(ev: &RunEvent) -> Event {
    let name = match ev {
        RunEvent::Phase { .. } => "phase",
        RunEvent::Log { .. } => "log",
    };
    Event::default()
        .event(name)
        .data(serde_json::to_string(ev).unwrap_or_else(|_| "{}".into()))
}

/// Server-Sent Events: the run's backlog, then live `phase` and `log` events.
///
/// Closes after a terminal phase.
#[utoipa::path(get, path = "/runs/{id}/events", params(("id" = String, Path, format = Uuid)), responses((status = 200, description = "text/event-stream", content_type = "text/event-stream")))]
pub(crate) async fn run_events(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let id = run_id(&id)?;
    let run = load_run(&s, id).await?;
    let (backlog, rx) = s.deploy.events().subscribe(id);
    let executing = locked(&s.executing).contains(&id);
    // A dry-run run can be executed again: its backlog then holds more than
    // one execution. Stream only the current one (or the last finished one).
    let ends: Vec<usize> = backlog
        .iter()
        .enumerate()
        .filter(|(_, e)| matches!(e, RunEvent::Phase { phase, .. } if phase.is_terminal()))
        .map(|(i, _)| i)
        .collect();
    let from = if executing || !run.phase.is_terminal() {
        ends.last().map_or(0, |i| i + 1)
    } else if ends.len() >= 2 {
        ends[ends.len() - 2] + 1
    } else {
        0
    };
    let mut pending: VecDeque<RunEvent> = backlog.into_iter().skip(from).collect();
    // A run that ended before this process saw it (restart, evicted backlog):
    // say how it ended and close.
    let backlog_ends = pending
        .iter()
        .any(|e| matches!(e, RunEvent::Phase { phase, .. } if phase.is_terminal()));
    if run.phase.is_terminal() && !backlog_ends && !executing {
        pending.push_back(RunEvent::Phase {
            run_id: id,
            phase: run.phase,
            note: run.error.clone(),
            at: run.updated_at,
        });
    }
    let state = EventStream {
        run_id: id,
        pending,
        rx,
        shutdown: s.shutdown.clone(),
        done: false,
        app: s.clone(),
    };
    let stream = stream::unfold(state, |mut st| async move {
        if st.done || *st.shutdown.borrow() {
            return None;
        }
        let ev = match st.pending.pop_front() {
            Some(ev) => ev,
            None => loop {
                tokio::select! {
                    r = st.rx.recv() => match r {
                        Ok(ev) if ev.run_id() == st.run_id => break ev,
                        Ok(_) => continue,
                        Err(broadcast::error::RecvError::Lagged(n)) => {
                            let e = Event::default().event("lagged").data(format!("{{\"missed\":{n}}}"));
                            return Some((Ok(e), st));
                        }
                        Err(broadcast::error::RecvError::Closed) => return None,
                    },
                    _ = st.shutdown.changed() => return None,
                    // A safety net for a run that ended between reading the
                    // backlog and subscribing (or on another replica): once
                    // no execution is under way here and the store says the
                    // run ended, say how and close.
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {
                        if let Some(ev) = ended(&st.app, st.run_id).await {
                            break ev;
                        }
                    }
                }
            },
        };
        if matches!(&ev, RunEvent::Phase { phase, .. } if phase.is_terminal()) {
            st.done = true;
        }
        Some((Ok(sse_event(&ev)), st))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// The terminal phase of run `id` from the store, when it has ended and no
/// execution of it is under way on this replica.
async fn ended(s: &AppState, id: RunId) -> Option<RunEvent> {
    if locked(&s.executing).contains(&id) {
        return None;
    }
    let run = s.store.get_run(id).await.ok().flatten()?;
    run.phase.is_terminal().then(|| RunEvent::Phase {
        run_id: id,
        phase: run.phase,
        note: run.error.clone(),
        at: run.updated_at,
    })
}

/// The whole run record.
///
/// Plan, current files, fix attempts (each with its diagnostics and the fixed files), latest
/// diagnostics, change set, phase history.
#[utoipa::path(get, path = "/runs/{id}", params(("id" = String, Path, format = Uuid)))]
pub(crate) async fn get_run(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let run = load_run(&s, run_id(&id)?).await?;
    let plan = run.plan.as_ref().map(super::plan::plan_view);
    let mut run = json!(run);
    run["plan"] = json!(plan);
    Ok(Json(json!({ "run": run, "simulated": s.simulated })))
}

/// A run in `GET /runs`.
#[derive(serde::Serialize)]
struct RunSummary {
    run_id: RunId,
    goal: String,
    status: RunStatus,
    phase: RunPhase,
    dry_run: bool,
    deployment_id: Option<DeploymentId>,
    error: Option<String>,
    created_at: chrono::DateTime<chrono::Utc>,
    updated_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct RunsQuery {
    /// Only runs that produced this deployment.
    deployment_id: Option<String>,
    #[param(minimum = 1, maximum = 1000, default = 100)]
    limit: Option<usize>,
    /// Where to go on: the `next` of the previous page (opaque).
    cursor: Option<String>,
}

/// Runs, newest first, a page at a time: each run's id, goal, status, phase, dry run flag,
/// deployment, error and times (`GET /runs/{id}` has the whole record).
///
/// `next` (also a `Link: <…>; rel="next"` header) is the cursor of the following page, `null` on
/// the last; paging is stable under runs started meanwhile, as for `GET /ops/alerts`.
#[utoipa::path(get, path = "/runs", params(RunsQuery))]
pub(crate) async fn list_runs(
    State(s): State<AppState>,
    q: Result<Query<RunsQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    let q = super::query(q)?;
    let limit = super::bounded("limit", q.limit, 100, 1000)?;
    let deployment_id = q.deployment_id.as_deref().map(str::parse).transpose()?;
    let after = q.cursor.as_deref().map(str::parse).transpose()?;
    let query = RunQuery {
        deployment_id,
        limit: Some(limit + 1),
        after,
    };
    let runs: Vec<RunSummary> = (s.store.list_runs(&query).await?.into_iter())
        .map(|r| RunSummary {
            run_id: r.id,
            goal: r.goal,
            status: RunStatus::from(r.phase),
            phase: r.phase,
            dry_run: r.dry_run,
            deployment_id: r.deployment_id,
            error: r.error,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
        .collect();
    let key = |r: &RunSummary| PageKey {
        created_at: r.created_at,
        id: r.run_id,
    };
    let filters = [("deployment_id", &q.deployment_id)];
    Ok(super::page(
        "/runs",
        &filters,
        limit,
        ("runs", runs),
        key,
        s.simulated,
    ))
}
