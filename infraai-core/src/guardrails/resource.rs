//! Rules about the resource an action would touch: whether it is ours,
//! whether it keeps data, and what the same fix did to it lately.

use super::{GuardrailConfig, GuardrailInput, GuardrailRule, RuleOutcome};
use crate::domain::ActionKind;

/// Actions only on resources of a deployment this agent made: anything
/// else in the same project or cluster belongs to someone else, whatever an
/// alert about it says.
pub struct ManagedResource;

impl GuardrailRule for ManagedResource {
    fn name(&self) -> &'static str {
        "managed_resource"
    }
    fn check(&self, input: &GuardrailInput<'_>, _: &GuardrailConfig) -> RuleOutcome {
        if input.standing.managed {
            RuleOutcome::Pass
        } else {
            RuleOutcome::Deny(format!(
                "{:?} is not a resource of any deployment this agent made",
                input.alert.resource
            ))
        }
    }
}

/// Restarting or resizing a database or cache drops its clients'
/// connections (and a cache's contents): a human approves it, whatever the
/// policy's confidence.
pub struct StatefulNeedsApproval;

impl GuardrailRule for StatefulNeedsApproval {
    fn name(&self) -> &'static str {
        "stateful_needs_approval"
    }
    fn check(&self, input: &GuardrailInput<'_>, _: &GuardrailConfig) -> RuleOutcome {
        let kind = input.decision.recommended_action.kind();
        if input.standing.stateful && matches!(kind, ActionKind::Restart | ActionKind::ScaleUp) {
            RuleOutcome::NeedsApproval(format!(
                "{kind:?} interrupts {:?}, which keeps data",
                input.alert.resource
            ))
        } else {
            RuleOutcome::Pass
        }
    }
}

/// The same kind of fix that ran on the resource in the last day and left
/// it unresolved is not repeated without a human: a leak or a runaway
/// process does not go away with more of the same.
pub struct FailedFixNeedsApproval;

impl GuardrailRule for FailedFixNeedsApproval {
    fn name(&self) -> &'static str {
        "failed_fix_needs_approval"
    }
    fn check(&self, input: &GuardrailInput<'_>, _: &GuardrailConfig) -> RuleOutcome {
        let kind = input.decision.recommended_action.kind();
        match input.standing.failed_fixes.iter().find(|(k, _)| *k == kind) {
            Some((_, then)) => RuleOutcome::NeedsApproval(format!(
                "{kind:?} did not resolve {:?} the last time ({then})",
                input.alert.resource
            )),
            None => RuleOutcome::Pass,
        }
    }
}
