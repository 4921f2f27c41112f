use std::{fmt, net::IpAddr, str::FromStr, sync::Arc};

use http::request::Parts;

use crate::{inspect::McpRequest, principal::Principal, protocol::HEADER_SESSION_ID};

/// A function that keys a limit from the request head; `None` falls back to
/// the client IP.
pub type KeyFn = Arc<dyn Fn(&Parts) -> Option<String> + Send + Sync>;

/// What a limit is counted per.
///
/// | key | counted per | when it is missing |
/// |---|---|---|
/// | `Global` | everyone together | - |
/// | `Principal` | [`Principal::subject`] | client IP |
/// | `KeyId` | [`Principal::key_id`] (the credential's id, never the secret) | the subject, then client IP |
/// | `Ip` | client IP (through [`TrustedProxies`](crate::net::TrustedProxies)); IPv6 per /64 | one shared "unknown" bucket |
/// | `Session` | `Mcp-Session-Id` or the `session_id`/`sessionId` query | a sessionless (2026-07-28) request: the subject, then client IP; otherwise client IP (e.g. `initialize`) |
/// | `Custom` | whatever the function returns | client IP |
///
/// Session ids are chosen by whoever sends them: pair a session limit with an
/// IP or principal limit, or a client can rotate ids to escape it.
#[derive(Clone, Default)]
pub enum KeyBy {
    /// One bucket for everyone.
    Global,
    /// The authenticated subject.
    Principal,
    /// The credential's key id.
    KeyId,
    /// The client IP.
    #[default]
    Ip,
    /// The MCP session id.
    Session,
    /// A function of the request head.
    Custom(KeyFn),
}

impl KeyBy {
    /// Keys by a function of the request head (`None` falls back to the IP).
    ///
    /// The value is logged (at debug level) and, with Redis, stored in a key
    /// name: never return a secret such as a raw API key; return its id or a
    /// digest.
    pub fn custom(f: impl Fn(&Parts) -> Option<String> + Send + Sync + 'static) -> Self {
        KeyBy::Custom(Arc::new(f))
    }

    pub(crate) fn resolve(&self, parts: &Parts, ip: Option<IpAddr>) -> RateKey {
        let principal = || parts.extensions.get::<Principal>();
        let by_ip = || ip.map_or(RateKey::UnknownIp, |ip| RateKey::Ip(client_network(ip)));
        match self {
            KeyBy::Global => RateKey::Global,
            KeyBy::Ip => by_ip(),
            KeyBy::Principal => principal()
                .map(|p| RateKey::Subject(p.subject().into()))
                .unwrap_or_else(by_ip),
            KeyBy::KeyId => principal()
                .map(|p| match p.key_id() {
                    Some(k) => RateKey::KeyId(k.into()),
                    None => RateKey::Subject(p.subject().into()),
                })
                .unwrap_or_else(by_ip),
            KeyBy::Session => match session_id(parts) {
                Some(s) => RateKey::Session(s.into()),
                // A 2026-07-28 request has no session: its principal stands in.
                None if is_sessionless(parts) => principal()
                    .map(|p| RateKey::Subject(p.subject().into()))
                    .unwrap_or_else(by_ip),
                None => by_ip(),
            },
            KeyBy::Custom(f) => f(parts)
                .map(|s| RateKey::Custom(s.into()))
                .unwrap_or_else(by_ip),
        }
    }
}

/// The bucket of a client address: the address itself for IPv4, its /64 for
/// IPv6 (one subscriber usually holds a whole /64, so per-address buckets
/// would let a single client mint 2^64 keys).
pub(crate) fn client_network(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
    }
}

fn session_id(parts: &Parts) -> Option<&str> {
    if let Some(req) = parts.extensions.get::<McpRequest>() {
        return req.session_id();
    }
    parts
        .headers
        .get(HEADER_SESSION_ID)
        .and_then(|v| v.to_str().ok())
}

fn is_sessionless(parts: &Parts) -> bool {
    parts
        .extensions
        .get::<McpRequest>()
        .is_some_and(McpRequest::is_sessionless)
}

impl fmt::Debug for KeyBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyBy::Global => "Global",
            KeyBy::Principal => "Principal",
            KeyBy::KeyId => "KeyId",
            KeyBy::Ip => "Ip",
            KeyBy::Session => "Session",
            KeyBy::Custom(_) => "Custom(..)",
        })
    }
}

impl fmt::Display for KeyBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyBy::Global => "global",
            KeyBy::Principal => "principal",
            KeyBy::KeyId => "key",
            KeyBy::Ip => "ip",
            KeyBy::Session => "session",
            KeyBy::Custom(_) => "custom",
        })
    }
}

/// A key name that is not one of `global`, `principal`, `key`, `ip`, `session`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown rate-limit key `{0}` (expected global, principal, key, ip or session)")]
pub struct UnknownKey(pub String);

impl FromStr for KeyBy {
    type Err = UnknownKey;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "global" => Ok(KeyBy::Global),
            "principal" | "subject" => Ok(KeyBy::Principal),
            "key" | "key-id" | "key_id" | "api-key" => Ok(KeyBy::KeyId),
            "ip" => Ok(KeyBy::Ip),
            "session" => Ok(KeyBy::Session),
            other => Err(UnknownKey(other.to_owned())),
        }
    }
}

/// One bucket's identity. Small: a tag and an address or a shared string.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum RateKey {
    Global,
    UnknownIp,
    Ip(IpAddr),
    Subject(Arc<str>),
    KeyId(Arc<str>),
    Session(Arc<str>),
    Custom(Arc<str>),
}

impl fmt::Display for RateKey {
    /// The key as stored in Redis (and logged): `ip:1.2.3.4`, `sub:alice`…
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RateKey::Global => f.write_str("global"),
            RateKey::UnknownIp => f.write_str("ip:unknown"),
            RateKey::Ip(ip) => write!(f, "ip:{ip}"),
            RateKey::Subject(s) => write!(f, "sub:{s}"),
            RateKey::KeyId(s) => write!(f, "key:{s}"),
            RateKey::Session(s) => write!(f, "sid:{s}"),
            RateKey::Custom(s) => write!(f, "fn:{s}"),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::net::SocketAddr;

    use axum::{Router, body::Body, extract::ConnectInfo, routing::post};
    use http::{Request, StatusCode};
    use serde_json::json;
    use tower::ServiceExt;

    use super::*;
    use crate::{
        inspect::McpInspectLayer,
        protocol::{META_CLIENT_CAPABILITIES, META_PROTOCOL_VERSION},
        ratelimit::{McpRateLimitLayer, RateLimitPolicy},
    };

    /// One `tools/call` from `peer`, as `who`; a 2026-07-28 request (`_meta`,
    /// version header, no session) when `sessionless`.
    fn call(sessionless: bool, who: Option<&str>, peer: &str) -> Request<Body> {
        let mut params = json!({"name": "echo"});
        let mut req = Request::post("/mcp").header("content-type", "application/json");
        if sessionless {
            params["_meta"] =
                json!({META_PROTOCOL_VERSION: "2026-07-28", META_CLIENT_CAPABILITIES: {}});
            req = req
                .header("mcp-protocol-version", "2026-07-28")
                .header("mcp-method", "tools/call")
                .header("mcp-name", "echo");
        }
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params});
        let mut req = req.body(Body::from(body.to_string())).unwrap();
        let addr: SocketAddr = format!("{peer}:40000").parse().unwrap();
        req.extensions_mut().insert(ConnectInfo(addr));
        if let Some(who) = who {
            req.extensions_mut().insert(Principal::new(who));
        }
        req
    }

    async fn statuses(requests: Vec<Request<Body>>) -> Vec<StatusCode> {
        let app = Router::new()
            .route("/mcp", post(|| async { "ok" }))
            .layer(McpRateLimitLayer::new(
                RateLimitPolicy::new()
                    .key(KeyBy::Session)
                    .default_limit("1/min".parse().unwrap()),
            ))
            .layer(McpInspectLayer::new());
        let mut out = Vec::new();
        for req in requests {
            out.push(app.clone().oneshot(req).await.unwrap().status());
        }
        out
    }

    #[tokio::test(start_paused = true)]
    async fn a_session_key_falls_back_to_the_principal_for_sessionless_requests() {
        const OK: StatusCode = StatusCode::OK;
        const LIMITED: StatusCode = StatusCode::TOO_MANY_REQUESTS;
        // one principal from two addresses shares a bucket; another has its own
        let got = statuses(vec![
            call(true, Some("alice"), "192.0.2.1"),
            call(true, Some("alice"), "192.0.2.2"),
            call(true, Some("bob"), "192.0.2.1"),
        ])
        .await;
        assert_eq!(got, [OK, LIMITED, OK]);
        // anonymous sessionless requests are counted per client IP
        let got = statuses(vec![
            call(true, None, "192.0.2.1"),
            call(true, None, "192.0.2.2"),
            call(true, None, "192.0.2.1"),
        ])
        .await;
        assert_eq!(got, [OK, OK, LIMITED]);
        // a handshake-era request without a session (initialize) stays per IP
        let got = statuses(vec![
            call(false, Some("alice"), "192.0.2.1"),
            call(false, Some("bob"), "192.0.2.1"),
        ])
        .await;
        assert_eq!(got, [OK, LIMITED]);
    }

    #[test]
    fn ipv6_clients_are_keyed_per_64_and_ipv4_per_address() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_network(a), client_network(b));
        assert_ne!(client_network(a), client_network(c));
        assert_eq!(client_network(a).to_string(), "2001:db8:1:2::");
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(client_network(v4), v4);
    }
}
