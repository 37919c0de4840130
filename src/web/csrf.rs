//! The token that binds a form to the page that showed it: an HMAC-SHA256 keyed by the raw
//! browser session id, which only this browser's cookie holds, over what the form is for. No
//! other site and no other browser can produce it, so a forged submission is refused.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::secrets::{constant_time_eq, hmac_sha256};

/// What a form answers; each its own message, so a token for one form never passes another.
#[derive(Debug, Clone, Copy)]
pub enum Form<'a> {
    /// The consent page of the pending authorization `req`.
    Consent(&'a str),
    /// The device confirmation page of the pending verification `req`.
    Device(&'a str),
    /// The sign-out confirmation page.
    Logout,
    /// The account page's buttons (Revoke, Sign out, Sign out everywhere).
    Account,
    /// Every form of the admin desk, keyed by the desk session (not the browser session).
    Admin,
}

impl Form<'_> {
    fn message(self) -> String {
        match self {
            Form::Consent(req) => format!("consent:{req}"),
            Form::Device(req) => format!("device:{req}"),
            Form::Logout => "logout".to_owned(),
            Form::Account => "account".to_owned(),
            Form::Admin => "admin".to_owned(),
        }
    }
}

fn tag(session_id: &str, form: Form<'_>) -> [u8; 32] {
    hmac_sha256(session_id.as_bytes(), form.message().as_bytes())
}

/// The token a page puts in its form.
pub fn token(session_id: &str, form: Form<'_>) -> String {
    URL_SAFE_NO_PAD.encode(tag(session_id, form))
}

/// Whether `presented` is the token of `form` for this session, compared in constant time.
pub fn verify(session_id: &str, form: Form<'_>, presented: &str) -> bool {
    match URL_SAFE_NO_PAD.decode(presented) {
        Ok(presented) => constant_time_eq(&tag(session_id, form), &presented),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_passes_only_its_own_session_and_form() {
        let t = token("sess_a", Form::Consent("req_1"));
        assert!(verify("sess_a", Form::Consent("req_1"), &t));
        assert!(!verify("sess_b", Form::Consent("req_1"), &t));
        assert!(!verify("sess_a", Form::Consent("req_2"), &t));
        assert!(!verify("sess_a", Form::Device("req_1"), &t));
        assert!(!verify("sess_a", Form::Logout, &t));
        assert!(!verify("sess_a", Form::Account, &t));
        assert!(!verify("sess_a", Form::Admin, &t));
        assert!(!verify("sess_a", Form::Consent("req_1"), ""));
        assert!(!verify("sess_a", Form::Consent("req_1"), "not base64!"));
    }
}
