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
            limit: Some(2),
            ..Default::default()
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

/// Paging through runs newest first while new ones start between pages sees
/// each run that existed at the start exactly once, in order; ties of
/// creation time are ordered by id.
pub async fn runs_page_stably_under_inserts(store: &dyn MetadataStore) {
    let tie = chrono::Utc::now();
    let mut existed = std::collections::HashSet::new();
    for n in 0..45 {
        let mut run = Run::new(format!("paged run {n}"));
        if n % 3 == 0 {
            run.created_at = tie;
        }
        store.put_run(&run).await.expect("put_run");
        existed.insert(run.id);
    }
    let (mut seen, mut after) = (std::collections::HashSet::new(), None);
    loop {
        let query = RunQuery {
            limit: Some(10),
            after,
            ..Default::default()
        };
        let page = store.list_runs(&query).await.expect("page");
        store
            .put_run(&Run::new("started meanwhile"))
            .await
            .expect("put_run");
        let keys: Vec<_> = page.iter().map(|r| (r.created_at, r.id)).collect();
        assert!(keys.windows(2).all(|w| w[0] > w[1]), "a page out of order");
        for r in &page {
            assert!(seen.insert(r.id), "run {} listed twice", r.id);
        }
        match page.last() {
            Some(last) if page.len() == 10 => {
                after = Some(PageKey {
                    created_at: last.created_at,
                    id: last.id,
                })
            }
            _ => break,
        }
    }
    let missed = existed.difference(&seen).count();
    assert_eq!(missed, 0, "{missed} runs never listed");
}
