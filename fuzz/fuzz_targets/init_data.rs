//! Mini App initData (`telegram::webapp`): parsed and checked as received, with the bot token
//! and with Telegram's Ed25519 key; then re-encoded and signed with the bot token, so the
//! checks after the signature (auth_date, the `user` JSON) see fuzzed values too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use telegram_oidc::telegram::webapp::{self, InitDataError};
use telegram_oidc::telegram::widget::Freshness;

const TOKEN: &str = "7000000001:AAE-fuzz_vector_token_xyz0123456";
const BOT_ID: i64 = 7_000_000_001;
/// RFC 8032 §7.1 test 1 public key.
const PUBLIC_KEY: [u8; 32] = [
    0xd7, 0x5a, 0x98, 0x01, 0x82, 0xb1, 0x0a, 0xb7, 0xd5, 0x4b, 0xfe, 0xd3, 0xc9, 0x64, 0x07, 0x3a,
    0x0e, 0xe1, 0x72, 0xf3, 0xda, 0xa6, 0x23, 0x25, 0xaf, 0x02, 0x1a, 0x68, 0xf7, 0x07, 0x51, 0x1a,
];
const NOW: i64 = 1_800_000_000;
const FRESH: Freshness = Freshness {
    window_secs: 300,
    skew_secs: 30,
};

fn encode(fields: &[(String, String)]) -> String {
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in fields {
        out.append_pair(k, v);
    }
    out.finish()
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    assert!(webapp::verify_with_token(text, TOKEN, NOW, FRESH).is_err());
    assert!(webapp::verify_with_signature(text, BOT_ID, &PUBLIC_KEY, NOW, FRESH).is_err());
    let Ok(fields) = webapp::parse(text) else {
        return;
    };
    // What parse accepted survives encoding and parsing again unchanged.
    let encoded = encode(&fields);
    if encoded.len() <= webapp::MAX_INIT_DATA_LEN {
        assert_eq!(webapp::parse(&encoded).as_ref(), Ok(&fields));
    }
    let mut signed: Vec<(String, String)> =
        fields.into_iter().filter(|(k, _)| k != "hash").collect();
    let hash = webapp::hash_with_token(&signed, TOKEN);
    signed.push(("hash".into(), hash));
    let signed = encode(&signed);
    match webapp::verify_with_token(&signed, TOKEN, NOW, FRESH) {
        Ok((identity, raw)) => {
            assert!(identity.id > 0);
            assert_eq!(raw.len(), 32);
            assert!(identity.proven_at <= NOW + FRESH.skew_secs);
            assert!(identity.proven_at >= NOW - FRESH.window_secs);
        }
        Err(e) => assert_ne!(
            e,
            InitDataError::BadSignature,
            "our own signature was refused"
        ),
    }
});
