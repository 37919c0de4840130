//! Token exchange (RFC 8693) for Mini Apps and native apps: the subject token is Telegram
//! login data the app holds (a Mini App's `initData`, or Login Widget fields from a WebView).
//! The adapters verify it, the gate admits the user, and `oidc` issues what was asked.

use serde_json::Value;

use crate::error::{OAuthError, OAuthResult};
use crate::flow::login::{self, ProofKey, Refused};
use crate::oidc::grant_token_exchange::{
    self, INIT_DATA_TOKEN_TYPE, LOGIN_WIDGET_TOKEN_TYPE, TokenExchangeParams,
};
use crate::secrets::sha256;
use crate::state::App;
use crate::store::{ClientRecord, TokenExchangeSettings};
use crate::telegram::widget::{self, Freshness};
use crate::telegram::{TelegramIdentity, webapp};

/// Widget data is a few hundred bytes; initData has its own limit in `webapp`.
const MAX_WIDGET_DATA_LEN: usize = 4096;

pub async fn exchange(
    app: &App,
    client: &ClientRecord,
    params: &TokenExchangeParams,
    now: i64,
) -> OAuthResult<Value> {
    let request = grant_token_exchange::parse(client, params)?;
    if client.settings.require_bot_confirmation {
        // A token exchange answers at once: there is no moment to ask in the bot chat. Such an
        // app signs users in through /authorize (or the device flow), where it is asked.
        return Err(OAuthError::new(
            crate::error::ErrorCode::UnauthorizedClient,
            "this app requires every login to be confirmed in the Telegram bot chat; use the authorization code flow",
        ));
    }
    let (identity, proof) = verify_subject(
        app,
        request.settings,
        request.subject_token,
        request.subject_token_type,
        now,
    )?;
    let user =
        match login::prove_and_admit(app, &identity, Some(ProofKey(proof)), client, now).await {
            Ok(user) => user,
            Err(Refused::AlreadyUsed) => {
                return Err(OAuthError::invalid_request(
                    "the subject_token was already used",
                ));
            }
            Err(e) => return Err(e.into()),
        };
    grant_token_exchange::issue(
        app,
        client,
        request,
        &user,
        identity.method.amr(),
        identity.proven_at,
        now,
    )
    .await
}

/// Checks the subject token and returns the identity and the key under which its single use is
/// recorded. RFC 8693 §2.2.2: an unsupported, invalid or unacceptable subject token is
/// `invalid_request`.
fn verify_subject(
    app: &App,
    settings: &TokenExchangeSettings,
    subject_token: &str,
    subject_token_type: &str,
    now: i64,
) -> OAuthResult<(TelegramIdentity, Vec<u8>)> {
    let t = &app.config.telegram;
    let freshness = Freshness {
        window_secs: t.auth_date_window_secs,
        skew_secs: t.clock_skew_secs,
    };
    let refused = |reason: &dyn std::fmt::Display| {
        tracing::info!(reason = %reason, subject_token_type, "refused a token exchange");
        // A proof that does not check out: counted as an invalid login of its method.
        app.metrics.login(
            if subject_token_type == INIT_DATA_TOKEN_TYPE {
                "telegram_miniapp"
            } else {
                "telegram_widget"
            },
            "invalid",
        );
        OAuthError::invalid_request(format!("the subject_token is not acceptable: {reason}"))
    };
    match subject_token_type {
        INIT_DATA_TOKEN_TYPE => {
            let (identity, raw) = match settings.telegram_bot_id {
                Some(bot_id) => {
                    let key = t.init_data_public_key().ok_or_else(|| {
                        OAuthError::server_error("the Mini App public key is not configured")
                    })?;
                    let (identity, signature) =
                        webapp::verify_with_signature(subject_token, bot_id, &key, now, freshness)
                            .map_err(|e| refused(&e))?;
                    (
                        identity,
                        [b"initdata-signature:".as_slice(), &signature].concat(),
                    )
                }
                None => {
                    let (identity, hash) = webapp::verify_with_token(
                        subject_token,
                        t.bot_token.expose(),
                        now,
                        freshness,
                    )
                    .map_err(|e| refused(&e))?;
                    (identity, hash)
                }
            };
            Ok((identity, sha256(&raw)))
        }
        LOGIN_WIDGET_TOKEN_TYPE => {
            if subject_token.len() > MAX_WIDGET_DATA_LEN {
                return Err(refused(&"it is too long"));
            }
            let fields = crate::params::parse_params(subject_token)
                .map_err(|_| refused(&"it is not a valid URL-encoded string"))?;
            let (identity, hash) = widget::verify(&fields, t.bot_token.expose(), now, freshness)
                .map_err(|e| refused(&e))?;
            // The same key as the browser login's, so one widget login is used once in all.
            Ok((identity, sha256(&hash)))
        }
        _ => Err(OAuthError::invalid_request(format!(
            "unsupported subject_token_type; use {INIT_DATA_TOKEN_TYPE} or {LOGIN_WIDGET_TOKEN_TYPE}"
        ))),
    }
}
