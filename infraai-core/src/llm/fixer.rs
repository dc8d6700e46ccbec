//! [`LlmFixer`]: invalid Terraform files + diagnostics → replacement files.

use super::budget::TokenBudget;
use super::call::{Call, LlmCaller};
use super::prompts::{self, quote_json, FIX_PROMPT_VERSION};
use crate::domain::TerraformFiles;
use crate::traits::{FixRequest, Fixer, HistoryStore, LlmProvider};
use crate::Result;
use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::Arc;
use tracing::warn;

/// Largest replacement file accepted (bytes).
const MAX_FILE_BYTES: usize = 256 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FixAnswer {
    files: Vec<FileAnswer>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileAnswer {
    path: String,
    content: String,
}

/// A [`Fixer`] backed by an LLM. It may only replace files of the run it was
/// given (never add paths); the deploy loop validates the result again. When
/// the answer is invalid twice, the provider fails or the budget is spent, it
/// returns `None` (stop fixing).
pub struct LlmFixer {
    caller: LlmCaller,
    name: String,
}

super::call::caller_options!(LlmFixer);

impl LlmFixer {
    /// A fixer asking `provider`.
    pub fn new(provider: Arc<dyn LlmProvider>) -> Self {
        Self {
            name: format!("llm:{}", provider.name()),
            caller: LlmCaller::new(provider),
        }
    }

    fn schema(paths: &[&String]) -> Value {
        json!({
            "type": "object",
            "properties": {
                "files": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": paths.len(),
                    "items": {
                        "type": "object",
                        "properties": {
                            "path": {"type": "string", "enum": paths},
                            "content": {"type": "string"}
                        },
                        "required": ["path", "content"],
                        "additionalProperties": false
                    }
                }
            },
            "required": ["files"],
            "additionalProperties": false
        })
    }
}

fn apply(original: &TerraformFiles, v: &Value) -> std::result::Result<TerraformFiles, Vec<String>> {
    let answer: FixAnswer =
        serde_json::from_value(v.clone()).map_err(|e| vec![format!("/: {e}")])?;
    let mut out = original.clone();
    let mut seen = BTreeSet::new();
    let mut errors = Vec::new();
    for (i, f) in answer.files.into_iter().enumerate() {
        if !original.files.contains_key(&f.path) {
            errors.push(format!(
                "/files/{i}/path: {:?} is not a file of this run",
                f.path
            ));
        } else if !seen.insert(f.path.clone()) {
            errors.push(format!("/files/{i}/path: {:?} is returned twice", f.path));
        } else if f.content.len() > MAX_FILE_BYTES {
            errors.push(format!(
                "/files/{i}/content: larger than {MAX_FILE_BYTES} bytes"
            ));
        } else {
            out.files.insert(f.path, f.content);
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

#[async_trait]
impl Fixer for LlmFixer {
    fn name(&self) -> &str {
        &self.name
    }

    async fn fix(&self, request: &FixRequest<'_>) -> Result<Option<TerraformFiles>> {
        if request.files.files.is_empty() {
            return Ok(None);
        }
        let paths: Vec<&String> = request.files.files.keys().collect();
        let data = json!({
            "files": request.files.files,
            "diagnostics": request.diagnostics,
            "plan": {
                "cloud": request.plan.cloud, "region": request.plan.region,
                "resources": request.plan.resources.iter()
                    .map(|r| json!({"name": r.name, "kind": r.kind, "resource_type": r.resource_type}))
                    .collect::<Vec<_>>(),
            },
        });
        let call = Call {
            component: "fix",
            prompt_version: FIX_PROMPT_VERSION,
            system: prompts::render("fix.system", &json!({}))?,
            prompt: prompts::render(
                "fix.user",
                &json!({ "attempt": request.attempt, "data": quote_json(&data) }),
            )?,
            schema_name: "terraform_fix",
            schema: Self::schema(&paths),
            incident_id: None,
            run_id: None,
            normalize: |_| {},
        };
        match self.caller.run(&call, |v| apply(request.files, v)).await {
            Ok(files) if &files == request.files => Ok(None),
            Ok(files) => Ok(Some(files)),
            Err(failure) => {
                warn!(attempt = request.attempt, error = %failure, "LLM fixer gives up");
                Ok(None)
            }
        }
    }
}
