//! Private wire types of the Gemini and OpenAI chat-completions APIs. Only
//! normalized types ([`infraai_core::LlmResponse`]) leave this crate.

use serde::{Deserialize, Serialize};
use serde_json::Value;

// ------------------------------------------------------------- errors (both)

/// `{error: {message, details[]}}`: Google's and OpenAI's error bodies share it.
#[derive(Deserialize)]
pub(crate) struct ErrorBody {
    pub error: ErrorInfo,
}

#[derive(Deserialize)]
pub(crate) struct ErrorInfo {
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub details: Vec<ErrorDetail>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ErrorDetail {
    #[serde(rename = "@type", default)]
    pub kind: String,
    pub retry_delay: Option<String>,
}

// ------------------------------------------------------------- Gemini

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct GenerateContentRequest<'a> {
    pub system_instruction: Content<'a>,
    pub contents: Vec<Content<'a>>,
    pub generation_config: GenerationConfig,
}

#[derive(Serialize)]
pub(crate) struct Content<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    pub parts: Vec<TextPart<'a>>,
}

#[derive(Serialize)]
pub(crate) struct TextPart<'a> {
    pub text: &'a str,
}

impl<'a> Content<'a> {
    /// One text part, from `role` (`None` for the system instruction).
    pub fn text(role: Option<&'static str>, text: &'a str) -> Self {
        Self {
            role,
            parts: vec![TextPart { text }],
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct GenerationConfig {
    pub response_mime_type: &'static str,
    pub response_json_schema: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u32>,
    pub candidate_count: u32,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct GenerateContentResponse {
    #[serde(default)]
    pub candidates: Vec<Candidate>,
    pub prompt_feedback: Option<PromptFeedback>,
    pub usage_metadata: Option<UsageMetadata>,
    pub model_version: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Candidate {
    pub content: Option<CandidateContent>,
    pub finish_reason: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct CandidateContent {
    #[serde(default)]
    pub parts: Vec<ResponsePart>,
}

#[derive(Deserialize)]
pub(crate) struct ResponsePart {
    pub text: Option<String>,
    #[serde(default)]
    pub thought: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PromptFeedback {
    pub block_reason: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct UsageMetadata {
    pub prompt_token_count: u64,
    pub candidates_token_count: u64,
    pub thoughts_token_count: u64,
}

// ------------------------------------------------------------- OpenAI-compatible

#[derive(Serialize)]
pub(crate) struct ChatRequest<'a> {
    pub model: &'a str,
    pub messages: Vec<ChatMessage<'a>>,
    pub response_format: ResponseFormat<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<u32>,
}

#[derive(Serialize)]
pub(crate) struct ChatMessage<'a> {
    pub role: &'static str,
    pub content: &'a str,
}

#[derive(Serialize)]
pub(crate) struct ResponseFormat<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub json_schema: JsonSchemaFormat<'a>,
}

#[derive(Serialize)]
pub(crate) struct JsonSchemaFormat<'a> {
    pub name: &'a str,
    pub strict: bool,
    pub schema: Value,
}

#[derive(Deserialize)]
pub(crate) struct ChatCompletion {
    pub model: Option<String>,
    #[serde(default)]
    pub choices: Vec<Choice>,
    pub usage: Option<ChatUsage>,
}

#[derive(Deserialize)]
pub(crate) struct Choice {
    pub message: AssistantMessage,
    pub finish_reason: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct AssistantMessage {
    pub content: Option<String>,
    pub refusal: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct ChatUsage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}
