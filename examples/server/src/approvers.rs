//! The web approval channel and the fan-out over every configured channel.

use async_trait::async_trait;
use infraai_core::*;
use std::sync::Arc;
use tracing::{info, warn};

/// The dashboard/API channel. Approval requests need no delivery: pending
/// incidents are listed by `GET /ops/alerts?status=pending` and shown on the
/// dashboard; approvals arrive as authenticated API calls.
pub struct WebApprover;

#[async_trait]
impl Approver for WebApprover {
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

    async fn parse_inbound(&self, _request: &InboundRequest) -> Result<Vec<HumanReply>> {
        Err(Error::NotSupported {
            component: "web".into(),
            op: "parse_inbound (web commands arrive as API calls)".into(),
        })
    }

    async fn acknowledge(&self, _reply: &HumanReply, _outcome: &str) -> Result<()> {
        // The API response carries the outcome.
        Ok(())
    }
}

/// Sends every request and notification to all channels; acknowledges on the
/// channel a command came from.
pub struct FanoutApprover {
    channels: Vec<Arc<dyn Approver>>,
}

impl FanoutApprover {
    /// Fan-out over `channels`.
    pub fn new(channels: Vec<Arc<dyn Approver>>) -> Self {
        Self { channels }
    }

    fn failed(op: &str, failures: Vec<String>) -> Result<()> {
        if failures.is_empty() {
            Ok(())
        } else {
            Err(Error::backend(
                "approvers",
                op.to_string(),
                true,
                failures.join("; "),
            ))
        }
    }
}

#[async_trait]
impl Approver for FanoutApprover {
    fn channel(&self) -> &str {
        "fanout"
    }

    async fn request_approval(&self, request: &ApprovalRequest) -> Result<()> {
        let mut failures = Vec::new();
        for c in &self.channels {
            if let Err(e) = c.request_approval(request).await {
                warn!(channel = c.channel(), error = %e, "approval request not delivered");
                failures.push(format!("{}: {e}", c.channel()));
            }
        }
        Self::failed("request_approval", failures)
    }

    async fn notify(&self, notification: &Notification) -> Result<()> {
        let mut failures = Vec::new();
        for c in &self.channels {
            if let Err(e) = c.notify(notification).await {
                warn!(channel = c.channel(), error = %e, "notification not delivered");
                failures.push(format!("{}: {e}", c.channel()));
            }
        }
        Self::failed("notify", failures)
    }

    async fn parse_inbound(&self, _request: &InboundRequest) -> Result<Vec<HumanReply>> {
        Err(Error::NotSupported {
            component: "fanout".into(),
            op: "parse_inbound (use the channel's own endpoint)".into(),
        })
    }

    async fn acknowledge(&self, reply: &HumanReply, outcome: &str) -> Result<()> {
        match self
            .channels
            .iter()
            .find(|c| c.channel() == reply.actor.channel)
        {
            Some(c) => c.acknowledge(reply, outcome).await,
            None => Ok(()),
        }
    }

    async fn refuse(&self, reply: &HumanReply, refusal: &str) -> Result<()> {
        match self
            .channels
            .iter()
            .find(|c| c.channel() == reply.actor.channel)
        {
            Some(c) => c.refuse(reply, refusal).await,
            None => Ok(()),
        }
    }
}
