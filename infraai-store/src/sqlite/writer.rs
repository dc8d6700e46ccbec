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
//!
//! Syncing is pipelined ([`Syncer`]): the writer's connection commits with
//! `synchronous = NORMAL` (the commit is written to the WAL, not synced), and
//! a second thread syncs the WAL file and only then answers the group's
//! jobs. The writer goes on with the next group meanwhile, so its CPU work
//! and the disk's sync overlap instead of taking turns; it hands that group
//! over when the sync thread is free again, so writes keep gathering into
//! large groups. A caller is still answered only
//! once its write is on disk.
//!
//! Checkpoints run on a third thread ([`Checkpointer`]) with a connection
//! of its own: copying the WAL's pages into the database and syncing the
//! database file (milliseconds each time) no longer stops the writer. It
//! checkpoints after commits, at most every [`CHECKPOINT_PAUSE`]; the
//! writer's own automatic checkpoint stays as a bound for when it falls
//! behind (see `prepare_writer`).

use crate::error::{StoreError, StoreResult};
use rusqlite::Connection;
use std::fs::File;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
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

/// A write job with a typed answer. `data` is what the job writes, kept
/// apart from `f` so that it goes back to the caller with the answer: the
/// caller frees it on its own task, not the writer or sync thread (a
/// webhook's alerts are many small allocations, and those threads are the
/// serial part of every write).
pub(crate) struct Task<T, D, F> {
    op: &'static str,
    data: D,
    f: F,
    tx: oneshot::Sender<(StoreResult<T>, D)>,
    /// The result of the latest run.
    result: Option<StoreResult<T>>,
}

impl<T, D, F> Task<T, D, F> {
    /// A job that has not run yet.
    pub fn new(op: &'static str, data: D, f: F, tx: oneshot::Sender<(StoreResult<T>, D)>) -> Self {
        Task {
            op,
            data,
            f,
            tx,
            result: None,
        }
    }
}

impl<T, D, F> Job for Task<T, D, F>
where
    T: Send + 'static,
    D: Send + 'static,
    F: Fn(&Connection, &D) -> StoreResult<T> + Send + 'static,
{
    fn run(&mut self, conn: &Connection) -> bool {
        let result =
            catch_unwind(AssertUnwindSafe(|| (self.f)(conn, &self.data))).unwrap_or_else(|_| {
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
        let Task {
            op,
            data,
            tx,
            result,
            ..
        } = *self;
        let answer = match (result, commit) {
            (Some(Err(e)), _) => Err(e),
            (Some(Ok(v)), Ok(())) => Ok(v),
            (_, Err(e)) => Err(StoreError::Sqlite {
                op,
                id: None,
                source: e.clone(),
            }),
            (None, Ok(())) => Err(StoreError::Task {
                component: "sqlite",
                op,
                detail: "the write was not run".into(),
            }),
        };
        // The caller may have gone away (dropped future); the write stands.
        let _ = tx.send((answer, data));
    }
}

/// The writer loop: runs until every sender is dropped, then waits for the
/// last syncs and returns (closing the connection, which checkpoints the WAL).
/// `wal` is the database's WAL file; the writer's connection must be in WAL
/// mode with `synchronous = NORMAL`. `checkpoints`, a second connection to
/// the same database, checkpoints it in the background; without it the
/// writer's connection does (SQLite's automatic checkpoint).
pub(crate) fn run(
    conn: Connection,
    jobs: mpsc::Receiver<Box<dyn Job>>,
    max_batch: usize,
    wal: PathBuf,
    checkpoints: Option<Connection>,
) {
    let syncer = Syncer::start(wal);
    let checkpointer = checkpoints.map(Checkpointer::start);
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < max_batch {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        // A group whose every job failed committed nothing to sync.
        if let Some(committed) = commit_group(&conn, batch).filter(|c| !c.is_empty()) {
            syncer.answer_after_sync(committed);
            if let Some(c) = &checkpointer {
                c.poke();
            }
        }
    }
    syncer.finish();
    if let Some(c) = checkpointer {
        c.finish();
    }
    tracing::debug!("sqlite: writer stopped");
}

/// The shortest time between two background checkpoints: the WAL grows by
/// what is committed meanwhile (a few MB under the heaviest alert load)
/// and each checkpoint copies and syncs it in one go.
const CHECKPOINT_PAUSE: std::time::Duration = std::time::Duration::from_millis(50);

/// Checkpoints the WAL (`PASSIVE`: never waits for readers or the writer)
/// on a thread of its own after commits.
struct Checkpointer {
    tx: mpsc::SyncSender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl Checkpointer {
    fn start(conn: Connection) -> Self {
        let (tx, rx) = mpsc::sync_channel::<()>(1);
        let thread = std::thread::Builder::new()
            .name("infraai-sqlite-checkpoint".into())
            .spawn(move || {
                while rx.recv().is_ok() {
                    checkpoint(&conn);
                    std::thread::sleep(CHECKPOINT_PAUSE);
                }
            })
            .unwrap_or_else(|e| panic!("cannot start the SQLite checkpoint thread: {e}"));
        Self { tx, thread }
    }

    /// Says there is something new in the WAL; never blocks (one pending
    /// poke is enough).
    fn poke(&self) {
        let _ = self.tx.try_send(());
    }

    /// Stops after the checkpoint in progress (closing the writer's
    /// connection afterwards checkpoints the rest).
    fn finish(self) {
        drop(self.tx);
        let _ = self.thread.join();
    }
}

fn checkpoint(conn: &Connection) {
    let done = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
    });
    match done {
        Ok((frames, copied)) => tracing::trace!(frames, copied, "sqlite: checkpoint"),
        Err(e) => tracing::warn!(error = %e, "sqlite: background checkpoint failed"),
    }
}

/// Syncs the WAL on a thread of its own and answers the committed jobs
/// once it is on disk.
struct Syncer {
    tx: mpsc::SyncSender<Vec<Box<dyn Job>>>,
    thread: std::thread::JoinHandle<()>,
}

impl Syncer {
    fn start(wal: PathBuf) -> Self {
        // A rendezvous: the writer hands a committed group over only when
        // the sync thread is ready for it, so at most one group waits while
        // another syncs. Meanwhile writes queue up for the writer's next
        // group: the groups stay large (few commits, each writing its pages
        // once) instead of one small commit per write.
        let (tx, rx) = mpsc::sync_channel::<Vec<Box<dyn Job>>>(0);
        let thread = std::thread::Builder::new()
            .name("infraai-sqlite-sync".into())
            .spawn(move || sync_loop(&wal, &rx))
            .unwrap_or_else(|e| panic!("cannot start the SQLite sync thread: {e}"));
        Self { tx, thread }
    }

    /// Answers `jobs` (committed) after the next sync of the WAL.
    fn answer_after_sync(&self, jobs: Vec<Box<dyn Job>>) {
        if let Err(mpsc::SendError(jobs)) = self.tx.send(jobs) {
            // The sync thread is gone (it panicked): nothing can say the
            // write is on disk.
            let e = Arc::new(sync_error("the WAL sync thread stopped"));
            for job in jobs {
                job.answer(Err(&e));
            }
        }
    }

    /// Waits until every committed job is answered.
    fn finish(self) {
        drop(self.tx);
        let _ = self.thread.join();
    }
}

/// Takes every group committed so far, syncs the WAL once for all of them,
/// and answers them.
fn sync_loop(wal: &std::path::Path, rx: &mpsc::Receiver<Vec<Box<dyn Job>>>) {
    let mut file: Option<File> = None;
    while let Ok(first) = rx.recv() {
        let mut jobs = first;
        while let Ok(more) = rx.try_recv() {
            jobs.extend(more);
        }
        let synced = sync(wal, &mut file).map_err(|e| {
            tracing::warn!(error = %e, wal = %wal.display(), "sqlite: syncing the WAL failed");
            Arc::new(sync_error(&format!("syncing {}: {e}", wal.display())))
        });
        for job in jobs {
            job.answer(synced.as_ref().map(|_| ()));
        }
    }
}

/// `fdatasync`s the WAL file, (re)opening it when it is not open yet or the
/// path now names another file.
fn sync(wal: &std::path::Path, file: &mut Option<File>) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let current = std::fs::metadata(wal)?;
    let same = file
        .as_ref()
        .and_then(|f| f.metadata().ok())
        .is_some_and(|m| m.ino() == current.ino() && m.dev() == current.dev());
    if !same {
        *file = Some(File::open(wal)?);
    }
    match file {
        Some(f) => f.sync_data(),
        None => Ok(()),
    }
}

fn sync_error(detail: &str) -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_IOERR_FSYNC),
        Some(format!("the commit may not be on disk: {detail}")),
    )
}

/// Runs one group in one transaction. Answers every job that failed, and
/// every job when the group could not commit; returns the committed jobs,
/// to be answered once the WAL is synced.
fn commit_group(conn: &Connection, batch: Vec<Box<dyn Job>>) -> Option<Vec<Box<dyn Job>>> {
    let begin = |conn: &Connection| conn.execute_batch("BEGIN IMMEDIATE").map_err(Arc::new);
    if let Err(e) = begin(conn) {
        tracing::warn!(error = %e, jobs = batch.len(), "sqlite: cannot begin a write transaction");
        for job in batch {
            job.answer(Err(&e));
        }
        return None;
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
            return None;
        }
    }
    let commit = conn.execute_batch("COMMIT").map_err(Arc::new);
    // A failed job's answer is its own error, whatever the commit did.
    for job in failed {
        job.answer(Ok(()));
    }
    match commit {
        Ok(()) => {
            tracing::trace!(jobs = ran.len(), "sqlite: group committed");
            Some(ran)
        }
        Err(e) => {
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
            tracing::warn!(error = %e, jobs = ran.len(), "sqlite: group commit failed; rolled back");
            for job in ran {
                job.answer(Err(&e));
            }
            None
        }
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

    type Answer = oneshot::Receiver<(StoreResult<()>, ())>;

    /// Runs a group and answers its committed jobs as the sync thread would.
    fn committed(c: &Connection, batch: Vec<Box<dyn Job>>) {
        for job in commit_group(c, batch).unwrap_or_default() {
            job.answer(Ok(()));
        }
    }

    fn job(f: impl Fn(&Connection) -> StoreResult<()> + Send + 'static) -> (Box<dyn Job>, Answer) {
        let (tx, rx) = oneshot::channel();
        (
            Box::new(Task::new(
                "test",
                (),
                move |c: &Connection, _: &()| f(c),
                tx,
            )),
            rx,
        )
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
        committed(&c, vec![a, b, c_job, d, e]);
        assert_eq!(keys(&c), ["a", "c"]);
        assert!(ra.blocking_recv().expect("a").0.is_ok());
        assert!(rb.blocking_recv().expect("b").0.is_err());
        assert!(rc.blocking_recv().expect("c").0.is_ok());
        assert!(rd.blocking_recv().expect("d").0.is_err());
        assert!(re.blocking_recv().expect("e").0.is_err());
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
        committed(&c, vec![flaky, a, b]);
        assert_eq!(keys(&c), ["a"]);
        assert!(rf.blocking_recv().expect("flaky").0.is_err());
        assert!(ra.blocking_recv().expect("a").0.is_ok());
        assert!(rb.blocking_recv().expect("b").0.is_err());
    }

    /// Commits reach the database file while the writer runs, copied by
    /// the checkpoint thread: the writer's own checkpoints are off here.
    #[test]
    fn the_checkpoint_thread_copies_commits_into_the_database_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = conn(&dir);
        c.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA wal_autocheckpoint = 0")
            .expect("pragma");
        let db = dir.path().join("w.db");
        let size = || std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0);
        let before = size();
        let checkpoints = Connection::open(&db).expect("second connection");
        let (tx, rx) = mpsc::channel();
        let wal = dir.path().join("w.db-wal");
        let writer = std::thread::spawn(move || run(c, rx, 8, wal, Some(checkpoints)));
        for i in 0..200 {
            let key = format!("k{i:04}");
            let (j, answer) = job(move |c| insert(c, &key));
            tx.send(j).expect("send");
            assert!(answer.blocking_recv().expect("answered").0.is_ok());
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while size() <= before && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let copied = size();
        drop(tx);
        writer.join().expect("writer");
        assert!(
            copied > before,
            "the database file stayed at {before} bytes while the writer ran"
        );
    }

    /// Answers wait for the WAL's sync: with a WAL that cannot be synced, a
    /// committed write is answered with an error, not `Ok`.
    #[tokio::test]
    async fn a_commit_is_acknowledged_only_after_the_wal_sync() {
        for synced in [true, false] {
            let dir = tempfile::tempdir().expect("tempdir");
            let c = conn(&dir);
            let wal = dir
                .path()
                .join(if synced { "w.db-wal" } else { "missing-wal" });
            c.execute_batch("PRAGMA synchronous = NORMAL")
                .expect("pragma");
            let (tx, rx) = mpsc::channel();
            let key = format!("{synced}");
            let (j, answer) = job(move |c| insert(c, &key));
            tx.send(j).expect("send");
            drop(tx);
            let writer = std::thread::spawn(move || run(c, rx, 8, wal, None));
            let (answer, ()) = answer.await.expect("answered");
            writer.join().expect("writer");
            match answer {
                Ok(()) => assert!(synced, "answered Ok without a sync"),
                Err(e) => {
                    assert!(!synced, "{e}");
                    assert!(e.to_string().contains("may not be on disk"), "{e}");
                }
            }
        }
    }
}
