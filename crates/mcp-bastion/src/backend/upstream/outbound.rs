//! The outbound HTTP side: one `reqwest` client, the upstream URL and the
//! operator's credential headers, and the only places where requests to the
//! upstream are built.
//!
//! Every request carries exactly: the operator's configured headers (the
//! bearer token among them), the MCP protocol headers this proxy itself
//! manages for the *upstream* session (`Mcp-Session-Id`,
//! `MCP-Protocol-Version`, `Last-Event-ID`), `Accept` / `Content-Type`, and
//! with OpenTelemetry on the W3C trace context (`traceparent`, `tracestate`)
//! of this proxy's span for the call (the one also in the message's
//! `params._meta`). Nothing of the client's HTTP request is ever added here.

use std::{fmt, time::Duration};

use http::{HeaderMap, HeaderValue, header};
use reqwest::{Client, RequestBuilder, Url};

use crate::protocol::{HEADER_LAST_EVENT_ID, HEADER_PROTOCOL_VERSION, HEADER_SESSION_ID};

/// `Accept` of every POST: Streamable HTTP requires both types.
const ACCEPT_POST: &str = "application/json, text/event-stream";
/// `Accept` of the streams.
const ACCEPT_SSE: &str = "text/event-stream";

/// The upstream session's own protocol headers, learnt from its
/// `initialize` exchange (never from the client's request headers).
#[derive(Debug, Clone, Default)]
pub(crate) struct SessionHeaders {
    /// `Mcp-Session-Id` assigned by the upstream.
    pub(crate) session_id: Option<HeaderValue>,
    /// The protocol version the upstream negotiated.
    pub(crate) protocol_version: Option<HeaderValue>,
}

impl SessionHeaders {
    fn apply(&self, mut request: RequestBuilder) -> RequestBuilder {
        if let Some(id) = &self.session_id {
            request = request.header(HEADER_SESSION_ID, id.clone());
        }
        if let Some(version) = &self.protocol_version {
            request = request.header(HEADER_PROTOCOL_VERSION, version.clone());
        }
        request
    }
}

/// Builds every request the backend sends upstream.
pub(crate) struct Outbound {
    client: Client,
    url: Url,
    credentials: HeaderMap,
    connect_timeout: Duration,
}

impl fmt::Debug for Outbound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Outbound")
            .field("url", &redacted(&self.url))
            .field("headers", &self.credentials.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Outbound {
    /// `credentials` values must already be marked sensitive.
    pub(crate) fn new(
        url: Url,
        credentials: HeaderMap,
        connect_timeout: Duration,
        tls: super::builder::Tls,
    ) -> Result<Self, reqwest::Error> {
        let mut builder = Client::builder()
            .connect_timeout(connect_timeout)
            // A redirect could carry the operator's credentials elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .tcp_nodelay(true);
        for root in tls.roots {
            builder = builder.add_root_certificate(root);
        }
        if let Some(identity) = tls.identity {
            builder = builder.identity(identity);
        }
        let client = builder.build()?;
        Ok(Self {
            client,
            url,
            credentials,
            connect_timeout,
        })
    }

    /// The same, with one more credential header (a session's own): the
    /// HTTP client and its connection pool are shared. `value` must be
    /// marked sensitive.
    pub(crate) fn with_credential(&self, name: http::HeaderName, value: HeaderValue) -> Self {
        let mut credentials = self.credentials.clone();
        credentials.insert(name, value);
        Self {
            client: self.client.clone(),
            url: self.url.clone(),
            credentials,
            connect_timeout: self.connect_timeout,
        }
    }

    /// The configured upstream endpoint.
    pub(crate) fn url(&self) -> &Url {
        &self.url
    }

    /// The configured credential header names (for `Debug` output).
    pub(crate) fn header_names(&self) -> Vec<&str> {
        self.credentials.keys().map(|k| k.as_str()).collect()
    }

    fn base(&self, request: RequestBuilder) -> RequestBuilder {
        request.headers(self.credentials.clone())
    }

    /// POST one JSON-RPC message to `url` (with the trace context of its
    /// `params._meta` as headers, when OpenTelemetry is on).
    pub(crate) fn post(
        &self,
        url: &Url,
        session: &SessionHeaders,
        message: &crate::jsonrpc::Message,
    ) -> RequestBuilder {
        let mut request = self
            .base(self.client.post(url.clone()))
            .header(header::ACCEPT, ACCEPT_POST)
            .header(header::CONTENT_TYPE, "application/json");
        for (name, value) in crate::otel::meta_headers(message) {
            request = request.header(name, value);
        }
        session.apply(request.body(message.to_json()))
    }

    /// POST a 2026-07-28 request as it is: `body` byte for byte, with the
    /// MCP protocol headers of `protocol` (`MCP-Protocol-Version`,
    /// `Mcp-Method`, `Mcp-Name`, `Mcp-Param-*`; any other header in it is
    /// dropped here, whatever the caller passed) and the operator's
    /// credentials.
    pub(crate) fn post_as_is(&self, protocol: HeaderMap, body: bytes::Bytes) -> RequestBuilder {
        let mut request = self
            .base(self.client.post(self.url.clone()))
            .header(header::ACCEPT, ACCEPT_POST)
            .header(header::CONTENT_TYPE, "application/json");
        for (name, value) in &protocol {
            if crate::protocol::is_message_header(name.as_str()) {
                request = request.header(name, value.clone());
            }
        }
        request.body(body)
    }

    /// The configured connect timeout.
    pub(crate) fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// GET an event stream at `url`, resuming after `last_event_id`.
    pub(crate) fn get_stream(
        &self,
        url: &Url,
        session: &SessionHeaders,
        last_event_id: Option<&str>,
    ) -> RequestBuilder {
        let mut request = self
            .base(self.client.get(url.clone()))
            .header(header::ACCEPT, ACCEPT_SSE);
        if let Some(id) = last_event_id {
            request = request.header(HEADER_LAST_EVENT_ID, id);
        }
        session.apply(request)
    }

    /// DELETE the upstream session.
    pub(crate) fn delete(&self, session: &SessionHeaders) -> RequestBuilder {
        session.apply(self.base(self.client.delete(self.url.clone())))
    }

    /// A reachability probe for `/readyz`: `OPTIONS` without credentials and
    /// without any MCP effect (no session is opened upstream).
    pub(crate) fn probe(&self) -> RequestBuilder {
        self.client
            .request(http::Method::OPTIONS, self.url.clone())
            .timeout(self.connect_timeout)
    }
}

/// The URL as logs show it: scheme, host, port and path; never a query
/// string or user info, which may hold credentials.
pub(crate) fn redacted(url: &Url) -> String {
    let host = url.host_str().unwrap_or("?");
    match url.port() {
        Some(port) => format!("{}://{host}:{port}{}", url.scheme(), url.path()),
        None => format!("{}://{host}{}", url.scheme(), url.path()),
    }
}

/// Whether `endpoint` (announced by a legacy SSE server) is on the same
/// origin as the configured URL: credentials are only sent there.
pub(crate) fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn logs_never_show_query_strings_or_user_info() {
        let url = Url::parse("https://user:pw@example.com:8443/mcp?key=secret").unwrap();
        assert_eq!(redacted(&url), "https://example.com:8443/mcp");
    }

    #[test]
    fn a_legacy_endpoint_on_another_origin_is_not_the_same_origin() {
        let base = Url::parse("http://127.0.0.1:3001/sse").unwrap();
        assert!(same_origin(
            &base,
            &base.join("/message?sessionId=1").unwrap()
        ));
        assert!(!same_origin(
            &base,
            &base.join("http://evil.example/message").unwrap()
        ));
        assert!(!same_origin(
            &base,
            &Url::parse("http://127.0.0.1:3002/message").unwrap()
        ));
        let https = Url::parse("https://a.example/sse").unwrap();
        assert!(same_origin(
            &https,
            &Url::parse("https://a.example:443/m").unwrap()
        ));
    }

    #[test]
    fn only_mcp_protocol_headers_pass_through() {
        for name in [
            "mcp-protocol-version",
            "Mcp-Method",
            "mcp-name",
            "Mcp-Param-Region",
        ] {
            assert!(crate::protocol::is_message_header(name), "{name}");
        }
        for name in [
            "authorization",
            "cookie",
            "mcp-session-id",
            "x-api-key",
            "mcp-paramx",
        ] {
            assert!(!crate::protocol::is_message_header(name), "{name}");
        }
    }

    #[test]
    fn debug_shows_header_names_not_values() {
        let mut headers = HeaderMap::new();
        let mut value = HeaderValue::from_static("Bearer s3cr3t");
        value.set_sensitive(true);
        headers.insert(header::AUTHORIZATION, value);
        let outbound = Outbound::new(
            Url::parse("http://127.0.0.1:1/mcp?token=t0k").unwrap(),
            headers,
            Duration::from_secs(1),
            Default::default(),
        )
        .unwrap();
        let shown = format!("{outbound:?}");
        assert!(shown.contains("authorization"), "{shown}");
        assert!(
            !shown.contains("s3cr3t") && !shown.contains("t0k"),
            "{shown}"
        );
    }
}
