//! The one HTTP client for URLs that someone other than the admin chose: a dynamically
//! registered client's `jwks_uri`, `sector_identifier_uri`, `backchannel_logout_uri` and CIBA
//! `backchannel_client_notification_endpoint`.
//!
//! It resolves names itself and connects only to the addresses it checked, so a name that
//! resolves to an internal address (DNS rebinding included) is refused at connect time. It
//! follows no redirects, goes through no proxy, sends no cookies, and caps the time and the
//! body. `outbound.allow_private` (implied in dev mode) lifts the address rule; URLs the admin
//! registered through the command line are fetched with the same client without it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

/// How long one outbound request may take, from connecting to the last byte.
pub const TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Who chose the URL about to be fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chosen {
    /// The admin (the command line, the configuration): any address may be reached.
    ByAdmin,
    /// Anyone else (dynamic registration): internal addresses are refused.
    ByClient,
}

/// Why an outbound request was not made or did not succeed; for the log and for
/// registration's error description (never holding a secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct OutboundError(String);

/// The outbound client. Cheap to clone.
#[derive(Clone)]
pub struct Outbound {
    /// Connects only to public addresses.
    guarded: reqwest::Client,
    /// Connects anywhere: for admin-chosen URLs, or when `allow_private` is set.
    open: reqwest::Client,
    allow_private: bool,
}

impl std::fmt::Debug for Outbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbound")
            .field("allow_private", &self.allow_private)
            .finish()
    }
}

fn builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .timeout(TIMEOUT)
        .connect_timeout(CONNECT_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .user_agent(concat!("telegram-oidc/", env!("CARGO_PKG_VERSION")))
}

impl Outbound {
    /// Fails only when the TLS setup cannot be loaded (a broken install).
    pub fn new(allow_private: bool) -> Result<Outbound, OutboundError> {
        let failed = |e: reqwest::Error| OutboundError(format!("the HTTP client: {e}"));
        Ok(Outbound {
            guarded: builder()
                .dns_resolver(Arc::new(PublicOnly))
                .build()
                .map_err(failed)?,
            open: builder().build().map_err(failed)?,
            allow_private,
        })
    }

    /// Whether internal addresses may be reached for every URL (`outbound.allow_private`).
    pub fn allows_private(&self) -> bool {
        self.allow_private
    }

    /// Checks the URL's host before any connection: an internal IP literal or a `localhost`
    /// name is refused when the URL is the client's choice and private addresses are not
    /// allowed. Names are checked again, after resolution, when connecting.
    pub fn check_url(&self, uri: &str, chosen: Chosen) -> Result<url::Url, OutboundError> {
        let url = url::Url::parse(uri)
            .map_err(|e| OutboundError(format!("`{uri}` is not an absolute URL: {e}")))?;
        if !matches!(url.scheme(), "https" | "http") {
            return Err(OutboundError(format!("`{uri}` is not an http(s) URL")));
        }
        if self.guards(chosen)
            && let Some(reason) = internal_host(&url)
        {
            return Err(OutboundError(format!(
                "`{uri}` points to {reason}, which this server does not reach"
            )));
        }
        Ok(url)
    }

    fn guards(&self, chosen: Chosen) -> bool {
        chosen == Chosen::ByClient && !self.allow_private
    }

    fn client(&self, chosen: Chosen) -> &reqwest::Client {
        if self.guards(chosen) {
            &self.guarded
        } else {
            &self.open
        }
    }

    /// GETs a small JSON document (a JWK set, a sector identifier list): at most `max_bytes`.
    pub async fn get_json(
        &self,
        uri: &str,
        max_bytes: usize,
        chosen: Chosen,
    ) -> Result<Value, OutboundError> {
        let url = self.check_url(uri, chosen)?;
        let response = self
            .client(chosen)
            .get(url)
            .header(
                reqwest::header::ACCEPT,
                "application/jwk-set+json, application/json",
            )
            .send()
            .await
            .map_err(request_failed)?;
        if !response.status().is_success() {
            return Err(OutboundError(format!("answered {}", response.status())));
        }
        let body = read_capped(response, max_bytes).await?;
        serde_json::from_slice(&body).map_err(|_| OutboundError("the body is not JSON".into()))
    }

    /// POSTs a form (a back-channel logout token) and returns the status; the body is not read.
    pub async fn post_form(
        &self,
        uri: &str,
        form: &[(&str, &str)],
        chosen: Chosen,
    ) -> Result<http::StatusCode, OutboundError> {
        let url = self.check_url(uri, chosen)?;
        let response = self
            .client(chosen)
            .post(url)
            .form(form)
            .send()
            .await
            .map_err(request_failed)?;
        Ok(response.status())
    }

    /// POSTs a JSON body with `Authorization: Bearer <bearer>` (a CIBA ping notification) and
    /// returns the status; the body is not read. The bearer is the receiver's own token: it
    /// goes in the header only, never in an error.
    pub async fn post_json_bearer(
        &self,
        uri: &str,
        body: &Value,
        bearer: &str,
        chosen: Chosen,
    ) -> Result<http::StatusCode, OutboundError> {
        let url = self.check_url(uri, chosen)?;
        let response = self
            .client(chosen)
            .post(url)
            .bearer_auth(bearer)
            .json(body)
            .send()
            .await
            .map_err(request_failed)?;
        Ok(response.status())
    }
}

fn request_failed(e: reqwest::Error) -> OutboundError {
    // The source chain says why (refused address, timeout); the URL is named by the caller.
    let e = e.without_url();
    let mut reason = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        reason.push_str(": ");
        reason.push_str(&s.to_string());
        source = s.source();
    }
    OutboundError(format!("request failed: {reason}"))
}

async fn read_capped(
    mut response: reqwest::Response,
    max_bytes: usize,
) -> Result<Vec<u8>, OutboundError> {
    let too_large = || OutboundError(format!("the document is larger than {max_bytes} bytes"));
    if response
        .content_length()
        .is_some_and(|n| n > max_bytes as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| OutboundError(format!("reading the body failed: {}", e.without_url())))?
    {
        if body.len() + chunk.len() > max_bytes {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// What makes the URL's host internal before any lookup: an internal IP literal, or a name
/// that always means this machine. `None` for a public literal or any other name.
pub fn internal_host(url: &url::Url) -> Option<&'static str> {
    match url.host()? {
        url::Host::Ipv4(ip) => internal_ip(IpAddr::V4(ip)),
        url::Host::Ipv6(ip) => internal_ip(IpAddr::V6(ip)),
        url::Host::Domain(name) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            (name == "localhost" || name.ends_with(".localhost")).then_some("a loopback address")
        }
    }
}

/// The range an address belongs to when this server must not connect to it for someone else:
/// loopback, private, link-local, unique-local, unspecified, multicast, carrier-grade NAT,
/// broadcast and other reserved ranges, IPv4 inside IPv6 included. `None` for a public address.
pub fn internal_ip(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => internal_v4(v4),
        IpAddr::V6(v6) => internal_v6(v6),
    }
}

fn internal_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        (127, _, _) => "a loopback address",
        (0, _, _) => "an unspecified address",
        (10, _, _) | (172, 16..=31, _) | (192, 168, _) => "a private address",
        (169, 254, _) => "a link-local address",
        (100, 64..=127, _) => "a carrier-grade NAT address",
        (224..=239, _, _) => "a multicast address",
        (240..=255, _, _) => "a reserved address",
        // IETF protocol assignments (192.0.0.0/24) and benchmarking (198.18.0.0/15).
        (192, 0, 0) | (198, 18..=19, _) => "a reserved address",
        _ => return None,
    })
}

fn internal_v6(ip: Ipv6Addr) -> Option<&'static str> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return internal_v4(v4);
    }
    let s = ip.segments();
    if ip.is_loopback() {
        return Some("a loopback address");
    }
    if ip.is_unspecified() {
        return Some("an unspecified address");
    }
    // IPv4-compatible (::a.b.c.d, deprecated) and NAT64 (64:ff9b::/96) carry an IPv4 address.
    if s[..6] == [0; 6] || s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        let v4 = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
        return internal_v4(v4).or(Some("an IPv4-compatible address"));
    }
    // 6to4 (2002::/16) carries its IPv4 address in the next 32 bits.
    if s[0] == 0x2002 {
        let v4 = Ipv4Addr::new((s[1] >> 8) as u8, s[1] as u8, (s[2] >> 8) as u8, s[2] as u8);
        if let Some(reason) = internal_v4(v4) {
            return Some(reason);
        }
    }
    Some(match s[0] {
        0xfc00..=0xfdff => "a unique-local address",
        0xfe80..=0xfebf => "a link-local address",
        0xfec0..=0xfeff => "a site-local address",
        0xff00..=0xffff => "a multicast address",
        _ => return None,
    })
}

/// The resolver of the guarded client: the system's lookup, keeping only public addresses.
/// The connector connects to exactly what this returns, so the check and the connection see
/// the same addresses.
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|a| internal_ip(a.ip()).is_none())
                .collect();
            if public.is_empty() {
                let reason = found
                    .first()
                    .and_then(|a| internal_ip(a.ip()))
                    .unwrap_or("no address");
                return Err(format!(
                    "`{host}` resolves to {reason}, which this server does not reach"
                )
                .into());
            }
            Ok(Box::new(public.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn internal_ranges_are_named() {
        for internal in [
            "127.0.0.1",
            "127.255.0.9",
            "0.0.0.0",
            "10.0.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.0.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.254",
            "224.0.0.1",
            "255.255.255.255",
            "198.18.0.1",
            "::1",
            "::",
            "fd00::1",
            "fc00::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:10.1.2.3",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
        ] {
            assert!(
                internal_ip(ip(internal)).is_some(),
                "{internal} is internal"
            );
        }
        for public in [
            "1.1.1.1",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "149.154.167.99",
            "2001:4860:4860::8888",
            "2a00:1450::1",
            "::ffff:1.1.1.1",
            "2002:0808:0808::",
        ] {
            assert!(internal_ip(ip(public)).is_none(), "{public} is public");
        }
    }

    #[test]
    fn literal_hosts_are_checked_before_any_connection() {
        let guarded = Outbound::new(false).unwrap();
        for uri in [
            "http://127.0.0.1:9/jwks",
            "https://127.0.0.1/jwks",
            "https://localhost/jwks",
            "https://api.LOCALHOST./jwks",
            "https://169.254.169.254/latest/meta-data",
            "https://10.0.0.1/",
            "https://192.168.0.1/",
            "https://[fd00::1]/",
            "https://[fe80::1]/",
            "https://[::ffff:127.0.0.1]/",
            "https://0.0.0.0/",
            "http://2130706433/",
            "http://127.1/",
            "http://0x7f000001/",
        ] {
            assert!(
                guarded.check_url(uri, Chosen::ByClient).is_err(),
                "{uri} is refused"
            );
            assert!(guarded.check_url(uri, Chosen::ByAdmin).is_ok(), "{uri}");
            assert!(
                Outbound::new(true)
                    .unwrap()
                    .check_url(uri, Chosen::ByClient)
                    .is_ok()
            );
        }
        assert!(
            guarded
                .check_url("https://app.example.com/jwks", Chosen::ByClient)
                .is_ok()
        );
        assert!(
            guarded
                .check_url("file:///etc/passwd", Chosen::ByAdmin)
                .is_err()
        );
    }

    #[tokio::test]
    async fn a_name_resolving_to_loopback_is_refused_at_connect_time() {
        // A listener that would answer, so only the address rule can make the request fail.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 1024];
                let _ = socket.read(&mut buf).await;
                let body = r#"{"keys":[]}"#;
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(answer.as_bytes()).await;
            }
        });
        // The literal rule would refuse `localhost` before connecting; the client underneath
        // shows that the resolver refuses it too.
        let guarded = Outbound::new(false).unwrap();
        let err = guarded
            .guarded
            .get(format!("http://localhost:{port}/jwks"))
            .send()
            .await
            .expect_err("a loopback address is not reached");
        assert!(
            request_failed(err).0.contains("loopback"),
            "the reason names the range"
        );
        // The same URL through the open client (admin's choice) is reached.
        let open = guarded
            .get_json(
                &format!("http://localhost:{port}/jwks"),
                1024,
                Chosen::ByAdmin,
            )
            .await
            .unwrap();
        assert_eq!(open, serde_json::json!({"keys": []}));
        server.abort();
    }
}
