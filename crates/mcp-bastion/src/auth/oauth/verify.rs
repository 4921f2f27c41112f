//! [`OAuthTokens`]: verifies this server's access tokens like
//! [`JwtAuthenticator`] and, in addition, refuses a token whose grant was
//! revoked (RFC 7009 revocation, a reused code or refresh token). The
//! principals it admits carry the [`UpstreamAccess`](crate::upstream_token::UpstreamAccess)
//! handle to their grant's upstream tokens.

use std::sync::Arc;

use http::request::Parts;
use serde_json::Value;

use super::{server::Inner, token_manager::GrantTokens};
use crate::{
    auth::{AuthError, AuthResult, Authenticator, Credential, InvalidToken, JwtAuthenticator},
    boxed::BoxFuture,
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
            let grant = principal
                .claims()
                .get("grant_id")
                .and_then(Value::as_str)
                .ok_or(InvalidToken::MissingClaim)?;
            match self.inner.records.grant_active(grant).await {
                Ok(true) => {
                    let access = GrantTokens::access(&self.inner, grant);
                    Ok(Some(principal.with_upstream_access(access)))
                }
                Ok(false) => Err(InvalidToken::Rejected.into()),
                Err(_) => Err(AuthError::Unavailable("the OAuth store is unavailable")),
            }
        })
    }
}
