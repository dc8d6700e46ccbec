//! The demo service: what a "machine" of the local cloud runs.
//!
//! ```text
//! infraai-demo-service --name web --machine-type local-small [--port 0] [--record-dir DIR] [--balance GROUP_DIR]
//! ```
//!
//! `GET /` (instance name and machine type), `GET /healthz`, `GET /metrics`
//! (Prometheus text: requests, latency, process CPU seconds), `GET /work?ms=N`
//! (burns N ms of CPU time, at most 10 000), `POST /admin/break` (makes
//! `/healthz` fail until the process is replaced). With `--record-dir`, the
//! pid, port and machine type are written there once the port is bound.
//!
//! With `DATABASE_URL` set (a PostgreSQL URL), every `/work` request opens a
//! connection of its own, records the visit in table `visits` and counts
//! them, holding the connection `db_ms` more milliseconds (`/work?db_ms=N`,
//! at most 10 000) — so database connections follow HTTP load. With
//! `REDIS_URL` set, it also counts the request in Redis key `hits`.
//!
//! With `--balance GROUP_DIR` it is a group's load balancer instead: every
//! request goes, round robin, to an instance recorded under `GROUP_DIR`
//! (see [`crate::balancer`]).

use axum::extract::{Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Service {
    name: String,
    machine_type: String,
    stores: crate::datastores::Stores,
    requests: AtomicU64,
    errors: AtomicU64,
    duration_micros: AtomicU64,
    healthy: AtomicBool,
}

#[derive(Deserialize)]
struct Work {
    ms: Option<u64>,
    db_ms: Option<u64>,
}

async fn count(State(s): State<Arc<Service>>, request: Request, next: Next) -> Response {
    let start = Instant::now();
    let response = next.run(request).await;
    s.requests.fetch_add(1, Ordering::Relaxed);
    if response.status().is_server_error() {
        s.errors.fetch_add(1, Ordering::Relaxed);
    }
    s.duration_micros
        .fetch_add(start.elapsed().as_micros() as u64, Ordering::Relaxed);
    response
}

async fn root(State(s): State<Arc<Service>>) -> impl IntoResponse {
    Json(serde_json::json!({"instance": s.name, "machine_type": s.machine_type}))
}

async fn healthz(State(s): State<Arc<Service>>) -> impl IntoResponse {
    if s.healthy.load(Ordering::Relaxed) {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "unhealthy")
    }
}

async fn break_health(State(s): State<Arc<Service>>) -> impl IntoResponse {
    s.healthy.store(false, Ordering::Relaxed);
    (StatusCode::OK, "health check will now fail")
}

async fn work(State(s): State<Arc<Service>>, Query(q): Query<Work>) -> Response {
    let ms = q.ms.unwrap_or(10).min(10_000);
    // Burns CPU time, not wall time, so the same request costs the same CPU
    // however busy the machine is.
    let burned = tokio::task::spawn_blocking(move || {
        let start = thread_cpu();
        let budget = Duration::from_millis(ms);
        let mut x: u64 = 0;
        while thread_cpu().saturating_sub(start) < budget {
            for i in 0..1000u64 {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(i);
            }
        }
        x
    })
    .await
    .unwrap_or_default();
    let hold = Duration::from_millis(q.db_ms.unwrap_or(0).min(10_000));
    match s.stores.visit(&s.name, hold).await {
        Ok(visit) => Json(serde_json::json!({
            "burned_ms": ms,
            "checksum": burned % 1000,
            "visits": visit.visits,
            "hits": visit.hits,
        }))
        .into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"error": e})),
        )
            .into_response(),
    }
}

/// CPU time used by the calling thread.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

async fn metrics(State(s): State<Arc<Service>>) -> impl IntoResponse {
    let cpu = crate::instances::cpu_seconds(std::process::id()).unwrap_or(0.0);
    let body = format!(
        "# HELP demo_requests_total Requests served.\n# TYPE demo_requests_total counter\ndemo_requests_total {}\n\
         # HELP demo_request_errors_total Requests answered 5xx.\n# TYPE demo_request_errors_total counter\ndemo_request_errors_total {}\n\
         # HELP demo_request_duration_seconds Request latency.\n# TYPE demo_request_duration_seconds summary\n\
         demo_request_duration_seconds_sum {}\ndemo_request_duration_seconds_count {}\n\
         # HELP process_cpu_seconds_total CPU time used.\n# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total {cpu}\n\
         # HELP demo_cpu_allotment_cores CPU cores allotted to this machine type (utilization = CPU rate / allotment).\n\
         # TYPE demo_cpu_allotment_cores gauge\ndemo_cpu_allotment_cores {}\n",
        s.requests.load(Ordering::Relaxed),
        s.errors.load(Ordering::Relaxed),
        s.duration_micros.load(Ordering::Relaxed) as f64 / 1e6,
        s.requests.load(Ordering::Relaxed),
        crate::ladder::allotment(&s.machine_type).unwrap_or(0.0),
    );
    ([("content-type", "text/plain; version=0.0.4")], body)
}

/// Command-line arguments of the demo service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Args {
    /// Instance name.
    pub name: String,
    /// Machine type it reports.
    pub machine_type: String,
    /// Port on 127.0.0.1 (0: any free port).
    pub port: u16,
    /// Where to record pid, port and machine type.
    pub record_dir: Option<PathBuf>,
    /// Balance requests over the instances recorded under this directory.
    pub balance: Option<PathBuf>,
}

/// Parses `--name N --machine-type M --port P --record-dir D --balance G`.
pub fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Args, String> {
    let mut a = Args {
        name: "demo".into(),
        machine_type: "local-small".into(),
        port: 0,
        record_dir: None,
        balance: None,
    };
    let mut it = args.into_iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--name" => a.name = value()?,
            "--machine-type" => a.machine_type = value()?,
            "--port" => a.port = value()?.parse().map_err(|e| format!("--port: {e}"))?,
            "--record-dir" => a.record_dir = Some(PathBuf::from(value()?)),
            "--balance" => a.balance = Some(PathBuf::from(value()?)),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(a)
}

async fn record(dir: &Path, port: u16, machine_type: &str) -> std::io::Result<()> {
    tokio::fs::create_dir_all(dir).await?;
    for (file, value) in [
        ("machine_type", machine_type.to_string()),
        ("port", port.to_string()),
        // pid last: its presence means the record is complete.
        ("pid", std::process::id().to_string()),
    ] {
        let tmp = dir.join(format!(".{file}.tmp"));
        tokio::fs::write(&tmp, value).await?;
        tokio::fs::rename(&tmp, dir.join(file)).await?;
    }
    Ok(())
}

/// Serves until SIGINT/SIGTERM. Errors are printed and end the process with
/// a non-zero status (this is a process's whole life, not a library call).
pub async fn serve(a: Args) {
    let app = match &a.balance {
        Some(group) => crate::balancer::router(&a.name, group),
        None => service_router(&a),
    };
    let listener = match tokio::net::TcpListener::bind(("127.0.0.1", a.port)).await {
        Ok(l) => l,
        Err(e) => die(format!("cannot bind 127.0.0.1:{}: {e}", a.port)),
    };
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(a.port);
    if let Some(dir) = &a.record_dir {
        if let Err(e) = record(dir, port, &a.machine_type).await {
            die(format!("cannot record to {}: {e}", dir.display()));
        }
    }
    println!(
        "{} ({}) listening on http://127.0.0.1:{port}",
        a.name, a.machine_type
    );
    let shutdown = async {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
        }
    };
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
    {
        die(e.to_string());
    }
}

/// The demo service's routes, using the database and cache its environment names.
fn service_router(a: &Args) -> Router {
    let service = Arc::new(Service {
        name: a.name.clone(),
        machine_type: a.machine_type.clone(),
        stores: crate::datastores::Stores::from_env().unwrap_or_else(|e| die(e)),
        requests: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        duration_micros: AtomicU64::new(0),
        healthy: AtomicBool::new(true),
    });
    Router::new()
        .route("/", get(root))
        .route("/healthz", get(healthz))
        .route("/work", get(work))
        .route("/admin/break", post(break_health))
        .route_layer(middleware::from_fn_with_state(service.clone(), count))
        .route("/metrics", get(metrics))
        .with_state(service)
}

/// Prints `message` and ends the process with status 1.
fn die(message: String) -> ! {
    eprintln!("infraai-demo-service: {message}");
    std::process::exit(1)
}
