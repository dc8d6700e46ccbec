//! Tokens generated at first start and kept in the data directory.

use anyhow::Context;
use std::io::{Read, Write};
use std::path::Path;

/// Where a token came from.
#[derive(Debug, PartialEq, Eq)]
pub enum Origin {
    /// Given in the configuration.
    Configured,
    /// Read from the data directory (generated on an earlier start).
    Stored,
    /// Generated now and written to the data directory.
    Generated,
}

/// 32 random bytes from the OS, hex encoded.
fn random_token() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("reading /dev/urandom for a new token")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The configured token, else the one stored in `dir/file`, else a new one
/// written there (mode 0600).
pub fn load_or_create(
    configured: Option<&str>,
    dir: &Path,
    file: &str,
) -> anyhow::Result<(String, Origin)> {
    if let Some(t) = configured {
        return Ok((t.to_string(), Origin::Configured));
    }
    let path = dir.join(file);
    if let Ok(text) = std::fs::read_to_string(&path) {
        let t = text.trim();
        if !t.is_empty() {
            return Ok((t.to_string(), Origin::Stored));
        }
    }
    let token = random_token()?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options
        .open(&path)
        .with_context(|| format!("writing {}", path.display()))?;
    writeln!(f, "{token}").with_context(|| format!("writing {}", path.display()))?;
    Ok((token, Origin::Generated))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_once_then_reused() {
        let dir = std::env::temp_dir().join(format!("infraai-secrets-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (a, o) = load_or_create(None, &dir, "t").unwrap();
        assert_eq!(o, Origin::Generated);
        assert_eq!(a.len(), 64);
        let (b, o) = load_or_create(None, &dir, "t").unwrap();
        assert_eq!((a.as_str(), o), (b.as_str(), Origin::Stored));
        let (c, o) = load_or_create(Some("x"), &dir, "t").unwrap();
        assert_eq!((c.as_str(), o), ("x", Origin::Configured));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
