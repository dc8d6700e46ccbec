//! Amazon SNS HTTP(S) deliveries of CloudWatch alarm notifications as an
//! [`AlertSource`].
//!
//! Every message is authenticated before anything else happens: the
//! signing certificate must come from `https://sns.<region>.amazonaws.com/…pem`,
//! the RSA signature (SignatureVersion 1 = SHA1withRSA, 2 = SHA256withRSA)
//! must verify over the canonical string of the documented fields, the topic
//! must be an allowed one (a valid SNS signature only proves the message came
//! from *some* SNS topic) and the message must be recent. Only then is a
//! subscription confirmed (GET of the `SubscribeURL`, itself restricted to
//! the SNS host pattern) or an alarm normalized.

use crate::config::is_aws_region;
use crate::profiles::{AWS_AUTOSCALING_GROUP, AWS_EC2_INSTANCE, AWS_RDS_INSTANCE};
use async_trait::async_trait;
use base64::Engine;
use chrono::{DateTime, Utc};
use infraai_core::{
    Alert, AlertSource, AlertState, Error, InboundRequest, Result, Severity, WebhookAuth,
};
use reqwest::Url;
use serde::Deserialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, warn};
use x509_cert::der::Decode;

/// The header SNS names its message type in.
const MESSAGE_TYPE_HEADER: &str = "x-amz-sns-message-type";

/// Whether a request looks like an SNS delivery: the
/// `x-amz-sns-message-type` header, or a body with `Type`, `TopicArn` and
/// `Signature` ([`SnsAlertSource`] accepts these).
pub fn is_sns_delivery(request: &InboundRequest) -> bool {
    request.header(MESSAGE_TYPE_HEADER).is_some()
        || request.has_json_fields(&["Type", "TopicArn", "Signature"])
}

/// How the SNS source authenticates and what it does with confirmations.
#[derive(Clone, Debug)]
pub struct SnsConfig {
    /// Topic ARNs whose messages are accepted. Required: anyone can create a
    /// topic whose messages SNS signs. An entry ending in `*` is a prefix,
    /// e.g. `arn:aws:sns:us-east-1:123456789012:infraai-alerts-*` for the
    /// topics the generator creates (their names get a random suffix); it
    /// must name at least the account.
    pub allowed_topic_arns: Vec<String>,
    /// Fetch certificates and `SubscribeURL`s from this base instead of the
    /// (already checked) SNS host — for tests and proxies. The URL's path and
    /// query are appended.
    pub fetch_base: Option<String>,
    /// Confirm verified subscription requests (default true).
    pub confirm_subscriptions: bool,
    /// Refuse messages whose `Timestamp` is older than this (replays).
    /// `None` turns the check off. Default one hour.
    pub max_age: Option<Duration>,
    /// A shared secret every delivery must also carry, checked before the
    /// signature (e.g. a token in the subscription URL). Default none.
    pub auth: Option<WebhookAuth>,
}

impl SnsConfig {
    /// Accepts the given topics, confirms subscriptions, one-hour max age.
    pub fn new(allowed_topic_arns: Vec<String>) -> Self {
        Self {
            allowed_topic_arns,
            fetch_base: None,
            confirm_subscriptions: true,
            max_age: Some(Duration::from_secs(3600)),
            auth: None,
        }
    }
}

/// Receives SNS deliveries of CloudWatch alarm state changes.
pub struct SnsAlertSource {
    config: SnsConfig,
    http: reqwest::Client,
    /// Certificate URL → RSA public key (PKCS#1 DER). Bounded.
    keys: tokio::sync::Mutex<HashMap<String, Arc<Vec<u8>>>>,
}

const MAX_CACHED_KEYS: usize = 32;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Envelope {
    #[serde(rename = "Type")]
    kind: String,
    message_id: String,
    topic_arn: String,
    subject: Option<String>,
    message: String,
    timestamp: String,
    token: Option<String>,
    #[serde(default, rename = "SubscribeURL")]
    subscribe_url: Option<String>,
    signature_version: String,
    signature: String,
    #[serde(rename = "SigningCertURL")]
    signing_cert_url: String,
}

impl Envelope {
    /// The string SNS signs: `Key\nValue\n` for the documented fields, in
    /// order; `Subject` only when present.
    fn canonical(&self) -> Result<String> {
        let confirmation = match self.kind.as_str() {
            "Notification" => false,
            "SubscriptionConfirmation" | "UnsubscribeConfirmation" => true,
            other => {
                let other: String = other.chars().take(40).collect();
                return Err(Error::invalid(
                    "SNS message",
                    format!("unknown Type {other:?}"),
                ));
            }
        };
        let missing =
            || Error::invalid("SNS message", "confirmation without SubscribeURL or Token");
        let mut fields: Vec<(&str, &str)> =
            vec![("Message", &self.message), ("MessageId", &self.message_id)];
        if confirmation {
            let url = self.subscribe_url.as_deref().ok_or_else(missing)?;
            fields.push(("SubscribeURL", url));
        } else if let Some(s) = &self.subject {
            fields.push(("Subject", s));
        }
        fields.push(("Timestamp", &self.timestamp));
        if confirmation {
            fields.push(("Token", self.token.as_deref().ok_or_else(missing)?));
        }
        fields.push(("TopicArn", &self.topic_arn));
        fields.push(("Type", &self.kind));
        Ok(join(&fields))
    }
}

fn join(fields: &[(&str, &str)]) -> String {
    fields.iter().map(|(k, v)| format!("{k}\n{v}\n")).collect()
}

fn unauthenticated(detail: impl Into<String>) -> Error {
    Error::Unauthenticated {
        detail: detail.into(),
    }
}

/// Checks that `url` is `https://sns.<region>.amazonaws.com[.cn]/…` (no
/// port, no credentials) and, when `pem`, that its path ends in `.pem`.
pub fn is_sns_url(url: &str, pem: bool) -> bool {
    let Ok(u) = Url::parse(url) else {
        return false;
    };
    let host_ok = u.host_str().is_some_and(|h| {
        let rest = h
            .strip_suffix(".amazonaws.com")
            .or_else(|| h.strip_suffix(".amazonaws.com.cn"));
        rest.and_then(|r| r.strip_prefix("sns."))
            .is_some_and(is_aws_region)
    });
    u.scheme() == "https"
        && host_ok
        && u.port().is_none()
        && u.username().is_empty()
        && u.password().is_none()
        && (!pem || (u.path().ends_with(".pem") && u.query().is_none()))
}

/// The RSA public key (PKCS#1 `RSAPublicKey` DER) of a PEM certificate.
pub fn rsa_public_key_from_pem(pem: &[u8]) -> Result<Vec<u8>> {
    let bad = |d: String| Error::invalid("SNS signing certificate", d);
    let text = std::str::from_utf8(pem).map_err(|_| bad("is not text".into()))?;
    let start = text
        .find("-----BEGIN CERTIFICATE-----")
        .ok_or_else(|| bad("has no BEGIN CERTIFICATE".into()))?;
    let body = &text[start + "-----BEGIN CERTIFICATE-----".len()..];
    let end = body
        .find("-----END CERTIFICATE-----")
        .ok_or_else(|| bad("has no END CERTIFICATE".into()))?;
    let b64: String = body[..end].chars().filter(|c| !c.is_whitespace()).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| bad(e.to_string()))?;
    let cert = x509_cert::Certificate::from_der(&der).map_err(|e| bad(e.to_string()))?;
    let spki = &cert.tbs_certificate.subject_public_key_info;
    if spki.algorithm.oid.to_string() != "1.2.840.113549.1.1.1" {
        return Err(bad("does not hold an RSA key".into()));
    }
    spki.subject_public_key
        .as_bytes()
        .map(<[u8]>::to_vec)
        .ok_or_else(|| bad("key bits are not whole bytes".into()))
}

/// Verifies an SNS signature (base64) over `canonical` with an RSA public key.
pub fn verify_signature(
    public_key: &[u8],
    version: &str,
    canonical: &str,
    signature_b64: &str,
) -> Result<()> {
    let alg: &'static dyn ring::signature::VerificationAlgorithm = match version {
        "1" => &ring::signature::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
        "2" => &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        other => {
            return Err(unauthenticated(format!(
                "unsupported SNS SignatureVersion {:?}",
                other.chars().take(8).collect::<String>()
            )))
        }
    };
    let sig = base64::engine::general_purpose::STANDARD
        .decode(signature_b64.trim())
        .map_err(|_| unauthenticated("SNS signature is not base64"))?;
    ring::signature::UnparsedPublicKey::new(alg, public_key)
        .verify(canonical.as_bytes(), &sig)
        .map_err(|_| unauthenticated("SNS signature does not verify"))
}

impl SnsAlertSource {
    /// A source with its own HTTP client (10 s timeout).
    pub fn new(config: SnsConfig) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        Self::with_client(config, http)
    }

    /// A source using `http` for certificates and confirmations.
    pub fn with_client(config: SnsConfig, http: reqwest::Client) -> Self {
        Self {
            config,
            http,
            keys: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    /// Where to GET an (already checked) SNS URL.
    fn fetch_url(&self, url: &str) -> Result<String> {
        match &self.config.fetch_base {
            None => Ok(url.to_string()),
            Some(base) => {
                let u = Url::parse(url).map_err(|e| Error::invalid("SNS URL", e.to_string()))?;
                let query = u.query().map(|q| format!("?{q}")).unwrap_or_default();
                Ok(format!("{}{}{query}", base.trim_end_matches('/'), u.path()))
            }
        }
    }

    async fn get(&self, url: &str, op: &'static str) -> Result<Vec<u8>> {
        let target = self.fetch_url(url)?;
        let response = self
            .http
            .get(&target)
            .send()
            .await
            .map_err(|e| Error::backend("aws-sns", op, true, e))?;
        let status = response.status();
        if !status.is_success() {
            return Err(Error::backend(
                "aws-sns",
                op,
                status.is_server_error() || status.as_u16() == 429,
                format!("HTTP {status}"),
            ));
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|e| Error::backend("aws-sns", op, true, e))?;
        Ok(bytes.to_vec())
    }

    async fn public_key(&self, cert_url: &str) -> Result<Arc<Vec<u8>>> {
        if let Some(k) = self.keys.lock().await.get(cert_url) {
            return Ok(k.clone());
        }
        let pem = self.get(cert_url, "fetch_signing_certificate").await?;
        let key = Arc::new(rsa_public_key_from_pem(&pem)?);
        let mut keys = self.keys.lock().await;
        if keys.len() >= MAX_CACHED_KEYS {
            keys.clear();
        }
        keys.insert(cert_url.to_string(), key.clone());
        Ok(key)
    }

    async fn authenticate(&self, m: &Envelope) -> Result<()> {
        if !is_sns_url(&m.signing_cert_url, true) {
            return Err(unauthenticated(
                "SigningCertURL is not https://sns.<region>.amazonaws.com/….pem",
            ));
        }
        let allowed = self
            .config
            .allowed_topic_arns
            .iter()
            .any(|t| match t.strip_suffix('*') {
                // A prefix must pin at least the account (arn:aws:sns:<region>:<account>:).
                Some(prefix) => prefix.split(':').count() >= 6 && m.topic_arn.starts_with(prefix),
                None => t == &m.topic_arn,
            });
        if !allowed {
            return Err(unauthenticated("SNS topic is not an allowed one"));
        }
        let canonical = m.canonical()?;
        let key = self.public_key(&m.signing_cert_url).await?;
        verify_signature(&key, &m.signature_version, &canonical, &m.signature)?;
        if let Some(max) = self.config.max_age {
            let at = DateTime::parse_from_rfc3339(&m.timestamp)
                .map_err(|_| Error::invalid("SNS message", "Timestamp is not RFC 3339"))?;
            let age = Utc::now().signed_duration_since(at.with_timezone(&Utc));
            if age.to_std().is_ok_and(|a| a > max) {
                return Err(unauthenticated("SNS message is too old (replay?)"));
            }
        }
        Ok(())
    }

    /// Maps a CloudWatch alarm state-change message (the SNS `Message`) to an
    /// alert: `ALARM` → firing, `OK` → resolved, `INSUFFICIENT_DATA` →
    /// `None`. Resource, type, profile and severity come from the
    /// `infraai` object the generator writes into the alarm description;
    /// alarms made elsewhere fall back to the metric's dimension.
    pub fn normalize_alarm(message: &str) -> Result<Option<Alert>> {
        let raw: Value = serde_json::from_str(message)
            .map_err(|e| Error::invalid("CloudWatch alarm message", e.to_string()))?;
        let a: AlarmMessage = serde_json::from_value(raw.clone())
            .map_err(|e| Error::invalid("CloudWatch alarm message", e.to_string()))?;
        let state = match a.new_state_value.as_str() {
            "ALARM" => AlertState::Firing,
            "OK" => AlertState::Resolved,
            "INSUFFICIENT_DATA" => return Ok(None),
            other => {
                return Err(Error::invalid(
                    "CloudWatch alarm message",
                    format!(
                        "unknown NewStateValue {:?}",
                        other.chars().take(40).collect::<String>()
                    ),
                ))
            }
        };
        let meta: Option<Meta> = a
            .alarm_description
            .as_deref()
            .and_then(|d| serde_json::from_str::<Described>(d).ok())
            .map(|d| d.infraai);
        let trigger = a.trigger.unwrap_or_default();
        let mut labels: BTreeMap<String, String> = trigger
            .dimensions
            .iter()
            .map(|d| (format!("dimension_{}", d.name), d.value.clone()))
            .collect();
        let dimension = |name: &str| {
            trigger
                .dimensions
                .iter()
                .find(|d| d.name == name)
                .map(|d| d.value.clone())
        };
        let (resource, resource_type) = match &meta {
            Some(m) => (m.resource.clone(), m.resource_type.clone()),
            None => [
                ("InstanceId", AWS_EC2_INSTANCE),
                ("AutoScalingGroupName", AWS_AUTOSCALING_GROUP),
                ("DBInstanceIdentifier", AWS_RDS_INSTANCE),
            ]
            .into_iter()
            .find_map(|(name, ty)| Some((dimension(name)?, ty.to_string())))
            .unwrap_or_else(|| (a.alarm_name.clone(), "aws_cloudwatch_alarm".to_string())),
        };
        let metric = meta.as_ref().map_or_else(
            || format!("{}/{}", trigger.namespace, trigger.metric_name),
            |m| m.metric.clone(),
        );
        let severity = meta.as_ref().map_or(Severity::Warning, |m| m.severity);
        if let Some(arn) = &a.alarm_arn {
            labels.insert("alarm_arn".into(), arn.clone());
        }
        if let Some(region) = &a.region {
            labels.insert("region".into(), region.clone());
        }
        if let Some(m) = &meta {
            labels.insert("profile".into(), m.profile.clone());
        }
        let mut fingerprint = String::new();
        let id = a.alarm_arn.clone().unwrap_or_else(|| a.alarm_name.clone());
        for c in "aws:".chars().chain(id.chars()) {
            if fingerprint.len() + c.len_utf8() > infraai_core::MAX_FINGERPRINT_LEN {
                break;
            }
            fingerprint.push(c);
        }
        let started_at = a
            .state_change_time
            .as_deref()
            .and_then(|t| DateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f%z").ok())
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(Utc::now);
        let alert = Alert {
            source: "aws-sns".into(),
            fingerprint,
            policy_name: a.alarm_name,
            resource,
            resource_type,
            cloud: "aws".into(),
            metric,
            value: a.new_state_reason.as_deref().and_then(datapoint),
            threshold: trigger.threshold.filter(|t| t.is_finite()),
            severity,
            state,
            started_at,
            labels,
            raw,
        };
        alert.validate()?;
        Ok(Some(alert))
    }
}

/// The first datapoint in a `NewStateReason` such as `… datapoints [95.5
/// (25/11/26 19:00:00)] was greater than …`.
fn datapoint(reason: &str) -> Option<f64> {
    let inside = reason.split_once('[')?.1;
    let token = inside.split([' ', ',', ']']).next()?;
    token.parse::<f64>().ok().filter(|v| v.is_finite())
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AlarmMessage {
    alarm_name: String,
    alarm_description: Option<String>,
    new_state_value: String,
    new_state_reason: Option<String>,
    state_change_time: Option<String>,
    region: Option<String>,
    alarm_arn: Option<String>,
    trigger: Option<Trigger>,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Trigger {
    #[serde(default)]
    metric_name: String,
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    dimensions: Vec<Dimension>,
    threshold: Option<f64>,
}

#[derive(Deserialize)]
struct Dimension {
    name: String,
    value: String,
}

#[derive(Deserialize)]
struct Described {
    infraai: Meta,
}

#[derive(Deserialize)]
struct Meta {
    resource: String,
    resource_type: String,
    profile: String,
    metric: String,
    severity: Severity,
}

#[async_trait]
impl AlertSource for SnsAlertSource {
    fn name(&self) -> &str {
        "aws-sns"
    }

    /// [`is_sns_delivery`].
    fn accepts(&self, request: &InboundRequest) -> bool {
        is_sns_delivery(request)
    }

    async fn receive(&self, request: &InboundRequest) -> Result<Vec<Alert>> {
        if let Some(auth) = &self.config.auth {
            auth.check(request)?;
        }
        let m: Envelope = serde_json::from_slice(&request.body)
            .map_err(|e| Error::invalid("SNS message", e.to_string()))?;
        if let Some(h) = request.header(MESSAGE_TYPE_HEADER) {
            if h != m.kind {
                return Err(Error::invalid(
                    "SNS message",
                    "x-amz-sns-message-type does not match Type",
                ));
            }
        }
        self.authenticate(&m).await?;
        match m.kind.as_str() {
            "SubscriptionConfirmation" => {
                let url = m.subscribe_url.as_deref().unwrap_or_default();
                if !is_sns_url(url, false) {
                    return Err(unauthenticated(
                        "SubscribeURL is not https://sns.<region>.amazonaws.com/…",
                    ));
                }
                if self.config.confirm_subscriptions {
                    self.get(url, "confirm_subscription").await?;
                    info!(topic = %m.topic_arn, "SNS subscription confirmed");
                } else {
                    warn!(topic = %m.topic_arn, "SNS subscription request not confirmed (confirmation is off)");
                }
                Ok(vec![])
            }
            "UnsubscribeConfirmation" => {
                warn!(topic = %m.topic_arn, "SNS subscription was removed");
                Ok(vec![])
            }
            _ => Ok(Self::normalize_alarm(&m.message)?.into_iter().collect()),
        }
    }

    /// Subscription confirmations and OK-less states record nothing.
    fn empty_delivery_note(&self) -> Option<&'static str> {
        Some("SNS message handled; no alert in it")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sns_url_pattern() {
        assert!(is_sns_url(
            "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
            true
        ));
        assert!(is_sns_url(
            "https://sns.cn-north-1.amazonaws.com.cn/x.pem",
            true
        ));
        for bad in [
            "http://sns.us-east-1.amazonaws.com/x.pem",
            "https://sns.us-east-1.amazonaws.com.evil.com/x.pem",
            "https://evil.com/sns.us-east-1.amazonaws.com/x.pem",
            "https://sns.us-east-1.amazonaws.com:8443/x.pem",
            "https://user@sns.us-east-1.amazonaws.com/x.pem",
            "https://sns.us-east-1.amazonaws.com/x.txt",
            "https://sqs.us-east-1.amazonaws.com/x.pem",
            "https://sns.evil.amazonaws.com/x.pem",
        ] {
            assert!(!is_sns_url(bad, true), "{bad}");
        }
        assert!(is_sns_url(
            "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&Token=x",
            false
        ));
    }

    #[test]
    fn datapoints_from_reasons() {
        assert_eq!(
            datapoint("Threshold Crossed: 1 datapoint [95.5 (25/11/26 19:00:00)] was greater"),
            Some(95.5)
        );
        assert_eq!(
            datapoint("Threshold Crossed: 2 datapoints [3.0 (x), 2.5 (y)] were"),
            Some(3.0)
        );
        assert_eq!(datapoint("no datapoints"), None);
    }
}
