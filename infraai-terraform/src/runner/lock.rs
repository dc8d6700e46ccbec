//! One operation at a time per work directory: a lock within this runner
//! (with the run's cancel token) and an `flock` on the directory's lock
//! file against other processes.

use super::*;

/// Holds a work directory for one operation.
pub(super) struct DirLock<'a> {
    runner: &'a TerraformRunner,
    dir: PathBuf,
    token: CancelToken,
    _file: Option<std::fs::File>,
}

impl Drop for DirLock<'_> {
    fn drop(&mut self) {
        locked(&self.runner.active).remove(&self.dir);
    }
}

impl DirLock<'_> {
    /// [`TerraformRunner::exec`] in the locked directory.
    pub(super) async fn exec<A: Into<OsString>>(
        &self,
        op: &'static str,
        args: impl IntoIterator<Item = A>,
        log: Option<&dyn LogSink>,
    ) -> Result<(Finished, Vec<LogLine>)> {
        let args = args.into_iter().map(Into::into).collect();
        self.runner
            .exec(op, &self.dir, &self.token, args, log)
            .await
    }

    /// Like [`DirLock::exec`], with a non-zero exit as a `Failed` error.
    pub(super) async fn exec_ok<A: Into<OsString>>(
        &self,
        op: &'static str,
        args: impl IntoIterator<Item = A>,
        log: Option<&dyn LogSink>,
    ) -> Result<Finished> {
        let (done, events) = self.exec(op, args, log).await?;
        if !done.status.success() {
            return Err(failed(op, &self.dir, &done, &events));
        }
        Ok(done)
    }
}

impl TerraformRunner {
    /// Takes the run's work directory for `op`, or says who holds it.
    pub(super) async fn lock(&self, ws: &TfWorkspace, op: &'static str) -> Result<DirLock<'_>> {
        let dir = ws.dir.clone();
        if dir != self.workspace(ws.run_id).dir {
            return Err(TerraformError::Invalid {
                what: "workspace",
                detail: format!(
                    "{} is not this runner's directory for run {} ({})",
                    dir.display(),
                    ws.run_id,
                    self.workspace(ws.run_id).dir.display()
                ),
            });
        }
        let token = CancelToken::new();
        {
            let mut active = locked(&self.active);
            // Checked under the `active` lock, which `cancel` also takes after
            // marking the run: a cancel cannot slip between check and insert.
            if locked(&self.cancelled).contains(&ws.run_id) {
                return Err(TerraformError::Cancelled {
                    op,
                    dir,
                    stop: Stop::NotStarted,
                });
            }
            if let Some(a) = active.get(&dir) {
                return Err(TerraformError::Busy {
                    op,
                    dir,
                    holder: format!("{} of this runner", a.op),
                });
            }
            active.insert(
                dir.clone(),
                Active {
                    run_id: ws.run_id,
                    op,
                    token: token.clone(),
                },
            );
        }
        let mut guard = DirLock {
            runner: self,
            dir: dir.clone(),
            token,
            _file: None,
        };
        let file = tokio::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(LOCK_FILE))
            .await
            .map_err(io_err(op, &dir))?
            .into_std()
            .await;
        // A child forked by another thread of this process holds a copy of the
        // descriptor until its exec closes it (O_CLOEXEC), so a brief
        // EWOULDBLOCK is retried; a real holder keeps the lock for far longer.
        let deadline = Instant::now() + LOCK_RETRY;
        loop {
            // SAFETY: flock on a descriptor we own; LOCK_NB makes it non-blocking.
            let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
            if rc == 0 {
                break;
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::WouldBlock {
                return Err(TerraformError::Io { op, dir, source: e });
            }
            if Instant::now() >= deadline {
                return Err(TerraformError::Busy {
                    op,
                    dir,
                    holder: "another process".into(),
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        guard._file = Some(file);
        Ok(guard)
    }
}
