//! # infraai-terraform
//!
//! Terraform is infraai's deploy and action engine. This crate drives the real
//! `terraform` CLI — never a simulation — and writes HCL that no input string
//! can change in structure.
//!
//! * [`TerraformRunner`] implements [`infraai_core::TfRunner`]: `init`,
//!   `validate -json` → typed diagnostics, `plan -out` + `show -json` → the
//!   dry-run [`infraai_core::ChangeSet`], `apply` of exactly that saved plan with
//!   every `-json` event streamed to the [`infraai_core::LogSink`], `output
//!   -json`, `destroy`. One directory per run, one operation per directory,
//!   timeouts, cancellation that kills the whole process group, and the
//!   tfvars action path ([`TerraformRunner::apply_tfvars`]).
//! * [`TfvarsActions`]: that action path for stored deployments, shared by
//!   the cloud adapters (find the resource's work directory, preview, apply).
//! * [`hcl`]: a small typed HCL writer (validated identifiers, escaped strings).
//! * [`fixers`]: deterministic [`infraai_core::Fixer`]s for common diagnostics.
//!
//! ## Example
//!
//! ```no_run
//! use infraai_core::{LogLine, LogSink, RunId, TerraformFiles, TfRunner};
//! use infraai_terraform::hcl::{Block, Body, Expr};
//! use infraai_terraform::{TerraformConfig, TerraformRunner};
//!
//! struct Print;
//! impl LogSink for Print {
//!     fn log(&self, line: LogLine) {
//!         println!("{}", line.message);
//!     }
//! }
//!
//! # async fn demo() -> infraai_core::Result<()> {
//! let mut body = Body::new();
//! body.push(Block::resource("terraform_data", "hello")?.attr("input", "hi ${not a template}")?);
//! body.push(Block::output("greeting")?.attr("value", Expr::reference("terraform_data.hello.output")?)?);
//!
//! let runner = TerraformRunner::new(
//!     TerraformConfig::new("/var/lib/infraai/runs").with_binary("/usr/local/bin/terraform"),
//! );
//! let ws = runner
//!     .write_files(RunId::new(), &TerraformFiles::single(body.to_string()))
//!     .await?;
//! runner.init(&ws, &Print).await?;
//! assert!(runner.validate(&ws).await?.valid);
//! let preview = runner.plan(&ws, &Print).await?; // what a human approves
//! println!("{}", preview.summary());
//! runner.apply(&ws, &Print).await?; // exactly the saved plan
//! let outputs = runner.output(&ws).await?;
//! assert_eq!(outputs["greeting"], "hi ${not a template}");
//! # Ok(()) }
//! ```

#![deny(missing_docs)]

mod actions;
mod config;
mod error;
pub mod fixers;
pub mod hcl;
mod process;
mod runner;
mod wire;

pub use actions::{machine_type_var, ManagedResource, TfvarsActions, ACTIONS_TFVARS};
pub use config::{TerraformConfig, Timeouts};
pub use error::{Result, Stop, TerraformError};
pub use fixers::deterministic_fixers;
pub use runner::{TerraformRunner, TfvarsChange, LOCK_FILE, PLAN_FILE};
pub use wire::{TfOutput, SENSITIVE};
