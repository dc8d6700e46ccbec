//! A deployment's own guardrail settings, over the global ones.

use super::GuardrailConfig;
use crate::DeploymentId;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What a deployment sets differently from the global guardrails; an unset
/// field keeps the global value. The daily cost cap stays global: it
/// bounds the whole bill.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GuardrailOverrides {
    /// [`GuardrailConfig::max_auto_monthly_increase_usd`] for this deployment.
    #[serde(default)]
    pub max_auto_monthly_increase_usd: Option<f64>,
    /// Whether earned autonomy applies to this deployment's resources
    /// ([`super::EarnedAutonomy::enabled`]).
    #[serde(default)]
    pub earned_autonomy: Option<bool>,
    /// [`GuardrailConfig::confidence_floor`] for this deployment (0–1).
    #[serde(default)]
    pub confidence_floor: Option<f64>,
}

impl GuardrailOverrides {
    /// The store key of a deployment's overrides.
    pub fn key(deployment: DeploymentId) -> String {
        format!("guardrails/deployment/{deployment}")
    }

    /// Checks the values: a cap of 0 or more, a floor within 0–1.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(usd) = self.max_auto_monthly_increase_usd {
            if !(usd.is_finite() && usd >= 0.0) {
                return Err(format!(
                    "max_auto_monthly_increase_usd must be 0 or more, not {usd}"
                ));
            }
        }
        if let Some(floor) = self.confidence_floor {
            if !(0.0..=1.0).contains(&floor) {
                return Err(format!("confidence_floor must be within 0–1, not {floor}"));
            }
        }
        Ok(())
    }
}

impl GuardrailConfig {
    /// This configuration with a deployment's overrides applied.
    pub fn with_overrides(&self, overrides: &GuardrailOverrides) -> GuardrailConfig {
        let mut config = self.clone();
        if let Some(usd) = overrides.max_auto_monthly_increase_usd {
            config.max_auto_monthly_increase_usd = usd;
        }
        if let Some(on) = overrides.earned_autonomy {
            config.earned_autonomy.enabled = on;
        }
        if let Some(floor) = overrides.confidence_floor {
            config.confidence_floor = floor;
        }
        config
    }
}
