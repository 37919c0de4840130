//! `POST /telegram/webhook`: the bot's updates, when Telegram delivers them by webhook.

use std::sync::atomic::Ordering;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::flow::audit::{Event, Outcome};
use crate::flow::bot_chat::{self, HandleError};
use crate::flow::bot_updates::SECRET_HEADER;
use crate::secrets::constant_time_eq;
use crate::state::AppState;
use crate::telegram::bot::Update;

/// `POST /telegram/webhook`: an update from Telegram, proven by the secret token it echoes in
/// `X-Telegram-Bot-Api-Secret-Token` (compared in constant time). Without it: 401, nothing done.
pub async fn webhook(State(app): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let expected = app.config.telegram.webhook_secret.expose().as_bytes();
    let presented = headers
        .get(SECRET_HEADER)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    if expected.is_empty() || !constant_time_eq(presented, expected) {
        tracing::warn!("a webhook call without the right secret token was refused");
        app.audit(Event::new("webhook.refused", Outcome::Refused).with(
            "reason",
            if presented.is_empty() {
                "no secret token"
            } else {
                "wrong secret token"
            },
        ));
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let Some(bot) = app.bot.as_deref() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let update: Update = match serde_json::from_slice(&body) {
        Ok(update) => update,
        // From Telegram itself (the secret matched), so an update this server cannot read (a
        // shape it does not know, or not JSON at all) is acknowledged, logged and counted:
        // refusing it would only make Telegram send it again and again.
        Err(e) => {
            let count = app.unusable_updates.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::warn!(error = %e, unusable_updates = count, "a webhook update could not be read; acknowledged so that Telegram does not resend it");
            return StatusCode::OK.into_response();
        }
    };
    match bot_chat::handle_update(&app, bot, &update).await {
        Ok(()) => StatusCode::OK.into_response(),
        // Nothing changed: Telegram redelivers a failed update later.
        Err(HandleError::Store(e)) => {
            tracing::warn!(error = %e, update_id = update.update_id, "update not handled; Telegram will resend it");
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
        // The state change is done; only the reply in the chat went missing.
        Err(HandleError::Bot(e)) => {
            tracing::warn!(error = %e, update_id = update.update_id, "the bot could not answer in the chat");
            StatusCode::OK.into_response()
        }
    }
}
