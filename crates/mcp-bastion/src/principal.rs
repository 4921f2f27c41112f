//! The authenticated caller: [`Principal`], and its axum extractor.
//!
//! An authentication layer (see the `auth` module) inserts a `Principal` into
//! the request extensions; every later layer, handler and backend reads it
//! from there. Handlers ask for it as an extractor:
//!
//! ```
//! use axum::{Router, routing::get};
//! use mcp_bastion::principal::Principal;
//!
//! async fn whoami(principal: Principal) -> String {
//!     principal.subject().to_owned()
//! }
//!
//! async fn maybe(principal: Option<Principal>) -> &'static str {
//!     if principal.is_some() { "signed in" } else { "anonymous" }
//! }
//!
//! let app: Router = Router::new()
//!     .route("/whoami", get(whoami))
//!     .route("/maybe", get(maybe));
//! ```
//!
//! In an rmcp tool behind our layers, read it from the `http::request::Parts`
//! extension: `parts.extensions.get::<Principal>()`.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
    sync::Arc,
};

use axum::{
    extract::{FromRequestParts, OptionalFromRequestParts},
    response::{IntoResponse, Response},
};
use http::{StatusCode, request::Parts};
use serde_json::{Map, Value};

use crate::{
    jsonrpc::{ErrorObject, codes, http_error},
    upstream_token::UpstreamAccess,
};

/// Who is calling: a subject, the scopes they were granted, the claims they
/// presented, environment variables for their stdio child, and (for users
/// of mcp-bastion's OAuth authorization server) the handle to their
/// upstream token.
///
/// Cheap to clone: the fields are shared behind one reference count, so the
/// copy each layer and handler takes costs no allocation. `Debug` prints the
/// subject, key id and scopes, only the *names* of env entries and claims
/// (their values may be credentials), and whether an upstream handle is
/// attached. Equality compares the fields, and upstream handles by identity
/// (clones of one handle are equal).
#[derive(Clone, PartialEq)]
pub struct Principal {
    fields: Arc<Fields>,
    // beside the shared fields, so that attaching it to a cached principal
    // copies no claims
    upstream: Option<UpstreamAccess>,
}

#[derive(Clone, PartialEq)]
struct Fields {
    subject: String,
    key_id: Option<String>,
    scopes: BTreeSet<String>,
    claims: Map<String, Value>,
    env: BTreeMap<String, String>,
}

impl Principal {
    /// A principal with the given subject and nothing else.
    pub fn new(subject: impl Into<String>) -> Self {
        Self {
            fields: Arc::new(Fields {
                subject: subject.into(),
                key_id: None,
                scopes: BTreeSet::new(),
                claims: Map::new(),
                env: BTreeMap::new(),
            }),
            upstream: None,
        }
    }

    /// The fields, to change: copied first only if another clone shares them.
    fn fields_mut(&mut self) -> &mut Fields {
        Arc::make_mut(&mut self.fields)
    }

    /// Sets the id of the credential that authenticated this principal (an
    /// API key's name, a JWT's `jti`…): rate limits can key on it. Never the
    /// secret itself.
    pub fn with_key_id(mut self, key_id: impl Into<String>) -> Self {
        self.fields_mut().key_id = Some(key_id.into());
        self
    }

    /// Adds scopes.
    pub fn with_scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.fields_mut()
            .scopes
            .extend(scopes.into_iter().map(Into::into));
        self
    }

    /// Replaces the claims.
    pub fn with_claims(mut self, claims: Map<String, Value>) -> Self {
        self.fields_mut().claims = claims;
        self
    }

    /// Adds environment entries for this principal's stdio child. The stdio
    /// backend still refuses reserved names (`PATH`, `LD_*`…).
    pub fn with_env<I, K, V>(mut self, env: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        self.fields_mut()
            .env
            .extend(env.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }

    /// Attaches the handle to the user's token at the identity provider they
    /// logged in with (see [`upstream_token`](crate::upstream_token)): what
    /// the OAuth authorization server's authenticator does, and only it.
    pub fn with_upstream_access(mut self, access: UpstreamAccess) -> Self {
        self.upstream = Some(access);
        self
    }

    /// The handle to the user's upstream token, when the authenticator
    /// attached one.
    pub fn upstream_access(&self) -> Option<&UpstreamAccess> {
        self.upstream.as_ref()
    }

    /// The subject: a user id, a client id, or an API key's name.
    pub fn subject(&self) -> &str {
        &self.fields.subject
    }

    /// The id of the credential used, when the authenticator knows one.
    pub fn key_id(&self) -> Option<&str> {
        self.fields.key_id.as_deref()
    }

    /// The granted scopes.
    pub fn scopes(&self) -> &BTreeSet<String> {
        &self.fields.scopes
    }

    /// Whether `scope` was granted.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.fields.scopes.contains(scope)
    }

    /// The claims the credential carried (a JWT's payload, an introspection
    /// answer); empty for API keys.
    pub fn claims(&self) -> &Map<String, Value> {
        &self.fields.claims
    }

    /// One claim.
    pub fn claim(&self, name: &str) -> Option<&Value> {
        self.fields.claims.get(name)
    }

    /// Environment entries for this principal's stdio child.
    pub fn env(&self) -> &BTreeMap<String, String> {
        &self.fields.env
    }
}

impl fmt::Debug for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Principal")
            .field("subject", &self.fields.subject)
            .field("key_id", &self.fields.key_id)
            .field("scopes", &self.fields.scopes)
            .field("claims", &self.fields.claims.keys().collect::<Vec<_>>())
            .field("env", &self.fields.env.keys().collect::<Vec<_>>())
            .field("upstream_access", &self.upstream.is_some())
            .finish()
    }
}

/// The rejection of the [`Principal`] extractor: no authentication layer ran
/// before the handler. That is a server configuration error, so it answers
/// 500 rather than 401.
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct MissingPrincipal;

impl fmt::Display for MissingPrincipal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("no Principal in the request: mount McpAuthLayer before this handler")
    }
}

impl std::error::Error for MissingPrincipal {}

impl IntoResponse for MissingPrincipal {
    fn into_response(self) -> Response {
        tracing::error!("{self}");
        http_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            None,
            ErrorObject::new(codes::INTERNAL_ERROR, "authentication is not configured"),
        )
        .into_response()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = MissingPrincipal;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .ok_or(MissingPrincipal)
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Principal {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Principal>().cloned())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn debug_never_prints_env_or_claim_values() {
        let mut claims = Map::new();
        claims.insert("token".into(), Value::String("s3cr3t-claim".into()));
        let p = Principal::new("alice")
            .with_scopes(["tools:read"])
            .with_claims(claims)
            .with_env([("GITHUB_TOKEN", "ghp_s3cr3t")]);
        let s = format!("{p:?}");
        assert!(s.contains("alice") && s.contains("GITHUB_TOKEN") && s.contains("tools:read"));
        assert!(!s.contains("ghp_s3cr3t") && !s.contains("s3cr3t-claim"));
    }

    #[tokio::test]
    async fn extractor_reads_extension_or_rejects_with_500() {
        let (mut parts, ()) = http::Request::new(()).into_parts();
        let missing =
            <Principal as FromRequestParts<()>>::from_request_parts(&mut parts, &()).await;
        assert_eq!(
            missing.unwrap_err().into_response().status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        let none =
            <Principal as OptionalFromRequestParts<()>>::from_request_parts(&mut parts, &()).await;
        assert!(none.unwrap().is_none());
        parts.extensions.insert(Principal::new("bob"));
        let p = <Principal as FromRequestParts<()>>::from_request_parts(&mut parts, &())
            .await
            .unwrap();
        assert_eq!(p.subject(), "bob");
    }
}
