//! Browsers: the MCP CORS layer and the Origin guard.
//!
//! - [`mcp_cors`] / [`McpCors`]: methods GET, POST, DELETE, OPTIONS; the MCP
//!   request headers (`Authorization`, `Content-Type`, `Accept`,
//!   `Mcp-Session-Id`, `MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name`,
//!   `Last-Event-ID`, `X-API-Key`); `Mcp-Session-Id`, `WWW-Authenticate`,
//!   `Retry-After`, `RateLimit`, `RateLimit-Policy` exposed to scripts; an
//!   origin allowlist ([`AllowedOrigins`]: exact, `https://*.example.com`,
//!   loopback); credentials when configured. It answers preflights itself,
//!   so mount it outermost, before authentication.
//! - [`OriginGuardLayer`]: the MCP transport rule "validate `Origin` on
//!   every request": a present `Origin` that is not allowed gets 403 with a
//!   JSON-RPC error body, whatever the method, so a page on another origin
//!   (or a DNS-rebinding attack on a local server) cannot drive the server
//!   even with a "simple" request that skips preflight. Requests without
//!   `Origin` (SDK clients, curl) pass. An optional `Host` allowlist refuses
//!   rebinding names outright.
//!
//! CORS alone is not a defence: it only stops a page from *reading* the
//! answer, not the request from running. The guard is.
//!
//! # Example
//!
//! Mounted with `Router::layer`, the guard inside CORS;
//! [`McpStack::browser`](crate::stack::McpStack::browser) puts both in the
//! full stack, outside authentication.
//!
//! ```
//! use axum::{body::Body, routing::post, Router};
//! use http::{Request, StatusCode};
//! use mcp_bastion::cors::{AllowedOrigins, OriginGuardLayer, mcp_cors};
//! use tower::ServiceExt;
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let origins = AllowedOrigins::new().allow("https://app.example.com").unwrap();
//! let app = Router::new()
//!     .route("/mcp", post(|| async { ([("mcp-session-id", "abc")], "ok") }))
//!     .layer(OriginGuardLayer::new(origins.clone()))
//!     .layer(mcp_cors(origins));
//!
//! // A preflight from the allowed origin is answered by the CORS layer.
//! let preflight = Request::options("/mcp")
//!     .header("origin", "https://app.example.com")
//!     .header("access-control-request-method", "POST")
//!     .header("access-control-request-headers", "authorization, mcp-session-id")
//!     .body(Body::empty()).unwrap();
//! let res = app.clone().oneshot(preflight).await.unwrap();
//! assert_eq!(res.headers()["access-control-allow-origin"], "https://app.example.com");
//!
//! // The page may read Mcp-Session-Id.
//! let post = Request::post("/mcp").header("origin", "https://app.example.com").body(Body::empty()).unwrap();
//! let res = app.clone().oneshot(post).await.unwrap();
//! assert!(res.headers()["access-control-expose-headers"].to_str().unwrap().contains("mcp-session-id"));
//!
//! // Another origin is refused before anything runs.
//! let evil = Request::post("/mcp").header("origin", "https://evil.example").body(Body::empty()).unwrap();
//! assert_eq!(app.oneshot(evil).await.unwrap().status(), StatusCode::FORBIDDEN);
//! # });
//! ```

mod guard;
mod layer;
mod origins;
mod preset;

pub use guard::{OriginGuard, OriginGuardFuture, OriginGuardLayer, OriginRejection};
pub use layer::{CorsResponseFuture, McpCorsLayer, McpCorsService};
pub use origins::{AllowedOrigins, OriginPatternError};
pub use preset::{MCP_ALLOW_HEADERS, MCP_EXPOSE_HEADERS, McpCors, mcp_cors};

#[cfg(test)]
mod tests;
