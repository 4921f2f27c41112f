//! `McpInspectLayer`: read a POST body once, bounded, and parse it into an
//! [`McpRequest`] that every later layer reads from the request extensions.
//!
//! What it refuses, and how:
//!
//! | input | answer |
//! |---|---|
//! | POST without `Content-Type: application/json` | 415, `-32600` |
//! | body over the limit (default 4 MiB) | 413, `-32600` |
//! | bytes that are not JSON | 400, `-32700` |
//! | JSON that is not a JSON-RPC message (or a batch where the revision forbids one) | 400, `-32600` |
//! | `MCP-Protocol-Version` that mcp-bastion does not speak | 400, `-32022` |
//! | `Mcp-Method` / `Mcp-Name` headers that disagree with the body | 400, `-32020` |
//!
//! Every answer has a JSON-RPC error body echoing the request id when it is
//! known. GET and DELETE requests pass through untouched: they have no body.
//!
//! The inner service receives the same bytes (a cheap [`bytes::Bytes`] clone,
//! no copy) as an [`axum::body::Body`], and the parsed [`McpRequest`] in the
//! extensions, so nothing downstream parses twice.
//!
//! # Example
//!
//! Mounted on its own with `Router::layer`;
//! [`McpStack`](crate::stack::McpStack) includes it by default (see
//! [`McpStack::inspect`](crate::stack::McpStack::inspect) for another body
//! limit).
//!
//! ```
//! use axum::{body::Body, routing::post, Extension, Router};
//! use http::{Request, StatusCode};
//! use mcp_bastion::inspect::{McpInspectLayer, McpRequest};
//! use tower::ServiceExt;
//!
//! # tokio_test_block_on(async {
//! let app = Router::new()
//!     .route("/mcp", post(|Extension(req): Extension<McpRequest>| async move {
//!         req.tool_name().unwrap_or("-").to_owned()
//!     }))
//!     .layer(McpInspectLayer::new().max_body_bytes(1024));
//!
//! let call = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}"#;
//! let res = app.clone().oneshot(
//!     Request::post("/mcp").header("content-type", "application/json").body(Body::from(call)).unwrap(),
//! ).await.unwrap();
//! assert_eq!(res.status(), StatusCode::OK);
//!
//! let res = app.oneshot(
//!     Request::post("/mcp").header("content-type", "application/json").body(Body::from("{oops")).unwrap(),
//! ).await.unwrap();
//! assert_eq!(res.status(), StatusCode::BAD_REQUEST);
//! # });
//! # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
//! # }
//! ```

mod layer;
mod rejection;
mod request;
mod service;

pub use layer::McpInspectLayer;
pub use rejection::InspectRejection;
#[cfg(any(feature = "streamable-http", feature = "sse"))]
pub(crate) use request::echoed_version;
pub use request::{McpRequest, MessageKind, Payload};
pub use service::McpInspect;
#[cfg(any(feature = "streamable-http", feature = "sse"))]
pub(crate) use service::read_and_parse;

/// The default body limit: 4 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

#[cfg(test)]
mod tests;
