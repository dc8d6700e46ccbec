//! Incidents, human commands, action outcomes and the kill-switch.

use super::{Action, Alert, OpsDecision};
use crate::{ActionId, DeploymentId, IncidentId};
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Where an incident is in the ops loop.
///
/// ```text
/// new ─▶ pending ─▶ approved ─▶ executing ─▶ executed ─▶ resolved
///   │       ├────▶ rejected                       └──────▶ unresolved (re-escalated)
///   │       └────▶ expired
///   ├──▶ auto ───▶ executing
///   ├──▶ escalated (no action proposed; a human looks)
///   └──▶ ignored (no action needed)
/// pending/approved/auto ─▶ blocked while STOP AUTONOMY is engaged; back to pending on resume
/// ```
/// A resolved alert moves any open incident that is not executing to `resolved`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum IncidentStatus {
    /// Recorded, not yet decided.
    New,
    /// Waiting for a human to approve or reject the action.
    Pending,
    /// Approved by a human; not yet claimed for execution.
    Approved,
    /// Rejected by a human.
    Rejected,
    /// Nobody answered in time.
    Expired,
    /// Cleared by guardrails for execution without a human.
    Auto,
    /// The kill-switch is engaged; nothing executes.
    Blocked,
    /// Claimed; the action is running. Only one claim ever succeeds.
    Executing,
    /// The action finished; waiting for the metric re-check.
    Executed,
    /// The metric is back within its threshold, or the alert cleared.
    Resolved,
    /// The action did not fix it (or failed); a human was asked again.
    Unresolved,
    /// No action proposed; handed to a human.
    Escalated,
    /// The decision was that no action is needed.
    Ignored,
}

impl IncidentStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [IncidentStatus; 13] = {
        use IncidentStatus::*;
        [
            New, Pending, Approved, Rejected, Expired, Auto, Blocked, Executing, Executed,
            Resolved, Unresolved, Escalated, Ignored,
        ]
    };
}

impl IncidentStatus {
    /// Terminal states: a new firing alert with the same fingerprint opens a
    /// new incident instead of updating this one.
    pub fn is_closed(self) -> bool {
        crate::lifecycle::CLOSED.contains(&self)
    }

    /// Whether the lifecycle allows moving from `self` to `to`
    /// ([`crate::lifecycle::MOVES`]).
    pub fn can_move_to(self, to: IncidentStatus) -> bool {
        crate::lifecycle::can_move(self, to)
    }
}

impl std::fmt::Display for IncidentStatus {
    /// The documented snake_case name (`pending`, `executing`, …).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(crate::lifecycle::status_name(*self))
    }
}

/// Alerts with one fingerprint, deduplicated, and what the agent did about them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Incident {
    /// Incident id.
    pub id: IncidentId,
    /// The shared alert fingerprint.
    pub fingerprint: String,
    /// Current status.
    pub status: IncidentStatus,
    /// The latest alert with this fingerprint.
    pub alert: Alert,
    /// How many firing alerts arrived for it.
    pub occurrences: u64,
    /// The decision, once made (exactly one per incident).
    pub decision: Option<OpsDecision>,
    /// Why the guardrails routed it the way they did.
    #[serde(default)]
    pub guardrail_notes: Vec<String>,
    /// The deployment the resource belongs to, when known.
    pub deployment_id: Option<DeploymentId>,
    /// The latest human-readable note (e.g. why it was re-escalated).
    pub note: Option<String>,
    /// First alert.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl Incident {
    /// A new incident for the first alert of a fingerprint.
    pub fn open(alert: Alert) -> Self {
        let now = Utc::now();
        Self {
            id: IncidentId::new(),
            fingerprint: alert.fingerprint.clone(),
            status: IncidentStatus::New,
            alert,
            occurrences: 1,
            decision: None,
            guardrail_notes: vec![],
            deployment_id: None,
            note: None,
            created_at: now,
            updated_at: now,
        }
    }
}

/// Who sent a human command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Actor {
    /// Channel: `web`, `telegram`, `discord`, `api`.
    pub channel: String,
    /// Stable id on that channel (user id).
    pub id: String,
    /// Display name, when known.
    #[serde(default)]
    pub name: Option<String>,
    /// Role ids on the channel (e.g. Discord guild roles), as reported by the
    /// channel after authentication.
    #[serde(default)]
    pub roles: Vec<String>,
}

impl Actor {
    /// An actor on a channel.
    pub fn new(channel: impl Into<String>, id: impl Into<String>) -> Self {
        Self {
            channel: channel.into(),
            id: id.into(),
            name: None,
            roles: vec![],
        }
    }

    /// `channel:id`, as recorded in audit records.
    pub fn label(&self) -> String {
        format!("{}:{}", self.channel, self.id)
    }

    /// `channel:id`, with the display name when known: `web:ab12 (Alice
    /// <alice@example.com>)`, for messages to humans.
    pub fn described(&self) -> String {
        match &self.name {
            Some(name) if name != &self.id => format!("{} ({name})", self.label()),
            _ => self.label(),
        }
    }
}

/// What a human can tell the agent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum HumanCommand {
    /// Approve the pending action of an incident.
    Approve {
        /// The incident.
        incident_id: IncidentId,
    },
    /// Reject it.
    Reject {
        /// The incident.
        incident_id: IncidentId,
        /// Why, when given.
        #[serde(default)]
        reason: Option<String>,
    },
    /// STOP AUTONOMY: nothing executes until resumed.
    StopAutonomy {
        /// Why, when given.
        #[serde(default)]
        reason: Option<String>,
    },
    /// Resume autonomy.
    Resume,
}

impl HumanCommand {
    /// The command a chat button's id stands for: `approve:<incident>`,
    /// `reject:<incident>` or `stop`, what the Telegram and Discord buttons
    /// carry (44 bytes at most). Anything else, a malformed incident id
    /// included, is `None`.
    pub fn from_button_id(id: &str) -> Option<Self> {
        match id.split_once(':') {
            Some(("approve", incident)) => Some(Self::Approve {
                incident_id: incident.parse().ok()?,
            }),
            Some(("reject", incident)) => Some(Self::Reject {
                incident_id: incident.parse().ok()?,
                reason: None,
            }),
            None if id == "stop" => Some(Self::StopAutonomy { reason: None }),
            _ => None,
        }
    }
}

/// A human command and who sent it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct HumanReply {
    /// The command.
    pub command: HumanCommand,
    /// Who sent it (already authenticated by the channel adapter).
    pub actor: Actor,
    /// Channel-specific delivery details the channel needs to acknowledge
    /// the command (callback query id, chat and message ids); opaque to core.
    #[serde(default)]
    pub delivery: serde_json::Value,
    /// The channel's increasing id of the delivery that carried the command
    /// (Telegram `update_id`, Discord interaction snowflake), when it has
    /// one. A STOP AUTONOMY or RESUME whose id is not newer than the last one
    /// applied from the same channel (within
    /// [`crate::ops::KILL_SWITCH_REDELIVERY_WINDOW`]) is a redelivery, or
    /// older than a command already applied, and changes nothing: an old STOP
    /// delivered again cannot re-engage the kill-switch after a RESUME.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_seq: Option<i64>,
}

impl HumanReply {
    /// A command from an actor, with no delivery details.
    pub fn new(command: HumanCommand, actor: Actor) -> Self {
        Self {
            command,
            actor,
            delivery: serde_json::Value::Null,
            delivery_seq: None,
        }
    }

    /// Sets the delivery's sequence id.
    pub fn with_delivery_seq(mut self, seq: i64) -> Self {
        self.delivery_seq = Some(seq);
        self
    }
}

/// The persistent STOP AUTONOMY switch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct KillSwitch {
    /// Whether autonomy is stopped.
    pub engaged: bool,
    /// Who set the current state (`actor.label()`), if anyone has.
    pub set_by: Option<String>,
    /// Why.
    pub reason: Option<String>,
    /// When.
    pub set_at: Option<DateTime<Utc>>,
}

impl KillSwitch {
    /// The initial state: autonomy on.
    pub fn released() -> Self {
        Self {
            engaged: false,
            set_by: None,
            reason: None,
            set_at: None,
        }
    }
}

/// A human's approval or rejection as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ApprovalRecord {
    /// The incident.
    pub incident_id: IncidentId,
    /// `true` for approve, `false` for reject.
    pub approved: bool,
    /// Who.
    pub actor: Actor,
    /// Whether it changed the incident (`false` for duplicates and late replies).
    pub effective: bool,
    /// When.
    pub at: DateTime<Utc>,
}

/// What an executed action did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ActionOutcome {
    /// Action id.
    pub id: ActionId,
    /// The incident.
    pub incident_id: IncidentId,
    /// The action.
    pub action: Action,
    /// The resource it acted on.
    pub resource: String,
    /// Whether it succeeded.
    pub success: bool,
    /// One line for humans.
    pub summary: String,
    /// Adapter details (operation ids, plan summary).
    #[serde(default)]
    pub details: serde_json::Value,
    /// Start.
    pub started_at: DateTime<Utc>,
    /// End.
    pub finished_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_actor_is_described_with_its_name_when_it_has_one() {
        let mut a = Actor::new("web", "ab12");
        assert_eq!(a.described(), "web:ab12");
        a.name = Some("Alice <alice@example.com>".into());
        assert_eq!(a.described(), "web:ab12 (Alice <alice@example.com>)");
        a.name = Some("ab12".into());
        assert_eq!(a.described(), "web:ab12");
    }

    #[test]
    fn button_ids_are_parsed_strictly() {
        let id = IncidentId::new();
        let parse = HumanCommand::from_button_id;
        assert_eq!(
            parse(&format!("approve:{id}")),
            Some(HumanCommand::Approve { incident_id: id })
        );
        let reject = HumanCommand::Reject {
            incident_id: id,
            reason: None,
        };
        assert_eq!(parse(&format!("reject:{id}")), Some(reject));
        assert_eq!(
            parse("stop"),
            Some(HumanCommand::StopAutonomy { reason: None })
        );
        for bad in [
            "approve:3f2a",
            "approve:",
            "resume",
            "approve",
            "delete:x",
            "",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
