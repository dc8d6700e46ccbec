//! The alert webhooks: authentication, normalization, and recording.

use super::{body_within, inbound, parse};
use crate::app::{AppState, Ingesting, ALERT_BODY_LIMIT};
use crate::error::{ApiError, ApiResult};
use crate::openapi::AlertBatch;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use infraai_core::*;
use serde::Serialize;
use std::collections::BTreeMap;
use tracing::warn;
use utoipa::ToSchema;

/// Receive alerts: GCP Cloud Monitoring, AWS SNS, Alertmanager, or the core `Alert` JSON.
///
/// A GCP Cloud Monitoring webhook notification (schema 1.2, an object with `incident`; console
/// test notifications are acknowledged and ignored), an AWS SNS alarm notification (when
/// configured), an Alertmanager webhook (version 4, an object with `alerts` and `receiver`), or
/// the core `Alert` JSON (one object or an array) from any other source, in a body of up to 4
/// MiB. Token in header `X-Infraai-Webhook-Token` / `X-Infraai-Token`, `Authorization: Bearer`
/// (Alertmanager's `http_config.authorization`) or query `token` (what a Cloud Monitoring channel
/// URL can carry). Answered 200 only after every alert is durably recorded; new incidents are
/// processed in the background.
#[utoipa::path(post, path = "/ops/webhook", request_body = AlertBatch, responses((status = 200, body = Accepted)), security(("webhook" = [])))]
pub(crate) async fn alert_webhook(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<BTreeMap<String, String>>,
    b: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Accepted>> {
    // The first alert source that accepts the request takes it.
    let req = inbound(&headers, query, body_within(b, ALERT_BODY_LIMIT)?);
    let Some(source) = s.alert_sources.iter().find(|a| a.accepts(&req)) else {
        return Err(ApiError::unprocessable(
            "no alert source takes this request",
        ));
    };
    receive(&s, source.as_ref(), &req, "a JSON object is expected").await
}

/// Alertmanager's webhook receiver (payload version 4) only.
///
/// The same token as `/ops/webhook` (configure `http_config.authorization.credentials`). Firing
/// alerts are deduplicated by Alertmanager fingerprint into one incident: repeat notifications
/// and an HA peer's copies of an open incident, and late copies of an episode already resolved
/// (same `startsAt`), decide nothing new. Bodies of up to 4 MiB: a whole group's alerts, recorded
/// together. Answered 200 only after every alert is durably recorded.
#[utoipa::path(post, path = "/ops/webhook/alertmanager", request_body(content = Object, description = "An Alertmanager webhook notification (version 4)."), responses((status = 200, body = Accepted)), security(("webhook" = [])))]
pub(crate) async fn alertmanager_webhook(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<BTreeMap<String, String>>,
    b: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Accepted>> {
    let Some(source) = s.alert_sources.iter().find(|a| a.name() == "alertmanager") else {
        return Err(ApiError::not_found("no Alertmanager source is configured"));
    };
    let req = inbound(&headers, query, body_within(b, ALERT_BODY_LIMIT)?);
    let expected = "an Alertmanager webhook (version 4) is expected";
    receive(&s, source.as_ref(), &req, expected).await
}

/// Has `source` authenticate and normalize a delivery, then records its
/// alerts. A body that is empty or not JSON at all is a 400 (`expected`
/// says what it should be), like on every route; a wrong shape is a 422.
async fn receive(
    s: &AppState,
    source: &dyn AlertSource,
    req: &InboundRequest,
    expected: &str,
) -> ApiResult<Json<Accepted>> {
    let alerts = match source.receive(req).await {
        Ok(alerts) => alerts,
        Err(Error::Unauthenticated { detail }) => return Err(ApiError::unauthorized(detail)),
        Err(Error::Forbidden { detail }) => {
            return Err(ApiError::new(StatusCode::FORBIDDEN, detail))
        }
        Err(e @ Error::Invalid { .. }) => {
            if req.body.iter().all(u8::is_ascii_whitespace) {
                return Err(ApiError::bad_request(format!(
                    "request body is empty; {expected}"
                )));
            }
            let _: serde::de::IgnoredAny = parse(&req.body)?;
            return Err(e.into());
        }
        Err(e) => return Err(e.into()),
    };
    match source.empty_delivery_note() {
        Some(note) if alerts.is_empty() => Ok(Json(Accepted::nothing(note))),
        _ => ingest(s, alerts).await,
    }
}

/// Records every alert (validated first, so a bad batch records nothing),
/// answers only after they are committed, and decides new incidents in the
/// background.
pub(crate) async fn ingest(s: &AppState, alerts: Vec<Alert>) -> ApiResult<Json<Accepted>> {
    if alerts.is_empty() {
        return Err(ApiError::unprocessable("no alerts in the body"));
    }
    let _ingesting = Ingesting::start(&s.ingesting);
    let fingerprints: Vec<String> = alerts.iter().map(|a| a.fingerprint.clone()).collect();
    // All validated before any is recorded, then committed together where the
    // store can (SQLite: one transaction, one sync for the whole webhook).
    let ingests = s.ops.record_alerts(alerts).await?;
    let results: Vec<Ingested> = fingerprints
        .into_iter()
        .zip(ingests)
        .map(|(fingerprint, ingest)| {
            s.metrics.alert(ingest.outcome.name());
            let incident_id = ingest.incident.map(|i| i.id);
            Ingested {
                fingerprint,
                outcome: ingest.outcome,
                incident_id,
                decision_id: incident_id,
                decision_url: incident_id.map(|id| format!("/ops/alerts/{id}")),
            }
        })
        .collect();
    // Durable now: decide in the background and acknowledge.
    for r in &results {
        if let (IngestOutcome::Opened, Some(id)) = (r.outcome, r.incident_id) {
            if s.decide.send(id).is_err() {
                warn!(incident_id = %id, "decision queue closed; the next start decides it");
            }
        }
    }
    Ok(Json(Accepted {
        received: true,
        accepted: results.len(),
        decision_id: results.iter().find_map(|r| r.decision_id),
        results,
        note: None,
    }))
}

/// The answer to an alert webhook: what recording each alert did. Sent only
/// after every alert is durable; the decisions are made in the background,
/// so a caller polls `decision_url` (`GET /ops/alerts/{id}`: the incident
/// with its decision once made). `decision_id` (the product plan's field) is
/// the incident id of the first alert that has one.
#[derive(Serialize, ToSchema)]
pub(crate) struct Accepted {
    /// Always `true` (the product plan's field).
    received: bool,
    accepted: usize,
    #[schema(value_type = Option<String>, format = Uuid)]
    decision_id: Option<IncidentId>,
    results: Vec<Ingested>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    note: Option<&'static str>,
}

impl Accepted {
    /// A webhook handled with no alert to record, and why.
    fn nothing(note: &'static str) -> Self {
        Self {
            received: true,
            accepted: 0,
            decision_id: None,
            results: Vec::new(),
            note: Some(note),
        }
    }
}

/// One alert's entry in [`Accepted`].
#[derive(Serialize, ToSchema)]
pub(crate) struct Ingested {
    fingerprint: String,
    /// `opened`, `repeated`, …
    #[schema(value_type = String)]
    outcome: IngestOutcome,
    #[schema(value_type = Option<String>, format = Uuid)]
    incident_id: Option<IncidentId>,
    /// The id to poll the decision by: the incident's (one decision per incident).
    #[schema(value_type = Option<String>, format = Uuid)]
    decision_id: Option<IncidentId>,
    /// Where the decision appears: `/ops/alerts/{id}`.
    decision_url: Option<String>,
}
