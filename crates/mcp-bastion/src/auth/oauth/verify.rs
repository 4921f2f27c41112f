//! [`OAuthTokens`]: verifies this server's access tokens like
//! [`JwtAuthenticator`] and, in addition, refuses a token whose grant was
//! revoked (RFC 7009 revocation, a reused code or refresh token). The
//! principals it admits carry the [`UpstreamAccess`](crate::upstream_token::UpstreamAccess)
//! handle to their grant's upstream tokens.

use std::sync::Arc;

use http::request::Parts;
use serde_json::Value;

use super::{StoreError, server::Inner, token_manager::GrantTokens};
use crate::{
    auth::{AuthError, AuthResult, Authenticator, Credential, InvalidToken, JwtAuthenticator},
    boxed::BoxFuture,
    principal::Principal,
    upstream_token::UpstreamAccess,
};

/// An [`Authenticator`] for this server's access tokens that also checks
/// their grant is still live: one store lookup per request (a hash-map read
/// for the memory store) on top of the local JWT check. Built by
/// [`OAuthServer::authenticator`](super::OAuthServer::authenticator).
/// Without it, ([`OAuthServer::jwt_authenticator`](super::OAuthServer::jwt_authenticator))
/// a revoked grant's access tokens stay valid until they expire.
#[derive(Clone)]
pub struct OAuthTokens {
    pub(crate) jwt: JwtAuthenticator,
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for OAuthTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthTokens")
            .field("issuer", &self.inner.issuer)
            .finish_non_exhaustive()
    }
}

impl Authenticator for OAuthTokens {
    fn authenticate<'a>(
        &'a self,
        parts: &'a Parts,
        credential: Option<&'a Credential>,
    ) -> BoxFuture<'a, AuthResult> {
        Box::pin(async move {
            let Some(principal) = self.jwt.authenticate(parts, credential).await? else {
                return Ok(None);
            };
            let grant = grant_id(&principal)?;
            let active = self.inner.records.grant_active(grant).await;
            let access = self.admit(grant, active)?;
            Ok(Some(principal.with_upstream_access(access)))
        })
    }

    /// Answers when the token was verified moments ago (the JWT verifier's
    /// cache) and the store reads the grant without waiting (the memory
    /// store): the hot path of a client that sends the same token with every
    /// request. The grant is still looked up every time, so a revocation
    /// takes effect at once.
    fn authenticate_now(
        &self,
        parts: &Parts,
        credential: Option<&Credential>,
    ) -> Option<AuthResult> {
        let principal = match self.jwt.authenticate_now(parts, credential)? {
            Ok(Some(principal)) => principal,
            other => return Some(other),
        };
        let grant = match grant_id(&principal) {
            Ok(grant) => grant,
            Err(e) => return Some(Err(e)),
        };
        let active = self.inner.records.grant_active_now(grant)?;
        Some(
            self.admit(grant, active)
                .map(|access| Some(principal.with_upstream_access(access))),
        )
    }
}

impl OAuthTokens {
    /// The verdict on a verified token, given what the store says of its
    /// grant: the handle to the grant's upstream tokens, or the refusal.
    fn admit(
        &self,
        grant: &str,
        active: Result<bool, StoreError>,
    ) -> Result<UpstreamAccess, AuthError> {
        match active {
            Ok(true) => Ok(GrantTokens::access(&self.inner, grant)),
            Ok(false) => Err(InvalidToken::Rejected.into()),
            Err(StoreError) => Err(AuthError::Unavailable("the OAuth store is unavailable")),
        }
    }
}

/// The grant a verified token was issued under.
fn grant_id(principal: &Principal) -> Result<&str, AuthError> {
    principal
        .claims()
        .get("grant_id")
        .and_then(Value::as_str)
        .ok_or_else(|| InvalidToken::MissingClaim.into())
}
