//! A throwaway PostgreSQL cluster for tests, shared by the store's tests and
//! the server's (`#[path]`-included there): `initdb` + `postgres` from the
//! newest `/usr/lib/postgresql/*/bin` (Debian) or PATH, on a free loopback
//! port, as the `postgres` OS user when root (through `setpriv`), stopped on
//! drop. When PostgreSQL is not installed, [`Cluster::start`] fails under
//! `INFRAAI_REQUIRE_SERVICES=1` and skips (returns `None`) otherwise.
#![allow(dead_code)] // each including test uses a part

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub fn require_services() -> bool {
    std::env::var("INFRAAI_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// The directory holding `initdb` and `postgres`: the newest
/// `/usr/lib/postgresql/*/bin` (Debian), else wherever `initdb` is on PATH.
pub fn pg_bin_dir() -> Option<PathBuf> {
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

pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A command that runs as the `postgres` OS user when we are root (the
/// server refuses to run as root); `setpriv` execs, so the child's pid is
/// the program's own.
pub fn as_pg_user(program: &Path) -> Command {
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

/// A throwaway PostgreSQL cluster; shut down (SIGQUIT: immediate) on drop.
pub struct Cluster {
    child: Option<Child>,
    /// The loopback port it listens on.
    pub port: u16,
    bin: PathBuf,
    /// Holds the data directory and the socket.
    pub dir: tempfile::TempDir,
    extra: Vec<String>,
}

impl Cluster {
    /// Initializes and starts a cluster, or `None` (after printing why, or
    /// failing under `INFRAAI_REQUIRE_SERVICES=1`) when PostgreSQL is missing.
    pub fn start() -> Option<Self> {
        Self::start_with(|_| Vec::new())
    }

    /// Like [`Cluster::start`]; `configure` gets the cluster directory after
    /// `initdb` (to write files) and returns extra `postgres` arguments.
    pub fn start_with(configure: impl FnOnce(&Path) -> Vec<String>) -> Option<Self> {
        let Some(bin) = pg_bin_dir() else {
            if require_services() {
                panic!("INFRAAI_REQUIRE_SERVICES=1 but PostgreSQL is not installed (no initdb under /usr/lib/postgresql/*/bin or on PATH)");
            }
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: PostgreSQL is not installed (set INFRAAI_REQUIRE_SERVICES=1 to make this a failure)"
            );
            return None;
        };
        let dir = tempfile::Builder::new()
            .prefix("infraai-pg-")
            .tempdir()
            .expect("tempdir");
        if is_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .expect("chown");
            assert!(status.success(), "chown the cluster directory to postgres");
        }
        let data = dir.path().join("data");
        let out = as_pg_user(&bin.join("initdb"))
            .arg("-D")
            .arg(&data)
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
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let extra = configure(dir.path());
        let mut cluster = Self {
            child: None,
            port: free_port(),
            bin,
            dir,
            extra,
        };
        cluster.run();
        Some(cluster)
    }

    /// Starts the server on the cluster's port and waits until it accepts
    /// connections.
    pub fn run(&mut self) {
        let child = as_pg_user(&self.bin.join("postgres"))
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .arg("-k")
            .arg(self.dir.path())
            .args(["-c", "listen_addresses=127.0.0.1", "-p"])
            .arg(self.port.to_string())
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start postgres");
        self.child = Some(child);
        for _ in 0..300 {
            let ok = Command::new(self.bin.join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-p"])
                .arg(self.port.to_string())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("postgres did not accept connections on port {}", self.port);
    }

    /// Stops the server (immediate shutdown) and waits for it.
    pub fn stop(&mut self) {
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

    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Creates a database with the `createdb` client.
    pub fn createdb(&self, name: &str) {
        let ok = Command::new(self.bin.join("createdb"))
            .args(["-h", "127.0.0.1", "-U", "postgres", "-p"])
            .arg(self.port.to_string())
            .arg(name)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "createdb {name}");
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}
