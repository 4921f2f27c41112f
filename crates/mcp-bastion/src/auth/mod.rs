//! `McpAuthLayer`: authenticate every MCP request from its headers (or,
//! opt-in, a query parameter) **before any body is read**, put the
//! [`Principal`](crate::principal::Principal) in the request extensions, and
//! answer failures with spec-shaped challenges.
//!
//! | input | answer |
//! |---|---|
//! | no credential | 401, `WWW-Authenticate: Bearer resource_metadata="…"` |
//! | a bad token (expired, not yet valid, wrong `aud`/`iss`, unknown `kid`, bad signature, malformed, `alg: none`, HMAC with a public key) | 401, `… error="invalid_token", error_description="<the cause>"` |
//! | an unknown API key | 401, `error="invalid_token"` |
//! | a token in a query parameter that is not enabled, or two different credentials | 401, `error="invalid_request"` |
//! | a call without the scopes its tool, method, resource or prompt needs ([`McpScopeLayer`]) | 403, `error="insufficient_scope", scope="…"` |
//! | the remote auth service or introspection endpoint is down | 503, never a pass, never a silent 401 |
//!
//! Every answer carries a JSON-RPC error body (`-32001`, or `-32603` for
//! 503). CORS preflights pass untouched; mount `/healthz`, `/readyz` and the
//! [RFC 9728 metadata](ProtectedResourceMetadata) route outside the layer.
//!
//! Authenticators ([`Authenticator`]) are tried in order with [`AnyOf`]:
//! [`ApiKeys`] (SHA-256 digests, constant-time comparison),
//! [`JwtAuthenticator`] (secret, PEM, JWKS URL or OIDC discovery, with a
//! [`JwksCache`] whose refresh is a [`JwksPolicy`]), [`RemoteAuth`] (the
//! `GET <url>?apiKey=` contract of existing MCP auth proxies),
//! [`Introspection`] (RFC 7662), and closures ([`from_fn`]).
//!
//! Query parameters named like credentials (`token`, `key`, `api_key`,
//! `auth`…) are refused unless enabled as one
//! ([`CredentialSources::query_params`]), with an `error_description` that
//! names both ways out. A parameter the session layer captures is session
//! data for the backend, not a credential: declare it with
//! [`McpAuthLayer::session_params`] (or
//! [`CredentialSources::session_params`]) and it is never refused.
//! [`McpStack`](crate::stack::McpStack) passes its session layer's captured
//! names itself.
//!
//! Secrets never reach logs: [`Credential`], [`ApiKeys`] and the JWT types
//! have redacting `Debug`s, errors carry fixed phrases, and nothing logs a
//! URL's query.
//!
//! # Example
//!
//! Mounted on its own with `Router::layer`; [`McpStack::auth`](crate::stack::McpStack::auth)
//! puts it in the full stack, in the right place.
//!
//! ```
//! use axum::{Router, body::Body, routing::post};
//! use http::{Request, StatusCode};
//! use mcp_bastion::{auth::{ApiKeys, McpAuthLayer}, principal::Principal};
//! use tower::ServiceExt;
//!
//! # tokio_test_block_on(async {
//! let keys = ApiKeys::new().key("sk-alice", Principal::new("alice"));
//! let app = Router::new()
//!     .route("/mcp", post(|p: Principal| async move { format!("hello {}", p.subject()) }))
//!     .layer(McpAuthLayer::new(keys).resource_metadata("https://mcp.example.com/.well-known/oauth-protected-resource/mcp"));
//!
//! let res = app.clone().oneshot(Request::post("/mcp").body(Body::empty()).unwrap()).await.unwrap();
//! assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
//! assert_eq!(
//!     res.headers()["www-authenticate"],
//!     r#"Bearer resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/mcp""#
//! );
//!
//! let res = app.clone().oneshot(
//!     Request::post("/mcp").header("authorization", "Bearer sk-mallory").body(Body::empty()).unwrap(),
//! ).await.unwrap();
//! assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
//! assert!(res.headers()["www-authenticate"].to_str().unwrap().contains(r#"error="invalid_token""#));
//!
//! let res = app.oneshot(
//!     Request::post("/mcp").header("x-api-key", "sk-alice").body(Body::empty()).unwrap(),
//! ).await.unwrap();
//! assert_eq!(res.status(), StatusCode::OK);
//! # });
//! # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
//! # }
//! ```

mod api_key;
mod authenticator;
mod challenge;
mod credential;
mod error;
mod future;
mod jwks;
mod jwt;
mod layer;
mod metadata;
#[cfg(feature = "oauth-server")]
pub mod oauth;
mod remote;
mod scopes;
mod service;

pub use api_key::{ApiKeys, ApiKeysError};
pub use authenticator::{AnyOf, AuthResult, Authenticator, DynAuthenticator, FromFn, from_fn};
pub use challenge::Challenge;
pub use credential::{
    Credential, CredentialSource, CredentialSources, KNOWN_QUERY_PARAMS, MAX_CREDENTIAL_BYTES,
    QUERY_CREDENTIAL_REFUSED,
};
pub use error::{AuthError, AuthRejection, InvalidToken};
pub use future::ResponseFuture;
pub use jwks::{JwksCache, JwksPolicy};
pub use jwt::{ALL_ALGORITHMS, JwtAuthenticator, JwtBuilder, JwtConfigError};
pub use layer::McpAuthLayer;
pub use metadata::{ProtectedResourceMetadata, WELL_KNOWN_PATH};
pub use remote::{Introspection, RemoteAuth, RemotePolicy};
pub use scopes::{McpScope, McpScopeLayer, ScopePolicy};
pub use service::McpAuth;

/// Re-exported so that users name algorithms without a direct dependency.
pub use jsonwebtoken::Algorithm;

#[cfg(test)]
mod tests;
