//! # infraai-store
//!
//! Durable [`MetadataStore`](infraai_core::MetadataStore) implementations for
//! infraai, each behind a cargo feature:
//!
//! * `sqlite` (default): [`SqliteStore`], the embedded store — one SQLite file
//!   (bundled SQLite, WAL), migrations applied at open, a dedicated writer
//!   thread with group commit. **Durability:** a write returns `Ok` only after
//!   its transaction committed with `synchronous = FULL`, so every acknowledged
//!   write survives a process crash (`SIGKILL`) and, on a disk that honours
//!   `fsync`, an OS crash or power loss. See [`sqlite`] for the details.
//! * `redis`: `redis::RedisStore`, a shared store on a
//!   Redis server; every multi-key change is one Lua script (atomic), keys are
//!   namespaced by a configurable prefix. Durability is the server's: see
//!   the `redis` module.
//! * `postgres`: `postgres::PostgresStore`, a shared store on a PostgreSQL
//!   server for several replicas: row locks and advisory locks in one
//!   transaction per change, migrations applied at open under an advisory
//!   lock, a small connection pool; TLS (rustls, certificate verified) with
//!   `sslmode=require`, plain TCP otherwise. See the `postgres` module.
//!
//! All three pass the conformance suite of `infraai_core::testing::conformance`:
//! deduplication by fingerprint is an upsert, an incident only moves along
//! its lifecycle ([`IncidentStatus::can_move_to`](infraai_core::IncidentStatus::can_move_to)),
//! claiming an execution succeeds exactly once and never while the kill-switch
//! is engaged (checked in the same transaction), and the kill-switch moves
//! incidents to `blocked` and back in the same transaction as the switch.
//! Leased jobs (background work that runs once across replicas) are taken
//! by exactly one of many concurrent claimers, renewed only by their holder,
//! and taken over once a lease ends.
//! The audit log is append-only (SQLite and PostgreSQL refuse `UPDATE`/`DELETE`
//! on it with triggers). Stored data that cannot be read back (an unknown status, a
//! corrupted JSON column) is a typed error, [`StoreError::Corrupt`], never a panic.
//!
//! ## Example
//!
//! ```
//! # #[cfg(feature = "sqlite")]
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
//! use infraai_core::{AlertState, IncidentStore, IngestOutcome, KillSwitchRequest, RecordAlert};
//! use infraai_store::SqliteStore;
//!
//! let dir = std::env::temp_dir().join(format!("infraai-doc-{}", std::process::id()));
//! let path = dir.join("infraai.db");
//! # let _ = std::fs::remove_dir_all(&dir);
//! let store = SqliteStore::open_path(&path).await?;
//!
//! let alert = infraai_core::Alert {
//!     source: "alertmanager".into(),
//!     fingerprint: "cpu-web-1".into(),
//!     policy_name: "High CPU".into(),
//!     resource: "web-1".into(),
//!     resource_type: "gce_instance".into(),
//!     cloud: "gcp".into(),
//!     metric: "compute.googleapis.com/instance/cpu/utilization".into(),
//!     value: Some(0.93),
//!     threshold: Some(0.8),
//!     severity: infraai_core::Severity::Warning,
//!     state: AlertState::Firing,
//!     started_at: chrono::Utc::now(),
//!     labels: Default::default(),
//!     raw: serde_json::Value::Null,
//! };
//! // When this returns, the alert is on disk.
//! assert_eq!(store.record_alert(&alert).await?.outcome, IngestOutcome::Opened);
//! assert_eq!(store.record_alert(&alert).await?.outcome, IngestOutcome::Repeated);
//!
//! let stop = KillSwitchRequest::engage("web:alice", Some("maintenance"));
//! store.set_kill_switch(stop).await?;
//! drop(store);
//!
//! // Everything, the kill-switch included, survives a restart.
//! let store = SqliteStore::open_path(&path).await?;
//! assert!(store.kill_switch().await?.engaged);
//! # drop(store);
//! # let _ = std::fs::remove_dir_all(&dir);
//! # Ok::<(), infraai_core::Error>(())
//! # }).unwrap();
//! ```

#![deny(missing_docs)]

mod codec;
mod error;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql;
#[cfg(feature = "sqlite")]
pub mod sqlite;

#[cfg(feature = "postgres")]
pub use self::postgres::{PostgresConfig, PostgresStore};
#[cfg(feature = "redis")]
pub use self::redis::{RedisConfig, RedisStore};
pub use error::{StoreError, StoreResult};
#[cfg(feature = "sqlite")]
pub use sqlite::{SqliteConfig, SqliteStore};
