//! Running one terraform command: its own process group, streamed output lines,
//! a timeout, cancellation, and the whole group killed when any of those (or a
//! dropped future) ends it early.

use crate::error::{Result, Stop as StopKind, TerraformError};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;
use tokio::sync::Notify;
use tracing::{debug, warn};

/// Cancels a running operation. Cheap to clone; cancelling is idempotent.
#[derive(Clone, Debug, Default)]
pub(crate) struct CancelToken(Arc<CancelInner>);

#[derive(Debug, Default)]
struct CancelInner {
    cancelled: AtomicBool,
    notify: Notify,
}

impl CancelToken {
    /// A token that is not cancelled.
    pub fn new() -> Self {
        Self::default()
    }

    /// Cancels: the operation kills its process group and returns `Cancelled`.
    pub fn cancel(&self) {
        self.0.cancelled.store(true, Ordering::SeqCst);
        self.0.notify.notify_waiters();
    }

    /// Whether [`CancelToken::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.cancelled.load(Ordering::SeqCst)
    }

    /// Resolves once cancelled.
    pub async fn cancelled(&self) {
        loop {
            let notified = self.0.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_cancelled() {
                return;
            }
            notified.await;
        }
    }
}

/// Which stream a line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stream {
    Stdout,
    Stderr,
}

/// One command to run.
pub(crate) struct Invocation<'a> {
    pub op: &'static str,
    pub binary: &'a Path,
    pub dir: &'a Path,
    pub args: Vec<OsString>,
    pub env: &'a [(OsString, OsString)],
    pub timeout: Duration,
    pub grace: Duration,
    pub cancel: &'a CancelToken,
}

/// How a command ended (it ran to completion).
pub(crate) struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    pub fn status_text(&self) -> String {
        use std::os::unix::process::ExitStatusExt;
        match (self.status.code(), self.status.signal()) {
            (Some(c), _) => format!("exit status {c}"),
            (None, Some(s)) => format!("signal {s}"),
            _ => self.status.to_string(),
        }
    }
}

/// Kills the process group unless disarmed: covers timeouts, cancellation
/// and a caller dropping the future mid-run.
struct GroupGuard {
    pgid: Option<libc::pid_t>,
}

impl GroupGuard {
    fn signal(&self, sig: libc::c_int) {
        if let Some(pgid) = self.pgid {
            // SAFETY: killpg only sends a signal; the group id is the child's pid,
            // which we have not reaped yet, so it cannot name another group.
            unsafe {
                libc::killpg(pgid, sig);
            }
        }
    }

    fn disarm(&mut self) {
        self.pgid = None;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.signal(libc::SIGKILL);
    }
}

/// Splits a stream into lines, tolerating invalid UTF-8 and a missing final newline.
struct LineReader<R> {
    reader: BufReader<R>,
    buf: Vec<u8>,
    done: bool,
}

impl<R: AsyncRead + Unpin> LineReader<R> {
    fn new(r: R) -> Self {
        Self {
            reader: BufReader::new(r),
            buf: Vec::new(),
            done: false,
        }
    }

    /// The next line; `None` at end of stream. Cancel safe: a partial line
    /// stays in the buffer.
    async fn next(&mut self) -> Option<String> {
        if self.done {
            return None;
        }
        match self.reader.read_until(b'\n', &mut self.buf).await {
            Ok(0) | Err(_) => {
                self.done = true;
                (!self.buf.is_empty()).then(|| self.take())
            }
            Ok(_) => Some(self.take()),
        }
    }

    fn take(&mut self) -> String {
        let mut line = String::from_utf8_lossy(&self.buf).into_owned();
        self.buf.clear();
        while line.ends_with('\n') || line.ends_with('\r') {
            line.pop();
        }
        line
    }
}

/// After terraform exits, how long to keep reading output that a leftover
/// child still holds open.
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(2);

/// Runs a command to completion, calling `on_line` for every output line as it
/// arrives. Errors: binary missing, spawn failure, timeout, cancellation. A
/// non-zero exit is *not* an error here; callers interpret it.
pub(crate) async fn run(
    inv: Invocation<'_>,
    mut on_line: impl FnMut(Stream, &str),
) -> Result<Finished> {
    let dir: PathBuf = inv.dir.to_path_buf();
    if inv.cancel.is_cancelled() {
        return Err(TerraformError::Cancelled {
            op: inv.op,
            dir,
            stop: StopKind::NotStarted,
        });
    }
    let mut cmd = Command::new(inv.binary);
    cmd.args(&inv.args)
        .current_dir(inv.dir)
        .env("TF_IN_AUTOMATION", "1")
        .env("TF_INPUT", "0")
        .env("CHECKPOINT_DISABLE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    // Cancellation is SIGINT first: a server started with SIGINT ignored
    // (`nohup`, a background job of a script) would pass that on to
    // Terraform's provisioners and the shells they run, which then could not
    // be stopped gracefully. The child starts with the default disposition.
    // SAFETY: between fork and exec only async-signal-safe calls are allowed;
    // signal(2) is one, and the closure touches no other state.
    unsafe {
        cmd.pre_exec(|| {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            Ok(())
        });
    }
    for (k, v) in inv.env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound && !inv.dir.exists() {
            TerraformError::Io {
                op: inv.op,
                dir: dir.clone(),
                source,
            }
        } else if source.kind() == std::io::ErrorKind::NotFound
            || source.kind() == std::io::ErrorKind::PermissionDenied
        {
            TerraformError::BinaryNotFound {
                binary: inv.binary.to_path_buf(),
            }
        } else {
            TerraformError::Spawn {
                op: inv.op,
                dir: dir.clone(),
                source,
            }
        }
    })?;
    let pid = child.id().and_then(|p| libc::pid_t::try_from(p).ok());
    let mut guard = GroupGuard { pgid: pid };
    debug!(op = inv.op, dir = %dir.display(), pid = ?pid, "terraform started");

    let (Some(out), Some(err)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(TerraformError::Spawn {
            op: inv.op,
            dir,
            source: std::io::Error::other("stdout/stderr were not piped"),
        });
    };
    let mut out = LineReader::new(out);
    let mut err = LineReader::new(err);
    let mut stdout = String::new();
    let mut stderr = String::new();
    let deadline = tokio::time::sleep(inv.timeout);
    tokio::pin!(deadline);
    let mut status: Option<ExitStatus> = None;
    // Armed when terraform exits (see DRAIN_AFTER_EXIT).
    let drain = tokio::time::sleep(Duration::from_secs(86400));
    tokio::pin!(drain);

    enum Stop {
        Cancelled,
        Timeout,
    }
    let stop = loop {
        if status.is_some() && out.done && err.done {
            break None;
        }
        tokio::select! {
            biased;
            _ = inv.cancel.cancelled() => break Some(Stop::Cancelled),
            _ = &mut deadline => break Some(Stop::Timeout),
            line = out.next(), if !out.done => {
                if let Some(line) = line {
                    on_line(Stream::Stdout, &line);
                    stdout.push_str(&line);
                    stdout.push('\n');
                }
            }
            line = err.next(), if !err.done => {
                if let Some(line) = line {
                    on_line(Stream::Stderr, &line);
                    stderr.push_str(&line);
                    stderr.push('\n');
                }
            }
            s = child.wait(), if status.is_none() => {
                match s {
                    Ok(s) => {
                        status = Some(s);
                        drain.as_mut().reset(tokio::time::Instant::now() + DRAIN_AFTER_EXIT);
                    }
                    Err(source) => return Err(TerraformError::Io { op: inv.op, dir, source }),
                }
            }
            _ = &mut drain, if status.is_some() => {
                warn!(op = inv.op, dir = %dir.display(), "terraform exited but its output stayed open; stopped reading");
                break None;
            }
        }
    };

    match stop {
        None => {
            // Terraform finished: leave its group alone (a local cloud's
            // processes may live in it by design).
            guard.disarm();
            let status = status.ok_or_else(|| TerraformError::Parse {
                op: inv.op,
                dir: dir.clone(),
                detail: "no exit status".into(),
            })?;
            Ok(Finished {
                status,
                stdout,
                stderr,
            })
        }
        Some(stop) => {
            // Ask politely first (terraform saves state on SIGINT), then kill
            // the whole group, then reap.
            guard.signal(libc::SIGINT);
            let graceful = status.is_some()
                || matches!(
                    tokio::time::timeout(inv.grace, child.wait()).await,
                    Ok(Ok(_))
                );
            let how = if graceful {
                StopKind::Graceful
            } else {
                StopKind::Forced
            };
            guard.signal(libc::SIGKILL);
            guard.disarm();
            let _ = child.wait().await;
            match stop {
                Stop::Cancelled => {
                    warn!(op = inv.op, dir = %dir.display(), graceful, "terraform cancelled; process group killed");
                    Err(TerraformError::Cancelled {
                        op: inv.op,
                        dir,
                        stop: how,
                    })
                }
                Stop::Timeout => {
                    warn!(op = inv.op, dir = %dir.display(), timeout = ?inv.timeout, graceful, "terraform timed out; process group killed");
                    Err(TerraformError::Timeout {
                        op: inv.op,
                        dir,
                        after: inv.timeout,
                        stop: how,
                    })
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn sh<'a>(script: &str, token: &'a CancelToken, timeout: Duration) -> Invocation<'a> {
        Invocation {
            op: "test",
            binary: Path::new("/bin/sh"),
            dir: Path::new("/"),
            args: vec!["-c".into(), script.into()],
            env: &[],
            timeout,
            grace: Duration::from_millis(500),
            cancel: token,
        }
    }

    #[tokio::test]
    async fn lines_stream_and_exit_status_is_kept() {
        let token = CancelToken::new();
        let mut lines = Vec::new();
        let done = run(
            sh(
                "echo a; echo b >&2; printf 'no newline'; exit 3",
                &token,
                Duration::from_secs(10),
            ),
            |s, l| lines.push((s, l.to_string())),
        )
        .await
        .unwrap();
        assert_eq!(done.status_text(), "exit status 3");
        assert_eq!(done.stdout, "a\nno newline\n");
        assert_eq!(done.stderr, "b\n");
        assert!(lines.contains(&(Stream::Stdout, "a".into())));
        assert!(lines.contains(&(Stream::Stderr, "b".into())));
    }

    #[tokio::test]
    async fn a_process_ignoring_sigint_is_killed_after_the_grace_period() {
        let token = CancelToken::new();
        let canceller = token.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            canceller.cancel();
        });
        let t = Instant::now();
        let err = run(
            sh(
                "trap '' INT; sleep 30 & wait",
                &token,
                Duration::from_secs(20),
            ),
            |_, _| {},
        )
        .await
        .err()
        .unwrap();
        assert!(
            matches!(
                err,
                TerraformError::Cancelled {
                    stop: StopKind::Forced,
                    ..
                }
            ),
            "{err}"
        );
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
        // Cancelled before start: nothing runs.
        let err = run(sh("exit 0", &token, Duration::from_secs(1)), |_, _| {})
            .await
            .err()
            .unwrap();
        assert!(matches!(
            err,
            TerraformError::Cancelled {
                stop: StopKind::NotStarted,
                ..
            }
        ));
    }

    #[tokio::test]
    async fn a_timeout_stops_a_graceful_process() {
        let token = CancelToken::new();
        let t = Instant::now();
        // Passes with SIGINT ignored in this process too (`nohup`, a script's
        // background job): the child gets the default disposition back.
        let err = run(
            sh("sleep 30", &token, Duration::from_millis(300)),
            |_, _| {},
        )
        .await
        .err()
        .unwrap();
        assert!(
            matches!(
                err,
                TerraformError::Timeout {
                    stop: StopKind::Graceful,
                    ..
                }
            ),
            "{err}"
        );
        assert!(t.elapsed() < Duration::from_secs(3));
    }
}
