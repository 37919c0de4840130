//! The keys directory on disk: one JSON file per key, read, listed and written atomically.
//!
//! Key file format (`<kid>.json`, mode 0600):
//! `{"kid": "...", "alg": "RS256", "created_at": 1234, "private_key_pkcs8": "<base64 standard>"}`,
//! plus `"not_before": 1234` for a key published ahead of signing.

use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};

use super::material::{KeyMaterial, LoadedKey, generate_pkcs8};
use super::{KeyError, SigningAlg, State};

/// Largest key file `open`/`reload` reads, in bytes (an RSA 8192 key is ~6.5 KiB of base64).
const MAX_KEY_FILE_LEN: u64 = 64 * 1024;
/// Longest kid accepted from a key file.
const MAX_KID_LEN: usize = 128;

pub(super) fn io_err(path: &Path, source: io::Error) -> KeyError {
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

pub(super) fn valid_kid(kid: &str) -> bool {
    !kid.is_empty()
        && kid.len() <= MAX_KID_LEN
        && kid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// What `reload` compares to decide whether anything changed on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FileStamp {
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
pub(super) fn list_dir(dir: &Path) -> Result<Vec<FileStamp>, KeyError> {
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
    let key = material
        .and_then(|m| m.into_loaded(file.kid.clone(), file.created_at, file.not_before))
        .map_err(|reason| malformed(path, reason))?;
    Ok(Some(key))
}

/// Loads every listed key file, reusing already parsed keys whose file is unchanged.
pub(super) fn load_keys(
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
pub(super) fn create_key(
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
    material
        .into_loaded(kid, created_at, not_before)
        .map_err(|_| KeyError::Crypto("generated key could not be loaded"))
}

/// Creates the keys directory (mode 0700) if missing; warns if it is open to others.
pub(super) fn ensure_dir(dir: &Path) -> Result<(), KeyError> {
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
