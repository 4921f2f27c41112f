//! Transports: the MCP HTTP transports as tower services over any
//! [`Backend`](crate::backend::Backend).
//!
//! | service | revision | endpoints |
//! |---|---|---|
//! | [`StreamableHttp`] | 2025-03-26, 2025-06-18, 2025-11-25; 2026-07-28 requests by default (passed through to a backend that speaks 2026-07-28, sent as they are over the connections of a backend whose connections speak it, else bridged; [`StreamableHttp::sessionless`]`(false)` answers them `-32022`, so negotiating clients fall back) | one path for POST, GET, DELETE |
//! | [`Sse`] | 2024-11-05 | `GET …/sse` and `POST …/messages` |
//!
//! Both read the [`McpRequest`](crate::inspect::McpRequest) that
//! [`McpInspectLayer`](crate::inspect::McpInspectLayer) left in the request
//! extensions, and parse the body themselves (with the same rules) only when
//! no such layer ran.
//!
//! # `TCP_NODELAY`
//!
//! SSE replies are written as several small frames. Without `TCP_NODELAY`,
//! Nagle's algorithm and delayed ACKs add about 40 ms to each request on
//! loopback. Set it on each accepted socket; with axum 0.8:
//! `listener.tap_io(|tcp| { let _ = tcp.set_nodelay(true); })`.
//!
//! # Example: both transports over one stdio child per session
//!
//! Mounted by hand, with no layer in front (anyone who reaches the port may
//! call the tools). [`McpStack::serve`](crate::stack::McpStack::serve)
//! mounts both transports behind the full stack of layers instead.
//!
//! ```no_run
//! use axum::{Router, serve::ListenerExt};
//! use mcp_bastion::{backend::stdio::StdioBackend, transport::{Sse, StreamableHttp}};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let backend = std::sync::Arc::new(StdioBackend::builder("my-mcp-server").build()?);
//! let app = Router::new()
//!     .route_service("/mcp", StreamableHttp::new(backend.clone()))
//!     .merge(Sse::new(backend).into_router());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?
//!     .tap_io(|tcp| { let _ = tcp.set_nodelay(true); });
//! axum::serve(listener, app).await?;
//! # Ok(()) }
//! ```

// With only one transport enabled, parts of the shared session core go unused.
#![cfg_attr(
    not(all(feature = "sse", feature = "streamable-http")),
    allow(dead_code)
)]

mod config;
pub mod event_store;
mod session_table;
#[cfg(feature = "sse")]
mod sse;
pub mod sse_codec;
#[cfg(feature = "streamable-http")]
pub mod stateless;
mod stream_routing;
#[cfg(feature = "streamable-http")]
mod streamable;

pub use event_store::{EventStore, InMemoryEventStore, StreamId};
#[cfg(feature = "sse")]
pub use sse::Sse;
pub use sse_codec::open_sse_streams;
#[cfg(feature = "streamable-http")]
pub use streamable::StreamableHttp;

#[cfg(all(test, feature = "sse", feature = "streamable-http"))]
mod tests;
