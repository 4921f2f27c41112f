//! Revision 2026-07-28 (sessionless requests) on the Streamable HTTP path.
//!
//! Today mcp-bastion answers 2026-07-28 requests with `400` and JSON-RPC
//! `-32022` listing the revisions it serves. Clients that negotiate (the
//! Python SDK probes `server/discover` first) fall back to the `initialize`
//! handshake on the same path, so old and new clients share one endpoint.

use axum::response::Response;
use http::StatusCode;

use crate::{
    jsonrpc::{ErrorObject, codes, http_error},
    protocol::served_versions,
};

/// `400` + `-32022` naming the handshake revisions served here.
pub(crate) fn version_not_served() -> Response {
    let supported = served_versions();
    http_error(
        StatusCode::BAD_REQUEST,
        None,
        ErrorObject::new(
            codes::UNSUPPORTED_PROTOCOL_VERSION,
            "Unsupported protocol version: this server speaks the initialize handshake",
        )
        .with_data(serde_json::json!({ "supported": supported })),
    )
}
