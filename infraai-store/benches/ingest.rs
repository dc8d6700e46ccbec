//! Alert ingest: committed alerts per second and per-call latency.
//!
//! `cargo bench -p infraai-store --all-features --bench ingest`
//!
//! * `memory/single_32_tasks`: the in-memory reference store (fresh per sample:
//!   it scans all incidents per alert).
//! * `sqlite/single_32_tasks`: `record_alert` from 32 concurrent tasks (group commit).
//! * `sqlite/batch_100`: `record_alerts` with 100 alerts per call (each audited), one task.
//! * `redis/single_32_tasks`: `record_alert` from 32 tasks against
//!   `INFRAAI_TEST_REDIS_URL`, or a redis-server this bench starts with
//!   `appendfsync always` (skipped with a message when neither exists).
//! * `postgres/single_32_tasks`: `record_alert` from 32 tasks against
//!   `INFRAAI_TEST_POSTGRES_URL`, or a throwaway cluster this bench starts
//!   from `/usr/lib/postgresql/*/bin` with the defaults (`fsync = on`,
//!   `synchronous_commit = on`; as the `postgres` OS user when root), on a
//!   pool of 16 connections (skipped with a message when neither exists).
//!
//! Every alert has a new fingerprint, so every call opens an incident (an
//! insert, the expensive path). Criterion prints its own estimates; the table
//! at the end gives the min and median throughput over criterion's 10
//! measured samples and the p50/p99 latency of every call made (warm-up included).

use criterion::{Criterion, Throughput};
use infraai_core::testing::{alert, received, MemoryStore};
use infraai_core::{AlertState, IncidentStore, MetadataStore, RecordAlert, Secret};
use infraai_store::{PostgresConfig, PostgresStore, RedisConfig, RedisStore, SqliteStore};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TASKS: usize = 32;
const PER_TASK: usize = 10;
const BATCH: usize = 100;
const SAMPLES: usize = 10;

static SEQ: AtomicU64 = AtomicU64::new(0);

fn fingerprint() -> String {
    format!("bench-{}", SEQ.fetch_add(1, Ordering::Relaxed))
}

/// What one benchmark measured.
#[derive(Default)]
struct Stats {
    /// Alerts per second of each criterion sample.
    throughput: Vec<f64>,
    /// Latency of every call, in microseconds.
    latencies: Vec<u64>,
}

type Shared = Arc<Mutex<Stats>>;

fn lock(s: &Shared) -> std::sync::MutexGuard<'_, Stats> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

/// 32 tasks, each recording `PER_TASK * iters` alerts one by one.
async fn singles(store: Arc<dyn MetadataStore>, iters: u64, stats: Shared) -> Duration {
    let per_task = PER_TASK as u64 * iters;
    let start = Instant::now();
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let (store, stats) = (store.clone(), stats.clone());
            tokio::spawn(async move {
                let mut lat = Vec::with_capacity(per_task as usize);
                for _ in 0..per_task {
                    let t = Instant::now();
                    store
                        .record_alert(&alert(&fingerprint(), AlertState::Firing, 0.9))
                        .await
                        .expect("record_alert");
                    lat.push(t.elapsed().as_micros() as u64);
                }
                lock(&stats).latencies.extend(lat);
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("join");
    }
    let elapsed = start.elapsed();
    lock(&stats)
        .throughput
        .push((TASKS as u64 * per_task) as f64 / elapsed.as_secs_f64());
    elapsed
}

async fn batches(store: &SqliteStore, iters: u64, stats: Shared) -> Duration {
    let start = Instant::now();
    let mut lat = Vec::new();
    for _ in 0..iters {
        let alerts: Vec<_> = (0..BATCH)
            .map(|_| alert(&fingerprint(), AlertState::Firing, 0.9))
            .collect();
        let t = Instant::now();
        store
            .record_alerts(received(alerts))
            .await
            .expect("record_alerts");
        lat.push(t.elapsed().as_micros() as u64);
    }
    let elapsed = start.elapsed();
    let mut s = lock(&stats);
    s.latencies.extend(lat);
    s.throughput
        .push((iters as usize * BATCH) as f64 / elapsed.as_secs_f64());
    elapsed
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

struct RedisGuard {
    child: Option<std::process::Child>,
    _dir: Option<tempfile::TempDir>,
}

impl Drop for RedisGuard {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The Redis URL to bench against, a description, and the server to keep alive.
fn redis_server() -> Option<(String, String, RedisGuard)> {
    if let Ok(url) = std::env::var("INFRAAI_TEST_REDIS_URL") {
        return Some((
            url,
            "INFRAAI_TEST_REDIS_URL (its own persistence settings)".into(),
            RedisGuard {
                child: None,
                _dir: None,
            },
        ));
    }
    let dir = tempfile::tempdir().ok()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .ok()?
        .port();
    let child = std::process::Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .args(["--appendonly", "yes", "--appendfsync", "always"])
        .arg("--dir")
        .arg(dir.path())
        .stdout(std::process::Stdio::null())
        .spawn()
        .ok()?;
    let guard = RedisGuard {
        child: Some(child),
        _dir: Some(dir),
    };
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some((
                format!("redis://127.0.0.1:{port}/"),
                "own redis-server, appendonly yes, appendfsync always".into(),
                guard,
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// A PostgreSQL cluster started by the bench; immediate shutdown on drop.
struct PgGuard {
    child: Option<std::process::Child>,
    _dir: Option<tempfile::TempDir>,
}

impl Drop for PgGuard {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = std::process::Command::new("kill")
                .args(["-QUIT", &c.id().to_string()])
                .status();
            let _ = c.wait();
        }
    }
}

/// The PostgreSQL URL to bench against, a description, and the cluster to keep alive.
fn postgres_server() -> Option<(String, String, PgGuard)> {
    use std::process::{Command, Stdio};
    if let Ok(url) = std::env::var("INFRAAI_TEST_POSTGRES_URL") {
        let guard = PgGuard {
            child: None,
            _dir: None,
        };
        return Some((
            url,
            "INFRAAI_TEST_POSTGRES_URL (its own settings)".into(),
            guard,
        ));
    }
    let mut bins: Vec<(u32, std::path::PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, b)| b.join("initdb").exists())
        .collect();
    bins.sort();
    let bin = bins.pop()?.1;
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    let as_pg = |program: &str| {
        let mut c = if root {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=postgres", "--regid=postgres", "--init-groups"]);
            c.arg(bin.join(program));
            c
        } else {
            Command::new(bin.join(program))
        };
        c.stdout(Stdio::null()).stderr(Stdio::null());
        c
    };
    let dir = tempfile::tempdir().ok()?;
    if root {
        Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(dir.path())
            .status()
            .ok()?;
    }
    let data = dir.path().join("data");
    let ok = as_pg("initdb")
        .arg("-D")
        .arg(&data)
        .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        return None;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .ok()?
        .port();
    let child = as_pg("postgres")
        .arg("-D")
        .arg(&data)
        .arg("-k")
        .arg(dir.path())
        .args(["-c", "listen_addresses=127.0.0.1", "-p", &port.to_string()])
        .spawn()
        .ok()?;
    let guard = PgGuard {
        child: Some(child),
        _dir: Some(dir),
    };
    for _ in 0..300 {
        let ready = Command::new(bin.join("pg_isready"))
            .args(["-q", "-h", "127.0.0.1", "-p", &port.to_string()])
            .status()
            .is_ok_and(|s| s.success());
        if ready {
            return Some((
                format!("postgres://postgres@127.0.0.1:{port}/postgres"),
                "own cluster, fsync on, synchronous_commit on".into(),
                guard,
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

fn main() {
    let mut c = Criterion::default()
        .configure_from_args()
        .sample_size(SAMPLES)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut results: Vec<(String, Shared)> = Vec::new();

    let mut group = c.benchmark_group("ingest");
    group.throughput(Throughput::Elements((TASKS * PER_TASK) as u64));

    // The in-memory store scans every incident per alert, so each sample
    // gets a fresh one (otherwise the bench measures its growth).
    let stats = Shared::default();
    group.bench_function("memory/single_32_tasks", |b| {
        b.iter_custom(|iters| {
            let memory: Arc<dyn MetadataStore> = Arc::new(MemoryStore::new());
            rt.block_on(singles(memory, iters, stats.clone()))
        })
    });
    results.push(("memory  single, 32 tasks".into(), stats));

    let sqlite = Arc::new(
        rt.block_on(SqliteStore::open_path(dir.path().join("bench.db")))
            .expect("open sqlite"),
    );
    let as_dyn: Arc<dyn MetadataStore> = sqlite.clone();
    let stats = Shared::default();
    group.bench_function("sqlite/single_32_tasks", |b| {
        b.iter_custom(|iters| rt.block_on(singles(as_dyn.clone(), iters, stats.clone())))
    });
    results.push(("sqlite  single, 32 tasks".into(), stats));

    group.throughput(Throughput::Elements(BATCH as u64));
    let stats = Shared::default();
    group.bench_function("sqlite/batch_100", |b| {
        b.iter_custom(|iters| rt.block_on(batches(&sqlite, iters, stats.clone())))
    });
    results.push(("sqlite  batches of 100 (latency per batch)".into(), stats));

    group.throughput(Throughput::Elements((TASKS * PER_TASK) as u64));
    let redis_note = match redis_server() {
        Some((url, note, guard)) => {
            let prefix = format!("infraai-bench-{}", std::process::id());
            let store: Arc<dyn MetadataStore> = Arc::new(
                rt.block_on(RedisStore::connect(
                    RedisConfig::new(Secret::new(url)).with_prefix(prefix),
                ))
                .expect("connect redis"),
            );
            let stats = Shared::default();
            group.bench_function("redis/single_32_tasks", |b| {
                b.iter_custom(|iters| rt.block_on(singles(store.clone(), iters, stats.clone())))
            });
            results.push(("redis   single, 32 tasks".into(), stats));
            drop(guard);
            note
        }
        None => "SKIPPED: no INFRAAI_TEST_REDIS_URL and no redis-server on PATH".into(),
    };
    let postgres_note = match postgres_server() {
        Some((url, note, guard)) => {
            let store: Arc<dyn MetadataStore> = Arc::new(
                rt.block_on(PostgresStore::connect(PostgresConfig::new(Secret::new(
                    url,
                ))))
                .expect("connect postgres"),
            );
            let stats = Shared::default();
            group.bench_function("postgres/single_32_tasks", |b| {
                b.iter_custom(|iters| rt.block_on(singles(store.clone(), iters, stats.clone())))
            });
            results.push(("postgres single, 32 tasks".into(), stats));
            drop(store);
            drop(guard);
            note
        }
        None => "SKIPPED: no INFRAAI_TEST_POSTGRES_URL and no PostgreSQL installed".into(),
    };
    group.finish();
    c.final_summary();

    println!("\nredis: {redis_note}");
    println!("postgres: {postgres_note}");
    println!(
        "{:<44} {:>12} {:>12} {:>9} {:>9}",
        "backend / mode", "alerts/s min", "median", "p50 µs", "p99 µs"
    );
    for (name, stats) in results {
        let mut s = lock(&stats);
        // Criterion calls the routine for its warm-up first, then once per
        // sample: the last SAMPLES calls are the measured samples.
        let skip = s.throughput.len().saturating_sub(SAMPLES);
        s.throughput.drain(..skip);
        s.throughput.sort_by(f64::total_cmp);
        s.latencies.sort_unstable();
        let (min, median) = match s.throughput.as_slice() {
            [] => (0.0, 0.0),
            t => (t[0], t[t.len() / 2]),
        };
        println!(
            "{:<44} {:>12.0} {:>12.0} {:>9} {:>9}",
            name,
            min,
            median,
            percentile(&s.latencies, 0.50),
            percentile(&s.latencies, 0.99)
        );
    }
}
