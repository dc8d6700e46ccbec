//! An AWS API emulator for the tests: PyPI's moto in server mode
//! (`INFRAAI_MOTO_SERVER`, installed by scripts/test-all.sh) on a free
//! loopback port, stopped when dropped.

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{json, Value};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running moto server.
pub struct Moto {
    child: Child,
    /// Its base URL, e.g. `http://127.0.0.1:40123`.
    pub url: String,
}

impl Moto {
    /// Starts moto; `None` (after saying why) when `INFRAAI_MOTO_SERVER` is
    /// not set, a failure under `INFRAAI_REQUIRE_SERVICES=1`.
    pub fn start(test: &str) -> Option<Moto> {
        let Some(bin) = std::env::var_os("INFRAAI_MOTO_SERVER") else {
            let reason =
                "INFRAAI_MOTO_SERVER is not set (scripts/test-all.sh installs moto and sets it)";
            if std::env::var("INFRAAI_REQUIRE_SERVICES").as_deref() == Ok("1") {
                panic!("{test}: {reason}, but INFRAAI_REQUIRE_SERVICES=1");
            }
            eprintln!("skipping {test}: {reason}");
            return None;
        };
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
            l.local_addr().expect("its address").port()
        };
        let child = Command::new(bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server");
        let moto = Moto {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto did not listen within 30 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(moto)
    }
}

impl Moto {
    /// Our signed client of `service` (`ec2`, `monitoring`) pointed at the
    /// emulator, with test credentials.
    pub fn api(&self, service: &'static str) -> infraai_aws::AwsApi {
        let credentials = infraai_aws::AwsCredentials {
            access_key_id: "test".into(),
            secret_access_key: infraai_core::Secret::new("test"),
            session_token: None,
        };
        let endpoint = infraai_aws::ApiEndpoint {
            region: "us-east-1".into(),
            base_url: self.url.clone(),
        };
        let http = infraai_aws::AwsApi::default_http();
        infraai_aws::AwsApi::new(http, credentials, endpoint, service).expect("a client")
    }

    /// Calls a Query API action of `service` (`ec2`, `monitoring`, `sns`,
    /// `rds`) at `version` on the emulator, unsigned but for a credential
    /// scope (from which moto reads the service and region): the XML answer.
    pub async fn query(
        &self,
        service: &str,
        version: &str,
        action: &str,
        params: &[(&str, &str)],
    ) -> String {
        let mut form = vec![("Action", action), ("Version", version)];
        form.extend_from_slice(params);
        let auth = scope(service);
        let r = reqwest::Client::new()
            .post(format!("{}/", self.url))
            .header("authorization", auth)
            .form(&form)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{action}: {e}"));
        let ok = r.status().is_success();
        let xml = r.text().await.expect("an answer");
        assert!(ok, "{action}: {xml}");
        xml
    }

    /// GETs `path` of `service` on the emulator (unsigned but for a
    /// credential scope, from which moto reads the service): the body.
    pub async fn get(&self, service: &str, path: &str) -> Vec<u8> {
        let r = reqwest::Client::new()
            .get(format!("{}{path}", self.url))
            .header("authorization", scope(service))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        assert!(r.status().is_success(), "GET {path}: {}", r.status());
        r.bytes().await.expect("a body").to_vec()
    }

    /// Calls a JSON API action (`GraniteServiceVersion20100801.<action>`
    /// for CloudWatch) on the emulator, unsigned but for a credential scope:
    /// the JSON answer.
    pub async fn json(&self, service: &str, target: &str, input: &Value) -> Value {
        let auth = scope(service);
        let r = reqwest::Client::new()
            .post(format!("{}/", self.url))
            .header("authorization", auth)
            .header("x-amz-target", target)
            .header("content-type", "application/x-amz-json-1.0")
            .body(input.to_string())
            .send()
            .await
            .unwrap_or_else(|e| panic!("{target}: {e}"));
        let ok = r.status().is_success();
        let text = r.text().await.expect("an answer");
        assert!(ok, "{target}: {text}");
        if text.is_empty() {
            return Value::Null;
        }
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{target}: {e}: {text}"))
    }

    async fn cloudwatch(&self, action: &str, input: Value) -> Value {
        let target = format!("GraniteServiceVersion20100801.{action}");
        self.json("monitoring", &target, &input).await
    }

    /// Puts one datapoint of `namespace`/`metric` for the dimension
    /// `(name, value)` at `at`.
    pub async fn put_metric(
        &self,
        (namespace, metric): (&str, &str),
        (name, value): (&str, &str),
        datapoint: f64,
        at: DateTime<Utc>,
    ) {
        let input = json!({"Namespace": namespace, "MetricData": [{
            "MetricName": metric,
            "Dimensions": [{"Name": name, "Value": value}],
            "Timestamp": at.timestamp(),
            "Value": datapoint,
        }]});
        self.cloudwatch("PutMetricData", input).await;
    }

    /// The metric alarms the emulator holds.
    pub async fn alarms(&self) -> Vec<Value> {
        let answer = self.cloudwatch("DescribeAlarms", json!({})).await;
        answer["MetricAlarms"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// What CloudWatch does on its own and moto does not: evaluates the
    /// alarm `name` over its metric's latest `EvaluationPeriods` periods,
    /// and when its state changes, sets it (`SetAlarmState`) and publishes
    /// the alarm message CloudWatch sends to the alarm's (or OK) actions
    /// with SNS `Publish`; moto then delivers it to the subscriptions,
    /// signed. The new state.
    pub async fn evaluate_alarm(&self, name: &str) -> String {
        let alarm = (self.alarms().await.into_iter())
            .find(|a| a["AlarmName"] == name)
            .unwrap_or_else(|| panic!("no alarm {name}"));
        let text = |k: &str| alarm[k].as_str().unwrap_or_default().to_string();
        let number = |k: &str| alarm[k].as_f64().unwrap_or_else(|| panic!("{k}: {alarm}"));
        let (period, periods) = (number("Period"), number("EvaluationPeriods"));
        let statistic = text("Statistic");
        let now = Utc::now().timestamp();
        let stats = self
            .cloudwatch(
                "GetMetricStatistics",
                json!({
                    "Namespace": text("Namespace"), "MetricName": text("MetricName"),
                    "Dimensions": alarm["Dimensions"],
                    "StartTime": now - (period * (periods + 5.0)) as i64, "EndTime": now + 60,
                    "Period": period, "Statistics": [statistic],
                }),
            )
            .await;
        let mut points: Vec<(f64, f64)> = (stats["Datapoints"].as_array().into_iter().flatten())
            .map(|p| {
                (
                    epoch(&p["Timestamp"]),
                    p[&statistic].as_f64().expect("a value"),
                )
            })
            .collect();
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        let latest = &points[points.len().saturating_sub(periods as usize)..];
        let threshold = number("Threshold");
        assert_eq!(
            text("ComparisonOperator"),
            "GreaterThanThreshold",
            "{alarm}"
        );
        let breaching = latest.len() == periods as usize && latest.iter().all(|p| p.1 > threshold);
        let (state, actions) = match breaching {
            true => ("ALARM", "AlarmActions"),
            false => ("OK", "OKActions"),
        };
        let old = text("StateValue");
        if old == state {
            return old;
        }
        let shown: Vec<String> = (latest.iter().rev())
            .map(|(at, v)| format!("{v:?} ({})", minute(*at)))
            .collect();
        let reason = format!(
            "Threshold Crossed: {n} out of the last {n} datapoints [{}] was {}greater than the threshold ({threshold:?}).",
            shown.join(", "),
            if breaching { "" } else { "not " },
            n = latest.len(),
        );
        self.cloudwatch(
            "SetAlarmState",
            json!({"AlarmName": name, "StateValue": state, "StateReason": reason}),
        )
        .await;
        let message = json!({
            "AlarmName": name, "AlarmDescription": alarm["AlarmDescription"],
            "AWSAccountId": "123456789012", "NewStateValue": state, "NewStateReason": reason,
            "StateChangeTime": Utc::now().format("%Y-%m-%dT%H:%M:%S%.3f%z").to_string(),
            "Region": "US East (N. Virginia)", "AlarmArn": alarm["AlarmArn"], "OldStateValue": old,
            "Trigger": {
                "MetricName": alarm["MetricName"], "Namespace": alarm["Namespace"],
                "StatisticType": "Statistic", "Statistic": statistic.to_uppercase(),
                "Dimensions": (alarm["Dimensions"].as_array().into_iter().flatten())
                    .map(|d| json!({"value": d["Value"], "name": d["Name"]}))
                    .collect::<Vec<_>>(),
                "Period": period, "EvaluationPeriods": periods,
                "ComparisonOperator": "GreaterThanThreshold", "Threshold": threshold,
                "TreatMissingData": "missing",
            },
        })
        .to_string();
        for topic in alarm[actions].as_array().into_iter().flatten() {
            // No Subject: moto signs a notification without it (real SNS
            // signs the Subject too, and our verifier expects that).
            let topic = topic.as_str().expect("a topic ARN");
            let form = [("TopicArn", topic), ("Message", message.as_str())];
            self.query("sns", "2010-03-31", "Publish", &form).await;
        }
        state.to_string()
    }

    async fn ec2(&self, action: &str, params: &[(&str, &str)]) -> String {
        self.query("ec2", "2016-11-15", action, params).await
    }

    /// What the emulator holds now: running instances, alarms, SNS topics
    /// and subscriptions, database instances (their ids or names).
    pub async fn inventory(&self) -> Inventory {
        let instances = self.ec2("DescribeInstances", &[]).await;
        let running = (instances.split("<item>").skip(1))
            .filter(|i| i.contains("<instanceId>") && i.contains("<name>running</name>"))
            .map(|i| tag(i, "instanceId"))
            .collect();
        let alarms = self
            .query("monitoring", "2010-08-01", "DescribeAlarms", &[])
            .await;
        let topics = self.query("sns", "2010-03-31", "ListTopics", &[]).await;
        let subscriptions = self
            .query("sns", "2010-03-31", "ListSubscriptions", &[])
            .await;
        let databases = self
            .query("rds", "2014-10-31", "DescribeDBInstances", &[])
            .await;
        Inventory {
            running_instances: running,
            alarms: tags(&alarms, "AlarmName"),
            topics: tags(&topics, "TopicArn"),
            subscription_endpoints: tags(&subscriptions, "Endpoint"),
            databases: tags(&databases, "DBInstanceIdentifier"),
        }
    }

    /// Registers an AMI whose root device is an 8 GiB snapshot, as a real
    /// AMI is (the images moto ships carry no snapshot, and an instance
    /// with an encrypted gp3 root volume needs one): its id.
    pub async fn register_ami(&self) -> String {
        let xml = self
            .ec2(
                "CreateVolume",
                &[("Size", "8"), ("AvailabilityZone", "us-east-1a")],
            )
            .await;
        let volume = tag(&xml, "volumeId");
        let xml = self.ec2("CreateSnapshot", &[("VolumeId", &volume)]).await;
        let snapshot = tag(&xml, "snapshotId");
        let xml = self
            .ec2(
                "RegisterImage",
                &[
                    ("Name", "infraai-test-al2"),
                    ("Architecture", "x86_64"),
                    ("RootDeviceName", "/dev/xvda"),
                    ("VirtualizationType", "hvm"),
                    ("BlockDeviceMapping.1.DeviceName", "/dev/xvda"),
                    ("BlockDeviceMapping.1.Ebs.SnapshotId", &snapshot),
                    ("BlockDeviceMapping.1.Ebs.VolumeSize", "8"),
                ],
            )
            .await;
        tag(&xml, "imageId")
    }
}

/// What an emulator holds ([`Moto::inventory`]).
#[derive(Debug, Default, PartialEq)]
pub struct Inventory {
    /// Ids of running instances.
    pub running_instances: Vec<String>,
    /// CloudWatch alarm names.
    pub alarms: Vec<String>,
    /// SNS topic ARNs.
    pub topics: Vec<String>,
    /// SNS subscription endpoints.
    pub subscription_endpoints: Vec<String>,
    /// RDS instance identifiers.
    pub databases: Vec<String>,
}

/// An `authorization` header that names only a credential scope: moto
/// routes by it and checks no signature.
fn scope(service: &str) -> String {
    format!("AWS4-HMAC-SHA256 Credential=test/20261207/us-east-1/{service}/aws4_request, SignedHeaders=host, Signature=0")
}

/// A JSON timestamp (epoch seconds, or RFC 3339) in epoch seconds.
fn epoch(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| {
        let text = v.as_str().unwrap_or_else(|| panic!("a timestamp: {v}"));
        let at = DateTime::parse_from_rfc3339(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        at.timestamp() as f64
    })
}

/// Epoch seconds as CloudWatch shows them in a reason: `07/12/26 06:40:00`.
fn minute(at: f64) -> String {
    let at = Utc.timestamp_opt(at as i64, 0).single().expect("a time");
    at.format("%d/%m/%y %H:%M:%S").to_string()
}

/// The text of every `<name>…</name>` in `xml`.
fn tags(xml: &str, name: &str) -> Vec<String> {
    let open = format!("<{name}>");
    xml.split(&open)
        .skip(1)
        .filter_map(|rest| rest.find('<').map(|end| rest[..end].to_string()))
        .collect()
}

/// The text of the first `<name>…</name>` in `xml`.
fn tag(xml: &str, name: &str) -> String {
    let open = format!("<{name}>");
    let start = xml
        .find(&open)
        .unwrap_or_else(|| panic!("no {name} in {xml}"))
        + open.len();
    let end = xml[start..].find('<').expect("the end of the value") + start;
    xml[start..end].to_string()
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
