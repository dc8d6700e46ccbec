//! `#[serde(with = "infraai_core::serde_secs")]`: a [`Duration`] as whole
//! seconds in configuration files.

use serde::{Deserialize, Deserializer, Serializer};
use std::time::Duration;

/// Writes whole seconds.
pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_secs())
}

/// Reads whole seconds.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    u64::deserialize(d).map(Duration::from_secs)
}
