//! The local cloud's Terraform: one `terraform_data` resource per instance.

use crate::instances::InstanceDir;
use crate::ladder::map_planned;
use crate::profiles::LOCAL_INSTANCE;
use infraai_core::{
    Error, FailurePattern, GenerateRequest, MachineType, PlannedResource, ResourceKind, Result,
    TerraformFiles, TerraformGenerator,
};
use infraai_terraform::hcl::{Block, Body, Expr};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Where the local cloud keeps its instances and how it starts one.
#[derive(Clone, Debug)]
pub struct LocalConfig {
    /// Instances record themselves under `<state_dir>/instances/<name>/`.
    pub state_dir: PathBuf,
    /// The program that runs the demo service, and an optional first
    /// argument (e.g. the server binary and `demo-service`).
    pub service_program: PathBuf,
    /// The optional first argument of `service_program`.
    pub service_subcommand: Option<String>,
}

/// The local cloud as a [`TerraformGenerator`]: compute resources become
/// real processes on loopback ports; other kinds are not hosted.
#[derive(Clone, Debug)]
pub struct LocalCloud {
    config: LocalConfig,
}

/// The variable holding an instance's machine type (`machine_type_<name>`,
/// the convention of every cloud's Terraform scale-up).
pub use infraai_terraform::machine_type_var;

/// The variable whose change restarts (replaces) an instance.
pub fn restart_var(name: &str) -> String {
    format!("restart_{name}")
}

// Starts the service in its own session (so cancelling terraform's process
// group does not kill it), output to a file (so terraform is not kept
// waiting on the pipe), then waits for the record to appear. Only fixed text:
// every value arrives through the environment.
const START: &str = r#"set -e
mkdir -p "$DIR"
rm -f "$DIR/pid"
setsid "$PROGRAM" ${SUBCOMMAND:+"$SUBCOMMAND"} --name "$NAME" --machine-type "$MACHINE_TYPE" --port "$PORT" --record-dir "$DIR" >"$DIR/service.log" 2>&1 </dev/null &
i=0
while [ ! -s "$DIR/pid" ]; do
  i=$((i+1))
  if [ "$i" -gt 150 ]; then echo "instance $NAME did not start:"; cat "$DIR/service.log"; exit 1; fi
  sleep 0.1
done
echo "instance $NAME ($MACHINE_TYPE) running as pid $(cat "$DIR/pid") on port $PORT"
"#;

const STOP: &str = r#"alive() { [ -e "/proc/$1" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null; }
if [ -s "$DIR/pid" ]; then
  pid=$(cat "$DIR/pid")
  kill "$pid" 2>/dev/null || true
  i=0
  while alive "$pid" && [ "$i" -lt 100 ]; do
    i=$((i+1))
    if [ "$i" -eq 50 ]; then kill -9 "$pid" 2>/dev/null || true; fi
    sleep 0.1
  done
  echo "instance stopped (pid $pid)"
fi
rm -rf "$DIR"
"#;

/// The local cloud's own apply-failure patterns (`failure_patterns.json`):
/// port in use, disk full, fork failures, permissions.
pub fn local_failure_patterns() -> Vec<FailurePattern> {
    FailurePattern::compiled_in("local", include_str!("failure_patterns.json"))
}

fn free_port() -> Result<u16> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| Error::backend("local", "free_port", true, e))
}

impl LocalCloud {
    /// A local cloud.
    pub fn new(config: LocalConfig) -> Self {
        Self { config }
    }

    /// Its instances.
    pub fn instances(&self) -> InstanceDir {
        InstanceDir::new(&self.config.state_dir)
    }

    fn hosted(r: &PlannedResource) -> bool {
        matches!(r.kind, ResourceKind::Compute | ResourceKind::InstanceGroup)
    }

    fn instance(
        &self,
        body: &mut Body,
        r: &PlannedResource,
        urls: &mut BTreeMap<String, serde_json::Value>,
    ) -> Result<()> {
        let name = r.name.as_str();
        let dir = self.instances().path(name);
        let dir = dir
            .to_str()
            .ok_or_else(|| Error::invalid("local state dir", "is not UTF-8"))?;
        let program = self
            .config
            .service_program
            .to_str()
            .ok_or_else(|| Error::invalid("service program", "is not UTF-8"))?;
        let port = free_port()?;
        let machine_type = r
            .machine_type
            .clone()
            .map(|m| map_planned(&m))
            .unwrap_or_else(|| map_planned(&MachineType::new("e2-small").expect("valid")));
        let (mt_var, restart) = (machine_type_var(name), restart_var(name));
        for (variable, default) in [(&mt_var, machine_type.as_str()), (&restart, "0")] {
            body.push(
                Block::variable(variable)?
                    .attr("type", Expr::reference("string")?)?
                    .attr("default", default)?,
            );
        }
        let input = json!({"name": name, "dir": dir, "port": port.to_string()});
        let var = |v: &str| Expr::reference(&format!("var.{v}"));
        let start = Block::new("provisioner", ["local-exec"])?
            .attr("command", START)?
            .attr("interpreter", vec!["/bin/sh", "-c"])?
            .attr(
                "environment",
                Expr::Object(vec![
                    ("DIR".into(), dir.into()),
                    ("PROGRAM".into(), program.into()),
                    (
                        "SUBCOMMAND".into(),
                        self.config
                            .service_subcommand
                            .clone()
                            .unwrap_or_default()
                            .into(),
                    ),
                    ("NAME".into(), name.into()),
                    ("MACHINE_TYPE".into(), var(&mt_var)?),
                    ("PORT".into(), port.to_string().into()),
                ]),
            )?;
        let stop = Block::new("provisioner", ["local-exec"])?
            .attr("when", Expr::reference("destroy")?)?
            .attr("command", STOP)?
            .attr("interpreter", vec!["/bin/sh", "-c"])?
            .attr(
                "environment",
                Expr::Object(vec![("DIR".into(), Expr::reference("self.input.dir")?)]),
            )?;
        body.push(
            Block::resource("terraform_data", name)?
                .attr("input", input)?
                .attr(
                    "triggers_replace",
                    Expr::from(vec![var(&mt_var)?, var(&restart)?]),
                )?
                .block(start)
                .block(stop),
        );
        urls.insert(name.to_string(), json!(format!("http://127.0.0.1:{port}/")));
        Ok(())
    }
}

impl TerraformGenerator for LocalCloud {
    fn cloud(&self) -> &str {
        "local"
    }

    fn resource_type(&self, kind: ResourceKind) -> Option<String> {
        matches!(kind, ResourceKind::Compute | ResourceKind::InstanceGroup)
            .then(|| LOCAL_INSTANCE.to_string())
    }

    fn machine_type(&self, planned: &MachineType) -> MachineType {
        map_planned(planned)
    }

    fn failure_patterns(&self) -> Vec<FailurePattern> {
        local_failure_patterns()
    }

    fn generate(&self, request: &GenerateRequest<'_>) -> Result<TerraformFiles> {
        let mut body = Body::new();
        let mut urls = BTreeMap::new();
        for r in request.plan.resources.iter().filter(|r| Self::hosted(r)) {
            self.instance(&mut body, r, &mut urls)?;
        }
        if urls.is_empty() {
            return Err(Error::invalid(
                "plan",
                "has no compute resource for the local cloud to run",
            ));
        }
        let ips: serde_json::Map<_, _> = urls
            .keys()
            .map(|k| (k.clone(), json!("127.0.0.1")))
            .collect();
        let urls: serde_json::Map<_, _> = urls.into_iter().collect();
        for (name, value) in [("urls", urls), ("public_ips", ips)] {
            body.push(Block::output(name)?.attr("value", serde_json::Value::Object(value))?);
        }
        Ok(TerraformFiles::single(body.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use infraai_core::{ApplyFailureClassifier, FailureClass};

    #[test]
    fn local_patterns_parse_and_come_before_the_builtin_ones() {
        let patterns = local_failure_patterns();
        assert_eq!(patterns.len(), 4);
        let c = ApplyFailureClassifier::builtin().prepend(patterns);
        let start_failure = "local-exec provisioner error: Error running command: exit status 1. Output: instance api did not start:\ninfraai-demo-service: cannot bind 127.0.0.1:40123: Address already in use (os error 98)";
        assert_eq!(c.classify_message(start_failure), FailureClass::NameInUse);
        assert_eq!(
            c.classify_message("mkdir: cannot create directory '/var/x': No space left on device"),
            FailureClass::QuotaExceeded
        );
        assert_eq!(
            c.classify_message("sh: 1: /opt/infraai/bin/svc: Permission denied"),
            FailureClass::PermissionDenied
        );
        assert_eq!(
            c.classify_message("sh: 1: Cannot fork"),
            FailureClass::Transient
        );
    }
}
