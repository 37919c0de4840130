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

/// Parameters whose values are identifiers, URLs, tokens or codes: no control character at all
/// (RFC 6749 appendix A: VSCHAR and NQCHAR), not even whitespace.
const NO_CONTROLS: &[&str] = &[
    "client_id",
    "client_secret",
    "client_assertion",
    "client_assertion_type",
    "redirect_uri",
    "post_logout_redirect_uri",
    "response_type",
    "response_mode",
    "grant_type",
    "scope",
    "state",
    "nonce",
    "prompt",
    "max_age",
    "code",
    "code_verifier",
    "code_challenge",
    "code_challenge_method",
    "refresh_token",
    "token",
    "token_type_hint",
    "device_code",
    "user_code",
    "id_token_hint",
    "access_token",
    "audience",
    "resource",
    "requested_token_type",
    "subject_token_type",
    "auth_req_id",
    "login_hint",
    "login_hint_token",
    "requested_expiry",
    "client_notification_token",
];

/// The parameters of an OAuth or OpenID request, refused at the edge when they hold what no
/// parameter can: a NUL byte anywhere, a control character in a name, a control character
/// other than tab, line feed and carriage return in any value, and any control character in
/// the value of an identifier, URL, token or code. (Telegram's own signed fields are not
/// checked here: Telegram vouched for them, and the stores keep any text.)
pub fn check_request_params(params: &[(String, String)]) -> Result<(), OAuthError> {
    for (name, value) in params {
        if name.chars().any(char::is_control) {
            return Err(OAuthError::invalid_request(
                "a parameter name holds a control character",
            ));
        }
        if value.contains('\0') {
            return Err(OAuthError::invalid_request(format!(
                "the parameter {name} holds a NUL byte"
            )));
        }
        let strict = NO_CONTROLS.contains(&name.as_str());
        if value
            .chars()
            .any(|c| c.is_control() && (strict || !matches!(c, '\t' | '\n' | '\r')))
        {
            return Err(OAuthError::invalid_request(format!(
                "the parameter {name} holds a control character"
            )));
        }
    }
    Ok(())
}

/// [`parse_params`], then [`check_request_params`]: for OAuth and OpenID requests.
pub fn parse_request_params(raw: &str) -> Result<Vec<(String, String)>, OAuthError> {
    let params = parse_params(raw)?;
    check_request_params(&params)?;
    Ok(params)
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
