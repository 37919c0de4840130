//! Login Widget fields (`telegram::widget::verify`) as a query string: first as received,
//! then signed with the bot token, so that the checks after the signature (id, auth_date,
//! names, photo_url) see fuzzed values too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use telegram_oidc::params::parse_params;
use telegram_oidc::telegram::widget::{self, Freshness, WidgetError};

const TOKEN: &str = "123456:FUZZ-token_for_widget_checks_0123";
const NOW: i64 = 1_800_000_000;
const FRESH: Freshness = Freshness {
    window_secs: 300,
    skew_secs: 30,
};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(fields) = parse_params(text) else {
        return;
    };
    // As received: without the token, nothing gets past the signature.
    if let Ok((identity, _)) = widget::verify(&fields, TOKEN, NOW, FRESH) {
        panic!("unsigned fields verified: {identity:?}");
    }
    // As Telegram would sign them.
    let mut signed: Vec<(String, String)> =
        fields.into_iter().filter(|(k, _)| k != "hash").collect();
    let hash = widget::sign(&signed, TOKEN);
    signed.push(("hash".into(), hash));
    match widget::verify(&signed, TOKEN, NOW, FRESH) {
        Ok((identity, raw)) => {
            assert!(identity.id > 0);
            assert_eq!(raw.len(), 32);
            assert!(identity.proven_at <= NOW + FRESH.skew_secs);
            assert!(identity.proven_at >= NOW - FRESH.window_secs);
            assert!(
                identity
                    .photo_url
                    .as_deref()
                    .is_none_or(|u| u.starts_with("https://"))
            );
        }
        Err(e) => assert_ne!(
            e,
            WidgetError::BadSignature,
            "our own signature was refused"
        ),
    }
});
