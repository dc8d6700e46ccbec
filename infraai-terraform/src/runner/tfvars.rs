//! The action path's input variables: `<name>.auto.tfvars.json` written,
//! planned and applied as one locked step, previewed without a trace.

use super::*;

impl TerraformRunner {
    /// Sets variables in `<name>.auto.tfvars.json` in the run's directory
    /// (merged into the file's existing variables). Terraform loads it on
    /// every later plan. Returns the file's path.
    pub async fn write_tfvars(&self, ws: &TfWorkspace, change: &TfvarsChange) -> Result<PathBuf> {
        let _lock = self.lock(ws, "write_tfvars").await?;
        let path = tfvars_path(ws, change)?;
        let old = read_optional(&path, &ws.dir).await?;
        self.write_tfvars_locked(ws, &path, old.as_deref(), &change.values)
            .await?;
        Ok(path)
    }

    async fn write_tfvars_locked(
        &self,
        ws: &TfWorkspace,
        path: &Path,
        old: Option<&[u8]>,
        values: &BTreeMap<String, Value>,
    ) -> Result<()> {
        let mut merged: serde_json::Map<String, Value> = match old {
            Some(bytes) => serde_json::from_slice(bytes).map_err(|e| {
                parse_err("write_tfvars", &ws.dir)(format!(
                    "{} is not a JSON object: {e}",
                    path.display()
                ))
            })?,
            None => serde_json::Map::new(),
        };
        merged.extend(values.iter().map(|(k, v)| (k.clone(), v.clone())));
        let json = serde_json::to_vec_pretty(&merged).map_err(|e| TerraformError::Invalid {
            what: "tfvars values",
            detail: e.to_string(),
        })?;
        write_atomic(&ws.dir, path, &json, "write_tfvars").await?;
        // Names only: values may be secrets.
        info!(run_id = %ws.run_id, file = %path.display(), variables = ?values.keys().collect::<Vec<_>>(), "tfvars written");
        Ok(())
    }

    /// The action path: sets the variables in `<name>.auto.tfvars.json`, plans,
    /// and applies exactly that saved plan. Configuration files are never
    /// rewritten. Returns the change set that was applied.
    ///
    /// When [`TfvarsChange::approved`] is set and the fresh plan differs from
    /// it (the infrastructure drifted since the preview), nothing is applied,
    /// the tfvars file is restored and a `Conflict` error says so. The file is
    /// also restored when planning fails. When apply itself fails, the new
    /// values stay (they are the intent; the state may be partly changed).
    pub async fn apply_tfvars(
        &self,
        ws: &TfWorkspace,
        change: &TfvarsChange,
        log: &dyn LogSink,
    ) -> Result<ChangeSet> {
        let lock = self.lock(ws, "apply_tfvars").await?;
        let path = tfvars_path(ws, change)?;
        let old = read_optional(&path, &ws.dir).await?;
        self.write_tfvars_locked(ws, &path, old.as_deref(), &change.values)
            .await?;
        let restore = || async {
            let restored = match &old {
                Some(bytes) => write_atomic(&ws.dir, &path, bytes, "apply_tfvars").await,
                None => tokio::fs::remove_file(&path)
                    .await
                    .map_err(io_err("apply_tfvars", &ws.dir)),
            };
            if let Err(e) = restored {
                warn!(file = %path.display(), error = %e, "could not restore the tfvars file");
            }
        };
        let planned = self.plan_locked(ws, &lock, log, vec![], PLAN_FILE, PlanView::Attributes);
        let set = match planned.await {
            Ok(set) => set,
            Err(e) => {
                restore().await;
                return Err(e);
            }
        };
        if let Some(approved) = &change.approved {
            if approved != &set {
                restore().await;
                let _ = tokio::fs::remove_file(ws.dir.join(PLAN_FILE)).await;
                return Err(TerraformError::PlanChanged {
                    op: "apply_tfvars",
                    dir: ws.dir.clone(),
                    approved: approved.summary(),
                    planned: set.summary(),
                });
            }
        }
        self.apply_locked(ws, &lock, log).await?;
        Ok(set)
    }

    /// The dry-run preview of a tfvars change: plans with the new values
    /// without changing `<name>.auto.tfvars.json` or keeping a plan.
    pub async fn preview_tfvars(
        &self,
        ws: &TfWorkspace,
        change: &TfvarsChange,
        log: &dyn LogSink,
    ) -> Result<ChangeSet> {
        let lock = self.lock(ws, "preview_tfvars").await?;
        tfvars_path(ws, change)?;
        // `.tfvars.json` without `.auto`: loaded only through -var-file, which
        // takes precedence over the auto files.
        let staged = ws.dir.join(format!("{}-preview.tfvars.json", change.name));
        self.write_tfvars_locked(ws, &staged, None, &change.values)
            .await?;
        let preview_plan = "infraai-preview.tfplan";
        let result = self
            .plan_locked(
                ws,
                &lock,
                log,
                vec![format!("-var-file={}", staged.display()).into()],
                preview_plan,
                PlanView::Attributes,
            )
            .await;
        for f in [staged, ws.dir.join(preview_plan)] {
            let _ = tokio::fs::remove_file(f).await;
        }
        result
    }
}

/// A change of input variables through `<name>.auto.tfvars.json`: how actions
/// change infrastructure (e.g. a machine type) without rewriting configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct TfvarsChange {
    /// The file is `<name>.auto.tfvars.json`; must be an identifier.
    pub name: String,
    /// Variable name (an identifier) → new value. Other variables in the file stay.
    pub values: BTreeMap<String, Value>,
    /// The preview a human or the guardrails approved: apply refuses a plan
    /// that differs from it.
    pub approved: Option<ChangeSet>,
}

impl TfvarsChange {
    /// A change of `values` in `<name>.auto.tfvars.json`.
    pub fn new(name: impl Into<String>, values: BTreeMap<String, Value>) -> Self {
        Self {
            name: name.into(),
            values,
            approved: None,
        }
    }

    /// Requires the applied plan to equal this approved preview.
    pub fn approved(mut self, preview: ChangeSet) -> Self {
        self.approved = Some(preview);
        self
    }
}

/// Validates the names and returns `<dir>/<name>.auto.tfvars.json`.
fn tfvars_path(ws: &TfWorkspace, change: &TfvarsChange) -> Result<PathBuf> {
    if !is_identifier(&change.name) {
        return Err(TerraformError::Invalid {
            what: "tfvars name",
            detail: format!("{:?} must match [A-Za-z_][A-Za-z0-9_-]*", change.name),
        });
    }
    if let Some(bad) = change.values.keys().find(|k| !is_identifier(k)) {
        return Err(TerraformError::Invalid {
            what: "variable name",
            detail: format!("{bad:?} must match [A-Za-z_][A-Za-z0-9_-]*"),
        });
    }
    Ok(ws.dir.join(format!("{}.auto.tfvars.json", change.name)))
}

async fn read_optional(path: &Path, dir: &Path) -> Result<Option<Vec<u8>>> {
    match tokio::fs::read(path).await {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err("read_tfvars", dir)(e)),
    }
}
