//! The Login Widget check (core.telegram.org/widgets/login): every received field but `hash`,
//! sorted by key, `key=value` joined by `\n`, HMAC-SHA-256 under SHA-256(bot token).

use super::{ProofMethod, TelegramIdentity};
use crate::secrets::{constant_time_eq, hmac_sha256, sha256};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WidgetError {
    #[error("the Telegram login data is incomplete: `{0}` is missing")]
    Missing(&'static str),
    #[error("the Telegram login data is malformed: {0}")]
    Malformed(&'static str),
    #[error("the Telegram login data was not signed by this bot")]
    BadSignature,
    #[error("the Telegram login is too old; please log in again")]
    Stale,
    #[error("the Telegram login is dated in the future; check the server clock")]
    FromTheFuture,
}

/// The freshness rule: `now - auth_date <= window`, and no more than `skew` in the future.
#[derive(Debug, Clone, Copy)]
pub struct Freshness {
    pub window_secs: i64,
    pub skew_secs: i64,
}

/// The longest field value we look at; Telegram's are far shorter.
const MAX_FIELD_LEN: usize = 2048;
const MAX_FIELDS: usize = 32;

/// `HMAC_SHA256(key = SHA256(bot_token), msg = data_check_string)`.
fn widget_hash(bot_token: &str, data_check_string: &str) -> [u8; 32] {
    hmac_sha256(&sha256(bot_token.as_bytes()), data_check_string.as_bytes())
}

fn data_check_string(fields: &[(String, String)]) -> Result<String, WidgetError> {
    let mut sorted: Vec<&(String, String)> = fields.iter().filter(|(k, _)| k != "hash").collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    if sorted.windows(2).any(|w| w[0].0 == w[1].0) {
        return Err(WidgetError::Malformed("a field appears twice"));
    }
    Ok(sorted
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("\n"))
}

/// The `hash` Telegram computes for these fields (used by the dev emulator and the tests).
pub fn sign(fields: &[(String, String)], bot_token: &str) -> String {
    let dcs = data_check_string(fields).unwrap_or_default();
    hex::encode(widget_hash(bot_token, &dcs))
}

/// Verifies widget fields (exactly as received, without any parameter of our own) and returns
/// the identity and the raw `hash` bytes, which the caller records to refuse a replay.
pub fn verify(
    fields: &[(String, String)],
    bot_token: &str,
    now: i64,
    freshness: Freshness,
) -> Result<(TelegramIdentity, Vec<u8>), WidgetError> {
    if fields.len() > MAX_FIELDS {
        return Err(WidgetError::Malformed("too many fields"));
    }
    if fields
        .iter()
        .any(|(k, v)| v.len() > MAX_FIELD_LEN || k.len() > 64)
    {
        return Err(WidgetError::Malformed("a field is too long"));
    }
    let get = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    if fields.iter().filter(|(k, _)| k == "hash").count() > 1 {
        return Err(WidgetError::Malformed("a field appears twice"));
    }
    let hash = get("hash").ok_or(WidgetError::Missing("hash"))?;
    let received = hex::decode(hash).map_err(|_| WidgetError::Malformed("hash is not hex"))?;
    if received.len() != 32 {
        return Err(WidgetError::Malformed("hash has the wrong length"));
    }
    let dcs = data_check_string(fields)?;
    let expected = widget_hash(bot_token, &dcs);
    if !constant_time_eq(&expected, &received) {
        return Err(WidgetError::BadSignature);
    }
    // Only now, with the data known to come from Telegram, are the fields interpreted.
    let id: i64 = get("id")
        .ok_or(WidgetError::Missing("id"))?
        .parse()
        .map_err(|_| WidgetError::Malformed("id is not a number"))?;
    if id <= 0 {
        return Err(WidgetError::Malformed("id is not a positive number"));
    }
    let auth_date: i64 = get("auth_date")
        .ok_or(WidgetError::Missing("auth_date"))?
        .parse()
        .map_err(|_| WidgetError::Malformed("auth_date is not a number"))?;
    if auth_date > now + freshness.skew_secs {
        return Err(WidgetError::FromTheFuture);
    }
    // Saturating: a signed `auth_date` far in the past (i64::MIN) must be stale, not overflow
    // (a panic, or in a release build a wrap-around that made it fresh).
    if now.saturating_sub(auth_date) > freshness.window_secs {
        return Err(WidgetError::Stale);
    }
    let first_name = get("first_name").ok_or(WidgetError::Missing("first_name"))?;
    let non_empty = |v: Option<&str>| v.filter(|s| !s.is_empty()).map(str::to_owned);
    let identity = TelegramIdentity {
        id,
        first_name: first_name.to_owned(),
        last_name: non_empty(get("last_name")),
        username: non_empty(get("username")),
        photo_url: non_empty(get("photo_url")).filter(|u| u.starts_with("https://")),
        language_code: None,
        is_premium: false,
        phone_number: None,
        method: ProofMethod::TelegramWidget,
        proven_at: auth_date,
    };
    Ok((identity, received))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "123456:TEST-token_for_widget_checks_0123";
    const FRESH: Freshness = Freshness {
        window_secs: 300,
        skew_secs: 30,
    };

    fn signed(now: i64, extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut fields: Vec<(String, String)> = vec![
            ("id".into(), "42".into()),
            ("first_name".into(), "Ada".into()),
            ("username".into(), "ada".into()),
            ("auth_date".into(), now.to_string()),
        ];
        fields.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let hash = sign(&fields, TOKEN);
        fields.push(("hash".into(), hash));
        fields
    }

    #[test]
    fn accepts_what_telegram_signed() {
        let now = 1_800_000_000;
        let (id, raw) = verify(&signed(now, &[]), TOKEN, now, FRESH).unwrap();
        assert_eq!(id.id, 42);
        assert_eq!(id.username.as_deref(), Some("ada"));
        assert_eq!(raw.len(), 32);
    }

    #[test]
    fn the_hash_matches_an_independent_computation() {
        // HMAC-SHA256(key = SHA256(token), "auth_date=1\nfirst_name=A\nid=7"), computed by hand
        // from the definition, not by `sign`.
        use aws_lc_rs::{digest, hmac};
        let key = digest::digest(&digest::SHA256, TOKEN.as_bytes());
        let expected = hex::encode(
            hmac::sign(
                &hmac::Key::new(hmac::HMAC_SHA256, key.as_ref()),
                b"auth_date=1\nfirst_name=A\nid=7",
            )
            .as_ref(),
        );
        let fields = vec![
            ("id".to_string(), "7".to_string()),
            ("first_name".to_string(), "A".to_string()),
            ("auth_date".to_string(), "1".to_string()),
        ];
        assert_eq!(sign(&fields, TOKEN), expected);
    }

    #[test]
    fn refuses_forgeries_and_stale_data() {
        let now = 1_800_000_000;
        let mut forged = signed(now, &[]);
        forged[1].1 = "Eve".into();
        assert_eq!(
            verify(&forged, TOKEN, now, FRESH).unwrap_err(),
            WidgetError::BadSignature
        );
        assert_eq!(
            verify(
                &signed(now, &[]),
                "999:another_bot_token_xxxxxxxxxxxx",
                now,
                FRESH
            )
            .unwrap_err(),
            WidgetError::BadSignature
        );
        assert_eq!(
            verify(&signed(now - 301, &[]), TOKEN, now, FRESH).unwrap_err(),
            WidgetError::Stale
        );
        assert!(verify(&signed(now - 300, &[]), TOKEN, now, FRESH).is_ok());
        assert_eq!(
            verify(&signed(now + 31, &[]), TOKEN, now, FRESH).unwrap_err(),
            WidgetError::FromTheFuture
        );
        let mut no_hash = signed(now, &[]);
        no_hash.pop();
        assert_eq!(
            verify(&no_hash, TOKEN, now, FRESH).unwrap_err(),
            WidgetError::Missing("hash")
        );
    }

    #[test]
    fn a_signed_date_at_the_end_of_the_range_is_stale_not_an_overflow() {
        // Found by the widget_fields fuzz target.
        let now = 1_800_000_000;
        let mut fields = signed(now, &[]);
        fields.retain(|(k, _)| k != "hash" && k != "auth_date");
        fields.push(("auth_date".into(), i64::MIN.to_string()));
        let hash = sign(&fields, TOKEN);
        fields.push(("hash".into(), hash));
        assert_eq!(
            verify(&fields, TOKEN, now, FRESH).unwrap_err(),
            WidgetError::Stale
        );
        fields.retain(|(k, _)| k != "hash" && k != "auth_date");
        fields.push(("auth_date".into(), i64::MAX.to_string()));
        let hash = sign(&fields, TOKEN);
        fields.push(("hash".into(), hash));
        assert_eq!(
            verify(&fields, TOKEN, now, FRESH).unwrap_err(),
            WidgetError::FromTheFuture
        );
    }

    #[test]
    fn an_extra_field_is_part_of_the_check() {
        let now = 1_800_000_000;
        let mut fields = signed(now, &[("photo_url", "https://t.me/i/userpic/320/a.jpg")]);
        assert!(verify(&fields, TOKEN, now, FRESH).is_ok());
        fields.insert(0, ("injected".into(), "1".into()));
        assert_eq!(
            verify(&fields, TOKEN, now, FRESH).unwrap_err(),
            WidgetError::BadSignature
        );
    }
}
