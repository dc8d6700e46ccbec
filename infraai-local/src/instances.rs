//! Where local resources record themselves, written by their Terraform
//! provisioners and read by metrics, actions and clean-up:
//!
//! * `<state_dir>/instances/<name>/`: `pid`, `port` and `machine_type` of an
//!   instance, a group's load balancer, a database or a cache; databases and
//!   caches also keep their connection `url` there (mode 0600).
//! * `<state_dir>/groups/<name>/<index>/`: the same for each instance of a group.
//! * `<state_dir>/data/<name>/`: a database's or cache's data, kept across
//!   restarts and scale-ups, removed by destroy.

use infraai_core::{Error, Result};
use std::path::{Path, PathBuf};

/// A recorded local instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Instance {
    /// Resource name.
    pub name: String,
    /// Process id.
    pub pid: u32,
    /// Loopback port.
    pub port: u16,
    /// Machine type it was started with.
    pub machine_type: String,
}

impl Instance {
    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// The records of a local cloud's resources.
#[derive(Clone, Debug)]
pub struct InstanceDir {
    state: PathBuf,
    root: PathBuf,
}

impl InstanceDir {
    /// The records under `state_dir`.
    pub fn new(state_dir: impl AsRef<Path>) -> Self {
        Self {
            state: state_dir.as_ref().to_path_buf(),
            root: state_dir.as_ref().join("instances"),
        }
    }

    /// The record directory of one resource.
    pub fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// The directory holding the record of each instance of group `name`.
    pub fn group_path(&self, name: &str) -> PathBuf {
        self.state.join("groups").join(name)
    }

    /// The data directory of database or cache `name`: `<state_dir>/data/<name>`,
    /// except as root when the `postgres` OS user (PostgreSQL refuses to run
    /// as root) could not reach it — a state directory under `/root`, say —
    /// then `/var/lib/infraai-local/<hash of state_dir>/<name>`.
    pub fn data_path(&self, name: &str) -> PathBuf {
        let under_state = self.state.join("data");
        // SAFETY: geteuid has no preconditions and cannot fail.
        let root = unsafe { libc::geteuid() } == 0;
        let base = if root && !traversable_by_anyone(&self.state) {
            PathBuf::from("/var/lib/infraai-local").join(format!("{:016x}", fnv1a(&self.state)))
        } else {
            under_state
        };
        base.join(name)
    }

    /// Reads a resource's record; [`Error::NotFound`] when it has none.
    pub async fn read(&self, name: &str) -> Result<Instance> {
        read_record(name, &self.path(name)).await
    }

    /// The connection URL a database or cache recorded (it holds the password).
    pub async fn url(&self, name: &str) -> Result<String> {
        let p = self.path(name).join("url");
        match tokio::fs::read_to_string(&p).await {
            Ok(url) => Ok(url.trim().to_string()),
            Err(_) => Err(Error::not_found(format!(
                "connection URL of local {name} ({})",
                p.display()
            ))),
        }
    }

    /// The running instances of group `name`, by index.
    pub async fn members(&self, name: &str) -> Vec<Instance> {
        members_in(&self.group_path(name)).await
    }

    /// Every recorded resource (not the instances of groups).
    pub async fn list(&self) -> Vec<Instance> {
        let mut out = Vec::new();
        let Ok(mut entries) = tokio::fs::read_dir(&self.root).await else {
            return out;
        };
        while let Ok(Some(e)) = entries.next_entry().await {
            if let Some(name) = e.file_name().to_str() {
                if let Ok(i) = self.read(name).await {
                    out.push(i);
                }
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }
}

/// The instances recorded under a group's directory (`<dir>/<index>/`),
/// by index; incomplete records (no pid yet) are left out.
pub async fn members_in(dir: &Path) -> Vec<Instance> {
    let mut out: Vec<(u32, Instance)> = Vec::new();
    let Ok(mut entries) = tokio::fs::read_dir(dir).await else {
        return Vec::new();
    };
    while let Ok(Some(e)) = entries.next_entry().await {
        let Some(index) = e.file_name().to_str().and_then(|i| i.parse::<u32>().ok()) else {
            continue;
        };
        if let Ok(i) = read_record(&index.to_string(), &e.path()).await {
            out.push((index, i));
        }
    }
    out.sort_by_key(|(index, _)| *index);
    out.into_iter().map(|(_, i)| i).collect()
}

async fn read_record(name: &str, dir: &Path) -> Result<Instance> {
    let field = |f: &'static str| {
        let p = dir.join(f);
        async move {
            tokio::fs::read_to_string(&p)
                .await
                .map(|s| s.trim().to_string())
                .map_err(|_| Error::not_found(format!("local instance {name} ({})", p.display())))
        }
    };
    let bad = |what: &str, v: &str| {
        Error::invalid(format!("local instance {name} {what}"), format!("{v:?}"))
    };
    let pid = field("pid").await?;
    let port = field("port").await?;
    Ok(Instance {
        name: name.to_string(),
        pid: pid.parse().map_err(|_| bad("pid", &pid))?,
        port: port.parse().map_err(|_| bad("port", &port))?,
        machine_type: field("machine_type").await.unwrap_or_default(),
    })
}

/// Whether every existing directory on the way to `path` lets any user through.
fn traversable_by_anyone(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    absolute
        .ancestors()
        .all(|dir| match std::fs::metadata(dir) {
            Ok(m) => m.permissions().mode() & 0o001 != 0,
            Err(_) => true, // created later by the provisioner, 0755 under the usual umask
        })
}

/// FNV-1a of a path: a short name that stays the same across builds
/// (unlike `DefaultHasher`), so a deployment finds its data after an upgrade.
fn fnv1a(path: &Path) -> u64 {
    path.as_os_str()
        .as_encoded_bytes()
        .iter()
        .fold(0xcbf2_9ce4_8422_2325, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
        })
}

/// Whether a process is alive (and not a zombie).
pub fn is_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !matches!(
            stat.rsplit_once(") ")
                .and_then(|(_, rest)| rest.chars().next()),
            Some('Z') | Some('X')
        ),
        Err(_) => false,
    }
}

/// CPU seconds (user + system) a process has used, from `/proc/<pid>/stat`.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    parse_cpu_seconds(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// CPU seconds of a process tree as a server such as PostgreSQL forms it:
/// the process itself, its live children, and the children it has already
/// reaped (`cutime`/`cstime`), so a backend that exits keeps counting.
pub fn tree_cpu_seconds(pid: u32) -> Option<f64> {
    let own = Stat::parse(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)?;
    let mut total = own.cpu + own.reaped_children_cpu;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(child) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).ok();
        if let Some(s) = stat.as_deref().and_then(Stat::parse) {
            if s.ppid == pid {
                total += s.cpu;
            }
        }
    }
    Some(total)
}

/// The fields of `/proc/<pid>/stat` the metrics use.
struct Stat {
    ppid: u32,
    cpu: f64,
    reaped_children_cpu: f64,
}

impl Stat {
    fn parse(stat: &str) -> Option<Self> {
        // The command name may contain spaces and parentheses: fields start after the last ")".
        let (_, rest) = stat.rsplit_once(") ")?;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // rest starts at field 3 (state): ppid is field 4, utime 14, stime 15,
        // cutime 16, cstime 17.
        let ticks = |i: usize| -> Option<f64> { fields.get(i)?.parse::<f64>().ok() };
        Some(Self {
            ppid: fields.get(1)?.parse().ok()?,
            cpu: (ticks(11)? + ticks(12)?) / clock_ticks(),
            reaped_children_cpu: (ticks(13)? + ticks(14)?) / clock_ticks(),
        })
    }
}

/// CPU seconds from the text of a `/proc/<pid>/stat` file.
pub fn parse_cpu_seconds(stat: &str) -> Option<f64> {
    Some(Stat::parse(stat)?.cpu)
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions; it only reads a constant.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_stat_with_odd_command_names() {
        let stat = "1234 (my (weird) proc) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 100 1000 10";
        let secs = parse_cpu_seconds(stat).unwrap();
        assert!((secs - 300.0 / clock_ticks()).abs() < 1e-9);
        assert_eq!(parse_cpu_seconds("garbage"), None);
        let own = cpu_seconds(std::process::id()).unwrap();
        assert!(tree_cpu_seconds(std::process::id()).unwrap() >= own);
        assert!(is_alive(std::process::id()));
        assert!(!is_alive(u32::MAX));
    }

    #[test]
    fn data_lives_where_the_database_user_can_reach_it() {
        let open = std::env::temp_dir().join("infraai-open-state");
        let dir = InstanceDir::new(&open);
        assert_eq!(dir.data_path("db"), open.join("data/db"));
        assert!(traversable_by_anyone(Path::new("/tmp")));
        assert_eq!(fnv1a(Path::new("/root/x")), fnv1a(Path::new("/root/x")));
        assert_ne!(fnv1a(Path::new("/root/x")), fnv1a(Path::new("/root/y")));
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } == 0 {
            let closed = Path::new("/root/infraai/data/local");
            assert!(!traversable_by_anyone(closed), "/root is 0700 on Debian");
            let moved = InstanceDir::new(closed).data_path("db");
            assert!(
                moved.starts_with("/var/lib/infraai-local/"),
                "{}",
                moved.display()
            );
        }
    }
}
