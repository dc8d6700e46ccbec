//! The Slack channel: a [`Notifier`], an [`InboundChannel`], the
//! interactivity endpoint and the slash command.

use crate::blocks;
use crate::client::WebClient;
use crate::config::SlackConfig;
use crate::groups::GroupCache;
use crate::verify::{SigningKey, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use async_trait::async_trait;
use infraai_core::{
    Actor, ApprovalRequest, Error, HumanCommand, HumanReply, InboundChannel, InboundRequest,
    IncidentQuery, IncidentStatus, Notification, Notifier, OpsAgent, Result,
};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// How long an interaction is remembered, so a redelivery changes nothing.
const SEEN_FOR: Duration = Duration::from_secs(600);

/// Posts approval requests with buttons, verifies the interactions and
/// slash commands Slack sends, and applies them exactly once.
#[derive(Clone)]
pub struct SlackApprover {
    client: WebClient,
    key: SigningKey,
    groups: Arc<GroupCache>,
    seen: Arc<Mutex<HashMap<String, Instant>>>,
}

/// What a verified interaction asks for.
struct Press {
    reply: HumanReply,
    /// `action_ts` + user: the same press delivered twice has the same key.
    key: String,
    channel: String,
    ts: String,
    blocks: Vec<Value>,
}

fn form(body: &[u8]) -> Result<HashMap<String, String>> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .map(|pairs| pairs.into_iter().collect())
        .map_err(|e| Error::invalid("Slack request body", e.to_string()))
}

/// `"1548426417.840180"` → 1548426417840180 (micro-seconds: it grows with time).
fn action_seq(action_ts: &str) -> Option<i64> {
    let (secs, micros) = action_ts.split_once('.')?;
    let micros = format!("{micros:0<6}");
    Some(secs.parse::<i64>().ok()? * 1_000_000 + micros.get(..6)?.parse::<i64>().ok()?)
}

impl SlackApprover {
    /// A Slack approver.
    pub fn new(config: SlackConfig) -> Result<Self> {
        let key = SigningKey::new(config.signing_secret.expose());
        let client = WebClient::new(config)?;
        Ok(Self {
            groups: Arc::new(GroupCache::new(client.clone())),
            client,
            key,
            seen: Arc::default(),
        })
    }

    /// The form fields of a request whose signature and timestamp hold;
    /// anything else is [`Error::Unauthenticated`].
    fn verify(&self, request: &InboundRequest) -> Result<HashMap<String, String>> {
        let timestamp = request.header(TIMESTAMP_HEADER).unwrap_or_default();
        let signature = request.header(SIGNATURE_HEADER).unwrap_or_default();
        if timestamp.is_empty() || !self.key.verify(timestamp, &request.body, signature) {
            return Err(Error::Unauthenticated {
                detail: "invalid Slack request signature".into(),
            });
        }
        let window = self.client.config().replay_window;
        infraai_core::signed::check_replay_window("Slack", timestamp, window)?;
        form(&request.body)
    }

    /// The actor: the user, holding as roles the approver groups they are in.
    async fn actor(&self, user_id: &str, name: Option<&str>) -> Actor {
        let mut actor = Actor::new("slack", user_id);
        actor.name = name.map(str::to_string);
        actor.roles = self.groups.groups_of(user_id).await;
        actor
    }

    /// The button press an interaction payload carries, when it is one of ours.
    async fn press(&self, fields: &HashMap<String, String>) -> Result<Option<Press>> {
        let payload: Value = serde_json::from_str(fields.get("payload").map_or("", String::as_str))
            .map_err(|e| Error::invalid("Slack interaction payload", e.to_string()))?;
        if payload["type"] != "block_actions" {
            return Ok(None);
        }
        let action = &payload["actions"][0];
        let (Some(value), Some(user)) = (action["value"].as_str(), payload["user"]["id"].as_str())
        else {
            return Ok(None);
        };
        let Some(command) = HumanCommand::from_button_id(value) else {
            return Ok(None);
        };
        let action_ts = action["action_ts"].as_str().unwrap_or_default();
        let name = payload["user"]["username"]
            .as_str()
            .or(payload["user"]["name"].as_str());
        let mut reply = HumanReply::new(command, self.actor(user, name).await);
        reply.delivery_seq = action_seq(action_ts);
        let str_of = |v: &Value| v.as_str().unwrap_or_default().to_string();
        Ok(Some(Press {
            key: format!("{action_ts}:{user}:{value}"),
            channel: (payload["container"]["channel_id"].as_str())
                .or(payload["channel"]["id"].as_str())
                .unwrap_or_default()
                .to_string(),
            ts: str_of(&payload["container"]["message_ts"]),
            blocks: payload["message"]["blocks"]
                .as_array()
                .cloned()
                .unwrap_or_default(),
            reply,
        }))
    }

    /// Whether this press was seen within [`SEEN_FOR`] (and remembers it).
    fn seen_before(&self, key: &str) -> bool {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        seen.retain(|_, at| now.duration_since(*at) < SEEN_FOR);
        seen.insert(key.to_string(), now).is_some()
    }

    /// The whole interactivity endpoint (`POST`, form field `payload`):
    /// verifies the signature ([`Error::Unauthenticated`] → answer 401,
    /// audited through [`OpsAgent::audited`]) and applies a button press
    /// once — a redelivery of the same press changes nothing. The request
    /// message is then updated with the outcome and who decided; a person
    /// not allow-listed gets an ephemeral refusal and nothing changes. Both
    /// are sent in the background: Slack wants its answer (an empty 200)
    /// within 3 seconds.
    pub async fn handle_interaction(
        &self,
        agent: &Arc<OpsAgent>,
        request: &InboundRequest,
    ) -> Result<()> {
        let verified = self.verify(request);
        let fields = agent.audited("slack", request, verified).await?;
        let Some(press) = self.press(&fields).await? else {
            return Ok(());
        };
        if self.seen_before(&press.key) {
            info!(key = %press.key, "Slack interaction delivered again; ignored");
            return Ok(());
        }
        let user = press.reply.actor.id.clone();
        let outcome = match agent.handle_command_detached(&press.reply).await {
            Ok(o) => o.message,
            Err(Error::Forbidden { detail }) => {
                self.later(
                    "chat.postEphemeral",
                    json!({"channel": press.channel, "user": user, "text": detail}),
                );
                return Ok(());
            }
            Err(e) => format!("Could not apply the command: {e}"),
        };
        let update = blocks::outcome(
            &press.channel,
            &press.ts,
            &press.blocks,
            &who(&press.reply.actor),
            &outcome,
        );
        self.later("chat.update", update);
        Ok(())
    }

    /// Calls `method` in the background, logging a failure.
    fn later(&self, method: &'static str, body: Value) {
        let client = self.client.clone();
        tokio::spawn(async move {
            if let Err(e) = client.post(method, &body).await {
                warn!(method, error = %e, "Slack call failed");
            }
        });
    }

    /// The slash command (`POST`, form-encoded; `/infraai stop [reason]`,
    /// `/infraai resume`, `/infraai status`): verified like interactions,
    /// answered with the JSON message Slack shows — to the channel for a
    /// STOP or RESUME that took effect, to the user alone otherwise.
    pub async fn handle_slash_command(
        &self,
        agent: &Arc<OpsAgent>,
        request: &InboundRequest,
    ) -> Result<Value> {
        let verified = self.verify(request);
        let fields = agent.audited("slack", request, verified).await?;
        let field = |k: &str| fields.get(k).map(String::as_str).unwrap_or_default();
        let text = field("text").trim();
        let (word, rest) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
        let command = match word.to_ascii_lowercase().as_str() {
            "stop" => HumanCommand::StopAutonomy {
                reason: Some(rest.trim())
                    .filter(|r| !r.is_empty())
                    .map(str::to_string),
            },
            "resume" => HumanCommand::Resume,
            "status" => return Ok(ephemeral(&status(agent).await?)),
            _ => {
                let usage = format!(
                    "Usage: `{0} stop [reason]`, `{0} resume`, `{0} status`.",
                    field("command")
                );
                return Ok(ephemeral(&usage));
            }
        };
        let actor = self
            .actor(
                field("user_id"),
                Some(field("user_name")).filter(|n| !n.is_empty()),
            )
            .await;
        let reply = HumanReply::new(command, actor);
        match agent.handle_command(&reply).await {
            Ok(o) if o.effective => Ok(json!({
                "response_type": "in_channel",
                "text": format!("{}: {}", blocks::escape_mrkdwn(&who(&reply.actor)), blocks::escape_mrkdwn(&o.message)),
            })),
            Ok(o) => Ok(ephemeral(&o.message)),
            Err(Error::Forbidden { detail }) => Ok(ephemeral(&detail)),
            Err(e) => Err(e),
        }
    }
}

/// `@name (slack:U…)`, or the label alone.
fn who(actor: &Actor) -> String {
    match &actor.name {
        Some(name) => format!("@{name} ({})", actor.label()),
        None => actor.label(),
    }
}

fn ephemeral(text: &str) -> Value {
    json!({"response_type": "ephemeral", "text": blocks::escape_mrkdwn(text)})
}

/// One line on autonomy and what waits for a human.
async fn status(agent: &OpsAgent) -> Result<String> {
    let store = agent.store();
    let switch = store.kill_switch().await?;
    let query = IncidentQuery {
        statuses: vec![IncidentStatus::Pending],
        limit: Some(1000),
        ..Default::default()
    };
    let pending = store.list_incidents(&query).await?.len();
    let autonomy = if switch.engaged {
        format!(
            "AUTONOMY STOPPED by {}",
            switch.set_by.unwrap_or_else(|| "?".into())
        )
    } else {
        "autonomy on".into()
    };
    Ok(format!(
        "{autonomy}; {pending} incident(s) waiting for approval."
    ))
}

#[async_trait]
impl Notifier for SlackApprover {
    fn channel(&self) -> &str {
        "slack"
    }

    async fn request_approval(&self, request: &ApprovalRequest) -> Result<()> {
        let body = blocks::approval(&self.client.config().channel_id, request);
        self.client.post("chat.postMessage", &body).await?;
        info!(incident_id = %request.incident.id, "approval request posted to Slack");
        Ok(())
    }

    async fn notify(&self, n: &Notification) -> Result<()> {
        let body = blocks::notification(&self.client.config().channel_id, &n.title, &n.body);
        self.client.post("chat.postMessage", &body).await?;
        Ok(())
    }
}

#[async_trait]
impl InboundChannel for SlackApprover {
    fn channel(&self) -> &str {
        "slack"
    }

    async fn parse_inbound(&self, request: &InboundRequest) -> Result<Vec<HumanReply>> {
        let fields = self.verify(request)?;
        let Some(press) = self.press(&fields).await? else {
            return Ok(vec![]);
        };
        let mut reply = press.reply;
        reply.delivery = json!({"channel": press.channel, "ts": press.ts, "blocks": press.blocks});
        Ok(vec![reply])
    }

    /// Updates the request message with the outcome. The interactivity
    /// endpoint should use [`SlackApprover::handle_interaction`], which also
    /// drops redeliveries and answers within Slack's 3 seconds.
    async fn acknowledge(&self, reply: &HumanReply, outcome: &str) -> Result<()> {
        let (Some(channel), Some(ts)) = (
            reply.delivery["channel"].as_str(),
            reply.delivery["ts"].as_str(),
        ) else {
            return Ok(());
        };
        let original = reply.delivery["blocks"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let update = blocks::outcome(channel, ts, &original, &who(&reply.actor), outcome);
        self.client.post("chat.update", &update).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn action_ts_is_a_growing_sequence() {
        assert_eq!(
            super::action_seq("1548426417.840180"),
            Some(1_548_426_417_840_180)
        );
        assert_eq!(
            super::action_seq("1548426417.84"),
            Some(1_548_426_417_840_000)
        );
        assert!(super::action_seq("1548426417.840181") > super::action_seq("1548426417.840180"));
        assert_eq!(super::action_seq("junk"), None);
    }
}
