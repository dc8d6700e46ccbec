//! SNS deliveries: signature verification (v1 fixture signed by openssl,
//! v2 signed here with ring), certificate URL restrictions, subscription
//! confirmation and CloudWatch alarm normalization. The signing certificate
//! is served by a mock standing in for sns.<region>.amazonaws.com.

use infraai_aws::{SnsAlertSource, SnsConfig};
use infraai_core::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:infraai-alerts-1";
const CERT_URL: &str = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-test.pem";
const CERT_PATH: &str = "/SimpleNotificationService-test.pem";

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

async fn serve_cert(server: &MockServer, cert: &str, times: u64) {
    Mock::given(method("GET"))
        .and(path(CERT_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(fixture(cert)))
        .expect(times)
        .mount(server)
        .await;
}

fn source(server: &MockServer, max_age: bool) -> SnsAlertSource {
    let mut config = SnsConfig::new(vec![TOPIC.into()]);
    config.fetch_base = Some(server.uri());
    if !max_age {
        config.max_age = None;
    }
    SnsAlertSource::new(config)
}

fn request(body: &Value) -> InboundRequest {
    InboundRequest {
        headers: BTreeMap::from([(
            "x-amz-sns-message-type".to_string(),
            body["Type"].as_str().unwrap_or_default().to_string(),
        )]),
        body: serde_json::to_vec(body).unwrap(),
        ..Default::default()
    }
}

/// Signs `message` as SNS SignatureVersion 2 (SHA256withRSA) with the test key.
fn sign_v2(mut m: Value) -> Value {
    let fields: &[&str] = match m["Type"].as_str().unwrap() {
        "Notification" if m.get("Subject").is_some() => &[
            "Message",
            "MessageId",
            "Subject",
            "Timestamp",
            "TopicArn",
            "Type",
        ],
        "Notification" => &["Message", "MessageId", "Timestamp", "TopicArn", "Type"],
        _ => &[
            "Message",
            "MessageId",
            "SubscribeURL",
            "Timestamp",
            "Token",
            "TopicArn",
            "Type",
        ],
    };
    let canonical: String = fields
        .iter()
        .map(|k| format!("{k}\n{}\n", m[*k].as_str().unwrap()))
        .collect();
    let key = ring::signature::RsaKeyPair::from_pkcs8(&fixture("sns-key.pk8")).unwrap();
    let mut sig = vec![0; key.public().modulus_len()];
    key.sign(
        &ring::signature::RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        canonical.as_bytes(),
        &mut sig,
    )
    .unwrap();
    use base64::Engine;
    m["SignatureVersion"] = json!("2");
    m["Signature"] = json!(base64::engine::general_purpose::STANDARD.encode(sig));
    m
}

fn alarm_message(state: &str, with_meta: bool) -> String {
    let mut alarm = json!({
        "AlarmName": "infraai-api-cpu_high-abcd1234",
        "AWSAccountId": "123456789012",
        "NewStateValue": state,
        "NewStateReason": "Threshold Crossed: 1 out of the last 1 datapoints [12.25 (25/11/26 19:05:00)] was not greater than the threshold (80.0).",
        "StateChangeTime": "2026-11-25T19:05:00.000+0000",
        "Region": "US East (N. Virginia)",
        "AlarmArn": "arn:aws:cloudwatch:us-east-1:123456789012:alarm:infraai-api-cpu_high-abcd1234",
        "OldStateValue": "ALARM",
        "Trigger": {
            "MetricName": "CPUUtilization",
            "Namespace": "AWS/EC2",
            "Statistic": "AVERAGE",
            "Dimensions": [{"value": "i-0abc123def4567890", "name": "InstanceId"}],
            "Period": 60,
            "EvaluationPeriods": 1,
            "ComparisonOperator": "GreaterThanThreshold",
            "Threshold": 80.0
        }
    });
    if with_meta {
        alarm["AlarmDescription"] = json!(json!({"infraai": {
            "resource": "api", "resource_type": "aws_ec2_instance", "profile": "cpu_high",
            "metric": "AWS/EC2/CPUUtilization", "severity": "critical"}})
        .to_string());
    }
    alarm.to_string()
}

fn notification(message: String) -> Value {
    sign_v2(json!({
        "Type": "Notification",
        "MessageId": uuid(),
        "TopicArn": TOPIC,
        "Subject": "ALARM or OK",
        "Message": message,
        "Timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "SigningCertURL": CERT_URL,
        "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe"
    }))
}

/// A fresh message id.
fn uuid() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{nanos:032x}")
}

fn is_unauthenticated(r: Result<Vec<Alert>>) -> bool {
    matches!(r, Err(Error::Unauthenticated { .. }))
}

#[tokio::test]
async fn signature_version_1_fixture_verifies_and_normalizes() {
    let server = MockServer::start().await;
    // Fetched once, then cached.
    serve_cert(&server, "sns-cert.pem", 1).await;
    let src = source(&server, false);
    let body: Value = serde_json::from_slice(&fixture("sns-notification-v1.json")).unwrap();
    let alerts = src.receive(&request(&body)).await.unwrap();
    assert_eq!(alerts.len(), 1);
    let a = &alerts[0];
    assert_eq!(a.state, AlertState::Firing);
    assert_eq!(a.resource, "api");
    assert_eq!(a.resource_type, "aws_ec2_instance");
    assert_eq!(a.cloud, "aws");
    assert_eq!(a.metric, "AWS/EC2/CPUUtilization");
    assert_eq!(a.severity, Severity::Critical);
    assert_eq!(a.value, Some(95.5));
    assert_eq!(a.threshold, Some(80.0));
    assert_eq!(
        a.fingerprint,
        "aws:arn:aws:cloudwatch:us-east-1:123456789012:alarm:infraai-api-cpu_high-abcd1234"
    );
    assert_eq!(a.labels["dimension_InstanceId"], "i-0abc123def4567890");
    assert_eq!(a.policy_name, "infraai-api-cpu_high-abcd1234");
    // Again: the key comes from the cache (the mock expects one fetch).
    assert_eq!(src.receive(&request(&body)).await.unwrap().len(), 1);

    // Tampered: the same signature over a changed message.
    let mut tampered = body.clone();
    tampered["Message"] = json!(body["Message"].as_str().unwrap().replace("95.5", "99.5"));
    assert!(is_unauthenticated(src.receive(&request(&tampered)).await));
    let mut tampered = body.clone();
    tampered["Subject"] = json!("OK: nothing to see");
    assert!(is_unauthenticated(src.receive(&request(&tampered)).await));
}

#[tokio::test]
async fn wrong_certificate_host_or_key_or_topic_is_refused_without_fetching() {
    let server = MockServer::start().await;
    serve_cert(&server, "sns-cert.pem", 0).await;
    let src = source(&server, false);
    let body: Value = serde_json::from_slice(&fixture("sns-notification-v1.json")).unwrap();
    for url in [
        "https://evil.example.com/SimpleNotificationService-test.pem",
        "https://sns.us-east-1.amazonaws.com.evil.example.com/SimpleNotificationService-test.pem",
        "http://sns.us-east-1.amazonaws.com/SimpleNotificationService-test.pem",
    ] {
        let mut m = body.clone();
        m["SigningCertURL"] = json!(url);
        assert!(is_unauthenticated(src.receive(&request(&m)).await), "{url}");
    }
    let mut m = body.clone();
    m["TopicArn"] = json!("arn:aws:sns:us-east-1:999999999999:someone-elses-topic");
    assert!(is_unauthenticated(src.receive(&request(&m)).await));
    // A prefix entry: our account's infraai topics only; a bare `*` allows nothing.
    let bare = MockServer::start().await;
    for (allowed, topic, ok) in [
        (
            "arn:aws:sns:us-east-1:123456789012:infraai-alerts-*",
            TOPIC,
            true,
        ),
        (
            "arn:aws:sns:us-east-1:123456789012:infraai-alerts-*",
            "arn:aws:sns:us-east-1:999999999999:infraai-alerts-1",
            false,
        ),
        ("*", TOPIC, false),
        ("arn:aws:sns:*", TOPIC, false),
    ] {
        let mut config = SnsConfig::new(vec![allowed.into()]);
        config.fetch_base = Some(bare.uri());
        config.max_age = None;
        let src = SnsAlertSource::new(config);
        let mut m = body.clone();
        m["TopicArn"] = json!(topic);
        // The topic is checked before the certificate is fetched; an allowed
        // topic fails later here (`bare` serves no certificate).
        let refused_as_topic = matches!(
            src.receive(&request(&m)).await,
            Err(Error::Unauthenticated { ref detail }) if detail.contains("topic")
        );
        assert_eq!(refused_as_topic, !ok, "{allowed} {topic}");
    }
}

#[tokio::test]
async fn a_certificate_of_another_key_does_not_verify() {
    let server = MockServer::start().await;
    serve_cert(&server, "other-cert.pem", 1).await;
    let src = source(&server, false);
    let body: Value = serde_json::from_slice(&fixture("sns-notification-v1.json")).unwrap();
    assert!(is_unauthenticated(src.receive(&request(&body)).await));
    // v2 as well.
    let m = notification(alarm_message("ALARM", true));
    assert!(is_unauthenticated(src.receive(&request(&m)).await));
}

#[tokio::test]
async fn signature_version_2_alarm_ok_and_insufficient_data() {
    let server = MockServer::start().await;
    serve_cert(&server, "sns-cert.pem", 1).await;
    let src = source(&server, true);
    let firing = src
        .receive(&request(&notification(alarm_message("ALARM", true))))
        .await
        .unwrap();
    let resolved = src
        .receive(&request(&notification(alarm_message("OK", true))))
        .await
        .unwrap();
    assert_eq!(firing[0].state, AlertState::Firing);
    assert_eq!(resolved[0].state, AlertState::Resolved);
    assert_eq!(firing[0].fingerprint, resolved[0].fingerprint);
    assert_eq!(resolved[0].value, Some(12.25));
    let none = src
        .receive(&request(&notification(alarm_message(
            "INSUFFICIENT_DATA",
            true,
        ))))
        .await
        .unwrap();
    assert!(none.is_empty());

    // An alarm made outside infraai: the resource is the dimension.
    let foreign = src
        .receive(&request(&notification(alarm_message("ALARM", false))))
        .await
        .unwrap();
    assert_eq!(foreign[0].resource, "i-0abc123def4567890");
    assert_eq!(foreign[0].resource_type, "aws_ec2_instance");
    assert_eq!(foreign[0].severity, Severity::Warning);

    // Old messages are refused (replays), even when correctly signed.
    let mut old = json!({
        "Type": "Notification", "MessageId": "m-old", "TopicArn": TOPIC,
        "Message": alarm_message("ALARM", true), "Timestamp": "2020-01-01T00:00:00.000Z",
        "SigningCertURL": CERT_URL,
    });
    old = sign_v2(old);
    assert!(is_unauthenticated(src.receive(&request(&old)).await));

    // Garbage is a clear error, not a panic.
    let bad = InboundRequest {
        body: b"{not json".to_vec(),
        ..Default::default()
    };
    assert!(matches!(
        src.receive(&bad).await,
        Err(Error::Invalid { .. })
    ));
}

#[tokio::test]
async fn subscription_is_confirmed_only_when_signed_and_on_the_sns_host() {
    let server = MockServer::start().await;
    serve_cert(&server, "sns-cert.pem", 1).await;
    Mock::given(method("GET"))
        .and(path("/"))
        .and(query_param("Action", "ConfirmSubscription"))
        .and(query_param("Token", "tok-1"))
        .respond_with(ResponseTemplate::new(200).set_body_string("<ConfirmSubscriptionResponse/>"))
        .expect(1)
        .mount(&server)
        .await;
    let src = source(&server, true);
    let confirmation = |url: &str| {
        sign_v2(json!({
            "Type": "SubscriptionConfirmation",
            "MessageId": "c-1",
            "Token": "tok-1",
            "TopicArn": TOPIC,
            "Message": "You have chosen to subscribe to the topic ...",
            "SubscribeURL": url,
            "Timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "SigningCertURL": CERT_URL,
        }))
    };
    let good = confirmation(&format!(
        "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn={TOPIC}&Token=tok-1"
    ));
    assert!(src.receive(&request(&good)).await.unwrap().is_empty());

    // Tampered SubscribeURL: the signature breaks, nothing is fetched.
    let mut tampered = good.clone();
    tampered["SubscribeURL"] =
        json!("https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&Token=tok-1&x=1");
    assert!(is_unauthenticated(src.receive(&request(&tampered)).await));
    // Signed but pointing elsewhere: refused, nothing is fetched.
    let elsewhere =
        confirmation("https://attacker.example.com/?Action=ConfirmSubscription&Token=tok-1");
    assert!(is_unauthenticated(src.receive(&request(&elsewhere)).await));
    // The mock verifies on drop: exactly one confirmation GET.
}
