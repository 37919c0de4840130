//! Login confirmed in the bot chat: a `t.me/<bot>?start=<payload>` link opens the bot, Telegram
//! sends us `/start <payload>` with the user's profile, the bot asks "Log in to <app>?" with
//! three numbers (the one the waiting page shows among them), Deny and "This wasn't me", and
//! only the right number, pressed by the user who sent `/start`, proves the identity. The identity comes from the update's `from`, which is trustworthy because the
//! update arrived over the authenticated webhook or through `getUpdates` with our token.
//!
//! The payload is the bearer secret (single use, stored hashed); buttons and the waiting
//! browser name the login by a separate short id, so the payload never travels twice.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::bot::User;
use super::{ProofMethod, TelegramIdentity};
use crate::secrets::random_bytes;

/// Telegram's limit on a start parameter (characters of `A-Za-z0-9_-`).
pub const MAX_PAYLOAD_LEN: usize = 64;
/// How long the waiting browser has to collect an answer given in the chat.
pub const COLLECT_SECS: i64 = 120;

/// A new start payload: 32 random bytes, base64url (43 characters).
pub fn new_payload() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<32>())
}

pub fn is_valid_payload(payload: &str) -> bool {
    !payload.is_empty()
        && payload.len() <= MAX_PAYLOAD_LEN
        && payload
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A random number from 10 to 99.
fn two_digits() -> i64 {
    loop {
        // 180 = 2 * 90: rejecting the rest keeps every number equally likely.
        let byte = random_bytes::<1>()[0];
        if byte < 180 {
            return 10 + i64::from(byte % 90);
        }
    }
}

/// The number a waiting page shows and the user must press in the chat (number matching).
pub fn new_match_code() -> i64 {
    two_digits()
}

/// The three numbers the bot offers: `code` and two other random ones, in ascending order, so
/// the place of the right one tells nothing.
pub fn offered_numbers(code: i64) -> [i64; 3] {
    let mut numbers = [code, code, code];
    for i in 1..3 {
        while numbers[..i].contains(&numbers[i]) {
            numbers[i] = two_digits();
        }
    }
    numbers.sort_unstable();
    numbers
}

pub fn link(bot_username: &str, payload: &str) -> String {
    format!("https://t.me/{bot_username}?start={payload}")
}

/// The identity an Approve press proves.
pub fn identity_of(user: &User, now: i64) -> TelegramIdentity {
    let non_empty = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
    TelegramIdentity {
        id: user.id,
        first_name: user.first_name.clone(),
        last_name: non_empty(&user.last_name),
        username: non_empty(&user.username),
        photo_url: None,
        language_code: non_empty(&user.language_code),
        is_premium: user.is_premium.unwrap_or(false),
        phone_number: None,
        method: ProofMethod::BotDeepLink,
        proven_at: now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_different_two_digit_numbers_with_the_code_among_them() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..500 {
            let code = new_match_code();
            assert!((10..=99).contains(&code));
            seen.insert(code);
            let offered = offered_numbers(code);
            assert!(offered.contains(&code));
            assert!(
                offered[0] < offered[1] && offered[1] < offered[2],
                "{offered:?}"
            );
            assert!(offered.iter().all(|n| (10..=99).contains(n)));
        }
        assert!(seen.len() > 60, "numbers are spread: {}", seen.len());
    }

    #[test]
    fn payloads_fit_telegrams_start_parameter() {
        let p = new_payload();
        assert_eq!(p.len(), 43);
        assert!(is_valid_payload(&p));
        assert_ne!(p, new_payload());
        assert!(!is_valid_payload(""));
        assert!(!is_valid_payload(&"a".repeat(65)));
        assert!(is_valid_payload(&"a".repeat(64)));
        assert!(!is_valid_payload("abc def"));
        assert!(!is_valid_payload("abc+def"));
    }
}
