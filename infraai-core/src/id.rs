//! Newtype identifiers (UUID v7, so they sort by creation time).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new, time-ordered identifier.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = crate::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self).map_err(|e| {
                    crate::Error::invalid(concat!($prefix, " id"), format!("{s:?} is not a UUID: {e}"))
                })
            }
        }
    };
}

id_type!(
    /// Identifies one deploy-loop run.
    RunId, "run"
);
id_type!(
    /// Identifies a stored deployment.
    DeploymentId, "deployment"
);
id_type!(
    /// Identifies an incident (alerts deduplicated by fingerprint).
    IncidentId, "incident"
);
id_type!(
    /// Identifies one audit record.
    AuditId, "audit"
);
id_type!(
    /// Identifies one executed (or attempted) action.
    ActionId, "action"
);
