//! Runs and deployments ([`crate::RunStore`]).

use super::*;

/// Runs are stored, replaced and listed newest first.
pub async fn runs_round_trip(store: &dyn MetadataStore) {
    let mut run = Run::new("conformance goal");
    run.plan = None;
    store.put_run(&run).await.expect("put_run");
    run.enter(RunPhase::FixAttempt(2), Some("note".into()));
    run.outputs
        .insert("url".into(), serde_json::json!({"api": "http://x"}));
    store.put_run(&run).await.expect("put_run again");
    let got = store
        .get_run(run.id)
        .await
        .expect("get_run")
        .expect("run exists");
    assert_eq!(got, run, "a run must round-trip exactly");
    let mut newer = Run::new("newer");
    let deployment = DeploymentId::new();
    newer.deployment_id = Some(deployment);
    store.put_run(&newer).await.expect("put_run");
    let listed = store
        .list_runs(&RunQuery {
            deployment_id: None,
            limit: Some(2),
        })
        .await
        .expect("list_runs");
    assert_eq!(
        listed.first().map(|r| r.id),
        Some(newer.id),
        "newest run first"
    );
    assert!(store
        .get_run(RunId::new())
        .await
        .expect("get_run")
        .is_none());
}

/// Deployments are stored and found by resource name.
pub async fn deployments_round_trip(store: &dyn MetadataStore) {
    let run = RunId::new();
    let now = Utc::now();
    let name = format!("conf-{}", &RunId::new().to_string()[..8]);
    let d = Deployment {
        deployment_id: DeploymentId::new(),
        cloud: "memory".into(),
        services: vec![name.clone()],
        region: "us-central1".into(),
        terraform_state: "/tmp/x".into(),
        alert_webhook: None,
        resource_map: BTreeMap::from([(name.clone(), run)]),
        resources: vec![],
        monitoring: vec![],
        outputs: BTreeMap::new(),
        created_at: now,
        updated_at: now,
    };
    store.put_deployment(&d).await.expect("put_deployment");
    assert_eq!(
        store
            .get_deployment(d.deployment_id)
            .await
            .expect("get")
            .as_ref(),
        Some(&d)
    );
    let found = store
        .find_deployment_by_resource(&name)
        .await
        .expect("find");
    assert_eq!(found.map(|f| f.deployment_id), Some(d.deployment_id));
    assert!(store
        .find_deployment_by_resource("no-such-resource")
        .await
        .expect("find")
        .is_none());
    assert!(store
        .list_deployments()
        .await
        .expect("list")
        .iter()
        .any(|x| x.deployment_id == d.deployment_id));
}
