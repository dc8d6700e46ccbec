//! Versioned migrations, compiled into the binary and applied at open.

use crate::codec;
use crate::error::{StoreError, StoreResult};
use rusqlite::{params, Connection};
use std::sync::Arc;

/// The schema changes (version, name, SQL). Versions start at 1 and never
/// change once released.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "initial", include_str!("migrations/0001_initial.sql")),
    (2, "cursors", include_str!("migrations/0002_cursors.sql")),
    (
        3,
        "fingerprint_history",
        include_str!("migrations/0003_fingerprint_history.sql"),
    ),
    (4, "jobs", include_str!("migrations/0004_jobs.sql")),
    (
        5,
        "audit_partial_indexes",
        include_str!("migrations/0005_audit_partial_indexes.sql"),
    ),
    (
        6,
        "closed_fingerprint_index",
        include_str!("migrations/0006_closed_fingerprint_index.sql"),
    ),
    (7, "settings", include_str!("migrations/0007_settings.sql")),
    (
        8,
        "decision_action_index",
        include_str!("migrations/0008_decision_action_index.sql"),
    ),
    (
        9,
        "status_page_index",
        include_str!("migrations/0009_status_page_index.sql"),
    ),
];

/// The schema version this build writes.
pub(crate) const LATEST: i64 = 9;

fn err(version: i64) -> impl Fn(rusqlite::Error) -> StoreError {
    move |e| StoreError::Sqlite {
        op: "migrate",
        id: Some(format!("schema version {version}")),
        source: Arc::new(e),
    }
}

/// Applies every migration newer than the file's `user_version`, each in its
/// own transaction together with the version bump.
pub(crate) fn migrate(conn: &mut Connection) -> StoreResult<()> {
    let current: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(err(0))?;
    if current > LATEST {
        return Err(StoreError::SchemaTooNew {
            component: "sqlite",
            found: current,
            supported: LATEST,
        });
    }
    for &(version, name, sql) in MIGRATIONS.iter().filter(|m| m.0 > current) {
        let tx = conn.transaction().map_err(err(version))?;
        tx.execute_batch(sql).map_err(err(version))?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)",
            params![version, name, codec::time(chrono::Utc::now())],
        )
        .map_err(err(version))?;
        // user_version lives in the file header, which is part of the transaction.
        tx.pragma_update(None, "user_version", version)
            .map_err(err(version))?;
        tx.commit().map_err(err(version))?;
        tracing::info!(version, name, "sqlite: migration applied");
    }
    Ok(())
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
    fn a_version_1_file_is_upgraded_in_place() {
        let mut conn = Connection::open_in_memory().expect("open");
        let tx = conn.transaction().expect("tx");
        tx.execute_batch(MIGRATIONS[0].2).expect("v1");
        tx.pragma_update(None, "user_version", 1).expect("version");
        tx.execute(
            "INSERT INTO kill_switch (id, engaged, set_by) VALUES (1, 1, 'web:a')",
            [],
        )
        .expect("data");
        tx.commit().expect("commit");
        migrate(&mut conn).expect("upgrade");
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .expect("version");
        assert_eq!(version, LATEST);
        let engaged: i64 = conn
            .query_row("SELECT engaged FROM kill_switch", [], |r| r.get(0))
            .expect("data kept");
        assert_eq!(engaged, 1);
        conn.execute(
            "INSERT INTO cursors (name, value, updated_at) VALUES ('x', 1, 't')",
            [],
        )
        .expect("the new table exists");
        conn.execute(
            "INSERT INTO settings (key, value_json, version, updated_at) VALUES ('k', '1', 1, 't')",
            [],
        )
        .expect("the settings table exists");
    }

    #[test]
    fn migrate_is_idempotent_and_refuses_newer_files() {
        let mut conn = Connection::open_in_memory().expect("open");
        migrate(&mut conn).expect("first");
        migrate(&mut conn).expect("second is a no-op");
        let rows: i64 = conn
            .query_row("SELECT COUNT(*) FROM schema_migrations", [], |r| r.get(0))
            .expect("count");
        assert_eq!(rows, LATEST);
        conn.pragma_update(None, "user_version", LATEST + 1)
            .expect("bump");
        assert!(matches!(
            migrate(&mut conn),
            Err(StoreError::SchemaTooNew { found, .. }) if found == LATEST + 1
        ));
    }
}
