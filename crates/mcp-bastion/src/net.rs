//! Trusted proxies: the client's IP address and the external base URL, read
//! from `Forwarded`, `X-Forwarded-*` and `X-Real-IP` only when the TCP peer is
//! a proxy you trust.
//!
//! Anyone can send `X-Forwarded-For: 203.0.113.9`. Believing it from anyone
//! would let a client pick the key of its own rate limit, so [`TrustedProxies`]
//! reads these headers only when the peer address (axum's
//! `ConnectInfo<SocketAddr>`) is inside one of the configured CIDRs (your
//! nginx); for every other peer the peer address *is* the client.
//!
//! From a trusted peer, the client is found by walking the forwarded chain from
//! the right (the hop closest to us) and skipping trusted proxies: the first
//! untrusted address is the client. Entries to its left were written by the
//! client itself and are never believed. Headers are read in this order:
//! `Forwarded` (RFC 7239, `for=`), then `X-Forwarded-For`, then `X-Real-IP`.
//!
//! ```
//! use std::net::{IpAddr, SocketAddr};
//! use http::HeaderMap;
//! use mcp_bastion::net::TrustedProxies;
//!
//! let proxies = TrustedProxies::parse(["10.0.0.0/8"]).unwrap();
//! let mut headers = HeaderMap::new();
//! headers.insert("x-forwarded-for", "1.1.1.1, 203.0.113.9, 10.0.0.2".parse().unwrap());
//!
//! // from nginx (trusted): the rightmost untrusted entry is the client
//! let nginx: IpAddr = "10.0.0.1".parse().unwrap();
//! assert_eq!(proxies.client_ip(Some(nginx), &headers), Some("203.0.113.9".parse().unwrap()));
//!
//! // from anyone else: the header is ignored, the peer is the client
//! let stranger: IpAddr = "198.51.100.7".parse().unwrap();
//! assert_eq!(proxies.client_ip(Some(stranger), &headers), Some(stranger));
//! ```

use std::{
    fmt,
    net::{IpAddr, SocketAddr},
    str::FromStr,
};

use axum::extract::ConnectInfo;
use http::{HeaderMap, Request};
use ipnet::IpNet;

/// The set of proxy networks whose forwarding headers are believed.
///
/// Empty by default: no header is believed and the client IP is the peer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
}

/// A CIDR (or bare address) that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an IP address or CIDR (e.g. 10.0.0.0/8, ::1/128, 127.0.0.1)")]
pub struct InvalidCidr(pub String);

impl TrustedProxies {
    /// Trusts nobody: forwarding headers are ignored.
    pub fn none() -> Self {
        Self::default()
    }

    /// Trusts the given networks.
    pub fn new(nets: impl IntoIterator<Item = IpNet>) -> Self {
        Self {
            nets: nets.into_iter().map(|n| n.trunc()).collect(),
        }
    }

    /// Parses CIDRs such as `10.0.0.0/8` or bare addresses such as `127.0.0.1`.
    pub fn parse<I, S>(cidrs: I) -> Result<Self, InvalidCidr>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        cidrs
            .into_iter()
            .map(|s| parse_cidr(s.as_ref()))
            .collect::<Result<Vec<_>, _>>()
            .map(Self::new)
    }

    /// Adds one trusted network.
    pub fn with(mut self, net: IpNet) -> Self {
        self.nets.push(net.trunc());
        self
    }

    /// The trusted networks.
    pub fn networks(&self) -> &[IpNet] {
        &self.nets
    }

    /// Whether `ip` is one of the trusted proxies (IPv4-mapped IPv6 addresses
    /// count as their IPv4 address).
    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.nets.iter().any(|n| n.contains(&ip))
    }

    /// The client's address: `peer` itself unless `peer` is trusted, in which
    /// case the forwarding headers name it. `None` only when `peer` is unknown.
    pub fn client_ip(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let peer = canonical(peer?);
        if !self.is_trusted(peer) {
            return Some(peer);
        }
        let chain = forwarded_for(headers);
        let chain = if chain.is_empty() {
            x_forwarded_for(headers)
        } else {
            chain
        };
        if chain.is_empty() {
            return Some(
                header_str(headers, "x-real-ip")
                    .and_then(parse_node)
                    .map(canonical)
                    .unwrap_or(peer),
            );
        }
        // Walk from the hop nearest to us; the first untrusted address is the
        // client. An entry we cannot read ends the walk at the last trusted hop.
        let mut client = peer;
        for entry in chain.iter().rev() {
            match entry {
                Some(ip) => {
                    client = *ip;
                    if !self.is_trusted(*ip) {
                        break;
                    }
                }
                None => break,
            }
        }
        Some(client)
    }

    /// [`client_ip`](Self::client_ip) for a request served with
    /// `into_make_service_with_connect_info::<SocketAddr>()`.
    pub fn client_ip_of<B>(&self, req: &Request<B>) -> Option<IpAddr> {
        let peer = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        self.client_ip(peer, req.headers())
    }

    /// The scheme, host and path prefix under which the client reached us,
    /// from `Forwarded` (`proto=`, `host=`) and `X-Forwarded-Proto`,
    /// `X-Forwarded-Host`, `X-Forwarded-Prefix`: only from a trusted peer
    /// (otherwise every field is `None`). Values that could break out of a URL
    /// (spaces, quotes, `//`, control characters) are dropped.
    pub fn external_base(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> ExternalBase {
        if !peer.is_some_and(|p| self.is_trusted(p)) {
            return ExternalBase::default();
        }
        let forwarded = forwarded_params(headers);
        let last = |name: &str| {
            forwarded
                .iter()
                .rev()
                .find_map(|(k, v)| k.eq_ignore_ascii_case(name).then(|| v.clone()))
        };
        // Comma lists come from several hops: the first is the client-facing one.
        let first =
            |name| header_str(headers, name).and_then(|v| v.split(',').next().map(str::trim));
        let proto = last("proto")
            .or_else(|| first("x-forwarded-proto").map(str::to_owned))
            .map(|p| p.to_ascii_lowercase())
            .filter(|p| p == "http" || p == "https");
        let host = last("host")
            .or_else(|| first("x-forwarded-host").map(str::to_owned))
            .filter(|h| {
                !h.is_empty()
                    && h.bytes()
                        .all(|b| b.is_ascii_graphic() && !b"/\\\"@?#".contains(&b))
            });
        let prefix = first("x-forwarded-prefix")
            .map(|p| p.trim_end_matches('/').to_owned())
            .filter(|p| {
                p.is_empty()
                    || (p.starts_with('/')
                        && !p.contains("//")
                        && p.bytes()
                            .all(|b| b.is_ascii_graphic() && !b"\\\"?#".contains(&b)))
            });
        ExternalBase {
            proto,
            host,
            prefix,
        }
    }
}

impl FromStr for TrustedProxies {
    type Err = InvalidCidr;

    /// Comma-separated CIDRs.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s.split(',').map(str::trim).filter(|s| !s.is_empty()))
    }
}

impl fmt::Display for TrustedProxies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, n) in self.nets.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{n}")?;
        }
        Ok(())
    }
}

/// Where the client reached us, as reported by a trusted proxy. See
/// [`TrustedProxies::external_base`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExternalBase {
    /// `http` or `https`.
    pub proto: Option<String>,
    /// The `Host` the client used (with port if any).
    pub host: Option<String>,
    /// A path prefix such as `/k/abc` (no trailing slash; empty for the root).
    pub prefix: Option<String>,
}

/// Parses `10.0.0.0/8` or a bare address (a host route).
pub fn parse_cidr(s: &str) -> Result<IpNet, InvalidCidr> {
    let s = s.trim();
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| InvalidCidr(s.to_owned()))
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Every `X-Forwarded-For` entry, left to right; `None` for one that is not
/// an address.
fn x_forwarded_for(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    headers
        .get_all("x-forwarded-for")
        .iter()
        .flat_map(|v| v.to_str().unwrap_or("-").split(','))
        .map(|s| parse_node(s.trim()).map(canonical))
        .collect()
}

/// Every `for=` of `Forwarded`, left to right.
fn forwarded_for(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    forwarded_params(headers)
        .into_iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("for"))
        .map(|(_, v)| parse_node(&v).map(canonical))
        .collect()
}

/// The `key=value` pairs of every `Forwarded` element, in order, quotes removed.
fn forwarded_params(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .get_all("forwarded")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split([',', ';']))
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            Some((k.trim().to_owned(), v.trim().trim_matches('"').to_owned()))
        })
        .collect()
}

/// An address as forwarding headers write it: `1.2.3.4`, `1.2.3.4:80`,
/// `[::1]`, `[::1]:80`, `::1`.
fn parse_node(s: &str) -> Option<IpAddr> {
    let s = s.trim().trim_matches('"');
    if let Some(rest) = s.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    s.parse::<IpAddr>()
        .ok()
        .or_else(|| s.parse::<SocketAddr>().ok().map(|a| a.ip()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn untrusted_peer_spoofing_x_forwarded_for_changes_nothing() {
        let p = TrustedProxies::parse(["10.0.0.0/8"]).unwrap();
        let h = headers(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-real-ip", "7.7.7.7"),
            ("forwarded", "for=8.8.8.8"),
        ]);
        assert_eq!(
            p.client_ip(Some(ip("192.0.2.1")), &h),
            Some(ip("192.0.2.1"))
        );
        assert_eq!(
            TrustedProxies::none().client_ip(Some(ip("10.0.0.1")), &h),
            Some(ip("10.0.0.1"))
        );
    }

    #[test]
    fn trusted_peer_rightmost_untrusted_entry_is_the_client() {
        let p = TrustedProxies::parse(["10.0.0.0/8", "127.0.0.1"]).unwrap();
        let h = headers(&[
            ("x-forwarded-for", "9.9.9.9, 203.0.113.5"),
            ("x-forwarded-for", "10.1.1.1"),
        ]);
        assert_eq!(
            p.client_ip(Some(ip("127.0.0.1")), &h),
            Some(ip("203.0.113.5"))
        );
        // every hop trusted: the leftmost one is as far as we can see
        let h = headers(&[("x-forwarded-for", "10.2.2.2, 10.1.1.1")]);
        assert_eq!(p.client_ip(Some(ip("10.0.0.1")), &h), Some(ip("10.2.2.2")));
        // garbage stops the walk at the last trusted hop
        let h = headers(&[("x-forwarded-for", "1.1.1.1, nonsense, 10.1.1.1")]);
        assert_eq!(p.client_ip(Some(ip("10.0.0.1")), &h), Some(ip("10.1.1.1")));
    }

    #[test]
    fn forwarded_wins_over_x_forwarded_for_and_real_ip_is_the_last_resort() {
        let p = TrustedProxies::parse(["::1/128", "127.0.0.0/8"]).unwrap();
        let h = headers(&[
            (
                "forwarded",
                r#"for="[2001:db8::17]:4711";proto=https, for=127.0.0.2"#,
            ),
            ("x-forwarded-for", "5.5.5.5"),
        ]);
        assert_eq!(p.client_ip(Some(ip("::1")), &h), Some(ip("2001:db8::17")));
        let h = headers(&[("forwarded", "for=192.0.2.60:8080;by=203.0.113.43")]);
        assert_eq!(
            p.client_ip(Some(ip("127.0.0.1")), &h),
            Some(ip("192.0.2.60"))
        );
        let h = headers(&[("x-real-ip", "198.51.100.1")]);
        assert_eq!(
            p.client_ip(Some(ip("::ffff:127.0.0.1")), &h),
            Some(ip("198.51.100.1"))
        );
        assert_eq!(
            p.client_ip(Some(ip("127.0.0.1")), &HeaderMap::new()),
            Some(ip("127.0.0.1"))
        );
        assert_eq!(p.client_ip(None, &h), None);
    }

    #[test]
    fn external_base_only_from_trusted_peers_and_only_safe_values() {
        let p = TrustedProxies::parse(["127.0.0.1"]).unwrap();
        let h = headers(&[
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "mcp.example.com"),
            ("x-forwarded-prefix", "/k/abc/"),
        ]);
        let base = p.external_base(Some(ip("127.0.0.1")), &h);
        assert_eq!(base.proto.as_deref(), Some("https"));
        assert_eq!(base.host.as_deref(), Some("mcp.example.com"));
        assert_eq!(base.prefix.as_deref(), Some("/k/abc"));
        assert_eq!(
            p.external_base(Some(ip("192.0.2.1")), &h),
            ExternalBase::default()
        );
        let h = headers(&[
            ("forwarded", "proto=http;host=a.example"),
            ("x-forwarded-prefix", "//evil.example"),
        ]);
        let base = p.external_base(Some(ip("127.0.0.1")), &h);
        assert_eq!(base.host.as_deref(), Some("a.example"));
        assert_eq!(base.proto.as_deref(), Some("http"));
        assert_eq!(base.prefix, None);
    }

    #[test]
    fn parses_cidrs_and_bare_addresses() {
        let p: TrustedProxies = "10.0.0.0/8, 127.0.0.1,::1".parse().unwrap();
        assert_eq!(p.to_string(), "10.0.0.0/8,127.0.0.1/32,::1/128");
        assert!(TrustedProxies::parse(["10.0.0.0/33"]).is_err());
        assert!(TrustedProxies::parse(["nginx"]).is_err());
    }
}
