//! A small Bot API client (core.telegram.org/bots/api): the few methods the login flows need,
//! and the few fields of the updates they read.
//!
//! Every call's URL is `{base}/bot<token>/<method>`, so the URL itself is a secret: errors are
//! stripped of it before anyone can log them, and `Debug` never shows the token.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::config::Secret;

/// How long an ordinary call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, thiserror::Error)]
pub enum BotApiError {
    /// The Bot API could not be reached or did not answer in time (the message carries no URL).
    #[error("the Bot API could not be reached: {0}")]
    Unreachable(String),
    /// The Bot API answered `ok: false`.
    #[error("the Bot API refused {method}: {code} {description}")]
    Refused {
        method: &'static str,
        code: i64,
        description: String,
        /// `parameters.retry_after` of a 429.
        retry_after: Option<u64>,
    },
    #[error("the Bot API answered {method} with something unreadable: {detail}")]
    Malformed {
        method: &'static str,
        detail: String,
    },
}

impl BotApiError {
    /// Turns a reqwest error into one that can be logged: the URL, which holds the token, goes.
    fn from_reqwest(e: reqwest::Error) -> Self {
        let e = e.without_url();
        let mut message = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(inner) = source {
            message.push_str(": ");
            message.push_str(&inner.to_string());
            source = inner.source();
        }
        BotApiError::Unreachable(message)
    }
}

pub struct BotApi {
    http: reqwest::Client,
    base: String,
    token: Secret,
}

impl std::fmt::Debug for BotApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BotApi")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

/// The envelope of every Bot API answer.
#[derive(Deserialize)]
struct Envelope {
    ok: bool,
    #[serde(default)]
    result: Option<Value>,
    #[serde(default)]
    error_code: Option<i64>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    parameters: Option<ResponseParameters>,
}

#[derive(Deserialize)]
struct ResponseParameters {
    #[serde(default)]
    retry_after: Option<u64>,
}

/// A Telegram user, as updates describe them (only the fields a login uses).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: i64,
    #[serde(default)]
    pub is_bot: bool,
    pub first_name: String,
    #[serde(default)]
    pub last_name: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub language_code: Option<String>,
    #[serde(default)]
    pub is_premium: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chat {
    pub id: i64,
    /// `private`, `group`, `supergroup` or `channel`.
    #[serde(rename = "type")]
    pub kind: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub message_id: i64,
    #[serde(default)]
    pub from: Option<User>,
    pub chat: Chat,
    #[serde(default)]
    pub text: Option<String>,
}

/// A press on an inline button. `message` is the message the button belongs to (Telegram may
/// send it as an "inaccessible message", which still has `chat` and `message_id`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallbackQuery {
    pub id: String,
    pub from: User,
    #[serde(default)]
    pub message: Option<Message>,
    #[serde(default)]
    pub data: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Update {
    pub update_id: i64,
    #[serde(default)]
    pub message: Option<Message>,
    #[serde(default)]
    pub callback_query: Option<CallbackQuery>,
}

/// One inline button that sends `callback_data` (at most 64 bytes) when pressed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InlineButton {
    pub text: String,
    pub callback_data: String,
}

/// A user's standing in a chat (`ChatMember`): `status` is `creator`, `administrator`,
/// `member`, `restricted`, `left` or `kicked`; a restricted user's `is_member` says whether
/// they are still in the chat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMember {
    pub status: String,
    #[serde(default)]
    pub is_member: Option<bool>,
}

/// The updates this server reads; `setWebhook` and `getUpdates` ask for nothing else.
pub const ALLOWED_UPDATES: [&str; 2] = ["message", "callback_query"];

impl BotApi {
    pub fn new(base: &str, token: Secret) -> Result<BotApi, BotApiError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            // A redirect would carry the token in its URL to wherever it points.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(BotApiError::from_reqwest)?;
        Ok(BotApi {
            http,
            base: base.trim_end_matches('/').to_owned(),
            token,
        })
    }

    /// Calls `method`, counted in the metrics by method and result.
    async fn call<T: DeserializeOwned>(
        &self,
        method: &'static str,
        body: &Value,
        timeout: Duration,
    ) -> Result<T, BotApiError> {
        let started = std::time::Instant::now();
        let result = self.call_uncounted(method, body, timeout).await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(BotApiError::Refused { code: 429, .. }) => "rate_limited",
            Err(BotApiError::Refused { .. }) => "refused",
            Err(BotApiError::Unreachable(_)) => "unreachable",
            Err(BotApiError::Malformed { .. }) => "malformed",
        };
        crate::metrics::bot_api_call(method, outcome, started.elapsed().as_secs_f64());
        result
    }

    async fn call_uncounted<T: DeserializeOwned>(
        &self,
        method: &'static str,
        body: &Value,
        timeout: Duration,
    ) -> Result<T, BotApiError> {
        let url = format!("{}/bot{}/{method}", self.base, self.token.expose());
        let response = self
            .http
            .post(url)
            .json(body)
            .timeout(timeout)
            .send()
            .await
            .map_err(BotApiError::from_reqwest)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(BotApiError::from_reqwest)?;
        let envelope: Envelope =
            serde_json::from_slice(&bytes).map_err(|e| BotApiError::Malformed {
                method,
                detail: format!("HTTP {status}: {e}"),
            })?;
        if !envelope.ok {
            return Err(BotApiError::Refused {
                method,
                code: envelope.error_code.unwrap_or(i64::from(status.as_u16())),
                description: envelope.description.unwrap_or_default(),
                retry_after: envelope.parameters.and_then(|p| p.retry_after),
            });
        }
        serde_json::from_value(envelope.result.unwrap_or(Value::Null)).map_err(|e| {
            BotApiError::Malformed {
                method,
                detail: e.to_string(),
            }
        })
    }

    /// Sends a plain-text message (no parse mode, so names need no escaping), with one row of
    /// inline buttons if any.
    pub async fn send_message(
        &self,
        chat_id: i64,
        text: &str,
        buttons: &[InlineButton],
    ) -> Result<Message, BotApiError> {
        let rows = if buttons.is_empty() {
            Vec::new()
        } else {
            vec![buttons.to_vec()]
        };
        self.send_message_rows(chat_id, text, &rows).await
    }

    /// [`send_message`](Self::send_message) with the inline buttons in rows.
    pub async fn send_message_rows(
        &self,
        chat_id: i64,
        text: &str,
        rows: &[Vec<InlineButton>],
    ) -> Result<Message, BotApiError> {
        let mut body = json!({ "chat_id": chat_id, "text": text });
        if !rows.is_empty() {
            body["reply_markup"] = json!({ "inline_keyboard": rows });
        }
        self.call("sendMessage", &body, CALL_TIMEOUT).await
    }

    /// Replaces a message's text and removes its buttons.
    pub async fn edit_message_text(
        &self,
        chat_id: i64,
        message_id: i64,
        text: &str,
    ) -> Result<(), BotApiError> {
        let body = json!({
            "chat_id": chat_id,
            "message_id": message_id,
            "text": text,
            "reply_markup": { "inline_keyboard": [] },
        });
        // The result is the edited message, or `true` for inline messages: not needed either way.
        let _: Value = self.call("editMessageText", &body, CALL_TIMEOUT).await?;
        Ok(())
    }

    /// Ends the spinner on a pressed button, optionally with a short notice.
    pub async fn answer_callback_query(
        &self,
        callback_query_id: &str,
        text: Option<&str>,
    ) -> Result<(), BotApiError> {
        let mut body = json!({ "callback_query_id": callback_query_id });
        if let Some(text) = text {
            body["text"] = json!(text);
        }
        let _: bool = self
            .call("answerCallbackQuery", &body, CALL_TIMEOUT)
            .await?;
        Ok(())
    }

    /// Long polling: waits up to `timeout_secs` for updates after `offset` (which also confirms
    /// every earlier update to Telegram). Entries this client cannot read come back as `Err`
    /// with their `update_id`, so the caller can still move past them.
    pub async fn get_updates(
        &self,
        offset: Option<i64>,
        timeout_secs: u64,
    ) -> Result<Vec<Result<Update, i64>>, BotApiError> {
        let mut body = json!({ "timeout": timeout_secs, "allowed_updates": ALLOWED_UPDATES });
        if let Some(offset) = offset {
            body["offset"] = json!(offset);
        }
        let raw: Vec<Value> = self
            .call(
                "getUpdates",
                &body,
                Duration::from_secs(timeout_secs) + CALL_TIMEOUT,
            )
            .await?;
        Ok(raw
            .into_iter()
            .filter_map(|v| {
                let id = v.get("update_id").and_then(Value::as_i64)?;
                Some(serde_json::from_value::<Update>(v).map_err(|_| id))
            })
            .collect())
    }

    /// Whether and how `user_id` is in `chat_id` (the bot must be in the chat, and an
    /// administrator of a channel, for Telegram to say).
    pub async fn get_chat_member(
        &self,
        chat_id: i64,
        user_id: i64,
        timeout: Duration,
    ) -> Result<ChatMember, BotApiError> {
        let body = json!({ "chat_id": chat_id, "user_id": user_id });
        self.call("getChatMember", &body, timeout).await
    }

    /// The bot's own user id: the number before `:` in its token.
    pub fn bot_id(&self) -> Option<i64> {
        self.token
            .expose()
            .split_once(':')
            .and_then(|(id, _)| id.parse().ok())
    }

    /// Points Telegram at our webhook; it will send `secret_token` back in
    /// `X-Telegram-Bot-Api-Secret-Token` with every update.
    pub async fn set_webhook(&self, url: &str, secret_token: &str) -> Result<(), BotApiError> {
        let body = json!({
            "url": url,
            "secret_token": secret_token,
            "allowed_updates": ALLOWED_UPDATES,
        });
        let _: bool = self.call("setWebhook", &body, CALL_TIMEOUT).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn updates_decode_with_unknown_fields_and_inaccessible_messages() {
        let raw = json!({
            "update_id": 7,
            "callback_query": {
                "id": "cq1",
                "chat_instance": "-1",
                "from": { "id": 42, "is_bot": false, "first_name": "Ada", "is_premium": true },
                "message": { "message_id": 9, "date": 0, "chat": { "id": 42, "type": "private" } },
                "data": "a:xyz"
            }
        });
        let update: Update = serde_json::from_value(raw).unwrap();
        let cq = update.callback_query.unwrap();
        assert_eq!(cq.from.is_premium, Some(true));
        assert_eq!(cq.message.unwrap().message_id, 9);
        assert_eq!(cq.data.as_deref(), Some("a:xyz"));
    }

    #[tokio::test]
    async fn errors_never_carry_the_token() {
        // Port 1 on loopback refuses connections: the error comes from reqwest, URL and all.
        let api = BotApi::new("http://127.0.0.1:1", Secret::new("123:SECRET_TOKEN_VALUE")).unwrap();
        let err = api.send_message(1, "hi", &[]).await.unwrap_err();
        let shown = format!("{err} {err:?}");
        assert!(matches!(err, BotApiError::Unreachable(_)), "{shown}");
        assert!(!shown.contains("SECRET_TOKEN_VALUE"), "{shown}");
    }

    #[test]
    fn debug_hides_the_token() {
        let api = BotApi::new(
            "https://api.telegram.org",
            Secret::new("123:SECRET_TOKEN_VALUE"),
        )
        .unwrap();
        assert!(!format!("{api:?}").contains("SECRET_TOKEN_VALUE"));
    }
}
