//! The product plan's decision vocabulary beside ours. Accepted on input (an
//! LLM's answer, the alert JSON, API filters) and shown next to ours:
//!
//! | the plan | ours |
//! |---|---|
//! | severity `low` | `info` |
//! | severity `medium` | `warning` |
//! | severity `high` | `critical` |
//! | action `scale_up_vm` | `scale_up` |
//! | action `restart_instance` | `restart` |
//!
//! Every other action keeps its name (`scale_out`, `modify_firewall`, `ignore`,
//! `escalate`).

use super::{ActionKind, Severity};
use serde_json::Value;

impl Severity {
    /// The plan's word for this severity.
    pub fn plan_name(self) -> &'static str {
        match self {
            Severity::Info => "low",
            Severity::Warning => "medium",
            Severity::Critical => "high",
        }
    }
}

impl ActionKind {
    /// The plan's word for this action.
    pub fn plan_name(self) -> &'static str {
        match self {
            ActionKind::ScaleUp => "scale_up_vm",
            ActionKind::ScaleOut => "scale_out",
            ActionKind::Restart => "restart_instance",
            ActionKind::ModifyFirewall => "modify_firewall",
            ActionKind::Ignore => "ignore",
            ActionKind::Escalate => "escalate",
        }
    }
}

/// Rewrites the plan's words in a decision's JSON (`severity`,
/// `recommended_action.type`) into ours, before it is validated and parsed.
pub fn decision_in_our_words(decision: &mut Value) {
    let ours = |word: &str| match word {
        "low" => Some("info"),
        "medium" => Some("warning"),
        "high" => Some("critical"),
        "scale_up_vm" => Some("scale_up"),
        "restart_instance" => Some("restart"),
        _ => None,
    };
    for path in ["/severity", "/recommended_action/type"] {
        if let Some(field) = decision.pointer_mut(path) {
            if let Some(word) = field.as_str().and_then(ours) {
                *field = Value::String(word.into());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_plans_words_become_ours_and_ours_stay() {
        let mut theirs = json!({"severity": "high", "recommended_action": {"type": "scale_up_vm", "machine_type": "x"}});
        decision_in_our_words(&mut theirs);
        assert_eq!(theirs["severity"], "critical");
        assert_eq!(theirs["recommended_action"]["type"], "scale_up");
        let mut ours = json!({"severity": "warning", "recommended_action": {"type": "restart"}});
        let before = ours.clone();
        decision_in_our_words(&mut ours);
        assert_eq!(ours, before);
        for (s, word) in [
            (Severity::Info, "low"),
            (Severity::Warning, "medium"),
            (Severity::Critical, "high"),
        ] {
            assert_eq!(s.plan_name(), word);
            assert_eq!(serde_json::from_value::<Severity>(json!(word)).unwrap(), s);
        }
        assert_eq!(ActionKind::Restart.plan_name(), "restart_instance");
    }
}
