//! Keyset pagination: a page of items newest first ends at a key, and the
//! next page holds what comes strictly after it in the order. Items created
//! meanwhile are newer than every key already handed out, so a client paging
//! through sees each item that existed when it started exactly once.

use chrono::{DateTime, Utc};
use std::fmt;
use std::str::FromStr;

/// Where a page ends: the creation time and id of its last item, in the
/// order newest first (ties by id, highest first). Shown to clients as an
/// opaque cursor (its [`fmt::Display`] form, parsed back by [`FromStr`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageKey<I> {
    /// The last item's creation time.
    pub created_at: DateTime<Utc>,
    /// The last item's id.
    pub id: I,
}

impl<I: Ord + Copy> PageKey<I> {
    /// Whether an item created at `created_at` with `id` comes after this
    /// key, newest first.
    pub fn precedes(&self, created_at: DateTime<Utc>, id: I) -> bool {
        (created_at, id) < (self.created_at, self.id)
    }
}

impl PageKey<crate::IncidentId> {
    /// The key of a page that ends at `incident`.
    pub fn of(incident: &crate::domain::Incident) -> Self {
        Self {
            created_at: incident.created_at,
            id: incident.id,
        }
    }
}

impl<I: fmt::Display> fmt::Display for PageKey<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nanos = self.created_at.timestamp_nanos_opt().unwrap_or(i64::MAX);
        write!(f, "{nanos}_{}", self.id)
    }
}

impl<I: FromStr> FromStr for PageKey<I> {
    type Err = crate::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad =
            || crate::Error::invalid("cursor", format!("{s:?} is not a cursor this server gave"));
        let (nanos, id) = s.split_once('_').ok_or_else(bad)?;
        Ok(Self {
            created_at: DateTime::from_timestamp_nanos(nanos.parse().map_err(|_| bad())?),
            id: id.parse().map_err(|_| bad())?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::IncidentId;

    #[test]
    fn a_cursor_round_trips_and_nonsense_is_refused() {
        let key = PageKey {
            created_at: Utc::now(),
            id: IncidentId::new(),
        };
        assert_eq!(key.to_string().parse::<PageKey<IncidentId>>().unwrap(), key);
        for bad in ["", "12", "x_y", "12_not-a-uuid"] {
            assert!(bad.parse::<PageKey<IncidentId>>().is_err(), "{bad}");
        }
        let later = key.created_at + chrono::Duration::nanoseconds(1);
        assert!(!key.precedes(later, key.id) && !key.precedes(key.created_at, key.id));
        assert!(key.precedes(key.created_at - chrono::Duration::nanoseconds(1), key.id));
    }
}
