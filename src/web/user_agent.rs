//! What a browser is, as the user will recognise it in their list of sessions and in a login
//! alert ("Firefox on Linux"), from its `User-Agent`; and roughly where it is, when a GeoIP
//! database is configured. Only the summary is stored, never the header itself or the address.

use std::net::IpAddr;

use axum::http::{HeaderMap, header};

use crate::flow::session::Browser;
use crate::state::App;

/// The browser a request comes from: its summary, and its place if the GeoIP database knows it.
pub fn browser_of(app: &App, headers: &HeaderMap, addr: IpAddr) -> Browser {
    Browser {
        device: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .and_then(summarize),
        place: app.geoip.as_ref().and_then(|g| g.place(addr)),
    }
}

/// "Browser on system", from the tokens browsers have sent for years. Order matters: Edge and
/// Opera also say Chrome, Chrome also says Safari.
pub fn summarize(ua: &str) -> Option<String> {
    let ua = ua.trim();
    if ua.is_empty() {
        return None;
    }
    let has = |token: &str| ua.contains(token);
    let browser = if has("Edg/") || has("EdgA/") || has("EdgiOS/") {
        "Edge"
    } else if has("OPR/") || has("Opera") {
        "Opera"
    } else if has("YaBrowser/") {
        "Yandex Browser"
    } else if has("SamsungBrowser/") {
        "Samsung Internet"
    } else if has("Firefox/") || has("FxiOS/") {
        "Firefox"
    } else if has("Chrome/") || has("Chromium/") || has("CriOS/") {
        "Chrome"
    } else if has("Safari/") && has("Version/") {
        "Safari"
    } else if has("Telegram") {
        "Telegram"
    } else if let Some(program) = ua.split(['/', ' ']).next().filter(|p| !p.is_empty()) {
        // A program, not a browser (curl, an app's HTTP client): its own name.
        return Some(clean(program));
    } else {
        return None;
    };
    let system = if has("Android") {
        Some("Android")
    } else if has("iPhone") || has("iPad") || has("iOS") {
        Some("iOS")
    } else if has("Windows") {
        Some("Windows")
    } else if has("CrOS") {
        Some("ChromeOS")
    } else if has("Mac OS X") || has("Macintosh") {
        Some("macOS")
    } else if has("Linux") || has("X11") {
        Some("Linux")
    } else {
        None
    };
    Some(match system {
        Some(system) => format!("{browser} on {system}"),
        None => browser.to_owned(),
    })
}

/// A name from the header, printable and short.
fn clean(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_ascii_graphic())
        .take(40)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_browsers_are_named() {
        let cases = [
            (
                "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
                "Firefox on Linux",
            ),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 Edg/126.0.0.0",
                "Edge on Windows",
            ),
            (
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
                "Safari on macOS",
            ),
            (
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
                "Safari on iOS",
            ),
            (
                "Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Mobile Safari/537.36",
                "Chrome on Android",
            ),
            (
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/126.0.0.0 Safari/537.36",
                "Chrome on Linux",
            ),
            ("curl/8.5.0", "curl"),
        ];
        for (ua, want) in cases {
            assert_eq!(summarize(ua).as_deref(), Some(want), "{ua}");
        }
        assert_eq!(summarize("  "), None);
        assert_eq!(summarize("a\u{0}b/1").as_deref(), Some("ab"));
    }
}
