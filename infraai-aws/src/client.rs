//! Raw SigV4-signed calls: the EC2 Query API (form body, XML answer) and the
//! CloudWatch JSON 1.0 API. Wire types stay here.

use crate::config::{ApiEndpoint, AwsCredentials};
use crate::sigv4::{amz_date, authorization, uri_encode, SigningRequest};
use infraai_core::{Error, Result};
use reqwest::Url;
use serde_json::Value;
use std::time::Duration;
use tracing::debug;

/// A signed client for one AWS service in one region.
#[derive(Clone, Debug)]
pub struct AwsApi {
    http: reqwest::Client,
    creds: AwsCredentials,
    endpoint: ApiEndpoint,
    service: &'static str,
    host: String,
    url: String,
}

/// An AWS error answer, mapped to a core error kind in [`AwsApi::error`].
#[derive(Debug)]
pub(crate) struct ApiError {
    pub status: u16,
    pub code: String,
    pub message: String,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HTTP {} {}: {}", self.status, self.code, self.message)
    }
}

impl std::error::Error for ApiError {}

/// The text of the first `<tag>…</tag>` in `xml` (AWS error and result
/// documents are flat enough for this; values are unescaped).
pub(crate) fn xml_text(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&close)? + start;
    Some(
        xml[start..end]
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&"),
    )
}

impl AwsApi {
    /// A client for `service` (`ec2`, `monitoring`) at `endpoint`.
    pub fn new(
        http: reqwest::Client,
        creds: AwsCredentials,
        endpoint: ApiEndpoint,
        service: &'static str,
    ) -> Result<Self> {
        let parsed = Url::parse(&endpoint.base_url)
            .map_err(|e| Error::invalid("AWS endpoint", e.to_string()))?;
        let host = match (parsed.host_str(), parsed.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            (None, _) => return Err(Error::invalid("AWS endpoint", "has no host")),
        };
        let url = format!("{}/", endpoint.base_url.trim_end_matches('/'));
        Ok(Self {
            http,
            creds,
            endpoint,
            service,
            host,
            url,
        })
    }

    /// A default HTTP client (30 s timeout).
    pub fn default_http() -> reqwest::Client {
        reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap_or_default()
    }

    /// Maps an AWS error answer to a core error kind: throttling and 5xx are
    /// retryable, auth failures are `Unauthenticated`/`Forbidden`, missing
    /// things `NotFound`.
    pub(crate) fn error(&self, op: &str, e: ApiError) -> Error {
        let code = e.code.as_str();
        match code {
            "AuthFailure"
            | "InvalidClientTokenId"
            | "SignatureDoesNotMatch"
            | "MissingAuthenticationToken"
            | "ExpiredToken"
            | "IncompleteSignature" => Error::Unauthenticated {
                detail: format!("AWS {} {op}: {code}", self.service),
            },
            "UnauthorizedOperation" | "AccessDenied" | "AccessDeniedException" => {
                Error::Forbidden {
                    detail: format!("AWS {} {op}: {code}: {}", self.service, e.message),
                }
            }
            c if c.ends_with(".NotFound") || c == "ResourceNotFound" => {
                Error::not_found(format!("AWS {} {op}: {}", self.service, e.message))
            }
            _ => {
                let retryable = e.status >= 500
                    || e.status == 429
                    || code.contains("Throttl")
                    || code == "RequestLimitExceeded"
                    || code == "ServiceUnavailable";
                self.backend(op, retryable, e)
            }
        }
    }

    /// A backend error of this service (`aws-<service>`).
    fn backend(&self, op: &str, retryable: bool, e: impl Into<infraai_core::BoxError>) -> Error {
        Error::backend(format!("aws-{}", self.service), op, retryable, e)
    }

    async fn send(
        &self,
        op: &str,
        content_type: &str,
        extra: Option<(&str, String)>,
        body: Vec<u8>,
    ) -> Result<(u16, String)> {
        let date = amz_date(chrono::Utc::now());
        let mut headers = vec![
            ("content-type".to_string(), content_type.to_string()),
            ("host".to_string(), self.host.clone()),
            ("x-amz-date".to_string(), date.clone()),
        ];
        if let Some((k, v)) = &extra {
            headers.push((k.to_string(), v.clone()));
        }
        if let Some(token) = &self.creds.session_token {
            headers.push(("x-amz-security-token".into(), token.expose().to_string()));
        }
        let auth = authorization(
            &self.creds,
            &SigningRequest {
                method: "POST",
                path: "/",
                query: "",
                headers: &headers,
                payload: &body,
                region: &self.endpoint.region,
                service: self.service,
            },
            &date,
        );
        let mut req = self
            .http
            .post(&self.url)
            .header("authorization", auth)
            .body(body);
        for (k, v) in headers.iter().filter(|(k, _)| k != "host") {
            req = req.header(k.as_str(), v.as_str());
        }
        let response = req.send().await.map_err(|e| self.backend(op, true, e))?;
        let status = response.status().as_u16();
        let text = response
            .text()
            .await
            .map_err(|e| self.backend(op, true, e))?;
        debug!(service = self.service, op, status, "AWS API call");
        Ok((status, text))
    }

    /// A Query API call (`Action=…&Version=…&params`); returns the XML body
    /// of a 2xx answer, or the answer's error (`Ok(Err)`) for inspection.
    pub(crate) async fn query(
        &self,
        action: &str,
        version: &str,
        params: &[(String, String)],
    ) -> Result<std::result::Result<String, ApiError>> {
        let mut body = format!(
            "Action={}&Version={}",
            uri_encode(action),
            uri_encode(version)
        );
        for (k, v) in params {
            body.push_str(&format!("&{}={}", uri_encode(k), uri_encode(v)));
        }
        let (status, text) = self
            .send(
                action,
                "application/x-www-form-urlencoded; charset=utf-8",
                None,
                body.into_bytes(),
            )
            .await?;
        if (200..300).contains(&status) {
            return Ok(Ok(text));
        }
        Ok(Err(ApiError {
            status,
            code: xml_text(&text, "Code").unwrap_or_else(|| "Unknown".into()),
            message: xml_text(&text, "Message").unwrap_or_default(),
        }))
    }

    /// A JSON 1.0 call (`X-Amz-Target: <prefix>.<action>`); returns the JSON
    /// answer or the mapped error.
    pub(crate) async fn json(&self, target: &str, action: &str, input: &Value) -> Result<Value> {
        let body =
            serde_json::to_vec(input).map_err(|e| Error::invalid("AWS request", e.to_string()))?;
        let (status, text) = self
            .send(
                action,
                "application/x-amz-json-1.0",
                Some(("x-amz-target", format!("{target}.{action}"))),
                body,
            )
            .await?;
        if (200..300).contains(&status) {
            return serde_json::from_str(&text).map_err(|e| self.backend(action, false, e));
        }
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let code = v
            .get("__type")
            .and_then(Value::as_str)
            .map(|t| t.rsplit('#').next().unwrap_or(t).to_string())
            .unwrap_or_else(|| "Unknown".into());
        let message = v
            .get("message")
            .or_else(|| v.get("Message"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        Err(self.error(
            action,
            ApiError {
                status,
                code,
                message,
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_text_reads_error_documents() {
        let xml = "<Response><Errors><Error><Code>InvalidInstanceID.NotFound</Code><Message>The instance ID &apos;i-1&apos; does not exist</Message></Error></Errors></Response>";
        assert_eq!(xml_text(xml, "Code").unwrap(), "InvalidInstanceID.NotFound");
        assert_eq!(
            xml_text(xml, "Message").unwrap(),
            "The instance ID 'i-1' does not exist"
        );
        assert_eq!(xml_text(xml, "Missing"), None);
    }
}
