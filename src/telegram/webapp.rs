//! Mini App `initData` (core.telegram.org/bots/webapps, "Validating data received via the Mini
//! App"): a URL-encoded query string whose fields are signed either with the bot token
//! (HMAC-SHA-256, the `hash` field) or with Telegram's Ed25519 key (the `signature` field), which
//! lets a party without the token check data given to another bot.

use aws_lc_rs::signature;
use base64::Engine;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use serde::Deserialize;

use super::widget::Freshness;
use super::{ProofMethod, TelegramIdentity};
use crate::secrets::{constant_time_eq, hmac_sha256};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InitDataError {
    #[error("the Mini App data is incomplete: `{0}` is missing")]
    Missing(&'static str),
    #[error("the Mini App data is malformed: {0}")]
    Malformed(&'static str),
    #[error("the Mini App data was not signed for this bot")]
    BadSignature,
    #[error("the Mini App data is too old; reopen the Mini App")]
    Stale,
    #[error("the Mini App data is dated in the future; check the server clock")]
    FromTheFuture,
}

/// Telegram's initData is a few hundred bytes; anything far larger is not from Telegram.
pub const MAX_INIT_DATA_LEN: usize = 8192;
const MAX_FIELD_LEN: usize = 4096;
const MAX_FIELDS: usize = 32;

/// The `user` object of initData (core.telegram.org/bots/webapps#webappuser).
#[derive(Deserialize)]
struct WebAppUser {
    id: i64,
    first_name: String,
    last_name: Option<String>,
    username: Option<String>,
    language_code: Option<String>,
    #[serde(default)]
    is_premium: bool,
    #[serde(default)]
    is_bot: bool,
    photo_url: Option<String>,
}

/// The fields of an initData string, decoded strictly (a broken `%` escape or bytes that are not
/// UTF-8 make it malformed), in the order received.
pub fn parse(init_data: &str) -> Result<Vec<(String, String)>, InitDataError> {
    if init_data.len() > MAX_INIT_DATA_LEN {
        return Err(InitDataError::Malformed("it is too long"));
    }
    let fields = crate::params::parse_params(init_data)
        .map_err(|_| InitDataError::Malformed("it is not a valid URL-encoded string"))?;
    if fields.len() > MAX_FIELDS {
        return Err(InitDataError::Malformed("too many fields"));
    }
    if fields
        .iter()
        .any(|(k, v)| k.is_empty() || k.len() > 64 || v.len() > MAX_FIELD_LEN)
    {
        return Err(InitDataError::Malformed("a field is too long"));
    }
    for (i, (k, _)) in fields.iter().enumerate() {
        if fields[..i].iter().any(|(p, _)| p == k) {
            return Err(InitDataError::Malformed("a field appears twice"));
        }
    }
    Ok(fields)
}

/// Every field except those in `excluded`, sorted by key, `key=value` joined by `\n`.
pub fn data_check_string(fields: &[(String, String)], excluded: &[&str]) -> String {
    let mut sorted: Vec<&(String, String)> = fields
        .iter()
        .filter(|(k, _)| !excluded.contains(&k.as_str()))
        .collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    sorted
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `HMAC_SHA256(key = "WebAppData", msg = bot_token)`.
fn secret_key(bot_token: &str) -> [u8; 32] {
    hmac_sha256(b"WebAppData", bot_token.as_bytes())
}

/// The `hash` Telegram computes with the bot token. The documentation's "all received fields"
/// includes `signature` when there is one, so only `hash` is left out.
pub fn hash_with_token(fields: &[(String, String)], bot_token: &str) -> String {
    let dcs = data_check_string(fields, &["hash"]);
    hex::encode(hmac_sha256(&secret_key(bot_token), dcs.as_bytes()))
}

/// What Telegram's Ed25519 key signs: `"<bot_id>:WebAppData\n"` and the fields without `hash`
/// and `signature`.
pub fn signature_message(fields: &[(String, String)], bot_id: i64) -> String {
    format!(
        "{bot_id}:WebAppData\n{}",
        data_check_string(fields, &["hash", "signature"])
    )
}

fn get<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Checks initData with the bot token and returns the identity and the raw `hash` bytes, which
/// the caller records to refuse a replay.
pub fn verify_with_token(
    init_data: &str,
    bot_token: &str,
    now: i64,
    freshness: Freshness,
) -> Result<(TelegramIdentity, Vec<u8>), InitDataError> {
    let fields = parse(init_data)?;
    let hash = get(&fields, "hash").ok_or(InitDataError::Missing("hash"))?;
    let received = hex::decode(hash).map_err(|_| InitDataError::Malformed("hash is not hex"))?;
    if received.len() != 32 {
        return Err(InitDataError::Malformed("hash has the wrong length"));
    }
    let dcs = data_check_string(&fields, &["hash"]);
    let expected = hmac_sha256(&secret_key(bot_token), dcs.as_bytes());
    if !constant_time_eq(&expected, &received) {
        return Err(InitDataError::BadSignature);
    }
    let identity = identity(&fields, now, freshness)?;
    Ok((identity, received))
}

/// Checks initData given to bot `bot_id` against Telegram's Ed25519 `public_key` (32 raw
/// bytes), without the bot token. Returns the identity and the raw signature bytes, which the
/// caller records to refuse a replay: `hash` is not covered by the signature, so it cannot serve.
pub fn verify_with_signature(
    init_data: &str,
    bot_id: i64,
    public_key: &[u8],
    now: i64,
    freshness: Freshness,
) -> Result<(TelegramIdentity, Vec<u8>), InitDataError> {
    let fields = parse(init_data)?;
    let encoded = get(&fields, "signature").ok_or(InitDataError::Missing("signature"))?;
    let received = URL_SAFE_NO_PAD
        .decode(encoded)
        .or_else(|_| URL_SAFE.decode(encoded))
        .map_err(|_| InitDataError::Malformed("signature is not base64url"))?;
    if received.len() != 64 {
        return Err(InitDataError::Malformed("signature has the wrong length"));
    }
    let message = signature_message(&fields, bot_id);
    signature::UnparsedPublicKey::new(&signature::ED25519, public_key)
        .verify(message.as_bytes(), &received)
        .map_err(|_| InitDataError::BadSignature)?;
    let identity = identity(&fields, now, freshness)?;
    Ok((identity, received))
}

/// Reads the identity from fields already known to come from Telegram.
fn identity(
    fields: &[(String, String)],
    now: i64,
    freshness: Freshness,
) -> Result<TelegramIdentity, InitDataError> {
    let auth_date: i64 = get(fields, "auth_date")
        .ok_or(InitDataError::Missing("auth_date"))?
        .parse()
        .map_err(|_| InitDataError::Malformed("auth_date is not a number"))?;
    if auth_date > now + freshness.skew_secs {
        return Err(InitDataError::FromTheFuture);
    }
    // Saturating: a signed `auth_date` far in the past (i64::MIN) must be stale, not overflow
    // (a panic, or in a release build a wrap-around that made it fresh).
    if now.saturating_sub(auth_date) > freshness.window_secs {
        return Err(InitDataError::Stale);
    }
    let user = get(fields, "user").ok_or(InitDataError::Missing("user"))?;
    let user: WebAppUser = serde_json::from_str(user)
        .map_err(|_| InitDataError::Malformed("user is not the expected JSON object"))?;
    if user.id <= 0 {
        return Err(InitDataError::Malformed("user.id is not a positive number"));
    }
    if user.is_bot {
        return Err(InitDataError::Malformed("user is a bot"));
    }
    let non_empty = |v: Option<String>| v.filter(|s| !s.is_empty());
    let language_code = non_empty(user.language_code)
        .filter(|l| l.len() <= 35 && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    Ok(TelegramIdentity {
        id: user.id,
        first_name: user.first_name,
        last_name: non_empty(user.last_name),
        username: non_empty(user.username),
        photo_url: non_empty(user.photo_url).filter(|u| u.starts_with("https://")),
        language_code,
        is_premium: user.is_premium,
        phone_number: None,
        method: ProofMethod::MiniApp,
        proven_at: auth_date,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // A vector computed outside this code (Python's hmac and `cryptography`), from the
    // definitions in the Mini App documentation; the Ed25519 key is RFC 8032's test 1 key.
    const TOKEN: &str = "7000000001:AAE-independent_vector_token_xyz01";
    const BOT_ID: i64 = 7000000001;
    const PUBLIC_KEY: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
    const INIT_DATA: &str = "query_id=AAHdF6IQAAAAAN0XohDhrOrc&user=%7B%22id%22%3A279058397%2C%22first_name%22%3A%22Vladislav%22%2C%22last_name%22%3A%22Kibenko%22%2C%22username%22%3A%22vdkfrost%22%2C%22language_code%22%3A%22ru%22%2C%22is_premium%22%3Atrue%2C%22allows_write_to_pm%22%3Atrue%2C%22photo_url%22%3A%22https%3A%5C%2F%5C%2Ft.me%5C%2Fi%5C%2Fuserpic%5C%2F320%5C%2Fa.svg%22%7D&auth_date=1800000000&chat_type=sender&start_param=x%20y&signature=smWuis5VLMCiIZNzv-1nTpdeEWslhZh_0WFaUAtuTuh5Bg7vmv26W1ZNGcECKhNELXFjXaf1MJWeGozfb70CCg&hash=97e7628226b5cb04264c02b442b6f382868641e9219ad74eaba731eb3d91b7b7";
    const AUTH_DATE: i64 = 1_800_000_000;
    const FRESH: Freshness = Freshness {
        window_secs: 300,
        skew_secs: 30,
    };

    fn key() -> Vec<u8> {
        hex::decode(PUBLIC_KEY).unwrap()
    }

    #[test]
    fn the_hmac_vector_verifies() {
        let (id, raw) = verify_with_token(INIT_DATA, TOKEN, AUTH_DATE + 10, FRESH).unwrap();
        assert_eq!(id.id, 279058397);
        assert_eq!(id.first_name, "Vladislav");
        assert_eq!(id.last_name.as_deref(), Some("Kibenko"));
        assert_eq!(id.username.as_deref(), Some("vdkfrost"));
        assert_eq!(id.language_code.as_deref(), Some("ru"));
        assert!(id.is_premium);
        assert_eq!(
            id.photo_url.as_deref(),
            Some("https://t.me/i/userpic/320/a.svg")
        );
        assert_eq!(id.method, ProofMethod::MiniApp);
        assert_eq!(id.proven_at, AUTH_DATE);
        assert_eq!(
            hex::encode(raw),
            "97e7628226b5cb04264c02b442b6f382868641e9219ad74eaba731eb3d91b7b7"
        );
        let fields = parse(INIT_DATA).unwrap();
        assert_eq!(
            hash_with_token(&fields, TOKEN),
            "97e7628226b5cb04264c02b442b6f382868641e9219ad74eaba731eb3d91b7b7"
        );
    }

    #[test]
    fn the_ed25519_vector_verifies_without_the_token() {
        let (id, raw) = verify_with_signature(INIT_DATA, BOT_ID, &key(), AUTH_DATE, FRESH).unwrap();
        assert_eq!(id.id, 279058397);
        assert_eq!(raw.len(), 64);
        // The same data presented as given to another bot does not verify.
        assert_eq!(
            verify_with_signature(INIT_DATA, BOT_ID + 1, &key(), AUTH_DATE, FRESH).unwrap_err(),
            InitDataError::BadSignature
        );
        // Telegram's production key did not sign it.
        let production =
            hex::decode("e7bf03a2fa4602af4580703d88dda5bb59f32ed8b02a56c187fe7d34caed242d")
                .unwrap();
        assert_eq!(
            verify_with_signature(INIT_DATA, BOT_ID, &production, AUTH_DATE, FRESH).unwrap_err(),
            InitDataError::BadSignature
        );
    }

    #[test]
    fn signature_is_part_of_the_hmac_check() {
        // Removing `signature` changes the data-check-string, so the hash no longer matches.
        let without: String = INIT_DATA
            .split('&')
            .filter(|p| !p.starts_with("signature="))
            .collect::<Vec<_>>()
            .join("&");
        assert_eq!(
            verify_with_token(&without, TOKEN, AUTH_DATE, FRESH).unwrap_err(),
            InitDataError::BadSignature
        );
    }

    #[test]
    fn refuses_forged_stale_and_wrong_token() {
        let forged = INIT_DATA.replace("Vladislav", "Mallory");
        assert_eq!(
            verify_with_token(&forged, TOKEN, AUTH_DATE, FRESH).unwrap_err(),
            InitDataError::BadSignature
        );
        assert_eq!(
            verify_with_signature(&forged, BOT_ID, &key(), AUTH_DATE, FRESH).unwrap_err(),
            InitDataError::BadSignature
        );
        assert_eq!(
            verify_with_token(
                INIT_DATA,
                "7000000002:AAE-another_bot_token_xxxxxxx",
                AUTH_DATE,
                FRESH
            )
            .unwrap_err(),
            InitDataError::BadSignature
        );
        assert_eq!(
            verify_with_token(INIT_DATA, TOKEN, AUTH_DATE + 301, FRESH).unwrap_err(),
            InitDataError::Stale
        );
        assert!(verify_with_token(INIT_DATA, TOKEN, AUTH_DATE + 300, FRESH).is_ok());
        assert_eq!(
            verify_with_signature(INIT_DATA, BOT_ID, &key(), AUTH_DATE - 31, FRESH).unwrap_err(),
            InitDataError::FromTheFuture
        );
    }

    #[test]
    fn an_extra_field_is_part_of_the_check() {
        let injected = format!("injected=1&{INIT_DATA}");
        assert_eq!(
            verify_with_token(&injected, TOKEN, AUTH_DATE, FRESH).unwrap_err(),
            InitDataError::BadSignature
        );
        assert_eq!(
            verify_with_signature(&injected, BOT_ID, &key(), AUTH_DATE, FRESH).unwrap_err(),
            InitDataError::BadSignature
        );
    }

    #[test]
    fn malformed_input_is_refused_before_any_check() {
        let long = "x".repeat(MAX_INIT_DATA_LEN + 1);
        for bad in ["user=%ZZ&hash=00", "a=1&a=2", "user=%C3%28", long.as_str()] {
            assert!(
                matches!(
                    verify_with_token(bad, TOKEN, AUTH_DATE, FRESH),
                    Err(InitDataError::Malformed(_))
                ),
                "{bad:.40}"
            );
        }
        assert_eq!(
            verify_with_token("auth_date=1", TOKEN, 1, FRESH).unwrap_err(),
            InitDataError::Missing("hash")
        );
        assert_eq!(
            verify_with_signature("auth_date=1", BOT_ID, &key(), 1, FRESH).unwrap_err(),
            InitDataError::Missing("signature")
        );
    }

    #[test]
    fn a_signed_date_at_the_end_of_the_range_is_stale_not_an_overflow() {
        // The same overflow the widget_fields fuzz target found in the widget check.
        for (auth_date, expected) in [
            (i64::MIN, InitDataError::Stale),
            (i64::MAX, InitDataError::FromTheFuture),
        ] {
            let fields = vec![
                ("auth_date".to_string(), auth_date.to_string()),
                (
                    "user".to_string(),
                    r#"{"id":5,"first_name":"B"}"#.to_string(),
                ),
            ];
            let mut signed = fields.clone();
            signed.push(("hash".into(), hash_with_token(&fields, TOKEN)));
            let raw = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(&signed)
                .finish();
            assert_eq!(
                verify_with_token(&raw, TOKEN, AUTH_DATE, FRESH).unwrap_err(),
                expected
            );
        }
    }

    #[test]
    fn a_signed_bot_user_or_bad_json_is_refused() {
        let fields = vec![
            ("auth_date".to_string(), "100".to_string()),
            (
                "user".to_string(),
                r#"{"id":5,"first_name":"B","is_bot":true}"#.to_string(),
            ),
        ];
        let mut signed = fields.clone();
        signed.push(("hash".into(), hash_with_token(&fields, TOKEN)));
        let raw = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&signed)
            .finish();
        assert_eq!(
            verify_with_token(&raw, TOKEN, 100, FRESH).unwrap_err(),
            InitDataError::Malformed("user is a bot")
        );
        let fields = vec![
            ("auth_date".to_string(), "100".to_string()),
            ("user".to_string(), "not json".to_string()),
        ];
        let mut signed = fields.clone();
        signed.push(("hash".into(), hash_with_token(&fields, TOKEN)));
        let raw = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&signed)
            .finish();
        assert!(matches!(
            verify_with_token(&raw, TOKEN, 100, FRESH).unwrap_err(),
            InitDataError::Malformed(_)
        ));
    }
}
