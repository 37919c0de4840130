//! Strict `application/x-www-form-urlencoded` decoding, for request parameters and for
//! Telegram's signed field lists alike.

use crate::error::OAuthError;

/// Parameters exactly as sent, in order, duplicates kept (RFC 6749 §3.1 forbids repeating one).
/// Strict where browsers' parsers are lenient: a broken `%` escape or bytes that are not UTF-8
/// make the whole request malformed instead of being passed on half-decoded.
pub fn parse_params(raw: &str) -> Result<Vec<(String, String)>, OAuthError> {
    let mut out = Vec::new();
    for pair in raw.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        out.push((strict_decode(k)?, strict_decode(v)?));
    }
    Ok(out)
}

fn strict_decode(s: &str) -> Result<String, OAuthError> {
    let malformed = || OAuthError::invalid_request("malformed percent-encoding in the parameters");
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).ok_or_else(malformed)?;
                // Two hex digits exactly: `from_str_radix` alone would also take "%+1".
                if !hex.iter().all(u8::is_ascii_hexdigit) {
                    return Err(malformed());
                }
                let hex = std::str::from_utf8(hex).map_err(|_| malformed())?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| malformed())?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| malformed())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::collection::vec;
    use proptest::prelude::*;

    /// Names and values with what needs escaping: `&`, `=`, `+`, `%`, spaces, NUL, non-ASCII.
    fn text() -> impl Strategy<Value = String> {
        prop_oneof![any::<String>(), "[a-z&=+% \\x00é€😀]{0,8}"]
    }

    proptest! {
        #[test]
        fn what_serde_urlencoded_writes_reads_back_unchanged(
            pairs in vec((text(), text()), 0..8)
        ) {
            let encoded = serde_urlencoded::to_string(&pairs).unwrap();
            prop_assert_eq!(parse_params(&encoded).unwrap(), pairs);
        }

        #[test]
        fn where_it_accepts_it_agrees_with_the_lenient_parser(raw in "[a-z0-9&=+%é]{0,24}") {
            if let Ok(strict) = parse_params(&raw) {
                let lenient: Vec<(String, String)> = url::form_urlencoded::parse(raw.as_bytes())
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect();
                prop_assert_eq!(strict, lenient);
            }
        }

        #[test]
        fn a_broken_escape_is_refused(
            before in "[a-z=&]{0,6}",
            broken in prop_oneof!["%", "%[0-9a-f]", "%[g-z][0-9a-f]", "%[0-9a-f][g-z]", "%[89a-f][0-9a-f]"],
            after in "([g-z=&][a-z=&]{0,5})?",
        ) {
            // What follows cannot complete the escape; `%80`-`%ff` alone are not UTF-8.
            let raw = format!("{before}{broken}{after}");
            prop_assert!(parse_params(&raw).is_err(), "{}", raw);
        }
    }

    #[test]
    fn escapes_and_plus_decode() {
        assert_eq!(
            parse_params("a=b+c%26d&&e&%C3%A9=%00").unwrap(),
            vec![
                ("a".to_owned(), "b c&d".to_owned()),
                ("e".to_owned(), String::new()),
                ("é".to_owned(), "\0".to_owned()),
            ]
        );
        // A sign is not a hex digit, though `u8::from_str_radix` reads "+1" as 1.
        assert!(parse_params("a=%+1").is_err());
        assert!(parse_params("%+f=b").is_err());
    }
}
