//! [`TfRunner`] for [`TerraformRunner`]: the deploy loop's view of it.

use super::*;

#[async_trait]
impl TfRunner for TerraformRunner {
    async fn write_files(
        &self,
        run_id: RunId,
        files: &TerraformFiles,
    ) -> infraai_core::Result<TfWorkspace> {
        if let Some(bad) = files.files.keys().find(|n| !valid_file_name(n)) {
            return Err(TerraformError::Invalid {
                what: "terraform file name",
                detail: format!("{bad:?} must be a plain name ending in .tf or .tf.json"),
            }
            .into());
        }
        let ws = self.workspace(run_id);
        tokio::fs::create_dir_all(&ws.dir)
            .await
            .map_err(io_err("write_files", &ws.dir))?;
        let _lock = self.lock(&ws, "write_files").await?;
        // Replace: configuration files that are not in the new set go away.
        let mut entries = tokio::fs::read_dir(&ws.dir)
            .await
            .map_err(io_err("write_files", &ws.dir))?;
        while let Some(entry) = entries
            .next_entry()
            .await
            .map_err(io_err("write_files", &ws.dir))?
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            if valid_file_name(&name) && !files.files.contains_key(&name) {
                tokio::fs::remove_file(entry.path())
                    .await
                    .map_err(io_err("write_files", &ws.dir))?;
            }
        }
        for (name, text) in &files.files {
            write_atomic(&ws.dir, &ws.dir.join(name), text.as_bytes(), "write_files").await?;
        }
        info!(run_id = %run_id, dir = %ws.dir.display(), files = files.files.len(), "terraform files written");
        Ok(ws)
    }

    async fn init(&self, ws: &TfWorkspace, log: &dyn LogSink) -> infraai_core::Result<()> {
        let lock = self.lock(ws, "init").await?;
        Ok(self.init_locked(ws, &lock, log).await?)
    }

    async fn validate(&self, ws: &TfWorkspace) -> infraai_core::Result<ValidationReport> {
        let lock = self.lock(ws, "validate").await?;
        let report = self.validate_locked(ws, &lock).await?;
        let needs_init = !report.valid
            && report
                .diagnostics
                .iter()
                .any(|d| NEEDS_INIT.iter().any(|n| d.summary.contains(n)));
        if needs_init {
            // e.g. a fix made a configuration valid that init had refused.
            self.init_locked(ws, &lock, &NoLog).await?;
            return Ok(self.validate_locked(ws, &lock).await?);
        }
        Ok(report)
    }

    async fn plan(&self, ws: &TfWorkspace, log: &dyn LogSink) -> infraai_core::Result<ChangeSet> {
        let lock = self.lock(ws, "plan").await?;
        let view = PlanView::Attributes;
        Ok(self
            .plan_locked(ws, &lock, log, vec![], PLAN_FILE, view)
            .await?)
    }

    async fn plan_to_apply(
        &self,
        ws: &TfWorkspace,
        log: &dyn LogSink,
    ) -> infraai_core::Result<ChangeSet> {
        let lock = self.lock(ws, "plan").await?;
        let view = PlanView::Actions;
        Ok(self
            .plan_locked(ws, &lock, log, vec![], PLAN_FILE, view)
            .await?)
    }

    async fn apply(&self, ws: &TfWorkspace, log: &dyn LogSink) -> infraai_core::Result<Applied> {
        let lock = self.lock(ws, "apply").await?;
        Ok(self.apply_locked(ws, &lock, log).await?)
    }

    async fn output(
        &self,
        ws: &TfWorkspace,
    ) -> infraai_core::Result<BTreeMap<String, serde_json::Value>> {
        Ok(wire::masked(self.outputs(ws).await?))
    }

    async fn state(
        &self,
        ws: &TfWorkspace,
    ) -> infraai_core::Result<Vec<infraai_core::StateResource>> {
        Ok(self.state_resources(ws).await?)
    }

    async fn output_and_state(
        &self,
        ws: &TfWorkspace,
    ) -> infraai_core::Result<infraai_core::OutputAndState> {
        match self.shown_state(ws).await {
            Ok((resources, outputs)) => Ok((wire::masked(outputs), Ok(resources))),
            // The outputs on their own, and why the state could not be read.
            Err(e) => Ok((self.output(ws).await?, Err(e.into()))),
        }
    }

    async fn plan_destroy(
        &self,
        ws: &TfWorkspace,
        log: &dyn LogSink,
    ) -> infraai_core::Result<ChangeSet> {
        Ok(TerraformRunner::plan_destroy(self, ws, log).await?)
    }

    async fn destroy(&self, ws: &TfWorkspace, log: &dyn LogSink) -> infraai_core::Result<()> {
        let lock = self.lock(ws, "destroy").await?;
        let args = ["destroy", "-input=false", "-json", "-auto-approve"];
        lock.exec_ok("destroy", args, Some(log)).await?;
        Ok(())
    }
}
