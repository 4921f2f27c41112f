//! Authentication and authorization, shown with real parts: keys generated at test time (RSA,
//! P-256, Ed25519, HMAC), real JWKS, OIDC discovery, remote-auth and RFC 7662 introspection
//! servers on loopback HTTP, `McpAuthLayer` in process for the attack suite, and the
//! `mcp-bastion` binary driven by the official Python and TypeScript SDKs for the real-client
//! tests.
//!
//! Needs what `tests/tests/clients.rs` needs (`bash .ci/test` installs it).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod attacks;
mod clients;
mod credentials;
mod jwt;
mod logs;
mod outbound_ca;
mod scopes;
mod support;
mod sweep;
