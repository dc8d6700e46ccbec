//! Where local instances record themselves: `<state_dir>/instances/<name>/`
//! holds `pid`, `port` and `machine_type`, written by the instance's
//! Terraform provisioner and read by metrics, actions and clean-up.

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

/// The instances directory of a local cloud.
#[derive(Clone, Debug)]
pub struct InstanceDir {
    root: PathBuf,
}

impl InstanceDir {
    /// The instances under `<state_dir>/instances`.
    pub fn new(state_dir: impl AsRef<Path>) -> Self {
        Self {
            root: state_dir.as_ref().join("instances"),
        }
    }

    /// The directory of one instance.
    pub fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// Reads an instance's record; [`Error::NotFound`] when it has none.
    pub async fn read(&self, name: &str) -> Result<Instance> {
        let dir = self.path(name);
        let field = |f: &'static str| {
            let p = dir.join(f);
            async move {
                tokio::fs::read_to_string(&p)
                    .await
                    .map(|s| s.trim().to_string())
                    .map_err(|_| {
                        Error::not_found(format!("local instance {name} ({})", p.display()))
                    })
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

    /// Every recorded instance.
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

/// CPU seconds from the text of a `/proc/<pid>/stat` file.
pub fn parse_cpu_seconds(stat: &str) -> Option<f64> {
    // The command name may contain spaces and parentheses: fields start after the last ")".
    let (_, rest) = stat.rsplit_once(") ")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime is field 14, stime field 15.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / clock_ticks())
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
        assert!(cpu_seconds(std::process::id()).is_some());
        assert!(is_alive(std::process::id()));
        assert!(!is_alive(u32::MAX));
    }
}
