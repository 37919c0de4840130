//! Signing keys: stored as one JSON file per key in a keys directory, published as a JWKS,
//! and used to mint and verify compact JWS (JWT) tokens.
//!
//! Supported algorithms: RS256 (RSA 2048, PKCS#1 v1.5 with SHA-256), ES256 (P-256, fixed-length
//! `r||s` signatures) and EdDSA (Ed25519). All cryptography is done with `aws-lc-rs`.
//!
//! Key file format (`<kid>.json`, mode 0600):
//! `{"kid": "...", "alg": "RS256", "created_at": 1234, "private_key_pkcs8": "<base64 standard>"}`.
//! The kid of a generated key is its RFC 7638 JWK thumbprint (SHA-256, base64url).
//!
//! Exactly one key per algorithm is active: the newest one (largest `created_at`, ties broken by
//! kid so that every process sharing a directory agrees). A key is retired at the `created_at` of
//! the next newer key of the same algorithm.

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::SystemTime;

use aws_lc_rs::digest;
use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, ParsedPublicKey, RsaKeyPair,
};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Longest compact JWS `verify` accepts, in bytes. Our own tokens are a few KiB at most.
const MAX_TOKEN_LEN: usize = 64 * 1024;
/// Largest key file `open`/`reload` reads, in bytes (an RSA 8192 key is ~6.5 KiB of base64).
const MAX_KEY_FILE_LEN: u64 = 64 * 1024;
/// Largest RSA signature we produce (8192-bit modulus).
const MAX_RSA_SIG_LEN: usize = 1024;
/// Longest kid accepted from a key file.
const MAX_KID_LEN: usize = 128;

/// A JWS signing algorithm supported by the provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SigningAlg {
    /// RSASSA-PKCS1-v1_5 with SHA-256, 2048-bit keys.
    RS256,
    /// ECDSA on P-256 with SHA-256, fixed-length `r||s` signatures.
    ES256,
    /// EdDSA with Ed25519.
    EdDSA,
}

impl SigningAlg {
    /// Every supported algorithm, in the order used for listing.
    pub const ALL: [SigningAlg; 3] = [SigningAlg::RS256, SigningAlg::ES256, SigningAlg::EdDSA];

    /// The JOSE `alg` name.
    pub fn as_str(&self) -> &'static str {
        match self {
            SigningAlg::RS256 => "RS256",
            SigningAlg::ES256 => "ES256",
            SigningAlg::EdDSA => "EdDSA",
        }
    }

    /// Parses a JOSE `alg` name (exact, case-sensitive).
    pub fn parse(s: &str) -> Option<SigningAlg> {
        match s {
            "RS256" => Some(SigningAlg::RS256),
            "ES256" => Some(SigningAlg::ES256),
            "EdDSA" => Some(SigningAlg::EdDSA),
            _ => None,
        }
    }

    /// Position in [`SigningAlg::ALL`].
    const fn index(self) -> usize {
        match self {
            SigningAlg::RS256 => 0,
            SigningAlg::ES256 => 1,
            SigningAlg::EdDSA => 2,
        }
    }
}

impl fmt::Display for SigningAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Public description of one signing key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyInfo {
    pub kid: String,
    pub alg: SigningAlg,
    /// Unix seconds.
    pub created_at: i64,
    /// True for the newest key of its algorithm, the one `sign` uses.
    pub active: bool,
    /// Unix seconds: the `created_at` of the next newer key of the same algorithm.
    pub retired_at: Option<i64>,
    /// Unix seconds: a rotated key published before it signs starts signing then. Until
    /// then it is in the JWKS, so apps that cache the key set already hold it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_before: Option<i64>,
}

/// Errors from the key store.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Reading or writing the keys directory failed.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A `.json` file in the keys directory is not a valid key file.
    #[error(
        "malformed key file {}: {reason} (fix or remove the file; only *.json files are read)",
        path.display()
    )]
    MalformedKeyFile { path: PathBuf, reason: String },
    /// The keys directory lost every key of an algorithm since it was last loaded.
    #[error(
        "keys directory {} has no {alg} key file; restore it or rotate a new {alg} key (the keys already loaded stay in use)",
        dir.display()
    )]
    MissingKey { dir: PathBuf, alg: SigningAlg },
    /// Key generation, parsing or signing failed inside the crypto library.
    #[error("cryptographic operation failed: {0}")]
    Crypto(&'static str),
    /// `sign` was given claims that are not a JSON object.
    #[error("JWT claims must be a JSON object")]
    ClaimsNotObject,
    /// `verify` rejected the token.
    #[error("invalid token: {0}")]
    InvalidToken(&'static str),
}

fn io_err(path: &Path, source: io::Error) -> KeyError {
    KeyError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn malformed(path: &Path, reason: impl Into<String>) -> KeyError {
    KeyError::MalformedKeyFile {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Overwrites secret bytes before they are freed (best effort).
fn wipe(bytes: &mut [u8]) {
    bytes.fill(0);
    std::hint::black_box(bytes);
}

/// On-disk representation of a key. Deliberately not `Debug`.
#[derive(Serialize, Deserialize)]
struct KeyFile {
    kid: String,
    alg: SigningAlg,
    created_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    not_before: Option<i64>,
    private_key_pkcs8: String,
}

impl Drop for KeyFile {
    fn drop(&mut self) {
        // Wipe the base64 private key before the allocation is freed.
        let s = std::mem::take(&mut self.private_key_pkcs8);
        let mut bytes = s.into_bytes();
        wipe(&mut bytes);
    }
}

enum Signer {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

/// A parsed key: kept in memory so that signing does not re-parse anything.
struct LoadedKey {
    kid: String,
    alg: SigningAlg,
    created_at: i64,
    not_before: Option<i64>,
    signer: Signer,
    verifier: ParsedPublicKey,
    /// Full public JWK (kid, kty, use, alg and the key members).
    jwk: Value,
}

impl LoadedKey {
    /// Signs `msg` into `buf`, returning the signature bytes.
    fn sign_into<'b>(
        &self,
        msg: &[u8],
        buf: &'b mut [u8; MAX_RSA_SIG_LEN],
    ) -> Result<&'b [u8], KeyError> {
        let len = match &self.signer {
            Signer::Rsa(kp) => {
                let len = kp.public_modulus_len();
                let sig = buf
                    .get_mut(..len)
                    .ok_or(KeyError::Crypto("RSA key is larger than 8192 bits"))?;
                kp.sign(&signature::RSA_PKCS1_SHA256, &SystemRandom::new(), msg, sig)
                    .map_err(|_| KeyError::Crypto("RSA signing failed"))?;
                len
            }
            Signer::Ec(kp) => {
                let sig = kp
                    .sign(&SystemRandom::new(), msg)
                    .map_err(|_| KeyError::Crypto("ECDSA signing failed"))?;
                copy_sig(sig.as_ref(), buf)?
            }
            Signer::Ed(kp) => {
                let sig = kp
                    .try_sign(msg)
                    .map_err(|_| KeyError::Crypto("Ed25519 signing failed"))?;
                copy_sig(sig.as_ref(), buf)?
            }
        };
        buf.get(..len)
            .ok_or(KeyError::Crypto("signature length out of range"))
    }
}

fn copy_sig(sig: &[u8], buf: &mut [u8]) -> Result<usize, KeyError> {
    buf.get_mut(..sig.len())
        .ok_or(KeyError::Crypto("signature length out of range"))?
        .copy_from_slice(sig);
    Ok(sig.len())
}

/// Parsed key material, before it has a kid and a creation time.
struct KeyMaterial {
    signer: Signer,
    verifier: ParsedPublicKey,
    /// Public JWK members (kty, crv, n/e or x/y), without kid/use/alg.
    public_jwk: serde_json::Map<String, Value>,
    /// RFC 7638 thumbprint, base64url.
    thumbprint: String,
}

fn thumbprint(canonical_json: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, canonical_json.as_bytes()))
}

impl KeyMaterial {
    /// Parses a PKCS#8 DER private key of the given algorithm. Errors are human-readable reasons.
    fn from_pkcs8(alg: SigningAlg, der: &[u8]) -> Result<KeyMaterial, String> {
        let mut public_jwk = serde_json::Map::new();
        match alg {
            SigningAlg::RS256 => {
                let kp = RsaKeyPair::from_pkcs8(der)
                    .map_err(|e| format!("private_key_pkcs8 is not an RSA PKCS#8 key ({e})"))?;
                if kp.public_modulus_len() < 256 {
                    return Err("RSA key is smaller than 2048 bits".to_owned());
                }
                let pk = kp.public_key();
                let n = URL_SAFE_NO_PAD.encode(pk.modulus().big_endian_without_leading_zero());
                let e = URL_SAFE_NO_PAD.encode(pk.exponent().big_endian_without_leading_zero());
                let verifier =
                    ParsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, pk.as_ref())
                        .map_err(|e| format!("RSA public key rejected ({e})"))?;
                let thumbprint = thumbprint(&format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#));
                public_jwk.insert("kty".into(), "RSA".into());
                public_jwk.insert("n".into(), n.into());
                public_jwk.insert("e".into(), e.into());
                Ok(KeyMaterial {
                    signer: Signer::Rsa(kp),
                    verifier,
                    public_jwk,
                    thumbprint,
                })
            }
            SigningAlg::ES256 => {
                let kp = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, der)
                    .map_err(|e| format!("private_key_pkcs8 is not a P-256 PKCS#8 key ({e})"))?;
                let point = kp.public_key().as_ref();
                let coords = match point {
                    [0x04, rest @ ..] if rest.len() == 64 => rest,
                    _ => return Err("P-256 public key is not an uncompressed point".to_owned()),
                };
                let (x, y) = coords.split_at(32);
                let (x, y) = (URL_SAFE_NO_PAD.encode(x), URL_SAFE_NO_PAD.encode(y));
                let verifier = ParsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                    .map_err(|e| format!("P-256 public key rejected ({e})"))?;
                let thumbprint = thumbprint(&format!(
                    r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#
                ));
                public_jwk.insert("kty".into(), "EC".into());
                public_jwk.insert("crv".into(), "P-256".into());
                public_jwk.insert("x".into(), x.into());
                public_jwk.insert("y".into(), y.into());
                Ok(KeyMaterial {
                    signer: Signer::Ec(kp),
                    verifier,
                    public_jwk,
                    thumbprint,
                })
            }
            SigningAlg::EdDSA => {
                let kp = Ed25519KeyPair::from_pkcs8(der)
                    .map_err(|e| format!("private_key_pkcs8 is not an Ed25519 PKCS#8 key ({e})"))?;
                let public = kp.public_key().as_ref();
                let x = URL_SAFE_NO_PAD.encode(public);
                let verifier = ParsedPublicKey::new(&signature::ED25519, public)
                    .map_err(|e| format!("Ed25519 public key rejected ({e})"))?;
                let thumbprint =
                    thumbprint(&format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#));
                public_jwk.insert("kty".into(), "OKP".into());
                public_jwk.insert("crv".into(), "Ed25519".into());
                public_jwk.insert("x".into(), x.into());
                Ok(KeyMaterial {
                    signer: Signer::Ed(kp),
                    verifier,
                    public_jwk,
                    thumbprint,
                })
            }
        }
    }

    fn into_loaded(
        self,
        kid: String,
        alg: SigningAlg,
        created_at: i64,
        not_before: Option<i64>,
    ) -> LoadedKey {
        let mut jwk = self.public_jwk;
        jwk.insert("kid".into(), kid.clone().into());
        jwk.insert("use".into(), "sig".into());
        jwk.insert("alg".into(), alg.as_str().into());
        LoadedKey {
            kid,
            alg,
            created_at,
            not_before,
            signer: self.signer,
            verifier: self.verifier,
            jwk: Value::Object(jwk),
        }
    }
}

/// Generates a fresh private key as PKCS#8 DER.
fn generate_pkcs8(alg: SigningAlg) -> Result<Vec<u8>, KeyError> {
    let rng = SystemRandom::new();
    let der = match alg {
        SigningAlg::RS256 => {
            let kp = RsaKeyPair::generate(KeySize::Rsa2048)
                .map_err(|_| KeyError::Crypto("RSA key generation failed"))?;
            let der = kp
                .as_der()
                .map_err(|_| KeyError::Crypto("RSA key serialization failed"))?;
            AsRef::<[u8]>::as_ref(&*der).to_vec()
        }
        SigningAlg::ES256 => {
            EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                .map_err(|_| KeyError::Crypto("P-256 key generation failed"))?
                .as_ref()
                .to_vec()
        }
        SigningAlg::EdDSA => Ed25519KeyPair::generate_pkcs8v1(&rng)
            .map_err(|_| KeyError::Crypto("Ed25519 key generation failed"))?
            .as_ref()
            .to_vec(),
    };
    Ok(der)
}

fn valid_kid(kid: &str) -> bool {
    !kid.is_empty()
        && kid.len() <= MAX_KID_LEN
        && kid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// What `reload` compares to decide whether anything changed on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileStamp {
    name: String,
    len: u64,
    modified: Option<SystemTime>,
    mode: u32,
}

#[cfg(unix)]
fn file_mode(meta: &fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    meta.permissions().mode() & 0o7777
}

#[cfg(not(unix))]
fn file_mode(_meta: &fs::Metadata) -> u32 {
    0
}

/// Lists candidate key files (`*.json`, not hidden), sorted by name.
fn list_dir(dir: &Path) -> Result<Vec<FileStamp>, KeyError> {
    let mut stamps = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| io_err(dir, e))? {
        let entry = entry.map_err(|e| io_err(dir, e))?;
        let Ok(name) = entry.file_name().into_string() else {
            continue; // not UTF-8: cannot be one of our files
        };
        if name.starts_with('.') || !name.ends_with(".json") {
            continue; // temp files, editor backups, anything else
        }
        let path = entry.path();
        let meta = match fs::metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue, // removed meanwhile
            Err(e) => return Err(io_err(&path, e)),
        };
        if !meta.is_file() {
            continue;
        }
        stamps.push(FileStamp {
            name,
            len: meta.len(),
            modified: meta.modified().ok(),
            mode: file_mode(&meta),
        });
    }
    stamps.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(stamps)
}

/// Reads and parses one key file. `Ok(None)` if it disappeared since it was listed.
fn read_key_file(path: &Path, stamp: &FileStamp) -> Result<Option<LoadedKey>, KeyError> {
    if stamp.len > MAX_KEY_FILE_LEN {
        return Err(malformed(path, "file is too large to be a key file"));
    }
    let mut bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(path, e)),
    };
    let parsed = serde_json::from_slice::<KeyFile>(&bytes);
    wipe(&mut bytes);
    let file = parsed.map_err(|e| {
        malformed(
            path,
            format!(
                "expected {{\"kid\", \"alg\", \"created_at\", \"private_key_pkcs8\"}} JSON ({e})"
            ),
        )
    })?;
    if !valid_kid(&file.kid) {
        return Err(malformed(
            path,
            "kid must be 1 to 128 characters of A-Z, a-z, 0-9, '-' or '_'",
        ));
    }
    if stamp.name.strip_suffix(".json") != Some(file.kid.as_str()) {
        return Err(malformed(
            path,
            format!(
                "file name must be the kid followed by .json ({}.json)",
                file.kid
            ),
        ));
    }
    if stamp.mode & 0o077 != 0 {
        tracing::warn!(
            path = %path.display(),
            "key file is accessible by group or others; run chmod 600 on it"
        );
    }
    let mut der = STANDARD
        .decode(file.private_key_pkcs8.as_bytes())
        .map_err(|_| malformed(path, "private_key_pkcs8 is not valid standard base64"))?;
    let material = KeyMaterial::from_pkcs8(file.alg, &der);
    wipe(&mut der);
    let material = material.map_err(|reason| malformed(path, reason))?;
    Ok(Some(material.into_loaded(
        file.kid.clone(),
        file.alg,
        file.created_at,
        file.not_before,
    )))
}

/// Loads every listed key file, reusing already parsed keys whose file is unchanged.
fn load_keys(
    dir: &Path,
    listing: &[FileStamp],
    previous: Option<&State>,
) -> Result<Vec<Arc<LoadedKey>>, KeyError> {
    let mut keys = Vec::with_capacity(listing.len());
    for stamp in listing {
        if let Some(prev) = previous {
            let kid = stamp.name.strip_suffix(".json").unwrap_or_default();
            if let Some(key) = prev.by_kid.get(kid)
                && prev.listing.iter().any(|s| s == stamp)
            {
                keys.push(Arc::clone(key));
                continue;
            }
        }
        let path = dir.join(&stamp.name);
        if let Some(key) = read_key_file(&path, stamp)? {
            keys.push(Arc::new(key));
        }
    }
    Ok(keys)
}

/// Writes a key file atomically (temp file + fsync + rename), mode 0600.
fn write_key_file(dir: &Path, file: &KeyFile) -> Result<PathBuf, KeyError> {
    let final_path = dir.join(format!("{}.json", file.kid));
    let mut suffix = [0u8; 8];
    aws_lc_rs::rand::fill(&mut suffix)
        .map_err(|_| KeyError::Crypto("random number generation failed"))?;
    let tmp_path = dir.join(format!(
        ".{}.json.tmp-{}",
        file.kid,
        URL_SAFE_NO_PAD.encode(suffix)
    ));
    let mut contents = serde_json::to_vec_pretty(file)
        .map_err(|_| KeyError::Crypto("key serialization failed"))?;
    contents.push(b'\n');
    let result = write_new_file(&tmp_path, &contents)
        .and_then(|()| fs::rename(&tmp_path, &final_path).map_err(|e| io_err(&final_path, e)));
    wipe(&mut contents);
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp_path);
        return Err(e);
    }
    // Make the rename durable; failure here is not worth failing the rotation for.
    if let Err(e) = fs::File::open(dir).and_then(|d| d.sync_all()) {
        tracing::debug!(dir = %dir.display(), error = %e, "could not fsync keys directory");
    }
    Ok(final_path)
}

fn write_new_file(path: &Path, contents: &[u8]) -> Result<(), KeyError> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut f = options.open(path).map_err(|e| io_err(path, e))?;
    f.write_all(contents).map_err(|e| io_err(path, e))?;
    f.sync_all().map_err(|e| io_err(path, e))
}

/// Generates a key, writes its file and returns it parsed.
fn create_key(
    dir: &Path,
    alg: SigningAlg,
    created_at: i64,
    not_before: Option<i64>,
) -> Result<LoadedKey, KeyError> {
    let mut der = generate_pkcs8(alg)?;
    let material = KeyMaterial::from_pkcs8(alg, &der);
    let encoded = STANDARD.encode(&der);
    wipe(&mut der);
    let material = material.map_err(|_| KeyError::Crypto("generated key could not be parsed"))?;
    let kid = material.thumbprint.clone();
    let file = KeyFile {
        kid: kid.clone(),
        alg,
        created_at,
        not_before,
        private_key_pkcs8: encoded,
    };
    let path = write_key_file(dir, &file)?;
    tracing::info!(%kid, %alg, created_at, path = %path.display(), "generated signing key");
    Ok(material.into_loaded(kid, alg, created_at, not_before))
}

/// An immutable snapshot of the loaded keys.
struct State {
    /// Sorted by (alg, created_at, kid).
    keys: Vec<Arc<LoadedKey>>,
    /// Parallel to `keys`.
    infos: Vec<KeyInfo>,
    by_kid: HashMap<String, Arc<LoadedKey>>,
    /// Active key per alg, indexed by `SigningAlg::index`.
    active: [Arc<LoadedKey>; 3],
    /// Directory listing the keys were loaded from.
    listing: Vec<FileStamp>,
    /// The earliest `not_before` still in the future when the snapshot was built: at that
    /// time the snapshot must be built again, even if no file changed.
    next_activation: Option<i64>,
}

impl State {
    /// Builds a snapshot; `Err(alg)` if some algorithm has no key.
    fn build(
        mut keys: Vec<Arc<LoadedKey>>,
        listing: Vec<FileStamp>,
        now: i64,
    ) -> Result<State, SigningAlg> {
        keys.sort_by(|a, b| {
            (a.alg.index(), a.created_at, &a.kid).cmp(&(b.alg.index(), b.created_at, &b.kid))
        });
        let signs = |k: &LoadedKey| k.not_before.is_none_or(|t| t <= now);
        let newest = |alg: SigningAlg| {
            keys.iter()
                .rev()
                .find(|k| k.alg == alg && signs(k))
                .or_else(|| keys.iter().find(|k| k.alg == alg))
                .map(Arc::clone)
                .ok_or(alg)
        };
        let active = [
            newest(SigningAlg::RS256)?,
            newest(SigningAlg::ES256)?,
            newest(SigningAlg::EdDSA)?,
        ];
        let infos = keys
            .iter()
            .enumerate()
            .map(|(i, key)| {
                let active = Arc::ptr_eq(key, &active[key.alg.index()]);
                // Retired when the next newer key of its algorithm took over signing.
                let successor = keys[i + 1..]
                    .iter()
                    .filter(|next| next.alg == key.alg && signs(next))
                    .map(|next| next.not_before.unwrap_or(next.created_at))
                    .next();
                KeyInfo {
                    kid: key.kid.clone(),
                    alg: key.alg,
                    created_at: key.created_at,
                    active,
                    retired_at: if active || !signs(key) {
                        None
                    } else {
                        successor
                    },
                    not_before: key.not_before,
                }
            })
            .collect();
        let next_activation = keys
            .iter()
            .filter_map(|k| k.not_before)
            .filter(|t| *t > now)
            .min();
        let by_kid = keys
            .iter()
            .map(|k| (k.kid.clone(), Arc::clone(k)))
            .collect();
        Ok(State {
            keys,
            infos,
            by_kid,
            active,
            listing,
            next_activation,
        })
    }
}

/// The signing keys of the provider, loaded from a keys directory.
///
/// Cheap to share: wrap it in an `Arc`. Readers (`sign`, `verify`, `jwks`, `list`) never wait for
/// key generation or disk I/O; `rotate` and `reload` swap in a new snapshot atomically.
pub struct KeyStore {
    dir: PathBuf,
    state: RwLock<Arc<State>>,
    /// Serializes `rotate` and `reload` so that neither loses the other's update.
    update: Mutex<()>,
}

impl fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyStore")
            .field("dir", &self.dir)
            .field("keys", &self.snapshot().infos)
            .finish_non_exhaustive()
    }
}

impl KeyStore {
    /// Opens (creating with mode 0700 if missing) the directory; loads every key file; if an alg
    /// has no key, generates one (so RS256, ES256 and EdDSA each always have an active key).
    /// `now` is unix seconds.
    pub fn open(dir: &Path, now: i64) -> Result<KeyStore, KeyError> {
        ensure_dir(dir)?;
        let listing = list_dir(dir)?;
        let mut keys = load_keys(dir, &listing, None)?;
        for alg in SigningAlg::ALL {
            if !keys.iter().any(|k| k.alg == alg) {
                keys.push(Arc::new(create_key(dir, alg, now, None)?));
            }
        }
        // `listing` predates the generated files: the first `reload` re-reads the directory once
        // and finds nothing new.
        let state = State::build(keys, listing, now).map_err(|alg| KeyError::MissingKey {
            dir: dir.to_path_buf(),
            alg,
        })?;
        tracing::info!(dir = %dir.display(), keys = state.keys.len(), "loaded signing keys");
        Ok(KeyStore {
            dir: dir.to_path_buf(),
            state: RwLock::new(Arc::new(state)),
            update: Mutex::new(()),
        })
    }

    /// Generates a new key for `alg`, writes it (atomically: temp file + rename, file mode
    /// 0600), makes it active.
    ///
    /// The new key's `created_at` is `now`, or one second after the newest known key of `alg` if
    /// that is not earlier than `now`, so that the new key is always the newest.
    pub fn rotate(&self, alg: SigningAlg, now: i64) -> Result<KeyInfo, KeyError> {
        self.rotate_after(alg, now, 0)
    }

    /// As [`KeyStore::rotate`], but the new key is published at once and signs only
    /// `activate_in` seconds later, when every node has read it and every app that caches the
    /// JWKS holds it. 0 means at once.
    pub fn rotate_after(
        &self,
        alg: SigningAlg,
        now: i64,
        activate_in: i64,
    ) -> Result<KeyInfo, KeyError> {
        let _update = self.update.lock().unwrap_or_else(PoisonError::into_inner);
        let current = self.snapshot();
        let newest = current.active[alg.index()].created_at;
        let created_at = if now > newest {
            now
        } else {
            newest.saturating_add(1)
        };
        let not_before = (activate_in > 0).then(|| created_at.saturating_add(activate_in));
        let key = Arc::new(create_key(&self.dir, alg, created_at, not_before)?);
        let kid = key.kid.clone();
        let mut keys = current.keys.clone();
        keys.push(key);
        let state = State::build(keys, current.listing.clone(), now).map_err(|alg| {
            KeyError::MissingKey {
                dir: self.dir.clone(),
                alg,
            }
        })?;
        let info = state
            .infos
            .iter()
            .find(|i| i.kid == kid)
            .cloned()
            .ok_or(KeyError::Crypto("rotated key missing from key set"))?;
        *self.state.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(state);
        tracing::info!(%kid, %alg, created_at, "rotated signing key");
        Ok(info)
    }

    /// Every key, sorted by alg (RS256, ES256, EdDSA) then `created_at`.
    pub fn list(&self) -> Vec<KeyInfo> {
        self.snapshot().infos.clone()
    }

    /// Re-reads the directory, so that a rotation done by another process is picked up without
    /// a restart. Cheap when nothing changed (one directory listing plus a `stat` per key file);
    /// unchanged key files are not re-parsed. Returns true if the set of keys changed.
    ///
    /// On error (unreadable directory, malformed key file, or an algorithm left without any key)
    /// the keys already loaded stay in use.
    pub fn reload(&self) -> Result<bool, KeyError> {
        self.reload_at(crate::clock::system_now())
    }

    /// As [`KeyStore::reload`] at `now`; also makes a published key sign once its
    /// `not_before` has come.
    pub fn reload_at(&self, now: i64) -> Result<bool, KeyError> {
        let _update = self.update.lock().unwrap_or_else(PoisonError::into_inner);
        let listing = list_dir(&self.dir)?;
        let current = self.snapshot();
        let activation_due = current.next_activation.is_some_and(|t| t <= now);
        if listing == current.listing && !activation_due {
            return Ok(false);
        }
        let keys = load_keys(&self.dir, &listing, Some(&current))?;
        let state = State::build(keys, listing, now).map_err(|alg| KeyError::MissingKey {
            dir: self.dir.clone(),
            alg,
        })?;
        let changed = state.infos != current.infos;
        *self.state.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(state);
        if changed {
            tracing::info!(dir = %self.dir.display(), "signing keys changed on disk; reloaded");
        }
        Ok(changed)
    }

    /// Public keys that must be published at `now`: every active key, plus each retired key
    /// while `now < retired_at + retention_secs`. Returns the JWKS document `{"keys":[...]}`,
    /// active keys first (RS256, ES256, EdDSA), then retired keys newest first.
    pub fn jwks(&self, now: i64, retention_secs: i64) -> serde_json::Value {
        let state = self.snapshot();
        let mut published: Vec<(&KeyInfo, &LoadedKey)> = state
            .infos
            .iter()
            .zip(state.keys.iter())
            .filter(|(info, _)| {
                // Active, waiting to sign (published ahead), or retired within retention.
                info.active
                    || info.retired_at.is_none()
                    || info
                        .retired_at
                        .is_some_and(|retired| now < retired.saturating_add(retention_secs))
            })
            .map(|(info, key)| (info, key.as_ref()))
            .collect();
        published.sort_by_key(|(info, _)| {
            let active_order = if info.active { info.alg.index() } else { 0 };
            (
                !info.active,
                active_order,
                std::cmp::Reverse(info.created_at),
                info.alg.index(),
            )
        });
        let keys: Vec<Value> = published.into_iter().map(|(_, k)| k.jwk.clone()).collect();
        json!({ "keys": keys })
    }

    /// Signs `claims` (a JSON object) with the active key of `alg`. Header:
    /// `{"alg","typ","kid"}` with `typ` as given (e.g. "JWT", "at+jwt", "logout+jwt").
    pub fn sign(
        &self,
        alg: SigningAlg,
        typ: &str,
        claims: &serde_json::Value,
    ) -> Result<String, KeyError> {
        if !claims.is_object() {
            return Err(KeyError::ClaimsNotObject);
        }
        let key = Arc::clone(&self.snapshot().active[alg.index()]);
        let typ = serde_json::to_string(typ)
            .map_err(|_| KeyError::Crypto("JWS header serialization failed"))?;
        // kid is restricted to base64url characters, so it needs no escaping.
        let header = format!(
            r#"{{"alg":"{}","typ":{},"kid":"{}"}}"#,
            alg.as_str(),
            typ,
            key.kid
        );
        let payload = serde_json::to_vec(claims).map_err(|_| KeyError::ClaimsNotObject)?;
        let mut token = String::with_capacity((header.len() + payload.len() + 512) * 4 / 3 + 4);
        URL_SAFE_NO_PAD.encode_string(header.as_bytes(), &mut token);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&payload, &mut token);
        let mut buf = [0u8; MAX_RSA_SIG_LEN];
        let signature = key.sign_into(token.as_bytes(), &mut buf)?;
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(signature, &mut token);
        Ok(token)
    }

    /// Verifies a compact JWS signed by one of our keys (looked up by the header kid; the header
    /// alg must equal that key's alg). Returns the header and the claims. Does NOT check
    /// exp/iss/aud.
    ///
    /// Rejects: anything that is not three non-empty base64url parts; a header or payload that
    /// is not a JSON object; a missing, unknown or mismatched `alg` (including "none"); a
    /// missing or unknown `kid`; a `crit` header; tokens longer than 64 KiB; bad signatures.
    pub fn verify(&self, token: &str) -> Result<(serde_json::Value, serde_json::Value), KeyError> {
        use KeyError::InvalidToken as Invalid;
        if token.len() > MAX_TOKEN_LEN {
            return Err(Invalid("token is too long"));
        }
        let (signing_input, sig_b64) = token.rsplit_once('.').ok_or(Invalid(
            "not a compact JWS (expected three '.'-separated parts)",
        ))?;
        let (header_b64, payload_b64) = signing_input.split_once('.').ok_or(Invalid(
            "not a compact JWS (expected three '.'-separated parts)",
        ))?;
        if payload_b64.contains('.') {
            return Err(Invalid(
                "not a compact JWS (expected three '.'-separated parts)",
            ));
        }
        if header_b64.is_empty() || payload_b64.is_empty() || sig_b64.is_empty() {
            return Err(Invalid("empty JWS part"));
        }
        let header_bytes = URL_SAFE_NO_PAD
            .decode(header_b64)
            .map_err(|_| Invalid("header is not base64url"))?;
        let header: Value =
            serde_json::from_slice(&header_bytes).map_err(|_| Invalid("header is not JSON"))?;
        let header_obj = header
            .as_object()
            .ok_or(Invalid("header is not a JSON object"))?;
        let alg = header_obj
            .get("alg")
            .and_then(Value::as_str)
            .ok_or(Invalid("header has no alg"))?;
        if alg.eq_ignore_ascii_case("none") {
            return Err(Invalid("alg \"none\" is not accepted"));
        }
        if header_obj.contains_key("crit") {
            return Err(Invalid("unsupported crit header"));
        }
        let kid = header_obj
            .get("kid")
            .and_then(Value::as_str)
            .ok_or(Invalid("header has no kid"))?;
        let key = self
            .snapshot()
            .by_kid
            .get(kid)
            .map(Arc::clone)
            .ok_or(Invalid("unknown kid"))?;
        if key.alg.as_str() != alg {
            return Err(Invalid("header alg does not match the key's alg"));
        }
        let sig = URL_SAFE_NO_PAD
            .decode(sig_b64)
            .map_err(|_| Invalid("signature is not base64url"))?;
        key.verifier
            .verify_sig(signing_input.as_bytes(), &sig)
            .map_err(|_| Invalid("signature verification failed"))?;
        let payload = URL_SAFE_NO_PAD
            .decode(payload_b64)
            .map_err(|_| Invalid("payload is not base64url"))?;
        let claims: Value =
            serde_json::from_slice(&payload).map_err(|_| Invalid("payload is not JSON"))?;
        if !claims.is_object() {
            return Err(Invalid("claims are not a JSON object"));
        }
        Ok((header, claims))
    }

    fn snapshot(&self) -> Arc<State> {
        Arc::clone(&self.state.read().unwrap_or_else(PoisonError::into_inner))
    }
}

/// Creates the keys directory (mode 0700) if missing; warns if it is open to others.
fn ensure_dir(dir: &Path) -> Result<(), KeyError> {
    match fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => {
            if file_mode(&meta) & 0o077 != 0 {
                tracing::warn!(
                    dir = %dir.display(),
                    "keys directory is accessible by group or others; run chmod 700 on it"
                );
            }
            Ok(())
        }
        Ok(_) => Err(io_err(
            dir,
            io::Error::new(
                io::ErrorKind::AlreadyExists,
                "exists but is not a directory",
            ),
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let mut builder = fs::DirBuilder::new();
            builder.recursive(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::DirBuilderExt as _;
                builder.mode(0o700);
            }
            builder.create(dir).map_err(|e| io_err(dir, e))
        }
        Err(e) => Err(io_err(dir, e)),
    }
}

/// The OIDC `at_hash` / `c_hash`: left half of the hash of the ASCII value, base64url without
/// padding. SHA-256 for RS256 and ES256, SHA-512 for EdDSA (Ed25519).
pub fn half_hash(alg: SigningAlg, value: &str) -> String {
    let algorithm = match alg {
        SigningAlg::RS256 | SigningAlg::ES256 => &digest::SHA256,
        SigningAlg::EdDSA => &digest::SHA512,
    };
    let hash = digest::digest(algorithm, value.as_bytes());
    let bytes = hash.as_ref();
    let (left, _) = bytes.split_at(bytes.len() / 2);
    URL_SAFE_NO_PAD.encode(left)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::signature::{RsaPublicKeyComponents, UnparsedPublicKey};
    use std::os::unix::fs::PermissionsExt as _;

    const T0: i64 = 1_700_000_000;

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    fn unb64(s: &str) -> Vec<u8> {
        URL_SAFE_NO_PAD.decode(s).unwrap()
    }

    fn open_tmp() -> (tempfile::TempDir, PathBuf, KeyStore) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("keys");
        let store = KeyStore::open(&dir, T0).unwrap();
        (tmp, dir, store)
    }

    fn active_kid(store: &KeyStore, alg: SigningAlg) -> String {
        let active: Vec<KeyInfo> = store
            .list()
            .into_iter()
            .filter(|k| k.alg == alg && k.active)
            .collect();
        assert_eq!(active.len(), 1, "exactly one active {alg} key");
        active[0].kid.clone()
    }

    fn json_files(dir: &Path) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "json") && p.is_file())
            .filter(|p| !p.file_name().unwrap().to_str().unwrap().starts_with('.'))
            .collect();
        v.sort();
        v
    }

    /// Signs an arbitrary header with the key `kid` (to build validly signed hostile tokens).
    fn sign_raw(store: &KeyStore, kid: &str, header: &Value, claims: &Value) -> String {
        let key = Arc::clone(store.snapshot().by_kid.get(kid).unwrap());
        let mut token = format!(
            "{}.{}",
            b64(&serde_json::to_vec(header).unwrap()),
            b64(&serde_json::to_vec(claims).unwrap())
        );
        let mut buf = [0u8; MAX_RSA_SIG_LEN];
        let sig = key.sign_into(token.as_bytes(), &mut buf).unwrap();
        token.push('.');
        token.push_str(&b64(sig));
        token
    }

    fn invalid_reason(result: Result<(Value, Value), KeyError>) -> &'static str {
        match result {
            Err(KeyError::InvalidToken(reason)) => reason,
            other => panic!("expected InvalidToken, got {other:?}"),
        }
    }

    fn claims() -> Value {
        json!({"iss": "https://op.example", "sub": "42", "aud": "client", "exp": T0 + 300})
    }

    #[test]
    fn signing_alg_names() {
        for alg in SigningAlg::ALL {
            assert_eq!(SigningAlg::parse(alg.as_str()), Some(alg));
            assert_eq!(alg.to_string(), alg.as_str());
            let ser = serde_json::to_string(&alg).unwrap();
            assert_eq!(ser, format!("\"{}\"", alg.as_str()));
            assert_eq!(serde_json::from_str::<SigningAlg>(&ser).unwrap(), alg);
        }
        assert_eq!(SigningAlg::EdDSA.as_str(), "EdDSA");
        assert_eq!(SigningAlg::parse("rs256"), None);
        assert_eq!(SigningAlg::parse("EDDSA"), None);
        assert_eq!(SigningAlg::parse("none"), None);
        assert_eq!(SigningAlg::parse(""), None);
    }

    #[test]
    fn store_is_send_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<KeyStore>();
        assert_send_sync::<Arc<KeyStore>>();
    }

    #[test]
    fn open_generates_one_key_per_alg() {
        let (_tmp, dir, store) = open_tmp();
        let list = store.list();
        assert_eq!(list.len(), 3);
        let algs: Vec<SigningAlg> = list.iter().map(|k| k.alg).collect();
        assert_eq!(algs, SigningAlg::ALL.to_vec());
        for k in &list {
            assert!(k.active);
            assert_eq!(k.retired_at, None);
            assert_eq!(k.created_at, T0);
            assert!(valid_kid(&k.kid));
            assert_eq!(k.kid.len(), 43, "SHA-256 thumbprint, base64url");
            assert!(dir.join(format!("{}.json", k.kid)).is_file());
        }
        assert_eq!(json_files(&dir).len(), 3);
        let dir_mode = fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(dir_mode, 0o700);
        for f in json_files(&dir) {
            let mode = fs::metadata(&f).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", f.display());
            let content: Value = serde_json::from_slice(&fs::read(&f).unwrap()).unwrap();
            let kid = content["kid"].as_str().unwrap();
            assert_eq!(f.file_stem().unwrap().to_str().unwrap(), kid);
            assert!(SigningAlg::parse(content["alg"].as_str().unwrap()).is_some());
            assert_eq!(content["created_at"], json!(T0));
            let der = STANDARD
                .decode(content["private_key_pkcs8"].as_str().unwrap())
                .unwrap();
            assert!(der.len() > 40);
        }
        // No temp files left behind.
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 3);
        // Opening again loads the same keys and generates nothing.
        let again = KeyStore::open(&dir, T0 + 10).unwrap();
        assert_eq!(again.list(), list);
        assert_eq!(json_files(&dir).len(), 3);
    }

    #[test]
    fn sign_verify_round_trip_each_alg() {
        let (_tmp, _dir, store) = open_tmp();
        for (alg, sig_len) in [
            (SigningAlg::RS256, 256),
            (SigningAlg::ES256, 64),
            (SigningAlg::EdDSA, 64),
        ] {
            for typ in ["JWT", "at+jwt", "logout+jwt", "we\"ird\\"] {
                let token = store.sign(alg, typ, &claims()).unwrap();
                let parts: Vec<&str> = token.split('.').collect();
                assert_eq!(parts.len(), 3);
                assert_eq!(unb64(parts[2]).len(), sig_len, "{alg} signature length");
                let (header, got) = store.verify(&token).unwrap();
                assert_eq!(got, claims());
                assert_eq!(
                    header,
                    json!({"alg": alg.as_str(), "typ": typ, "kid": active_kid(&store, alg)})
                );
            }
        }
        assert!(matches!(
            store.sign(SigningAlg::RS256, "JWT", &json!(["not", "an", "object"])),
            Err(KeyError::ClaimsNotObject)
        ));
    }

    #[test]
    fn verify_rejects_tampering_and_hostile_headers() {
        let (_tmp, _dir, store) = open_tmp();
        for alg in SigningAlg::ALL {
            let kid = active_kid(&store, alg);
            let token = store.sign(alg, "JWT", &claims()).unwrap();
            let parts: Vec<&str> = token.split('.').collect();

            // Tampered payload, original header and signature.
            let mut evil = claims();
            evil["sub"] = json!("43");
            let forged = format!(
                "{}.{}.{}",
                parts[0],
                b64(&serde_json::to_vec(&evil).unwrap()),
                parts[2]
            );
            assert_eq!(
                invalid_reason(store.verify(&forged)),
                "signature verification failed"
            );

            // Tampered signature (one bit flipped, first and last byte).
            for pos in [0usize, usize::MAX] {
                let mut sig = unb64(parts[2]);
                let i = if pos == 0 { 0 } else { sig.len() - 1 };
                sig[i] ^= 0x01;
                let forged = format!("{}.{}.{}", parts[0], parts[1], b64(&sig));
                assert_eq!(
                    invalid_reason(store.verify(&forged)),
                    "signature verification failed"
                );
            }
            // Truncated / empty signature.
            let mut sig = unb64(parts[2]);
            sig.pop();
            let forged = format!("{}.{}.{}", parts[0], parts[1], b64(&sig));
            assert!(store.verify(&forged).is_err());
            assert!(
                store
                    .verify(&format!("{}.{}.", parts[0], parts[1]))
                    .is_err()
            );

            // alg "none", even when correctly "signed" by one of our keys, and unsigned.
            for none in ["none", "None", "NONE"] {
                let header = json!({"alg": none, "typ": "JWT", "kid": kid});
                let t = sign_raw(&store, &kid, &header, &claims());
                assert_eq!(
                    invalid_reason(store.verify(&t)),
                    "alg \"none\" is not accepted"
                );
                let unsigned = format!(
                    "{}.{}.",
                    b64(&serde_json::to_vec(&header).unwrap()),
                    parts[1]
                );
                assert!(store.verify(&unsigned).is_err());
            }

            // Header alg differs from the key's alg; signature is otherwise valid.
            for other in ["RS256", "ES256", "EdDSA", "HS256", "PS256"] {
                if other == alg.as_str() {
                    continue;
                }
                let header = json!({"alg": other, "typ": "JWT", "kid": kid});
                let t = sign_raw(&store, &kid, &header, &claims());
                assert_eq!(
                    invalid_reason(store.verify(&t)),
                    "header alg does not match the key's alg"
                );
            }

            // Unknown kid, missing kid, missing alg, crit.
            let t = sign_raw(
                &store,
                &kid,
                &json!({"alg": alg.as_str(), "kid": "nope"}),
                &claims(),
            );
            assert_eq!(invalid_reason(store.verify(&t)), "unknown kid");
            let t = sign_raw(&store, &kid, &json!({"alg": alg.as_str()}), &claims());
            assert_eq!(invalid_reason(store.verify(&t)), "header has no kid");
            let t = sign_raw(&store, &kid, &json!({"kid": kid}), &claims());
            assert_eq!(invalid_reason(store.verify(&t)), "header has no alg");
            let t = sign_raw(
                &store,
                &kid,
                &json!({"alg": alg.as_str(), "kid": kid, "crit": ["exp"], "exp": 1}),
                &claims(),
            );
            assert_eq!(invalid_reason(store.verify(&t)), "unsupported crit header");
            // The helper itself produces acceptable tokens.
            let t = sign_raw(
                &store,
                &kid,
                &json!({"alg": alg.as_str(), "kid": kid}),
                &claims(),
            );
            assert!(store.verify(&t).is_ok());
            // Validly signed, but the claims are not an object.
            let t = sign_raw(
                &store,
                &kid,
                &json!({"alg": alg.as_str(), "kid": kid}),
                &json!([1, 2]),
            );
            assert_eq!(
                invalid_reason(store.verify(&t)),
                "claims are not a JSON object"
            );
        }
    }

    #[test]
    fn verify_rejects_garbage_without_panicking() {
        let (_tmp, _dir, store) = open_tmp();
        let token = store.sign(SigningAlg::ES256, "JWT", &claims()).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        let long = "A".repeat(MAX_TOKEN_LEN + 1);
        let padded = format!("{}=.{}.{}", parts[0], parts[1], parts[2]);
        let std_b64 = format!(
            "{}.{}.{}",
            STANDARD.encode(unb64(parts[0])),
            parts[1],
            parts[2]
        );
        let extra = format!("{token}.x");
        let spaces = format!(" {token}");
        let nested = format!("{}.{}.{}", b64(&[b'['; 10_000]), parts[1], parts[2]);
        let garbage: Vec<&str> = vec![
            "",
            ".",
            "..",
            "...",
            "a",
            "a.b",
            "a.b.c",
            "a.b.c.d",
            "!!!.###.$$$",
            "é.ü.ß",
            "\0.\0.\0",
            &long,
            &padded,
            &extra,
            &spaces,
            &nested,
            "eyJhbGciOiJub25lIn0.e30.",
            "eyJhbGciOiJub25lIn0.e30",
            "W10.e30.AAAA",
            "bnVsbA.e30.AAAA",
            "e30.e30.AAAA",
        ];
        for g in garbage {
            assert!(store.verify(g).is_err(), "accepted {g:?}");
        }
        // std_b64 may coincide with url-safe encoding when no '+' or '/' occurs; only require
        // no panic.
        let _ = store.verify(&std_b64);
        // Every truncation of a valid token is rejected.
        for i in 0..token.len() {
            if let Some(prefix) = token.get(..i) {
                assert!(store.verify(prefix).is_err(), "accepted prefix of len {i}");
            }
        }
    }

    #[test]
    fn rotate_and_retention() {
        let (_tmp, dir, store) = open_tmp();
        let old_kid = active_kid(&store, SigningAlg::RS256);
        let old_token = store.sign(SigningAlg::RS256, "JWT", &claims()).unwrap();
        let t1 = T0 + 1000;
        let info = store.rotate(SigningAlg::RS256, t1).unwrap();
        assert!(info.active);
        assert_eq!(info.created_at, t1);
        assert_eq!(info.alg, SigningAlg::RS256);
        assert_ne!(info.kid, old_kid);
        assert_eq!(active_kid(&store, SigningAlg::RS256), info.kid);

        let list = store.list();
        assert_eq!(list.len(), 4);
        let old = list.iter().find(|k| k.kid == old_kid).unwrap();
        assert!(!old.active);
        assert_eq!(old.retired_at, Some(t1));
        // Sorted by alg then created_at.
        assert_eq!(list[0].kid, old_kid);
        assert_eq!(list[1].kid, info.kid);

        // New tokens use the new key; old tokens still verify.
        let token = store.sign(SigningAlg::RS256, "JWT", &claims()).unwrap();
        let (header, _) = store.verify(&token).unwrap();
        assert_eq!(header["kid"], json!(info.kid));
        assert!(store.verify(&old_token).is_ok());

        // Published within retention, gone after.
        let retention = 3600;
        let kids = |now: i64| -> Vec<String> {
            store.jwks(now, retention)["keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k["kid"].as_str().unwrap().to_owned())
                .collect()
        };
        let within = kids(t1 + retention - 1);
        assert_eq!(within.len(), 4);
        assert!(within.contains(&old_kid));
        // Active keys come first, RS256 first.
        assert_eq!(within[0], info.kid);
        assert_eq!(within[3], old_kid);
        let after = kids(t1 + retention);
        assert_eq!(after.len(), 3);
        assert!(!after.contains(&old_kid));
        assert!(after.contains(&info.kid));

        // The new file is 0600, and there are no temp files left.
        let path = dir.join(format!("{}.json", info.kid));
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 4);
    }

    #[test]
    fn rotate_within_the_same_second_still_activates_the_new_key() {
        let (_tmp, _dir, store) = open_tmp();
        let first = store.rotate(SigningAlg::EdDSA, T0).unwrap();
        assert_eq!(first.created_at, T0 + 1);
        // Clock went backwards: still newest.
        let second = store.rotate(SigningAlg::EdDSA, T0 - 50).unwrap();
        assert_eq!(second.created_at, T0 + 2);
        assert!(second.active);
        assert_eq!(active_kid(&store, SigningAlg::EdDSA), second.kid);
        let eddsa: Vec<KeyInfo> = store
            .list()
            .into_iter()
            .filter(|k| k.alg == SigningAlg::EdDSA)
            .collect();
        assert_eq!(eddsa.len(), 3);
        assert_eq!(eddsa[0].retired_at, Some(T0 + 1));
        assert_eq!(eddsa[1].retired_at, Some(T0 + 2));
        assert_eq!(eddsa[2].retired_at, None);
    }

    #[test]
    fn second_store_and_reload_see_rotations() {
        let (_tmp, dir, a) = open_tmp();
        // First reload after open re-lists once; nothing changed.
        assert!(!a.reload().unwrap());
        assert!(!a.reload().unwrap());

        let r = a.rotate(SigningAlg::RS256, T0 + 5).unwrap();
        let b = KeyStore::open(&dir, T0 + 6).unwrap();
        assert_eq!(b.list(), a.list());
        assert_eq!(b.jwks(T0 + 6, 60), a.jwks(T0 + 6, 60));
        // a's own rotation is not a change for a.
        assert!(!a.reload().unwrap());
        assert_eq!(active_kid(&a, SigningAlg::RS256), r.kid);

        let rotated = b.rotate(SigningAlg::ES256, T0 + 7).unwrap();
        assert_ne!(active_kid(&a, SigningAlg::ES256), rotated.kid);
        assert!(a.reload().unwrap());
        assert_eq!(active_kid(&a, SigningAlg::ES256), rotated.kid);
        assert_eq!(a.list(), b.list());
        assert!(!a.reload().unwrap());

        // Tokens signed by b verify on a and vice versa.
        let t = b.sign(SigningAlg::ES256, "JWT", &claims()).unwrap();
        assert_eq!(a.verify(&t).unwrap().1, claims());
        let t = a.sign(SigningAlg::ES256, "JWT", &claims()).unwrap();
        assert_eq!(b.verify(&t).unwrap().1, claims());

        // A key file removed by another node (pruning a retired key) disappears on reload.
        let old_es = a
            .list()
            .into_iter()
            .find(|k| k.alg == SigningAlg::ES256 && !k.active)
            .unwrap();
        let old_token = sign_raw(
            &a,
            &old_es.kid,
            &json!({"alg": "ES256", "kid": old_es.kid}),
            &claims(),
        );
        assert!(a.verify(&old_token).is_ok());
        fs::remove_file(dir.join(format!("{}.json", old_es.kid))).unwrap();
        assert!(a.reload().unwrap());
        assert_eq!(a.list().len(), 4);
        assert_eq!(invalid_reason(a.verify(&old_token)), "unknown kid");
    }

    #[test]
    fn reload_errors_keep_current_keys() {
        let (_tmp, dir, store) = open_tmp();
        let before = store.list();
        let ed = active_kid(&store, SigningAlg::EdDSA);
        let ed_path = dir.join(format!("{ed}.json"));
        let saved = fs::read(&ed_path).unwrap();
        fs::remove_file(&ed_path).unwrap();
        let err = store.reload().unwrap_err();
        assert!(matches!(
            err,
            KeyError::MissingKey {
                alg: SigningAlg::EdDSA,
                ..
            }
        ));
        assert!(err.to_string().contains("EdDSA"), "{err}");
        assert_eq!(store.list(), before);
        assert!(store.sign(SigningAlg::EdDSA, "JWT", &claims()).is_ok());

        // Malformed file: error names it; keys stay.
        fs::write(dir.join("broken.json"), b"{").unwrap();
        let err = store.reload().unwrap_err();
        assert!(err.to_string().contains("broken.json"), "{err}");
        assert_eq!(store.list(), before);

        fs::remove_file(dir.join("broken.json")).unwrap();
        fs::write(&ed_path, saved).unwrap();
        // Same keys as before, so the set did not change.
        assert!(!store.reload().unwrap());
        assert_eq!(store.list(), before);
    }

    #[test]
    fn open_reports_malformed_files_and_ignores_others() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        // Ignored: not .json, hidden, temp files, directories.
        fs::write(dir.join("README.txt"), b"hello").unwrap();
        fs::write(dir.join(".abc.json.tmp-xyz"), b"junk").unwrap();
        fs::write(dir.join(".hidden.json"), b"junk").unwrap();
        fs::write(dir.join("abc.json.tmp"), b"junk").unwrap();
        fs::create_dir(dir.join("sub.json")).unwrap();
        let store = KeyStore::open(&dir, T0).unwrap();
        assert_eq!(store.list().len(), 3);
        drop(store);

        let kid = json_files(&dir)[0]
            .file_stem()
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        let good: Value =
            serde_json::from_slice(&fs::read(dir.join(format!("{kid}.json"))).unwrap()).unwrap();

        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            ("notjson.json", b"not json".to_vec(), "JSON"),
            ("empty.json", Vec::new(), "JSON"),
            (
                "badb64.json",
                serde_json::to_vec(&json!({"kid": "badb64", "alg": "RS256", "created_at": 1,
                    "private_key_pkcs8": "%%%"}))
                .unwrap(),
                "base64",
            ),
            (
                "wrongkey.json",
                serde_json::to_vec(&json!({"kid": "wrongkey", "alg": "RS256", "created_at": 1,
                    "private_key_pkcs8": STANDARD.encode(b"not a key")}))
                .unwrap(),
                "RSA",
            ),
            (
                "badalg.json",
                serde_json::to_vec(&json!({"kid": "badalg", "alg": "HS256", "created_at": 1,
                    "private_key_pkcs8": ""}))
                .unwrap(),
                "JSON",
            ),
            (
                "renamed.json",
                serde_json::to_vec(&good).unwrap(),
                "file name must be the kid",
            ),
            (
                "bad kid.json",
                serde_json::to_vec(&json!({"kid": "bad kid", "alg": "RS256", "created_at": 1,
                    "private_key_pkcs8": good["private_key_pkcs8"]}))
                .unwrap(),
                "kid must be",
            ),
        ];
        for (name, content, expect) in cases {
            let path = dir.join(name);
            fs::write(&path, content).unwrap();
            let err = KeyStore::open(&dir, T0).unwrap_err();
            assert!(matches!(err, KeyError::MalformedKeyFile { .. }), "{err:?}");
            let msg = err.to_string();
            assert!(msg.contains(name), "{msg}");
            assert!(msg.contains(expect), "{msg}");
            fs::remove_file(&path).unwrap();
        }
        // A key stored under the wrong algorithm is rejected too.
        let mut mislabeled = good.clone();
        let other_alg = if good["alg"] == json!("RS256") {
            "ES256"
        } else {
            "RS256"
        };
        mislabeled["alg"] = json!(other_alg);
        let mut path = dir.join(format!("{kid}.json"));
        let saved = fs::read(&path).unwrap();
        fs::write(&path, serde_json::to_vec(&mislabeled).unwrap()).unwrap();
        let err = KeyStore::open(&dir, T0).unwrap_err();
        assert!(err.to_string().contains(&kid), "{err}");
        fs::write(&path, saved).unwrap();
        assert!(KeyStore::open(&dir, T0).is_ok());

        // A file where the directory should be.
        path = dir.join("README.txt");
        let err = KeyStore::open(&path, T0).unwrap_err();
        assert!(matches!(err, KeyError::Io { .. }));
        assert!(err.to_string().contains("README.txt"), "{err}");
    }

    #[test]
    fn jwks_is_correct_and_verifies_signatures() {
        let (_tmp, _dir, store) = open_tmp();
        let jwks = store.jwks(T0, 0);
        let keys = jwks["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 3);
        for jwk in keys {
            let obj = jwk.as_object().unwrap();
            for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
                assert!(!obj.contains_key(private), "JWK leaks {private}");
            }
            assert_eq!(jwk["use"], json!("sig"));
            let alg = SigningAlg::parse(jwk["alg"].as_str().unwrap()).unwrap();
            let kid = jwk["kid"].as_str().unwrap();
            assert_eq!(kid, active_kid(&store, alg));
            let token = store.sign(alg, "JWT", &claims()).unwrap();
            let (input, sig) = token.rsplit_once('.').unwrap();
            let sig = unb64(sig);
            let s = |name: &str| jwk[name].as_str().unwrap().to_owned();
            let thumb_input = match alg {
                SigningAlg::RS256 => {
                    assert_eq!(obj.len(), 6);
                    assert_eq!(s("kty"), "RSA");
                    let n = unb64(&s("n"));
                    let e = unb64(&s("e"));
                    assert_eq!(n.len(), 256, "2048-bit modulus without leading zero");
                    assert_ne!(n[0], 0);
                    assert_eq!(e, vec![1, 0, 1]);
                    RsaPublicKeyComponents { n: &n, e: &e }
                        .verify(
                            &signature::RSA_PKCS1_2048_8192_SHA256,
                            input.as_bytes(),
                            &sig,
                        )
                        .unwrap();
                    let mut bad = input.as_bytes().to_vec();
                    bad[0] ^= 1;
                    assert!(
                        RsaPublicKeyComponents { n: &n, e: &e }
                            .verify(&signature::RSA_PKCS1_2048_8192_SHA256, &bad, &sig)
                            .is_err()
                    );
                    format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, s("e"), s("n"))
                }
                SigningAlg::ES256 => {
                    assert_eq!(obj.len(), 7);
                    assert_eq!(s("kty"), "EC");
                    assert_eq!(s("crv"), "P-256");
                    let x = unb64(&s("x"));
                    let y = unb64(&s("y"));
                    assert_eq!((x.len(), y.len()), (32, 32));
                    let mut point = vec![0x04];
                    point.extend_from_slice(&x);
                    point.extend_from_slice(&y);
                    UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, &point)
                        .verify(input.as_bytes(), &sig)
                        .unwrap();
                    format!(
                        r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
                        s("x"),
                        s("y")
                    )
                }
                SigningAlg::EdDSA => {
                    assert_eq!(obj.len(), 6);
                    assert_eq!(s("kty"), "OKP");
                    assert_eq!(s("crv"), "Ed25519");
                    let x = unb64(&s("x"));
                    assert_eq!(x.len(), 32);
                    UnparsedPublicKey::new(&signature::ED25519, &x)
                        .verify(input.as_bytes(), &sig)
                        .unwrap();
                    format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#, s("x"))
                }
            };
            // kid is the RFC 7638 thumbprint.
            let digest = digest::digest(&digest::SHA256, thumb_input.as_bytes());
            assert_eq!(kid, b64(digest.as_ref()));
        }
    }

    #[test]
    fn rfc7638_thumbprint_vector() {
        // RFC 7638 section 3.1 example.
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        let input = format!(r#"{{"e":"AQAB","kty":"RSA","n":"{n}"}}"#);
        assert_eq!(
            thumbprint(&input),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn half_hash_vectors() {
        // OpenID Connect Core, Appendix A.3/A.4 example access token.
        let at = "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y";
        assert_eq!(half_hash(SigningAlg::RS256, at), "77QmUPtjPfzWtF2AnpK9RQ");
        assert_eq!(half_hash(SigningAlg::ES256, at), "77QmUPtjPfzWtF2AnpK9RQ");
        // Left 32 bytes of SHA-512, computed independently.
        assert_eq!(
            half_hash(SigningAlg::EdDSA, at),
            "q7nS86GgvvFaZkzALLWqJYaJIKw2wCDAVfCAsm5CrBM"
        );
    }

    #[test]
    fn debug_does_not_print_key_material() {
        let (_tmp, dir, store) = open_tmp();
        let debug = format!("{store:?}");
        assert!(debug.contains("KeyStore"));
        for f in json_files(&dir) {
            let content: Value = serde_json::from_slice(&fs::read(&f).unwrap()).unwrap();
            let pkcs8 = content["private_key_pkcs8"].as_str().unwrap();
            let der = STANDARD.decode(pkcs8).unwrap();
            // Any 16-character window of the base64 or hex of the DER would be a leak.
            assert!(!debug.contains(&pkcs8[pkcs8.len() - 16..]));
            let hex: String = der.iter().map(|b| format!("{b:02x}")).collect();
            assert!(!debug.contains(&hex[hex.len() - 32..]));
            assert!(debug.contains(content["kid"].as_str().unwrap()));
        }
        let err = KeyError::MalformedKeyFile {
            path: dir.join("x.json"),
            reason: "r".into(),
        };
        assert!(err.to_string().contains("x.json"));
    }

    #[test]
    fn a_key_rotated_ahead_is_published_first_and_signs_later() {
        let (_tmp, dir, store) = open_tmp();
        let old = active_kid(&store, SigningAlg::RS256);
        let info = store.rotate_after(SigningAlg::RS256, T0 + 10, 120).unwrap();
        assert!(!info.active);
        assert_eq!(info.not_before, Some(T0 + 10 + 120));
        // Published at once, still not signing.
        let jwks = store.jwks(T0 + 11, 3600).to_string();
        assert!(jwks.contains(&info.kid) && jwks.contains(&old));
        assert_eq!(active_kid(&store, SigningAlg::RS256), old);
        // Another node reading the directory sees the same.
        let other = KeyStore::open(&dir, T0 + 11).unwrap();
        assert_eq!(active_kid(&other, SigningAlg::RS256), old);
        assert!(other.jwks(T0 + 11, 3600).to_string().contains(&info.kid));
        // Before its time nothing changes; at its time it signs, and the old one retires.
        assert!(!store.reload_at(T0 + 129).unwrap());
        assert_eq!(active_kid(&store, SigningAlg::RS256), old);
        let kid_of = |token: &str| {
            store.verify(token).unwrap().0["kid"]
                .as_str()
                .unwrap()
                .to_owned()
        };
        assert_eq!(
            kid_of(&store.sign(SigningAlg::RS256, "JWT", &claims()).unwrap()),
            old
        );
        assert!(store.reload_at(T0 + 130).unwrap());
        assert_eq!(active_kid(&store, SigningAlg::RS256), info.kid);
        assert_eq!(
            kid_of(&store.sign(SigningAlg::RS256, "JWT", &claims()).unwrap()),
            info.kid
        );
        assert!(other.reload_at(T0 + 131).unwrap());
        assert_eq!(active_kid(&other, SigningAlg::RS256), info.kid);
        let retired = store.list().into_iter().find(|k| k.kid == old).unwrap();
        assert_eq!(retired.retired_at, Some(T0 + 130));
        assert!(store.jwks(T0 + 131, 3600).to_string().contains(&old));
        assert!(!store.jwks(T0 + 130 + 3600, 3600).to_string().contains(&old));
    }
}
