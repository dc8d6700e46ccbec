//! Settings of the [`crate::TerraformRunner`]. No environment is read here: the
//! embedding program decides where values come from.

use std::path::PathBuf;
use std::time::Duration;

/// How long each operation may run before its process group is killed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// `terraform init` (provider installation).
    pub init: Duration,
    /// `terraform validate`.
    pub validate: Duration,
    /// `terraform plan` and `show` of the saved plan, each.
    pub plan: Duration,
    /// `terraform apply`.
    pub apply: Duration,
    /// `terraform output`.
    pub output: Duration,
    /// `terraform destroy`.
    pub destroy: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            init: Duration::from_secs(300),
            validate: Duration::from_secs(120),
            plan: Duration::from_secs(600),
            apply: Duration::from_secs(3600),
            output: Duration::from_secs(60),
            destroy: Duration::from_secs(3600),
        }
    }
}

impl Timeouts {
    /// The same limit for every operation (handy in tests).
    pub fn all(limit: Duration) -> Self {
        Self {
            init: limit,
            validate: limit,
            plan: limit,
            apply: limit,
            output: limit,
            destroy: limit,
        }
    }
}

/// Settings of a [`crate::TerraformRunner`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TerraformConfig {
    /// The terraform binary: a path, or a name looked up on `PATH`
    /// (default `terraform`).
    pub binary: PathBuf,
    /// Each run works in `<work_root>/<run_id>`.
    pub work_root: PathBuf,
    /// Passed to terraform as `TF_CLI_CONFIG_FILE` (e.g. an offline provider mirror).
    pub cli_config_file: Option<PathBuf>,
    /// Extra environment for terraform (e.g. cloud credentials). Values are never logged.
    pub env: Vec<(String, String)>,
    /// Per-operation time limits.
    pub timeouts: Timeouts,
    /// After a timeout or cancel, how long terraform gets to stop after SIGINT
    /// (it saves state) before the whole process group is killed with SIGKILL.
    pub kill_grace: Duration,
}

impl TerraformConfig {
    /// Defaults with runs under `work_root`.
    pub fn new(work_root: impl Into<PathBuf>) -> Self {
        Self {
            binary: PathBuf::from("terraform"),
            work_root: work_root.into(),
            cli_config_file: None,
            env: Vec::new(),
            timeouts: Timeouts::default(),
            kill_grace: Duration::from_secs(2),
        }
    }

    /// Sets the binary.
    pub fn with_binary(mut self, binary: impl Into<PathBuf>) -> Self {
        self.binary = binary.into();
        self
    }

    /// Sets `TF_CLI_CONFIG_FILE`.
    pub fn with_cli_config_file(mut self, file: impl Into<PathBuf>) -> Self {
        self.cli_config_file = Some(file.into());
        self
    }

    /// Sets the time limits.
    pub fn with_timeouts(mut self, timeouts: Timeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// Adds an environment variable for terraform.
    pub fn with_env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }
}
