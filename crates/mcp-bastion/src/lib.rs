//! # mcp-bastion
//!
//! Composable tower layers and transports that put Model Context Protocol
//! servers on the network safely.
//!
//! - [`inspect::McpInspectLayer`] reads a POST body once, bounded, and puts the
//!   parsed [`inspect::McpRequest`] in the request extensions for every later
//!   layer.
//! - [`transport::StreamableHttp`] (revisions 2025-03-26 to 2025-11-25, and the
//!   sessionless 2026-07-28 requests) and [`transport::Sse`] (2024-11-05) are
//!   tower services over any [`backend::Backend`].
//! - [`backend::stdio::StdioBackend`] runs a stdio MCP server as a child
//!   process, one per session or one shared; `backend::rmcp::RmcpBackend`
//!   (feature `rmcp`) serves an rmcp `ServerHandler` in process.
//! - `ratelimit::McpRateLimitLayer` (feature `ratelimit`, on by default)
//!   limits requests per principal, key, IP or session, per method and per
//!   tool, in memory or in Redis (feature `redis`).
//! - `session::SessionLayer` (feature `session-layer`) captures allowlisted
//!   parameters when a session opens (`SessionParams`), binds the session to
//!   its principal, and enforces idle, lifetime and per-principal limits over
//!   a memory or Redis (feature `redis`) store.
//! - `cors::mcp_cors` and `cors::OriginGuardLayer` (feature `cors`): the MCP
//!   CORS preset and the 403 for a present `Origin` that is not allowed.
//! - `auth::oauth::OAuthServer` (feature `oauth-server`, not on by default):
//!   mcp-bastion as the OAuth 2.1 authorization server of its own endpoint,
//!   with login federated to an OIDC provider; its tokens are verified by
//!   `McpAuthLayer` (`docs/oauth.md`).
//!
//! Mount the layers as one `tower::ServiceBuilder` stack with a single
//! `Router::layer` call, outermost first: CORS, Origin guard,
//! authentication, inspect, rate limit, sessions. Each `Router::layer` call
//! boxes what it wraps into a route of its own, so layering one call per
//! layer adds a boxed clone and a route future per layer to every request.
//! Accept connections with `TCP_NODELAY` set (see the transport module's
//! docs); `docs/deployment.md` covers the rest of running a loaded server.
//!
//! See `docs/architecture.md` in the repository for how the pieces fit.
#![cfg_attr(docsrs, feature(doc_auto_cfg))]

#[cfg(feature = "auth")]
pub mod auth;
pub mod backend;
pub mod boxed;
#[cfg(feature = "cors")]
pub mod cors;
#[cfg(any(feature = "auth", feature = "ratelimit", feature = "session-layer"))]
mod decided;
#[cfg(feature = "inspect")]
pub mod inspect;
pub mod jsonrpc;
pub mod linger;
#[cfg(feature = "metrics")]
pub mod metrics;
pub mod net;
pub mod prelude;
pub mod principal;
pub mod protocol;
#[cfg(feature = "ratelimit")]
pub mod ratelimit;
pub mod session;
#[cfg(feature = "stack")]
pub mod stack;
#[cfg(feature = "inspect")]
pub mod trace;
// `auth` filters SSE answers with the transports' encoder.
#[cfg(any(feature = "streamable-http", feature = "sse", feature = "auth"))]
pub mod transport;
