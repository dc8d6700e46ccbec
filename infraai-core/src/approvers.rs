//! Human channels in core: who may approve, reject, stop or resume (an
//! allow-list per channel), the web channel's notifier, and the fan-out
//! layer over every configured notifier.
//!
//! Authentication (a valid signature, bot secret or operator token) says who
//! sent a command; the allow-list says whether that person may command the
//! agent. Being in the chat is not authorization.

use crate::domain::Actor;
use crate::traits::{ApprovalRequest, Notification, Notifier};
use crate::{Error, Result};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use tracing::{info, warn};

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

/// The dashboard/API channel. Approval requests need no delivery: pending
/// incidents are listed by `GET /ops/alerts?status=pending` and shown on the
/// dashboard; commands arrive as authenticated API calls, whose responses
/// carry the outcome. It logs what it would send.
pub struct WebNotifier;

#[async_trait]
impl Notifier for WebNotifier {
    fn channel(&self) -> &str {
        "web"
    }

    async fn request_approval(&self, request: &ApprovalRequest) -> Result<()> {
        info!(incident_id = %request.incident.id, "approval pending on the dashboard");
        Ok(())
    }

    async fn notify(&self, notification: &Notification) -> Result<()> {
        info!(incident_id = ?notification.incident_id, title = %notification.title, "notification");
        Ok(())
    }
}

/// Sends every request and notification to each of its notifiers; one that
/// fails does not keep the message from the others.
pub struct FanoutNotifier {
    notifiers: Vec<Arc<dyn Notifier>>,
}

impl FanoutNotifier {
    /// Fan-out over `notifiers`.
    pub fn new(notifiers: Vec<Arc<dyn Notifier>>) -> Self {
        Self { notifiers }
    }

    /// Sends with `send` through every notifier, then fails (retryable,
    /// naming each channel that failed) if any did.
    async fn each<'a, F, Fut>(&'a self, op: &str, send: F) -> Result<()>
    where
        F: Fn(&'a dyn Notifier) -> Fut,
        Fut: std::future::Future<Output = Result<()>>,
    {
        let mut failures = Vec::new();
        for n in &self.notifiers {
            if let Err(e) = send(n.as_ref()).await {
                warn!(channel = n.channel(), op, error = %e, "not delivered");
                failures.push(format!("{}: {e}", n.channel()));
            }
        }
        if failures.is_empty() {
            return Ok(());
        }
        Err(Error::backend("approvers", op, true, failures.join("; ")))
    }
}

#[async_trait]
impl Notifier for FanoutNotifier {
    fn channel(&self) -> &str {
        "fanout"
    }

    async fn request_approval(&self, request: &ApprovalRequest) -> Result<()> {
        self.each("request_approval", |n| n.request_approval(request))
            .await
    }

    async fn notify(&self, notification: &Notification) -> Result<()> {
        self.each("notify", |n| n.notify(notification)).await
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
