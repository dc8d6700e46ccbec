//! Encoding shared by the backends: enums as their serde (snake_case) names,
//! timestamps as fixed-width RFC 3339 UTC strings (so text order is time order),
//! JSON columns with serde_json. Decoding never panics: bad stored data
//! becomes [`StoreError::Corrupt`].

#![cfg_attr(
    not(any(feature = "sqlite", feature = "redis", feature = "postgres")),
    allow(dead_code)
)]

use crate::error::{StoreError, StoreResult};
use chrono::{DateTime, SecondsFormat, Utc};
use infraai_core::{AuditQuery, IncidentCounts};
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

/// The open incident of a fingerprint: at most one, by the partial unique
/// index `incidents_open_fingerprint`, whose condition this repeats (both
/// stores' schemas name the same closed statuses).
pub(crate) const OPEN_OF_FINGERPRINT: &str = "SELECT id, status FROM incidents \
     WHERE fingerprint = $1 AND status NOT IN ('resolved', 'expired')";

/// The latest closed incident of a fingerprint, from the partial index
/// `incidents_closed_fingerprint`, whose condition this repeats. Asked only
/// when the fingerprint has no open incident, so it is the latest of all.
pub(crate) const LATEST_CLOSED_OF_FINGERPRINT: &str = "SELECT id, status, started_at \
     FROM incidents WHERE fingerprint = $1 AND status IN ('resolved', 'expired') \
     ORDER BY created_at DESC LIMIT 1";

/// SQL that counts incidents by status (`status`, count rows); the same in
/// every SQL store.
pub(crate) const COUNT_BY_STATUS: &str = "SELECT status, COUNT(*) FROM incidents GROUP BY status";

/// The audit listing for `q`'s filter, the same in every SQL store (`$n`
/// parameters: the incident, the run, the limit). Naming the filtered column
/// (`incident_id = $1`) lets the planner take that index; one query for all
/// filters (`$1 IS NULL OR incident_id = $1`) hides it from SQLite always
/// and from a PostgreSQL generic plan, and the listing then walks the whole
/// table newest first.
pub(crate) fn audit_sql(q: &AuditQuery) -> String {
    let filter = match (q.incident_id, q.run_id) {
        (Some(_), _) => "incident_id = $1 AND (CAST($2 AS TEXT) IS NULL OR run_id = $2)",
        (None, Some(_)) => "CAST($1 AS TEXT) IS NULL AND run_id = $2",
        (None, None) => "CAST($1 AS TEXT) IS NULL AND CAST($2 AS TEXT) IS NULL",
    };
    format!(
        "SELECT id, at, step, incident_id, run_id, actor, input_json, reasoning, confidence, \
         outcome, replica FROM audit WHERE {filter} ORDER BY seq DESC LIMIT $3"
    )
}

/// [`IncidentCounts`] from the rows of two `GROUP BY` queries: (status name,
/// count) and (the recommended action's `type`, count). A name that does not
/// parse is corruption.
pub(crate) fn incident_counts(
    component: &'static str,
    by_status: Vec<(Option<String>, i64)>,
    by_action: Vec<(Option<String>, i64)>,
) -> StoreResult<IncidentCounts> {
    let site = Site::new(component, "incident_counts", "incident counts");
    let count = |n: i64| u64::try_from(n).unwrap_or(0);
    let mut counts = IncidentCounts::default();
    for (status, n) in by_status {
        let status = site.name("status", status.as_deref().unwrap_or_default())?;
        counts.by_status.insert(status, count(n));
    }
    for (kind, n) in by_action {
        let kind = site.name(
            "recommended_action.type",
            kind.as_deref().unwrap_or_default(),
        )?;
        counts.by_action.insert(kind, count(n));
    }
    Ok(counts)
}

pub(crate) use infraai_core::lifecycle::status_name;

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
