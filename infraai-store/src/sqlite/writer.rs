//! The dedicated writer thread: it owns the only writing connection, takes
//! write jobs from a channel and commits every job that is waiting in one
//! transaction (group commit), one `fsync` per group. A job's caller is
//! answered only after the group's `COMMIT` returned.
//!
//! A job that fails leaves no trace and does not fail its neighbours. Jobs
//! run without a savepoint of their own (journaling every page a job touches
//! cost about a fifth of the writer's time under alert ingest); instead:
//! * a failed job that changed no row (`total_changes` did not move: every
//!   SQLite statement is atomic on its own) has nothing to undo;
//! * a failed job that did change rows, or that ended the transaction, makes
//!   the writer roll the group back and run again the jobs that had
//!   succeeded in it. A job is therefore a function that may run more than
//!   once; only its last run is answered and committed.

use crate::error::{StoreError, StoreResult};
use rusqlite::Connection;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::sync::Arc;
use tokio::sync::oneshot;

/// One write, type-erased so jobs of any result type share the channel.
pub(crate) trait Job: Send {
    /// Runs inside the group's transaction and keeps the result; `true` when
    /// it succeeded. May run again after a rollback of its group. Never ends
    /// the transaction itself (SQLite may, on some errors: that is a failure).
    fn run(&mut self, conn: &Connection) -> bool;
    /// Answers the caller: with the job's error when it failed, otherwise
    /// with its result once the group's fate is known.
    fn answer(self: Box<Self>, commit: Result<(), &Arc<rusqlite::Error>>);
}

/// A write job with a typed answer.
pub(crate) struct Task<T, F> {
    op: &'static str,
    f: F,
    tx: oneshot::Sender<StoreResult<T>>,
    /// The result of the latest run.
    result: Option<StoreResult<T>>,
}

impl<T, F> Task<T, F> {
    /// A job that has not run yet.
    pub fn new(op: &'static str, f: F, tx: oneshot::Sender<StoreResult<T>>) -> Self {
        Task {
            op,
            f,
            tx,
            result: None,
        }
    }
}

impl<T, F> Job for Task<T, F>
where
    T: Send + 'static,
    F: Fn(&Connection) -> StoreResult<T> + Send + 'static,
{
    fn run(&mut self, conn: &Connection) -> bool {
        let result = catch_unwind(AssertUnwindSafe(|| (self.f)(conn))).unwrap_or_else(|_| {
            Err(StoreError::Task {
                component: "sqlite",
                op: self.op,
                detail: "the write panicked; it was rolled back".into(),
            })
        });
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn answer(self: Box<Self>, commit: Result<(), &Arc<rusqlite::Error>>) {
        let sql = |e: &Arc<rusqlite::Error>| StoreError::Sqlite {
            op: self.op,
            id: None,
            source: e.clone(),
        };
        let answer = match (self.result, commit) {
            (Some(Err(e)), _) => Err(e),
            (Some(Ok(v)), Ok(())) => Ok(v),
            (_, Err(e)) => Err(sql(e)),
            (None, Ok(())) => Err(StoreError::Task {
                component: "sqlite",
                op: self.op,
                detail: "the write was not run".into(),
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
        commit_group(&conn, batch);
    }
    tracing::debug!("sqlite: writer stopped");
}

/// Runs one group in one transaction and answers every job in it.
fn commit_group(conn: &Connection, batch: Vec<Box<dyn Job>>) {
    let begin = |conn: &Connection| conn.execute_batch("BEGIN IMMEDIATE").map_err(Arc::new);
    if let Err(e) = begin(conn) {
        tracing::warn!(error = %e, jobs = batch.len(), "sqlite: cannot begin a write transaction");
        for job in batch {
            job.answer(Err(&e));
        }
        return;
    }
    // Jobs whose writes are in the open transaction, and jobs that failed
    // (answered with their own error, whatever the commit does).
    let mut ran: Vec<Box<dyn Job>> = Vec::with_capacity(batch.len());
    let mut failed: Vec<Box<dyn Job>> = Vec::new();
    let mut pending = batch.into_iter();
    while let Some(mut job) = pending.next() {
        let before = conn.total_changes();
        if job.run(conn) {
            ran.push(job);
            continue;
        }
        let undo = conn.total_changes() != before || conn.is_autocommit();
        failed.push(job);
        if !undo {
            continue;
        }
        if let Err(e) = redo(conn, &mut ran, &mut failed, begin) {
            // No transaction to run the rest in: every job not yet failed
            // on its own gets this error, and nothing is committed.
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
            tracing::warn!(error = %e, "sqlite: cannot run a group again after a failed write");
            for job in ran.into_iter().chain(pending) {
                job.answer(Err(&e));
            }
            for job in failed {
                job.answer(Ok(()));
            }
            return;
        }
    }
    let commit = conn.execute_batch("COMMIT").map_err(Arc::new);
    match &commit {
        Ok(()) => tracing::trace!(jobs = ran.len(), "sqlite: group committed"),
        Err(e) => {
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
            tracing::warn!(error = %e, jobs = ran.len(), "sqlite: group commit failed; rolled back");
        }
    }
    for job in ran {
        job.answer(commit.as_ref().map(|_| ()));
    }
    // A failed job's answer is its own error, whatever the commit did.
    for job in failed {
        job.answer(Ok(()));
    }
}

/// Rolls the transaction back and runs the jobs in `ran` again in a new one.
/// A job that fails now moves to `failed` and the redo starts over without
/// it, so this ends after at most `ran.len()` rounds.
fn redo(
    conn: &Connection,
    ran: &mut Vec<Box<dyn Job>>,
    failed: &mut Vec<Box<dyn Job>>,
    begin: impl Fn(&Connection) -> Result<(), Arc<rusqlite::Error>>,
) -> Result<(), Arc<rusqlite::Error>> {
    'again: loop {
        if !conn.is_autocommit() {
            conn.execute_batch("ROLLBACK").map_err(Arc::new)?;
        }
        begin(conn)?;
        tracing::debug!(
            jobs = ran.len(),
            "sqlite: a write failed after changing rows; its group runs again without it"
        );
        for i in 0..ran.len() {
            if !ran[i].run(conn) {
                failed.push(ran.remove(i));
                continue 'again;
            }
        }
        return Ok(());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn conn(dir: &tempfile::TempDir) -> Connection {
        let c = Connection::open(dir.path().join("w.db")).expect("open");
        c.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (k TEXT PRIMARY KEY)")
            .expect("schema");
        c
    }

    fn insert(c: &Connection, k: &str) -> StoreResult<()> {
        c.execute("INSERT INTO t (k) VALUES (?1)", [k])
            .map(|_| ())
            .map_err(|e| StoreError::Sqlite {
                op: "test",
                id: None,
                source: Arc::new(e),
            })
    }

    fn boom() -> StoreResult<()> {
        Err(StoreError::Task {
            component: "test",
            op: "test",
            detail: "fails on purpose".into(),
        })
    }

    type Answer = oneshot::Receiver<StoreResult<()>>;

    fn job(f: impl Fn(&Connection) -> StoreResult<()> + Send + 'static) -> (Box<dyn Job>, Answer) {
        let (tx, rx) = oneshot::channel();
        (Box::new(Task::new("test", f, tx)), rx)
    }

    fn keys(c: &Connection) -> Vec<String> {
        let mut s = c.prepare("SELECT k FROM t ORDER BY k").expect("prepare");
        s.query_map([], |r| r.get(0))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows")
    }

    #[test]
    fn a_failed_job_leaves_no_trace_and_its_neighbours_commit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = conn(&dir);
        let runs = Arc::new(AtomicUsize::new(0));
        let counted = runs.clone();
        let (a, ra) = job(move |c| {
            counted.fetch_add(1, Ordering::SeqCst);
            insert(c, "a")
        });
        // Writes, then fails: its row must go, a and c must stay.
        let (b, rb) = job(|c| insert(c, "b").and_then(|()| boom()));
        let (c_job, rc) = job(|c| insert(c, "c"));
        // Fails without writing (a constraint): nothing to undo.
        let (d, rd) = job(|c| insert(c, "a"));
        // Writes, then panics.
        let (e, re) = job(|c| {
            insert(c, "e")?;
            panic!("on purpose")
        });
        commit_group(&c, vec![a, b, c_job, d, e]);
        assert_eq!(keys(&c), ["a", "c"]);
        assert!(ra.blocking_recv().expect("a").is_ok());
        assert!(rb.blocking_recv().expect("b").is_err());
        assert!(rc.blocking_recv().expect("c").is_ok());
        assert!(rd.blocking_recv().expect("d").is_err());
        assert!(re.blocking_recv().expect("e").is_err());
        // a ran once, then again after b's rollback and after e's.
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        assert!(c.is_autocommit(), "the group's transaction is closed");
    }

    #[test]
    fn a_job_that_fails_only_when_run_again_is_dropped_from_the_redo() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = conn(&dir);
        let runs = Arc::new(AtomicUsize::new(0));
        let counted = runs.clone();
        // Succeeds the first time, fails on the redo.
        let (flaky, rf) = job(move |c| {
            if counted.fetch_add(1, Ordering::SeqCst) == 0 {
                insert(c, "f")
            } else {
                boom()
            }
        });
        let (a, ra) = job(|c| insert(c, "a"));
        let (b, rb) = job(|c| insert(c, "b").and_then(|()| boom()));
        commit_group(&c, vec![flaky, a, b]);
        assert_eq!(keys(&c), ["a"]);
        assert!(rf.blocking_recv().expect("flaky").is_err());
        assert!(ra.blocking_recv().expect("a").is_ok());
        assert!(rb.blocking_recv().expect("b").is_err());
    }
}
