//! The local cloud's Terraform: `terraform_data` resources whose
//! provisioners start and stop real processes on loopback ports.
//!
//! | planned kind | what runs | Terraform |
//! |---|---|---|
//! | compute | one demo-service process | `terraform_data.<name>` |
//! | instance group (or compute with `count` > 1) | N demo-service processes behind a load balancer (the demo service in `--balance` mode) | `terraform_data.<name>_instance[i]` (`count = var.instances_<name>`) and `terraform_data.<name>` |
//! | database | PostgreSQL (`initdb` + `postgres`) | `terraform_data.<name>_password`, `<name>_data`, `<name>` |
//! | cache | `redis-server` | `terraform_data.<name>_password`, `<name>_data`, `<name>` |
//!
//! A database's or cache's data lives in its own `_data` resource, so the
//! server process can be replaced (restart, scale-up) with its data kept;
//! destroy removes both. Firewalls, networks and load balancers planned on
//! their own have nothing to run on loopback and are left out.

mod process;
mod scripts;

use process::{Process, Store};

use crate::instances::InstanceDir;
use crate::ladder::{map_planned, LADDER};
use crate::profiles::{LOCAL_INSTANCE, LOCAL_INSTANCE_GROUP, LOCAL_POSTGRES, LOCAL_REDIS};
use infraai_core::{
    Error, FailurePattern, GenerateRequest, InfraPlan, MachineType, PlannedResource, ResourceKind,
    Result, TerraformFiles, TerraformGenerator,
};
use infraai_terraform::hcl::{Block, Body, Expr, Part};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Where the local cloud keeps its resources and how it starts an instance.
#[derive(Clone, Debug)]
pub struct LocalConfig {
    /// Resources record themselves under `<state_dir>` (see [`crate::instances`]).
    pub state_dir: PathBuf,
    /// The program that runs the demo service, and an optional first
    /// argument (e.g. the server binary and `demo-service`).
    pub service_program: PathBuf,
    /// The optional first argument of `service_program`.
    pub service_subcommand: Option<String>,
}

/// The local cloud as a [`TerraformGenerator`]: instances, groups,
/// databases and caches become real processes on loopback ports.
#[derive(Clone, Debug)]
pub struct LocalCloud {
    config: LocalConfig,
}

/// The variable holding a resource's machine type (`machine_type_<name>`,
/// the convention of every cloud's Terraform scale-up).
pub use infraai_terraform::machine_type_var;

/// The variable whose change restarts (replaces) a resource's processes.
pub fn restart_var(name: &str) -> String {
    format!("restart_{name}")
}

/// The variable holding a group's instance count.
pub fn instances_var(name: &str) -> String {
    format!("instances_{name}")
}

/// The local cloud's own apply-failure patterns (`failure_patterns.json`):
/// port in use, disk full, fork failures, permissions.
pub fn local_failure_patterns() -> Vec<FailurePattern> {
    FailurePattern::compiled_in("local", include_str!("../failure_patterns.json"))
}

fn free_port() -> Result<u16> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| Error::backend("local", "free_port", true, e))
}

fn utf8(path: &Path, what: &str) -> Result<String> {
    path.to_str()
        .map(str::to_string)
        .ok_or_else(|| Error::invalid(what, "is not UTF-8"))
}

/// What a planned resource becomes on the local cloud.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    Instance,
    Group(u32),
    Postgres,
    Redis,
    NotHosted,
}

fn shape(r: &PlannedResource) -> Shape {
    match r.kind {
        ResourceKind::Compute if r.count <= 1 => Shape::Instance,
        ResourceKind::Compute | ResourceKind::InstanceGroup => Shape::Group(r.count.max(1)),
        ResourceKind::Database => Shape::Postgres,
        ResourceKind::Cache => Shape::Redis,
        ResourceKind::Firewall | ResourceKind::Network | ResourceKind::LoadBalancer => {
            Shape::NotHosted
        }
    }
}

impl LocalCloud {
    /// A local cloud.
    pub fn new(config: LocalConfig) -> Self {
        Self { config }
    }

    /// The records of its resources.
    pub fn instances(&self) -> InstanceDir {
        InstanceDir::new(&self.config.state_dir)
    }
}

impl TerraformGenerator for LocalCloud {
    fn cloud(&self) -> &str {
        "local"
    }

    fn resource_type(&self, kind: ResourceKind) -> Option<String> {
        let rt = match kind {
            ResourceKind::Compute => LOCAL_INSTANCE,
            ResourceKind::InstanceGroup => LOCAL_INSTANCE_GROUP,
            ResourceKind::Database => LOCAL_POSTGRES,
            ResourceKind::Cache => LOCAL_REDIS,
            _ => return None,
        };
        Some(rt.into())
    }

    fn machine_type(&self, planned: &MachineType) -> MachineType {
        map_planned(planned)
    }

    fn failure_patterns(&self) -> Vec<FailurePattern> {
        local_failure_patterns()
    }

    fn generate(&self, request: &GenerateRequest<'_>) -> Result<TerraformFiles> {
        Writer::new(self, request.plan).write()
    }
}

/// Builds one configuration.
struct Writer<'a> {
    cloud: &'a LocalCloud,
    plan: &'a InfraPlan,
    body: Body,
    /// HTTP endpoints (instances and balancers): name → URL.
    urls: BTreeMap<String, String>,
    /// Databases and caches: name → `127.0.0.1:<port>`.
    endpoints: BTreeMap<String, String>,
    /// Databases and caches: name → (kind, connection URL with password).
    connections: BTreeMap<String, (ResourceKind, Expr)>,
}

impl<'a> Writer<'a> {
    fn new(cloud: &'a LocalCloud, plan: &'a InfraPlan) -> Self {
        Self {
            cloud,
            plan,
            body: Body::new(),
            urls: BTreeMap::new(),
            endpoints: BTreeMap::new(),
            connections: BTreeMap::new(),
        }
    }

    fn write(mut self) -> Result<TerraformFiles> {
        let plan = self.plan;
        if !plan
            .resources
            .iter()
            .any(|r| matches!(shape(r), Shape::Instance | Shape::Group(_)))
        {
            return Err(Error::invalid(
                "plan",
                "has no compute resource for the local cloud to run",
            ));
        }
        self.sizes()?;
        // Stores first: the instances get their connection URLs.
        for r in &plan.resources {
            match shape(r) {
                Shape::Postgres => self.datastore(r, Store::Postgres)?,
                Shape::Redis => self.datastore(r, Store::Redis)?,
                _ => {}
            }
        }
        for r in &plan.resources {
            match shape(r) {
                Shape::Instance => self.instance(r)?,
                Shape::Group(n) => self.group(r, n)?,
                _ => {}
            }
        }
        self.outputs()?;
        Ok(TerraformFiles::single(self.body.to_string()))
    }

    /// `locals` with the ladder's limits, looked up by machine type (an
    /// unknown type fails `terraform plan` with the key it did not find).
    fn sizes(&mut self) -> Result<()> {
        let map = |f: fn(&crate::ladder::Size) -> u32| {
            Expr::Object(
                LADDER
                    .iter()
                    .map(|s| (s.name.to_string(), Expr::from(f(s))))
                    .collect(),
            )
        };
        let locals = Block::new("locals", [] as [&str; 0])?
            .attr("max_connections", map(|s| s.max_connections))?
            .attr("cache_memory_mb", map(|s| s.cache_memory_mb))?
            .attr("cache_max_clients", map(|s| s.cache_max_clients))?;
        self.body.push(locals);
        Ok(())
    }

    /// `machine_type_<name>` and `restart_<name>`; the machine type.
    fn size_variables(&mut self, r: &PlannedResource) -> Result<MachineType> {
        let machine_type = r
            .machine_type
            .as_ref()
            .map(map_planned)
            .unwrap_or_else(|| map_planned(&MachineType::new("e2-small").expect("valid")));
        let name = r.name.as_str();
        for (variable, default) in [
            (machine_type_var(name), machine_type.as_str()),
            (restart_var(name), "0"),
        ] {
            self.body.push(
                Block::variable(&variable)?
                    .attr("type", Expr::reference("string")?)?
                    .attr("default", default)?,
            );
        }
        Ok(machine_type)
    }

    /// The program that runs the demo service.
    fn program_env(&self) -> Result<Vec<(String, Expr)>> {
        let config = &self.cloud.config;
        Ok(vec![
            (
                "PROGRAM".into(),
                utf8(&config.service_program, "service program")?.into(),
            ),
            (
                "SUBCOMMAND".into(),
                config.service_subcommand.clone().unwrap_or_default().into(),
            ),
        ])
    }

    /// The environment an instance of `r` starts with: the service to run,
    /// its machine type variable, and the connection URLs of the database
    /// and cache it uses.
    fn service_env(&self, r: &PlannedResource) -> Result<Vec<(String, Expr)>> {
        let mut env = self.program_env()?;
        env.push((
            "MACHINE_TYPE".into(),
            var(&machine_type_var(r.name.as_str()))?,
        ));
        for (kind, variable) in [
            (ResourceKind::Database, "DATABASE_URL"),
            (ResourceKind::Cache, "REDIS_URL"),
        ] {
            if let Some(url) = self.connection_for(r, kind) {
                env.push((variable.into(), url));
            }
        }
        Ok(env)
    }

    /// The connection URL of the store of `kind` that `r` depends on, else
    /// of the plan's first one.
    fn connection_for(&self, r: &PlannedResource, kind: ResourceKind) -> Option<Expr> {
        let of_kind = |n: &str| {
            self.connections
                .get(n)
                .filter(|(k, _)| *k == kind)
                .map(|(_, url)| url.clone())
        };
        r.depends_on
            .iter()
            .find_map(|d| of_kind(d.as_str()))
            .or_else(|| self.connections.keys().find_map(|n| of_kind(n)))
    }

    /// The Terraform resources of the stores, for an instance's `depends_on`.
    fn store_refs(&self) -> Result<Vec<Expr>> {
        self.connections
            .keys()
            .map(|n| Expr::reference(&format!("terraform_data.{n}")).map_err(Error::from))
            .collect()
    }

    fn instance(&mut self, r: &PlannedResource) -> Result<()> {
        let name = r.name.as_str();
        self.size_variables(r)?;
        let port = free_port()?;
        let dir = utf8(&self.cloud.instances().path(name), "local state dir")?;
        let mut env = self.service_env(r)?;
        env.extend([
            ("NAME".to_string(), name.into()),
            ("DIR".to_string(), dir.as_str().into()),
            ("PORT".to_string(), port.to_string().into()),
        ]);
        let input = json!({"name": name, "dir": dir, "data": ""});
        let block = Process::new(name, input, scripts::START_SERVICE, env)
            .restarted_by(name)?
            .after(self.store_refs()?)
            .block()?;
        self.body.push(block);
        self.urls
            .insert(name.into(), format!("http://127.0.0.1:{port}/"));
        Ok(())
    }

    /// `n` instances (`<name>_instance[i]`, each on a port of its own
    /// choosing, recorded under the group's directory) behind a balancer on
    /// a fixed port that finds them there.
    fn group(&mut self, r: &PlannedResource, n: u32) -> Result<()> {
        let name = r.name.as_str();
        let machine_type = self.size_variables(r)?;
        let count_var = instances_var(name);
        self.body.push(
            Block::variable(&count_var)?
                .attr("type", Expr::reference("number")?)?
                .attr("default", n)?,
        );
        let members = utf8(&self.cloud.instances().group_path(name), "local state dir")?;
        let index = || Expr::reference("count.index").map_err(Error::from);
        let member_dir = Expr::template([Part::lit(format!("{members}/")), Part::Interp(index()?)]);
        let member_name = Expr::template([Part::lit(format!("{name}-")), Part::Interp(index()?)]);
        let mut env = self.service_env(r)?;
        env.extend([
            ("NAME".to_string(), member_name.clone()),
            ("DIR".to_string(), member_dir.clone()),
            ("PORT".to_string(), "0".into()),
        ]);
        let input = Expr::Object(vec![
            ("name".into(), member_name),
            ("dir".into(), member_dir),
            ("data".into(), "".into()),
        ]);
        let instances = Process::new(
            &format!("{name}_instance"),
            input,
            scripts::START_SERVICE,
            env,
        )
        .restarted_by(name)?
        .after(self.store_refs()?)
        .counted(var(&count_var)?)
        .block()?;
        self.body.push(instances);

        let port = free_port()?;
        let dir = utf8(&self.cloud.instances().path(name), "local state dir")?;
        // The balancer's size is only what it reports; it has no variable.
        let mut env = self.program_env()?;
        env.extend([
            ("MACHINE_TYPE".to_string(), machine_type.as_str().into()),
            ("NAME".to_string(), name.into()),
            ("DIR".to_string(), dir.as_str().into()),
            ("PORT".to_string(), port.to_string().into()),
            ("BALANCE".to_string(), members.as_str().into()),
        ]);
        let input = json!({"name": name, "dir": dir, "data": ""});
        let balancer = Process::new(name, input, scripts::START_SERVICE, env).block()?;
        self.body.push(balancer);
        self.urls
            .insert(name.into(), format!("http://127.0.0.1:{port}/"));
        Ok(())
    }

    /// A database or cache: its password, its data, its server process.
    fn datastore(&mut self, r: &PlannedResource, store: Store) -> Result<()> {
        let name = r.name.as_str();
        self.size_variables(r)?;
        let port = free_port()?;
        let records = self.cloud.instances();
        let dir = utf8(&records.path(name), "local state dir")?;
        let data = utf8(&records.data_path(name), "local state dir")?;
        let password = format!("terraform_data.{name}_password.output");
        // A random UUID, fixed at creation: `ignore_changes` keeps the first one.
        self.body.push(
            Block::resource("terraform_data", &format!("{name}_password"))?
                .attr("input", Expr::call("uuid", [])?)?
                .block(Block::new("lifecycle", [] as [&str; 0])?.attr(
                    "ignore_changes",
                    Expr::List(vec![Expr::reference("input")?]),
                )?),
        );
        let (scheme, user, path) = store.url_parts();
        let url = Expr::template([
            Part::lit(format!("{scheme}://{user}:")),
            Part::Interp(Expr::reference(&password)?),
            Part::lit(format!("@127.0.0.1:{port}{path}")),
        ]);
        let (program_var, program) = store.program()?;
        let mut env = vec![
            ("NAME".to_string(), Expr::from(name)),
            ("DATA".to_string(), data.as_str().into()),
            ("PASSWORD".to_string(), Expr::reference(&password)?),
            (
                program_var.to_string(),
                utf8(&program, "server program")?.into(),
            ),
        ];
        let input = json!({"name": name, "dir": "", "data": data});
        let init = Process::new(&format!("{name}_data"), input, &store.init(), env.clone())
            .removed_by(scripts::REMOVE_DATA)
            .block()?;
        self.body.push(init);

        let size = |local: &str| -> Result<Expr> {
            let table = Expr::reference(&format!("local.{local}"))?;
            Ok(Expr::call(
                "lookup",
                [table, var(&machine_type_var(name))?],
            )?)
        };
        env.retain(|(k, _)| k != "PASSWORD");
        env.extend([
            ("DIR".to_string(), dir.as_str().into()),
            ("PORT".to_string(), port.to_string().into()),
            ("MACHINE_TYPE".to_string(), var(&machine_type_var(name))?),
            ("URL".to_string(), url.clone()),
        ]);
        match store {
            Store::Postgres => env.push(("MAX_CONNECTIONS".into(), size("max_connections")?)),
            Store::Redis => env.extend([
                ("MAXMEMORY_MB".to_string(), size("cache_memory_mb")?),
                ("MAXCLIENTS".to_string(), size("cache_max_clients")?),
            ]),
        }
        let input = json!({"name": name, "dir": dir, "data": data});
        let server = Process::new(name, input, &store.start(), env)
            .restarted_by(name)?
            .after(vec![Expr::reference(&format!(
                "terraform_data.{name}_data"
            ))?])
            .stop_signal(store.stop_signal())
            .block()?;
        self.body.push(server);
        self.endpoints
            .insert(name.into(), format!("127.0.0.1:{port}"));
        self.connections.insert(name.into(), (store.kind(), url));
        Ok(())
    }

    /// `urls` and `public_ips` (HTTP endpoints, what verification checks),
    /// `endpoints` (databases and caches), and the sensitive
    /// `database_urls` / `cache_urls`.
    fn outputs(&mut self) -> Result<()> {
        let urls: serde_json::Map<_, _> = self
            .urls
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        let ips: serde_json::Map<_, _> = self
            .urls
            .keys()
            .map(|k| (k.clone(), json!("127.0.0.1")))
            .collect();
        let endpoints: serde_json::Map<_, _> = self
            .endpoints
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        for (name, value) in [
            ("urls", urls),
            ("public_ips", ips),
            ("endpoints", endpoints),
        ] {
            self.body
                .push(Block::output(name)?.attr("value", serde_json::Value::Object(value))?);
        }
        for (output, kind) in [
            ("database_urls", ResourceKind::Database),
            ("cache_urls", ResourceKind::Cache),
        ] {
            let value = Expr::Object(
                self.connections
                    .iter()
                    .filter(|(_, (k, _))| *k == kind)
                    .map(|(n, (_, url))| (n.clone(), url.clone()))
                    .collect(),
            );
            self.body.push(
                Block::output(output)?
                    .attr("value", value)?
                    .attr("sensitive", true)?,
            );
        }
        Ok(())
    }
}

fn var(name: &str) -> Result<Expr> {
    Ok(Expr::reference(&format!("var.{name}"))?)
}

#[cfg(test)]
mod tests;
