//! The login adapters. Each one turns one of Telegram's ways of proving "this is user N" into a
//! [`TelegramIdentity`]; nothing after that point knows which adapter made it.

pub mod bot;
pub mod deeplink;
pub mod upstream_oidc;
pub mod webapp;
pub mod widget;

use serde::{Deserialize, Serialize};

/// How an identity was proven; also the `amr` value in ID tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProofMethod {
    /// The Login Widget's HMAC-signed fields.
    TelegramWidget,
    /// A Mini App's `initData`, checked by HMAC with the bot token or by Telegram's Ed25519 key.
    MiniApp,
    /// An ID token from Telegram's own OpenID Connect provider.
    TelegramOidc,
    /// The user pressed Approve in the bot chat after opening a `t.me/<bot>?start=` link; the
    /// update came through the authenticated webhook or `getUpdates` with our token.
    BotDeepLink,
}

impl ProofMethod {
    pub fn amr(self) -> &'static str {
        match self {
            ProofMethod::TelegramWidget => "telegram_widget",
            ProofMethod::MiniApp => "telegram_miniapp",
            ProofMethod::TelegramOidc => "telegram_oidc",
            ProofMethod::BotDeepLink => "telegram_bot",
        }
    }
}

/// A Telegram user whose identity a login adapter has verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TelegramIdentity {
    pub id: i64,
    pub first_name: String,
    pub last_name: Option<String>,
    pub username: Option<String>,
    pub photo_url: Option<String>,
    pub language_code: Option<String>,
    pub is_premium: bool,
    pub phone_number: Option<String>,
    pub method: ProofMethod,
    /// When Telegram vouched for the user (`auth_date`), unix seconds.
    pub proven_at: i64,
}
