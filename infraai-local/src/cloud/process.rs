//! The building blocks of the local cloud's configuration: a
//! `terraform_data` resource around a process, and the two data stores.

use super::{machine_type_var, restart_var, scripts, var};
use crate::binaries;
use infraai_core::{ResourceKind, Result};
use infraai_terraform::hcl::{Block, Expr};
use std::path::PathBuf;

/// The two kinds of data store.
#[derive(Clone, Copy, Debug)]
pub(super) enum Store {
    Postgres,
    Redis,
}

impl Store {
    pub(super) fn kind(self) -> ResourceKind {
        match self {
            Store::Postgres => ResourceKind::Database,
            Store::Redis => ResourceKind::Cache,
        }
    }

    /// (scheme, user, path) of its connection URL.
    pub(super) fn url_parts(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Store::Postgres => ("postgres", "app", "/app"),
            Store::Redis => ("redis", "default", "/0"),
        }
    }

    /// The environment variable naming its server program, and the program
    /// (an error naming the Debian package when it is not installed).
    pub(super) fn program(self) -> Result<(&'static str, PathBuf)> {
        Ok(match self {
            Store::Postgres => ("PG_BIN", binaries::postgres_bin_dir()?),
            Store::Redis => ("REDIS_SERVER", binaries::redis_server()?),
        })
    }

    pub(super) fn init(self) -> String {
        match self {
            Store::Postgres => scripts::postgres_init(),
            Store::Redis => scripts::REDIS_INIT.into(),
        }
    }

    pub(super) fn start(self) -> String {
        match self {
            Store::Postgres => scripts::postgres_start(),
            Store::Redis => scripts::redis_start(),
        }
    }

    /// PostgreSQL's fast shutdown is SIGINT; Redis saves and exits on SIGTERM.
    pub(super) fn stop_signal(self) -> &'static str {
        match self {
            Store::Postgres => "INT",
            Store::Redis => "TERM",
        }
    }
}

/// A `terraform_data` resource that starts something when created and
/// stops (or removes) it when destroyed.
pub(super) struct Process {
    name: String,
    input: Expr,
    start: String,
    env: Vec<(String, Expr)>,
    triggers: Vec<Expr>,
    after: Vec<Expr>,
    count: Option<Expr>,
    stop: &'static str,
    signal: &'static str,
}

impl Process {
    pub(super) fn new(
        name: &str,
        input: impl Into<Expr>,
        start: &str,
        env: Vec<(String, Expr)>,
    ) -> Self {
        Self {
            name: name.into(),
            input: input.into(),
            start: start.into(),
            env,
            triggers: vec![],
            after: vec![],
            count: None,
            stop: scripts::STOP,
            signal: "TERM",
        }
    }

    /// Replaced when the resource's machine type or restart variable changes.
    pub(super) fn restarted_by(mut self, resource: &str) -> Result<Self> {
        self.triggers = vec![
            var(&machine_type_var(resource))?,
            var(&restart_var(resource))?,
        ];
        Ok(self)
    }

    pub(super) fn after(mut self, resources: Vec<Expr>) -> Self {
        self.after = resources;
        self
    }

    pub(super) fn counted(mut self, count: Expr) -> Self {
        self.count = Some(count);
        self
    }

    pub(super) fn removed_by(mut self, script: &'static str) -> Self {
        self.stop = script;
        self
    }

    pub(super) fn stop_signal(mut self, signal: &'static str) -> Self {
        self.signal = signal;
        self
    }

    pub(super) fn block(self) -> Result<Block> {
        let shell = || vec!["/bin/sh", "-c"];
        let start = Block::new("provisioner", ["local-exec"])?
            .attr("command", self.start.as_str())?
            .attr("interpreter", shell())?
            .attr("environment", Expr::Object(self.env))?;
        let stop_env = vec![
            ("NAME".to_string(), Expr::reference("self.input.name")?),
            ("DIR".to_string(), Expr::reference("self.input.dir")?),
            ("DATA".to_string(), Expr::reference("self.input.data")?),
            ("SIGNAL".to_string(), self.signal.into()),
        ];
        let stop = Block::new("provisioner", ["local-exec"])?
            .attr("when", Expr::reference("destroy")?)?
            .attr("command", self.stop)?
            .attr("interpreter", shell())?
            .attr("environment", Expr::Object(stop_env))?;
        let mut block = Block::resource("terraform_data", &self.name)?;
        if let Some(count) = self.count {
            block = block.attr("count", count)?;
        }
        block = block.attr("input", self.input)?;
        if !self.triggers.is_empty() {
            block = block.attr("triggers_replace", Expr::List(self.triggers))?;
        }
        if !self.after.is_empty() {
            block = block.attr("depends_on", Expr::List(self.after))?;
        }
        Ok(block.block(start).block(stop))
    }
}
