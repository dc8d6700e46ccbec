//! The error type of this crate and its mapping into [`infraai_core::Error`].

/// What went wrong in a store, with the operation and the object it was about.
///
/// Semantic outcomes (not found, conflict, invalid move) map to the matching
/// kinds of [`infraai_core::Error`]; backend failures and unreadable stored
/// data map to [`infraai_core::Error::Backend`] with `component` set to the
/// backend name (`sqlite` or `redis`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// SQLite reported an error.
    #[cfg(feature = "sqlite")]
    #[error("sqlite: {op}{}: {source}", Ctx(.id))]
    Sqlite {
        /// The store operation, e.g. `record_alert`.
        op: &'static str,
        /// The object it was about, when there is one.
        id: Option<String>,
        /// The SQLite error (shared: one failed commit fails every write of its group).
        #[source]
        source: std::sync::Arc<rusqlite::Error>,
    },
    /// Redis (or the connection to it) reported an error.
    #[cfg(feature = "redis")]
    #[error("redis: {op}{}: {source}", Ctx(.id))]
    Redis {
        /// The store operation.
        op: &'static str,
        /// The object it was about, when there is one.
        id: Option<String>,
        /// The client error (never contains the connection URL).
        #[source]
        source: redis::RedisError,
    },
    /// PostgreSQL (or the connection to it) reported an error. Its text never
    /// holds the connection URL or the password.
    #[cfg(feature = "postgres")]
    #[error("postgres: {op}{}: {source}", Ctx(.id))]
    Postgres {
        /// The store operation.
        op: &'static str,
        /// The object it was about, when there is one.
        id: Option<String>,
        /// The client error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// Stored data cannot be read back (unknown status string, corrupted JSON
    /// column, bad timestamp). Never retryable: the data must be repaired.
    #[error("{component}: {op}: corrupt stored data in {what}: {detail}")]
    Corrupt {
        /// `sqlite` or `redis`.
        component: &'static str,
        /// The store operation.
        op: &'static str,
        /// The row or key, e.g. `incident 0190… column decision_json`.
        what: String,
        /// What is wrong.
        detail: String,
    },
    /// A value could not be encoded for storage.
    #[error("{component}: {op}: cannot encode {what}: {source}")]
    Encode {
        /// `sqlite` or `redis`.
        component: &'static str,
        /// The store operation.
        op: &'static str,
        /// What was being encoded.
        what: &'static str,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },
    /// The database was written by a newer version of this crate.
    #[error(
        "{component}: database schema version {found} is newer than the supported {supported}"
    )]
    SchemaTooNew {
        /// `sqlite` or `postgres`.
        component: &'static str,
        /// The schema version of the database (`PRAGMA user_version` of a
        /// SQLite file, the newest row of `schema_migrations` in PostgreSQL).
        found: i64,
        /// The newest migration this build knows.
        supported: i64,
    },
    /// The SQLite writer thread has stopped (the store is closing or a write panicked).
    #[error("sqlite: {op}: the writer thread has stopped")]
    WriterStopped {
        /// The store operation.
        op: &'static str,
    },
    /// A blocking task could not run (the runtime is shutting down).
    #[error("{component}: {op}: background task failed: {detail}")]
    Task {
        /// `sqlite` or `redis`.
        component: &'static str,
        /// The store operation.
        op: &'static str,
        /// Why.
        detail: String,
    },
    /// The object does not exist.
    #[error("{what} not found")]
    NotFound {
        /// What was looked up, e.g. `incident 0190…`.
        what: String,
    },
    /// The stored state does not allow the operation (lost race, already decided).
    #[error("{what}: conflict: {detail}")]
    Conflict {
        /// The object.
        what: String,
        /// Why.
        detail: String,
    },
    /// The request is invalid (e.g. a move the incident lifecycle forbids).
    #[error("invalid {what}: {detail}")]
    Invalid {
        /// What is invalid.
        what: String,
        /// Why.
        detail: String,
    },
}

impl From<infraai_core::lifecycle::Refusal> for StoreError {
    fn from(r: infraai_core::lifecycle::Refusal) -> Self {
        use infraai_core::lifecycle::Refusal;
        match r {
            Refusal::Conflict { what, detail } => StoreError::Conflict { what, detail },
            Refusal::Invalid { what, detail } => StoreError::Invalid { what, detail },
        }
    }
}

/// Formats an optional object id as ` (id)`.
#[cfg(any(feature = "sqlite", feature = "redis", feature = "postgres"))]
struct Ctx<'a>(&'a Option<String>);

#[cfg(any(feature = "sqlite", feature = "redis", feature = "postgres"))]
impl std::fmt::Display for Ctx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(id) => write!(f, " ({id})"),
            None => Ok(()),
        }
    }
}

impl StoreError {
    /// A compare-and-set write of setting `key` that expected version
    /// `expected` found `current` (0: absent), as the in-memory store words it.
    #[cfg(any(feature = "sqlite", feature = "redis", feature = "postgres"))]
    pub(crate) fn setting_conflict(key: &str, current: u64, expected: u64) -> Self {
        StoreError::Conflict {
            what: format!("setting {key}"),
            detail: format!("version {current}, not {expected}"),
        }
    }

    /// Whether the same call may succeed if repeated later (database busy or
    /// locked, Redis connection lost or loading, PostgreSQL unreachable,
    /// shutting down, or a serialization failure or deadlock).
    pub fn is_retryable(&self) -> bool {
        match self {
            #[cfg(feature = "sqlite")]
            StoreError::Sqlite { source, .. } => matches!(
                source.sqlite_error_code(),
                Some(
                    rusqlite::ErrorCode::DatabaseBusy
                        | rusqlite::ErrorCode::DatabaseLocked
                        | rusqlite::ErrorCode::DiskFull
                )
            ),
            #[cfg(feature = "redis")]
            StoreError::Redis { source, .. } => {
                source.is_timeout()
                    || source.is_connection_dropped()
                    || source.is_connection_refusal()
                    || source.is_io_error()
                    || matches!(
                        source.kind(),
                        redis::ErrorKind::BusyLoadingError
                            | redis::ErrorKind::TryAgain
                            | redis::ErrorKind::MasterDown
                    )
            }
            #[cfg(feature = "postgres")]
            StoreError::Postgres { source, .. } => crate::postgres::is_transient(source),
            StoreError::Task { .. } => true,
            _ => false,
        }
    }

    /// The backend and the store operation, for [`infraai_core::Error::Backend`].
    fn site(&self) -> (&'static str, &'static str) {
        match self {
            #[cfg(feature = "sqlite")]
            StoreError::Sqlite { op, .. } => ("sqlite", op),
            #[cfg(feature = "redis")]
            StoreError::Redis { op, .. } => ("redis", op),
            #[cfg(feature = "postgres")]
            StoreError::Postgres { op, .. } => ("postgres", op),
            StoreError::Corrupt { component, op, .. }
            | StoreError::Encode { component, op, .. }
            | StoreError::Task { component, op, .. } => (component, op),
            StoreError::SchemaTooNew { component, .. } => (component, "open"),
            StoreError::WriterStopped { op } => ("sqlite", op),
            _ => ("store", ""),
        }
    }
}

impl From<StoreError> for infraai_core::Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { what } => infraai_core::Error::NotFound { what },
            StoreError::Conflict { what, detail } => infraai_core::Error::Conflict { what, detail },
            StoreError::Invalid { what, detail } => infraai_core::Error::Invalid { what, detail },
            other => {
                let ((component, op), retryable) = (other.site(), other.is_retryable());
                infraai_core::Error::backend(component, op, retryable, other)
            }
        }
    }
}

/// Result alias of this crate.
pub type StoreResult<T> = Result<T, StoreError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn semantic_kinds_map_to_core_kinds_and_corruption_is_a_backend_error() {
        let e: infraai_core::Error = StoreError::Conflict {
            what: "incident x".into(),
            detail: "already decided".into(),
        }
        .into();
        assert!(matches!(e, infraai_core::Error::Conflict { .. }));
        let e: infraai_core::Error = StoreError::Corrupt {
            component: "sqlite",
            op: "get_incident",
            what: "incident x column status".into(),
            detail: "unknown variant".into(),
        }
        .into();
        match e {
            infraai_core::Error::Backend {
                component,
                op,
                retryable,
                ..
            } => assert_eq!(
                (component.as_str(), op.as_str(), retryable),
                ("sqlite", "get_incident", false)
            ),
            other => panic!("expected a backend error, got {other:?}"),
        }
    }
}
