//! After a complete run through the real binary, neither the database nor the log (at TRACE)
//! holds a secret, code or token in plain text: the bot token, client secrets, the session id,
//! the code, access, refresh and ID tokens of a browser login, of its refresh, of a Mini App
//! token exchange and of that exchange's refresh, the proof the Mini App sent, an admin key
//! (right and wrong) and a client secret rotated through the admin API.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};

use reqwest::StatusCode;
use serde_json::{Value, json};
use telegram_oidc::oidc::pkce;
use telegram_oidc::telegram::webapp;

use crate::harness::*;

const BIN: &str = env!("CARGO_BIN_EXE_telegram-oidc");
const VERIFIER: &str = "scan-verifier-0123456789-abcdefghijklmnopqrstuvwxyz";
const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const INIT_DATA: &str = "urn:telegram-oidc:params:token-type:telegram-init-data";

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn no_plaintext_secret_in_the_database_or_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("scan.db");
    let config = dir.path().join("scan.toml");
    std::fs::write(dir.path().join("bot_token"), BOT_TOKEN).unwrap();
    std::fs::write(
        &config,
        format!(
            "issuer = \"http://127.0.0.1:9\"\nlisten = \"127.0.0.1:0\"\ndatabase_url = \"sqlite://{}\"\nkeys_dir = \"{}\"\n[telegram]\nbot_username = \"{BOT_USERNAME}\"\nbot_token_file = \"{}\"\n",
            db.display(),
            dir.path().join("keys").display(),
            dir.path().join("bot_token").display()
        ),
    )
    .unwrap();
    let add_client = |name: &str, extra: &[&str]| {
        let out = Command::new(BIN)
            .args(["--config"])
            .arg(&config)
            .args([
                "client",
                "add",
                "--name",
                name,
                "--redirect-uri",
                "https://app.example.test/cb",
                "--refresh",
                "always",
                "--skip-consent",
                "--json",
            ])
            .args(extra)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let added: Value = serde_json::from_slice(&out.stdout).unwrap();
        (
            added["client_id"].as_str().unwrap().to_string(),
            added["client_secret"].as_str().unwrap().to_string(),
        )
    };
    let (client_id, client_secret) = add_client("Scan", &["--access-token-format", "opaque"]);
    // A Mini App's client, with JWT access tokens.
    let (mini_id, mini_secret) = add_client("Scan Mini App", &["--token-exchange"]);
    // An admin key, used on the admin API below.
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .args(["admin-key", "create", "--scope", "write"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let admin_key = String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("key:"))
        .unwrap()
        .trim()
        .to_owned();

    let mut server = Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .env("RUST_LOG", "trace")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(server.stderr.take().unwrap());
    let mut log = Vec::new();
    let address = loop {
        let mut line = String::new();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "server exited");
        log.extend_from_slice(line.as_bytes());
        if let Some(rest) = line.split("address=").nth(1) {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    // The log is drained while the flow runs, so the server never blocks on a full pipe.
    let drain = std::thread::spawn(move || {
        let mut rest = Vec::new();
        let _ = stderr.read_to_end(&mut rest);
        rest
    });
    let base = format!("http://{address}");
    let issuer = "http://127.0.0.1:9";
    let local = |url: &str| url.replacen(issuer, &base, 1);
    let browser = Browser::new();
    let mut secrets = vec![
        client_secret.clone(),
        mini_secret.clone(),
        BOT_TOKEN.split(':').nth(1).unwrap().to_string(),
    ];

    let authorize = format!(
        "{base}/authorize?response_type=code&client_id={client_id}&redirect_uri=https%3A%2F%2Fapp.example.test%2Fcb&scope=openid%20profile&state=s&code_challenge={}&code_challenge_method=S256",
        pkce::s256(VERIFIER)
    );
    let resp = browser.get(&authorize).await;
    let login = local(&location(resp.headers()));
    let req = req_of(&login);
    let fields = widget_fields(
        &TgUser::new(1234),
        telegram_oidc::clock::system_now(),
        BOT_TOKEN,
    );
    let resp = browser
        .get(&format!("{base}/login/telegram/{req}?{}", encode(&fields)))
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    for cookie in resp.headers().get_all("set-cookie") {
        let value = cookie.to_str().unwrap();
        let session = value.split(';').next().unwrap().split_once('=').unwrap().1;
        secrets.push(session.to_string());
    }
    let resp = browser.get(&local(&location(resp.headers()))).await;
    let back = location(resp.headers());
    let code = query_param(&back, "code").unwrap();
    secrets.push(code.clone());

    let http = reqwest::Client::new();
    let tokens: Value = http
        .post(format!("{base}/token"))
        .basic_auth(&client_id, Some(&client_secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", "https://app.example.test/cb"),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = tokens["access_token"].as_str().unwrap().to_string();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_string();
    secrets.push(tokens["id_token"].as_str().unwrap().to_string());
    let refreshed: Value = http
        .post(format!("{base}/token"))
        .basic_auth(&client_id, Some(&client_secret))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh.as_str()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    secrets.extend(
        refreshed["id_token"]
            .as_str()
            .map(str::to_owned)
            .into_iter(),
    );

    // A Mini App trades its initData for tokens (RFC 8693), then refreshes them.
    let mut launch = vec![
        (
            "query_id".to_string(),
            "AAHdF6IQAAAAAN0XohDhrOrc".to_string(),
        ),
        (
            "user".to_string(),
            json!({"id": 5678, "first_name": "Ada", "username": "ada_scan"}).to_string(),
        ),
        (
            "auth_date".to_string(),
            telegram_oidc::clock::system_now().to_string(),
        ),
    ];
    let init_hash = webapp::hash_with_token(&launch, BOT_TOKEN);
    launch.push(("hash".into(), init_hash.clone()));
    let exchanged: Value = http
        .post(format!("{base}/token"))
        .basic_auth(&mini_id, Some(&mini_secret))
        .form(&[
            ("grant_type", TOKEN_EXCHANGE),
            ("subject_token", encode(&launch).as_str()),
            ("subject_token_type", INIT_DATA),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let exchange_refresh = exchanged["refresh_token"].as_str().unwrap().to_string();
    let exchange_refreshed: Value = http
        .post(format!("{base}/token"))
        .basic_auth(&mini_id, Some(&mini_secret))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", exchange_refresh.as_str()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for (name, body) in [
        ("exchange", &exchanged),
        ("refresh after the exchange", &exchange_refreshed),
    ] {
        for token in ["access_token", "refresh_token", "id_token"] {
            let value = body[token].as_str();
            assert!(value.is_some(), "{name}: no {token} in {body}");
            secrets.extend(value.map(str::to_owned));
        }
    }
    secrets.push(init_hash);

    let info = http
        .get(format!("{base}/userinfo"))
        .bearer_auth(refreshed["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(info.status(), StatusCode::OK);
    // A failed attempt with a wrong secret must not be logged either.
    let wrong = format!("{client_secret}x");
    http.post(format!("{base}/token"))
        .basic_auth(&client_id, Some(&wrong))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", "tgrt_x")])
        .send()
        .await
        .unwrap();
    // The admin API: a client's secret rotated with the key, and a wrong key.
    let rotated: Value = http
        .post(format!("{base}/admin/api/v1/clients/{client_id}/secret"))
        .bearer_auth(&admin_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let wrong_key = format!("{admin_key}x");
    let refused = http
        .get(format!("{base}/admin/api/v1/clients"))
        .bearer_auth(&wrong_key)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    secrets.extend([
        admin_key,
        wrong_key,
        rotated["client_secret"].as_str().unwrap().to_string(),
    ]);
    secrets.extend([
        access,
        refresh,
        refreshed["access_token"].as_str().unwrap().to_string(),
        refreshed["refresh_token"].as_str().unwrap().to_string(),
        wrong,
    ]);

    Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(server.wait().unwrap().success());
    log.extend(drain.join().unwrap());
    assert!(
        contains(&log, "finished processing request") || contains(&log, "request"),
        "the log was captured"
    );

    let mut stored = std::fs::read(&db).unwrap();
    for suffix in ["-wal", "-shm"] {
        if let Ok(bytes) = std::fs::read(format!("{}{suffix}", db.display())) {
            stored.extend(bytes);
        }
    }
    assert!(stored.len() > 4096, "the database was read");
    for secret in &secrets {
        assert!(secret.len() >= 20, "a real secret: {secret}");
        assert!(
            !contains(&stored, secret),
            "plaintext secret in the database: {}…",
            &secret[..8]
        );
        assert!(
            !contains(&log, secret),
            "plaintext secret in the log: {}…",
            &secret[..8]
        );
    }
}
