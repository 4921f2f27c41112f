//! [`AllowedOrigins`]: which browser origins may call the server.

use std::{collections::BTreeSet, fmt};

/// An origin allowlist: exact origins (`https://app.example.com`), wildcard
/// subdomains (`https://*.example.com`), the loopback origins, or any.
///
/// Origins are compared ignoring ASCII case, and a default port is the same
/// as none (`https://a.example.com:443` is `https://a.example.com`).
///
/// ```
/// use mcp_bastion::cors::AllowedOrigins;
///
/// let origins = AllowedOrigins::new()
///     .allow("https://app.example.com").unwrap()
///     .allow("https://*.tenant.example").unwrap();
/// assert!(origins.is_allowed("https://app.example.com"));
/// assert!(origins.is_allowed("https://eu.tenant.example"));
/// assert!(!origins.is_allowed("https://tenant.example"));
/// assert!(!origins.is_allowed("https://evil.example"));
/// assert!(!origins.is_allowed("null"));
///
/// let local = AllowedOrigins::loopback();
/// assert!(local.is_allowed("http://localhost:5173"));
/// assert!(local.is_allowed("http://127.0.0.1:3000"));
/// assert!(!local.is_allowed("http://192.168.1.7:3000"));
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct AllowedOrigins {
    exact: BTreeSet<String>,
    /// `(scheme, ".suffix", port)` of `scheme://*.suffix[:port]`.
    wildcard: Vec<(String, String, Option<u16>)>,
    loopback: bool,
    any: bool,
}

impl fmt::Debug for AllowedOrigins {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut list = f.debug_list();
        if self.any {
            list.entry(&"*");
        }
        if self.loopback {
            list.entry(&"<loopback>");
        }
        list.entries(&self.exact);
        for (scheme, suffix, port) in &self.wildcard {
            match port {
                Some(p) => list.entry(&format!("{scheme}://*{suffix}:{p}")),
                None => list.entry(&format!("{scheme}://*{suffix}")),
            };
        }
        list.finish()
    }
}

/// An origin pattern that cannot be an origin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid origin {0:?}: want scheme://host[:port] or scheme://*.domain[:port], without a path"
)]
pub struct OriginPatternError(pub String);

/// `scheme://host[:port]` split, lowercased, default port dropped.
fn parse_origin(origin: &str) -> Option<(String, String, Option<u16>)> {
    let (scheme, rest) = origin.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    if !matches!(scheme.as_str(), "http" | "https") || rest.is_empty() {
        return None;
    }
    if rest.contains(['/', '?', '#', '@']) {
        return None;
    }
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (addr, after) = v6.split_once(']')?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?.parse::<u16>().ok()?),
        };
        (format!("[{}]", addr.to_ascii_lowercase()), port)
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) => (h.to_ascii_lowercase(), Some(p.parse::<u16>().ok()?)),
            None => (rest.to_ascii_lowercase(), None),
        }
    };
    if host.is_empty() {
        return None;
    }
    let default = if scheme == "https" { 443 } else { 80 };
    let port = port.filter(|p| *p != default);
    Some((scheme, host, port))
}

fn render(scheme: &str, host: &str, port: Option<u16>) -> String {
    match port {
        Some(p) => format!("{scheme}://{host}:{p}"),
        None => format!("{scheme}://{host}"),
    }
}

impl AllowedOrigins {
    /// Nothing allowed: any request with an `Origin` header is refused.
    pub fn new() -> Self {
        Self::default()
    }

    /// `http(s)://localhost`, `127.0.0.1` and `[::1]`, any port: the default
    /// when the server listens on loopback.
    pub fn loopback() -> Self {
        Self {
            loopback: true,
            ..Self::default()
        }
    }

    /// Every origin (only for servers that authenticate every request and
    /// hold nothing a browser session could abuse).
    pub fn any() -> Self {
        Self {
            any: true,
            ..Self::default()
        }
    }

    /// Adds the loopback origins.
    pub fn with_loopback(mut self) -> Self {
        self.loopback = true;
        self
    }

    /// Adds an origin (`https://app.example.com`), a wildcard
    /// (`https://*.example.com`: any subdomain, not the domain itself), or
    /// `*` (any).
    pub fn allow(mut self, pattern: &str) -> Result<Self, OriginPatternError> {
        let bad = || OriginPatternError(pattern.to_owned());
        let pattern = pattern.trim().trim_end_matches('/');
        if pattern == "*" {
            self.any = true;
            return Ok(self);
        }
        if let Some((scheme, rest)) = pattern.split_once("://*.") {
            let (scheme, host, port) =
                parse_origin(&format!("{scheme}://x.{rest}")).ok_or_else(bad)?;
            let suffix = host.strip_prefix('x').ok_or_else(bad)?.to_owned();
            if suffix.len() < 2 || suffix.contains('*') {
                return Err(bad());
            }
            self.wildcard.push((scheme, suffix, port));
            return Ok(self);
        }
        let (scheme, host, port) = parse_origin(pattern).ok_or_else(bad)?;
        if host.contains('*') {
            return Err(bad());
        }
        self.exact.insert(render(&scheme, &host, port));
        Ok(self)
    }

    /// Whether a browser at `origin` may call the server.
    pub fn is_allowed(&self, origin: &str) -> bool {
        if self.any {
            return true;
        }
        // Fast path, no allocation: an origin sent exactly in its normal
        // form (what browsers send) is itself an entry of `exact`, and
        // normalizing it would give the same string.
        if self.exact.contains(origin) {
            return true;
        }
        let Some((scheme, host, port)) = parse_origin(origin) else {
            return false;
        };
        if self.loopback && matches!(host.as_str(), "localhost" | "127.0.0.1" | "[::1]") {
            return true;
        }
        if self.exact.contains(&render(&scheme, &host, port)) {
            return true;
        }
        self.wildcard.iter().any(|(s, suffix, p)| {
            *s == scheme
                && *p == port
                && host.len() > suffix.len()
                && host.ends_with(suffix.as_str())
        })
    }

    /// True when no origin is allowed.
    pub fn is_empty(&self) -> bool {
        !self.any && !self.loopback && self.exact.is_empty() && self.wildcard.is_empty()
    }
}
