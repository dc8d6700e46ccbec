//! The alert webhooks: authentication, normalization, and recording.

use super::{body_within, inbound, parse};
use crate::app::{same, AppState, Ingesting, ALERT_BODY_LIMIT};
use crate::error::{ApiError, ApiResult};
use crate::openapi::AlertBatch;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use infraai_core::*;
use infraai_gcp::GcpWebhookSource;
use infraai_prometheus::{AlertmanagerSource, ReceiverAuth};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use tracing::warn;
use utoipa::ToSchema;

/// Header carrying the alert-webhook token (or query parameter `token`).
pub const WEBHOOK_TOKEN_HEADER: &str = "x-infraai-webhook-token";

/// Checks the alert-webhook token: `X-Infraai-Webhook-Token` (or
/// `X-Infraai-Token`), `?token=`, or `Authorization: Bearer`.
fn check_webhook_token(
    s: &AppState,
    headers: &HeaderMap,
    query: &BTreeMap<String, String>,
) -> ApiResult<()> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let given = headers
        .get(WEBHOOK_TOKEN_HEADER)
        .or_else(|| headers.get("x-infraai-token"))
        .and_then(|v| v.to_str().ok())
        .or(query.get("token").map(String::as_str))
        .or(bearer);
    match given {
        Some(t) if same(t, &s.webhook_token) => Ok(()),
        Some(_) => Err(ApiError::unauthorized("wrong webhook token")),
        None => Err(ApiError::unauthorized(format!(
            "missing webhook token: send header {WEBHOOK_TOKEN_HEADER}, Authorization: Bearer, or query parameter token"
        ))),
    }
}

fn alertmanager_alerts(raw: &[u8]) -> ApiResult<Vec<Alert>> {
    // The server authenticated the request; the source only normalizes.
    static SOURCE: std::sync::LazyLock<AlertmanagerSource> = std::sync::LazyLock::new(|| {
        AlertmanagerSource::new(ReceiverAuth::Bearer(Secret::new(String::new())))
    });
    Ok(SOURCE.normalize(raw)?)
}

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
    check_webhook_token(&s, &headers, &query)?;
    let raw = body_within(b, ALERT_BODY_LIMIT)?;
    let value: Value = parse(&raw)?;
    // Authenticated above; the sources only normalize (SNS also verifies the
    // message signature: the subscription is confirmed only when it holds).
    let alerts: Vec<Alert> = if headers.contains_key("x-amz-sns-message-type")
        || ["Type", "TopicArn", "Signature"]
            .iter()
            .all(|k| value.get(k).is_some())
    {
        let Some(sns) = &s.sns else {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "AWS SNS messages are not accepted here: run with INFRAAI_CLOUD=aws and INFRAAI_AWS_ACCOUNT_ID",
            ));
        };
        let alerts = sns.receive(&inbound(&headers, query, raw)).await?;
        if alerts.is_empty() {
            // Subscription confirmations and OK-less states: handled, nothing to record.
            return Ok(Json(Accepted::nothing(
                "SNS message handled; no alert in it",
            )));
        }
        alerts
    } else if value.get("incident").is_some() {
        // A Cloud Monitoring notification (schema 1.2).
        let alerts: Vec<Alert> = GcpWebhookSource::normalize(&raw)?.into_iter().collect();
        if alerts.is_empty() {
            // Console test notifications carry placeholders: acknowledge, record nothing.
            return Ok(Json(Accepted::nothing("test notification ignored")));
        }
        alerts
    } else if value.get("alerts").is_some() && value.get("receiver").is_some() {
        // An Alertmanager webhook (version 4).
        alertmanager_alerts(&raw)?
    } else {
        match value {
            Value::Array(_) => serde_json::from_value(value),
            v => serde_json::from_value(v).map(|a| vec![a]),
        }
        .map_err(|e| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("invalid alert: {e}"),
            )
        })?
    };
    ingest(&s, alerts).await
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
    check_webhook_token(&s, &headers, &query)?;
    let raw = body_within(b, ALERT_BODY_LIMIT)?;
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "request body is empty; an Alertmanager webhook (version 4) is expected",
        ));
    }
    match alertmanager_alerts(&raw) {
        Ok(alerts) => ingest(&s, alerts).await,
        Err(e) => {
            // Not JSON at all: 400 like every route; a wrong shape stays 422.
            let _: serde::de::IgnoredAny = parse(&raw)?;
            Err(e)
        }
    }
}

/// Records every alert (validated first, so a bad batch records nothing),
/// answers only after they are committed, and decides new incidents in the
/// background.
pub(crate) async fn ingest(s: &AppState, alerts: Vec<Alert>) -> ApiResult<Json<Accepted>> {
    if alerts.is_empty() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "no alerts in the body",
        ));
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
            Ingested {
                fingerprint,
                outcome: ingest.outcome,
                incident_id: ingest.incident.map(|i| i.id),
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
        accepted: results.len(),
        results,
        note: None,
    }))
}

/// The answer to an alert webhook: what recording each alert did.
#[derive(Serialize, ToSchema)]
pub(crate) struct Accepted {
    accepted: usize,
    results: Vec<Ingested>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    note: Option<&'static str>,
}

impl Accepted {
    /// A webhook handled with no alert to record, and why.
    fn nothing(note: &'static str) -> Self {
        Self {
            accepted: 0,
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
}
