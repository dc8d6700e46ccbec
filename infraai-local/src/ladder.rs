//! Local machine types: the CPU allotment of each, and for databases and
//! caches the connection and memory limits that come with it.

use infraai_core::MachineType;

/// One step of the local ladder.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Size {
    /// Machine type name, e.g. `local-small`.
    pub name: &'static str,
    /// CPU cores allotted.
    pub cores: f64,
    /// PostgreSQL's `max_connections` on this size.
    pub max_connections: u32,
    /// Redis's `maxmemory`, in MiB, on this size.
    pub cache_memory_mb: u32,
    /// Redis's `maxclients` on this size.
    pub cache_max_clients: u32,
}

/// The local ladder, smallest first.
///
/// | type | cores | PostgreSQL `max_connections` | Redis `maxmemory` | Redis `maxclients` |
/// |---|---|---|---|---|
/// | `local-small` | 0.25 | 20 | 32 MiB | 50 |
/// | `local-medium` | 0.5 | 50 | 64 MiB | 100 |
/// | `local-large` | 1.0 | 100 | 128 MiB | 200 |
/// | `local-xlarge` | 2.0 | 200 | 256 MiB | 400 |
///
/// CPU utilization is CPU time over a window divided by the window and by the
/// allotment — used / allocated cores, as clouds define it. The allotment is
/// accounting, not a cgroup limit: a busy `local-small` instance can show a
/// utilization above 1. The connection and memory limits are real: they are
/// the server's own settings.
pub const LADDER: &[Size] = &[
    Size {
        name: "local-small",
        cores: 0.25,
        max_connections: 20,
        cache_memory_mb: 32,
        cache_max_clients: 50,
    },
    Size {
        name: "local-medium",
        cores: 0.5,
        max_connections: 50,
        cache_memory_mb: 64,
        cache_max_clients: 100,
    },
    Size {
        name: "local-large",
        cores: 1.0,
        max_connections: 100,
        cache_memory_mb: 128,
        cache_max_clients: 200,
    },
    Size {
        name: "local-xlarge",
        cores: 2.0,
        max_connections: 200,
        cache_memory_mb: 256,
        cache_max_clients: 400,
    },
];

/// Nominal monthly prices ($10 per allotted core): the local cloud costs
/// nothing, but its actions are priced like a cloud's so the cost rules
/// work here as they would there.
pub fn nominal_prices() -> std::collections::BTreeMap<String, f64> {
    LADDER
        .iter()
        .map(|s| (s.name.to_string(), s.cores * 10.0))
        .collect()
}

/// The ladder as machine types, for the guardrails' `machine_ladder`.
pub fn machine_ladder() -> Vec<MachineType> {
    LADDER
        .iter()
        .filter_map(|s| MachineType::new(s.name).ok())
        .collect()
}

/// The size of a local machine type.
pub fn size(machine_type: &str) -> Option<&'static Size> {
    LADDER.iter().find(|s| s.name == machine_type)
}

/// The CPU allotment of a local machine type.
pub fn allotment(machine_type: &str) -> Option<f64> {
    size(machine_type).map(|s| s.cores)
}

/// The local type for a planned (GCP-named) one: `e2-micro`/`e2-small` and
/// `db-f1-micro` → small, `e2-medium` and `db-g1-small` → medium,
/// `e2-standard-2` and `db-custom-1-*` → large, bigger → xlarge. Local names
/// pass through; anything else becomes `local-small`.
pub fn map_planned(planned: &MachineType) -> MachineType {
    let local = match planned.as_str() {
        m if size(m).is_some() => m,
        "e2-micro" | "e2-small" | "db-f1-micro" => "local-small",
        "e2-medium" | "db-g1-small" => "local-medium",
        "e2-standard-2" => "local-large",
        m if m.starts_with("db-custom-1-") => "local-large",
        m if m.starts_with("e2-standard-") || m.starts_with("db-custom-") => "local-xlarge",
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
        assert_eq!(size("local-medium").unwrap().max_connections, 50);
        let m = |s: &str| map_planned(&MachineType::new(s).unwrap()).to_string();
        assert_eq!(m("e2-medium"), "local-medium");
        assert_eq!(m("e2-standard-8"), "local-xlarge");
        assert_eq!(m("local-large"), "local-large");
        assert_eq!(m("db-f1-micro"), "local-small");
        assert_eq!(m("db-g1-small"), "local-medium");
        assert_eq!(m("db-custom-2-7680"), "local-xlarge");
        assert_eq!(m("n1-highmem-2"), "local-small");
        assert_eq!(machine_ladder().len(), 4);
        // Every step up gives a database and a cache more room.
        for w in LADDER.windows(2) {
            assert!(w[1].cores > w[0].cores && w[1].max_connections > w[0].max_connections);
            assert!(w[1].cache_memory_mb > w[0].cache_memory_mb);
        }
    }
}
