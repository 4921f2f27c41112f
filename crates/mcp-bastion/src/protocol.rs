//! MCP protocol revisions and the HTTP header names the transports use.
//!
//! Every rule that depends on the revision asks [`ProtocolVersion`], so the
//! list of supported revisions lives here and nowhere else.

use std::{fmt, str::FromStr};

use crate::jsonrpc::{ErrorObject, codes};

/// `MCP-Protocol-Version` (sent by clients on every request after initialize, from 2025-06-18).
pub const HEADER_PROTOCOL_VERSION: &str = "mcp-protocol-version";
/// `Mcp-Session-Id`.
pub const HEADER_SESSION_ID: &str = "mcp-session-id";
/// `Mcp-Method` (2026-07-28).
pub const HEADER_METHOD: &str = "mcp-method";
/// `Mcp-Name` (2026-07-28): the tool, resource URI or prompt a request names.
pub const HEADER_NAME: &str = "mcp-name";
/// `Last-Event-ID`.
pub const HEADER_LAST_EVENT_ID: &str = "last-event-id";

/// Prefix of the `Mcp-Param-*` headers (2026-07-28): request parameters a
/// tool exposes as headers for routing.
pub const HEADER_PARAM_PREFIX: &str = "mcp-param-";

/// Whether a request header describes the MCP message it carries
/// (`MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name`, `Mcp-Param-*`): the
/// only headers of a 2026-07-28 request that are passed through to a
/// backend. Credentials, cookies and session headers never are.
///
/// ```
/// use mcp_bastion::protocol::is_message_header;
///
/// assert!(is_message_header("Mcp-Method"));
/// assert!(is_message_header("mcp-param-region"));
/// assert!(!is_message_header("authorization"));
/// assert!(!is_message_header("mcp-session-id"));
/// ```
pub fn is_message_header(name: &str) -> bool {
    name.eq_ignore_ascii_case(HEADER_PROTOCOL_VERSION)
        || name.eq_ignore_ascii_case(HEADER_METHOD)
        || name.eq_ignore_ascii_case(HEADER_NAME)
        || name
            .get(..HEADER_PARAM_PREFIX.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(HEADER_PARAM_PREFIX))
}

/// `_meta` key (2026-07-28): the client's protocol version.
pub const META_PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
/// `_meta` key (2026-07-28): the client's name and version.
pub const META_CLIENT_INFO: &str = "io.modelcontextprotocol/clientInfo";
/// `_meta` key (2026-07-28): the capabilities the client declares.
pub const META_CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
/// `_meta` key on a discover result (2026-07-28): the server's name and version.
pub const META_SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";

/// Query parameters the legacy SSE transport's `endpoint` URI must carry, in
/// the request extensions of the `GET` that opens the stream.
///
/// A client that can send no headers authenticates with a query parameter
/// (`GET /sse?api_key=…`); its POSTs go to the URI of the stream's first
/// `endpoint` event, so that URI must carry the parameter too.
/// Authentication puts the parameter here; [`Sse`](crate::transport::Sse)
/// appends it when it builds the URI, and takes it out of the extensions
/// handed to the backend. `Debug` prints names only: values are credentials.
///
/// ```
/// use mcp_bastion::protocol::EndpointQuery;
///
/// let q = EndpointQuery::default().with("api_key", "sk-secret");
/// assert_eq!(q.pairs().collect::<Vec<_>>(), [("api_key", "sk-secret")]);
/// assert!(!format!("{q:?}").contains("sk-secret"));
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct EndpointQuery {
    pairs: Vec<(String, String)>,
}

impl EndpointQuery {
    /// Adds the parameter `name=value` (percent-encoded when the URI is built).
    pub fn with(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.pairs.push((name.into(), value.into()));
        self
    }

    /// The parameters, in order.
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

impl fmt::Debug for EndpointQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("EndpointQuery")
            .field(&self.pairs.iter().map(|(k, _)| k).collect::<Vec<_>>())
            .finish()
    }
}

/// An MCP protocol revision that mcp-bastion speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProtocolVersion {
    /// 2024-11-05: the legacy HTTP+SSE transport.
    V2024_11_05,
    /// 2025-03-26: Streamable HTTP; JSON-RPC batches allowed.
    V2025_03_26,
    /// 2025-06-18: `MCP-Protocol-Version` header; no batches.
    V2025_06_18,
    /// 2025-11-25: priming events on SSE streams.
    V2025_11_25,
    /// 2026-07-28: sessionless requests, `Mcp-Method`/`Mcp-Name` headers.
    V2026_07_28,
}

impl ProtocolVersion {
    /// Every revision, oldest first.
    pub const ALL: [ProtocolVersion; 5] = [
        ProtocolVersion::V2024_11_05,
        ProtocolVersion::V2025_03_26,
        ProtocolVersion::V2025_06_18,
        ProtocolVersion::V2025_11_25,
        ProtocolVersion::V2026_07_28,
    ];

    /// The newest revision that has sessions and `initialize`.
    pub const LATEST_SESSIONFUL: ProtocolVersion = ProtocolVersion::V2025_11_25;

    /// What a Streamable HTTP server assumes when the header is missing.
    pub const DEFAULT_STREAMABLE: ProtocolVersion = ProtocolVersion::V2025_03_26;

    /// The revision's date string.
    pub fn as_str(self) -> &'static str {
        match self {
            ProtocolVersion::V2024_11_05 => "2024-11-05",
            ProtocolVersion::V2025_03_26 => "2025-03-26",
            ProtocolVersion::V2025_06_18 => "2025-06-18",
            ProtocolVersion::V2025_11_25 => "2025-11-25",
            ProtocolVersion::V2026_07_28 => "2026-07-28",
        }
    }

    /// JSON-RPC batches (arrays) are allowed only in 2025-03-26.
    pub fn allows_batches(self) -> bool {
        matches!(
            self,
            ProtocolVersion::V2024_11_05 | ProtocolVersion::V2025_03_26
        )
    }

    /// 2026-07-28 requests are sessionless and carry routing headers.
    pub fn is_sessionless(self) -> bool {
        self >= ProtocolVersion::V2026_07_28
    }

    /// 2025-11-25 and later send a priming event first on each SSE stream.
    pub fn sends_priming_event(self) -> bool {
        self >= ProtocolVersion::V2025_11_25
    }
}

/// The revisions with the `initialize` handshake, which every backend
/// speaks. Sent as `data.supported` whenever a version of that era is
/// refused (and for 2026-07-28 requests when the transport serves none).
pub fn served_versions() -> Vec<&'static str> {
    ProtocolVersion::ALL
        .into_iter()
        .filter(|v| !v.is_sessionless())
        .map(ProtocolVersion::as_str)
        .collect()
}

/// The revisions a request of one era can be answered at: the sessionless
/// revisions for a request that carries its version in `_meta` (2026-07-28
/// and later), the handshake revisions ([`served_versions`]) otherwise.
pub fn versions_for_era(sessionless: bool) -> Vec<&'static str> {
    if !sessionless {
        return served_versions();
    }
    ProtocolVersion::ALL
        .into_iter()
        .filter(|v| v.is_sessionless())
        .map(ProtocolVersion::as_str)
        .collect()
}

/// The one `-32022` error (unsupported protocol version): its `data` lists
/// the `supported` revisions and echoes the `requested` one, as 2026-07-28
/// requires of every refusal of a version.
pub fn unsupported_version_error(requested: &str, supported: &[&str]) -> ErrorObject {
    ErrorObject::new(
        codes::UNSUPPORTED_PROTOCOL_VERSION,
        "Unsupported protocol version",
    )
    .with_data(serde_json::json!({
        "supported": supported,
        "requested": requested,
    }))
}

impl fmt::Display for ProtocolVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown protocol revision string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported MCP protocol version")]
pub struct UnsupportedVersion;

impl FromStr for ProtocolVersion {
    type Err = UnsupportedVersion;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ProtocolVersion::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or(UnsupportedVersion)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_supported_revision_and_nothing_else() {
        for v in ProtocolVersion::ALL {
            assert_eq!(v.as_str().parse::<ProtocolVersion>(), Ok(v));
        }
        assert!("2024-10-07".parse::<ProtocolVersion>().is_err());
        assert!("".parse::<ProtocolVersion>().is_err());
    }

    #[test]
    fn unsupported_version_error_carries_supported_and_requested() {
        let err = unsupported_version_error("v999.0.0", &versions_for_era(true));
        assert_eq!(err.code, codes::UNSUPPORTED_PROTOCOL_VERSION);
        let data = err.data.unwrap_or_default();
        assert_eq!(data["requested"], "v999.0.0");
        assert_eq!(data["supported"], serde_json::json!(["2026-07-28"]));
        let handshake = versions_for_era(false);
        assert!(handshake.contains(&"2025-11-25") && !handshake.contains(&"2026-07-28"));
    }

    #[test]
    fn batches_only_before_2025_06_18() {
        assert!(ProtocolVersion::V2025_03_26.allows_batches());
        assert!(!ProtocolVersion::V2025_06_18.allows_batches());
        assert!(!ProtocolVersion::V2025_11_25.allows_batches());
    }
}
