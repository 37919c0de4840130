//! The address a request came from: the TCP peer, or, when the peer is a proxy the admin
//! trusts (`trusted_proxies`), the last address in `X-Forwarded-For` that is not one of those
//! proxies. Throttles and (later) the audit log key on it.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;

use crate::state::AppState;

/// The client's address as this server can best tell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
            .unwrap_or(IpAddr::from([0, 0, 0, 0]));
        Ok(ClientAddr(client_addr(
            peer,
            &parts.headers,
            &app.config.trusted_proxies,
        )))
    }
}

/// `peer` itself unless it is a trusted proxy; then the right-most address of
/// `X-Forwarded-For` that no trusted proxy holds (the left-most ones are the client's to
/// write, so they are never believed).
pub fn client_addr(peer: IpAddr, headers: &HeaderMap, trusted: &[ipnet::IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(&canonical(*ip)));
    if !is_trusted(&peer) {
        return canonical(peer);
    }
    let mut hops: Vec<IpAddr> = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        let Ok(value) = value.to_str() else {
            return canonical(peer);
        };
        for hop in value.split(',') {
            match hop.trim().parse::<IpAddr>() {
                Ok(ip) => hops.push(canonical(ip)),
                Err(_) => return canonical(peer),
            }
        }
    }
    hops.into_iter()
        .rev()
        .find(|ip| !is_trusted(ip))
        .unwrap_or_else(|| canonical(peer))
}

/// IPv4 addresses mapped into IPv6 count as the IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// The key a per-address limit counts under: the address for IPv4, its /64 for IPv6 (one
/// host usually holds a whole /64).
pub fn limit_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

/// Longest user agent kept in the audit log.
const MAX_USER_AGENT: usize = 256;

/// Middleware: runs the request with its address, user agent and request id known to the
/// audit log (`flow::audit::REQUEST`).
pub async fn request_meta(
    axum::extract::State(app): axum::extract::State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::from([0, 0, 0, 0]));
    let headers = request.headers();
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.chars().take(MAX_USER_AGENT).collect::<String>())
    };
    let meta = crate::flow::audit::RequestMeta {
        ip: Some(client_addr(peer, headers, &app.config.trusted_proxies).to_string()),
        user_agent: text("user-agent"),
        request_id: text("x-request-id"),
    };
    crate::flow::audit::REQUEST
        .scope(meta, next.run(request))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in xff {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    #[test]
    fn forwarded_addresses_count_only_behind_a_trusted_proxy() {
        let proxies: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        // Not behind a trusted proxy: the header is the client's own writing.
        assert_eq!(
            client_addr(ip("203.0.113.9"), &headers(&["1.2.3.4"]), &proxies),
            ip("203.0.113.9")
        );
        // Behind one: the right-most untrusted hop.
        assert_eq!(
            client_addr(
                ip("10.0.0.2"),
                &headers(&["6.6.6.6, 198.51.100.7", "10.0.0.3"]),
                &proxies
            ),
            ip("198.51.100.7")
        );
        // A broken header is not believed.
        assert_eq!(
            client_addr(ip("10.0.0.2"), &headers(&["nonsense"]), &proxies),
            ip("10.0.0.2")
        );
        assert_eq!(
            client_addr(ip("::ffff:203.0.113.9"), &headers(&[]), &proxies),
            ip("203.0.113.9")
        );
        assert_eq!(limit_key(ip("2001:db8:1:2:3:4:5:6")), ip("2001:db8:1:2::"));
    }
}
