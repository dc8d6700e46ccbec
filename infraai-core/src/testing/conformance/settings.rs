//! Settings ([`crate::SettingStore`]): compare-and-set documents.

use super::*;

/// A setting is written by compare-and-set on its version, listed by key
/// prefix, and deleted.
pub async fn settings_compare_and_set(store: &dyn MetadataStore) {
    let prefix = format!("conf-{}/", IncidentId::new());
    let key = format!("{prefix}b");
    assert_eq!(store.get_setting(&key).await.expect("get"), None);
    let v1 = store
        .put_setting(&key, &serde_json::json!({ "n": 1 }), 0)
        .await
        .expect("create");
    assert_eq!(v1, 1);
    let stale = store
        .put_setting(&key, &serde_json::json!({ "n": 9 }), 0)
        .await;
    assert!(matches!(stale, Err(Error::Conflict { .. })), "{stale:?}");
    let v2 = store
        .put_setting(&key, &serde_json::json!({ "n": 2 }), v1)
        .await
        .expect("update");
    assert_eq!(v2, 2);
    let got = store.get_setting(&key).await.expect("get").expect("set");
    assert_eq!((got.value["n"].as_i64(), got.version), (Some(2), 2));

    let other = format!("{prefix}a");
    store
        .put_setting(&other, &serde_json::json!("x"), 0)
        .await
        .expect("put");
    let outside = format!("{}x", &prefix[..prefix.len() - 1]);
    store
        .put_setting(&outside, &serde_json::json!("y"), 0)
        .await
        .expect("put");
    let listed = store.list_settings(&prefix).await.expect("list");
    let keys: Vec<&str> = listed.iter().map(|s| s.key.as_str()).collect();
    assert_eq!(keys, [other.as_str(), key.as_str()]);

    assert!(store.delete_setting(&key).await.expect("delete"));
    assert!(!store.delete_setting(&key).await.expect("delete again"));
    assert_eq!(store.get_setting(&key).await.expect("get"), None);
    let recreated = store.put_setting(&key, &serde_json::json!(3), 0).await;
    assert_eq!(recreated.expect("recreate"), 1);
    for k in [&key, &other, &outside] {
        store.delete_setting(k).await.expect("clean up");
    }
}

/// Twenty concurrent writers each add one to a counter, retrying on
/// conflict: no update is lost.
pub async fn concurrent_setting_writers_lose_nothing(store: Arc<dyn MetadataStore>) {
    let key = format!("conf-counter-{}", IncidentId::new());
    let writers = (0..20).map(|_| {
        let (store, key) = (store.clone(), key.clone());
        tokio::spawn(async move {
            crate::store::update_setting(store.as_ref(), &key, |n: &mut u64| *n += 1)
                .await
                .expect("update")
        })
    });
    for w in writers {
        w.await.expect("writer");
    }
    let got = store.get_setting(&key).await.expect("get").expect("set");
    assert_eq!(got.value, serde_json::json!(20));
    assert_eq!(got.version, 20);
    store.delete_setting(&key).await.expect("clean up");
}
