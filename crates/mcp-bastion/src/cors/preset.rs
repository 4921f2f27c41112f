//! [`McpCors`]: the CORS policy an MCP endpoint needs, built into an
//! [`McpCorsLayer`].

use std::time::Duration;

use http::{HeaderName, HeaderValue};

use super::{
    AllowedOrigins,
    layer::{CorsPolicy, McpCorsLayer},
};

/// Request headers browsers may send to an MCP endpoint.
pub const MCP_ALLOW_HEADERS: &[&str] = &[
    "authorization",
    "content-type",
    "accept",
    "mcp-session-id",
    "mcp-protocol-version",
    "mcp-method",
    "mcp-name",
    "last-event-id",
    "x-api-key",
];

/// Response headers browser scripts may read.
pub const MCP_EXPOSE_HEADERS: &[&str] = &[
    "mcp-session-id",
    "mcp-protocol-version",
    "www-authenticate",
    "retry-after",
    "ratelimit",
    "ratelimit-policy",
];

/// The MCP CORS preset for `origins`: see [`McpCors`] to extend it.
///
/// ```
/// use mcp_bastion::cors::{AllowedOrigins, mcp_cors};
///
/// let origins = AllowedOrigins::new().allow("https://app.example.com").unwrap();
/// let layer = mcp_cors(origins); // an McpCorsLayer
/// # let _ = layer;
/// ```
pub fn mcp_cors(origins: AllowedOrigins) -> McpCorsLayer {
    McpCors::new(origins).into_layer()
}

/// Builder of the MCP CORS policy: methods GET, POST, DELETE, OPTIONS; the
/// MCP request headers ([`MCP_ALLOW_HEADERS`]); the MCP response headers
/// exposed ([`MCP_EXPOSE_HEADERS`]); the origin allowlist; credentials
/// only when asked; preflights cached for an hour.
///
/// Mount it outermost, before authentication: preflights carry no
/// credentials and must be answered by the CORS layer itself.
#[derive(Debug, Clone)]
pub struct McpCors {
    origins: AllowedOrigins,
    allow_headers: Vec<HeaderName>,
    expose_headers: Vec<HeaderName>,
    credentials: bool,
    max_age: Duration,
}

impl McpCors {
    /// The preset for `origins`.
    pub fn new(origins: AllowedOrigins) -> Self {
        Self {
            origins,
            allow_headers: MCP_ALLOW_HEADERS
                .iter()
                .map(|h| HeaderName::from_static(h))
                .collect(),
            expose_headers: MCP_EXPOSE_HEADERS
                .iter()
                .map(|h| HeaderName::from_static(h))
                .collect(),
            credentials: false,
            max_age: Duration::from_secs(3600),
        }
    }

    /// Allows one more request header.
    pub fn allow_header(mut self, name: HeaderName) -> Self {
        self.allow_headers.push(name);
        self
    }

    /// Exposes one more response header.
    pub fn expose_header(mut self, name: HeaderName) -> Self {
        self.expose_headers.push(name);
        self
    }

    /// Sends `Access-Control-Allow-Credentials: true` (cookies, TLS client
    /// certificates). Not needed for an `Authorization` header.
    pub fn allow_credentials(mut self, on: bool) -> Self {
        self.credentials = on;
        self
    }

    /// How long browsers may cache a preflight answer.
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = max_age;
        self
    }

    /// The layer, with every header value computed now.
    pub fn into_layer(self) -> McpCorsLayer {
        McpCorsLayer::new(CorsPolicy {
            origins: self.origins,
            allow_methods: HeaderValue::from_static("GET, POST, DELETE, OPTIONS"),
            allow_headers: join(&self.allow_headers),
            expose_headers: join(&self.expose_headers),
            max_age: HeaderValue::from(self.max_age.as_secs()),
            credentials: self.credentials,
        })
    }
}

/// `a, b, c`: header names are tokens, so the list is a valid value.
fn join(names: &[HeaderName]) -> HeaderValue {
    let list = names
        .iter()
        .map(HeaderName::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    HeaderValue::from_str(&list).unwrap_or_else(|_| HeaderValue::from_static(""))
}
