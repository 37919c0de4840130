//! Bearer secrets: 256-bit random values with a short type prefix, of which only the SHA-256
//! digest is ever stored, compared in constant time.

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What a random value is for; the prefix makes a leaked value recognisable in a scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Code,
    AccessToken,
    RefreshToken,
    Session,
    ClientSecret,
    PendingAuthorization,
    /// RFC 8628 `device_code`.
    DeviceCode,
    /// Ties a bot deep-link login to the browser that started it (a cookie).
    BrowserBinding,
    /// RFC 7592 registration access token: manages one dynamically registered client.
    RegistrationAccessToken,
    /// CIBA Core 1.0 `auth_req_id`.
    BackchannelRequest,
    /// A key of the admin API.
    AdminKey,
    /// A signed-in admin's session on the admin desk (`/admin`), in its own cookie.
    AdminSession,
}

impl TokenKind {
    pub fn prefix(self) -> &'static str {
        match self {
            TokenKind::Code => "tgc_",
            TokenKind::AccessToken => "tgat_",
            TokenKind::RefreshToken => "tgrt_",
            TokenKind::Session => "tgs_",
            TokenKind::ClientSecret => "tgcs_",
            TokenKind::PendingAuthorization => "tgp_",
            TokenKind::DeviceCode => "tgdc_",
            TokenKind::BrowserBinding => "tgbb_",
            TokenKind::RegistrationAccessToken => "tgra_",
            TokenKind::BackchannelRequest => "tgbc_",
            TokenKind::AdminKey => "tgak_",
            TokenKind::AdminSession => "tgas_",
        }
    }
}

/// `n` bytes from the operating system's CSPRNG.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    // The system RNG only fails when the OS cannot give randomness at all; nothing sensible
    // can continue then, and handing out a predictable token would be worse than stopping.
    #[allow(clippy::expect_used)]
    SystemRandom::new()
        .fill(&mut out)
        .expect("the operating system's random number generator failed");
    out
}

/// A new secret of this kind: prefix + base64url(32 random bytes).
pub fn new_token(kind: TokenKind) -> String {
    let bytes: [u8; 32] = random_bytes();
    let mut s = String::with_capacity(kind.prefix().len() + 43);
    s.push_str(kind.prefix());
    URL_SAFE_NO_PAD.encode_string(bytes, &mut s);
    s
}

/// A random identifier that is not a secret (client, grant and admin key ids, jti): 128 bits,
/// base64url, never starting with `-`, so that a command line cannot take it for an option.
pub fn new_id() -> String {
    loop {
        let bytes: [u8; 16] = random_bytes();
        let id = URL_SAFE_NO_PAD.encode(bytes);
        if !id.starts_with('-') {
            return id;
        }
    }
}

pub fn sha256(data: &[u8]) -> Vec<u8> {
    Sha256::digest(data).to_vec()
}

/// HMAC-SHA-256 (RFC 2104) of `message` under `key`: the Telegram checks, CSRF tokens, pairwise
/// subjects and derived secrets all use this one function.
#[allow(clippy::expect_used)]
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    // HMAC takes a key of any length (RFC 2104 §2: longer keys are hashed first), so
    // `new_from_slice` cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// The digest under which a bearer secret is stored and looked up.
pub fn token_hash(token: &str) -> Vec<u8> {
    sha256(token.as_bytes())
}

pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// A string that holds a secret: `Debug` shows only its kind.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretToken(pub String);

impl std::fmt::Debug for SecretToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let prefix = self.0.split('_').next().unwrap_or("");
        write!(f, "SecretToken({prefix}_<redacted>)")
    }
}

/// Reads a 32-byte secret file, creating it (mode 0600, written atomically) on first start.
pub fn load_or_create_secret(path: &std::path::Path) -> anyhow::Result<[u8; 32]> {
    use anyhow::Context;
    match std::fs::read(path) {
        Ok(bytes) => bytes
            .try_into()
            .map_err(|_| anyhow::anyhow!("{} must hold exactly 32 bytes; remove it to make a new one (pairwise subjects will change)", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let secret: [u8; 32] = crate::secrets::random_bytes();
            let dir = path.parent().unwrap_or(std::path::Path::new("."));
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
            let tmp = dir.join(format!(".subject-secret.tmp-{}", std::process::id()));
            {
                use std::io::Write;
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                let mut file = options.open(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
                file.write_all(&secret)?;
                file.sync_all()?;
            }
            // Another node may have won the race: keep whichever file landed first.
            if std::fs::hard_link(&tmp, path).is_err() && !path.exists() {
                anyhow::bail!("cannot create {}", path.display());
            }
            let _ = std::fs::remove_file(&tmp);
            load_or_create_secret(path)
        }
        Err(e) => Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_never_start_with_a_hyphen() {
        // One id in 64 would: ten thousand of them miss a regression with a chance of 1e-68.
        for _ in 0..10_000 {
            let id = new_id();
            assert!(!id.starts_with('-'), "{id}");
            assert_eq!(id.len(), 22);
        }
    }

    #[test]
    fn tokens_are_prefixed_random_and_long() {
        let a = new_token(TokenKind::Code);
        let b = new_token(TokenKind::Code);
        assert!(a.starts_with("tgc_"));
        assert_eq!(a.len(), 4 + 43);
        assert_ne!(a, b);
        assert_eq!(token_hash(&a).len(), 32);
        assert_ne!(token_hash(&a), token_hash(&b));
    }

    #[test]
    fn secret_token_debug_is_redacted() {
        let t = SecretToken(new_token(TokenKind::RefreshToken));
        let shown = format!("{t:?}");
        assert!(!shown.contains(&t.0[6..]), "{shown}");
        assert!(shown.contains("tgrt"));
    }

    #[test]
    fn constant_time_eq_compares_content_and_length() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
