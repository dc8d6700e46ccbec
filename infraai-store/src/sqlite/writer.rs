//! The dedicated writer thread: it owns the only writing connection, takes
//! write jobs from a channel and commits every job that is waiting in one
//! transaction (group commit), one `fsync` per group. Each job runs in its
//! own savepoint, so a job that fails leaves no trace and does not fail its
//! neighbours. A job's caller is answered only after the group's `COMMIT`
//! returned.

use crate::error::{StoreError, StoreResult};
use rusqlite::Connection;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::sync::Arc;
use tokio::sync::oneshot;

/// One write, type-erased so jobs of any result type share the channel.
pub(crate) trait Job: Send {
    /// Runs inside the group's transaction (in a savepoint of its own).
    fn run(self: Box<Self>, conn: &Connection) -> Box<dyn Done>;
    /// The group could not start: answer without running.
    fn fail(self: Box<Self>, error: &Arc<rusqlite::Error>);
}

/// A job that ran and waits for its group's commit.
pub(crate) trait Done: Send {
    /// Answers the caller once the group's fate is known.
    fn finish(self: Box<Self>, commit: Result<(), &Arc<rusqlite::Error>>);
}

/// A write job with a typed answer.
pub(crate) struct Task<T, F> {
    pub op: &'static str,
    pub f: F,
    pub tx: oneshot::Sender<StoreResult<T>>,
}

struct Ran<T> {
    op: &'static str,
    result: StoreResult<T>,
    tx: oneshot::Sender<StoreResult<T>>,
}

impl<T, F> Job for Task<T, F>
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
{
    fn run(self: Box<Self>, conn: &Connection) -> Box<dyn Done> {
        let Task { op, f, tx } = *self;
        let sql_err = |e: rusqlite::Error| StoreError::Sqlite {
            op,
            id: None,
            source: Arc::new(e),
        };
        let result = match conn.execute_batch("SAVEPOINT job") {
            Err(e) => Err(sql_err(e)),
            Ok(()) => {
                let result = match catch_unwind(AssertUnwindSafe(|| f(conn))) {
                    Ok(r) => r,
                    Err(_) => Err(StoreError::Task {
                        component: "sqlite",
                        op,
                        detail: "the write panicked; it was rolled back".into(),
                    }),
                };
                let end = if result.is_ok() {
                    "RELEASE job"
                } else {
                    "ROLLBACK TO job; RELEASE job"
                };
                match (conn.execute_batch(end), result) {
                    (Ok(()), r) => r,
                    // The savepoint could not be closed: the transaction is
                    // in an unknown state, so the whole group must not commit.
                    (Err(e), _) => Err(sql_err(e)),
                }
            }
        };
        Box::new(Ran { op, result, tx })
    }

    fn fail(self: Box<Self>, error: &Arc<rusqlite::Error>) {
        let _ = self.tx.send(Err(StoreError::Sqlite {
            op: self.op,
            id: None,
            source: error.clone(),
        }));
    }
}

impl<T: Send> Done for Ran<T> {
    fn finish(self: Box<Self>, commit: Result<(), &Arc<rusqlite::Error>>) {
        let answer = match (self.result, commit) {
            (Err(e), _) => Err(e),
            (Ok(v), Ok(())) => Ok(v),
            (Ok(_), Err(e)) => Err(StoreError::Sqlite {
                op: self.op,
                id: None,
                source: e.clone(),
            }),
        };
        // The caller may have gone away (dropped future); the write stands.
        let _ = self.tx.send(answer);
    }
}

/// The writer loop: runs until every sender is dropped, then returns (closing
/// the connection, which checkpoints the WAL).
pub(crate) fn run(conn: Connection, jobs: mpsc::Receiver<Box<dyn Job>>, max_batch: usize) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < max_batch {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            let e = Arc::new(e);
            tracing::warn!(error = %e, jobs = batch.len(), "sqlite: cannot begin a write transaction");
            for job in batch {
                job.fail(&e);
            }
            continue;
        }
        let mut done = Vec::with_capacity(batch.len());
        let mut poisoned = false;
        for job in batch {
            done.push(job.run(&conn));
            // A savepoint that cannot be released leaves SQLite outside any
            // savepoint we know of; detect it by asking whether we are still
            // inside the transaction.
            if conn.is_autocommit() {
                poisoned = true;
            }
        }
        let commit = if poisoned {
            Err(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ABORT),
                Some("the write transaction ended unexpectedly; the group was rolled back".into()),
            ))
        } else {
            conn.execute_batch("COMMIT")
        };
        let groups = done.len();
        match commit {
            Ok(()) => {
                tracing::trace!(jobs = groups, "sqlite: group committed");
                for d in done {
                    d.finish(Ok(()));
                }
            }
            Err(e) => {
                if !conn.is_autocommit() {
                    let _ = conn.execute_batch("ROLLBACK");
                }
                let e = Arc::new(e);
                tracing::warn!(error = %e, jobs = groups, "sqlite: group commit failed; rolled back");
                for d in done {
                    d.finish(Err(&e));
                }
            }
        }
    }
    tracing::debug!("sqlite: writer stopped");
}
