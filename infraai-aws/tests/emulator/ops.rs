//! The ops loop with the AWS adapters pointed at the emulator (EC2 actions,
//! CloudWatch metrics, Terraform through the applied workspace), fed by the
//! SNS source from what the emulator delivered to the recording receiver.

use super::common::moto::Moto;
use infraai_aws::OUTPUT_SECURITY_GROUP_IDS;
use infraai_aws::{ladder, AwsActions, CloudWatchMetrics, Ec2Client, SnsAlertSource, SnsConfig};
use infraai_core::ops::AlertHandled;
use infraai_core::testing::{MemoryStore, RecordingApprover};
use infraai_core::*;
use infraai_terraform::TerraformRunner;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// The loop and what feeds it.
pub struct Ops<'a> {
    /// The emulator.
    pub moto: &'a Moto,
    /// The agent.
    pub agent: OpsAgent,
    receiver: &'a MockServer,
    /// Serves the emulator's signing certificates at their SNS paths.
    certificates: MockServer,
    source: SnsAlertSource,
    approver: Arc<RecordingApprover>,
    deployment: Deployment,
    /// Deliveries already handed to the source.
    taken: AtomicUsize,
}

impl<'a> Ops<'a> {
    /// Stores the deployment of `plan` applied in `ws` as the deploy loop
    /// does and builds the agent: rule policy, AWS ladder guardrails, a
    /// recording approver.
    pub async fn new(
        moto: &'a Moto,
        receiver: &'a MockServer,
        runner: Arc<TerraformRunner>,
        plan: &InfraPlan,
        run_id: RunId,
        ws: &TfWorkspace,
    ) -> Ops<'a> {
        let store = Arc::new(MemoryStore::new());
        let now = chrono::Utc::now();
        let deployment = Deployment {
            deployment_id: DeploymentId::new(),
            cloud: "aws".into(),
            services: (plan.resources.iter())
                .map(|r| r.name.as_str().into())
                .collect(),
            region: "us-east-1".into(),
            terraform_state: ws.dir.to_string_lossy().into_owned(),
            alert_webhook: None,
            resource_map: (plan.resources.iter())
                .map(|r| (r.name.as_str().to_string(), run_id))
                .collect(),
            resources: plan.resources.clone(),
            monitoring: plan.monitoring.clone(),
            outputs: runner.output(ws).await.expect("outputs"),
            created_at: now,
            updated_at: now,
        };
        store.put_deployment(&deployment).await.unwrap();
        let guardrails = ladder::guardrails(GuardrailConfig::default());
        let ec2 = Ec2Client::new(moto.api("ec2"));
        let actions = AwsActions::new(ec2, runner, store.clone(), guardrails.clone());
        let metrics = CloudWatchMetrics::new(moto.api("monitoring"), store.clone());
        let mut registry = MetricProfileRegistry::empty();
        infraai_aws::register_profiles(&mut registry);
        let approver = Arc::new(RecordingApprover::default());
        let agent = OpsAgent::new(
            OpsDeps {
                store,
                policy: Arc::new(rules::RulePolicy),
                notifier: approver.clone(),
                actions: Arc::new(actions),
                metrics: Arc::new(metrics),
                registry: Arc::new(registry),
            },
            Guardrails::new(guardrails),
            OpsConfig {
                feedback_delay: Duration::from_millis(10),
                feedback_lookback_secs: 600,
                ..OpsConfig::default()
            },
        );
        // As the server takes them: the account's generated topics, the
        // webhook token; the certificate host stood in for (see `deliver`).
        let certificates = MockServer::start().await;
        let mut sns = SnsConfig::new(vec![
            "arn:aws:sns:us-east-1:123456789012:infraai-alerts-*".into()
        ]);
        sns.fetch_base = Some(certificates.uri());
        sns.auth = Some(WebhookAuth::Token(Secret::new("t0k")));
        Ops {
            moto,
            agent,
            receiver,
            certificates,
            source: SnsAlertSource::new(sns),
            approver,
            deployment,
            taken: AtomicUsize::new(0),
        }
    }

    /// The name of the alarm the generator made for `resource`'s `profile`.
    pub async fn alarm(&self, resource: &str, profile: &str) -> String {
        let alarms = self.moto.alarms().await;
        let alarm = alarms.iter().find(|a| {
            let described = a["AlarmDescription"].as_str().unwrap_or_default();
            let meta: serde_json::Value = serde_json::from_str(described).unwrap_or_default();
            meta["infraai"]["resource"] == resource && meta["infraai"]["profile"] == profile
        });
        let alarm =
            alarm.unwrap_or_else(|| panic!("no {profile} alarm for {resource}: {alarms:#?}"));
        alarm["AlarmName"].as_str().expect("a name").to_string()
    }

    /// Hands the one new delivery the emulator posted to the webhook to the
    /// SNS source and the alert it yields (in `state`) to the agent.
    async fn deliver(&self, state: AlertState) -> AlertHandled {
        let received = self.receiver.received_requests().await.expect("recording");
        let taken = self.taken.swap(received.len(), Ordering::SeqCst);
        assert_eq!(
            received.len(),
            taken + 1,
            "one delivery: {:#?}",
            &received[taken..]
        );
        let posted = &received[taken];
        // The emulator signs with its own key and serves the certificate at
        // the SNS host's path, but only to a request that names the service
        // (it has one address for all): fetched here, served to the source
        // at the same path.
        let body: serde_json::Value = serde_json::from_slice(&posted.body).expect("JSON");
        let url = body["SigningCertURL"].as_str().expect("a certificate URL");
        let at = reqwest::Url::parse(url).expect("a URL").path().to_string();
        let certificate = self.moto.get("sns", &at).await;
        Mock::given(method("GET"))
            .and(path(at))
            .respond_with(ResponseTemplate::new(200).set_body_bytes(certificate))
            .mount(&self.certificates)
            .await;
        let request = InboundRequest {
            headers: (posted.headers.iter())
                .map(|(k, v)| {
                    (
                        k.as_str().to_string(),
                        v.to_str().unwrap_or_default().into(),
                    )
                })
                .collect(),
            query: posted.url.query_pairs().into_owned().collect(),
            body: posted.body.clone(),
            ..Default::default()
        };
        let alerts = self
            .source
            .receive(&request)
            .await
            .expect("a verified SNS notification");
        assert_eq!(alerts.len(), 1, "{alerts:#?}");
        assert_eq!(alerts[0].state, state, "{:#?}", alerts[0]);
        self.agent.handle_alert(&alerts[0]).await.expect("handled")
    }

    /// The incident an ALARM delivery opened, waiting for approval.
    pub async fn fired(&self) -> Incident {
        let handled = self.deliver(AlertState::Firing).await;
        assert_eq!(handled.outcome, IngestOutcome::Opened);
        let incident = handled.incident.expect("an incident");
        assert_eq!(incident.status, IncidentStatus::Pending, "{incident:#?}");
        incident
    }

    /// An OK delivery, after the loop resolved its incident: noted.
    pub async fn cleared(&self) {
        let handled = self.deliver(AlertState::Resolved).await;
        assert_eq!(handled.outcome, IngestOutcome::Noted, "{handled:#?}");
    }

    /// The preview of the latest approval request.
    pub fn last_preview(&self) -> ActionPreview {
        let requests = self.approver.requests();
        let last = requests.last().expect("an approval request");
        last.preview.clone().expect("a preview")
    }

    /// Approves `incident` as a human on the web: the incident after the
    /// action and its re-check.
    pub async fn approve(&self, incident: IncidentId) -> Incident {
        let approve = HumanCommand::Approve {
            incident_id: incident,
        };
        let reply = HumanReply::new(approve, Actor::new("web", "alice"));
        let outcome = self.agent.handle_command(&reply).await.expect("approved");
        assert!(outcome.effective, "{outcome:#?}");
        outcome.incident.expect("the incident")
    }

    /// `DescribeInstances` of `instance`, as the emulator answers.
    pub async fn describe_instance(&self, instance: &str) -> String {
        let params = [("InstanceId.1", instance)];
        self.moto
            .query("ec2", "2016-11-15", "DescribeInstances", &params)
            .await
    }

    /// The id of the security group `name` in the deployment's outputs.
    pub fn security_group(&self, name: &str) -> String {
        let groups = &self.deployment.outputs[OUTPUT_SECURITY_GROUP_IDS];
        groups[name].as_str().expect("a security group").to_string()
    }
}
