//! The OAuth 2.1 authorization server of mcp-bastion (feature
//! `oauth-server`): the clients people use (claude.ai, ChatGPT, Claude
//! Code, VS Code, MCP Inspector) log in here, with login federated to the
//! operator's identity provider (any OIDC provider, GitHub, or another plain
//! OAuth 2 provider with a user endpoint); the access tokens issued are JWTs that
//! [`McpAuthLayer`](crate::auth::McpAuthLayer) verifies locally.
//!
//! ```text
//! client ── GET /oauth/authorize (PKCE S256, state, resource) ──► mcp-bastion
//!        ◄── 303 to the provider (mcp-bastion's own PKCE, state, nonce; a browser cookie)
//! user logs in at the provider ── GET /oauth/callback ──► code exchanged, ID token verified
//!        (GitHub, plain OAuth 2: the user API asked instead),
//!        user checked against the allowlist ──► consent page (CSRF token, no framing)
//! POST /oauth/consent (approve) ──► 303 to the client's redirect_uri ?code&state&iss
//! client ── POST /oauth/token (code, code_verifier) ──► access token (ES256 JWT) + refresh token
//! client ── POST /mcp, Authorization: Bearer … ──► McpAuthLayer (JwtAuthenticator on the key)
//! ```
//!
//! | endpoint | what it does |
//! |---|---|
//! | `/.well-known/oauth-authorization-server` (+ path-inserted form, `/.well-known/openid-configuration`) | RFC 8414 metadata: `code`, `S256`, CIMD, `iss` in responses, auth methods, scopes |
//! | `/oauth/jwks.json` | the public signing keys ([`SigningKey`]): the current one and the previous ones still live |
//! | `/oauth/authorize` | checks client, exact redirect URI, PKCE S256, resource, scopes; errors that cannot safely redirect are pages |
//! | `/oauth/callback`, `/oauth/consent` | the upstream login's return, the consent page's answer |
//! | `/oauth/token` | `authorization_code` (single use, 60 s, bound to client, redirect URI, resource and verifier) and `refresh_token` (rotated; reuse revokes the grant) |
//! | `/oauth/revoke` | RFC 7009 |
//! | `/oauth/register` | RFC 7591, by [`DcrPolicy`], redirect URIs from the [`RedirectAllowlist`]; rate-limited per client IP, unused clients expire (`dcr_bounds`) |
//!
//! Clients are [`StaticClient`]s, Client ID Metadata Documents (an `https`
//! `client_id` fetched with SSRF guards, see `cimd`), or registered. Records
//! live in an [`OAuthStore`] ([`MemoryStore`] by default; `RedisOAuthStore`
//! with the `redis` feature, for replicas). The upstream
//! tokens of each login are kept with its grant, sealed under a
//! [`SecretsKey`] with the grant id as associated data; the token manager
//! refreshes them before they expire (one refresh per grant at a time) when
//! a backend asks through the [`UpstreamAccess`](crate::upstream_token::UpstreamAccess)
//! handle that [`OAuthServer::authenticator`] attaches to each principal
//! (docs/oauth.md, "The user's upstream tokens").
//!
//! Secrets (codes, tokens, client secrets, upstream tokens) are stored under
//! their SHA-256 where they are looked up, never logged, and redacted from
//! every `Debug`.
//!
//! # Example
//!
//! ```no_run
//! use axum::Router;
//! use mcp_bastion::auth::{McpAuthLayer, oauth::{OAuthServer, UpstreamOidc, DcrPolicy}};
//!
//! let oauth = OAuthServer::builder()
//!     .issuer("https://mcp.example.com")
//!     .resource("https://mcp.example.com/mcp")
//!     .scopes(["mcp"])
//!     .upstream(UpstreamOidc::new("https://accounts.example.com", "mcp-bastion").client_secret("…"))
//!     .allow_email_domain("example.com")
//!     .dcr(DcrPolicy::Open)
//!     .redirect_allow("https://claude.ai/api/mcp/auth_callback")
//!     .redirect_allow_loopback(true)
//!     .build()
//!     .unwrap();
//! let mcp = Router::new() /* .route("/mcp", …) */
//!     .layer(McpAuthLayer::new(oauth.jwt_authenticator())
//!         .resource_metadata("https://mcp.example.com/.well-known/oauth-protected-resource/mcp"));
//! let app: Router = Router::new()
//!     .merge(oauth.router())
//!     .merge(oauth.protected_resource_metadata().router("/mcp"))
//!     .merge(mcp);
//! # let _ = app;
//! ```

mod authorize;
mod builder;
mod cimd;
mod clients;
mod consent;
mod dcr_bounds;
mod error;
mod keys;
mod login;
mod metadata;
mod page;
mod records;
#[cfg(feature = "redis")]
mod redis_store;
mod registration;
mod sealed;
mod server;
mod store;
mod token;
mod token_manager;
mod upstream;
mod verify;

pub use builder::OAuthServerBuilder;
pub use clients::{DcrPolicy, RedirectAllowlist, StaticClient};
pub use error::OAuthConfigError;
pub use keys::SigningKey;
#[cfg(feature = "redis")]
pub use redis_store::{DEFAULT_OAUTH_PREFIX, RedisOAuthStore};
pub use sealed::{SecretsKey, SecretsKeyError};
pub use server::OAuthServer;
pub use store::{MemoryStore, OAuthStore, RecordKind, StoreError};
pub use upstream::{UpstreamOAuth2, UpstreamOidc, UpstreamProvider};
pub use verify::OAuthTokens;

use base64::Engine as _;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq as _;

pub(crate) use super::jwt::unix_now;

/// 256 random bits, base64url: codes, tokens, ids, states, nonces,
/// verifiers (43 characters, a valid PKCE verifier).
pub(crate) fn random_token() -> String {
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The PKCE S256 challenge of a verifier.
pub(crate) fn s256(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Compares two strings in time independent of where they differ.
pub(crate) fn constant_time_eq(a: &str, b: &str) -> bool {
    bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

#[cfg(test)]
mod tests;
