//! A wrapper that keeps secrets out of logs, errors and audit records.

use base64::Engine;
use serde::{Deserialize, Deserializer};
use std::fmt;
use subtle::ConstantTimeEq;

/// A secret string (API key, bot token, webhook secret).
///
/// `Debug` and `Display` print `***`; the value is only reachable through
/// [`Secret::expose`], which makes every use greppable. It deserializes from a
/// plain string (so it can sit in configuration) but deliberately does not
/// implement `Serialize`, so it cannot leak into a stored or returned document.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret value. Only call this where the value leaves the process
    /// (an HTTP header, a constant-time comparison).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the secret is empty (an unset configuration value).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `given` is this secret, compared in constant time.
    pub fn matches(&self, given: &str) -> bool {
        bool::from(self.0.as_bytes().ct_eq(given.as_bytes()))
    }
}

/// Whether an `Authorization` header value is `Basic` credentials for `user`
/// and `password`. Both halves are compared in constant time, whatever the
/// first gives; a missing or malformed header matches nothing.
pub fn basic_auth_matches(header: Option<&str>, user: &str, password: &Secret) -> bool {
    header
        .and_then(|h| h.strip_prefix("Basic "))
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|pair| {
            pair.split_once(':')
                .map(|(u, p)| (u.to_string(), p.to_string()))
        })
        .is_some_and(|(u, p)| {
            bool::from(u.as_bytes().ct_eq(user.as_bytes())) & password.matches(&p)
        })
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_and_basic_auth() {
        let s = Secret::new("s3cret");
        assert!(s.matches("s3cret") && !s.matches("s3cre") && !s.matches(""));
        // "monitoring:s3cret"
        let ok = "Basic bW9uaXRvcmluZzpzM2NyZXQ=";
        assert!(basic_auth_matches(Some(ok), "monitoring", &s));
        assert!(!basic_auth_matches(Some(ok), "other", &s));
        assert!(!basic_auth_matches(
            Some(ok),
            "monitoring",
            &Secret::new("x")
        ));
        for bad in [
            None,
            Some("Bearer s3cret"),
            Some("Basic !!"),
            Some("Basic czNjcmV0"),
        ] {
            assert!(!basic_auth_matches(bad, "monitoring", &s), "{bad:?}");
        }
    }

    #[test]
    fn debug_and_display_hide_the_value() {
        let s = Secret::new("tok-123");
        assert_eq!(format!("{s:?} {s}"), "*** ***");
        assert_eq!(format!("{:?}", Some(s.clone())), "Some(***)");
        assert_eq!(s.expose(), "tok-123");
    }
}
