//! Unit tests of the runner's helpers.

use super::*;

#[test]
fn file_names_and_tails() {
    assert!(valid_file_name("main.tf"));
    assert!(valid_file_name("x.tf.json"));
    for bad in [
        "",
        ".hidden.tf",
        "../x.tf",
        "a/b.tf",
        "main.txt",
        "x.tfvars",
    ] {
        assert!(!valid_file_name(bad), "{bad}");
    }
    assert_eq!(tail("  abc  ", 10), "abc");
    assert_eq!(tail("ééé", 3), "é");
}

#[tokio::test]
async fn missing_binary_is_named() {
    let root = std::env::temp_dir().join(format!("infraai-tf-nobin-{}", RunId::new()));
    let runner =
        TerraformRunner::new(TerraformConfig::new(&root).with_binary("/nonexistent/terraform-xyz"));
    let err = runner.version().await.unwrap_err();
    assert!(
        matches!(err, TerraformError::BinaryNotFound { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("/nonexistent/terraform-xyz"));
    let core: infraai_core::Error = err.into();
    assert!(matches!(core, infraai_core::Error::NotFound { .. }));
    let ws = runner
        .write_files(RunId::new(), &TerraformFiles::single("# empty\n"))
        .await
        .unwrap();
    assert!(ws.dir.starts_with(&root));
    let err = runner.init(&ws, &NoLog).await.unwrap_err();
    assert!(err.to_string().contains("terraform-xyz"), "{err}");
    // Another process holding the directory's flock makes it busy.
    let file = std::fs::File::open(ws.dir.join(LOCK_FILE)).unwrap();
    // SAFETY: flock on a descriptor we own.
    assert_eq!(
        unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) },
        0
    );
    let err = runner.validate(&ws).await.unwrap_err();
    assert!(err.to_string().contains("busy (another process)"), "{err}");
    drop(file);
    let err = runner.validate(&ws).await.unwrap_err();
    assert!(
        err.to_string().contains("terraform-xyz"),
        "lock released: {err}"
    );
    // A cancel between two steps stops the next one, until resumed.
    assert!(!runner.cancel(ws.run_id), "nothing was running");
    let err = runner.validate(&ws).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "terraform: validate was cancelled",
        "core error of a refused step"
    );
    runner.resume(ws.run_id);
    let err = runner.validate(&ws).await.unwrap_err();
    assert!(err.to_string().contains("terraform-xyz"), "resumed: {err}");
    let elsewhere = TfWorkspace {
        run_id: ws.run_id,
        dir: std::env::temp_dir(),
    };
    let err = runner.validate(&elsewhere).await.unwrap_err();
    assert!(matches!(err, infraai_core::Error::Invalid { .. }), "{err}");
    let bad = TerraformFiles::single("x");
    let mut bad2 = bad.clone();
    bad2.files.insert("../evil.tf".into(), String::new());
    assert!(matches!(
        runner.write_files(RunId::new(), &bad2).await,
        Err(infraai_core::Error::Invalid { .. })
    ));
    let _ = tokio::fs::remove_dir_all(&root).await;
}
