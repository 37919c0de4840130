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
    // No keys directory: these are not a server's settings; nothing is made up.
    let (ok, _, stderr) = run(&config, &["keys", "list"]);
    assert!(!ok);
    assert!(
        stderr.contains("no keys directory at") && stderr.contains("--config"),
        "{stderr}"
    );
    assert!(!dir.path().join("keys").exists());
    std::fs::create_dir(dir.path().join("keys")).unwrap();
    let (ok, before, _) = run(&config, &["keys", "list"]);
    assert!(ok);
    assert_eq!(before.lines().count(), 3, "{before}");
    let (ok, rotated, _) = run(&config, &["keys", "rotate", "--alg", "rs256"]);
    assert!(ok && rotated.contains("RS256"));
    let (_, after, _) = run(&config, &["keys", "list"]);
    assert_eq!(after.lines().count(), 4);
    assert_eq!(after.lines().filter(|l| l.contains("retired")).count(), 1);
}

/// A `serve` process started with a settings file, once it says where it listens.
pub struct Served {
    child: std::process::Child,
    stderr: BufReader<std::process::ChildStderr>,
    pub address: String,
    /// The log up to the line that gave the address.
    pub log: String,
}

impl Served {
    pub fn start(config: &Path, rust_log: Option<&str>) -> Served {
        let mut command = Command::new(BIN);
        command
            .arg("--config")
            .arg(config)
            .arg("serve")
            .env_remove("TGOIDC_CONFIG")
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(filter) = rust_log {
            command.env("RUST_LOG", filter);
        }
        let mut child = command.spawn().unwrap();
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
        Served {
            child,
            stderr,
            address,
            log,
        }
    }

    /// SIGTERM, then the exit status and the whole log.
    pub fn stop(mut self) -> (std::process::ExitStatus, String) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut self.stderr, &mut rest).unwrap();
        let exit = self.child.wait().unwrap();
        (exit, self.log + &rest)
    }
}

#[test]
fn serve_answers_and_stops_gracefully_on_sigterm_without_logging_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let served = Served::start(&config, Some("debug"));
    let body = reqwest::blocking_get(&format!("http://{}/healthz", served.address));
    assert_eq!(body, "ok");
    let (exit, log) = served.stop();
    assert!(exit.success(), "graceful shutdown exits 0, got {exit:?}");
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

#[test]
fn mistakes_on_the_command_line_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let (ok, stdout, stderr) = run(&config, &["client", "list"]);
    assert!(ok);
    assert_eq!(stdout, "", "nothing on stdout for scripts");
    assert!(stderr.contains("no clients"), "{stderr}");

    let (ok, _, stderr) = run(&config, &["serve", "--port", "8443"]);
    assert!(!ok);
    assert!(stderr.contains("listen = \"0.0.0.0:8443\""), "{stderr}");

    let (ok, _, stderr) = run(&config, &["dev", "--listen", "127.0.0.1:0"]);
    assert!(!ok);
    assert!(
        stderr.contains("dev mode takes no settings file"),
        "{stderr}"
    );
    let out = Command::new(BIN)
        .args(["dev", "--listen", "0.0.0.0:0", "--data"])
        .arg(dir.path().join("dev"))
        .env_remove("TGOIDC_CONFIG")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("loopback only"), "{stderr}");
    assert!(
        !dir.path().join("dev").exists(),
        "nothing made before refusing"
    );

    let out = Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .arg("check-config")
        .env("TGOIDC_TOKENS__CODE_TTL_SECS", "soon")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("tokens.code_ttl_secs") && stderr.contains("TGOIDC_TOKENS__CODE_TTL_SECS"),
        "{stderr}"
    );

    let (_, help, _) = run(&config, &["client", "add", "--help"]);
    let usage = help.lines().find(|l| l.starts_with("Usage:")).unwrap();
    assert!(usage.contains("--redirect-uri"), "{help}");
    for described in [
        "--name",
        "--id-token-alg",
        "--access-token-format",
        "--refresh",
    ] {
        let line = help
            .lines()
            .find(|l| l.trim_start().starts_with(described))
            .unwrap_or_else(|| panic!("{described} in {help}"));
        let next = help.lines().skip_while(|l| *l != line).nth(1).unwrap_or("");
        assert!(
            line.split_whitespace().count() > 2 || next.starts_with("          "),
            "{described} has a description: {help}"
        );
    }
}

/// `dev` in a folder: the demo client's secret survives a restart, and the demo callback page
/// puts it in the curl command.
#[test]
fn dev_keeps_the_demo_secret_and_shows_it_on_its_callback_page() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let start = || {
        let mut child = Command::new(BIN)
            .args(["dev", "--listen", "127.0.0.1:0", "--data"])
            .arg(&data)
            .env_remove("TGOIDC_CONFIG")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let (mut issuer, mut secret) = (String::new(), String::new());
        while secret.is_empty() || issuer.is_empty() {
            let mut line = String::new();
            assert!(out.read_line(&mut line).unwrap() > 0, "dev exited");
            let line = line.trim();
            if let Some(v) = line.strip_prefix("issuer:") {
                issuer = v.trim().to_owned();
            }
            if let Some(v) = line.strip_prefix("client_secret:") {
                secret = v.split_whitespace().next().unwrap().to_owned();
            }
        }
        // The rest of what dev prints is read too: a closed pipe would end it at its next line.
        std::thread::spawn(move || {
            let mut rest = String::new();
            let _ = std::io::Read::read_to_string(&mut out, &mut rest);
        });
        (child, issuer, secret)
    };
    let (mut first, issuer, secret) = start();
    // The address is printed before the server is ready: ask until it answers (at most 30 s).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let page = runtime.block_on(async {
        let http = ::reqwest::Client::new();
        for _ in 0..300 {
            if let Ok(resp) = http.get(format!("{issuer}/healthz")).send().await
                && resp.status().is_success()
            {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        http.get(format!("{issuer}/dev/callback?code=c0de"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    });
    assert!(
        page.contains(&format!(":{secret}'")),
        "the curl command carries the secret: {page}"
    );
    first.kill().unwrap();
    first.wait().unwrap();
    let (mut second, _, again) = start();
    assert_eq!(again, secret, "the same secret after a restart");
    second.kill().unwrap();
    second.wait().unwrap();
    let kept = data.join("dev-client-secret");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&kept).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "readable by its owner only");
    }
}

#[tokio::test]
async fn admin_keys_are_created_listed_and_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let (ok, out, stderr) = run(
        &config,
        &[
            "admin-key",
            "create",
            "--scope",
            "read",
            "--name",
            "dashboard",
            "--expires-in",
            "90d",
            "--allow-ip",
            "10.0.0.0/8,192.0.2.7",
        ],
    );
    assert!(ok, "{stderr}");
    let key = out
        .lines()
        .find_map(|l| l.strip_prefix("key:"))
        .unwrap()
        .trim()
        .to_owned();
    let id = out
        .lines()
        .find_map(|l| l.strip_prefix("id:"))
        .unwrap()
        .trim()
        .to_owned();
    assert!(key.starts_with("tgak_") && key.len() == 5 + 43, "{key}");
    // Stored as its SHA-256 only, with what was asked for.
    let store =
        telegram_oidc::open_store(&format!("sqlite://{}", dir.path().join("cli.db").display()))
            .await
            .unwrap();
    let stored = store
        .admin_key_by_hash(&telegram_oidc::secrets::token_hash(&key))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.id, id);
    assert_eq!(stored.scope, telegram_oidc::store::AdminScope::Read);
    assert_eq!(stored.allow_ips.len(), 2);
    let lifetime = stored.expires_at.unwrap() - stored.created_at;
    assert_eq!(lifetime, 90 * 86_400);
    let db = std::fs::read(dir.path().join("cli.db")).unwrap();
    assert!(
        !db.windows(key.len()).any(|w| w == key.as_bytes()),
        "the key is in the database"
    );

    let (ok, listed, _) = run(&config, &["admin-key", "list"]);
    assert!(ok);
    let line = listed.lines().find(|l| l.starts_with(&id)).unwrap();
    assert!(
        line.contains("dashboard")
            && line.contains("read")
            && line.contains("live")
            && line.contains("10.0.0.0/8,192.0.2.7/32"),
        "{line}"
    );
    assert!(!listed.contains(&key));

    let (ok, _, stderr) = run(&config, &["admin-key", "revoke", &id]);
    assert!(ok, "{stderr}");
    let (_, listed, _) = run(&config, &["admin-key", "list"]);
    assert!(
        listed
            .lines()
            .find(|l| l.starts_with(&id))
            .unwrap()
            .contains("revoked")
    );
    let (ok, _, stderr) = run(&config, &["admin-key", "revoke", &id]);
    assert!(!ok && stderr.contains("no admin key"), "{stderr}");
    let (ok, _, stderr) = run(&config, &["admin-key", "create", "--scope", "admin"]);
    assert!(!ok, "{stderr}");
    let (ok, _, stderr) = run(
        &config,
        &[
            "admin-key",
            "create",
            "--scope",
            "write",
            "--allow-ip",
            "10.0.0.0/33",
        ],
    );
    assert!(!ok && stderr.contains("10.0.0.0/33"), "{stderr}");
    let audit = store
        .query_audit(&telegram_oidc::store::AuditQuery {
            event: Some("admin.admin_key".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(audit.len(), 2);
    assert!(audit.iter().all(|e| e.actor.as_deref() == Some("cli")));
    assert!(!serde_json::to_string(&audit).unwrap().contains(&key));
}
