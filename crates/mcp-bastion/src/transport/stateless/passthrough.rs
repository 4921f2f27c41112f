//! Pass-through: a 2026-07-28 request to a backend that speaks 2026-07-28.
//!
//! When [`Backend::protocol_versions`] lists 2026-07-28, the bridge of the
//! parent module steps aside: the request goes to [`Backend::forward`] as
//! the client sent it (its body byte for byte, and its MCP protocol headers,
//! [`is_message_header`]; never its `Authorization`, cookies or other
//! headers), and the backend's HTTP answer comes back unchanged: status,
//! `Content-Type`, and body (a JSON response, or an SSE stream with
//! progress, an `InputRequiredResult`, `subscriptions/listen`
//! notifications). `_meta`, `server/discover`, `inputResponses` and
//! `requestState`, caching hints (`ttlMs`, `cacheScope`) and error data are
//! the backend's own; mcp-bastion adds and checks nothing in them.
//!
//! What mcp-bastion still does is what the layers in front of the transport
//! do before any of this: authentication, the headers-against-body check,
//! per-tool scopes, rate limits, metrics, the audit record. The client
//! closing its response stream drops the backend's answer, which cancels
//! the request at the backend; the request counts as in flight (a graceful
//! shutdown waits for it) until its answer is written.
//!
//! A backend whose revisions cannot be learnt (the probe failed) is bridged
//! for that request.

use axum::{body::Body, response::Response};
use futures_util::TryStreamExt;
use http::{HeaderMap, StatusCode, request::Parts};

use super::TARGET;
use crate::{
    backend::{Backend, PassThrough},
    inspect::McpRequest,
    jsonrpc::{ErrorObject, codes, http_error},
    protocol::is_message_header,
    transport::session_table::RequestInFlight,
};

/// Whether `backend` takes 2026-07-28 requests as they are.
pub(crate) async fn speaks_2026<B: Backend>(backend: &B) -> bool {
    super::lists_2026(backend.protocol_versions().await, "backend revisions")
}

/// Forwards one 2026-07-28 request unchanged and relays the answer.
pub(crate) async fn serve<B: Backend>(
    backend: &B,
    parts: Parts,
    mcp: McpRequest,
    in_flight: RequestInFlight,
) -> Response {
    let id = mcp.id().cloned();
    let request = PassThrough {
        body: mcp.body().clone(),
        headers: message_headers(&parts.headers),
        extensions: parts.extensions,
    };
    match backend.forward(request).await {
        Ok(answer) => {
            let (head, body) = answer.into_parts();
            // in flight until the whole answer is written (a shutdown waits)
            let body = body.into_data_stream().map_ok(move |chunk| {
                let _in_flight = &in_flight;
                chunk
            });
            Response::from_parts(head, Body::from_stream(body))
        }
        Err(e) => {
            tracing::warn!(target: TARGET, error = %e, "backend failed a 2026-07-28 pass-through");
            http_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                id,
                ErrorObject::new(codes::INTERNAL_ERROR, "MCP backend unavailable"),
            )
        }
    }
}

/// The client's MCP protocol headers, and nothing else.
fn message_headers(headers: &HeaderMap) -> HeaderMap {
    headers
        .iter()
        .filter(|(name, _)| is_message_header(name.as_str()))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn only_the_message_headers_are_handed_on() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("authorization", "Bearer client-secret"),
            ("cookie", "sid=1"),
            ("x-api-key", "k"),
            ("mcp-session-id", "s"),
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/call"),
            ("mcp-name", "echo"),
            ("mcp-param-region", "eu"),
        ] {
            headers.insert(http::HeaderName::from_static(name), value.parse().unwrap());
        }
        let kept = message_headers(&headers);
        let mut names: Vec<_> = kept.keys().map(|n| n.as_str()).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "mcp-method",
                "mcp-name",
                "mcp-param-region",
                "mcp-protocol-version"
            ]
        );
    }
}
