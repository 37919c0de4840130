//! The `telegram-oidc` binary as an admin uses it: settings, client and key administration,
//! serving, and a graceful stop on SIGTERM.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use crate::harness::{BOT_TOKEN, BOT_USERNAME};

const BIN: &str = env!("CARGO_BIN_EXE_telegram-oidc");

pub fn write_config(dir: &Path) -> std::path::PathBuf {
    let token_file = dir.join("bot_token");
    std::fs::write(&token_file, format!("{BOT_TOKEN}\n")).unwrap();
    let path = dir.join("telegram-oidc.toml");
    std::fs::write(
        &path,
        format!(
            r#"issuer = "http://127.0.0.1:9"
listen = "127.0.0.1:0"
database_url = "sqlite://{db}"
keys_dir = "{keys}"

[telegram]
bot_username = "{BOT_USERNAME}"
bot_token_file = "{token}"
"#,
            db = dir.join("cli.db").display(),
            keys = dir.join("keys").display(),
            token = token_file.display(),
        ),
    )
    .unwrap();
    path
}

pub fn run(config: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN)
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("TGOIDC_CONFIG")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_wrong_setting_stops_startup_and_names_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let (ok, stdout, _) = run(&config, &["check-config"]);
    assert!(ok, "a valid config passes");
    assert!(stdout.contains("configuration is valid"));

    let out = Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .arg("check-config")
        .env("TGOIDC_ISSUER", "http://id.example.com")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("`issuer`") && stderr.contains("https"),
        "{stderr}"
    );

    std::fs::write(dir.path().join("bot_token"), "not a token").unwrap();
    let (ok, _, stderr) = run(&config, &["check-config"]);
    assert!(!ok);
    assert!(stderr.contains("telegram.bot_token"), "{stderr}");

    let (ok, _, stderr) = run(&dir.path().join("missing.toml"), &["check-config"]);
    assert!(!ok);
    assert!(stderr.contains("does not exist"), "{stderr}");
}

#[test]
fn clients_are_added_listed_shown_rotated_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let (ok, stdout, stderr) = run(
        &config,
        &[
            "client",
            "add",
            "--name",
            "Grafana",
            "--redirect-uri",
            "https://grafana.example.com/login/generic_oauth",
            "--id-token-alg",
            "es256",
            "--json",
        ],
    );
    assert!(ok, "{stderr}");
    let added: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let id = added["client_id"].as_str().unwrap().to_string();
    let secret = added["client_secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("tgcs_"));
    assert_eq!(added["settings"]["id_token_alg"], "ES256");

    let (_, listed, _) = run(&config, &["client", "list"]);
    assert!(listed.contains(&id) && listed.contains("Grafana"));
    let (_, shown, _) = run(&config, &["client", "show", &id]);
    assert!(shown.contains("https://grafana.example.com/login/generic_oauth"));
    assert!(!shown.contains(&secret), "the secret is shown only once");

    let (ok, rotated, _) = run(&config, &["client", "rotate-secret", &id]);
    assert!(ok);
    assert!(rotated.contains("tgcs_") && !rotated.contains(&secret));

    // The database holds no secret in plain text.
    let db = std::fs::read(dir.path().join("cli.db")).unwrap();
    let needle = secret.as_bytes();
    assert!(!db.windows(needle.len()).any(|w| w == needle));

    let (ok, _, stderr) = run(
        &config,
        &[
            "client",
            "add",
            "--name",
            "Bad",
            "--redirect-uri",
            "http://example.com/cb",
        ],
    );
    assert!(!ok);
    assert!(stderr.contains("https"), "{stderr}");

    let (ok, _, _) = run(&config, &["client", "remove", &id]);
    assert!(ok);
    let (ok, _, stderr) = run(&config, &["client", "show", &id]);
    assert!(!ok && stderr.contains("no client"));
}

#[test]
fn client_add_sets_subjects_email_logout_and_device_options() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let (ok, stdout, stderr) = run(
        &config,
        &[
            "client",
            "add",
            "--name",
            "Grafana",
            "--redirect-uri",
            "https://grafana.example.com/login/generic_oauth",
            "--scopes",
            "openid,profile,email",
            "--pairwise",
            "--sector-identifier",
            "example.com",
            "--synthetic-email",
            "--post-logout-redirect-uri",
            "https://grafana.example.com/login",
            "--backchannel-logout-uri",
            "https://grafana.example.com/backchannel",
            "--device-flow",
            "--json",
        ],
    );
    assert!(ok, "{stderr}");
    let added: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let s = &added["settings"];
    assert_eq!(s["subject_type"], "pairwise");
    assert_eq!(s["sector_identifier"], "example.com");
    assert_eq!(s["synthetic_email"], true);
    assert_eq!(s["device_flow"], true);
    assert_eq!(
        s["post_logout_redirect_uris"][0],
        "https://grafana.example.com/login"
    );
    assert_eq!(
        s["backchannel_logout_uri"],
        "https://grafana.example.com/backchannel"
    );
    assert!(
        s["allowed_scopes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x == "email")
    );
    // A back-channel URI must be https (or loopback), like every URI the server calls or sends to.
    let (ok, _, stderr) = run(
        &config,
        &[
            "client",
            "add",
            "--name",
            "Bad",
            "--redirect-uri",
            "https://a.example.com/cb",
            "--backchannel-logout-uri",
            "http://a.example.com/bc",
        ],
    );
    assert!(!ok, "{stderr}");
}

#[test]
fn keys_rotate_and_list() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let (ok, before, _) = run(&config, &["keys", "list"]);
    assert!(ok);
    assert_eq!(before.lines().count(), 3, "{before}");
    let (ok, rotated, _) = run(&config, &["keys", "rotate", "--alg", "rs256"]);
    assert!(ok && rotated.contains("RS256"));
    let (_, after, _) = run(&config, &["keys", "list"]);
    assert_eq!(after.lines().count(), 4);
    assert_eq!(after.lines().filter(|l| l.contains("retired")).count(), 1);
}

#[test]
fn serve_answers_and_stops_gracefully_on_sigterm_without_logging_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .env("RUST_LOG", "debug")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut log = String::new();
    let address = loop {
        let mut line = String::new();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "server exited: {log}"
        );
        log.push_str(&line);
        if let Some(rest) = line.split("address=").nth(1) {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    let body = reqwest::blocking_get(&format!("http://{address}/healthz"));
    assert_eq!(body, "ok");
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "graceful shutdown exits 0, got {exit:?}");
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    log.push_str(&rest);
    assert!(log.contains("shutting down"), "{log}");
    let secret_part = BOT_TOKEN.split(':').nth(1).unwrap();
    assert!(
        !log.contains(secret_part),
        "the bot token must never be logged"
    );
}

mod reqwest {
    /// A tiny blocking GET over a std TcpStream, so this test needs no runtime.
    pub fn blocking_get(url: &str) -> String {
        use std::io::{Read, Write};
        let rest = url.strip_prefix("http://").unwrap();
        let (host, path) = rest.split_once('/').unwrap();
        let mut stream = std::net::TcpStream::connect(host).unwrap();
        write!(
            stream,
            "GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response.split("\r\n\r\n").nth(1).unwrap_or("").to_string()
    }
}

#[test]
fn client_add_takes_a_policy_file_and_refuses_a_bad_one_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let add = |name: &str, policy: &Path| {
        run(
            &config,
            &[
                "client",
                "add",
                "--name",
                name,
                "--redirect-uri",
                "https://grafana.example.com/login/generic_oauth",
                "--policy-file",
                policy.to_str().unwrap(),
                "--json",
            ],
        )
    };

    let bad = [
        // Not TOML at all.
        ("syntax.toml", "[policy\nmember_of = -100", "policy"),
        // A rule the language does not have.
        (
            "unknown.toml",
            "[policy]\nmember = -1001234567890\n",
            "member",
        ),
        // An empty list admits nobody and is surely a mistake.
        (
            "empty.toml",
            "[policy]\nids = []\n",
            "ids: the list is empty",
        ),
        // Not a username.
        (
            "username.toml",
            "[policy]\nusernames = [\"a b\"]\n",
            "is not a Telegram username",
        ),
        // No [policy] table.
        ("no_table.toml", "member_of = -1001234567890\n", "policy"),
    ];
    for (file, text, reason) in bad {
        let path = dir.path().join(file);
        std::fs::write(&path, text).unwrap();
        let (ok, stdout, stderr) = add(file, &path);
        assert!(!ok, "{file} is refused: {stdout}");
        assert!(stderr.contains(file), "the error names the file: {stderr}");
        assert!(stderr.contains(reason), "{file}: {stderr}");
        assert!(!stdout.contains("client_id"), "{stdout}");
    }
    let (ok, _, stderr) = add("Missing", &dir.path().join("missing.toml"));
    assert!(!ok);
    assert!(
        stderr.contains("cannot read") && stderr.contains("missing.toml"),
        "{stderr}"
    );
    // Nothing was registered by the refused commands.
    let (_, listed, _) = run(&config, &["client", "list"]);
    for (file, _, _) in bad {
        assert!(!listed.contains(file), "{listed}");
    }
    assert!(!listed.contains("Missing"), "{listed}");

    // A good file: the policy is kept, shown, replaced and cleared.
    let good = dir.path().join("grafana-policy.toml");
    std::fs::write(
        &good,
        "[policy]\nany = [{ member_of = -1001234567890 }, { ids = [123456789] }]\n",
    )
    .unwrap();
    let (ok, stdout, stderr) = add("Grafana", &good);
    assert!(ok, "{stderr}");
    let added: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let id = added["client_id"].as_str().unwrap().to_string();
    assert_eq!(
        added["settings"]["access_policy"],
        serde_json::json!({"any": [
            {"member_of": {"chat": -1001234567890_i64, "role": "member", "allow_restricted": false}},
            {"ids": [123456789]},
        ]})
    );
    let (_, shown, _) = run(&config, &["client", "show", &id]);
    assert!(shown.contains("access_policy:") && shown.contains("-1001234567890"));

    let bad_update = dir.path().join("unknown.toml");
    let (ok, _, stderr) = run(
        &config,
        &[
            "client",
            "update",
            &id,
            "--policy-file",
            bad_update.to_str().unwrap(),
        ],
    );
    assert!(!ok && stderr.contains("unknown.toml"), "{stderr}");
    let (_, shown, _) = run(&config, &["client", "show", &id]);
    assert!(
        shown.contains("-1001234567890"),
        "a refused update changes nothing"
    );

    let (ok, shown, stderr) = run(&config, &["client", "update", &id, "--clear-policy"]);
    assert!(ok, "{stderr}");
    assert!(shown.contains("access_policy:  none"), "{shown}");
    let (ok, _, stderr) = run(&config, &["client", "update", &id]);
    assert!(!ok && stderr.contains("nothing to change"), "{stderr}");
}
