//! Request metrics: [`McpMetricsLayer`] counts every MCP request by method,
//! tool and HTTP status and times it, through the [`metrics`] facade, so any
//! recorder (Prometheus, StatsD…) collects them.
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `mcp_requests_total` | counter | `method`, `tool`, `client`, `status` |
//! | `mcp_request_duration_seconds` | histogram | `method` (time to the response head; an SSE reply streams on after it) |
//! | `mcp_sessions_open` | gauge | `transport` (set by the application, see below) |
//! | `mcp_sse_streams_open` | gauge | (kept by the transports' SSE bodies) |
//! | `mcp_backend_children` | gauge | (kept by the stdio backend) |
//! | `mcp_sessionless_links_open` | gauge | (backend links of 2026-07-28 requests, busy and idle, kept by the pool) |
//! | `mcp_sessionless_listen_streams` | gauge | (open `subscriptions/listen` streams of 2026-07-28 clients) |
//!
//! Method and tool names come from the client, so they are bounded before
//! they become labels: a method outside MCP's vocabulary is `other`, a tool
//! name that is long or has unusual characters is `other`, and after
//! [`MAX_TOOL_LABELS`] distinct tools every new one is `other`. A flood of
//! made-up names cannot grow the metric set without bound.
//!
//! `client` is the `clientInfo.name` a 2026-07-28 request carries in its
//! `_meta` (such a request has no session, so it names its client every
//! time), bounded the same way with [`MAX_CLIENT_LABELS`]; it is empty for
//! handshake-era requests, whose client is named once, at `initialize`.
//!
//! Mount it inside [`McpInspectLayer`](crate::inspect::McpInspectLayer) (it
//! reads the parsed [`McpRequest`](crate::inspect::McpRequest); requests
//! without one, such as GET and DELETE, are labelled `http:GET`…), in one
//! `ServiceBuilder` given to one `Router::layer` call;
//! [`McpStack::metrics`](crate::stack::McpStack::metrics) puts it in the full
//! stack, where it also counts the refusals of scopes and rate limits:
//!
//! ```
//! use axum::{Router, routing::post};
//! use mcp_bastion::{inspect::McpInspectLayer, metrics::McpMetricsLayer};
//! use tower::ServiceBuilder;
//!
//! let app: Router = Router::new()
//!     .route("/mcp", post(|| async { "ok" }))
//!     .layer(ServiceBuilder::new().layer(McpInspectLayer::new()).layer(McpMetricsLayer::new()));
//! ```

pub(crate) mod labels;
mod layer;

pub use labels::{MAX_CLIENT_LABELS, MAX_TOOL_LABELS};
pub use layer::{McpMetrics, McpMetricsLayer, ResponseFuture};

/// Counter of requests.
pub const REQUESTS_TOTAL: &str = "mcp_requests_total";
/// Histogram of the time to the response head, in seconds.
pub const REQUEST_DURATION_SECONDS: &str = "mcp_request_duration_seconds";
/// Gauge of open sessions by transport.
pub const SESSIONS_OPEN: &str = "mcp_sessions_open";
/// Gauge of open SSE response streams.
pub const SSE_STREAMS_OPEN: &str = "mcp_sse_streams_open";
/// Gauge of live stdio child processes.
pub const BACKEND_CHILDREN: &str = "mcp_backend_children";
/// Gauge of backend links open for sessionless (2026-07-28) requests, busy
/// and idle.
pub const SESSIONLESS_LINKS_OPEN: &str = "mcp_sessionless_links_open";
/// Gauge of open `subscriptions/listen` streams.
pub const SESSIONLESS_LISTEN_STREAMS: &str = "mcp_sessionless_listen_streams";

#[cfg(test)]
mod tests;
