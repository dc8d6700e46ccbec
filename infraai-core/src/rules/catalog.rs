//! What planners choose from: a cloud adapter's sizes, prices and regions.

/// The machine sizes plans are written in, with monthly on-demand prices in
/// USD (estimates for planning, not quotes), and the regions plans may name.
/// A cloud adapter provides it (`infraai_gcp::catalog()`); every cloud's
/// plans use GCP's sizes today, which each generator maps to its own
/// ([`crate::TerraformGenerator::machine_type`]).
#[derive(Clone, Debug, PartialEq)]
pub struct PlanningCatalog {
    /// The cloud the regions belong to (`gcp`).
    pub cloud: String,
    /// Regions, the default first (the prices are for it).
    pub regions: Vec<String>,
    /// Compute machine types and their monthly USD, smallest first.
    pub compute: Vec<(String, f64)>,
    /// Database tiers and their monthly USD, smallest first.
    pub databases: Vec<(String, f64)>,
}

impl PlanningCatalog {
    /// A catalog from static lists.
    pub fn new(
        cloud: &str,
        regions: &[&str],
        compute: &[(&str, f64)],
        databases: &[(&str, f64)],
    ) -> Self {
        let owned = |l: &[(&str, f64)]| l.iter().map(|(m, p)| (m.to_string(), *p)).collect();
        Self {
            cloud: cloud.into(),
            regions: regions.iter().map(|r| r.to_string()).collect(),
            compute: owned(compute),
            databases: owned(databases),
        }
    }

    /// Every size with its price, compute first.
    pub fn prices(&self) -> impl Iterator<Item = &(String, f64)> {
        self.compute.iter().chain(&self.databases)
    }

    /// The monthly price of a machine type or database tier, when listed.
    pub fn monthly_price_usd(&self, machine_type: &str) -> Option<f64> {
        self.prices()
            .find(|(m, _)| m == machine_type)
            .map(|(_, p)| *p)
    }

    /// Every size's monthly price, for [`crate::GuardrailConfig::monthly_prices`].
    pub fn price_table(&self) -> std::collections::BTreeMap<String, f64> {
        self.prices().cloned().collect()
    }

    /// The compute machine types, smallest first (a guardrail ladder).
    pub fn compute_ladder(&self) -> Vec<crate::MachineType> {
        self.compute
            .iter()
            .filter_map(|(m, _)| crate::MachineType::new(m.as_str()).ok())
            .collect()
    }
}
