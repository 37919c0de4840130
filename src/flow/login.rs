//! The gate. Every login, whichever adapter proved the user (Login Widget, Telegram's OpenID
//! Connect, the bot chat, a Mini App's or a WebView's token exchange, a device approved in the
//! bot or on the page), passes here:
//!
//! 1. [`prove`]: the proof is used once (replay rule) and the user record is saved;
//! 2. [`admit`]: the access policy says whether this user may enter this app, before a code, a
//!    token or a device approval is issued for it;
//! 3. [`alert`]: the user hears of the login in the bot chat, if their login alerts are on.
//!
//! A rule that must hold for every login is written here and nowhere else.

use crate::error::{ErrorCode, OAuthError, OAuthResult};
use crate::flow::account::{self, Undo};
use crate::flow::audit::{Event, Outcome};
use crate::flow::device::{self, Decided};
use crate::flow::policy::Admission;
use crate::flow::session::{self, Browser, NewSession};
use crate::oidc::authorize::AuthorizationRequest;
use crate::oidc::grant_refresh::{self, RefreshCheck, RefreshRequest};
use crate::oidc::{acr, scopes};
use crate::secrets::token_hash;
use crate::state::App;
use crate::store::flows::DeviceApproval;
use crate::store::{ClientRecord, StoreError, UserRecord};
use crate::telegram::bot::InlineButton;
use crate::telegram::{ProofMethod, TelegramIdentity};

/// The data of the "This wasn't me" button under a login alert.
pub const NOT_ME: &str = "nm:";

/// A Telegram proof's single-use key: the SHA-256 of what makes it unique (a widget `hash`,
/// an `initData` hash or signature).
#[derive(Debug, Clone)]
pub struct ProofKey(pub Vec<u8>);

/// Why the gate stopped a login.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// The same Telegram proof was presented before.
    #[error("this Telegram login was already used")]
    AlreadyUsed,
    /// The access policy does not let this user into this app.
    #[error("the app's administrator has not let this Telegram account in")]
    NotAdmitted,
    /// The policy needs what Telegram could not tell just now (a chat membership): closed.
    #[error(
        "Telegram could not be asked whether this account may sign in; try again in a few minutes"
    )]
    Unavailable,
    /// A confirmation in the bot chat came from another Telegram account than the one that
    /// logged in.
    #[error("the login was confirmed from another Telegram account than the one that logged in")]
    OtherAccount,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<Refused> for OAuthError {
    fn from(refused: Refused) -> Self {
        match refused {
            Refused::Store(e) => e.into(),
            Refused::AlreadyUsed => OAuthError::invalid_request(refused.to_string()),
            Refused::NotAdmitted | Refused::OtherAccount => {
                OAuthError::new(ErrorCode::AccessDenied, refused.to_string())
            }
            Refused::Unavailable => {
                OAuthError::new(ErrorCode::TemporarilyUnavailable, refused.to_string())
            }
        }
    }
}

/// The user record a proven identity becomes.
pub fn user_record(identity: &TelegramIdentity, now: i64) -> UserRecord {
    UserRecord {
        telegram_id: identity.id,
        first_name: identity.first_name.clone(),
        last_name: identity.last_name.clone(),
        username: identity.username.clone(),
        photo_url: identity.photo_url.clone(),
        language_code: identity.language_code.clone(),
        is_premium: identity.is_premium,
        phone_number: identity.phone_number.clone(),
        created_at: now,
        updated_at: now,
        groups: None,
    }
}

/// Step one of every login: the proof is accepted once, and the user record is created or
/// refreshed. `proof` is `None` where single use is kept elsewhere (an upstream ID token bound
/// to its state and PKCE verifier, a bot login consumed in the store).
pub async fn prove(
    app: &App,
    identity: &TelegramIdentity,
    proof: Option<ProofKey>,
    now: i64,
) -> Result<UserRecord, Refused> {
    if let Some(ProofKey(key)) = proof {
        let t = &app.config.telegram;
        // Remembered until it could no longer pass the freshness check anyway.
        let remember_until = identity.proven_at + t.auth_date_window_secs + t.clock_skew_secs + 1;
        if !app.store.consume_proof(&key, remember_until).await? {
            tracing::info!(
                method = identity.method.amr(),
                "refused a Telegram login that was already used"
            );
            app.audit(
                Event::new("login", Outcome::Refused)
                    .user(identity.id)
                    .with("method", identity.method.amr())
                    .with("reason", "the proof was already used"),
            );
            return Err(Refused::AlreadyUsed);
        }
    }
    let user = user_record(identity, now);
    // The upsert keeps a known user's `created_at`, so no read is needed first; it tells
    // whether an admin blocked the user, who then passes no gate, whatever the login way.
    if app.store.upsert_user(&user).await?.is_some() {
        tracing::info!(
            user_id = identity.id,
            method = identity.method.amr(),
            "login refused: the user is blocked"
        );
        app.audit(
            Event::new("login", Outcome::Refused)
                .user(identity.id)
                .with("method", identity.method.amr())
                .with("reason", "the user is blocked"),
        );
        return Err(Refused::NotAdmitted);
    }
    if identity.method == ProofMethod::BotDeepLink {
        // The user has started the bot: login alerts may be on by default for them.
        app.store.note_bot_chat_login(user.telegram_id, now).await?;
    }
    app.audit(
        Event::new("login", Outcome::Ok)
            .user(identity.id)
            .with("method", identity.method.amr()),
    );
    Ok(user)
}

/// Step two, before anything is issued for `client`: may this user enter this app? `user` is
/// the record [`prove`] returned, or `None` to read it (a browser session started earlier).
/// When the app may ask for the `groups` scope, the user's groups are brought up to date too;
/// they are returned when they were.
pub async fn admit(
    app: &App,
    user_id: i64,
    user: Option<&UserRecord>,
    client: &ClientRecord,
) -> Result<Option<Vec<String>>, Refused> {
    let checked = app.policy.applies_to(client);
    let wants_groups = app.policy.has_groups()
        && client
            .settings
            .allowed_scopes
            .iter()
            .any(|s| s == scopes::GROUPS);
    if !checked && !wants_groups {
        return Ok(None);
    }
    let read;
    let user = match user {
        Some(user) => user,
        None => {
            read = app.store.get_user(user_id).await?;
            match &read {
                Some(user) => user,
                None => {
                    tracing::info!(user_id, client_id = %client.client_id, "login refused: unknown user");
                    return Err(Refused::NotAdmitted);
                }
            }
        }
    };
    if checked {
        match app.policy.admit(user, client).await {
            Admission::Admit => {}
            Admission::Refuse { rule } => {
                tracing::info!(
                    user_id,
                    client_id = %client.client_id,
                    rule = %rule,
                    "login refused by the access policy"
                );
                app.audit(
                    Event::new("policy.refused", Outcome::Refused)
                        .user(user_id)
                        .client(&client.client_id)
                        .with("rule", rule),
                );
                return Err(Refused::NotAdmitted);
            }
            Admission::Unavailable { reason } => {
                tracing::warn!(
                    user_id,
                    client_id = %client.client_id,
                    reason = %reason,
                    "login refused: the access policy could not be decided (fail closed)"
                );
                app.audit(
                    Event::new("policy.unavailable", Outcome::Failed)
                        .user(user_id)
                        .client(&client.client_id)
                        .with("reason", reason),
                );
                return Err(Refused::Unavailable);
            }
        }
    }
    if !wants_groups {
        return Ok(None);
    }
    match app.policy.groups(user).await {
        Ok(groups) => {
            if user.groups.as_ref() != Some(&groups) {
                app.store.set_user_groups(user_id, &groups).await?;
            }
            Ok(Some(groups))
        }
        Err(reason) => {
            tracing::warn!(
                user_id,
                client_id = %client.client_id,
                reason = %reason,
                "login refused: the user's groups could not be learned (fail closed)"
            );
            Err(Refused::Unavailable)
        }
    }
}

/// What a login was for, as its alert names it.
pub enum Opened<'a> {
    App(&'a ClientRecord),
    /// The app of this client id (read only when an alert is sent).
    AppId(&'a str),
    AccountPage,
    AdminDesk,
}

/// Step three of every login: if the user's login alerts are on, the bot tells them which app,
/// when, from which browser and roughly where, with a "This wasn't me" button that ends what
/// the login opened (`undo`). The message goes in the background: a login never waits for
/// Telegram, and never fails because the bot may not write to the user.
pub async fn alert(
    app: &App,
    identity: &TelegramIdentity,
    opened: Opened<'_>,
    browser: Option<&Browser>,
    undo: Undo,
    now: i64,
) -> Result<(), StoreError> {
    if app.bot.is_none() || !account::alerts_on(app, identity.id).await? {
        return Ok(());
    }
    let what = match opened {
        Opened::App(client) => client.settings.name.clone(),
        Opened::AppId(client_id) => match app.store.get_client(client_id).await? {
            Some(client) => client.settings.name,
            None => return Ok(()),
        },
        Opened::AccountPage => "your account page (apps and sessions)".to_owned(),
        Opened::AdminDesk => "the admin desk of this login provider".to_owned(),
    };
    let mut text = format!(
        "New login to {what}\nTime: {}\nHow: {}",
        account::when(now),
        how(identity.method)
    );
    if let Some(browser) = browser {
        text.push_str(&format!(
            "\nBrowser: {}",
            browser.device.as_deref().unwrap_or("unknown")
        ));
        if let Some(place) = &browser.place {
            text.push_str(&format!("\nPlace (approximate): {place}"));
        }
    }
    text.push_str("\n\nIf this wasn't you, press the button: that login is signed out and loses what it was given. Turn these messages off with /alerts off.");
    let button = InlineButton {
        text: "This wasn't me".into(),
        callback_data: format!("{NOT_ME}{}", undo.handle()),
    };
    account::send_in_background(app, identity.id, text, vec![button]);
    Ok(())
}

/// How a login was proven, in words.
fn how(method: ProofMethod) -> &'static str {
    match method {
        ProofMethod::TelegramWidget => "Telegram login widget",
        ProofMethod::MiniApp => "Telegram Mini App or app",
        ProofMethod::TelegramOidc => "Log in with Telegram",
        ProofMethod::BotDeepLink => "confirmed in this chat",
    }
}

/// Both steps, for the ways that issue at once (token exchange), then the alert.
pub async fn prove_and_admit(
    app: &App,
    identity: &TelegramIdentity,
    proof: Option<ProofKey>,
    client: &ClientRecord,
    now: i64,
) -> Result<UserRecord, Refused> {
    let mut user = prove(app, identity, proof, now).await?;
    if let Some(groups) = admit(app, user.telegram_id, Some(&user), client).await? {
        user.groups = Some(groups);
    }
    let undo = Undo::App(client.client_id.clone());
    alert(app, identity, Opened::App(client), None, undo, now).await?;
    Ok(user)
}

/// A device code approved in the bot chat (Approve pressed by the user who sent `/start`): the
/// gate's steps, then the device is decided; the alert follows an approval.
pub async fn device_in_bot(
    app: &App,
    identity: &TelegramIdentity,
    device_hash: &[u8],
    client: &ClientRecord,
    now: i64,
) -> Result<Decided, Refused> {
    let user = prove(app, identity, None, now).await?;
    let approval = DeviceApproval {
        user_id: identity.id,
        auth_time: now,
        amr: identity.method.amr().to_owned(),
    };
    let decided = device::approve(app, device_hash, client, approval, Some(&user), now).await?;
    if decided == Decided::Approved {
        let undo = Undo::App(client.client_id.clone());
        alert(app, identity, Opened::App(client), None, undo, now).await?;
    }
    Ok(decided)
}

/// The browser a login happens in: the session it had (replaced by the new one) and what it is.
pub struct BrowserLogin<'a> {
    pub replaces: Option<&'a str>,
    pub browser: &'a Browser,
}

/// A login in a browser for the pending authorization `req`: the gate's first step, a new
/// session, and a note on the pending request that its login happened (so `prompt=login` and
/// `max_age` are met); then the alert. Admission is asked when the authorization advances to a
/// code.
pub async fn in_browser(
    app: &App,
    identity: &TelegramIdentity,
    proof: Option<ProofKey>,
    browser: BrowserLogin<'_>,
    req: &str,
    mut request: AuthorizationRequest,
    now: i64,
) -> Result<NewSession, Refused> {
    // A confirmation in the bot chat (step-up) completes the login it confirms, and only the
    // same Telegram account can give it.
    let amr = match request.step_up.take() {
        Some(step_up) if step_up.user_id != identity.id => {
            tracing::warn!(
                client_id = %request.client_id,
                "a login was confirmed in the bot chat by another Telegram account; refused"
            );
            app.audit(
                Event::new("login", Outcome::Refused)
                    .user(identity.id)
                    .client(&request.client_id)
                    .with("method", identity.method.amr())
                    .with("reason", "confirmed by another Telegram account"),
            );
            return Err(Refused::OtherAccount);
        }
        Some(step_up) => acr::combine(&step_up.amr, identity.method.amr()),
        None => identity.method.amr().to_owned(),
    };
    prove(app, identity, proof, now).await?;
    let BrowserLogin { replaces, browser } = browser;
    let session = session::start(app, identity.id, &amr, replaces, browser, now).await?;
    request.fresh_login_session = Some(hex::encode(&session.id_hash));
    let json = serde_json::to_string(&request)
        .map_err(|e| StoreError::Internal(format!("pending authorization: {e}")))?;
    app.store.update_pending(&token_hash(req), &json).await?;
    let opened = if request.account {
        Opened::AccountPage
    } else if request.admin {
        Opened::AdminDesk
    } else {
        Opened::AppId(&request.client_id)
    };
    let undo = Undo::Session(session.id_hash.clone());
    alert(app, identity, opened, Some(browser), undo, now).await?;
    Ok(session)
}

/// The refresh token grant with the gate asked again: a user the app's policy no longer admits
/// (removed from the chat, once the cached answer is older than `policy.cache_secs`) gets
/// `invalid_grant`, and the refresh token stays as it was; nothing else is revoked.
pub async fn refresh(
    app: &App,
    client: &ClientRecord,
    request: &RefreshRequest,
    now: i64,
) -> OAuthResult<serde_json::Value> {
    grant_refresh::exchange(app, client, request, &Recheck(app), now).await
}

struct Recheck<'a>(&'a App);

#[async_trait::async_trait]
impl RefreshCheck for Recheck<'_> {
    async fn recheck(
        &self,
        client: &ClientRecord,
        mut user: UserRecord,
    ) -> OAuthResult<UserRecord> {
        match admit(self.0, user.telegram_id, Some(&user), client).await {
            Ok(groups) => {
                if let Some(groups) = groups {
                    user.groups = Some(groups);
                }
                Ok(user)
            }
            Err(Refused::NotAdmitted) => Err(OAuthError::invalid_grant(
                "the app's administrator no longer lets this Telegram account in",
            )),
            Err(e) => Err(e.into()),
        }
    }
}
