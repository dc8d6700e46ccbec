//! The core ops loop with the AWS adapters plugged in, AWS mocked: a signed
//! SNS delivery of a CloudWatch ALARM → the SNS source → incident → rule
//! decision (reboot) → guardrails ask a human (critical) with an EC2 DryRun
//! preview → approval → `RebootInstances` through `AwsActions` → CloudWatch
//! `GetMetricData` re-check → resolved; then the OK notification arrives.

use base64::Engine;
use infraai_aws::*;
use infraai_core::testing::{deployment_with, MemoryStore, RecordingApprover};
use infraai_core::*;
use infraai_terraform::{TerraformConfig, TerraformRunner};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use wiremock::matchers::{body_string_contains, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:infraai-alerts-1";
const INSTANCE: &str = "i-0abc123def4567890";

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn signed_notification(state: &str, n: u32) -> InboundRequest {
    let alarm = json!({
        "AlarmName": "infraai-api-instance_unhealthy-abcd1234",
        "AlarmDescription": json!({"infraai": {
            "resource": "api", "resource_type": "aws_ec2_instance", "profile": "instance_unhealthy",
            "metric": "AWS/EC2/StatusCheckFailed", "severity": "critical"}}).to_string(),
        "NewStateValue": state,
        "NewStateReason": "Threshold Crossed: 2 out of the last 2 datapoints [1.0 (25/11/26 19:00:00), 1.0 (25/11/26 18:59:00)] was greater than the threshold (0.0).",
        "StateChangeTime": "2026-11-25T19:01:00.000+0000",
        "AlarmArn": "arn:aws:cloudwatch:us-east-1:123456789012:alarm:infraai-api-instance_unhealthy-abcd1234",
        "Trigger": {"MetricName": "StatusCheckFailed", "Namespace": "AWS/EC2",
            "Dimensions": [{"name": "InstanceId", "value": INSTANCE}], "Threshold": 0.0}
    });
    let mut m = json!({
        "Type": "Notification",
        "MessageId": format!("msg-{n}"),
        "TopicArn": TOPIC,
        "Message": alarm.to_string(),
        "Timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "SignatureVersion": "2",
        "SigningCertURL": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-test.pem",
    });
    let canonical: String = ["Message", "MessageId", "Timestamp", "TopicArn", "Type"]
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
    m["Signature"] = Value::String(base64::engine::general_purpose::STANDARD.encode(sig));
    InboundRequest {
        headers: BTreeMap::from([("x-amz-sns-message-type".into(), "Notification".into())]),
        body: serde_json::to_vec(&m).unwrap(),
        ..Default::default()
    }
}

#[tokio::test]
async fn sns_alarm_to_approved_reboot_to_resolved() {
    let aws = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/SimpleNotificationService-test.pem"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(fixture("sns-cert.pem")))
        .mount(&aws)
        .await;
    Mock::given(method("POST"))
        .and(body_string_contains("Action=RebootInstances"))
        .and(body_string_contains("DryRun=true"))
        .respond_with(ResponseTemplate::new(412).set_body_string(
            "<Response><Errors><Error><Code>DryRunOperation</Code><Message>Request would have succeeded, but DryRun flag is set.</Message></Error></Errors></Response>",
        ))
        .expect(1)
        .mount(&aws)
        .await;
    Mock::given(method("POST"))
        .and(body_string_contains("Action=RebootInstances"))
        .respond_with(ResponseTemplate::new(200).set_body_string(
            "<RebootInstancesResponse><requestId>req-reboot</requestId><return>true</return></RebootInstancesResponse>",
        ))
        .expect(1)
        .mount(&aws)
        .await;
    let now = chrono::Utc::now().timestamp();
    Mock::given(method("POST"))
        .and(header("x-amz-target", "GraniteServiceVersion20100801.GetMetricData"))
        .and(body_string_contains("StatusCheckFailed"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "MetricDataResults": [{"Id": "m1", "StatusCode": "Complete", "Timestamps": [now - 30], "Values": [0.0]}]
        })))
        .expect(1)
        .mount(&aws)
        .await;

    // The deployment as the deploy loop stores it for AWS.
    let store = Arc::new(MemoryStore::new());
    let mut d = deployment_with("api", "t3.small");
    d.cloud = "aws".into();
    d.resources[0].resource_type = Some("aws_ec2_instance".into());
    d.outputs
        .insert(OUTPUT_INSTANCE_IDS.into(), json!({ "api": INSTANCE }));
    store.put_deployment(&d).await.unwrap();

    let endpoint = ApiEndpoint {
        region: "us-east-1".into(),
        base_url: aws.uri(),
    };
    let creds = AwsCredentials {
        access_key_id: "AKIDTEST".into(),
        secret_access_key: Secret::new("test-secret"),
        session_token: None,
    };
    let http = AwsApi::default_http();
    let mut sns_config = SnsConfig::new(vec![TOPIC.into()]);
    sns_config.fetch_base = Some(aws.uri());
    let source = SnsAlertSource::new(sns_config);
    let guardrails = ladder::guardrails(GuardrailConfig::default());
    let actions = Arc::new(AwsActions::new(
        Ec2Client::new(AwsApi::new(http.clone(), creds.clone(), endpoint.clone(), "ec2").unwrap()),
        Arc::new(TerraformRunner::new(TerraformConfig::new(
            std::env::temp_dir(),
        ))),
        store.clone(),
        guardrails.clone(),
    ));
    let metrics = Arc::new(CloudWatchMetrics::new(
        AwsApi::new(http, creds, endpoint, "monitoring").unwrap(),
        store.clone(),
    ));
    let mut registry = MetricProfileRegistry::empty();
    register_profiles(&mut registry);
    let approver = Arc::new(RecordingApprover::default());
    let agent = OpsAgent::new(
        OpsDeps {
            store: store.clone(),
            policy: Arc::new(rules::RulePolicy),
            notifier: approver.clone(),
            actions,
            metrics,
            registry: Arc::new(registry),
        },
        Guardrails::new(guardrails),
        OpsConfig {
            feedback_delay: Duration::from_millis(10),
            ..OpsConfig::default()
        },
    );

    // Alert → decision → a human is asked, with the DryRun preview.
    let alerts = source
        .receive(&signed_notification("ALARM", 1))
        .await
        .unwrap();
    assert_eq!(alerts.len(), 1);
    let handled = agent.handle_alert(&alerts[0]).await.unwrap();
    assert_eq!(handled.outcome, IngestOutcome::Opened);
    let incident = handled.incident.unwrap();
    assert_eq!(
        incident.status,
        IncidentStatus::Pending,
        "{:?}",
        incident.guardrail_notes
    );
    assert_eq!(
        incident.decision.as_ref().unwrap().recommended_action,
        Action::Restart {}
    );
    let requests = approver.requests();
    assert_eq!(requests.len(), 1);
    let preview = requests[0].preview.as_ref().expect("a preview");
    assert!(
        preview.summary.contains(INSTANCE) && preview.summary.contains("DryRun"),
        "{}",
        preview.summary
    );

    // Approve → reboot → re-check reads 0 → resolved.
    let outcome = agent
        .handle_command(&HumanReply::new(
            HumanCommand::Approve {
                incident_id: incident.id,
            },
            Actor::new("web", "alice"),
        ))
        .await
        .unwrap();
    assert!(outcome.effective);
    let after = outcome.incident.unwrap();
    assert_eq!(after.status, IncidentStatus::Resolved, "{:?}", after.note);
    let actions = store.list_actions(incident.id).await.unwrap();
    assert_eq!(actions.len(), 1);
    assert!(actions[0].success);

    // The alarm's OK notification changes nothing more.
    let ok = source.receive(&signed_notification("OK", 2)).await.unwrap();
    assert_eq!(ok[0].state, AlertState::Resolved);
    assert_eq!(ok[0].fingerprint, alerts[0].fingerprint);
    let closed = agent.handle_alert(&ok[0]).await.unwrap();
    assert_ne!(closed.outcome, IngestOutcome::Opened);
    let reboots = aws
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| {
            String::from_utf8_lossy(&r.body).contains("RebootInstances")
                && !String::from_utf8_lossy(&r.body).contains("DryRun")
        })
        .count();
    assert_eq!(reboots, 1, "exactly one reboot");
}
