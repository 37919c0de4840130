//! The bot chat's account commands: `/apps` (the apps the user gave something to, each with
//! Revoke), `/sessions` (the signed-in browsers, each with Sign out, and Sign out everywhere),
//! `/alerts on|off`, and the "This wasn't me" button under a login alert. Whoever presses a
//! button acts on their own account only: every handle is looked up among the presser's apps
//! and sessions (`flow::account`).

use crate::flow::account::{self, AppEntry, SessionEntry};
use crate::flow::bot_chat::HandleError;
use crate::flow::login::NOT_ME;
use crate::state::App;
use crate::telegram::bot::{BotApi, CallbackQuery, InlineButton, Message};

const REVOKE: &str = "ra:";
const SIGN_OUT: &str = "so:";
const SIGN_OUT_ALL: &str = "sa";
/// Telegram refuses a message longer than this (core.telegram.org/bots/api#sendmessage).
const MAX_MESSAGE_CHARS: usize = 4096;
/// A list longer than this shows its first entries only: a keyboard of more rows is unwieldy.
const MAX_LISTED: usize = 20;

pub const HELP: &str = "This bot confirms logins and keeps you in charge of them:\n\
/apps - the apps you signed in to, with a button to revoke each\n\
/sessions - the browsers where you are signed in, with buttons to sign them out\n\
/alerts on|off - a message whenever someone logs in with your Telegram account";

/// A command of the account's, if `text` is one; `Ok(false)` when it is not.
pub async fn on_command(
    app: &App,
    bot: &BotApi,
    message: &Message,
    user_id: i64,
    text: &str,
) -> Result<bool, HandleError> {
    let mut words = text.split_whitespace();
    let command = words.next().unwrap_or("");
    // `/apps@our_bot` is how a client may send a command picked from the menu.
    let command = match command.split_once('@') {
        Some((c, bot_name)) if bot_name.eq_ignore_ascii_case(&app.config.telegram.bot_username) => {
            c
        }
        Some(_) => return Ok(false),
        None => command,
    };
    let chat = message.chat.id;
    let now = app.now();
    match command {
        "/apps" => {
            let apps = account::apps(app, user_id, now).await?;
            let (text, rows) = apps_message(&apps);
            bot.send_message_rows(chat, &text, &rows).await?;
        }
        "/sessions" => {
            let sessions = account::sessions(app, user_id, now).await?;
            let (text, rows) = sessions_message(&sessions);
            bot.send_message_rows(chat, &text, &rows).await?;
        }
        "/alerts" => {
            let text = match words.next().map(str::to_ascii_lowercase).as_deref() {
                Some(choice @ ("on" | "off")) => {
                    let on = choice == "on";
                    if app.store.set_login_alerts(user_id, on).await? {
                        tracing::info!(user_id, on, "login alerts set");
                        if on {
                            "Login alerts are on: this chat hears of every login with your Telegram account."
                        } else {
                            "Login alerts are off. Turn them on again with /alerts on."
                        }
                    } else {
                        "You have not logged in with Telegram here yet, so there is nothing to alert you of. Log in once, then choose."
                    }
                }
                _ => {
                    if account::alerts_on(app, user_id).await? {
                        "Login alerts are on. Send /alerts off to stop them."
                    } else {
                        "Login alerts are off. Send /alerts on to hear of every login with your Telegram account."
                    }
                }
            };
            bot.send_message(chat, text, &[]).await?;
        }
        "/help" => {
            bot.send_message(chat, HELP, &[]).await?;
        }
        _ => return Ok(false),
    }
    Ok(true)
}

fn apps_message(apps: &[AppEntry]) -> (String, Vec<Vec<InlineButton>>) {
    if apps.is_empty() {
        return (
            "You have not given any app access with your Telegram account.".into(),
            Vec::new(),
        );
    }
    let mut text = String::from("Apps you signed in to with Telegram:\n");
    let mut rows = Vec::new();
    for (n, a) in apps.iter().take(MAX_LISTED).enumerate() {
        let n = n + 1;
        let domain = a
            .domain
            .as_deref()
            .map(|d| format!(" ({d})"))
            .unwrap_or_default();
        text.push_str(&format!(
            "\n{n}. {}{domain}\nAllowed: {}\nLast used: {}\n",
            a.name,
            a.scopes.join("; "),
            account::when(a.last_used_at)
        ));
        rows.push(vec![InlineButton {
            text: short(&format!("Revoke {n}. {}", a.name)),
            callback_data: format!("{REVOKE}{}", a.handle),
        }]);
    }
    if apps.len() > MAX_LISTED {
        text.push_str(&format!(
            "\n... and {} more: see them on the account page.",
            apps.len() - MAX_LISTED
        ));
    }
    (fit(text), rows)
}

fn sessions_message(sessions: &[SessionEntry]) -> (String, Vec<Vec<InlineButton>>) {
    if sessions.is_empty() {
        return (
            "No browser is signed in with your Telegram account.".into(),
            Vec::new(),
        );
    }
    let mut text = String::from("Browsers signed in with your Telegram account:\n");
    let mut rows = Vec::new();
    for (n, s) in sessions.iter().take(MAX_LISTED).enumerate() {
        let n = n + 1;
        let place = s
            .place
            .as_deref()
            .map(|p| format!(", near {p}"))
            .unwrap_or_default();
        text.push_str(&format!(
            "\n{n}. {}{place}\nSigned in: {}\nLast used: {}\n",
            s.device.as_deref().unwrap_or("Unknown browser"),
            account::when(s.signed_in_at),
            account::when(s.last_used_at)
        ));
        rows.push(vec![InlineButton {
            text: format!("Sign out {n}"),
            callback_data: format!("{SIGN_OUT}{}", s.handle),
        }]);
    }
    rows.push(vec![InlineButton {
        text: "Sign out everywhere".into(),
        callback_data: SIGN_OUT_ALL.into(),
    }]);
    (fit(text), rows)
}

/// A button's label, kept short.
fn short(label: &str) -> String {
    label.chars().take(48).collect()
}

fn fit(text: String) -> String {
    if text.chars().count() <= MAX_MESSAGE_CHARS {
        return text;
    }
    text.chars().take(MAX_MESSAGE_CHARS - 1).collect::<String>() + "…"
}

/// A press on one of the account's buttons; `Ok(false)` when `data` is not one.
pub async fn on_button(
    app: &App,
    bot: &BotApi,
    query: &CallbackQuery,
) -> Result<bool, HandleError> {
    let data = query.data.as_deref().unwrap_or("");
    let user_id = query.from.id;
    let now = app.now();
    let (notice, outcome) = if let Some(handle) = data.strip_prefix(REVOKE) {
        match account::revoke_app(app, user_id, handle, now).await? {
            Some(name) => (
                "Revoked",
                format!(
                    "{name} no longer has access to your Telegram account: its sign-ins and tokens have ended. Send /apps for the list."
                ),
            ),
            None => (
                "Nothing to revoke",
                "That app has no access any more. Send /apps for the list.".into(),
            ),
        }
    } else if let Some(handle) = data.strip_prefix(SIGN_OUT) {
        if account::sign_out(app, user_id, handle, now).await? {
            (
                "Signed out",
                "That browser is signed out. Send /sessions for the list.".into(),
            )
        } else {
            (
                "Already signed out",
                "That browser was already signed out. Send /sessions for the list.".into(),
            )
        }
    } else if data == SIGN_OUT_ALL {
        let n = account::sign_out_everywhere(app, user_id, now).await?;
        (
            "Signed out everywhere",
            format!(
                "Signed out everywhere ({n} browser{}).",
                if n == 1 { "" } else { "s" }
            ),
        )
    } else if let Some(handle) = data.strip_prefix(NOT_ME) {
        if account::not_me(app, user_id, handle, now).await? {
            (
                "Ended",
                "That login was signed out and lost what it was given. If you did not start it, someone may know your Telegram login: check your active sessions in Telegram's settings (Devices).".into(),
            )
        } else {
            ("Already ended", "That login had already ended.".into())
        }
    } else {
        return Ok(false);
    };
    bot.answer_callback_query(&query.id, Some(notice)).await?;
    if let Some(message) = &query.message {
        bot.edit_message_text(message.chat.id, message.message_id, &outcome)
            .await?;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn button_data_fits_in_64_bytes() {
        let session = account::session_handle(&[0xff; 32]);
        assert!(format!("{SIGN_OUT}{session}").len() <= 64);
        assert!(format!("{REVOKE}{}", account::app_handle("x")).len() <= 64);
    }

    #[test]
    fn lists_name_every_entry_with_its_button() {
        let apps = vec![AppEntry {
            handle: "h1".into(),
            client_id: "c1".into(),
            name: "Grafana".into(),
            domain: Some("grafana.example.com".into()),
            scopes: vec!["Your name".into()],
            last_used_at: 0,
        }];
        let (text, rows) = apps_message(&apps);
        assert!(text.contains("1. Grafana (grafana.example.com)"), "{text}");
        assert_eq!(rows[0][0].callback_data, "ra:h1");
        let sessions = vec![SessionEntry {
            handle: "s1".into(),
            device: Some("Firefox on Linux".into()),
            place: None,
            signed_in_at: 0,
            last_used_at: 60,
        }];
        let (text, rows) = sessions_message(&sessions);
        assert!(text.contains("1. Firefox on Linux\n"), "{text}");
        assert!(!text.contains("near"), "no place without GeoIP: {text}");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1][0].callback_data, "sa");
    }
}
