//! Local machine types and their CPU allotments.

use infraai_core::MachineType;

/// The local ladder: `(machine type, CPU allotment in cores)`, smallest first.
///
/// | type | cores |
/// |---|---|
/// | `local-small` | 0.25 |
/// | `local-medium` | 0.5 |
/// | `local-large` | 1.0 |
/// | `local-xlarge` | 2.0 |
///
/// CPU utilization of an instance is its CPU time over a window divided by
/// the window and by its allotment — used / allocated cores, as clouds define
/// it. The allotment is accounting, not a cgroup limit: a busy `local-small`
/// instance can show a utilization above 1.
pub const LADDER: &[(&str, f64)] = &[
    ("local-small", 0.25),
    ("local-medium", 0.5),
    ("local-large", 1.0),
    ("local-xlarge", 2.0),
];

/// The ladder as machine types, for the guardrails' `machine_ladder`.
pub fn machine_ladder() -> Vec<MachineType> {
    LADDER
        .iter()
        .filter_map(|(m, _)| MachineType::new(*m).ok())
        .collect()
}

/// The CPU allotment of a local machine type.
pub fn allotment(machine_type: &str) -> Option<f64> {
    LADDER
        .iter()
        .find(|(m, _)| *m == machine_type)
        .map(|(_, c)| *c)
}

/// The local type for a planned (GCP-named) one: `e2-micro`/`e2-small` →
/// small, `e2-medium` → medium, `e2-standard-2` → large, bigger → xlarge.
/// Local names pass through; anything else becomes `local-small`.
pub fn map_planned(planned: &MachineType) -> MachineType {
    let local = match planned.as_str() {
        m if allotment(m).is_some() => m,
        "e2-micro" | "e2-small" => "local-small",
        "e2-medium" => "local-medium",
        "e2-standard-2" => "local-large",
        m if m.starts_with("e2-standard-") => "local-xlarge",
        _ => "local-small",
    };
    MachineType::new(local).unwrap_or_else(|_| planned.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ladder_and_mapping() {
        assert_eq!(allotment("local-small"), Some(0.25));
        assert_eq!(allotment("e2-small"), None);
        let m = |s: &str| map_planned(&MachineType::new(s).unwrap()).to_string();
        assert_eq!(m("e2-medium"), "local-medium");
        assert_eq!(m("e2-standard-8"), "local-xlarge");
        assert_eq!(m("local-large"), "local-large");
        assert_eq!(m("db-f1-micro"), "local-small");
        assert_eq!(machine_ladder().len(), 4);
    }
}
