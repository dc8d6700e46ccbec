//! Leased jobs and cursors ([`crate::LeaseStore`]).

use super::*;

/// Named cursors are stored and replaced.
pub async fn cursors_round_trip(store: &dyn MetadataStore) {
    let name = format!("conf-cursor-{}", IncidentId::new());
    assert_eq!(store.get_cursor(&name).await.expect("get"), None);
    store.set_cursor(&name, 41).await.expect("set");
    store.set_cursor(&name, 42).await.expect("set");
    assert_eq!(store.get_cursor(&name).await.expect("get"), Some(42));
}

/// A job is held by one owner at a time: taken when absent, free or its
/// lease ended; renewed only by its holder; released for others or finished.
pub async fn jobs_are_leased(store: &dyn MetadataStore) {
    let lease = std::time::Duration::from_secs(30);
    let t0 = Utc::now();
    let key = format!("conformance:{}", IncidentId::new());
    let a = store
        .claim_job(&key, "replica-a", t0, lease)
        .await
        .expect("claim")
        .expect("an absent job is created and taken");
    assert_eq!(a.key, key);
    assert_eq!(a.owner.as_deref(), Some("replica-a"));
    assert_eq!(a.claims, 1);
    let until = a.lease_until.expect("lease end");
    assert!(
        (until - (t0 + Duration::seconds(30)))
            .num_milliseconds()
            .abs()
            <= 1
    );
    // Held: nobody takes it, not even its own holder a second time.
    for who in ["replica-b", "replica-a"] {
        assert_eq!(
            store
                .claim_job(&key, who, t0 + Duration::seconds(29), lease)
                .await
                .expect("claim"),
            None,
            "{who} took a held job"
        );
    }
    assert!(store
        .claim_abandoned_jobs("replica-b", t0 + Duration::seconds(29), lease, 100)
        .await
        .expect("scan")
        .iter()
        .all(|j| j.key != key));
    // Only the holder renews.
    assert!(!store
        .renew_job(&key, "replica-b", t0, lease)
        .await
        .expect("renew"));
    assert!(store
        .renew_job(&key, "replica-a", t0 + Duration::seconds(20), lease)
        .await
        .expect("renew"));
    assert_eq!(
        store
            .claim_job(&key, "replica-b", t0 + Duration::seconds(45), lease)
            .await
            .expect("claim"),
        None,
        "the renewed lease runs to 50 s"
    );
    // The lease ends: another replica takes it over.
    let b = store
        .claim_job(&key, "replica-b", t0 + Duration::seconds(50), lease)
        .await
        .expect("claim")
        .expect("an expired lease is taken over");
    assert_eq!((b.owner.as_deref(), b.claims), (Some("replica-b"), 2));
    assert!(
        !store
            .renew_job(&key, "replica-a", t0 + Duration::seconds(51), lease)
            .await
            .expect("renew"),
        "the old holder lost it"
    );
    assert!(!store
        .release_job(&key, "replica-a", true)
        .await
        .expect("release"));
    // Released unfinished: free for the next scan at once.
    assert!(store
        .release_job(&key, "replica-b", false)
        .await
        .expect("release"));
    let taken = store
        .claim_abandoned_jobs("replica-c", t0 + Duration::seconds(51), lease, 100)
        .await
        .expect("scan");
    let c = taken
        .iter()
        .find(|j| j.key == key)
        .expect("a released job is abandoned");
    assert_eq!((c.owner.as_deref(), c.claims), (Some("replica-c"), 3));
    // Finished: gone, and a later claim starts a new job.
    assert!(store
        .release_job(&key, "replica-c", true)
        .await
        .expect("finish"));
    assert!(!store
        .release_job(&key, "replica-c", true)
        .await
        .expect("finish"));
    let again = store
        .claim_job(&key, "replica-a", t0 + Duration::seconds(52), lease)
        .await
        .expect("claim")
        .expect("a finished job can be started again");
    assert_eq!(again.claims, 1);
    assert!(store
        .release_job(&key, "replica-a", true)
        .await
        .expect("finish"));
}

/// Eight replicas scanning at once for twenty abandoned jobs: each job is
/// taken by exactly one of them.
pub async fn abandoned_jobs_are_taken_once(store: Arc<dyn MetadataStore>) {
    let lease = std::time::Duration::from_secs(30);
    let t0 = Utc::now();
    let prefix = format!("conformance-scan:{}:", IncidentId::new());
    for n in 0..20 {
        let key = format!("{prefix}{n}");
        store
            .claim_job(&key, "dead-replica", t0, lease)
            .await
            .expect("claim");
    }
    let later = t0 + Duration::seconds(31);
    let scans = (0..8).map(|r| {
        let store = store.clone();
        tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = store
                    .claim_abandoned_jobs(&format!("replica-{r}"), later, lease, 3)
                    .await
                    .expect("scan");
                if got.is_empty() {
                    break mine;
                }
                mine.extend(got);
            }
        })
    });
    let mut taken = Vec::new();
    for scan in scans {
        taken.extend(scan.await.expect("scan task"));
    }
    let mut keys: Vec<_> = taken
        .iter()
        .filter(|j| j.key.starts_with(&prefix))
        .map(|j| j.key.clone())
        .collect();
    keys.sort();
    let before = keys.len();
    keys.dedup();
    assert_eq!(
        (before, keys.len()),
        (20, 20),
        "every job taken exactly once"
    );
    for j in &taken {
        let owner = j.owner.as_deref().expect("owner");
        let ours = j.key.starts_with(&prefix);
        if ours {
            assert_eq!(j.claims, 2, "{j:?}");
        }
        assert!(store
            .release_job(&j.key, owner, ours)
            .await
            .expect("release"));
    }
}
