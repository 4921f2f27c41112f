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

use std::{
    fmt,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use http::{HeaderMap, HeaderName, HeaderValue, header};
use reqwest::{Client, RequestBuilder, Url};

use crate::{
    protocol::{HEADER_LAST_EVENT_ID, HEADER_PROTOCOL_VERSION, HEADER_SESSION_ID},
    upstream_token::{UpstreamAccess, UpstreamToken},
};

/// How long a session goes on with the user's upstream token before it asks
/// the token's source again, which hands out a refreshed one once the token
/// is within its refresh margin (60 s by default: a margin of at least this
/// much means a token is never sent expired).
const TOKEN_RECHECK: Duration = Duration::from_secs(15);

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
    /// The session's user's upstream token, when it sends one.
    token: Option<Arc<SessionToken>>,
}

/// The user's upstream token of one session, in its header, asked for again
/// before a request once it has been used for [`TOKEN_RECHECK`]: a session
/// that lasts longer than the token goes on with the refreshed one.
pub(crate) struct SessionToken {
    name: HeaderName,
    access: UpstreamAccess,
    /// The header value (sensitive), and when the source gave it.
    current: Mutex<(HeaderValue, Instant)>,
}

impl SessionToken {
    /// The token `access` gives now, for header `name` (`Authorization`
    /// gets `Bearer <token>`, any other header the token as it is).
    pub(crate) async fn open(
        name: HeaderName,
        access: UpstreamAccess,
    ) -> Result<Self, crate::backend::BackendError> {
        let token = access
            .access_token()
            .await
            .map_err(|e| crate::backend::BackendError::Unavailable(e.to_string()))?;
        let value = header_value(&name, &token).ok_or_else(|| {
            crate::backend::BackendError::Unavailable(
                "the user's upstream token is not a valid header value".into(),
            )
        })?;
        Ok(Self {
            name,
            access,
            current: Mutex::new((value, Instant::now())),
        })
    }

    fn current(&self) -> HeaderValue {
        self.current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .clone()
    }

    /// Asks the source again when the token has been used for
    /// [`TOKEN_RECHECK`]. A source that cannot give one now leaves the
    /// token as it is (the upstream judges it) and is asked again after
    /// the same time.
    async fn recheck(&self) {
        let due = {
            let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
            let due = current.1.elapsed() >= TOKEN_RECHECK;
            if due {
                // one asker at a time: the others go on with this one
                current.1 = Instant::now();
            }
            due
        };
        if !due {
            return;
        }
        match self.access.access_token().await {
            Ok(token) => {
                if let Some(value) = header_value(&self.name, &token) {
                    *self.current.lock().unwrap_or_else(|e| e.into_inner()) =
                        (value, Instant::now());
                }
            }
            Err(error) => tracing::warn!(
                target: super::TARGET,
                %error,
                "the user's upstream token could not be renewed; the session goes on with the one it has"
            ),
        }
    }
}

/// The header value carrying `token` in header `name`, marked sensitive.
fn header_value(name: &HeaderName, token: &UpstreamToken) -> Option<HeaderValue> {
    if *name == header::AUTHORIZATION {
        super::builder::secret_value(&format!("Bearer {}", token.secret()))
    } else {
        super::builder::secret_value(token.secret())
    }
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
            token: None,
        })
    }

    /// The same, with the session's user's upstream token in its header:
    /// the HTTP client and its connection pool are shared.
    pub(crate) fn with_session_token(&self, token: SessionToken) -> Self {
        Self {
            client: self.client.clone(),
            url: self.url.clone(),
            credentials: self.credentials.clone(),
            connect_timeout: self.connect_timeout,
            token: Some(Arc::new(token)),
        }
    }

    /// Renews the session's upstream token when it is due (see
    /// [`SessionToken`]); every request builder of a session calls it first.
    async fn recheck_token(&self) {
        if let Some(token) = &self.token {
            token.recheck().await;
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
        let request = request.headers(self.credentials.clone());
        match &self.token {
            Some(token) => request.header(token.name.clone(), token.current()),
            None => request,
        }
    }

    /// POST one JSON-RPC message to `url` (with the trace context of its
    /// `params._meta` as headers, when OpenTelemetry is on).
    pub(crate) async fn post(
        &self,
        url: &Url,
        session: &SessionHeaders,
        message: &crate::jsonrpc::Message,
    ) -> RequestBuilder {
        self.recheck_token().await;
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
    pub(crate) async fn get_stream(
        &self,
        url: &Url,
        session: &SessionHeaders,
        last_event_id: Option<&str>,
    ) -> RequestBuilder {
        self.recheck_token().await;
        let mut request = self
            .base(self.client.get(url.clone()))
            .header(header::ACCEPT, ACCEPT_SSE);
        if let Some(id) = last_event_id {
            request = request.header(HEADER_LAST_EVENT_ID, id);
        }
        session.apply(request)
    }

    /// DELETE the upstream session.
    pub(crate) async fn delete(&self, session: &SessionHeaders) -> RequestBuilder {
        self.recheck_token().await;
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
