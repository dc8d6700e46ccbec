//! Who may approve, reject, stop or resume: an allow-list per channel.
//!
//! Authentication (a valid signature, bot secret or operator token) says who
//! sent a command; this list says whether that person may command the agent.
//! Being in the chat is not authorization.

use crate::domain::Actor;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Allow-listed approvers: channel → user ids and `role:<id>` entries; the
/// entry `*` allows every authenticated actor of that channel (meant for the
/// web channel, whose operators are each authenticated by their own token).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApproverAllowList {
    channels: BTreeMap<String, BTreeSet<String>>,
}

impl ApproverAllowList {
    /// Nobody may command the agent.
    pub fn none() -> Self {
        Self::default()
    }

    /// Allows a user id on a channel.
    pub fn allow_user(mut self, channel: &str, id: impl Into<String>) -> Self {
        self.channels
            .entry(channel.to_string())
            .or_default()
            .insert(id.into());
        self
    }

    /// Allows everyone holding a role on a channel (Discord roles).
    pub fn allow_role(mut self, channel: &str, role: impl AsRef<str>) -> Self {
        self.channels
            .entry(channel.to_string())
            .or_default()
            .insert(format!("role:{}", role.as_ref()));
        self
    }

    /// Allows every authenticated actor of a channel.
    pub fn allow_all_authenticated(mut self, channel: &str) -> Self {
        self.channels
            .entry(channel.to_string())
            .or_default()
            .insert("*".into());
        self
    }

    /// Whether the actor may command the agent.
    pub fn permits(&self, actor: &Actor) -> bool {
        let Some(entries) = self.channels.get(&actor.channel) else {
            return false;
        };
        !actor.id.is_empty()
            && (entries.contains("*")
                || entries.contains(&actor.id)
                || actor
                    .roles
                    .iter()
                    .any(|r| entries.contains(&format!("role:{r}"))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_listed_users_and_roles() {
        let list = ApproverAllowList::none()
            .allow_user("telegram", "42")
            .allow_role("discord", "900")
            .allow_all_authenticated("web");
        assert!(list.permits(&Actor::new("telegram", "42")));
        assert!(!list.permits(&Actor::new("telegram", "43")));
        assert!(
            !list.permits(&Actor::new("discord", "42")),
            "ids are per channel"
        );
        let mut member = Actor::new("discord", "7");
        assert!(!list.permits(&member));
        member.roles = vec!["1".into(), "900".into()];
        assert!(list.permits(&member));
        assert!(list.permits(&Actor::new("web", "alice")));
        assert!(!list.permits(&Actor::new("web", "")));
        assert!(!list.permits(&Actor::new("sms", "42")));
        assert!(!ApproverAllowList::none().permits(&Actor::new("web", "alice")));
    }
}
