//! The server on the PostgreSQL store, over real HTTP against the real binary
//! and a real (throwaway) PostgreSQL cluster: `--database-url` selects the
//! store, the banner names it without the password, two replicas share it,
//! and `/readyz` answers 503 once PostgreSQL is gone.
//!
//! The cluster comes from `/usr/lib/postgresql/*/bin` (Debian) or PATH; as
//! root it runs as the `postgres` OS user. Without PostgreSQL the test fails
//! when `INFRAAI_REQUIRE_SERVICES=1` and skips with a message otherwise.

mod common;

use common::*;
use reqwest::Method;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn pg_bin_dir() -> Option<PathBuf> {
    let mut dirs: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    dirs.sort();
    if let Some((_, bin)) = dirs.pop() {
        return Some(bin);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).find(|d| d.join("initdb").exists() && d.join("postgres").exists())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Runs as the `postgres` OS user when root (`setpriv` execs: the child's
/// pid is the program's).
fn as_pg_user(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=postgres",
            "--regid=postgres",
            "--init-groups",
            "--pdeathsig=KILL",
        ])
        .arg(program);
        c
    } else {
        Command::new(program)
    }
}

/// A throwaway cluster on a free loopback port; stopped on drop.
struct Cluster {
    child: Option<Child>,
    port: u16,
    bin: PathBuf,
    _dir: tempfile_dir::Dir,
}

/// A temporary directory removed on drop (the server crate has no tempfile).
mod tempfile_dir {
    pub struct Dir(pub std::path::PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

impl Cluster {
    fn start() -> Option<Self> {
        let Some(bin) = pg_bin_dir() else {
            if std::env::var("INFRAAI_REQUIRE_SERVICES").as_deref() == Ok("1") {
                panic!("INFRAAI_REQUIRE_SERVICES=1 but PostgreSQL is not installed");
            }
            eprintln!("skipping: PostgreSQL is not installed");
            return None;
        };
        let dir = Server::fresh_dir("pg-cluster");
        std::fs::create_dir_all(&dir).expect("cluster dir");
        let dir = tempfile_dir::Dir(dir);
        if is_root() {
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir.0)
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "chown the cluster directory to postgres");
        }
        let out = as_pg_user(&bin.join("initdb"))
            .arg("-D")
            .arg(dir.0.join("data"))
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "-N",
                "-E",
                "UTF8",
                "--locale=C",
            ])
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let child = as_pg_user(&bin.join("postgres"))
            .arg("-D")
            .arg(dir.0.join("data"))
            .arg("-k")
            .arg(&dir.0)
            .args(["-c", "listen_addresses=127.0.0.1", "-p"])
            .arg(port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start postgres");
        let cluster = Cluster {
            child: Some(child),
            port,
            bin,
            _dir: dir,
        };
        for _ in 0..300 {
            if cluster.ready() {
                return Some(cluster);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("postgres did not accept connections on {port}");
    }

    fn ready(&self) -> bool {
        Command::new(self.bin.join("pg_isready"))
            .args(["-q", "-h", "127.0.0.1", "-p"])
            .arg(self.port.to_string())
            .status()
            .is_ok_and(|s| s.success())
    }

    fn createdb(&self, name: &str) {
        let ok = Command::new(self.bin.join("createdb"))
            .args(["-h", "127.0.0.1", "-U", "postgres", "-p"])
            .arg(self.port.to_string())
            .arg(name)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "createdb {name}");
    }

    /// Immediate shutdown; waits for the server to exit.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-QUIT", &child.id().to_string()])
                .status();
            for _ in 0..100 {
                if matches!(child.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}

fn alert(fingerprint: &str) -> Value {
    json!({
        "source": "test", "fingerprint": fingerprint, "policy_name": "High CPU",
        "resource": "api", "resource_type": "gce_instance", "cloud": "memory",
        "metric": "compute.googleapis.com/instance/cpu/utilization", "value": 0.97,
        "threshold": 0.8, "severity": "critical", "state": "firing",
        "started_at": "2026-11-25T10:00:00Z",
    })
}

async fn readyz(s: &Server) -> (u16, Value) {
    let r = s.http.get(s.url("/readyz")).send().await.expect("readyz");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_the_postgres_store_and_readyz_reports_it() {
    let Some(mut cluster) = Cluster::start() else {
        return;
    };
    let db = format!("infraai_api_{}", std::process::id());
    cluster.createdb(&db);
    // trust authentication ignores the password; it must still never show.
    let url = format!(
        "postgres://postgres:pw-never-shown@127.0.0.1:{}/{db}",
        cluster.port
    );
    let start = |replica: &'static str| {
        let url = url.clone();
        async move {
            Server::start(
                replica,
                &[
                    "--cloud",
                    "simulated",
                    "--database-url",
                    &url,
                    "--replica-id",
                    replica,
                ],
                &[],
            )
            .await
        }
    };
    let a = start("replica-a").await;
    let banner = a.startup.join("\n");
    assert!(
        banner.contains(&format!(
            "store: PostgreSQL postgres@127.0.0.1:{}/{db}",
            cluster.port
        )),
        "{banner}"
    );
    assert!(banner.contains("replica: replica-a"), "{banner}");
    assert!(!banner.contains("pw-never-shown"), "{banner}");
    assert!(
        !a.data.join("infraai.db").exists(),
        "no SQLite file when PostgreSQL is the store"
    );

    let (status, body) = readyz(&a).await;
    assert_eq!((status, body["store"].as_str()), (200, Some("postgres")));

    let r = a
        .http
        .post(a.url("/ops/webhook"))
        .header("x-infraai-webhook-token", WEBHOOK)
        .json(&alert("pg-cpu-1"))
        .send()
        .await
        .expect("post alert");
    assert_eq!(r.status().as_u16(), 200);
    let ack: Value = r.json().await.expect("ack");
    assert_eq!(ack["results"][0]["outcome"], "opened");
    let id = ack["results"][0]["incident_id"]
        .as_str()
        .expect("incident id")
        .to_string();
    let list = a.ok(Method::GET, "/ops/alerts", None, 200).await;
    assert!(list.to_string().contains(&id), "{list:#}");

    // A second replica on the same database sees the incident, and the same
    // alert posted to it is a repeat, not a second incident.
    let b = start("replica-b").await;
    let got = b
        .ok(Method::GET, &format!("/ops/alerts/{id}"), None, 200)
        .await;
    assert!(got.to_string().contains("pg-cpu-1"), "{got:#}");
    let r = b
        .http
        .post(b.url("/ops/webhook"))
        .header("x-infraai-webhook-token", WEBHOOK)
        .json(&alert("pg-cpu-1"))
        .send()
        .await
        .expect("post alert to b");
    let ack: Value = r.json().await.expect("ack");
    assert_eq!(ack["results"][0]["outcome"], "repeated", "{ack:#}");
    assert_eq!(ack["results"][0]["incident_id"].as_str(), Some(id.as_str()));

    // PostgreSQL gone: both replicas report not ready.
    cluster.stop();
    for s in [&a, &b] {
        let (status, body) = readyz(s).await;
        assert_eq!(status, 503, "{body:#}");
        assert!(!body.to_string().contains("pw-never-shown"));
    }
}
