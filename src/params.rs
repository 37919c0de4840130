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
