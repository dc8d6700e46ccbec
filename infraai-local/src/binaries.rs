//! Finding the server programs databases and caches run, with an error that
//! names the Debian package to install when one is missing.

use infraai_core::{Error, Result};
use std::path::{Path, PathBuf};

/// The directory holding PostgreSQL's `initdb`, `postgres` and `pg_isready`:
/// the newest `/usr/lib/postgresql/*/bin` (Debian), else the directory of
/// `initdb` on `PATH`.
pub fn postgres_bin_dir() -> Result<PathBuf> {
    let complete = |d: &Path| {
        ["initdb", "postgres", "pg_isready"]
            .iter()
            .all(|p| d.join(p).is_file())
    };
    let mut debian: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, bin)| complete(bin))
        .collect();
    debian.sort();
    debian
        .pop()
        .map(|(_, bin)| bin)
        .or_else(|| on_path("initdb").and_then(|p| p.parent().map(Path::to_path_buf)))
        .filter(|d| complete(d))
        .ok_or_else(|| missing("PostgreSQL (initdb, postgres, pg_isready)", "postgresql"))
}

/// `redis-server` on `PATH`.
pub fn redis_server() -> Result<PathBuf> {
    on_path("redis-server").ok_or_else(|| missing("redis-server", "redis-server"))
}

fn on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

fn missing(what: &str, package: &str) -> Error {
    Error::invalid(
        "local cloud",
        format!(
            "{what} is not installed on this machine; install Debian's package `{package}` (apt-get install {package}) to run this plan's resource locally"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_program_names_its_debian_package() {
        assert!(on_path("surely-not-a-program-here").is_none());
        let e = missing("redis-server", "redis-server").to_string();
        assert!(e.contains("apt-get install redis-server"), "{e}");
    }
}
