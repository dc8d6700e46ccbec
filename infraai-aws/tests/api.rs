//! The EC2 and CloudWatch adapters against mock AWS endpoints: every request
//! is SigV4-signed (the test recomputes the signature from what the mock
//! received), reboot and security-group changes preview with `DryRun`,
//! errors map to the right kinds, and `GetMetricData` yields the latest
//! value or "no data" — never a made-up zero.

use infraai_aws::sigv4::{authorization, SigningRequest};
use infraai_aws::*;
use infraai_core::testing::{deployment_with, MemoryStore};
use infraai_core::*;
use infraai_terraform::{TerraformConfig, TerraformRunner};
use serde_json::json;
use std::sync::Arc;
use wiremock::matchers::{body_string_contains, header, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

fn creds() -> AwsCredentials {
    AwsCredentials {
        access_key_id: "AKIDTEST".into(),
        secret_access_key: Secret::new("test-secret-key"),
        session_token: None,
    }
}

fn api(server: &MockServer, service: &'static str) -> AwsApi {
    AwsApi::new(
        AwsApi::default_http(),
        creds(),
        ApiEndpoint {
            region: "us-east-1".into(),
            base_url: server.uri(),
        },
        service,
    )
    .unwrap()
}

/// Recomputes the SigV4 signature of a received request and compares.
fn assert_signed(req: &Request, service: &str) {
    let h = |name: &str| {
        req.headers
            .get(name)
            .unwrap_or_else(|| panic!("missing {name}"))
            .to_str()
            .unwrap()
            .to_string()
    };
    let auth = h("authorization");
    let date = h("x-amz-date");
    assert_eq!(date.len(), 16, "{date}");
    let prefix = format!(
        "AWS4-HMAC-SHA256 Credential=AKIDTEST/{}/us-east-1/{service}/aws4_request, SignedHeaders=",
        &date[..8]
    );
    assert!(auth.starts_with(&prefix), "{auth}");
    let signed: Vec<String> = auth
        .split("SignedHeaders=")
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .split(';')
        .map(str::to_string)
        .collect();
    assert!(signed.contains(&"host".to_string()) && signed.contains(&"x-amz-date".to_string()));
    let headers: Vec<(String, String)> = signed.iter().map(|k| (k.clone(), h(k))).collect();
    let expected = authorization(
        &creds(),
        &SigningRequest {
            method: "POST",
            path: "/",
            query: "",
            headers: &headers,
            payload: &req.body,
            region: "us-east-1",
            service,
        },
        &date,
    );
    assert_eq!(auth, expected, "signature must verify over what was sent");
    let sig = auth.rsplit("Signature=").next().unwrap();
    assert!(sig.len() == 64 && sig.bytes().all(|b| b.is_ascii_hexdigit()));
}

const INSTANCE: &str = "i-0abc123def4567890";
const GROUP: &str = "sg-0123456789abcdef0";

async fn store() -> Arc<MemoryStore> {
    let store = Arc::new(MemoryStore::new());
    let mut d = deployment_with("api", "t3.small");
    d.cloud = "aws".into();
    d.resources[0].resource_type = Some("aws_ec2_instance".into());
    d.outputs
        .insert(OUTPUT_INSTANCE_IDS.into(), json!({ "api": INSTANCE }));
    d.outputs.insert(
        OUTPUT_SECURITY_GROUP_IDS.into(),
        json!({ "api-firewall": GROUP }),
    );
    store.put_deployment(&d).await.unwrap();
    store
}

fn actions(server: &MockServer, store: Arc<MemoryStore>) -> AwsActions {
    let runner = Arc::new(TerraformRunner::new(TerraformConfig::new(
        std::env::temp_dir(),
    )));
    AwsActions::new(
        Ec2Client::new(api(server, "ec2")),
        runner,
        store,
        GuardrailConfig::default(),
    )
}

fn request(action: Action) -> ActionRequest {
    ActionRequest {
        incident_id: IncidentId::new(),
        deployment_id: None,
        resource: "api".into(),
        resource_type: "aws_ec2_instance".into(),
        action,
    }
}

const REBOOT_OK: &str = r#"<RebootInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>59dbff89-35bd-4eac-99ed-be587EXAMPLE</requestId><return>true</return></RebootInstancesResponse>"#;

fn ec2_error(code: &str) -> String {
    format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Errors><Error><Code>{code}</Code><Message>message of {code}</Message></Error></Errors><RequestID>r-1</RequestID></Response>")
}

#[tokio::test]
async fn reboot_is_signed_previewed_with_dry_run_and_executed() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/"))
        .and(body_string_contains("DryRun=true"))
        .respond_with(ResponseTemplate::new(412).set_body_string(ec2_error("DryRunOperation")))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/"))
        .and(header(
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8",
        ))
        .and(body_string_contains("Action=RebootInstances"))
        .and(body_string_contains(format!("InstanceId.1={INSTANCE}")))
        .respond_with(ResponseTemplate::new(200).set_body_string(REBOOT_OK))
        .expect(1)
        .mount(&server)
        .await;
    let a = actions(&server, store().await);
    let preview = a.preview(&request(Action::Restart {})).await.unwrap();
    assert!(preview.summary.contains(INSTANCE), "{}", preview.summary);
    assert!(preview.summary.contains("DryRun"));
    let report = a.execute(&request(Action::Restart {})).await.unwrap();
    assert_eq!(report.details["aws_id"], INSTANCE);
    assert_eq!(
        report.details["request_id"],
        "59dbff89-35bd-4eac-99ed-be587EXAMPLE"
    );
    let received = server.received_requests().await.unwrap();
    assert_eq!(received.len(), 2);
    for r in &received {
        assert_signed(r, "ec2");
        let body = String::from_utf8_lossy(&r.body);
        assert!(
            body.starts_with("Action=RebootInstances&Version=2016-11-15&"),
            "{body}"
        );
    }
}

#[tokio::test]
async fn ec2_errors_map_to_kinds() {
    for (status, code, check) in [
        (
            400,
            "InvalidInstanceID.NotFound",
            (|e: &Error| matches!(e, Error::NotFound { .. })) as fn(&Error) -> bool,
        ),
        (401, "AuthFailure", |e| {
            matches!(e, Error::Unauthenticated { .. })
        }),
        (403, "UnauthorizedOperation", |e| {
            matches!(e, Error::Forbidden { .. })
        }),
        (503, "RequestLimitExceeded", |e| e.is_retryable()),
        (400, "IncorrectState", |e| {
            matches!(e, Error::Backend { .. }) && !e.is_retryable()
        }),
    ] {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(status).set_body_string(ec2_error(code)))
            .mount(&server)
            .await;
        let err = actions(&server, store().await)
            .execute(&request(Action::Restart {}))
            .await
            .unwrap_err();
        assert!(check(&err), "{code}: {err:?}");
        assert!(!format!("{err:?}").contains("test-secret-key"));
    }
}

#[tokio::test]
async fn security_group_changes_stay_within_bounds() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(body_string_contains("Action=AuthorizeSecurityGroupIngress"))
        .and(body_string_contains(format!("GroupId={GROUP}")))
        .and(body_string_contains("IpPermissions.1.FromPort=8080"))
        .and(body_string_contains("IpPermissions.1.IpRanges.1.CidrIp=10.0.0.0%2F8"))
        .respond_with(ResponseTemplate::new(200).set_body_string(
            "<AuthorizeSecurityGroupIngressResponse><requestId>r-2</requestId><return>true</return></AuthorizeSecurityGroupIngressResponse>",
        ))
        .expect(1)
        .mount(&server)
        .await;
    let a = actions(&server, store().await);
    let change = |port: u16, range: &str| Action::ModifyFirewall {
        change: FirewallChange {
            rule: ResourceName::new("api-firewall").unwrap(),
            allow: true,
            protocol: Protocol::Tcp,
            ports: vec![port],
            source_ranges: vec![range.parse().unwrap()],
        },
    };
    let report = a
        .execute(&request(change(8080, "10.0.0.0/8")))
        .await
        .unwrap();
    assert_eq!(report.details["aws_id"], GROUP);
    // SSH to the world is refused here too, before any call.
    let refused = a
        .execute(&request(change(22, "0.0.0.0/0")))
        .await
        .unwrap_err();
    assert!(matches!(refused, Error::Forbidden { .. }), "{refused:?}");
    // A scale-up of an RDS instance is not something this handler does.
    let mut db = request(Action::Restart {});
    db.resource_type = "aws_rds_instance".into();
    assert!(matches!(
        a.execute(&db).await,
        Err(Error::NotSupported { .. })
    ));
    for r in server.received_requests().await.unwrap() {
        assert_signed(&r, "ec2");
    }
}

fn metric_query(resource: &str) -> MetricQuery {
    MetricQuery {
        resource: resource.into(),
        resource_type: "aws_ec2_instance".into(),
        metric: "AWS/EC2/CPUUtilization".into(),
        lookback_secs: 300,
    }
}

#[tokio::test]
async fn get_metric_data_gives_the_latest_value_and_no_data_is_not_zero() {
    let server = MockServer::start().await;
    let now = chrono::Utc::now().timestamp() as f64;
    Mock::given(method("POST"))
        .and(path("/"))
        .and(header(
            "x-amz-target",
            "GraniteServiceVersion20100801.GetMetricData",
        ))
        .and(header("content-type", "application/x-amz-json-1.0"))
        .and(body_string_contains(INSTANCE))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "MetricDataResults": [{
                "Id": "m1", "Label": "CPUUtilization", "StatusCode": "Complete",
                "Timestamps": [now - 60.0, now - 120.0],
                "Values": [35.5, 91.0]
            }],
            "Messages": []
        })))
        .expect(2)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(body_string_contains("i-0empty"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "MetricDataResults": [{"Id": "m1", "Label": "CPUUtilization", "StatusCode": "Complete", "Timestamps": [], "Values": []}],
            "Messages": []
        })))
        .mount(&server)
        .await;
    let metrics = CloudWatchMetrics::new(api(&server, "monitoring"), store().await);
    let sample = metrics.current_value(&metric_query("api")).await.unwrap();
    assert_eq!(sample.value, 35.5);
    assert!((sample.at.timestamp() as f64 - (now - 60.0)).abs() < 1.0);
    // An id that is no plan name (an alarm made outside infraai) is used as it is.
    let none = metrics
        .current_value(&metric_query("i-0empty"))
        .await
        .unwrap_err();
    assert!(matches!(none, Error::NotFound { .. }), "{none:?}");
    // The history is the same call over the window, oldest first.
    let to = chrono::Utc::now();
    let from = to - chrono::Duration::minutes(30);
    let history = metrics
        .history(&metric_query("api"), from, to)
        .await
        .unwrap();
    assert_eq!(
        history.iter().map(|s| s.value).collect::<Vec<_>>(),
        [91.0, 35.5]
    );
    let received = server.received_requests().await.unwrap();
    let window: serde_json::Value = serde_json::from_slice(&received[2].body).unwrap();
    assert_eq!(window["StartTime"], from.timestamp());
    assert_eq!(window["EndTime"], to.timestamp());
    let body: serde_json::Value = serde_json::from_slice(&received[0].body).unwrap();
    let stat = &body["MetricDataQueries"][0]["MetricStat"];
    assert_eq!(stat["Metric"]["Namespace"], "AWS/EC2");
    assert_eq!(
        stat["Metric"]["Dimensions"][0],
        json!({"Name": "InstanceId", "Value": INSTANCE})
    );
    assert_eq!(body["ScanBy"], "TimestampDescending");
    for r in &received {
        assert_signed(r, "monitoring");
    }
}

#[tokio::test]
async fn cloudwatch_errors_map_to_kinds() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "__type": "com.amazonaws.cloudwatch#ThrottlingException", "message": "Rate exceeded"
        })))
        .mount(&server)
        .await;
    let metrics = CloudWatchMetrics::new(api(&server, "monitoring"), store().await);
    let err = metrics
        .current_value(&metric_query("api"))
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
}
