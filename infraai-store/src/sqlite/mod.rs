//! The embedded [`MetadataStore`]: one SQLite file in WAL mode.
//!
//! * **Writes** go through one dedicated writer thread (never an async worker
//!   thread) that owns the only writing connection and commits every write
//!   waiting in its queue in one transaction (group commit): concurrent ingest
//!   pays one `fsync` per group instead of one per alert. Every check-and-set
//!   (deduplication, lifecycle moves, claims, the kill-switch) runs inside that
//!   single writer, so it is atomic and serialized with every other write.
//!   Each group starts with `BEGIN IMMEDIATE` (the file's write lock), so
//!   check-and-set stays atomic even when several stores or processes open
//!   the same file; they then take turns, waiting up to
//!   [`SqliteConfig::busy_timeout`] (a timeout is a retryable error).
//! * **Reads** run on [`SqliteConfig::max_readers`] threads of their own, each
//!   with one read-only connection (opened at its first read); WAL lets them
//!   proceed while the writer commits.
//! * **Durability:** WAL mode. A write method returns `Ok` only after the
//!   `COMMIT` of the transaction holding it has returned *and* the WAL file
//!   has been synced to disk (`fdatasync`) after that: the writer commits
//!   with `synchronous = NORMAL` and a sync thread of its own syncs the WAL
//!   for every group committed meanwhile, so the writer's work and the
//!   disk's sync overlap. An acknowledged write therefore survives a crash of
//!   the process (including `SIGKILL`) and, when the disk honours `fsync`, of
//!   the operating system or the power. Readers may see a committed write a
//!   moment before it is synced (and so before its caller is answered). A
//!   write that returned an error was rolled back, or committed but not known
//!   to be on disk (a failed sync); a write whose future was dropped before
//!   it returned may or may not have been committed.
//! * **Checkpoints** (copying the WAL into the database file) run on a
//!   third thread with a connection of its own, after commits and at most
//!   every 50 ms, so the writer never stops to copy pages and sync the
//!   database file. The writer's own automatic checkpoint is raised to
//!   16,384 pages (64 MiB of WAL) and only bounds the WAL if that thread
//!   falls behind.
//! * **Schema:** versioned migrations are compiled into the binary and applied
//!   at open (`PRAGMA user_version` and the `schema_migrations` table record
//!   them); a file from a newer version is refused.

mod incidents;
mod readers;
mod rows;
mod schema;
mod settings;
mod writer;

use crate::codec;
use crate::error::{StoreError, StoreResult};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use infraai_core::*;
use rows::rerr;
use rusqlite::{params, Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};
use std::time::Duration;
use tokio::sync::oneshot;

const COMPONENT: &str = "sqlite";

/// How to open a [`SqliteStore`].
#[derive(Clone, Debug)]
pub struct SqliteConfig {
    /// The database file (created when missing, with its parent directory).
    pub path: PathBuf,
    /// Most writes committed in one transaction.
    pub max_batch: usize,
    /// Reader threads, each with one read-only connection: at most this many
    /// reads run at once (at least one).
    pub max_readers: usize,
    /// How long a connection waits for a lock held by another process.
    pub busy_timeout: Duration,
}

impl SqliteConfig {
    /// Defaults for a file: groups of up to 512 writes, 4 read connections,
    /// 5 s busy timeout.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            max_batch: 512,
            max_readers: 4,
            busy_timeout: Duration::from_secs(5),
        }
    }
}

/// The SQLite [`MetadataStore`]. See the [module docs](self) for the threading
/// model and the durability guarantee.
///
/// Dropping the store lets the writer thread commit every write already queued
/// and stop in the background; [`SqliteStore::close`] waits for it.
pub struct SqliteStore {
    config: SqliteConfig,
    readers: readers::Readers,
    jobs: Option<mpsc::Sender<Box<dyn writer::Job>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn sql(op: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
    move |e| StoreError::Sqlite {
        op,
        id: None,
        source: Arc::new(e),
    }
}

fn open_connection(config: &SqliteConfig, op: &'static str) -> StoreResult<Connection> {
    let conn = Connection::open_with_flags(
        &config.path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sql(op))?;
    conn.busy_timeout(config.busy_timeout).map_err(sql(op))?;
    // `temp_store = MEMORY` keeps SQLite's statement journals in memory
    // (they only serve a rollback inside the open transaction; the WAL
    // commit is what is durable).
    conn.execute_batch(
        "PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL; PRAGMA temp_store = MEMORY;",
    )
    .map_err(sql(op))?;
    Ok(conn)
}

impl SqliteStore {
    /// Opens (creating when missing) the database file, switches it to WAL,
    /// applies pending migrations and starts the writer thread.
    pub async fn open(config: SqliteConfig) -> StoreResult<Self> {
        let (ready_tx, ready_rx) = oneshot::channel();
        let (jobs_tx, jobs_rx) = mpsc::channel::<Box<dyn writer::Job>>();
        let thread_config = config.clone();
        let thread = std::thread::Builder::new()
            .name("infraai-sqlite-writer".into())
            .spawn(move || {
                let conns = Self::prepare_writer(&thread_config)
                    .and_then(|c| Ok((c, open_connection(&thread_config, "open")?)));
                let (conn, checkpoints) = match conns {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                if ready_tx.send(Ok(())).is_ok() {
                    let mut wal = thread_config.path.clone().into_os_string();
                    wal.push("-wal");
                    let max_batch = thread_config.max_batch.max(1);
                    writer::run(conn, jobs_rx, max_batch, wal.into(), Some(checkpoints));
                }
            })
            .map_err(|e| StoreError::Task {
                component: COMPONENT,
                op: "open",
                detail: format!("cannot start the writer thread: {e}"),
            })?;
        let ready = ready_rx
            .await
            .unwrap_or(Err(StoreError::WriterStopped { op: "open" }));
        if let Err(e) = ready {
            let _ = thread.join();
            return Err(e);
        }
        let readers = readers::Readers::start(&config)?;
        tracing::info!(path = %config.path.display(), "sqlite store opened");
        Ok(Self {
            config,
            readers,
            jobs: Some(jobs_tx),
            thread: Some(thread),
        })
    }

    /// Opens a file with the default [`SqliteConfig`].
    pub async fn open_path(path: impl AsRef<Path>) -> StoreResult<Self> {
        Self::open(SqliteConfig::new(path.as_ref())).await
    }

    fn prepare_writer(config: &SqliteConfig) -> StoreResult<Connection> {
        if let Some(dir) = config.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Task {
                component: COMPONENT,
                op: "open",
                detail: format!("cannot create {}: {e}", dir.display()),
            })?;
        }
        let mut conn = open_connection(config, "open")?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(sql("open"))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Task {
                component: COMPONENT,
                op: "open",
                detail: format!("the file system refused WAL mode (journal_mode is {mode})"),
            });
        }
        schema::migrate(&mut conn)?;
        // Commits are written to the WAL; the writer's sync thread syncs it
        // before any caller is answered (see `writer`).
        // Checkpoints are the checkpoint thread's (see `writer`); the
        // writer's own (at 16,384 pages, 64 MiB of WAL: 16 times SQLite's
        // default) only bounds the WAL when that thread falls behind.
        conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA wal_autocheckpoint = 16384")
            .map_err(sql("open"))?;
        Ok(conn)
    }

    /// Path of the database file.
    pub fn path(&self) -> &Path {
        &self.config.path
    }

    /// Sends a write to the writer thread and waits for its group's commit.
    /// The write may run more than once (see [`writer`]): it must not move
    /// what it captured.
    async fn write<T, F>(&self, op: &'static str, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: Fn(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let (written, ()) = self.write_with(op, (), move |c, ()| f(c)).await?;
        Ok(written)
    }

    /// [`Self::write`] of `data`, which comes back with the result (its
    /// allocations are freed on the caller's task, not the writer's).
    async fn write_with<T, D, F>(&self, op: &'static str, data: D, f: F) -> Result<(T, D)>
    where
        T: Send + 'static,
        D: Send + 'static,
        F: Fn(&Connection, &D) -> StoreResult<T> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let stopped = StoreError::WriterStopped { op };
        let jobs = self.jobs.as_ref().ok_or(stopped)?;
        jobs.send(Box::new(writer::Task::new(op, data, f, tx)))
            .map_err(|_| StoreError::WriterStopped { op })?;
        let (written, data) = rx.await.map_err(|_| StoreError::WriterStopped { op })?;
        Ok((written?, data))
    }

    /// Runs a read on a reader thread, in one read transaction.
    async fn read<T, F>(&self, op: &'static str, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let queued = self.readers.send(Box::new(move |r: &mut readers::Reader| {
            let _ = tx.send(r.run(op, f));
        }));
        let failed = |detail: &str| StoreError::Task {
            component: COMPONENT,
            op,
            detail: detail.into(),
        };
        if !queued {
            return Err(failed("the reader threads have stopped").into());
        }
        Ok(rx
            .await
            .unwrap_or_else(|_| Err(failed("the read panicked")))?)
    }

    /// Closes the store: the writer commits the writes already queued, closes
    /// the file (checkpointing the WAL) and stops; this waits for that without
    /// blocking the async runtime. Dropping the store does the same in the
    /// background without waiting.
    pub async fn close(mut self) -> StoreResult<()> {
        self.jobs.take();
        let readers = self.readers.stop();
        let writer = self.thread.take();
        // The readers close their connections first, so that the writer's is
        // the last one and its close checkpoints and removes the WAL.
        let joined = tokio::task::spawn_blocking(move || {
            // A reader thread outlives the reads that panic in it.
            for r in readers {
                let _ = r.join();
            }
            writer.map_or(Ok(()), |w| w.join())
        })
        .await
        .map_err(|e| StoreError::Task {
            component: COMPONENT,
            op: "close",
            detail: e.to_string(),
        })?;
        joined.map_err(|_| StoreError::Task {
            component: COMPONENT,
            op: "close",
            detail: "the writer thread panicked".into(),
        })
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        // Closing the channel lets the writer finish the queued writes and
        // stop on its own; joining here would block an async worker thread.
        self.jobs.take();
    }
}

impl StoreBackend for SqliteStore {
    fn name(&self) -> &str {
        COMPONENT
    }
}

#[async_trait]
impl RunStore for SqliteStore {
    async fn put_run(&self, run: &Run) -> Result<()> {
        let run = run.clone();
        self.write("put_run", move |c| rows::put_run(c, &run)).await
    }

    async fn get_run(&self, id: RunId) -> Result<Option<Run>> {
        self.read("get_run", move |c| rows::get_run(c, id, "get_run"))
            .await
    }

    async fn list_runs(&self, query: &RunQuery) -> Result<Vec<Run>> {
        let query = query.clone();
        self.read("list_runs", move |c| rows::list_runs(c, &query))
            .await
    }

    async fn put_deployment(&self, deployment: &Deployment) -> Result<()> {
        let d = deployment.clone();
        self.write("put_deployment", move |c| rows::put_deployment(c, &d))
            .await
    }

    async fn get_deployment(&self, id: DeploymentId) -> Result<Option<Deployment>> {
        self.read("get_deployment", move |c| rows::get_deployment(c, id))
            .await
    }

    async fn list_deployments(&self) -> Result<Vec<Deployment>> {
        self.read("list_deployments", rows::list_deployments).await
    }

    async fn find_deployment_by_resource(&self, resource: &str) -> Result<Option<Deployment>> {
        let r = resource.to_owned();
        self.read("find_deployment_by_resource", move |c| {
            rows::find_deployment_by_resource(c, &r)
        })
        .await
    }
}

#[async_trait]
impl HistoryStore for SqliteStore {
    async fn append_audit(&self, record: &AuditRecord) -> Result<()> {
        let r = record.clone();
        self.write("append_audit", move |c| rows::insert_audit(c, &r))
            .await
    }

    async fn list_audit(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>> {
        let q = query.clone();
        self.read("list_audit", move |c| rows::list_audit(c, &q))
            .await
    }

    async fn record_approval(&self, approval: &ApprovalRecord) -> Result<()> {
        let a = approval.clone();
        self.write("record_approval", move |c| rows::insert_approval(c, &a))
            .await
    }

    async fn list_approvals(&self, id: IncidentId) -> Result<Vec<ApprovalRecord>> {
        self.read("list_approvals", move |c| rows::list_approvals(c, id))
            .await
    }

    async fn record_action(&self, outcome: &ActionOutcome) -> Result<()> {
        let o = outcome.clone();
        self.write("record_action", move |c| rows::insert_action(c, &o))
            .await
    }

    async fn list_actions(&self, id: IncidentId) -> Result<Vec<ActionOutcome>> {
        self.read("list_actions", move |c| rows::list_actions(c, id))
            .await
    }

    async fn count_actions_since(&self, resource: &str, since: DateTime<Utc>) -> Result<u64> {
        const OP: &str = "count_actions_since";
        let p = (resource.to_owned(), codec::time(since));
        self.read(OP, move |c| {
            let count = crate::sql::COUNT_ACTIONS_SINCE;
            let n = rows::one(c, count, params![p.0, p.1], sql(OP), |r| {
                crate::sql::Cols::new(r, OP, "actions".into()).get::<i64>(0)
            })?;
            Ok(u64::try_from(n.unwrap_or(0)).unwrap_or(0))
        })
        .await
    }
}

#[async_trait]
impl LeaseStore for SqliteStore {
    async fn claim_job(&self, key: &str, lease: Lease<'_>) -> Result<Option<Job>> {
        const OP: &str = "claim_job";
        let (key, owner) = (key.to_owned(), lease.owner.to_owned());
        let (now, until) = (codec::time(lease.now), codec::time(lease.until()));
        self.write(OP, move |c| {
            let p = params![key, owner, until, now];
            rows::one(c, crate::sql::CLAIM_JOB, p, rerr(OP, key.clone()), |r| {
                crate::sql::job(r, OP)
            })
        })
        .await
    }

    async fn claim_abandoned_jobs(&self, lease: Lease<'_>, limit: usize) -> Result<Vec<Job>> {
        const OP: &str = "claim_abandoned_jobs";
        let owner = lease.owner.to_owned();
        let (now, until) = (codec::time(lease.now), codec::time(lease.until()));
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.write(OP, move |c| {
            // One writer: the scan and the update are one transaction.
            let update = "UPDATE jobs SET owner = ?1, lease_until = ?2, claims = claims + 1 \
                 WHERE key IN (SELECT key FROM jobs WHERE owner IS NULL OR lease_until <= ?3 \
                 ORDER BY lease_until LIMIT ?4) RETURNING key, owner, lease_until, claims";
            let p = params![owner, until, now, limit];
            rows::all(c, update, p, sql(OP), |r| crate::sql::job(r, OP))
        })
        .await
    }

    async fn renew_job(&self, key: &str, lease: Lease<'_>) -> Result<bool> {
        const OP: &str = "renew_job";
        let (key, owner) = (key.to_owned(), lease.owner.to_owned());
        let until = codec::time(lease.until());
        self.write(OP, move |c| {
            let p = params![until, key, owner];
            Ok(rows::exec(c, crate::sql::RENEW_JOB, p, rerr(OP, key.clone()))? == 1)
        })
        .await
    }

    async fn release_job(&self, release: Release<'_>) -> Result<bool> {
        const OP: &str = "release_job";
        let (key, owner) = (release.key.to_owned(), release.owner.to_owned());
        let sql = crate::sql::release_job(release.finished);
        self.write(OP, move |c| {
            Ok(rows::exec(c, sql, params![key, owner], rerr(OP, key.clone()))? == 1)
        })
        .await
    }

    async fn get_cursor(&self, name: &str) -> Result<Option<i64>> {
        const OP: &str = "get_cursor";
        let name = name.to_owned();
        self.read(OP, move |c| {
            rows::one(
                c,
                crate::sql::CURSOR,
                [&name],
                rerr(OP, name.clone()),
                |r| crate::sql::Cols::new(r, OP, format!("cursor {name}")).get(0),
            )
        })
        .await
    }

    async fn set_cursor(&self, name: &str, value: i64) -> Result<()> {
        const OP: &str = "set_cursor";
        let name = name.to_owned();
        self.write(OP, move |c| {
            let p = params![name, value, codec::time(Utc::now())];
            rows::exec(c, crate::sql::SET_CURSOR, p, rerr(OP, name.clone()))?;
            Ok(())
        })
        .await
    }
}
