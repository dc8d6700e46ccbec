//! An HTTP [`Verifier`] usable by every cloud adapter (feature `http`).

use crate::domain::{EndpointCheck, VerificationReport};
use crate::traits::Verifier;
use crate::Result;
use async_trait::async_trait;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tracing::{debug, info};

/// Checks that every URL in a deployment's Terraform outputs answers: with
/// any status below 500 by default (a fresh service's 404 is alive, as the
/// product plan says), or only 2xx ([`Reachable::Success`]).
///
/// URLs are found in output values that are `http(s)://` strings, or maps /
/// lists of them (e.g. `urls = { web = "http://…" }`), with or without
/// Terraform's `{sensitive, type, value}` wrapper. Each URL gets up to
/// `attempts` tries, `interval` apart (new instances take a while to boot).
#[derive(Clone, Debug)]
pub struct HttpVerifier {
    /// Tries per URL (default 5).
    pub attempts: u32,
    /// Pause between tries (default 10 s).
    pub interval: Duration,
    /// Timeout of one request (default 5 s).
    pub timeout: Duration,
    /// Which answers count as reachable (default [`Reachable::Below500`]).
    pub reachable: Reachable,
    http: reqwest::Client,
}

/// Which HTTP answers prove a service is up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reachable {
    /// Any answer below 500 (2xx, 3xx, 4xx): the service runs.
    #[default]
    Below500,
    /// Only 2xx.
    Success,
}

impl Reachable {
    /// Whether `status` counts as reachable.
    pub fn accepts(self, status: reqwest::StatusCode) -> bool {
        match self {
            Reachable::Below500 => status.as_u16() < 500,
            Reachable::Success => status.is_success(),
        }
    }
}

impl Default for HttpVerifier {
    fn default() -> Self {
        Self::new(5, Duration::from_secs(10))
    }
}

impl HttpVerifier {
    /// A verifier with `attempts` tries `interval` apart.
    pub fn new(attempts: u32, interval: Duration) -> Self {
        let timeout = Duration::from_secs(5);
        Self {
            attempts: attempts.max(1),
            interval,
            timeout,
            reachable: Reachable::default(),
            http: reqwest::Client::builder()
                .timeout(timeout)
                .build()
                .unwrap_or_default(),
        }
    }

    /// With `reachable` as the rule for answers.
    pub fn with_reachable(self, reachable: Reachable) -> Self {
        Self { reachable, ..self }
    }

    /// The URLs found in Terraform outputs, sorted and deduplicated.
    pub fn urls(outputs: &BTreeMap<String, Value>) -> Vec<String> {
        fn collect(v: &Value, depth: u8, out: &mut Vec<String>) {
            match v {
                Value::String(s) if s.starts_with("http://") || s.starts_with("https://") => {
                    out.push(s.clone())
                }
                Value::Object(m) if depth < 3 => match (m.get("value"), m.get("type")) {
                    (Some(inner), Some(_)) => collect(inner, depth + 1, out),
                    _ => m.values().for_each(|x| collect(x, depth + 1, out)),
                },
                Value::Array(a) if depth < 3 => a.iter().for_each(|x| collect(x, depth + 1, out)),
                _ => {}
            }
        }
        let mut out = Vec::new();
        outputs.values().for_each(|v| collect(v, 0, &mut out));
        out.sort();
        out.dedup();
        out
    }

    async fn check(&self, url: &str) -> EndpointCheck {
        let mut last = EndpointCheck {
            url: url.to_string(),
            ok: false,
            status: None,
            latency_ms: None,
            error: None,
            body_prefix: None,
            attempts: 0,
        };
        for attempt in 1..=self.attempts {
            last.attempts = attempt;
            let start = Instant::now();
            match self.http.get(url).send().await {
                Ok(response) => {
                    let status = response.status();
                    let body = response.text().await.unwrap_or_default();
                    last.status = Some(status.as_u16());
                    last.latency_ms = Some(start.elapsed().as_millis() as u64);
                    last.body_prefix = Some(body.chars().take(200).collect());
                    last.ok = self.reachable.accepts(status);
                    last.error = (!last.ok).then(|| format!("HTTP {status}"));
                }
                Err(e) => {
                    last.status = None;
                    last.latency_ms = None;
                    last.error = Some(e.without_url().to_string());
                }
            }
            debug!(url, attempt, ok = last.ok, "verification attempt");
            if last.ok {
                break;
            }
            if attempt < self.attempts {
                tokio::time::sleep(self.interval).await;
            }
        }
        last
    }
}

#[async_trait]
impl Verifier for HttpVerifier {
    async fn verify(&self, outputs: &BTreeMap<String, Value>) -> Result<VerificationReport> {
        let urls = Self::urls(outputs);
        let mut checks = Vec::with_capacity(urls.len());
        for url in &urls {
            checks.push(self.check(url).await);
        }
        let report = VerificationReport::new(checks);
        info!(urls = urls.len(), ok = report.ok, "deployment verified");
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_urls_in_output_shapes() {
        let outputs = BTreeMap::from([
            (
                "urls".to_string(),
                json!({"sensitive": false, "type": ["map", "string"], "value": {"web": "http://127.0.0.1:1/", "api": "https://x.example/"}}),
            ),
            ("public_ips".to_string(), json!({"web": "127.0.0.1"})),
            ("url".to_string(), json!("http://127.0.0.1:1/")),
        ]);
        assert_eq!(
            HttpVerifier::urls(&outputs),
            ["http://127.0.0.1:1/", "https://x.example/"]
        );
    }

    #[tokio::test]
    async fn real_http_checks_pass_fail_and_retry() {
        use axum::routing::get;
        let app = axum::Router::new()
            .route("/", get(|| async { "hello from web" }))
            .route(
                "/broken",
                get(|| async { (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "boom") }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });

        let v = HttpVerifier::new(2, Duration::from_millis(10));
        let ok = v
            .verify(&BTreeMap::from([(
                "url".into(),
                json!(format!("http://{addr}/")),
            )]))
            .await
            .unwrap();
        assert!(ok.ok);
        assert_eq!(ok.checks[0].status, Some(200));
        assert_eq!(ok.checks[0].body_prefix.as_deref(), Some("hello from web"));
        assert_eq!(ok.checks[0].attempts, 1);

        let broken = v
            .verify(&BTreeMap::from([(
                "url".into(),
                json!(format!("http://{addr}/broken")),
            )]))
            .await
            .unwrap();
        assert!(!broken.ok);
        assert_eq!(
            (broken.checks[0].status, broken.checks[0].attempts),
            (Some(500), 2)
        );

        // Nothing listens on port 1: refused, with an error and no status.
        let down = v
            .verify(&BTreeMap::from([(
                "url".into(),
                json!("http://127.0.0.1:1/"),
            )]))
            .await
            .unwrap();
        assert!(!down.ok && down.checks[0].status.is_none() && down.checks[0].error.is_some());

        // No URL at all is not a success.
        assert!(!v.verify(&BTreeMap::new()).await.unwrap().ok);

        // A fresh service's 404 is alive by default; not when 2xx is asked.
        let missing = BTreeMap::from([("url".into(), json!(format!("http://{addr}/nothing")))]);
        let alive = v.verify(&missing).await.unwrap();
        assert!(alive.ok && alive.checks[0].status == Some(404));
        let strict = HttpVerifier {
            reachable: Reachable::Success,
            ..v.clone()
        };
        assert!(!strict.verify(&missing).await.unwrap().ok);
    }
}
