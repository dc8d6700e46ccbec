//! The read side: a fixed set of threads, each owning one read-only
//! connection, taking reads from one queue.
//!
//! Threads of their own (rather than Tokio's blocking pool) keep each
//! connection's page cache on one thread and the number of threads fixed: the
//! blocking pool grew to a dozen threads under a decision backlog, each with
//! its own allocator heap, and the server's RSS with it.

use super::{open_connection, sql, SqliteConfig, COMPONENT};
use crate::error::{StoreError, StoreResult};
use rusqlite::Connection;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;

/// A read, run on one of the reader threads.
pub(crate) type ReadJob = Box<dyn FnOnce(&mut Reader) + Send>;

/// One reader thread's connection, opened at its first read.
pub(crate) struct Reader {
    config: SqliteConfig,
    conn: Option<Connection>,
}

impl Reader {
    /// Runs `f` in one read transaction. A connection whose transaction
    /// could not end is closed; the next read opens another.
    pub(crate) fn run<T>(
        &mut self,
        op: &'static str,
        f: impl FnOnce(&Connection) -> StoreResult<T>,
    ) -> StoreResult<T> {
        let conn = match &mut self.conn {
            Some(c) => c,
            None => {
                let c = open_connection(&self.config, op)?;
                c.execute_batch("PRAGMA query_only = ON").map_err(sql(op))?;
                self.conn.insert(c)
            }
        };
        conn.execute_batch("BEGIN").map_err(sql(op))?;
        let result = f(conn);
        let end = conn.execute_batch("COMMIT").map_err(sql(op));
        if end.is_err() {
            self.conn = None;
        }
        let value = result?;
        end.map(|()| value)
    }
}

/// The reader threads and their queue.
pub(crate) struct Readers {
    jobs: Option<mpsc::Sender<ReadJob>>,
    threads: Vec<JoinHandle<()>>,
}

impl Readers {
    /// Starts `config.max_readers` (at least one) reader threads.
    pub(crate) fn start(config: &SqliteConfig) -> StoreResult<Self> {
        let (tx, rx) = mpsc::channel::<ReadJob>();
        let rx = Arc::new(Mutex::new(rx));
        let threads = (0..config.max_readers.max(1))
            .map(|i| {
                let (rx, config) = (rx.clone(), config.clone());
                std::thread::Builder::new()
                    .name(format!("sqlite-read-{i}"))
                    .spawn(move || serve(&rx, config))
                    .map_err(|e| StoreError::Task {
                        component: COMPONENT,
                        op: "open",
                        detail: format!("cannot start a reader thread: {e}"),
                    })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(Self {
            jobs: Some(tx),
            threads,
        })
    }

    /// Queues a read; `false` once the readers were stopped.
    pub(crate) fn send(&self, job: ReadJob) -> bool {
        self.jobs.as_ref().is_some_and(|j| j.send(job).is_ok())
    }

    /// Lets the threads finish the reads queued and stop; returns them to join.
    pub(crate) fn stop(&mut self) -> Vec<JoinHandle<()>> {
        self.jobs.take();
        std::mem::take(&mut self.threads)
    }
}

fn serve(jobs: &Mutex<mpsc::Receiver<ReadJob>>, config: SqliteConfig) {
    let mut reader = Reader { config, conn: None };
    loop {
        let next = jobs.lock().unwrap_or_else(|p| p.into_inner()).recv();
        let Ok(job) = next else { return };
        // A read that panics loses its answer (its caller gets an error) and
        // the connection; the thread goes on with the next read.
        if catch_unwind(AssertUnwindSafe(|| job(&mut reader))).is_err() {
            reader.conn = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `f` on the readers and waits for its answer (`None`: no answer).
    fn ask<T: Send + 'static>(
        readers: &Readers,
        f: impl FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    ) -> Option<StoreResult<T>> {
        let (tx, rx) = mpsc::channel();
        assert!(readers.send(Box::new(move |r: &mut Reader| {
            let _ = tx.send(r.run("test", f));
        })));
        rx.recv().ok()
    }

    fn thread_name(_: &Connection) -> StoreResult<String> {
        Ok(std::thread::current().name().unwrap_or_default().to_owned())
    }

    #[test]
    fn reads_run_on_the_fixed_threads_and_outlive_a_read_that_panics() {
        let dir = tempfile::tempdir().expect("dir");
        let mut config = SqliteConfig::new(dir.path().join("r.db"));
        config.max_readers = 2;
        let mut readers = Readers::start(&config).expect("start");
        let mut names = std::collections::BTreeSet::new();
        for _ in 0..20 {
            names.insert(ask(&readers, thread_name).expect("answer").expect("read"));
        }
        assert!(
            names.iter().all(|n| n.starts_with("sqlite-read-")) && names.len() <= 2,
            "{names:?}"
        );
        // Both threads take a panicking read; neither dies of it.
        for _ in 0..2 {
            let lost = ask(&readers, |_| -> StoreResult<()> { panic!("a read panics") });
            assert!(lost.is_none(), "a panicked read has no answer");
        }
        for _ in 0..4 {
            let n: i64 = ask(&readers, |c| {
                c.query_row("SELECT 41 + 1", [], |r| r.get(0))
                    .map_err(sql("test"))
            })
            .expect("answer")
            .expect("read");
            assert_eq!(n, 42);
        }
        // Read-only: a write through a reader is refused.
        let write = ask(&readers, |c| {
            c.execute_batch("CREATE TABLE t (k TEXT)")
                .map_err(sql("test"))
        })
        .expect("answer");
        assert!(write.is_err());
        let threads = readers.stop();
        assert_eq!(threads.len(), 2);
        assert!(threads.into_iter().all(|t| t.join().is_ok()));
        assert!(
            !readers.send(Box::new(|_| {})),
            "stopped readers take no read"
        );
    }
}
