//! Crash test of the SQLite store's durability guarantee.
//!
//! The parent starts this same binary as a child that writes alerts as fast as
//! it can (32 tasks of single writes plus one task of batches) and prints the
//! fingerprint of every acknowledged alert. After a random delay the parent
//! kills it with SIGKILL, reopens the store, and checks that the file passes
//! `PRAGMA integrity_check` and that every acknowledged alert is there.
//!
//! `INFRAAI_CRASH_RUNS=20` repeats the whole cycle (default: once).
//! Custom harness: it prints a libtest-style result line and exits non-zero
//! when any run fails.

use infraai_core::testing::{alert, received};
use infraai_core::{AlertState, IncidentQuery, IncidentStore, RecordAlert};
use infraai_store::SqliteStore;
use std::collections::HashSet;
use std::hash::{BuildHasher, Hasher};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

const CHILD_ENV: &str = "INFRAAI_CRASH_CHILD_DB";
const WRITERS: usize = 32;
const BATCH: usize = 20;

fn main() {
    if let Ok(path) = std::env::var(CHILD_ENV) {
        child(Path::new(&path));
        return;
    }
    let runs: usize = std::env::var("INFRAAI_CRASH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let started = Instant::now();
    let (mut passed, mut failed) = (0, 0);
    for n in 1..=runs {
        match parent(n) {
            Ok(summary) => {
                passed += 1;
                println!("test crash_run_{n} ... ok ({summary})");
            }
            Err(e) => {
                failed += 1;
                println!("test crash_run_{n} ... FAILED: {e}");
            }
        }
    }
    let verdict = if failed == 0 { "ok" } else { "FAILED" };
    println!(
        "\ntest result: {verdict}. {passed} passed; {failed} failed; 0 ignored; 0 measured; \
         0 filtered out; finished in {:.2}s",
        started.elapsed().as_secs_f64()
    );
    if failed > 0 {
        std::process::exit(101);
    }
}

/// A random number from the standard library's per-process random hasher keys.
fn random_u64() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos());
    h.finish()
}

fn parent(run: usize) -> Result<String, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let db = dir.path().join("crash.db");
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut child = Command::new(exe)
        .env(CHILD_ENV, &db)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("spawn child: {e}"))?;
    let stdout = child.stdout.take().ok_or("no child stdout")?;
    // Read acknowledgements on a thread so the pipe never fills up.
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        let mut r = BufReader::new(stdout);
        let mut line = String::new();
        loop {
            line.clear();
            match r.read_line(&mut line) {
                // Only complete lines count: a line cut by the kill was never acknowledged.
                Ok(n) if n > 0 && line.ends_with('\n') => {
                    if tx.send(line.trim_end().to_owned()).is_err() {
                        break;
                    }
                }
                _ => break,
            }
        }
    });
    let mut acked: HashSet<String> = HashSet::new();
    // Wait for the child to be writing, then kill it at a random moment.
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.len() < 100 {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(fp) => {
                acked.insert(fp);
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("child acknowledged only {} alerts", acked.len()));
            }
        }
    }
    let delay = Duration::from_millis(random_u64() % 1500);
    let until = Instant::now() + delay;
    while let Ok(fp) = rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
        acked.insert(fp);
        if Instant::now() >= until {
            break;
        }
    }
    child.kill().map_err(|e| format!("SIGKILL: {e}"))?;
    let status = child.wait().map_err(|e| e.to_string())?;
    let _ = reader.join();
    acked.extend(rx.try_iter());
    {
        use std::os::unix::process::ExitStatusExt;
        if status.signal() != Some(9) {
            return Err(format!("child was not killed by SIGKILL: {status:?}"));
        }
    }

    // The file must be intact …
    let conn = rusqlite::Connection::open(&db).map_err(|e| format!("raw open: {e}"))?;
    let check: Vec<String> = conn
        .prepare("PRAGMA integrity_check")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .map_err(|e| format!("integrity_check: {e}"))?;
    if check != ["ok"] {
        return Err(format!("integrity_check: {check:?}"));
    }
    drop(conn);
    // … and hold every acknowledged alert, read back through the store.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let stored: HashSet<String> = rt.block_on(async {
        let store = SqliteStore::open_path(&db)
            .await
            .map_err(|e| format!("reopen: {e}"))?;
        let all = store
            .list_incidents(&IncidentQuery::default())
            .await
            .map_err(|e| format!("list: {e}"))?;
        Ok::<_, String>(all.into_iter().map(|i| i.fingerprint).collect())
    })?;
    let missing: Vec<&String> = acked.difference(&stored).collect();
    if !missing.is_empty() {
        return Err(format!(
            "{} of {} acknowledged alerts are missing after SIGKILL, e.g. {:?}",
            missing.len(),
            acked.len(),
            missing.iter().take(5).collect::<Vec<_>>()
        ));
    }
    Ok(format!(
        "run {run}: killed after {delay:?}; {} acknowledged, {} stored, integrity ok",
        acked.len(),
        stored.len()
    ))
}

/// Writes alerts until killed; prints each acknowledged fingerprint.
fn child(db: &Path) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let store = Arc::new(SqliteStore::open_path(db).await.expect("open"));
        let out = Arc::new(std::sync::Mutex::new(std::io::stdout()));
        let ack = |out: &std::sync::Mutex<std::io::Stdout>, fps: &[String]| {
            let mut text = String::new();
            for fp in fps {
                text.push_str(fp);
                text.push('\n');
            }
            let mut o = out.lock().unwrap_or_else(|p| p.into_inner());
            // The parent stops reading only after the kill; an error means it is gone.
            if o.write_all(text.as_bytes())
                .and_then(|()| o.flush())
                .is_err()
            {
                std::process::exit(0);
            }
        };
        let mut tasks = Vec::new();
        for w in 0..WRITERS {
            let (store, out) = (store.clone(), out.clone());
            tasks.push(tokio::spawn(async move {
                for n in 0u64.. {
                    let fp = format!("crash-{w}-{n}");
                    store
                        .record_alert(&alert(&fp, AlertState::Firing, 0.9))
                        .await
                        .expect("record_alert");
                    ack(&out, &[fp]);
                }
            }));
        }
        let (store, out) = (store.clone(), out.clone());
        tasks.push(tokio::spawn(async move {
            for n in 0u64.. {
                let fps: Vec<String> = (0..BATCH).map(|i| format!("crash-batch-{n}-{i}")).collect();
                let alerts: Vec<_> = fps
                    .iter()
                    .map(|fp| alert(fp, AlertState::Firing, 0.9))
                    .collect();
                store
                    .record_alerts(received(alerts))
                    .await
                    .expect("record_alerts");
                ack(&out, &fps);
            }
        }));
        for t in tasks {
            let _ = t.await;
        }
    });
}
