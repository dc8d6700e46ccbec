//! Compute Engine actions against a mock API serving the recorded shapes:
//! reset, stop → setMachineType → start in order, firewall patches within the
//! guardrails, failed operations, retries, timeouts and dry runs that change
//! nothing.

use infraai_core::guardrails::GuardrailConfig;
use infraai_core::*;
use infraai_gcp::*;
use serde_json::{json, Value};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wiremock::matchers::{body_json, header, method, path, path_regex, query_param_is_missing};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const ZONE: &str = "/compute/v1/projects/demo-project/zones/us-central1-a";
const INSTANCE: &str = "/compute/v1/projects/demo-project/zones/us-central1-a/instances/web-1";
const FIREWALL: &str = "/compute/v1/projects/demo-project/global/firewalls/allow-web-ingress";
const TOKEN: &str = "test-access-token";

fn fixture(p: &str) -> Value {
    let p = format!(
        "{}/../tests/fixtures/gcp-compute/{p}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}")))
        .unwrap()
}

/// The recorded operation with another name, type and status.
fn operation(name: &str, kind: &str, status: &str) -> Value {
    let mut op = fixture(if status == "DONE" {
        "operation-done.json"
    } else {
        "operation-running.json"
    });
    op["name"] = json!(name);
    op["operationType"] = json!(kind);
    op
}

fn global_operation(name: &str, status: &str) -> Value {
    let mut op = operation(name, "patch", status);
    op.as_object_mut().unwrap().remove("zone");
    op["targetLink"] = json!("https://www.googleapis.com/compute/v1/projects/demo-project/global/firewalls/allow-web-ingress");
    op
}

fn config(server: &MockServer) -> ComputeConfig {
    let mut c = ComputeConfig::new("demo-project", "us-central1-a")
        .with_base_url(format!("{}/compute/v1", server.uri()));
    c.timeout = Duration::from_secs(10);
    c.poll_interval = Duration::from_millis(20);
    c.retry.initial_backoff = Duration::from_millis(10);
    c.retry.max_backoff = Duration::from_millis(50);
    c
}

fn actions(config: ComputeConfig) -> GcpActions {
    let compute = ComputeEngine::new(config, Arc::new(StaticToken(Secret::new(TOKEN)))).unwrap();
    GcpActions::new(
        Arc::new(compute),
        infraai_gcp::guardrails(GuardrailConfig::default()),
    )
}

fn request(action: Action) -> ActionRequest {
    ActionRequest {
        incident_id: IncidentId::new(),
        deployment_id: None,
        resource: "web-1".into(),
        resource_type: "gce_instance".into(),
        action,
    }
}

fn scale_to(m: &str) -> Action {
    Action::ScaleUp {
        machine_type: MachineType::new(m).unwrap(),
    }
}

fn firewall(ports: Vec<u16>, range: &str) -> Action {
    Action::ModifyFirewall {
        change: FirewallChange {
            rule: ResourceName::new("allow-web-ingress").unwrap(),
            allow: true,
            protocol: Protocol::Tcp,
            ports,
            source_ranges: vec![Cidr::from_str(range).unwrap()],
        },
    }
}

/// A mutating call answering with a RUNNING operation, once.
async fn mutation(server: &MockServer, verb: &str, op: &str) {
    Mock::given(method("POST"))
        .and(path(format!("{INSTANCE}/{verb}")))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(operation(op, verb, "RUNNING")))
        .expect(1)
        .mount(server)
        .await;
}

/// `operations.wait` on `op` answering DONE, once.
async fn wait_done(server: &MockServer, op: &str, kind: &str) {
    Mock::given(method("POST"))
        .and(path(format!("{ZONE}/operations/{op}/wait")))
        .respond_with(ResponseTemplate::new(200).set_body_json(operation(op, kind, "DONE")))
        .expect(1)
        .mount(server)
        .await;
}

/// Every request that is not a GET must not happen.
async fn no_mutation(server: &MockServer) {
    for m in ["POST", "PATCH", "PUT", "DELETE"] {
        Mock::given(method(m))
            .respond_with(ResponseTemplate::new(500))
            .expect(0)
            .named(format!("no {m} in a dry run"))
            .mount(server)
            .await;
    }
}

async fn instance_get(server: &MockServer, status: &str) {
    let mut i = fixture("instance-get.json");
    i["status"] = json!(status);
    Mock::given(method("GET"))
        .and(path(INSTANCE))
        .respond_with(ResponseTemplate::new(200).set_body_json(i))
        .mount(server)
        .await;
}

/// `METHOD path` of every request the server received, in order.
async fn calls(server: &MockServer) -> Vec<String> {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r: &Request| format!("{} {}", r.method, r.url.path()))
        .collect()
}

#[tokio::test]
async fn restart_resets_and_waits_for_the_operation() {
    let server = MockServer::start().await;
    mutation(&server, "reset", "op-reset").await;
    wait_done(&server, "op-reset", "reset").await;

    let report = actions(config(&server))
        .execute(&request(Action::Restart {}))
        .await
        .unwrap();
    assert_eq!(report.details["path"], "api");
    assert_eq!(report.details["operations"][0]["status"], "DONE");
    assert!(report.summary.contains("op-reset"), "{}", report.summary);
    assert_eq!(
        calls(&server).await,
        [
            format!("POST {INSTANCE}/reset"),
            format!("POST {ZONE}/operations/op-reset/wait")
        ]
    );
    // Mutations carry a requestId, so a retried POST runs once.
    let reqs = server.received_requests().await.unwrap();
    assert!(reqs[0].url.query().unwrap_or("").starts_with("requestId="));
}

#[tokio::test]
async fn scale_up_stops_sets_and_starts_in_order() {
    let server = MockServer::start().await;
    instance_get(&server, "RUNNING").await;
    mutation(&server, "stop", "op-stop").await;
    wait_done(&server, "op-stop", "stop").await;
    Mock::given(method("POST"))
        .and(path(format!("{INSTANCE}/setMachineType")))
        .and(body_json(
            json!({"machineType": "zones/us-central1-a/machineTypes/e2-standard-4"}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(operation(
            "op-set",
            "setMachineType",
            "RUNNING",
        )))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("{ZONE}/operations/op-set/wait")))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(fixture("operation-setMachineType-done.json")),
        )
        .expect(1)
        .mount(&server)
        .await;
    mutation(&server, "start", "op-start").await;
    wait_done(&server, "op-start", "start").await;

    let report = actions(config(&server))
        .execute(&request(scale_to("e2-standard-4")))
        .await
        .unwrap();
    assert_eq!(
        calls(&server).await,
        [
            format!("GET {INSTANCE}"),
            format!("POST {INSTANCE}/stop"),
            format!("POST {ZONE}/operations/op-stop/wait"),
            format!("POST {INSTANCE}/setMachineType"),
            format!("POST {ZONE}/operations/op-set/wait"),
            format!("POST {INSTANCE}/start"),
            format!("POST {ZONE}/operations/op-start/wait"),
        ]
    );
    assert_eq!(report.details["path"], "api");
    assert_eq!(report.details["from"], "e2-standard-2");
    let kinds: Vec<&str> = report.details["operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["operation_type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["stop", "setMachineType", "start"]);
    assert!(
        report.summary.contains("e2-standard-2 to e2-standard-4"),
        "{}",
        report.summary
    );
}

#[tokio::test]
async fn a_failed_resize_starts_the_instance_again_and_says_so() {
    let server = MockServer::start().await;
    instance_get(&server, "RUNNING").await;
    mutation(&server, "stop", "op-stop").await;
    wait_done(&server, "op-stop", "stop").await;
    Mock::given(method("POST"))
        .and(path(format!("{INSTANCE}/setMachineType")))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "error": {"code": 400, "message": "Invalid value for field 'resource.machineType'"}
        })))
        .expect(1)
        .mount(&server)
        .await;
    mutation(&server, "start", "op-start").await;
    wait_done(&server, "op-start", "start").await;

    let err = actions(config(&server))
        .execute(&request(scale_to("e2-standard-4")))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("Invalid value for field"), "{err}");
    assert!(
        err.contains("web-1 was started again as e2-standard-2"),
        "{err}"
    );
    assert_eq!(
        calls(&server).await.last().unwrap(),
        &format!("POST {ZONE}/operations/op-start/wait")
    );
}

#[tokio::test]
async fn firewall_changes_outside_the_guardrails_are_refused_before_any_call() {
    let server = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(500))
        .expect(0)
        .mount(&server)
        .await;
    let gcp = actions(config(&server));
    for action in [
        firewall(vec![22], "0.0.0.0/0"),
        firewall(vec![443, 3389], "::/0"),
    ] {
        let err = gcp.execute(&request(action.clone())).await.unwrap_err();
        assert!(matches!(err, Error::Forbidden { .. }), "{err}");
        assert!(err.to_string().contains("whole internet"), "{err}");
        let err = gcp.preview(&request(action)).await.unwrap_err();
        assert!(matches!(err, Error::Forbidden { .. }), "{err}");
    }
    // Structurally invalid too (port 0).
    let err = gcp
        .execute(&request(firewall(vec![0], "10.0.0.0/8")))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("port 0"), "{err}");
}

#[tokio::test]
async fn firewall_patch_within_bounds_waits_on_the_global_operation() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(FIREWALL))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("firewall-get.json")))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("PATCH"))
        .and(path(FIREWALL))
        .and(body_json(json!({
            "allowed": [{"IPProtocol": "tcp", "ports": ["443"]}],
            "sourceRanges": ["10.0.0.0/8"]
        })))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(global_operation("op-fw", "RUNNING")),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(
            "/compute/v1/projects/demo-project/global/operations/op-fw/wait",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(global_operation("op-fw", "DONE")))
        .expect(1)
        .mount(&server)
        .await;

    let report = actions(config(&server))
        .execute(&request(firewall(vec![443], "10.0.0.0/8")))
        .await
        .unwrap();
    assert_eq!(report.details["path"], "api");
    assert_eq!(
        report.details["before"]["sourceRanges"],
        json!(["0.0.0.0/0"])
    );
    assert_eq!(report.details["operations"][0]["name"], "op-fw");
}

#[tokio::test]
async fn a_deny_change_on_an_allow_rule_is_refused_before_patching() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(FIREWALL))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("firewall-get.json")))
        .mount(&server)
        .await;
    no_mutation(&server).await;
    let Action::ModifyFirewall { mut change } = firewall(vec![8080], "0.0.0.0/0") else {
        unreachable!()
    };
    change.allow = false;
    let err = actions(config(&server))
        .execute(&request(Action::ModifyFirewall { change }))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err}");
    assert!(
        err.to_string().contains("cannot change a rule's action"),
        "{err}"
    );
}

#[tokio::test]
async fn an_operation_that_ends_in_error_surfaces_its_message() {
    let server = MockServer::start().await;
    mutation(&server, "reset", "op-reset").await;
    Mock::given(method("POST"))
        .and(path(format!("{ZONE}/operations/op-reset/wait")))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("operation-error.json")))
        .expect(1)
        .mount(&server)
        .await;
    let err = actions(config(&server))
        .execute(&request(Action::Restart {}))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("ZONE_RESOURCE_POOL_EXHAUSTED"), "{text}");
    assert!(
        text.contains("does not have enough resources available"),
        "{text}"
    );
    // httpErrorStatusCode 503: trying again later can help.
    assert!(err.is_retryable());
}

#[tokio::test]
async fn a_429_is_retried_with_the_same_request_id_then_succeeds() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("{INSTANCE}/reset")))
        .respond_with(ResponseTemplate::new(429).set_body_json(json!({
            "error": {"code": 429, "message": "Rate Limit Exceeded"}
        })))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    mutation(&server, "reset", "op-reset").await;
    wait_done(&server, "op-reset", "reset").await;

    let report = actions(config(&server))
        .execute(&request(Action::Restart {}))
        .await
        .unwrap();
    assert_eq!(report.details["operations"][0]["status"], "DONE");
    let reqs = server.received_requests().await.unwrap();
    let resets: Vec<_> = reqs
        .iter()
        .filter(|r| r.url.path().ends_with("/reset"))
        .map(|r| r.url.query().unwrap_or("").to_string())
        .collect();
    assert_eq!(resets.len(), 2);
    assert_eq!(resets[0], resets[1], "a retry reuses the requestId");
}

#[tokio::test]
async fn retries_are_bounded() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("{INSTANCE}/reset")))
        .respond_with(ResponseTemplate::new(503).set_body_json(json!({
            "error": {"code": 503, "message": "backend unavailable"}
        })))
        .expect(3)
        .mount(&server)
        .await;
    let mut c = config(&server);
    c.retry.max_retries = 2;
    let err = actions(c)
        .execute(&request(Action::Restart {}))
        .await
        .unwrap_err();
    assert!(err.is_retryable());
    assert!(err.to_string().contains("backend unavailable"), "{err}");
}

#[tokio::test]
async fn client_errors_are_not_retried_and_404_is_not_found() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(INSTANCE))
        .respond_with(ResponseTemplate::new(404).set_body_json(fixture("error-404.json")))
        .expect(1)
        .mount(&server)
        .await;
    let err = actions(config(&server))
        .preview(&request(Action::Restart {}))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    assert!(err.to_string().contains("was not found"), "{err}");
}

#[tokio::test]
async fn an_operation_that_never_finishes_times_out_clearly() {
    let server = MockServer::start().await;
    mutation(&server, "reset", "op-stuck").await;
    Mock::given(method("POST"))
        .and(path(format!("{ZONE}/operations/op-stuck/wait")))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(operation("op-stuck", "reset", "RUNNING")),
        )
        .mount(&server)
        .await;
    let mut c = config(&server);
    c.timeout = Duration::from_millis(400);
    c.poll_interval = Duration::from_millis(50);
    let started = Instant::now();
    let err = actions(c)
        .execute(&request(Action::Restart {}))
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("op-stuck") && text.contains("RUNNING"),
        "{text}"
    );
    // Polled more than once, but not in a busy loop (50 ms apart over 400 ms).
    let waits = calls(&server)
        .await
        .iter()
        .filter(|c| c.ends_with("/wait"))
        .count();
    assert!((2..=12).contains(&waits), "{waits} waits");
}

#[tokio::test]
async fn dry_runs_list_the_exact_calls_and_change_nothing() {
    let server = MockServer::start().await;
    instance_get(&server, "RUNNING").await;
    Mock::given(method("GET"))
        .and(path(FIREWALL))
        .and(query_param_is_missing("requestId"))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("firewall-get.json")))
        .mount(&server)
        .await;
    no_mutation(&server).await;
    let gcp = actions(config(&server));

    let restart = gcp.preview(&request(Action::Restart {})).await.unwrap();
    assert!(
        restart
            .summary
            .contains(&format!("1. POST {INSTANCE}/reset"))
            && restart
                .summary
                .contains(&format!("2. POST {ZONE}/operations/{{operation}}/wait")),
        "{}",
        restart.summary
    );
    assert!(restart.change_set.is_none());

    let scale = gcp
        .preview(&request(scale_to("e2-standard-4")))
        .await
        .unwrap();
    let s = &scale.summary;
    let order = [
        format!("1. POST {INSTANCE}/stop"),
        format!("3. POST {INSTANCE}/setMachineType {{\"machineType\":\"zones/us-central1-a/machineTypes/e2-standard-4\"}}"),
        format!("5. POST {INSTANCE}/start"),
    ];
    let positions: Vec<usize> = order
        .iter()
        .map(|o| {
            s.find(o.as_str())
                .unwrap_or_else(|| panic!("{o} not in {s}"))
        })
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{s}");
    assert!(s.contains("from e2-standard-2 to e2-standard-4"), "{s}");

    let fw = gcp
        .preview(&request(firewall(vec![443], "10.0.0.0/8")))
        .await
        .unwrap();
    assert!(
        fw.summary.contains(&format!(
            "PATCH {FIREWALL} {{\"allowed\":[{{\"IPProtocol\":\"tcp\",\"ports\":[\"443\"]}}],\"sourceRanges\":[\"10.0.0.0/8\"]}}"
        )),
        "{}",
        fw.summary
    );
    assert!(fw
        .summary
        .contains("/compute/v1/projects/demo-project/global/operations/{operation}/wait"));
    // Only reads reached the server.
    assert!(calls(&server).await.iter().all(|c| c.starts_with("GET ")));
}

#[tokio::test]
async fn bad_names_and_other_resource_types_are_refused_before_any_call() {
    let server = MockServer::start().await;
    Mock::given(path_regex(".*"))
        .respond_with(ResponseTemplate::new(500))
        .expect(0)
        .mount(&server)
        .await;
    let gcp = actions(config(&server));
    let mut r = request(Action::Restart {});
    r.resource = "web-1/../../global/firewalls/x".into();
    assert!(matches!(
        gcp.execute(&r).await.unwrap_err(),
        Error::Invalid { .. }
    ));
    let mut r = request(Action::Restart {});
    r.resource_type = "cloudsql_database".into();
    assert!(matches!(
        gcp.execute(&r).await.unwrap_err(),
        Error::NotSupported { .. }
    ));
    assert!(matches!(
        gcp.execute(&request(Action::Escalate {}))
            .await
            .unwrap_err(),
        Error::NotSupported { .. }
    ));
    assert!(ComputeEngine::new(
        ComputeConfig::new("demo-project", "us-central1-a/../x"),
        Arc::new(StaticToken(Secret::new(TOKEN)))
    )
    .is_err());
}

/// A server whose `instances.reset` always answers 503, and a config that
/// retries it with backoffs of `backoff` (jittered to half of it) until
/// `timeout`.
async fn always_unavailable(timeout: Duration, backoff: Duration) -> (MockServer, ComputeConfig) {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("{INSTANCE}/reset")))
        .respond_with(ResponseTemplate::new(503).set_body_json(json!({
            "error": {"code": 503, "message": "backend unavailable"}
        })))
        .mount(&server)
        .await;
    let mut c = config(&server);
    c.timeout = timeout;
    c.retry.max_retries = 1000;
    c.retry.initial_backoff = backoff;
    c.retry.max_backoff = backoff;
    (server, c)
}

fn assert_timeout_with_last_failure(err: &Error) {
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    assert!(err.to_string().contains("backend unavailable"), "{err}");
}

#[tokio::test]
async fn running_out_of_time_while_the_api_fails_is_a_timeout_with_the_last_failure() {
    let (_server, c) =
        always_unavailable(Duration::from_millis(1000), Duration::from_millis(60)).await;
    let started = Instant::now();
    let err = actions(c)
        .execute(&request(Action::Restart {}))
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert_timeout_with_last_failure(&err);
}

#[tokio::test]
async fn a_backoff_sleep_that_wakes_after_the_deadline_still_reports_the_last_failure() {
    // On a loaded machine a timer can fire late. Here the runtime's only
    // thread is blocked past the deadline during the first backoff sleep
    // (75–150 ms, starting when the first 503 has been read), so the call
    // wakes with no time left.
    let (server, c) =
        always_unavailable(Duration::from_millis(300), Duration::from_millis(150)).await;
    let blocker = tokio::spawn(async move {
        while server
            .received_requests()
            .await
            .unwrap_or_default()
            .is_empty()
        {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        tokio::time::sleep(Duration::from_millis(40)).await;
        std::thread::sleep(Duration::from_millis(400));
        server
    });
    let err = actions(c)
        .execute(&request(Action::Restart {}))
        .await
        .unwrap_err();
    let _server = blocker.await.unwrap();
    assert_timeout_with_last_failure(&err);
}

#[tokio::test]
async fn a_briefly_unavailable_token_source_is_retried_and_its_token_used() {
    let server = MockServer::start().await;
    let token_path = "/computeMetadata/v1/instance/service-accounts/default/token";
    Mock::given(method("GET"))
        .and(path(token_path))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(token_path))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": TOKEN, "expires_in": 3599, "token_type": "Bearer"
        })))
        .expect(1)
        .mount(&server)
        .await;
    mutation(&server, "reset", "op-reset").await;
    wait_done(&server, "op-reset", "reset").await;
    let compute =
        ComputeEngine::new(config(&server), Arc::new(MetadataServer::new(server.uri()))).unwrap();
    let report = GcpActions::new(
        Arc::new(compute),
        infraai_gcp::guardrails(GuardrailConfig::default()),
    )
    .execute(&request(Action::Restart {}))
    .await
    .unwrap();
    assert_eq!(report.details["path"], "api");
}
