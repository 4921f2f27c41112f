//! `McpRateLimitLayer`: rate limits per principal, API key, client IP or
//! session; per JSON-RPC method and per tool; in memory or shared in Redis.
//!
//! # What it limits
//!
//! A [`RateLimitPolicy`] holds a default limit (every request), limits per
//! method (`tools/call`, `resources/read`…) and limits per tool (the `name`
//! of a `tools/call`; each call of a batch counts). Each limit is counted per
//! a [`KeyBy`]: the principal's subject, its API-key id, the client IP (from
//! [`TrustedProxies`](crate::net::TrustedProxies): forwarding headers count
//! only from your proxies), the MCP session, everyone together, or a closure.
//! A [`TierMatch`] on a scope or claim of the [`Principal`](crate::principal::Principal)
//! gives that tier its own policy.
//!
//! Limits are written `"100/min"`, `"10/s"`, `"5000/h"`, and counted with an
//! exact sliding window (the default: never more than the limit in any
//! interval of one period; see [`Algorithm::SlidingWindow`]) or GCRA
//! (`"10/s gcra burst=20"`, through `governor`). `#[rate_limit("10/min")]` from `mcp-bastion-macros` declares a
//! tool's limit next to its code; [`McpRateLimitLayer::with_declared_tool_limits`]
//! picks every declaration up.
//!
//! Tool and method limits read the [`McpRequest`](crate::inspect::McpRequest)
//! that [`McpInspectLayer`](crate::inspect::McpInspectLayer) parsed: mount
//! that layer *outside* this one. Without it only the default limit applies.
//!
//! # What it answers
//!
//! | case | status | headers | JSON-RPC error |
//! |---|---|---|---|
//! | over a limit | 429 | `Retry-After`, `RateLimit-Policy`, `RateLimit` | `-32029`, `data.retryAfterSeconds`, `data.policy` |
//! | over a concurrency cap ([`McpRateLimitLayer::max_concurrent`], [`McpRateLimitLayer::max_streams`]) | 429 | `Retry-After` | `-32029` |
//! | Redis down, [`FailurePolicy::Closed`] | 503 | `Retry-After` | `-32029` |
//! | allowed | (inner) | `RateLimit-Policy`, `RateLimit` (unless [`McpRateLimitLayer::headers`]`(false)`) | - |
//!
//! The error echoes the request id. Headers follow the IETF httpapi
//! ratelimit-headers draft: `RateLimit-Policy: "tool.search";q=10;w=60` and
//! `RateLimit: "tool.search";r=3;t=42`.
//!
//! # State
//!
//! In memory by default: keys idle for a window are evicted, so a flood of
//! distinct IPs costs memory only for as long as it lasts (about 150 bytes a
//! key for the sliding window, 90 for GCRA; see `docs/rate-limiting.md` for
//! the measurement). With the `redis` feature, `McpRateLimitLayer::redis` shares
//! the counters between processes through atomic Lua scripts; when Redis is
//! unreachable the [`FailurePolicy`] applies at once (one request a second
//! probes Redis until it answers), the outage is logged once and
//! counted in `mcp_bastion_ratelimit_store_failures_total`.
//!
//! # Example
//!
//! Mounted by hand, inside the inspect layer, in one `ServiceBuilder` given
//! to one `Router::layer` call;
//! [`McpStack::rate_limit`](crate::stack::McpStack::rate_limit) puts it in
//! the full stack, in the right place.
//!
//! ```
//! use axum::{body::Body, routing::post, Router};
//! use http::{Request, StatusCode};
//! use mcp_bastion::{inspect::McpInspectLayer, ratelimit::{McpRateLimitLayer, RateLimitPolicy}};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # tokio_test_block_on(async {
//! let policy = RateLimitPolicy::new()
//!     .default_limit("100/min".parse().unwrap())
//!     .tool("expensive", "2/min".parse().unwrap());
//! let app = Router::new()
//!     .route("/mcp", post(|| async { "ok" }))
//!     .layer(
//!         ServiceBuilder::new()
//!             .layer(McpInspectLayer::new()) // outer: parses the body once
//!             .layer(McpRateLimitLayer::new(policy)), // inner: reads the parsed call
//!     );
//!
//! let call = r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"expensive"}}"#;
//! let send = || Request::post("/mcp").header("content-type", "application/json").body(Body::from(call)).unwrap();
//! for _ in 0..2 {
//!     let res = app.clone().oneshot(send()).await.unwrap();
//!     assert_eq!(res.status(), StatusCode::OK);
//!     assert!(res.headers().contains_key("ratelimit"));
//! }
//! let res = app.oneshot(send()).await.unwrap();
//! assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
//! assert!(res.headers().contains_key("retry-after"));
//! # });
//! # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(f)
//! # }
//! ```

mod concurrency;
mod declared;
mod engine;
mod future;
mod gcra;
mod key;
mod layer;
mod limit;
mod policy;
#[cfg(feature = "redis")]
mod redis;
/// A throwaway `redis-server` for the OAuth Redis store's tests.
#[cfg(all(test, feature = "redis", feature = "oauth-server"))]
pub(crate) use redis::tests::redis_server as redis_test_server;
mod rejection;
mod service;
mod store;
mod window;

pub use declared::{DeclaredToolLimit, declared_tool_limits};
pub use future::ResponseFuture;
pub use key::{KeyBy, KeyFn, UnknownKey};
pub use layer::{McpRateLimitLayer, RateLimitStats};
pub use limit::{Algorithm, Limit, LimitParseError};
pub use policy::{MethodLimit, RateLimitPolicy, TierMatch, ToolLimit};
#[cfg(feature = "redis")]
pub use redis::{RedisStore, RedisUrlError};
pub use rejection::{
    PolicyDecision, RATELIMIT, RATELIMIT_POLICY, RateLimitRejection, RejectionKind,
};
pub use service::McpRateLimit;
pub use store::{Decision, FailurePolicy};
/// For the OAuth server's registration limit.
#[cfg(feature = "oauth-server")]
pub(crate) use {
    key::{RateKey, client_network},
    rejection::ceil_secs,
    store::{Limiter, StoreHealth},
};

/// Used by `#[rate_limit]`'s expansion; not a public API.
#[doc(hidden)]
pub use inventory as __inventory;

#[cfg(test)]
mod tests;
