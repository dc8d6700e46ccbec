//! Versioned migrations, compiled into the binary and applied at open under
//! an advisory lock, so replicas opening one database at once migrate it once.

use super::{pg, COMPONENT};
use crate::codec;
use crate::error::{StoreError, StoreResult};
use deadpool_postgres::Object;

/// The schema changes (version, name, SQL). Versions start at 1 and never
/// change once released.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "initial", include_str!("migrations/0001_initial.sql")),
    (2, "jobs", include_str!("migrations/0002_jobs.sql")),
    (
        3,
        "closed_fingerprint_index",
        include_str!("migrations/0003_closed_fingerprint_index.sql"),
    ),
    (4, "settings", include_str!("migrations/0004_settings.sql")),
    (
        5,
        "decision_action_index",
        include_str!("migrations/0005_decision_action_index.sql"),
    ),
    (
        6,
        "status_page_index",
        include_str!("migrations/0006_status_page_index.sql"),
    ),
];

/// The schema version this build writes.
pub(crate) const LATEST: i64 = 6;

/// The advisory lock key held while migrating (`infraai` + `migr` in ASCII).
/// Transaction-scoped: `pg_advisory_xact_lock` releases it at commit or
/// rollback, so a replica that dies mid-migration frees it with its session.
const MIGRATION_LOCK: i64 = 0x696e_6672_6d69_6772;

/// Applies every migration newer than the database's, in one transaction
/// (PostgreSQL's DDL is transactional: all or none) that first takes the
/// migration lock. A second replica waits for the lock, then finds nothing
/// to do. A database from a newer build is refused.
pub(super) async fn migrate(client: &mut Object) -> StoreResult<i64> {
    const OP: &str = "migrate";
    let tx = client.transaction().await.map_err(pg(OP))?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(pg(OP))?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (\
             version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)",
    )
    .await
    .map_err(pg(OP))?;
    let current: i64 = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0)::BIGINT FROM schema_migrations",
            &[],
        )
        .await
        .map_err(pg(OP))?
        .try_get(0)
        .map_err(pg(OP))?;
    if current > LATEST {
        return Err(StoreError::SchemaTooNew {
            component: COMPONENT,
            found: current,
            supported: LATEST,
        });
    }
    let now = codec::time(chrono::Utc::now());
    for &(version, name, sql) in MIGRATIONS.iter().filter(|m| m.0 > current) {
        let at = |e| StoreError::Postgres {
            op: OP,
            id: Some(format!("schema version {version}")),
            source: e,
        };
        tx.batch_execute(sql).await.map_err(at)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
            &[&version, &name, &now],
        )
        .await
        .map_err(at)?;
        tracing::info!(version, name, "postgres: migration applied");
    }
    tx.commit().await.map_err(pg(OP))?;
    Ok(current)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_numbered_in_order_and_latest_is_the_last() {
        for (n, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.0, n as i64 + 1, "{} is out of order", m.1);
        }
        assert_eq!(MIGRATIONS.last().map(|m| m.0), Some(LATEST));
    }

    #[test]
    fn the_open_fingerprint_index_names_the_closed_statuses() {
        // The partial unique index must exclude exactly the closed statuses.
        let mut closed: Vec<_> = infraai_core::lifecycle::CLOSED
            .iter()
            .map(|s| format!("'{}'", codec::status_name(*s)))
            .collect();
        closed.sort();
        let sql = MIGRATIONS[0].2;
        let index = &sql[sql.find("incidents_open_fingerprint").expect("the index")..];
        let list = index
            .split_once("WHERE status NOT IN (")
            .and_then(|(_, rest)| rest.split_once(')'))
            .map(|(list, _)| list)
            .expect("the closed-status list");
        let mut named: Vec<String> = list.split(',').map(|n| n.trim().to_string()).collect();
        named.sort();
        assert_eq!(named, closed);
        // The closed-fingerprint index and the ingest's lookups name them too.
        assert!(MIGRATIONS[2]
            .2
            .contains(&format!("WHERE status IN ({})", list)));
        assert!(crate::sql::OPEN_OF_FINGERPRINT.contains(&format!("status NOT IN ({})", list)));
        assert!(crate::sql::LATEST_CLOSED_OF_FINGERPRINT.contains(&format!("status IN ({})", list)));
    }
}
