//! Sessions: ids that nginx can route, and [`SessionLayer`]: parameter
//! capture, principal binding, lifetimes and the session store.
//!
//! # Session ids
//!
//! `[<route-key>.]<32 lowercase hex>`: 128 random bits, visible ASCII, with
//! the owning replica's route key in front so an nginx `map` can send every
//! later request of a session to its replica (see `docs/sessions.md`).
//!
//! # `SessionLayer`
//!
//! Sits in front of any transport (ours, or rmcp's `StreamableHttpService`)
//! and sees sessions at the HTTP boundary:
//!
//! - **Capture.** On a request without a session id (the legacy
//!   `GET /sse?auth=KEY&service=billing`, or the `initialize` POST with a
//!   query string) it keeps the allowlisted query parameters
//!   ([`capture_param`](SessionLayer::capture_param)) and mapped headers
//!   ([`capture_header`](SessionLayer::capture_header)), puts them in the
//!   request extensions as [`SessionParams`], and, when the response carries
//!   a new `Mcp-Session-Id`, records them with that id. Every later request
//!   of the session carries the same `SessionParams`: an axum extractor, and
//!   in rmcp tools `parts.extensions.get::<SessionParams>()`.
//! - **Binding.** The record remembers the [`Principal`](crate::principal::Principal)
//!   that opened the session. The same id presented by another principal, or
//!   by none, is answered 404 exactly as an unknown session (the client
//!   cannot tell the difference), and logged as a warning with its
//!   [`session_fingerprint`], never the id itself.
//! - **Lifetimes.** An idle timeout (no request in flight and no stream
//!   open), a maximum lifetime, and a per-principal cap that ends the oldest
//!   idle session or refuses the new one ([`OverflowPolicy`]). A cleanup task
//!   ends what expires; ended sessions are closed in the transport through a
//!   [`SessionCloser`], so their backend connection (a stdio child) ends.
//! - **Store.** [`MemorySessionStore`] by default; with the `redis` feature
//!   `RedisSessionStore`, so another replica can validate a session
//!   (binding and params) too.
//! - **Child environment.** The layer writes nothing backend-specific: a
//!   stdio backend maps captured parameters to its child's environment with
//!   its own [`SessionEnv`](crate::backend::stdio::SessionEnv), from the
//!   `SessionParams` the transport hands it when the session opens.
//!
//! Fail closed: a session id the store does not know is answered 404 even if
//! the transport behind still knows it, so the layer must see every session
//! open (mount it in front of every transport route).
//!
//! What it answers itself ([`SessionRejection`]):
//!
//! | case | answer |
//! |---|---|
//! | unknown, ended, expired, or foreign session | 404, `-32002` |
//! | malformed session id | 400, `-32000` |
//! | per-principal cap reached with [`OverflowPolicy::Refuse`] (or nothing idle to evict) | 429, `-32000` |
//! | store unreachable | 503, `-32603` |
//!
//! # Example
//!
//! Mounted on its own with `Router::layer`;
//! [`McpStack::sessions`](crate::stack::McpStack::sessions) puts it in the
//! full stack, wires it to close the transports' sessions, and tells
//! authentication that its captured parameters are session data, not
//! credentials (by hand: `McpAuthLayer::session_params`).
//!
//! ```
//! use axum::{body::Body, routing::any, Router};
//! use http::{Request, StatusCode};
//! use mcp_bastion::session::{SessionLayer, SessionParams};
//! use tower::ServiceExt;
//!
//! # tokio_test_block_on(async {
//! // A stand-in transport: opens a session on any request without an id.
//! let transport = any(|params: SessionParams| async move {
//!     ([("mcp-session-id", "0123456789abcdef0123456789abcdef")], params.get_or("service", "-").to_owned())
//! });
//! let app = Router::new()
//!     .route("/mcp", transport)
//!     .layer(SessionLayer::new().capture_param("service").sensitive_param("auth"));
//!
//! let open = Request::get("/mcp?service=billing&auth=k1&other=x").body(Body::empty()).unwrap();
//! let res = app.clone().oneshot(open).await.unwrap();
//! assert_eq!(res.status(), StatusCode::OK);
//!
//! // Later requests of the session carry the captured params.
//! let later = Request::post("/mcp")
//!     .header("mcp-session-id", "0123456789abcdef0123456789abcdef")
//!     .body(Body::empty()).unwrap();
//! let res = app.clone().oneshot(later).await.unwrap();
//! let body = axum::body::to_bytes(res.into_body(), 1024).await.unwrap();
//! assert_eq!(&body[..], b"billing");
//!
//! // An id the layer never saw open is unknown.
//! let unknown = Request::post("/mcp")
//!     .header("mcp-session-id", "ffffffffffffffffffffffffffffffff")
//!     .body(Body::empty()).unwrap();
//! assert_eq!(app.oneshot(unknown).await.unwrap().status(), StatusCode::NOT_FOUND);
//! # });
//! # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
//! # }
//! ```

mod id;

pub use id::{
    MAX_SESSION_ID_LEN, SessionIdError, check_route_key, new_session_id, route_key_of,
    session_fingerprint, validate_session_id,
};

#[cfg(feature = "session-layer")]
mod body;
#[cfg(feature = "session-layer")]
mod closer;
#[cfg(feature = "session-layer")]
mod config;
#[cfg(feature = "session-layer")]
mod future;
#[cfg(feature = "session-layer")]
mod layer;
#[cfg(feature = "session-layer")]
mod params;
#[cfg(feature = "session-layer")]
mod registry;
#[cfg(feature = "session-layer")]
mod rejection;
#[cfg(feature = "session-layer")]
mod service;
#[cfg(feature = "session-layer")]
mod store;

#[cfg(feature = "session-layer")]
pub use body::SessionBody;
#[cfg(feature = "session-layer")]
pub use closer::SessionCloser;
#[cfg(feature = "session-layer")]
pub use config::{DEFAULT_IDLE_TIMEOUT, OverflowPolicy, SessionConfigError};
#[cfg(feature = "session-layer")]
pub use future::SessionFuture;
#[cfg(feature = "session-layer")]
pub use layer::SessionLayer;
#[cfg(feature = "session-layer")]
pub use params::{MissingSessionParams, SENSITIVE_NAME_WORDS, SessionParams};
#[cfg(feature = "session-layer")]
pub use rejection::SessionRejection;
#[cfg(feature = "session-layer")]
pub use service::SessionService;
#[cfg(feature = "redis")]
pub use store::RedisSessionStore;
#[cfg(feature = "session-layer")]
pub use store::{MemorySessionStore, SessionRecord, SessionStore, StoreError};

#[cfg(all(test, feature = "session-layer"))]
mod tests;
