//! The Discord channel: a [`Notifier`], an [`InboundChannel`] and the
//! interactions endpoint.

use crate::client::RestClient;
use crate::config::DiscordConfig;
use crate::verify::{PublicKey, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use async_trait::async_trait;
use infraai_core::{
    Actor, ApprovalRequest, Error, HumanCommand, HumanReply, InboundChannel, InboundRequest,
    IncidentId, Notification, Notifier, OpsAgent, Result,
};
use reqwest::Method;
use serde_json::{json, Value};
use std::sync::Arc;
use tracing::info;

/// Discord's limit on message content, in characters.
pub const MAX_CONTENT_CHARS: usize = 2000;

/// Posts approval requests with buttons and verifies and answers the
/// interactions Discord sends when they are pressed.
#[derive(Clone)]
pub struct DiscordApprover {
    client: RestClient,
    key: PublicKey,
}

/// Escapes Discord markdown so untrusted alert text shows literally.
pub fn escape_markdown(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\*_~`|>#-[]()@<".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn truncate(text: &str) -> String {
    if text.chars().count() <= MAX_CONTENT_CHARS {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(MAX_CONTENT_CHARS - 1).collect();
    // Never end on a lone escaping backslash.
    if cut.ends_with('\\') && !cut.ends_with("\\\\") {
        cut.pop();
    }
    cut.push('…');
    cut
}

fn buttons(id: Option<IncidentId>, disabled: bool) -> Value {
    let button = |label: &str, style: u8, custom_id: String| json!({"type": 2, "style": style, "label": label, "custom_id": custom_id, "disabled": disabled});
    let mut row = Vec::new();
    if let Some(id) = id {
        row.push(button("Approve", 3, format!("approve:{id}")));
        row.push(button("Reject", 4, format!("reject:{id}")));
    }
    row.push(button("STOP AUTONOMY", 2, "stop".into()));
    json!([{"type": 1, "components": row}])
}

impl DiscordApprover {
    /// A Discord approver; fails on a malformed public key.
    pub fn new(config: DiscordConfig) -> Result<Self> {
        let key = PublicKey::from_hex(&config.public_key_hex)
            .map_err(|e| Error::invalid("Discord configuration", e))?;
        Ok(Self {
            client: RestClient::new(config)?,
            key,
        })
    }

    fn verify(&self, request: &InboundRequest) -> Result<Value> {
        let timestamp = request.header(TIMESTAMP_HEADER).unwrap_or_default();
        let signature = request.header(SIGNATURE_HEADER).unwrap_or_default();
        if timestamp.is_empty() || !self.key.verify(timestamp, &request.body, signature) {
            return Err(Error::Unauthenticated {
                detail: "invalid Discord request signature".into(),
            });
        }
        let window = self.client.config().replay_window;
        infraai_core::signed::check_replay_window("Discord", timestamp, window)?;
        serde_json::from_slice(&request.body)
            .map_err(|e| Error::invalid("Discord interaction", e.to_string()))
    }

    fn reply_from(interaction: &Value) -> Option<HumanReply> {
        if interaction["type"] != json!(3) {
            return None;
        }
        let command = HumanCommand::from_button_id(interaction["data"]["custom_id"].as_str()?)?;
        // Guild interactions carry `member` (with roles), DMs carry `user`.
        let user = interaction["member"]["user"]
            .as_object()
            .or(interaction["user"].as_object())?;
        let mut actor = Actor::new("discord", user.get("id")?.as_str()?);
        actor.name = user
            .get("username")
            .and_then(Value::as_str)
            .map(str::to_string);
        actor.roles = interaction["member"]["roles"]
            .as_array()
            .map(|r| {
                r.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        Some(HumanReply {
            command,
            actor,
            // Interaction ids are snowflakes: they grow with time.
            delivery_seq: interaction["id"]
                .as_str()
                .and_then(|id| id.parse::<i64>().ok()),
            delivery: json!({
                "application_id": interaction["application_id"],
                "token": interaction["token"],
                "content": interaction["message"]["content"],
            }),
        })
    }

    fn outcome_message(reply: &HumanReply, outcome: &str) -> Value {
        let original = reply.delivery["content"].as_str().unwrap_or_default();
        let incident = match &reply.command {
            HumanCommand::Approve { incident_id } | HumanCommand::Reject { incident_id, .. } => {
                Some(*incident_id)
            }
            _ => None,
        };
        json!({
            "content": truncate(&format!(
                "{original}\n\n**Outcome** (<@{}>): {}",
                reply.actor.id,
                escape_markdown(outcome)
            )),
            "components": buttons(incident, true),
            "allowed_mentions": {"parse": []},
        })
    }

    /// The whole interactions endpoint: verifies the signature
    /// ([`Error::Unauthenticated`] → answer 401), answers PING with PONG, and
    /// applies a button press (detached: the action runs in the background)
    /// answering with an update of the request message that shows the
    /// outcome and disables the buttons. Returns the JSON response body.
    ///
    /// A refused signature is audited ([`OpsAgent::audited`]).
    pub async fn handle_interaction(
        &self,
        agent: &Arc<OpsAgent>,
        request: &InboundRequest,
    ) -> Result<Value> {
        let verified = self.verify(request);
        let interaction = agent.audited("discord", request, verified).await?;
        if interaction["type"] == json!(1) {
            return Ok(json!({"type": 1}));
        }
        let Some(reply) = Self::reply_from(&interaction) else {
            return Ok(
                json!({"type": 4, "data": {"content": "Unknown or expired button.", "flags": 64}}),
            );
        };
        let outcome = match agent.handle_command_detached(&reply).await {
            Ok(o) => o.message,
            Err(Error::Forbidden { detail }) => {
                // A refusal goes only to the person who pressed (ephemeral).
                return Ok(
                    json!({"type": 4, "data": {"content": detail, "flags": 64, "allowed_mentions": {"parse": []}}}),
                );
            }
            Err(e) => format!("Could not apply the command: {e}"),
        };
        Ok(json!({"type": 7, "data": Self::outcome_message(&reply, &outcome)}))
    }
}

#[async_trait]
impl Notifier for DiscordApprover {
    fn channel(&self) -> &str {
        "discord"
    }

    async fn request_approval(&self, request: &ApprovalRequest) -> Result<()> {
        let i = &request.incident;
        let mut lines = vec![format!("**Approval needed** — incident `{}`", i.id)];
        lines.extend(request.detail_lines(escape_markdown));
        let body = json!({
            "content": truncate(&lines.join("\n")),
            "components": buttons(Some(i.id), false),
            "allowed_mentions": {"parse": []},
        });
        let path = format!("/channels/{}/messages", self.client.config().channel_id);
        self.client.send(Method::POST, &path, &body).await?;
        info!(incident_id = %i.id, "approval request posted to Discord");
        Ok(())
    }

    async fn notify(&self, n: &Notification) -> Result<()> {
        let body = json!({
            "content": truncate(&format!("**{}**\n{}", escape_markdown(&n.title), escape_markdown(&n.body))),
            "allowed_mentions": {"parse": []},
        });
        let path = format!("/channels/{}/messages", self.client.config().channel_id);
        self.client.send(Method::POST, &path, &body).await?;
        Ok(())
    }
}

#[async_trait]
impl InboundChannel for DiscordApprover {
    fn channel(&self) -> &str {
        "discord"
    }

    async fn parse_inbound(&self, request: &InboundRequest) -> Result<Vec<HumanReply>> {
        let interaction = self.verify(request)?;
        Ok(Self::reply_from(&interaction).into_iter().collect())
    }

    /// Edits the original interaction response (valid for 15 minutes). The
    /// interactions endpoint should use [`DiscordApprover::handle_interaction`],
    /// which answers within Discord's 3-second limit instead.
    async fn acknowledge(&self, reply: &HumanReply, outcome: &str) -> Result<()> {
        let (Some(app), Some(token)) = (
            reply.delivery["application_id"].as_str(),
            reply.delivery["token"].as_str(),
        ) else {
            return Ok(());
        };
        let path = format!("/webhooks/{app}/{token}/messages/@original");
        self.client
            .send(Method::PATCH, &path, &Self::outcome_message(reply, outcome))
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_and_truncation() {
        assert_eq!(
            escape_markdown("@everyone **x**"),
            "\\@everyone \\*\\*x\\*\\*"
        );
        let long = truncate(&"\\*".repeat(3000));
        assert!(long.chars().count() <= MAX_CONTENT_CHARS);
        assert!(long.ends_with('…'));
    }
}
