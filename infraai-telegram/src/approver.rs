//! The Telegram channel: a [`Notifier`] and an [`InboundChannel`].

use crate::client::BotClient;
use crate::config::TelegramConfig;
use crate::format::{
    approval_keyboard, approval_message, escape_html, notification_message, with_outcome,
};
use crate::wire::{Message, Update, User};
use async_trait::async_trait;
use infraai_core::{
    Actor, ApprovalRequest, Error, HumanCommand, HumanReply, InboundChannel, InboundRequest,
    IncidentId, Notification, Notifier, Result,
};
use serde_json::{json, Value};
use tracing::{debug, info, warn};

/// The header Telegram puts the webhook secret in.
pub const SECRET_HEADER: &str = "x-telegram-bot-api-secret-token";

/// Sends approval requests with inline buttons and turns button presses and
/// text replies (`1`/`YES`, `2`/`NO`, `STOP AUTONOMY`, `RESUME AUTONOMY`)
/// into human commands.
#[derive(Clone)]
pub struct TelegramApprover {
    client: BotClient,
}

impl TelegramApprover {
    /// A Telegram approver. Refuses a webhook secret Telegram would not
    /// accept (1–256 of `A-Z a-z 0-9 _ -`): an empty one in particular would
    /// make a delivery without the header look authentic.
    pub fn new(config: TelegramConfig) -> Result<Self> {
        if let Some(secret) = &config.webhook_secret {
            let s = secret.expose();
            let valid = (1..=256).contains(&s.len())
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if !valid {
                return Err(Error::invalid(
                    "Telegram configuration",
                    "webhook_secret must be 1-256 characters of A-Z, a-z, 0-9, _ and - (leave it unset for long polling)",
                ));
            }
        }
        Ok(Self {
            client: BotClient::new(config)?,
        })
    }

    pub(crate) fn client(&self) -> &BotClient {
        &self.client
    }

    fn verify_secret(&self, request: &InboundRequest) -> Result<()> {
        let Some(expected) = &self.client.config().webhook_secret else {
            return Err(Error::Unauthenticated {
                detail: "Telegram webhook secret is not configured; refusing webhook deliveries"
                    .into(),
            });
        };
        let given = request.header(SECRET_HEADER).unwrap_or_default();
        if expected.matches(given) {
            Ok(())
        } else {
            Err(Error::Unauthenticated {
                detail: "missing or wrong X-Telegram-Bot-Api-Secret-Token".into(),
            })
        }
    }

    /// The human commands an update carries (none for unrelated messages).
    pub async fn replies_from_update(&self, update: &Update) -> Vec<HumanReply> {
        if let Some(q) = &update.callback_query {
            let command = q.data.as_deref().and_then(HumanCommand::from_button_id);
            let Some(command) = command else {
                debug!(update_id = update.update_id, "unknown callback data");
                let _ = self
                    .client
                    .answer_callback_query(&q.id, "Unknown or expired button.")
                    .await;
                return vec![];
            };
            let message = q.message.as_ref();
            return vec![HumanReply {
                command,
                actor: actor(&q.from),
                delivery_seq: Some(update.update_id),
                delivery: json!({
                    "callback_query_id": q.id,
                    "chat_id": message.map(|m| m.chat.id),
                    "message_id": message.map(|m| m.message_id),
                    "text": message.and_then(|m| m.text.clone()),
                }),
            }];
        }
        let Some(m) = &update.message else {
            return vec![];
        };
        let (Some(from), Some(text)) = (&m.from, &m.text) else {
            return vec![];
        };
        let words = text
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_uppercase();
        let command = match words.as_str() {
            "STOP AUTONOMY" => Some(HumanCommand::StopAutonomy { reason: None }),
            "RESUME AUTONOMY" => Some(HumanCommand::Resume),
            "1" | "YES" | "APPROVE" | "2" | "NO" | "REJECT" => {
                let approve = matches!(words.as_str(), "1" | "YES" | "APPROVE");
                match self.replied_incident(m) {
                    Some(incident_id) if approve => Some(HumanCommand::Approve { incident_id }),
                    Some(incident_id) => Some(HumanCommand::Reject {
                        incident_id,
                        reason: None,
                    }),
                    None => {
                        let hint = "Reply to the approval request you mean (swipe left on it), then send YES or NO.";
                        if let Err(e) = self
                            .client
                            .send_message(m.chat.id, hint, None, Some(m.message_id))
                            .await
                        {
                            warn!(error = %e, "could not send the reply hint");
                        }
                        None
                    }
                }
            }
            _ => None,
        };
        command
            .map(|command| HumanReply {
                command,
                actor: actor(from),
                delivery_seq: Some(update.update_id),
                delivery: json!({"chat_id": m.chat.id, "reply_to": m.message_id}),
            })
            .into_iter()
            .collect()
    }

    /// The incident of the approval request a text message replies to: the
    /// first UUID of one of our bot's messages.
    fn replied_incident(&self, m: &Message) -> Option<IncidentId> {
        let original = m.reply_to_message.as_ref()?;
        let from = original.from.as_ref()?;
        let ours = match self.client.config().bot_id() {
            Some(bot) => from.id == bot,
            None => from.is_bot,
        };
        if !ours {
            return None;
        }
        original.text.as_deref()?.split_whitespace().find_map(|w| {
            w.trim_matches(|c: char| !c.is_ascii_hexdigit() && c != '-')
                .parse::<IncidentId>()
                .ok()
        })
    }

    /// Answers the button press (a pop-up only the presser sees, cut to
    /// Telegram's 200 characters) or replies to the text command.
    async fn answer(&self, reply: &HumanReply, text: &str) -> Result<()> {
        let d = &reply.delivery;
        if let Some(query) = d.get("callback_query_id").and_then(Value::as_str) {
            let short: String = text.chars().take(190).collect();
            self.client.answer_callback_query(query, &short).await?;
            return Ok(());
        }
        if let Some(chat) = d.get("chat_id").and_then(Value::as_i64) {
            let reply_to = d.get("reply_to").and_then(Value::as_i64);
            self.client
                .send_message(chat, &escape_html(text), None, reply_to)
                .await?;
        }
        Ok(())
    }
}

fn actor(user: &User) -> Actor {
    let mut a = Actor::new("telegram", user.id.to_string());
    a.name = Some(
        user.username
            .clone()
            .unwrap_or_else(|| user.first_name.clone()),
    );
    a
}

#[async_trait]
impl Notifier for TelegramApprover {
    fn channel(&self) -> &str {
        "telegram"
    }

    async fn request_approval(&self, request: &ApprovalRequest) -> Result<()> {
        let config = self.client.config();
        let sent = self
            .client
            .send_message(
                config.chat_id,
                &approval_message(request),
                Some(&approval_keyboard(request.incident.id)),
                None,
            )
            .await?;
        info!(incident_id = %request.incident.id, message_id = sent.message_id, "approval request sent to Telegram");
        Ok(())
    }

    async fn notify(&self, notification: &Notification) -> Result<()> {
        let chat = self.client.config().chat_id;
        self.client
            .send_message(chat, &notification_message(notification), None, None)
            .await?;
        Ok(())
    }
}

#[async_trait]
impl InboundChannel for TelegramApprover {
    fn channel(&self) -> &str {
        "telegram"
    }

    async fn parse_inbound(&self, request: &InboundRequest) -> Result<Vec<HumanReply>> {
        self.verify_secret(request)?;
        let update: Update = serde_json::from_slice(&request.body)
            .map_err(|e| Error::invalid("Telegram update", e.to_string()))?;
        Ok(self.replies_from_update(&update).await)
    }

    /// A refusal answers the button press (a pop-up only the presser sees)
    /// or replies to the text command; the request message and its buttons
    /// stay, so approvers can still use them.
    async fn refuse(&self, reply: &HumanReply, refusal: &str) -> Result<()> {
        self.answer(reply, refusal).await
    }

    /// Answers as [`InboundChannel::refuse`] does, and shows the outcome in
    /// the request message of a pressed button (which drops its buttons).
    async fn acknowledge(&self, reply: &HumanReply, outcome: &str) -> Result<()> {
        self.answer(reply, outcome).await?;
        let d = &reply.delivery;
        if let (Some(_), Some(chat), Some(message)) = (
            d.get("callback_query_id"),
            d.get("chat_id").and_then(Value::as_i64),
            d.get("message_id").and_then(Value::as_i64),
        ) {
            let original = d.get("text").and_then(Value::as_str).unwrap_or_default();
            let who = reply.actor.name.as_deref().unwrap_or(&reply.actor.id);
            self.client
                .edit_message_text(chat, message, &with_outcome(original, who, outcome))
                .await?;
        }
        Ok(())
    }
}
