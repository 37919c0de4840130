//! The Telegram webhook's update JSON (`telegram::bot::Update`): deserialized as the webhook
//! and the poller do, its error classified as the webhook does (data or syntax), and the
//! parts the bot chat reads (the `/start` payload, the button data, the identity of `from`)
//! taken out; an update written back reads the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use telegram_oidc::telegram::bot::Update;
use telegram_oidc::telegram::deeplink::{identity_of, is_valid_payload};

const NOW: i64 = 1_800_000_000;

fuzz_target!(|data: &[u8]| {
    let update: Update = match serde_json::from_slice(data) {
        Ok(update) => update,
        Err(e) => {
            let _ = (e.is_data(), e.is_syntax(), e.is_eof(), e.to_string());
            return;
        }
    };
    let again: Update =
        serde_json::from_str(&serde_json::to_string(&update).expect("serializable"))
            .expect("what we wrote reads back");
    assert_eq!(again, update);
    if let Some(message) = &update.message {
        let text = message.text.as_deref().unwrap_or("").trim();
        if let Some(rest) = text.strip_prefix("/start") {
            let payload = rest.trim();
            if is_valid_payload(payload) {
                assert!(payload.len() <= 64 && payload.is_ascii());
            }
        }
        if let Some(from) = &message.from {
            let identity = identity_of(from, NOW);
            assert_eq!(identity.id, from.id);
            assert!(identity.username.as_deref().is_none_or(|u| !u.is_empty()));
        }
    }
    if let Some(query) = &update.callback_query {
        let identity = identity_of(&query.from, NOW);
        assert_eq!(identity.proven_at, NOW);
        let _ = query.data.as_deref().map(|d| d.split_once(':'));
    }
});
