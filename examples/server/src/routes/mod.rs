//! The HTTP handlers, one file per area, and the input helpers they share.
//! [`crate::app`] assembles them into the router.

use crate::app::{AppState, BODY_LIMIT};
use crate::error::{ApiError, ApiResult};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::Query;
use axum::http::{HeaderMap, StatusCode};
use infraai_core::*;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;

pub mod alerts;
pub mod autonomy;
pub mod channels;
pub mod meta;
pub mod ops;
pub mod plan;
pub mod runs;

pub(crate) fn body(b: Result<Bytes, BytesRejection>) -> ApiResult<Bytes> {
    body_within(b, BODY_LIMIT)
}

/// [`body`] on a route whose limit is `limit` bytes (for the message).
fn body_within(b: Result<Bytes, BytesRejection>, limit: usize) -> ApiResult<Bytes> {
    b.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body is larger than {} KiB", limit / 1024),
            )
        } else {
            ApiError::bad_request(format!("could not read the request body: {e}"))
        }
    })
}

pub(crate) fn parse<T: DeserializeOwned>(b: &[u8]) -> ApiResult<T> {
    if b.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "request body is empty; a JSON object is expected",
        ));
    }
    serde_json::from_slice(b).map_err(|e| {
        use serde_json::error::Category;
        match e.classify() {
            Category::Data => ApiError::unprocessable(format!("invalid request: {e}")),
            _ => ApiError::bad_request(format!("malformed JSON: {e}")),
        }
    })
}

/// Optional JSON body: empty means the default.
fn parse_opt<T: DeserializeOwned + Default>(b: &[u8]) -> ApiResult<T> {
    if b.iter().all(u8::is_ascii_whitespace) {
        Ok(T::default())
    } else {
        parse(b)
    }
}

fn run_id(s: &str) -> ApiResult<RunId> {
    s.parse()
        .map_err(|_| ApiError::bad_request(format!("{s:?} is not a run id (a UUID)")))
}

fn incident_id(s: &str) -> ApiResult<IncidentId> {
    s.parse()
        .map_err(|_| ApiError::bad_request(format!("{s:?} is not an incident id (a UUID)")))
}

async fn load_run(s: &AppState, id: RunId) -> ApiResult<Run> {
    s.store
        .get_run(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("run {id} not found")))
}

async fn load_incident(s: &AppState, id: IncidentId) -> ApiResult<Incident> {
    s.store
        .get_incident(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("incident {id} not found")))
}

fn inbound(headers: &HeaderMap, query: BTreeMap<String, String>, body: Bytes) -> InboundRequest {
    InboundRequest {
        headers: headers
            .iter()
            .filter_map(|(k, v)| {
                Some((
                    k.as_str().to_ascii_lowercase(),
                    v.to_str().ok()?.to_string(),
                ))
            })
            .collect(),
        query,
        body: body.to_vec(),
        origin: RequestOrigin::default(),
    }
}
/// A query string's parameters; one that does not parse is a 400.
fn query<T>(q: Result<Query<T>, axum::extract::rejection::QueryRejection>) -> ApiResult<T> {
    q.map(|Query(q)| q)
        .map_err(|e| ApiError::bad_request(format!("invalid query: {e}")))
}

/// A count parameter: `default` when absent, otherwise 1 to `max` or a 400.
fn bounded(name: &str, value: Option<usize>, default: usize, max: usize) -> ApiResult<usize> {
    match value.unwrap_or(default) {
        n @ 1.. if n <= max => Ok(n),
        _ => Err(ApiError::bad_request(format!("{name} must be 1–{max}"))),
    }
}

/// One page of a listing newest first: `items` under `key`, `next` (the
/// cursor of the following page, from the last item's key when there was one
/// more than `limit`) and, with a next page, a `Link: <…>; rel="next"` to it
/// keeping the request's `filters`.
fn page<T: serde::Serialize, I: std::fmt::Display>(
    path: &str,
    filters: &[(&str, &Option<String>)],
    limit: usize,
    (key, mut items): (&str, Vec<T>),
    page_key: impl Fn(&T) -> PageKey<I>,
    simulated: bool,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let more = items.len() > limit;
    items.truncate(limit);
    let next = items
        .last()
        .filter(|_| more)
        .map(|i| page_key(i).to_string());
    let body = axum::Json(serde_json::json!({key: items, "next": next, "simulated": simulated}));
    let Some(next) = next else {
        return body.into_response();
    };
    let mut url = form_urlencoded::Serializer::new(String::new());
    for (name, value) in filters {
        if let Some(v) = value {
            url.append_pair(name, v);
        }
    }
    let url = url
        .append_pair("limit", &limit.to_string())
        .append_pair("cursor", &next)
        .finish();
    let link = format!("<{path}?{url}>; rel=\"next\"");
    ([(axum::http::header::LINK, link)], body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_parameters_default_and_are_bounded() {
        assert_eq!(bounded("limit", None, 100, 1000).unwrap(), 100);
        assert_eq!(bounded("limit", Some(1), 100, 1000).unwrap(), 1);
        assert_eq!(bounded("limit", Some(1000), 100, 1000).unwrap(), 1000);
        for bad in [0, 1001] {
            let e = bounded("limit", Some(bad), 100, 1000).unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST);
            assert_eq!(e.detail, "limit must be 1–1000");
        }
    }
}
