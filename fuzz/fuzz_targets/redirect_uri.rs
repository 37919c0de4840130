//! Redirect URI registration (`oidc::clients::check_redirect_uri`) and matching
//! (`oidc::authorize::redirect_uri_matches`). Input: a flag byte (bit 0: a public client),
//! then lines: the registered URIs, and last the URI an authorization request names.
//! A match must be exact, or, for a public client, a loopback IP URI that differs only in its
//! port (RFC 8252 §7.3), which a browser then sends to that same loopback address and path.
#![no_main]

use libfuzzer_sys::fuzz_target;
use telegram_oidc::oidc::authorize::redirect_uri_matches;
use telegram_oidc::oidc::clients::{NewClient, build_client, check_redirect_uri};
use telegram_oidc::store::ClientKind;

/// `uri` with a `:port` after a loopback IP host taken out, found independently of the code
/// under test: by the URL parser, which must see the same loopback host and no credentials.
fn loopback_without_port(uri: &str) -> Option<(String, String)> {
    let parsed = url::Url::parse(uri).ok()?;
    let loopback = match parsed.host()? {
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
        url::Host::Domain(_) => false,
    };
    if parsed.scheme() != "http" || !loopback || !parsed.username().is_empty() {
        return None;
    }
    if parsed.password().is_some() || parsed.fragment().is_some() {
        return None;
    }
    Some((
        parsed.host_str()?.to_owned(),
        format!("{}?{}", parsed.path(), parsed.query().unwrap_or("")),
    ))
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let mut lines: Vec<&str> = text.split('\n').collect();
    let Some(requested) = lines.pop() else {
        return;
    };
    let _ = check_redirect_uri(requested);
    let kind = if flags & 1 == 1 {
        ClientKind::Public
    } else {
        ClientKind::Confidential
    };
    let new = NewClient {
        name: "Fuzz".into(),
        kind,
        redirect_uris: lines.iter().map(|l| (*l).to_owned()).collect(),
        ..NewClient::default()
    };
    let Ok((client, _)) = build_client(new, 0) else {
        return;
    };
    for registered in &client.settings.redirect_uris {
        assert!(redirect_uri_matches(&client, registered));
    }
    if !redirect_uri_matches(&client, requested) {
        return;
    }
    if client.settings.redirect_uris.iter().any(|r| r == requested) {
        return;
    }
    assert_eq!(
        kind,
        ClientKind::Public,
        "inexact match for a confidential client"
    );
    assert!(!requested.contains('#'));
    // Invalid ports (over 65535) are let through by the matcher: no browser can follow them.
    if let Some(got) = loopback_without_port(requested) {
        assert!(
            client
                .settings
                .redirect_uris
                .iter()
                .any(|r| loopback_without_port(r).as_ref() == Some(&got)),
            "{requested} matched none of {:?}",
            client.settings.redirect_uris
        );
    } else {
        assert!(
            url::Url::parse(requested).is_err(),
            "{requested} matched but is not a loopback URL"
        );
    }
});
