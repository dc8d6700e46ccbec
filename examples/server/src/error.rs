//! Problem-details error bodies (`{type, title, status, detail}`) and the
//! mapping of core errors to HTTP statuses.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use infraai_core::Error;
use serde::Serialize;
use tracing::{error, warn};
use utoipa::ToSchema;

/// An API error: a status and a message that is safe to show.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Human-readable detail (never a secret).
    pub detail: String,
}

impl ApiError {
    /// An error with a status and detail.
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            status,
            detail: detail.into(),
        }
    }

    /// 400.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, detail)
    }

    /// 404.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, detail)
    }

    /// 401.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, detail)
    }

    /// 409.
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, detail)
    }

    /// 422: a well-formed request the API cannot act on.
    pub fn unprocessable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, detail)
    }
}

/// The problem-details `type` slug of a status.
fn type_slug(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "bad-request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not-found",
        405 => "method-not-allowed",
        408 => "timeout",
        409 => "conflict",
        413 => "payload-too-large",
        415 => "unsupported-media-type",
        422 => "unprocessable",
        503 => "unavailable",
        _ => "internal",
    }
}

/// A problem-details body (RFC 9457).
#[derive(Serialize, ToSchema)]
pub struct Problem<'a> {
    /// `https://infraai.dev/problems/<slug>`.
    #[serde(rename = "type")]
    kind: String,
    /// The status's reason phrase.
    title: &'a str,
    /// The HTTP status.
    status: u16,
    /// What went wrong (never a secret).
    detail: &'a str,
}

/// A problem-details response.
pub fn problem(status: StatusCode, detail: &str) -> Response {
    let body = Problem {
        kind: format!("https://infraai.dev/problems/{}", type_slug(status)),
        title: status.canonical_reason().unwrap_or("Error"),
        status: status.as_u16(),
        detail,
    };
    let mut resp = (status, axum::Json(body)).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    if status == StatusCode::UNAUTHORIZED {
        resp.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    resp
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        problem(self.status, &self.detail)
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let status = match &e {
            Error::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Error::NotFound { .. } => StatusCode::NOT_FOUND,
            Error::Conflict { .. } | Error::KillSwitchEngaged { .. } => StatusCode::CONFLICT,
            Error::Unauthenticated { .. } => StatusCode::UNAUTHORIZED,
            Error::Forbidden { .. } => StatusCode::FORBIDDEN,
            Error::NotSupported { .. } => StatusCode::NOT_IMPLEMENTED,
            e if e.is_retryable() => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        // Backend failures may carry adapter detail; show the kind, log the rest.
        let detail = match &e {
            Error::Backend { component, op, .. } => {
                error!(error = %e, "backend failure");
                format!("{component}: {op} failed; see the server log")
            }
            _ if status.is_server_error() => {
                warn!(error = %e, "server error");
                e.to_string()
            }
            _ => e.to_string(),
        };
        ApiError::new(status, detail)
    }
}

/// Result of a handler.
pub type ApiResult<T> = std::result::Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_errors_map_to_statuses() {
        let s = |e: Error| ApiError::from(e).status.as_u16();
        assert_eq!(s(Error::invalid("goal", "empty")), 422);
        assert_eq!(s(Error::not_found("run x")), 404);
        assert_eq!(s(Error::conflict("run", "busy")), 409);
        assert_eq!(s(Error::KillSwitchEngaged { what: "x".into() }), 409);
        assert_eq!(s(Error::Unauthenticated { detail: "x".into() }), 401);
        assert_eq!(s(Error::Forbidden { detail: "x".into() }), 403);
        assert_eq!(s(Error::backend("sqlite", "put", true, "busy")), 503);
        let e = ApiError::from(Error::backend("gemini", "generate", false, "key=SECRET"));
        assert_eq!(e.status.as_u16(), 500);
        assert!(!e.detail.contains("SECRET"));
    }
}
