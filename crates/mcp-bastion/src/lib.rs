//! # mcp-bastion
//!
//! Tower layers, transports and backends that put Model Context Protocol
//! servers on the network: authenticated, rate-limited, bound to sessions,
//! safe to reach from a browser.
//!
//! ```
//! use axum::body::Body;
//! use http::{Request, StatusCode};
//! use mcp_bastion::prelude::*;
//! use tower::ServiceExt;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // A stdio MCP server, one child process per session (spawned on connect).
//! let backend = StdioBackend::builder("npx")
//!     .args(["-y", "@modelcontextprotocol/server-everything", "stdio"])
//!     .build()?;
//! // Every layer in the one safe order, both transports behind them:
//! // Streamable HTTP at /mcp, legacy SSE at /sse and /messages.
//! let app: axum::Router = McpStack::new()
//!     .auth(McpAuthLayer::new(ApiKeys::new().key("s3cret", Principal::new("alice"))))
//!     .rate_limit(McpRateLimitLayer::new(
//!         RateLimitPolicy::new().default_limit("100/min".parse()?),
//!     ))
//!     .sessions(SessionLayer::new().capture_param("service"))
//!     .serve(backend);
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
//! // No credential: 401 with a `WWW-Authenticate` challenge, before any body is read.
//! let res = app.oneshot(Request::post("/mcp").body(Body::empty())?).await?;
//! assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
//! assert!(res.headers().contains_key("www-authenticate"));
//! # Ok::<_, Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok(())
//! # }
//! ```
//!
//! Serve `app` with `axum::serve` and `into_make_service_with_connect_info`
//! (rate limits keyed by IP need the peer address), with `TCP_NODELAY` set on
//! each accepted socket (see the [`transport`] docs).
//!
//! # What is in it
//!
//! | piece | what it does |
//! |---|---|
//! | [`stack::McpStack`] | every layer below in the one safe order, as one tower `Layer` or as a `Router` with both transports |
//! | [`linger::LingeringCloseLayer`] | an answer sent before the body was read (413, 401, 403, 429) reaches a client that is still sending |
//! | `cors::mcp_cors`, `cors::OriginGuardLayer` (feature `cors`) | the MCP CORS preset, and 403 for a present `Origin` that is not allowed |
//! | `auth::McpAuthLayer`, `auth::McpScopeLayer` (feature `auth`) | API keys, JWT (JWKS, OIDC), remote auth and introspection, before any body is read; RFC 9728 metadata; per-tool scopes with `tools/list` filtered |
//! | `auth::oauth::OAuthServer` (feature `oauth-server`, off by default) | mcp-bastion as the OAuth 2.1 authorization server of its own endpoints: metadata, CIMD/DCR/static clients, PKCE authorization with login federated to an OIDC provider or GitHub (allowlists of subjects, email domains, groups, GitHub organisations and teams), consent, tokens verified by `McpAuthLayer` (`docs/oauth.md`) |
//! | [`inspect::McpInspectLayer`] | reads a POST body once, bounded, and puts the parsed [`inspect::McpRequest`] in the extensions for every later layer |
//! | [`trace::McpTraceLayer`] | one span per request: method, tool, session fingerprint, principal; never a secret |
//! | [`otel`] (feature `otel`) | OpenTelemetry: the request span as a SERVER span with the MCP semantic conventions, the caller's W3C trace context as its parent, a CLIENT span per backend call whose context goes on in `params._meta` and the upstream's headers |
//! | `metrics::McpMetricsLayer` (feature `metrics`) | request counts and latencies through the `metrics` facade, labels bounded |
//! | `ratelimit::McpRateLimitLayer` (feature `ratelimit`) | per principal, key, IP or session; per method and tool; sliding window or GCRA; memory or Redis (feature `redis`) |
//! | `session::SessionLayer` (feature `session-layer`) | captures allowlisted parameters when a session opens (`SessionParams`), binds the session to its principal, idle/lifetime/per-principal limits, memory or Redis store |
//! | [`transport::StreamableHttp`], [`transport::Sse`] | the MCP HTTP transports (2025-03-26 to 2025-11-25 and sessionless 2026-07-28 requests; legacy 2024-11-05) as tower services over any [`backend::Backend`] |
//! | [`backend::stdio::StdioBackend`] | a stdio MCP server as a child process, one per session or one shared; its environment from an allowlist and its own `SessionEnv` mapping |
//! | `backend::upstream::UpstreamBackend` (feature `upstream`) | a remote MCP server over HTTP, with its own credentials |
//! | `backend::rmcp::RmcpBackend` (feature `rmcp`) | an rmcp `ServerHandler` in process |
//! | [`backend::tool_filter::ToolFilter`] | trims the tools of any backend by allow and deny globs |
//! | [`prelude`] | the names most servers need, for one glob import |
//!
//! Each layer also mounts on its own (`Router::layer(McpAuthLayer::new(..))`;
//! each module's docs show how). Mounting several by hand, put them in one
//! `tower::ServiceBuilder` given to a single `Router::layer` call, outermost
//! first: each `Router::layer` call boxes what it wraps into a route of its
//! own, so one call per layer adds a boxed clone and a route future per layer
//! to every request. `McpStack` does exactly that.
//!
//! `docs/architecture.md` in the repository maps how the pieces fit;
//! `docs/deployment.md` covers running a loaded server.
#![cfg_attr(docsrs, feature(doc_auto_cfg))]

#[cfg(feature = "audit")]
pub mod audit;
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
pub mod otel;
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
pub mod upstream_token;
