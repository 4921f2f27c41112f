//! Per-tool authorization: [`ScopePolicy`] maps tools, methods, resource URI
//! patterns and prompts to the scopes they need, and [`McpScopeLayer`]
//! enforces it after [`McpInspectLayer`](crate::inspect::McpInspectLayer)
//! (it reads [`McpRequest`](crate::inspect::McpRequest), never the body):
//!
//! - a request without the scopes it needs gets the HTTP 403 challenge
//!   `Bearer error="insufficient_scope", scope="<every scope it needs>"`
//!   and a JSON-RPC error echoing its id (not merely a JSON-RPC error);
//! - `tools/list` answers list only the tools the caller may call, whether
//!   they come back as JSON or as SSE events, on a POST's stream or on the
//!   legacy transport's `GET /sse` stream.
//!
//! It composes with [`ToolFilter`](crate::backend::tool_filter::ToolFilter),
//! which removes tools for everyone at the backend; scopes then trim what is
//! left per caller.
//!
//! Mounted by hand inside authentication and inspection, in one
//! `ServiceBuilder` given to one `Router::layer` call;
//! [`McpStack::scopes`](crate::stack::McpStack::scopes) puts it in the full
//! stack, in the right place.
//!
//! ```
//! use axum::{Router, body::Body, routing::post};
//! use http::{Request, StatusCode};
//! use mcp_bastion::{auth::{ApiKeys, McpAuthLayer, McpScopeLayer, ScopePolicy}, inspect::McpInspectLayer, principal::Principal};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # tokio_test_block_on(async {
//! let keys = ApiKeys::new().key("sk-user", Principal::new("user").with_scopes(["tools:read"]));
//! let app = Router::new()
//!     .route("/mcp", post(|| async { "called" }))
//!     .layer(
//!         ServiceBuilder::new() // outermost first
//!             .layer(McpAuthLayer::new(keys))
//!             .layer(McpInspectLayer::new())
//!             .layer(McpScopeLayer::new(ScopePolicy::new().tool("wipe", ["tools:admin"]))),
//!     );
//!
//! let call = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"wipe"}}"#;
//! let res = app.oneshot(
//!     Request::post("/mcp").header("x-api-key", "sk-user")
//!         .header("content-type", "application/json").body(Body::from(call)).unwrap(),
//! ).await.unwrap();
//! assert_eq!(res.status(), StatusCode::FORBIDDEN);
//! assert!(res.headers()["www-authenticate"].to_str().unwrap().contains(r#"scope="tools:admin""#));
//! # });
//! # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
//! # }
//! ```

mod filter;
mod layer;
mod policy;
mod sse_filter;

pub use layer::{McpScope, McpScopeLayer};
pub use policy::ScopePolicy;
