//! What the decision policy recommends, with typed and bounded parameters.

use super::{MachineType, ResourceName, Severity};
use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An IPv4 or IPv6 network in CIDR notation, e.g. `10.0.0.0/8`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr {
    /// Network address.
    pub addr: IpAddr,
    /// Prefix length (0–32 for IPv4, 0–128 for IPv6).
    pub prefix: u8,
}

impl Cidr {
    /// Whether this range is the whole internet (`0.0.0.0/0` or `::/0`).
    pub fn is_anywhere(&self) -> bool {
        self.prefix == 0
    }
}

impl FromStr for Cidr {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            crate::Error::invalid(
                "CIDR range",
                format!(
                    "{:?} is not an address/prefix",
                    super::names::truncate_for_error(s)
                ),
            )
        };
        let (addr, prefix) = s.split_once('/').ok_or_else(bad)?;
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return Err(bad());
        }
        Ok(Cidr { addr, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Serialize for Cidr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Cidr {
    fn schema_name() -> Cow<'static, str> {
        "Cidr".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "string", "description": "CIDR range such as 10.0.0.0/8"})
    }
}

/// Transport protocol of a firewall rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

/// Most ports or ranges one firewall change may name.
pub const MAX_FIREWALL_ENTRIES: usize = 16;

/// A change to one ingress firewall rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FirewallChange {
    /// The rule's name.
    pub rule: ResourceName,
    /// `true` to allow the traffic, `false` to deny it.
    pub allow: bool,
    /// Protocol.
    pub protocol: Protocol,
    /// Destination ports (1–65535).
    pub ports: Vec<u16>,
    /// Source ranges the rule applies to.
    pub source_ranges: Vec<Cidr>,
}

impl FirewallChange {
    /// Structural bounds that hold for every firewall change, whatever the
    /// guardrail configuration: at least one and at most 16 ports and ranges,
    /// no port 0.
    pub fn validate(&self) -> crate::Result<()> {
        let bad = |d: &str| Err(crate::Error::invalid("firewall change", d.to_string()));
        if self.ports.is_empty() || self.ports.len() > MAX_FIREWALL_ENTRIES {
            return bad("needs 1–16 ports");
        }
        if self.ports.contains(&0) {
            return bad("port 0 is not a port");
        }
        if self.source_ranges.is_empty() || self.source_ranges.len() > MAX_FIREWALL_ENTRIES {
            return bad("needs 1–16 source ranges");
        }
        Ok(())
    }
}

/// The closed set of things the agent can do. Parameters are typed; the
/// guardrails check their bounds before anything executes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    /// Change the resource's machine type to a larger one (the product
    /// plan's `scale_up_vm`, accepted on input).
    #[serde(alias = "scale_up_vm")]
    ScaleUp {
        /// The target machine type (one step up the ladder by default).
        machine_type: MachineType,
    },
    /// Add instances to a group of identical instances (horizontal scaling).
    ScaleOut {
        /// The group's new instance count (larger than the current one; the
        /// guardrails bound it by their maximum).
        instances: u32,
    },
    /// Restart the resource (the plan's `restart_instance`).
    #[serde(alias = "restart_instance")]
    Restart {},
    /// Change an ingress firewall rule.
    ModifyFirewall {
        /// The change.
        change: FirewallChange,
    },
    /// Do nothing; the alert needs no action.
    Ignore {},
    /// Hand the incident to a human without a proposed action.
    Escalate {},
}

impl Action {
    /// The kind of action, without parameters.
    pub fn kind(&self) -> ActionKind {
        match self {
            Action::ScaleUp { .. } => ActionKind::ScaleUp,
            Action::ScaleOut { .. } => ActionKind::ScaleOut,
            Action::Restart {} => ActionKind::Restart,
            Action::ModifyFirewall { .. } => ActionKind::ModifyFirewall,
            Action::Ignore {} => ActionKind::Ignore,
            Action::Escalate {} => ActionKind::Escalate,
        }
    }

    /// One-line description for humans.
    pub fn describe(&self) -> String {
        match self {
            Action::ScaleUp { machine_type } => format!("scale up to {machine_type}"),
            Action::ScaleOut { instances } => format!("scale out to {instances} instances"),
            Action::Restart {} => "restart".into(),
            Action::ModifyFirewall { change } => format!(
                "{} {:?} ports {:?} from {} on rule {}",
                if change.allow { "allow" } else { "deny" },
                change.protocol,
                change.ports,
                change
                    .source_ranges
                    .iter()
                    .map(|c| c.to_string())
                    .collect::<Vec<_>>()
                    .join(","),
                change.rule
            ),
            Action::Ignore {} => "no action".into(),
            Action::Escalate {} => "escalate to a human".into(),
        }
    }

    /// Whether executing it changes infrastructure.
    pub fn is_executable(&self) -> bool {
        !matches!(self, Action::Ignore {} | Action::Escalate {})
    }
}

/// The kind of an [`Action`], for allow-lists.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    /// [`Action::ScaleUp`].
    ScaleUp,
    /// [`Action::ScaleOut`].
    ScaleOut,
    /// [`Action::Restart`].
    Restart,
    /// [`Action::ModifyFirewall`].
    ModifyFirewall,
    /// [`Action::Ignore`].
    Ignore,
    /// [`Action::Escalate`].
    Escalate,
}

impl ActionKind {
    /// The kind's name as serialized (`scale_up`, `restart`, …).
    pub fn name(self) -> &'static str {
        match self {
            Self::ScaleUp => "scale_up",
            Self::ScaleOut => "scale_out",
            Self::Restart => "restart",
            Self::ModifyFirewall => "modify_firewall",
            Self::Ignore => "ignore",
            Self::Escalate => "escalate",
        }
    }
}

/// Risk of the recommended action.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Risk {
    /// Routine, reversible.
    Low,
    /// Brief disruption possible.
    Medium,
    /// Disruptive or hard to reverse.
    High,
}

/// What the decision policy (rules or LLM) recommends for an incident.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OpsDecision {
    /// Assessed severity.
    pub severity: Severity,
    /// The recommended action.
    pub recommended_action: Action,
    /// Whether the policy itself asks for a human (guardrails may require one anyway).
    pub requires_approval: bool,
    /// Confidence 0–1.
    pub confidence: f64,
    /// Why.
    pub reasoning: String,
    /// Risk of the action.
    pub risk: Risk,
    /// A similar past incident and what worked, when known.
    #[serde(default)]
    pub precedent: Option<String>,
}

impl OpsDecision {
    /// A decision that hands the incident to a human, e.g. because the policy
    /// failed or produced something invalid (architecture rule 1).
    pub fn escalate(severity: Severity, reasoning: impl Into<String>) -> Self {
        Self {
            severity,
            recommended_action: Action::Escalate {},
            requires_approval: true,
            confidence: 0.0,
            reasoning: reasoning.into(),
            risk: Risk::Low,
            precedent: None,
        }
    }

    /// Parses a decision produced by an LLM (or any untrusted JSON). Anything
    /// that does not match the schema — an unknown action, a malformed
    /// parameter, an extra field — becomes an escalation to a human with the
    /// parse error in its reasoning (architecture rule 1). Bounds are checked
    /// later by the guardrails.
    pub fn parse_or_escalate(value: &serde_json::Value, severity: Severity) -> Self {
        match serde_json::from_value::<OpsDecision>(value.clone()) {
            Ok(d) => d,
            Err(e) => Self::escalate(
                severity,
                format!("the policy returned an invalid decision ({e}); a human must decide"),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cidr_parsing() {
        assert_eq!("10.0.0.0/8".parse::<Cidr>().unwrap().prefix, 8);
        assert!("0.0.0.0/0".parse::<Cidr>().unwrap().is_anywhere());
        assert!("::/0".parse::<Cidr>().unwrap().is_anywhere());
        for bad in [
            "10.0.0.0",
            "10.0.0.0/33",
            "::/129",
            "x/8",
            "10.0.0.0/-1",
            "",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn actions_parse_strictly() {
        let a: Action =
            serde_json::from_value(json!({"type": "scale_up", "machine_type": "e2-standard-2"}))
                .unwrap();
        assert_eq!(a.kind(), ActionKind::ScaleUp);
        assert!(serde_json::from_value::<Action>(json!({"type": "delete_everything"})).is_err());
        assert!(serde_json::from_value::<Action>(
            json!({"type": "scale_up", "machine_type": "x; rm"})
        )
        .is_err());
        assert!(
            serde_json::from_value::<Action>(json!({"type": "restart", "force": true})).is_err()
        );
        let fw = json!({"type": "modify_firewall", "change": {"rule": "allow-http", "allow": true,
            "protocol": "tcp", "ports": [80], "source_ranges": ["10.0.0.0/8"]}});
        assert!(serde_json::from_value::<Action>(fw).is_ok());
    }
}
