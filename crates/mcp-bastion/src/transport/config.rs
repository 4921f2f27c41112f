//! Settings shared by both transports, and the small HTTP checks they share.

use std::{fmt, sync::Arc, time::Duration};

use http::{HeaderMap, StatusCode, header};

use super::{
    event_store::{EventStore, InMemoryEventStore},
    stream_routing::DEFAULT_KEEPALIVE,
};
use crate::jsonrpc::{ErrorObject, codes, http_error};

/// Settings of a transport service.
#[derive(Clone)]
pub(crate) struct TransportConfig {
    pub(crate) keepalive: Option<Duration>,
    pub(crate) events: Option<Arc<dyn EventStore>>,
    pub(crate) json_response: bool,
    pub(crate) route_key: Option<String>,
    pub(crate) max_body_bytes: usize,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) sessionless: bool,
    /// Calls of 2026-07-28 requests waiting for their client's input.
    #[cfg(feature = "streamable-http")]
    pub(crate) inputs: Arc<super::stateless::InputBridge>,
}

impl Default for TransportConfig {
    fn default() -> Self {
        Self {
            keepalive: Some(DEFAULT_KEEPALIVE),
            events: Some(Arc::new(InMemoryEventStore::default())),
            json_response: false,
            route_key: None,
            max_body_bytes: crate::inspect::DEFAULT_MAX_BODY_BYTES,
            idle_timeout: Some(super::session_table::DEFAULT_IDLE_TIMEOUT),
            sessionless: true,
            #[cfg(feature = "streamable-http")]
            inputs: Arc::default(),
        }
    }
}

impl fmt::Debug for TransportConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransportConfig")
            .field("keepalive", &self.keepalive)
            .field("event_store", &self.events.is_some())
            .field("json_response", &self.json_response)
            .field("route_key", &self.route_key)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("idle_timeout", &self.idle_timeout)
            .field("sessionless", &self.sessionless)
            .finish_non_exhaustive()
    }
}

/// True when the `Accept` header lists `mime` (or a wildcard covering it).
pub(crate) fn accepts(headers: &HeaderMap, mime: &str) -> bool {
    let (ty, _) = mime.split_once('/').unwrap_or((mime, ""));
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|item| item.split(';').next().unwrap_or("").trim())
        .any(|item| {
            item.eq_ignore_ascii_case(mime)
                || item == "*/*"
                || item
                    .strip_suffix("/*")
                    .is_some_and(|t| t.eq_ignore_ascii_case(ty))
        })
}

/// A transport-level rejection with a JSON-RPC body.
pub(crate) fn reject(status: StatusCode, code: i32, message: &str) -> axum::response::Response {
    http_error(status, None, ErrorObject::new(code, message))
}

/// 404 for an unknown, ended or foreign session: the client re-initializes.
pub(crate) fn session_not_found() -> axum::response::Response {
    reject(
        StatusCode::NOT_FOUND,
        codes::SESSION_NOT_FOUND,
        "Session not found: it is unknown or has ended; initialize a new session",
    )
}

/// `503` with `Retry-After`: the server is shutting down and opens no new
/// session (existing sessions are still served until it stops).
pub(crate) fn draining() -> axum::response::Response {
    let mut res = reject(
        StatusCode::SERVICE_UNAVAILABLE,
        crate::jsonrpc::codes::BAD_REQUEST,
        "Service Unavailable: the server is shutting down",
    );
    res.headers_mut()
        .insert(header::RETRY_AFTER, http::HeaderValue::from_static("1"));
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(accept: &str) -> HeaderMap {
        let mut m = HeaderMap::new();
        m.insert(header::ACCEPT, accept.parse().unwrap());
        m
    }

    #[test]
    fn accept_lists_are_parsed_with_params_and_wildcards() {
        let both = h("application/json, text/event-stream;q=0.9");
        assert!(accepts(&both, "application/json"));
        assert!(accepts(&both, "text/event-stream"));
        assert!(!accepts(&h("application/json"), "text/event-stream"));
        assert!(accepts(&h("*/*"), "text/event-stream"));
        assert!(accepts(&h("text/*"), "text/event-stream"));
        assert!(!accepts(&HeaderMap::new(), "application/json"));
    }
}
