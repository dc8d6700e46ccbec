//! Encoding shared by the backends: enums as their serde (snake_case) names,
//! timestamps as fixed-width RFC 3339 UTC strings (so text order is time order),
//! JSON columns with serde_json. Decoding never panics: bad stored data
//! becomes [`StoreError::Corrupt`].

#![cfg_attr(
    not(any(feature = "sqlite", feature = "redis", feature = "postgres")),
    allow(dead_code, unused_imports)
)]

use crate::error::{StoreError, StoreResult};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Where a value is decoded, for error messages.
#[derive(Clone, Copy)]
pub(crate) struct Site<'a> {
    pub component: &'static str,
    pub op: &'static str,
    pub what: &'a str,
}

impl<'a> Site<'a> {
    pub fn new(component: &'static str, op: &'static str, what: &'a str) -> Self {
        Site {
            component,
            op,
            what,
        }
    }

    pub fn corrupt(&self, field: &str, detail: impl std::fmt::Display) -> StoreError {
        StoreError::Corrupt {
            component: self.component,
            op: self.op,
            what: format!("{} field {field}", self.what),
            detail: detail.to_string(),
        }
    }

    /// A JSON column.
    pub fn json<T: DeserializeOwned>(&self, field: &str, text: &str) -> StoreResult<T> {
        serde_json::from_str(text).map_err(|e| self.corrupt(field, e))
    }

    /// An enum stored as its serde name.
    pub fn name<T: DeserializeOwned>(&self, field: &str, text: &str) -> StoreResult<T> {
        serde_json::from_value(serde_json::Value::String(text.to_owned()))
            .map_err(|e| self.corrupt(field, format!("{text:?}: {e}")))
    }

    /// A timestamp.
    pub fn time(&self, field: &str, text: &str) -> StoreResult<DateTime<Utc>> {
        DateTime::parse_from_rfc3339(text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| self.corrupt(field, format!("{text:?}: {e}")))
    }

    /// A UUID-based id.
    pub fn id<T: std::str::FromStr>(&self, field: &str, text: &str) -> StoreResult<T>
    where
        T::Err: std::fmt::Display,
    {
        text.parse().map_err(|e| self.corrupt(field, e))
    }
}

/// A timestamp as stored: `2026-01-02T03:04:05.123456789Z` (fixed width).
pub(crate) fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

/// The serde name of a unit enum variant (`pending`, `critical`, …).
pub(crate) fn name<T: Serialize>(
    component: &'static str,
    op: &'static str,
    v: &T,
) -> StoreResult<String> {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => Ok(s),
        Ok(other) => Err(StoreError::Corrupt {
            component,
            op,
            what: "enum value".into(),
            detail: format!("{other} is not a name"),
        }),
        Err(source) => Err(StoreError::Encode {
            component,
            op,
            what: "enum value",
            source,
        }),
    }
}

/// JSON text of a value.
pub(crate) fn json<T: Serialize + ?Sized>(
    component: &'static str,
    op: &'static str,
    what: &'static str,
    v: &T,
) -> StoreResult<String> {
    serde_json::to_string(v).map_err(|source| StoreError::Encode {
        component,
        op,
        what,
        source,
    })
}

pub(crate) use infraai_core::lifecycle::status_name;

/// The stored form of a page key (time, id), for `(created_at, id) < (…)`.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn page_after<I: std::fmt::Display>(
    key: Option<infraai_core::PageKey<I>>,
) -> (Option<String>, Option<String>) {
    key.map(|k| (time(k.created_at), k.id.to_string())).unzip()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_statuses_are_the_ones_the_schemas_and_queries_name() {
        // The SQL schemas' partial fingerprint indexes and the queries that
        // repeat their conditions name the closed statuses literally.
        let closed: Vec<_> = infraai_core::lifecycle::CLOSED
            .iter()
            .map(|s| status_name(*s))
            .collect();
        assert_eq!(closed, ["resolved", "expired"]);
    }

    #[test]
    fn times_are_fixed_width_and_round_trip() {
        let t = Utc::now();
        let s = time(t);
        assert_eq!(s.len(), "2026-01-02T03:04:05.123456789Z".len());
        let site = Site::new("sqlite", "test", "row");
        assert_eq!(site.time("at", &s).expect("parse"), t);
        assert!(matches!(
            site.time("at", "yesterday"),
            Err(StoreError::Corrupt { .. })
        ));
        assert!(matches!(
            site.name::<infraai_core::IncidentStatus>("status", "exploded"),
            Err(StoreError::Corrupt { .. })
        ));
    }
}
