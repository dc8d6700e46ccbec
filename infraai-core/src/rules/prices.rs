//! A small, documented price table for cost estimates.
//!
//! Monthly on-demand prices in USD for `us-central1` (730 hours), rounded to
//! cents, from Google Cloud's public Compute Engine and Cloud SQL price lists.
//! They are estimates for planning, not quotes: sustained-use discounts,
//! disks, egress and other regions are not included.

/// `(machine type, monthly USD)`, smallest to largest within each family.
pub const PRICE_TABLE: &[(&str, f64)] = &[
    ("e2-micro", 6.11),
    ("e2-small", 12.23),
    ("e2-medium", 24.46),
    ("e2-standard-2", 48.91),
    ("e2-standard-4", 97.83),
    ("e2-standard-8", 195.66),
    ("e2-standard-16", 391.32),
    // Cloud SQL (PostgreSQL/MySQL) tiers, instance price only.
    ("db-f1-micro", 7.67),
    ("db-g1-small", 25.55),
    ("db-custom-1-3840", 49.92),
    ("db-custom-2-7680", 99.84),
];

/// The monthly price of a machine type, when the table knows it.
pub fn monthly_price_usd(machine_type: &str) -> Option<f64> {
    PRICE_TABLE
        .iter()
        .find(|(m, _)| *m == machine_type)
        .map(|(_, p)| *p)
}
