//! Validated names that end up inside generated Terraform and cloud API calls.

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer, Serialize};
use std::borrow::Cow;
use std::fmt;

/// Maximum length of a [`ResourceName`] (GCP's limit for most resource names).
pub const MAX_NAME_LEN: usize = 63;

/// A resource name: lowercase ASCII letter first, then lowercase letters,
/// digits, `-` or `_`, at most 63 characters.
///
/// This is valid as a Terraform identifier and as a GCP/AWS resource name, so
/// a name coming from a goal text or an LLM can never change the structure of
/// generated HCL (architecture rule 5). Deserialization validates.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct ResourceName(String);

impl ResourceName {
    /// Validates and wraps a name.
    pub fn new(name: impl Into<String>) -> crate::Result<Self> {
        let name = name.into();
        let mut chars = name.chars();
        let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase());
        let rest_ok =
            chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if first_ok && rest_ok && name.len() <= MAX_NAME_LEN {
            Ok(Self(name))
        } else {
            Err(crate::Error::invalid(
                "resource name",
                format!(
                    "{:?} must start with a lowercase letter and contain only a-z, 0-9, '-' or '_' (at most {MAX_NAME_LEN} characters)",
                    truncate_for_error(&name)
                ),
            ))
        }
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Keeps error messages bounded when the input is hostile or huge.
pub(crate) fn truncate_for_error(s: &str) -> String {
    const MAX: usize = 80;
    if s.chars().count() <= MAX {
        s.to_string()
    } else {
        let cut: String = s.chars().take(MAX).collect();
        format!("{cut}…")
    }
}

impl fmt::Display for ResourceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for ResourceName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for ResourceName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        ResourceName::new(s).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for ResourceName {
    fn schema_name() -> Cow<'static, str> {
        "ResourceName".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": "^[a-z][a-z0-9_-]{0,62}$",
            "description": "Lowercase resource name: a letter, then letters, digits, '-' or '_'."
        })
    }
}

/// A machine type name such as `local-small` or `t3.medium`.
///
/// Only letters, digits and `-`, at most 63 characters; whether it is allowed
/// for an action is decided by the guardrails' machine-type ladder.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct MachineType(String);

impl MachineType {
    /// Validates and wraps a machine type.
    pub fn new(name: impl Into<String>) -> crate::Result<Self> {
        let name = name.into();
        let ok = !name.is_empty()
            && name.len() <= MAX_NAME_LEN
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
        if ok {
            Ok(Self(name))
        } else {
            Err(crate::Error::invalid(
                "machine type",
                format!(
                    "{:?} may contain only letters, digits, '-' and '.'",
                    truncate_for_error(&name)
                ),
            ))
        }
    }

    /// The machine type as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MachineType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for MachineType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        MachineType::new(s).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for MachineType {
    fn schema_name() -> Cow<'static, str> {
        "MachineType".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": "^[A-Za-z0-9.-]{1,63}$",
            "description": "Cloud machine type, named as the prompt names them."
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_plain_names_and_rejects_hcl_breakers() {
        assert!(ResourceName::new("web-1").is_ok());
        assert!(ResourceName::new("db_primary").is_ok());
        for bad in [
            "",
            "1web",
            "Web",
            "web\"}",
            "a${b}",
            "a b",
            "a\nb",
            &"a".repeat(64),
        ] {
            assert!(ResourceName::new(bad).is_err(), "{bad:?} accepted");
        }
        assert!(serde_json::from_str::<ResourceName>("\"x\\\"y\"").is_err());
    }

    #[test]
    fn machine_types() {
        assert!(MachineType::new("e2-standard-2").is_ok());
        assert!(MachineType::new("t3.micro").is_ok());
        assert!(MachineType::new("e2 small").is_err());
        assert!(MachineType::new("").is_err());
    }

    proptest! {
        #[test]
        fn any_accepted_name_is_a_safe_identifier(s in "\\PC{0,80}") {
            if let Ok(n) = ResourceName::new(s) {
                prop_assert!(n.as_str().bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'));
                prop_assert!(n.as_str().len() <= MAX_NAME_LEN);
            }
        }
    }
}
