//! The security pitfalls of OAuth providers, one test each.

use reqwest::StatusCode;
use serde_json::Value;
use telegram_oidc::oidc::pkce;

use crate::harness::*;

const VERIFIER: &str = "pitfalls-verifier-0123456789-abcdefghijklmnopqrstuvwxyz";

fn authorize_url(app: &TestApp, client: &TestClient, redirect_uri: &str, extra: &str) -> String {
    format!(
        "{}?response_type=code&client_id={}&redirect_uri={}&scope=openid%20offline_access&state=st&code_challenge={}&code_challenge_method=S256{extra}",
        app.url("/authorize"),
        client.id(),
        url::form_urlencoded::byte_serialize(redirect_uri.as_bytes()).collect::<String>(),
        pkce::s256(VERIFIER),
    )
}

async fn token(app: &TestApp, client: &TestClient, form: &[(&str, &str)]) -> (StatusCode, Value) {
    let resp = reqwest::Client::new()
        .post(app.url("/token"))
        .basic_auth(client.id(), Some(client.secret()))
        .form(form)
        .send()
        .await
        .unwrap();
    (resp.status(), resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn redirect_uris_match_exactly() {
    let app = TestApp::start().await;
    let client = app.confidential_client().await;
    let browser = Browser::new();
    for bad in [
        "https://APP.example.test/callback",
        "https://app.example.test/Callback",
        "https://app.example.test/callback/",
        "https://app.example.test/callback/..;/evil",
        "https://app.example.test/callback/../evil",
        "https://app.example.test/callback?extra=1",
        "https://app.example.test/callback#fragment",
        "https://user@app.example.test/callback",
        "https://app.example.test@evil.test/callback",
        "https://app.example.test.evil.test/callback",
        "https://app.example.test:443/callback",
        "http://app.example.test/callback",
        "http://localhost.evil.test/callback",
        "https://app.example.test/callback%2F..%2Fevil",
    ] {
        let resp = browser.get(&authorize_url(&app, &client, bad, "")).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{bad}");
        assert!(
            resp.headers().get("location").is_none(),
            "no redirect to {bad}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn no_error_before_the_redirect_uri_is_trusted_redirects_anywhere() {
    let app = TestApp::start().await;
    let client = app.confidential_client().await;
    let browser = Browser::new();
    let evil = "https%3A%2F%2Fevil.test%2F";
    for query in [
        format!(
            "response_type=token&client_id={}&redirect_uri={evil}",
            client.id()
        ),
        format!("client_id=unknown&redirect_uri={evil}&response_type=code"),
        format!("redirect_uri={evil}&response_type=code"),
        format!(
            "client_id={}&client_id={}&redirect_uri={evil}",
            client.id(),
            client.id()
        ),
        format!(
            "client_id={}&redirect_uri={evil}&redirect_uri={evil}",
            client.id()
        ),
        format!("client_id={}&redirect_uri=%ZZ", client.id()),
    ] {
        let resp = browser.get(&app.url(&format!("/authorize?{query}"))).await;
        assert!(
            resp.status().is_client_error(),
            "{query}: {}",
            resp.status()
        );
        assert!(resp.headers().get("location").is_none(), "{query}");
    }
    app.stop().await;
}

#[tokio::test]
async fn pkce_cannot_be_downgraded() {
    let app = TestApp::start().await;
    let client = app.confidential_client().await;
    let browser = Browser::new();
    // A code issued without a challenge does not accept a verifier.
    let url = format!(
        "{}?response_type=code&client_id={}&redirect_uri={}&scope=openid&state=st",
        app.url("/authorize"),
        client.id(),
        url::form_urlencoded::byte_serialize(client.redirect_uri.as_bytes()).collect::<String>()
    );
    let back = authorize_through(&app, &browser, &url, &TgUser::new(1)).await;
    let code = query_param(&back, "code").unwrap();
    let (status, body) = token(
        &app,
        &client,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", &client.redirect_uri),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    // A code issued with a challenge does not work without the verifier.
    app.clock.advance(1);
    let back = authorize_through(
        &app,
        &browser,
        &authorize_url(&app, &client, &client.redirect_uri, ""),
        &TgUser::new(1),
    )
    .await;
    let code = query_param(&back, "code").unwrap();
    let (status, body) = token(
        &app,
        &client,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", &client.redirect_uri),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    app.stop().await;
}

#[tokio::test]
async fn parallel_refreshes_of_one_token_leave_one_successor_and_then_a_revoked_family() {
    let app = TestApp::start().await;
    let client = app.confidential_client().await;
    let back = authorize_through(
        &app,
        &Browser::new(),
        &authorize_url(&app, &client, &client.redirect_uri, ""),
        &TgUser::new(2),
    )
    .await;
    let code = query_param(&back, "code").unwrap();
    let (_, tokens) = token(
        &app,
        &client,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", &client.redirect_uri),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    let refresh = tokens["refresh_token"].as_str().unwrap().to_string();
    let attempts = (0..10).map(|_| {
        let refresh = refresh.clone();
        let app = &app;
        let client = &client;
        async move {
            token(
                app,
                client,
                &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
            )
            .await
        }
    });
    let results = futures::future::join_all(attempts).await;
    let winners: Vec<&Value> = results
        .iter()
        .filter(|(s, _)| *s == StatusCode::OK)
        .map(|(_, b)| b)
        .collect();
    assert_eq!(winners.len(), 1, "exactly one rotation succeeds");
    for (status, body) in results.iter().filter(|(s, _)| *s != StatusCode::OK) {
        assert_eq!(
            (*status, body["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_grant"))
        );
    }
    // The losers presented a used token: the family, successor included, is revoked.
    let successor = winners[0]["refresh_token"].as_str().unwrap();
    let (status, body) = token(
        &app,
        &client,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", successor),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    app.stop().await;
}

/// Every comparison of a secret goes through `secrets::constant_time_eq` (or aws-lc-rs's
/// `hmac::verify`): a plain `==` on a hash, a secret, a csrf token or a signature is refused here.
#[test]
fn secrets_are_compared_in_constant_time_everywhere() {
    let mut offenders = Vec::new();
    let mut stack = vec![std::path::PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src"
    ))];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            // Unit tests at the end of a file may compare freely.
            let code = text.split("#[cfg(test)]").next().unwrap_or("");
            for (n, line) in code.lines().enumerate() {
                let l = without_string_literals(line.trim());
                let l = l.as_str();
                if l.starts_with("//") {
                    continue;
                }
                for op in ["==", "!="] {
                    for side in l.split(op).collect::<Vec<_>>().windows(2) {
                        let (left, right) = (side[0], side[1]);
                        let left_operand = left
                            .trim_end()
                            .rsplit(['(', ' ', '&', '!', '{'])
                            .next()
                            .unwrap_or("");
                        let right_operand = right
                            .trim_start()
                            .split([')', ' ', ';', ',', '{'])
                            .next()
                            .unwrap_or("");
                        let secretish = [
                            "secret_hash",
                            "csrf",
                            "client_secret",
                            "signature",
                            "_hmac",
                            "hash_hex",
                            "mac",
                        ]
                        .iter()
                        .any(|w| left_operand.contains(w) || right_operand.contains(w));
                        if secretish {
                            offenders.push(format!("{}:{}: {}", path.display(), n + 1, l));
                        }
                    }
                }
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "plain comparisons of secrets:\n{}",
        offenders.join("\n")
    );
}

/// The line with its string literals emptied, so field names in quotes are not mistaken for values.
fn without_string_literals(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in line.chars() {
        if in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
                out.push('"');
            }
        } else {
            if c == '"' {
                in_string = true;
            }
            out.push(c);
        }
    }
    out
}
