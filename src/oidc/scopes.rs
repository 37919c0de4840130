//! Scopes this provider knows and the claims each one releases.

use serde_json::{Map, Value, json};

use crate::store::UserRecord;

pub const OPENID: &str = "openid";
pub const PROFILE: &str = "profile";
pub const TELEGRAM: &str = "telegram";
pub const OFFLINE_ACCESS: &str = "offline_access";
pub const PHONE: &str = "phone";
pub const EMAIL: &str = "email";
/// The configured groups (team chats) the user is in: the `groups` claim.
pub const GROUPS: &str = "groups";

pub const SUPPORTED: [&str; 7] = [
    OPENID,
    PROFILE,
    EMAIL,
    TELEGRAM,
    OFFLINE_ACCESS,
    PHONE,
    GROUPS,
];

pub const CLAIMS_SUPPORTED: [&str; 26] = [
    "email",
    "email_verified",
    "iss",
    "sub",
    "aud",
    "azp",
    "exp",
    "iat",
    "auth_time",
    "nonce",
    "at_hash",
    "amr",
    "acr",
    "name",
    "given_name",
    "family_name",
    "preferred_username",
    "picture",
    "locale",
    "updated_at",
    "telegram_id",
    "telegram_username",
    "sid",
    "phone_number",
    "phone_number_verified",
    "groups",
];

/// A scope string split into its distinct values, in the order given.
pub fn parse(scope: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in scope.split(' ').filter(|s| !s.is_empty()) {
        if !out.iter().any(|o| o == s) {
            out.push(s.to_owned());
        }
    }
    out
}

pub fn join(scopes: &[String]) -> String {
    scopes.join(" ")
}

pub fn contains(scope: &str, wanted: &str) -> bool {
    scope.split(' ').any(|s| s == wanted)
}

/// Whether every scope of `wanted` is in `granted`.
pub fn is_subset(wanted: &str, granted: &str) -> bool {
    wanted
        .split(' ')
        .filter(|s| !s.is_empty())
        .all(|w| contains(granted, w))
}

/// What a person reads on the consent page for each scope.
pub fn describe(scope: &str) -> Option<&'static str> {
    match scope {
        OPENID => Some("Confirm that you are you, with your Telegram account"),
        PROFILE => Some("Your name, username and profile photo"),
        TELEGRAM => Some("Your numeric Telegram id and username"),
        OFFLINE_ACCESS => Some("Stay signed in when you are not using it"),
        EMAIL => Some("An email address made for this app (Telegram has no email)"),
        PHONE => Some("Your phone number, if you shared it with Telegram"),
        GROUPS => Some("Which of this service's team chats you are in"),
        _ => None,
    }
}

/// The user claims the granted scopes release (OpenID Connect Core §5.4).
pub fn user_claims(scope: &str, user: &UserRecord) -> Map<String, Value> {
    let mut claims = Map::new();
    if contains(scope, PROFILE) {
        let name = match &user.last_name {
            Some(last) => format!("{} {}", user.first_name, last),
            None => user.first_name.clone(),
        };
        claims.insert("name".into(), json!(name));
        claims.insert("given_name".into(), json!(user.first_name));
        if let Some(last) = &user.last_name {
            claims.insert("family_name".into(), json!(last));
        }
        if let Some(username) = &user.username {
            claims.insert("preferred_username".into(), json!(username));
        }
        if let Some(photo) = &user.photo_url {
            claims.insert("picture".into(), json!(photo));
        }
        if let Some(lang) = &user.language_code {
            claims.insert("locale".into(), json!(lang));
        }
        claims.insert("updated_at".into(), json!(user.updated_at));
    }
    if contains(scope, TELEGRAM) {
        claims.insert("telegram_id".into(), json!(user.telegram_id));
        if let Some(username) = &user.username {
            claims.insert("telegram_username".into(), json!(username));
        }
    }
    // OpenID Connect Core §5.4. Telegram shares the number its account was registered with,
    // which Telegram itself verified.
    if contains(scope, PHONE)
        && let Some(phone) = &user.phone_number
    {
        claims.insert("phone_number".into(), json!(phone));
        claims.insert("phone_number_verified".into(), json!(true));
    }
    // The names of the configured groups the user was last found in (computed at login and
    // at every refresh); an empty array when none.
    if contains(scope, GROUPS) {
        claims.insert(
            "groups".into(),
            json!(user.groups.clone().unwrap_or_default()),
        );
    }
    claims
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_drops_duplicates_and_blanks() {
        assert_eq!(parse("openid  profile openid"), vec!["openid", "profile"]);
        assert!(is_subset("openid profile", "profile openid telegram"));
        assert!(!is_subset("openid offline_access", "openid profile"));
    }

    mod properties {
        use super::super::*;
        use proptest::collection::vec;
        use proptest::prelude::*;

        /// A scope-token of RFC 6749 §3.3 (no space, `"` or backslash), some of them known scopes
        /// so that repeats happen.
        fn token() -> impl Strategy<Value = String> {
            prop_oneof![
                proptest::sample::select(&SUPPORTED[..]).prop_map(str::to_owned),
                "[!#-\\[\\]-~]{1,12}",
            ]
        }

        /// The tokens joined by runs of one to three spaces, with spaces before and after.
        fn spaced(tokens: &[String], gaps: &[usize]) -> String {
            let mut out = " ".repeat(gaps.first().copied().unwrap_or(0));
            for (i, t) in tokens.iter().enumerate() {
                out.push_str(t);
                out.push_str(&" ".repeat(gaps.get(i + 1).copied().unwrap_or(1).max(1)));
            }
            out
        }

        proptest! {
            #[test]
            fn parse_keeps_each_distinct_token_once_in_order(
                tokens in vec(token(), 0..12),
                gaps in vec(0usize..4, 13),
            ) {
                let parsed = parse(&spaced(&tokens, &gaps));
                let mut expected: Vec<String> = Vec::new();
                for t in &tokens {
                    if !expected.contains(t) {
                        expected.push(t.clone());
                    }
                }
                prop_assert_eq!(&parsed, &expected);
                prop_assert_eq!(parse(&join(&parsed)), parsed);
            }

            #[test]
            fn parse_never_yields_an_empty_or_spaced_value(s in any::<String>()) {
                let parsed = parse(&s);
                for t in &parsed {
                    prop_assert!(!t.is_empty() && !t.contains(' '));
                    prop_assert!(contains(&s, t));
                }
                prop_assert!(is_subset(&s, &join(&parsed)));
                prop_assert!(is_subset(&join(&parsed), &s));
            }

            #[test]
            fn a_subset_is_a_subset_and_an_extra_scope_is_not(
                all in vec(token(), 1..10),
                picks in vec(any::<bool>(), 10),
                extra in "[a-z]{13,16}",
            ) {
                let granted = join(&all);
                let wanted: Vec<String> = all
                    .iter()
                    .zip(&picks)
                    .filter(|(_, keep)| **keep)
                    .map(|(t, _)| t.clone())
                    .collect();
                prop_assert!(is_subset(&join(&wanted), &granted));
                // Longer than any token here, so it cannot be one of them.
                let mut more = wanted.clone();
                more.push(extra.clone());
                prop_assert!(!is_subset(&join(&more), &granted));
                prop_assert!(!contains(&granted, &extra));
            }
        }
    }
}
