//! A local stand-in for the Telegram Bot API: `POST /bot<token>/<method>` for the methods the
//! server calls (sendMessage, editMessageText, answerCallbackQuery, getUpdates with long
//! polling, setWebhook, getChatMember answering per (chat, user) as a test sets it, with
//! failure modes), refusing any other token. Every call is recorded for assertions;
//! updates queued by a test are served by getUpdates or delivered to the server's webhook.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::harness::{BOT_TOKEN, TestApp, TgUser};

pub const WEBHOOK_SECRET: &str = "webhook-secret_for-tests-0123456789";
const SECRET_HEADER: &str = "X-Telegram-Bot-Api-Secret-Token";
/// The longest the fake holds a getUpdates call, whatever `timeout` asks.
const MAX_LONG_POLL: Duration = Duration::from_secs(2);
/// How long a test waits for the server to make an expected call.
const CALL_WAIT: Duration = Duration::from_secs(15);

/// One Bot API call as the server made it.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    pub body: Value,
}

/// How getChatMember fails, when a test makes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberFailure {
    /// HTTP 500 with `ok: false`.
    ServerError,
    /// HTTP 429 with `parameters.retry_after`.
    TooManyRequests { retry_after: u64 },
    /// No answer for this long (the server's timeout should fire first).
    Hang { secs: u64 },
}

#[derive(Default)]
struct FakeState {
    /// getChatMember's `status` per (chat, user); anyone else has `left`.
    members: Mutex<std::collections::HashMap<(i64, i64), String>>,
    member_failure: Mutex<Option<MemberFailure>>,
    /// Chats whose user blocked the bot (or never started it): sendMessage answers 403.
    blocked: Mutex<std::collections::HashSet<i64>>,
    calls: Mutex<Vec<Call>>,
    /// Updates not yet confirmed by a getUpdates offset.
    queued: Mutex<Vec<Value>>,
    changed: Notify,
    next_message_id: AtomicI64,
}

pub struct FakeBotApi {
    pub base: String,
    state: Arc<FakeState>,
    next_update_id: AtomicI64,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeBotApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn method(
    State(state): State<Arc<FakeState>>,
    Path((bot, method)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    if bot != format!("bot{BOT_TOKEN}") {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"ok": false, "error_code": 401, "description": "Unauthorized"})),
        )
            .into_response();
    }
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if method == "getChatMember" {
        state.calls.lock().unwrap().push(Call {
            method: method.clone(),
            body: body.clone(),
        });
        state.changed.notify_waiters();
        let failure = *state.member_failure.lock().unwrap();
        match failure {
            Some(MemberFailure::ServerError) => {
                return (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    axum::Json(json!({"ok": false, "error_code": 500, "description": "Internal Server Error"})),
                )
                    .into_response();
            }
            Some(MemberFailure::TooManyRequests { retry_after }) => {
                return (
                    StatusCode::TOO_MANY_REQUESTS,
                    axum::Json(json!({
                        "ok": false,
                        "error_code": 429,
                        "description": format!("Too Many Requests: retry after {retry_after}"),
                        "parameters": { "retry_after": retry_after },
                    })),
                )
                    .into_response();
            }
            Some(MemberFailure::Hang { secs }) => {
                tokio::time::sleep(Duration::from_secs(secs)).await;
            }
            None => {}
        }
        let chat = body["chat_id"].as_i64().unwrap_or(0);
        let user = body["user_id"].as_i64().unwrap_or(0);
        let status = state
            .members
            .lock()
            .unwrap()
            .get(&(chat, user))
            .cloned()
            .unwrap_or_else(|| "left".into());
        let mut member = json!({
            "status": status,
            "user": { "id": user, "is_bot": false, "first_name": "Member" },
        });
        if status == "restricted" {
            member["is_member"] = json!(true);
        }
        return axum::Json(json!({"ok": true, "result": member})).into_response();
    }
    let blocked_chat = body["chat_id"]
        .as_i64()
        .is_some_and(|chat| state.blocked.lock().unwrap().contains(&chat));
    if method == "sendMessage" && blocked_chat {
        state.calls.lock().unwrap().push(Call {
            method: method.clone(),
            body,
        });
        state.changed.notify_waiters();
        return (
            StatusCode::FORBIDDEN,
            axum::Json(json!({"ok": false, "error_code": 403, "description": "Forbidden: bot was blocked by the user"})),
        )
            .into_response();
    }
    let result = match method.as_str() {
        "sendMessage" | "editMessageText" => {
            let id = match body.get("message_id").and_then(Value::as_i64) {
                Some(id) => id,
                None => state.next_message_id.fetch_add(1, Ordering::SeqCst) + 100,
            };
            json!({
                "message_id": id,
                "date": 0,
                "chat": { "id": body["chat_id"], "type": "private" },
                "text": body["text"],
            })
        }
        "answerCallbackQuery" | "setWebhook" => json!(true),
        "getUpdates" => {
            let offset = body.get("offset").and_then(Value::as_i64).unwrap_or(0);
            let wait =
                Duration::from_secs(body["timeout"].as_u64().unwrap_or(0)).min(MAX_LONG_POLL);
            let deadline = tokio::time::Instant::now() + wait;
            loop {
                let notified = state.changed.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                let ready: Vec<Value> = {
                    let mut queued = state.queued.lock().unwrap();
                    // An offset confirms every earlier update: Telegram forgets them.
                    queued.retain(|u| u["update_id"].as_i64().unwrap_or(0) >= offset);
                    queued.clone()
                };
                if !ready.is_empty() {
                    break json!(ready);
                }
                if tokio::time::timeout_at(deadline, notified).await.is_err() {
                    break json!([]);
                }
            }
        }
        _ => {
            return (
                StatusCode::NOT_FOUND,
                axum::Json(json!({"ok": false, "error_code": 404, "description": "Not Found"})),
            )
                .into_response();
        }
    };
    state.calls.lock().unwrap().push(Call {
        method: method.clone(),
        body,
    });
    state.changed.notify_waiters();
    axum::Json(json!({"ok": true, "result": result})).into_response()
}

impl FakeBotApi {
    pub async fn start() -> FakeBotApi {
        let state = Arc::new(FakeState::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let router = Router::new()
            .route("/{bot}/{method}", post(method))
            .with_state(state.clone());
        let server = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        FakeBotApi {
            base,
            state,
            next_update_id: AtomicI64::new(1000),
            server,
        }
    }

    /// Sets what getChatMember says of `user` in `chat` (`member`, `administrator`, `left`...).
    pub fn set_member(&self, chat: i64, user: i64, status: &str) {
        self.state
            .members
            .lock()
            .unwrap()
            .insert((chat, user), status.into());
    }

    /// Makes sendMessage to `chat` answer 403, as for a user who blocked the bot.
    pub fn block(&self, chat: i64) {
        self.state.blocked.lock().unwrap().insert(chat);
    }

    /// Lets sendMessage to `chat` through again.
    pub fn unblock(&self, chat: i64) {
        self.state.blocked.lock().unwrap().remove(&chat);
    }

    /// Makes getChatMember fail (or, with `None`, answer again).
    pub fn fail_members(&self, failure: Option<MemberFailure>) {
        *self.state.member_failure.lock().unwrap() = failure;
    }

    /// Every recorded call of `method` (getUpdates calls included).
    pub fn calls(&self, method: &str) -> Vec<Call> {
        self.state
            .calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.method == method)
            .cloned()
            .collect()
    }

    /// Waits until the server has made `count` calls of `method`; returns them all.
    pub async fn wait_for(&self, method: &str, count: usize) -> Vec<Call> {
        let deadline = tokio::time::Instant::now() + CALL_WAIT;
        loop {
            let notified = self.state.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let calls = self.calls(method);
            if calls.len() >= count {
                return calls;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!(
                    "the server made {} {method} calls, expected {count}",
                    calls.len()
                );
            }
        }
    }

    /// Gives an update its id; `update` is the rest of it (`message` or `callback_query`).
    pub fn update(&self, mut update: Value) -> Value {
        update["update_id"] = json!(self.next_update_id.fetch_add(1, Ordering::SeqCst));
        update
    }

    /// Queues an update for getUpdates.
    pub fn push_update(&self, update: Value) {
        self.state.queued.lock().unwrap().push(update);
        self.state.changed.notify_waiters();
    }

    /// Posts an update to the server's webhook as Telegram does, with `secret` in the header.
    pub async fn deliver(
        &self,
        app: &TestApp,
        update: &Value,
        secret: Option<&str>,
    ) -> reqwest::Response {
        let mut request = reqwest::Client::new()
            .post(app.url("/telegram/webhook"))
            .json(update);
        if let Some(secret) = secret {
            request = request.header(SECRET_HEADER, secret);
        }
        request.send().await.unwrap()
    }
}

pub fn from_json(user: &TgUser) -> Value {
    let mut from = json!({
        "id": user.id,
        "is_bot": false,
        "first_name": user.first_name,
        "language_code": "en",
    });
    if let Some(username) = &user.username {
        from["username"] = json!(username);
    }
    from
}

/// A private-chat text message from `user`.
pub fn message(user: &TgUser, text: &str) -> Value {
    json!({
        "message": {
            "message_id": 1,
            "date": 0,
            "from": from_json(user),
            "chat": { "id": user.id, "type": "private" },
            "text": text,
        }
    })
}

/// `user` presses a button with `data` under message `message_id` in their chat with the bot.
pub fn button(user: &TgUser, chat_id: i64, message_id: i64, data: &str) -> Value {
    json!({
        "callback_query": {
            "id": format!("cq-{}-{message_id}", user.id),
            "chat_instance": "1",
            "from": from_json(user),
            "message": {
                "message_id": message_id,
                "date": 0,
                "chat": { "id": chat_id, "type": "private" },
            },
            "data": data,
        }
    })
}

/// The `callback_data` of each button of a recorded sendMessage.
pub fn buttons(call: &Call) -> Vec<String> {
    call.body["reply_markup"]["inline_keyboard"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|row| row.as_array().cloned().unwrap_or_default())
        .filter_map(|b| b["callback_data"].as_str().map(str::to_owned))
        .collect()
}

/// The `callback_data` of the button that presses `number` in a recorded approval question.
pub fn number_button(call: &Call, number: i64) -> String {
    buttons(call)
        .into_iter()
        .find(|d| d.starts_with("n:") && d.ends_with(&format!(":{number}")))
        .unwrap_or_else(|| panic!("no button {number} in {:?}", buttons(call)))
}

/// The `callback_data` of the Deny button of a recorded approval question.
pub fn deny_button(call: &Call) -> String {
    buttons(call)
        .into_iter()
        .find(|d| d.starts_with("d:"))
        .expect("a Deny button")
}

/// The `callback_data` of the "This wasn't me" button of a recorded approval question.
pub fn not_me_button(call: &Call) -> String {
    buttons(call)
        .into_iter()
        .find(|d| d.starts_with("x:"))
        .expect("a This wasn't me button")
}

/// A server whose bot talks to `fake`, hearing updates as `mode` says; `adjust` may change more.
pub async fn app_with_bot(
    fake: &FakeBotApi,
    mode: telegram_oidc::config::UpdateMode,
    adjust: impl FnOnce(&mut telegram_oidc::config::Config),
) -> TestApp {
    app_with_bot_gated(fake, mode, adjust, None).await
}

/// As [`app_with_bot`], with an access policy in the login gate.
pub async fn app_with_bot_gated(
    fake: &FakeBotApi,
    mode: telegram_oidc::config::UpdateMode,
    adjust: impl FnOnce(&mut telegram_oidc::config::Config),
    policy: Option<std::sync::Arc<dyn telegram_oidc::flow::policy::LoginPolicy>>,
) -> TestApp {
    let base = fake.base.clone();
    TestApp::start_gated(
        move |c| {
            c.telegram.bot_api_url = base;
            c.telegram.updates = mode;
            c.telegram.webhook_secret = telegram_oidc::config::Secret::new(WEBHOOK_SECRET);
            c.telegram.polling_timeout_secs = 1;
            adjust(c);
        },
        policy,
    )
    .await
}

/// The claims of a JWT, unverified (the tests that need verification use a real client).
pub fn jwt_claims(jwt: &str) -> Value {
    use base64::Engine;
    let part = jwt.split('.').nth(1).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}
