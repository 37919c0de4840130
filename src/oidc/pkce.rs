//! Proof Key for Code Exchange (RFC 7636), S256 only: `plain` gives no protection against a
//! code stolen from the redirect and is refused.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::secrets::{constant_time_eq, sha256};

/// RFC 7636 §4.1: 43 to 128 characters of `[A-Z] [a-z] [0-9] - . _ ~`.
pub fn is_valid_verifier(v: &str) -> bool {
    (43..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// An S256 challenge is base64url(SHA-256): exactly 43 characters.
pub fn is_valid_s256_challenge(c: &str) -> bool {
    c.len() == 43
        && c.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

pub fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(sha256(verifier.as_bytes()))
}

pub fn verify(challenge: &str, verifier: &str) -> bool {
    is_valid_verifier(verifier) && constant_time_eq(s256(verifier).as_bytes(), challenge.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7636_appendix_b() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        assert_eq!(
            s256(verifier),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        assert!(verify(
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            verifier
        ));
        assert!(!verify(
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            "short"
        ));
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        /// RFC 7636 §4.1's alphabet and lengths.
        const VERIFIER: &str = "[A-Za-z0-9._~-]{43,128}";

        proptest! {
            #[test]
            fn a_verifier_matches_its_own_challenge(v in VERIFIER) {
                prop_assert!(is_valid_verifier(&v));
                prop_assert!(is_valid_s256_challenge(&s256(&v)));
                prop_assert!(verify(&s256(&v), &v));
            }

            #[test]
            fn only_the_right_verifier_matches(v in VERIFIER, other in any::<String>()) {
                prop_assert_eq!(verify(&s256(&v), &other), other == v);
            }

            #[test]
            fn another_valid_verifier_never_matches(v in VERIFIER, w in VERIFIER) {
                prop_assume!(v != w);
                prop_assert!(!verify(&s256(&v), &w));
            }

            #[test]
            fn a_malformed_verifier_never_matches_even_its_own_hash(
                v in prop_oneof![
                    "[A-Za-z0-9._~-]{0,42}",
                    "[A-Za-z0-9._~-]{129,160}",
                    "[A-Za-z0-9._~-]{20}[^A-Za-z0-9._~-][A-Za-z0-9._~-]{30}",
                ]
            ) {
                prop_assert!(!verify(&s256(&v), &v));
            }

            #[test]
            fn no_challenge_but_the_hash_matches(v in VERIFIER, c in any::<String>()) {
                prop_assert_eq!(verify(&c, &v), c == s256(&v));
            }

            #[test]
            fn a_challenge_in_another_encoding_does_not_match(v in VERIFIER) {
                // plain, padded base64url, standard base64: none is S256's encoding.
                use base64::engine::general_purpose::{STANDARD, URL_SAFE};
                let digest = sha256(v.as_bytes());
                prop_assert!(!verify(&v, &v));
                prop_assert!(!verify(&URL_SAFE.encode(&digest), &v));
                let standard = STANDARD.encode(&digest);
                prop_assert_eq!(verify(&standard, &v), standard == s256(&v));
            }
        }
    }
}
