//! Bot API types (only the fields infraai reads).

use serde::{Deserialize, Serialize};

#[derive(Debug, Deserialize)]
pub(crate) struct ApiResponse<T> {
    pub ok: bool,
    pub result: Option<T>,
    pub error_code: Option<i64>,
    pub description: Option<String>,
    pub parameters: Option<ResponseParameters>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ResponseParameters {
    pub retry_after: Option<u64>,
}

/// An incoming update.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct Update {
    /// Monotonic update id (the `getUpdates` offset is the last one + 1).
    pub update_id: i64,
    /// A new message.
    pub message: Option<Message>,
    /// A button press.
    pub callback_query: Option<CallbackQuery>,
}

/// A message.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct Message {
    /// Id within the chat.
    pub message_id: i64,
    /// Sender (absent for channel posts).
    pub from: Option<User>,
    /// The chat.
    pub chat: Chat,
    /// Text (entities already parsed out).
    pub text: Option<String>,
    /// The message this one replies to.
    pub reply_to_message: Option<Box<Message>>,
}

/// A user or bot.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct User {
    /// User id (may exceed 32 bits).
    pub id: i64,
    /// Whether it is a bot.
    #[serde(default)]
    pub is_bot: bool,
    /// First name.
    #[serde(default)]
    pub first_name: String,
    /// @username, when set.
    pub username: Option<String>,
}

/// A chat.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct Chat {
    /// Chat id (negative for groups).
    pub id: i64,
}

/// A press of an inline button.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct CallbackQuery {
    /// Id to answer with `answerCallbackQuery`.
    pub id: String,
    /// Who pressed.
    pub from: User,
    /// The message the button was on.
    pub message: Option<Message>,
    /// The button's callback data (client-controlled: untrusted).
    pub data: Option<String>,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub(crate) struct InlineKeyboardMarkup {
    pub inline_keyboard: Vec<Vec<InlineKeyboardButton>>,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub(crate) struct InlineKeyboardButton {
    pub text: String,
    pub callback_data: String,
}
