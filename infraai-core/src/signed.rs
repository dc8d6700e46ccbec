//! What the chat channels share when they verify a signed request: hex
//! signatures, and the replay window of the timestamp signed with the body.

use crate::{Error, Result};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Bytes from hex text (either case); `None` when it is not hex.
pub fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok()))
        .collect()
}

/// [`Error::Unauthenticated`] unless `timestamp` (Unix seconds, as the
/// channel signed it) is within `window` of now, either way, so a captured
/// request cannot be replayed later. `channel` names the sender in the error.
pub fn check_replay_window(channel: &str, timestamp: &str, window: Duration) -> Result<()> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let age = (timestamp.parse::<u64>().ok()).map(|t| Duration::from_secs(now.abs_diff(t)));
    if age.is_some_and(|age| age <= window) {
        return Ok(());
    }
    Err(Error::Unauthenticated {
        detail: format!(
            "{channel} request timestamp {timestamp:?} is outside the {}-second replay window",
            window.as_secs()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_and_the_replay_window() {
        assert_eq!(decode_hex("00ffA0"), Some(vec![0, 255, 160]));
        assert_eq!(decode_hex("0"), None);
        assert_eq!(decode_hex("zz"), None);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let window = Duration::from_secs(300);
        assert!(check_replay_window("Slack", &now.to_string(), window).is_ok());
        assert!(check_replay_window("Slack", &(now + 299).to_string(), window).is_ok());
        let stale = check_replay_window("Slack", &(now - 310).to_string(), window).unwrap_err();
        assert!(
            stale.to_string().contains("Slack request timestamp"),
            "{stale}"
        );
        assert!(check_replay_window("Slack", "soon", window).is_err());
    }
}
