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
    let job = LeasedJob {
        store,
        key: format!("conformance:{}", IncidentId::new()),
        t0: Utc::now(),
        lease: std::time::Duration::from_secs(30),
    };
    a_held_job_is_held(&job).await;
    an_ended_lease_is_taken_over(&job).await;
    released_and_finished_jobs(&job).await;
}

/// One job key under a 30 s lease, its calls timed in seconds after `t0`.
struct LeasedJob<'a> {
    store: &'a dyn MetadataStore,
    key: String,
    t0: DateTime<Utc>,
    lease: std::time::Duration,
}

impl LeasedJob<'_> {
    async fn claim(&self, who: &str, secs: i64) -> Option<Job> {
        let at = self.t0 + Duration::seconds(secs);
        let job = self
            .store
            .claim_job(&self.key, Lease::new(who, self.lease).at(at))
            .await;
        job.expect("claim")
    }

    async fn renew(&self, who: &str, secs: i64) -> bool {
        let at = self.t0 + Duration::seconds(secs);
        let renewed = self
            .store
            .renew_job(&self.key, Lease::new(who, self.lease).at(at))
            .await;
        renewed.expect("renew")
    }

    async fn release(&self, who: &str, finished: bool) -> bool {
        let released = self
            .store
            .release_job(Release {
                key: &self.key,
                owner: who,
                finished,
            })
            .await;
        released.expect("release")
    }

    async fn scan(&self, who: &str, secs: i64) -> Vec<Job> {
        let at = self.t0 + Duration::seconds(secs);
        let scan = self
            .store
            .claim_abandoned_jobs(Lease::new(who, self.lease).at(at), 100);
        scan.await.expect("scan")
    }
}

/// Taken when absent, then held against every claim and scan; only the
/// holder renews, to 50 s.
async fn a_held_job_is_held(job: &LeasedJob<'_>) {
    let a = job
        .claim("replica-a", 0)
        .await
        .expect("an absent job is created and taken");
    assert_eq!(a.key, job.key);
    assert_eq!(a.owner.as_deref(), Some("replica-a"));
    assert_eq!(a.claims, 1);
    let until = a.lease_until.expect("lease end");
    assert!(
        (until - (job.t0 + Duration::seconds(30)))
            .num_milliseconds()
            .abs()
            <= 1
    );
    // Held: nobody takes it, not even its own holder a second time.
    for who in ["replica-b", "replica-a"] {
        assert_eq!(job.claim(who, 29).await, None, "{who} took a held job");
    }
    let scanned = job.scan("replica-b", 29).await;
    assert!(scanned.iter().all(|j| j.key != job.key));
    // Only the holder renews.
    assert!(!job.renew("replica-b", 0).await);
    assert!(job.renew("replica-a", 20).await);
    let late = job.claim("replica-b", 45).await;
    assert_eq!(late, None, "the renewed lease runs to 50 s");
}

/// At 50 s another replica takes the job over; the old holder can neither
/// renew nor release it.
async fn an_ended_lease_is_taken_over(job: &LeasedJob<'_>) {
    let b = job
        .claim("replica-b", 50)
        .await
        .expect("an expired lease is taken over");
    assert_eq!((b.owner.as_deref(), b.claims), (Some("replica-b"), 2));
    assert!(!job.renew("replica-a", 51).await, "the old holder lost it");
    assert!(!job.release("replica-a", true).await);
}

/// Released unfinished, a job is free for the next scan at once; finished,
/// it is gone and a later claim starts a new job.
async fn released_and_finished_jobs(job: &LeasedJob<'_>) {
    assert!(job.release("replica-b", false).await);
    let taken = job.scan("replica-c", 51).await;
    let c = taken
        .iter()
        .find(|j| j.key == job.key)
        .expect("a released job is abandoned");
    assert_eq!((c.owner.as_deref(), c.claims), (Some("replica-c"), 3));
    // Finished: gone, and a later claim starts a new job.
    assert!(job.release("replica-c", true).await);
    assert!(!job.release("replica-c", true).await);
    let again = job
        .claim("replica-a", 52)
        .await
        .expect("a finished job can be started again");
    assert_eq!(again.claims, 1);
    assert!(job.release("replica-a", true).await);
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
            .claim_job(&key, Lease::new("dead-replica", lease).at(t0))
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
                    .claim_abandoned_jobs(Lease::new(&format!("replica-{r}"), lease).at(later), 3)
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
            .release_job(Release {
                key: &j.key,
                owner,
                finished: ours
            })
            .await
            .expect("release"));
    }
}
