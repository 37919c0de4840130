//! Unit tests of the key store: files, rotation, JWKS, signing and verifying.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use aws_lc_rs::digest;
use aws_lc_rs::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use super::files::valid_kid;
use super::*;

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
    key.signing.sign_with_header(header, claims)
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
