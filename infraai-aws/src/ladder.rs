//! AWS instance types: the scale-up ladder and the mapping from planned
//! (GCP-named) sizes.

use crate::profiles::{AWS_AUTOSCALING_GROUP, AWS_EC2_INSTANCE, AWS_RDS_INSTANCE};
use infraai_core::{ActionKind, GuardrailConfig, MachineType};

/// The EC2 ladder, smallest first: burstable `t3` sizes.
pub const LADDER: &[&str] = &[
    "t3.micro",
    "t3.small",
    "t3.medium",
    "t3.large",
    "t3.xlarge",
    "t3.2xlarge",
];

/// The ladder as machine types, for the guardrails' `machine_ladder`.
pub fn machine_ladder() -> Vec<MachineType> {
    LADDER
        .iter()
        .filter_map(|m| MachineType::new(*m).ok())
        .collect()
}

/// The AWS type for a planned one. GCP `e2-*` sizes map to `t3.*` of about
/// the same vCPUs and memory; Cloud SQL tiers (`db-*`) map to `db.t3.*`;
/// names that already look like AWS types (with a dot) pass through;
/// anything else becomes `t3.small`.
pub fn map_planned(planned: &MachineType) -> MachineType {
    let aws = match planned.as_str() {
        m if m.contains('.') => m,
        "e2-micro" => "t3.micro",
        "e2-small" => "t3.small",
        "e2-medium" => "t3.medium",
        "e2-standard-2" => "t3.large",
        "e2-standard-4" => "t3.xlarge",
        m if m.starts_with("e2-standard-") => "t3.2xlarge",
        "db-f1-micro" => "db.t3.micro",
        "db-g1-small" => "db.t3.small",
        m if m.starts_with("db-") => "db.t3.medium",
        _ => "t3.small",
    };
    MachineType::new(aws).unwrap_or_else(|_| planned.clone())
}

/// Monthly USD of the ladder's types (730 hours): EC2 On-Demand, Linux,
/// us-east-1, as listed on aws.amazon.com/ec2/pricing/on-demand ($/hour:
/// t3.micro 0.0104, t3.small 0.0208, t3.medium 0.0416, t3.large 0.0832,
/// t3.xlarge 0.1664, t3.2xlarge 0.3328 — unchanged since the t3 launch;
/// not re-read from AWS by this repository, which has no network to it).
/// Other regions cost more or less: they are estimates for the cost cap.
pub const MONTHLY_USD: &[(&str, f64)] = &[
    ("t3.micro", 7.59),
    ("t3.small", 15.18),
    ("t3.medium", 30.37),
    ("t3.large", 60.74),
    ("t3.xlarge", 121.47),
    ("t3.2xlarge", 242.94),
];

/// Guardrails for AWS: scale-up, restart (reboot) and security-group
/// changes on EC2 instances; scale-up on Auto Scaling groups; scale-ups
/// along the `t3` ladder. RDS instances get no automatic action.
pub fn guardrails(mut config: GuardrailConfig) -> GuardrailConfig {
    config.allow(
        AWS_EC2_INSTANCE,
        [
            ActionKind::ScaleUp,
            ActionKind::Restart,
            ActionKind::ModifyFirewall,
        ],
    );
    config.allow(AWS_AUTOSCALING_GROUP, [ActionKind::ScaleUp]);
    config
        .allowed_actions
        .entry(AWS_RDS_INSTANCE.into())
        .or_default();
    config.machine_ladder = machine_ladder();
    config.monthly_prices = MONTHLY_USD
        .iter()
        .map(|(m, p)| (m.to_string(), *p))
        .collect();
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping_and_ladder() {
        let m = |s: &str| map_planned(&MachineType::new(s).unwrap()).to_string();
        assert_eq!(m("e2-micro"), "t3.micro");
        assert_eq!(m("e2-standard-2"), "t3.large");
        assert_eq!(m("e2-standard-16"), "t3.2xlarge");
        assert_eq!(m("db-g1-small"), "db.t3.small");
        assert_eq!(m("db-custom-1-3840"), "db.t3.medium");
        assert_eq!(m("m5.large"), "m5.large");
        assert_eq!(m("n1-standard-1"), "t3.small");
        let g = guardrails(GuardrailConfig::default());
        let small = MachineType::new("t3.small").unwrap();
        assert_eq!(g.next_machine_type(&small).unwrap().as_str(), "t3.medium");
        assert!(g
            .allowed_for(AWS_EC2_INSTANCE)
            .contains(&ActionKind::Restart));
        assert!(!g
            .allowed_for(AWS_RDS_INSTANCE)
            .contains(&ActionKind::ScaleUp));
    }
}
