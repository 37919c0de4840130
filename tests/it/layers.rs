//! The house plan (README, "How the code is laid out"), checked: every module imports only the
//! layers below it, the protocol core knows nothing of HTTP, and only the store talks to a
//! database driver. The check reads `src/` as text, so it fails the moment a forbidden `use`
//! or path is written, whatever it is used for.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Each layer of the crate and the layers it may import (its own always allowed).
/// Top to bottom: main -> lib -> web -> {state, flow} -> {oidc, telegram} -> {store, keys,
/// jose} -> {config, error, secrets, clock, params, outbound, access, geoip, metrics}.
const RULES: &[(&str, &[&str])] = &[
    (
        "web",
        &["state", "flow", "oidc", "telegram", "admin", LOWER, BOTTOM],
    ),
    ("admin", &["oidc", LOWER, BOTTOM]),
    ("state", &["flow", "oidc", "telegram", LOWER, BOTTOM]),
    ("flow", &["state", "oidc", "telegram", LOWER, BOTTOM]),
    ("oidc", &[LOWER, BOTTOM]),
    ("telegram", &[LOWER, BOTTOM]),
    ("store", &[LOWER, BOTTOM]),
    ("keys", &[LOWER, BOTTOM]),
    ("jose", &[LOWER, BOTTOM]),
    ("config", &[BOTTOM]),
    ("error", &[BOTTOM]),
    ("secrets", &[BOTTOM]),
    ("clock", &[BOTTOM]),
    ("params", &[BOTTOM]),
    ("outbound", &[BOTTOM]),
    ("access", &[BOTTOM]),
    ("geoip", &[BOTTOM]),
    ("metrics", &[BOTTOM]),
];
/// Stand-ins in `RULES` for a whole layer.
const LOWER: &str = "{store, keys, jose}";
const BOTTOM: &str = "{config, error, secrets, clock, params, outbound, access, geoip, metrics}";

/// External crates only some layers may name.
const CRATE_RULES: &[(&str, &[&str])] = &[
    // Handlers, extractors, responses: the web layer (and the launcher) only.
    ("axum", &["web", "lib", "main"]),
    ("tower_http", &["web", "lib", "main"]),
    ("askama", &["web"]),
    // JWS: signed and verified in one place (the key store holds jsonwebtoken's key types).
    ("jsonwebtoken", &["jose", "keys"]),
    // ES256K (secp256k1), which jsonwebtoken does not know: verified in jose/ only.
    ("k256", &["jose"]),
    // Talking to Telegram's own OpenID Connect provider: the adapter only.
    ("openidconnect", &["telegram"]),
    // Database drivers: the store only.
    ("sqlx", &["store"]),
    ("rusqlite", &["store"]),
    // HTTP out: the one outbound client for URLs others chose, the Telegram adapters and the
    // OTLP exporter (whose URLs the admin configured).
    ("reqwest", &["outbound", "telegram", "main"]),
    // OTLP traces: the exporter is set up by the binary; the request span (web) only names
    // itself and continues a caller's trace.
    ("opentelemetry_sdk", &["main"]),
    ("opentelemetry_otlp", &["main"]),
    ("opentelemetry", &["main", "web"]),
    ("opentelemetry_http", &["main", "web"]),
    ("tracing_opentelemetry", &["main", "web"]),
    // Reading the GeoIP database: one module.
    ("maxminddb", &["geoip"]),
    // The metrics registry and its encoding: one module; the rest counts through it.
    ("prometheus_client", &["metrics"]),
];

fn expand(allowed: &[&str]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for a in allowed {
        match *a {
            LOWER => out.extend(["store", "keys", "jose"].map(String::from)),
            BOTTOM => out.extend(
                [
                    "config", "error", "secrets", "clock", "params", "outbound", "access", "geoip",
                    "metrics",
                ]
                .map(String::from),
            ),
            other => {
                out.insert(other.to_owned());
            }
        }
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The layer a file belongs to: its first path component under `src/`, without `.rs`.
fn layer_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_owned()
}

/// Code without comments and without the unit tests at the end of a file (tests may reach
/// anywhere to set things up).
fn code_of(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The layers a file's code names as `crate::<layer>`, including inside `use crate::{a, b}`.
fn crate_layers(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for part in group[..end].split(',') {
                let name: String = part
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    found.insert(name);
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.insert(name);
            }
        }
    }
    found
}

/// Whether `code` names the external crate `name` (`use name::`, `name::x` in a path).
fn names_crate(code: &str, name: &str) -> bool {
    let needle = format!("{name}::");
    code.match_indices(&needle).any(|(i, _)| {
        let before = code[..i].chars().next_back();
        !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':')
    })
}

/// Every forbidden import in `src/`, as "file: what".
fn violations(src: &Path) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let layer = layer_of(src, &file);
        let code = code_of(&std::fs::read_to_string(&file).unwrap());
        let name = file.strip_prefix(src).unwrap().display().to_string();
        if let Some((_, allowed)) = RULES.iter().find(|(l, _)| *l == layer) {
            let allowed = expand(allowed);
            for imported in crate_layers(&code) {
                if imported != layer && !allowed.contains(&imported) {
                    out.push(format!("{name}: imports crate::{imported}"));
                }
            }
        }
        for (krate, allowed) in CRATE_RULES {
            if !allowed.contains(&layer.as_str()) && names_crate(&code, krate) {
                out.push(format!("{name}: uses {krate}"));
            }
        }
    }
    out
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn every_layer_imports_only_what_it_may() {
    let found = violations(&src_dir());
    assert!(
        found.is_empty(),
        "imports against the house plan (README, \"How the code is laid out\"):\n{}",
        found.join("\n")
    );
}

#[test]
fn every_layer_of_the_crate_has_a_rule() {
    let mut files = Vec::new();
    rust_files(&src_dir(), &mut files);
    let layers: BTreeSet<String> = files.iter().map(|f| layer_of(&src_dir(), f)).collect();
    for layer in layers {
        assert!(
            layer == "lib" || layer == "main" || RULES.iter().any(|(l, _)| *l == layer),
            "src/{layer} has no rule in tests/it/layers.rs: say which layers it may import"
        );
    }
}

/// The check itself catches what it must: a forbidden import written into a copy of the tree.
#[test]
fn a_forbidden_import_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("oidc")).unwrap();
    std::fs::create_dir_all(src.join("telegram")).unwrap();
    std::fs::create_dir_all(src.join("store")).unwrap();
    std::fs::write(
        src.join("oidc/mint.rs"),
        "use crate::store::Store;\nuse crate::web::pages;\n",
    )
    .unwrap();
    std::fs::write(
        src.join("telegram/widget.rs"),
        "use crate::{secrets, state::App};\nfn f() { let _ = axum::http::StatusCode::OK; }\n",
    )
    .unwrap();
    std::fs::write(
        src.join("store/sql.rs"),
        "// crate::web in a comment is fine\nuse crate::config::Config;\n",
    )
    .unwrap();
    let found = violations(&src);
    assert_eq!(
        found,
        vec![
            "oidc/mint.rs: imports crate::web".to_owned(),
            "telegram/widget.rs: imports crate::state".to_owned(),
            "telegram/widget.rs: uses axum".to_owned(),
        ]
    );
}
