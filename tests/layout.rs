//! Layout rules of the code base that no compiler checks: file sizes in core
//! and the server, and core naming no cloud (ARCHITECTURE.md, rule 7). The
//! 80-line function limit is clippy's `too_many_lines` (see `clippy.toml`).

use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable source folder") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn sources(dir: &str) -> Vec<(PathBuf, String)> {
    let mut files = Vec::new();
    rust_files(&Path::new(ROOT).join(dir), &mut files);
    assert!(!files.is_empty(), "no Rust file under {dir}");
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("UTF-8 source");
            (p, text)
        })
        .collect()
}

#[test]
fn no_file_in_core_or_the_server_is_longer_than_600_lines() {
    let long: Vec<String> = ["infraai-core/src", "examples/server/src"]
        .iter()
        .flat_map(|dir| sources(dir))
        .filter(|(_, text)| text.lines().count() > 600)
        .map(|(p, text)| format!("{} ({} lines)", p.display(), text.lines().count()))
        .collect();
    assert!(long.is_empty(), "files over 600 lines: {long:#?}");
}

#[test]
fn core_names_no_cloud_outside_tests_and_the_simulated_cloud() {
    let needles = ["e2-", "googleapi", "us-central1", "asia-south1"];
    let mut found = Vec::new();
    for (path, text) in sources("infraai-core/src") {
        let test_only = path.file_name().is_some_and(|n| n == "tests.rs");
        let skipped = |c: std::path::Component| {
            ["testing", "tests"].contains(&c.as_os_str().to_str().unwrap_or(""))
        };
        if test_only || path.components().any(skipped) {
            continue; // unit tests (`tests.rs`, `tests/`), and the simulated cloud's data
        }
        // Unit tests sit at the end of a file, after `#[cfg(test)]`.
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        for (n, line) in code.lines().enumerate() {
            let lower = line.to_lowercase();
            if needles.iter().any(|w| lower.contains(w)) {
                found.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(found.is_empty(), "cloud names in core: {found:#?}");
}
