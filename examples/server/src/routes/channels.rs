//! The chat channels' inbound webhooks: Telegram updates, Discord
//! interactions, Slack interactions and slash commands.

use super::{body, inbound};
use crate::app::{origin_of, AppState};
use crate::error::{ApiError, ApiResult};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::Json;
use infraai_core::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// A channel's error for a request it authenticated: a body that is not JSON
/// at all is the client's malformed JSON (400, like every other route), not
/// a payload of the wrong shape (422). Other errors map as usual.
fn channel_error(raw: &[u8], e: Error) -> ApiError {
    if matches!(e, Error::Invalid { .. }) {
        if let Err(j) = serde_json::from_slice::<serde::de::IgnoredAny>(raw) {
            if j.classify() != serde_json::error::Category::Data {
                return ApiError::bad_request(format!("malformed JSON: {j}"));
            }
        }
    }
    e.into()
}

/// A chat channel's delivery to `route`, with where it came from (for the
/// audit of a refusal).
fn chat_request(
    route: &str,
    headers: &HeaderMap,
    extensions: &axum::http::Extensions,
    query: BTreeMap<String, String>,
    b: Result<Bytes, BytesRejection>,
) -> ApiResult<InboundRequest> {
    let mut req = inbound(headers, query, body(b)?);
    req.origin = origin_of("POST", route, headers, extensions);
    Ok(req)
}

/// Telegram Bot API webhook (header `X-Telegram-Bot-Api-Secret-Token`).
///
/// 404 when Telegram is not configured.
#[utoipa::path(post, path = "/ops/telegram", request_body(content = Object, description = "A Telegram Update."), security(("telegram" = [])))]
pub(crate) async fn telegram_webhook(
    State(s): State<AppState>,
    headers: HeaderMap,
    extensions: axum::http::Extensions,
    Query(query): Query<BTreeMap<String, String>>,
    b: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let Some(tg) = s.telegram.clone() else {
        return Err(ApiError::not_found(
            "Telegram is not configured (INFRAAI_TELEGRAM_BOT_TOKEN, INFRAAI_TELEGRAM_CHAT_ID, INFRAAI_TELEGRAM_WEBHOOK_SECRET)",
        ));
    };
    let req = chat_request("/ops/telegram", &headers, &extensions, query, b)?;
    let results = s
        .ops
        .handle_inbound(tg.as_ref(), &req)
        .await
        .map_err(|e| channel_error(&req.body, e))?;
    for r in &results {
        s.metrics
            .approval("telegram", matches!(r, Ok(o) if o.effective));
    }
    Ok(Json(json!({"ok": true, "commands": results.len()})))
}

/// Discord interactions endpoint (Ed25519 signature headers).
///
/// 404 when Discord is not configured.
#[utoipa::path(post, path = "/ops/discord", request_body(content = Object, description = "A Discord Interaction."), security(("discord" = [])))]
pub(crate) async fn discord_interactions(
    State(s): State<AppState>,
    headers: HeaderMap,
    extensions: axum::http::Extensions,
    Query(query): Query<BTreeMap<String, String>>,
    b: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let Some(dc) = s.discord.clone() else {
        return Err(ApiError::not_found(
            "Discord is not configured (INFRAAI_DISCORD_PUBLIC_KEY, INFRAAI_DISCORD_BOT_TOKEN, INFRAAI_DISCORD_CHANNEL_ID)",
        ));
    };
    let req = chat_request("/ops/discord", &headers, &extensions, query, b)?;
    let answer = dc
        .handle_interaction(&s.ops, &req)
        .await
        .map_err(|e| channel_error(&req.body, e))?;
    Ok(Json(answer))
}

fn slack_off() -> ApiError {
    ApiError::not_found(
        "Slack is not configured (INFRAAI_SLACK_BOT_TOKEN, INFRAAI_SLACK_SIGNING_SECRET, INFRAAI_SLACK_CHANNEL_ID)",
    )
}

/// Slack interactivity endpoint (form field `payload`; `X-Slack-Signature`
/// over `X-Slack-Request-Timestamp` and the body). Answers an empty 200; the
/// request message is updated with the outcome, a refusal goes only to the
/// person who pressed.
///
/// 404 when Slack is not configured.
#[utoipa::path(post, path = "/ops/slack/interactions", request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "`payload`: a Slack block_actions payload."), responses((status = 200, description = "Accepted.")), security(("slack" = [])))]
pub(crate) async fn slack_interactions(
    State(s): State<AppState>,
    headers: HeaderMap,
    extensions: axum::http::Extensions,
    Query(query): Query<BTreeMap<String, String>>,
    b: Result<Bytes, BytesRejection>,
) -> ApiResult<()> {
    let sl = s.slack.clone().ok_or_else(slack_off)?;
    let req = chat_request("/ops/slack/interactions", &headers, &extensions, query, b)?;
    sl.handle_interaction(&s.ops, &req).await?;
    Ok(())
}

/// Slack slash command (`/infraai stop [reason]`, `resume`, `status`),
/// verified like interactions. Answers the message Slack shows.
///
/// 404 when Slack is not configured.
#[utoipa::path(post, path = "/ops/slack/commands", request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "A Slack slash command."), responses((status = 200, description = "The message to show.")), security(("slack" = [])))]
pub(crate) async fn slack_commands(
    State(s): State<AppState>,
    headers: HeaderMap,
    extensions: axum::http::Extensions,
    Query(query): Query<BTreeMap<String, String>>,
    b: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let sl = s.slack.clone().ok_or_else(slack_off)?;
    let req = chat_request("/ops/slack/commands", &headers, &extensions, query, b)?;
    Ok(Json(sl.handle_slash_command(&s.ops, &req).await?))
}
