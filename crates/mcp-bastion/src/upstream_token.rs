//! The user's own token at the identity provider they logged in with, for
//! the backends that act on their behalf: [`UpstreamAccess`] and
//! [`UpstreamToken`].
//!
//! The OAuth authorization server (`auth::oauth::OAuthServer::authenticator`,
//! feature `oauth-server`) attaches an [`UpstreamAccess`] to the
//! [`Principal`](crate::principal::Principal) of every request its access
//! tokens authenticate; no other authenticator does, and nothing a client
//! sends can make one. It is a handle, not the token: the token is read
//! (refreshed first when it is about to expire) only when a backend the
//! operator mapped it to asks for it:
//!
//! | where | mapping |
//! |---|---|
//! | a per-session stdio child's environment (feature `stdio`) | `EnvSource::UpstreamAccessToken`; the binary's `--principal-env GITHUB_TOKEN=upstream:access_token` |
//! | a header of the upstream backend (feature `upstream`) | `UpstreamBackendBuilder::header_from_upstream_token`; the binary's `--upstream-header-from Authorization=upstream:access_token` |
//!
//! A token that cannot be had (the provider refused the refresh, or is
//! unreachable after the token expired) refuses the session rather than
//! handing the backend a stale token or none. Values are redacted from every
//! `Debug` and never logged.

use std::{fmt, sync::Arc};

use crate::boxed::BoxFuture;

/// A token of the user's at the identity provider. `Debug` hides it; read
/// it with [`secret`](Self::secret) where it is handed over, and nowhere
/// else.
///
/// ```
/// use mcp_bastion::upstream_token::UpstreamToken;
///
/// let token = UpstreamToken::new("gho_secret");
/// assert_eq!(format!("{token:?}"), "UpstreamToken(..)");
/// assert_eq!(token.secret(), "gho_secret");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct UpstreamToken(String);

impl UpstreamToken {
    /// Wraps a token.
    pub fn new(token: impl Into<String>) -> Self {
        Self(token.into())
    }

    /// The token itself.
    pub fn secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for UpstreamToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UpstreamToken(..)")
    }
}

/// Why the user's upstream token cannot be had.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UpstreamTokenError {
    /// The grant keeps no upstream token (revoked, or its sealed tokens do
    /// not open).
    #[error("the user's upstream token is not available; log in again")]
    Absent,
    /// The identity provider refused to refresh the token (or gave none to
    /// refresh with) and it expired: the user must log in again, and the
    /// grant was revoked so that the client's next request says so (401).
    #[error("the identity provider refused to refresh the user's token; log in again")]
    Refused,
    /// The identity provider or the store cannot be reached and the token
    /// expired: try again later.
    #[error("the user's upstream token cannot be refreshed now; try again later")]
    Unavailable,
}

/// What an [`UpstreamAccess`] asks for the token; the OAuth authorization
/// server's token manager implements it.
pub trait UpstreamTokenSource: Send + Sync + 'static {
    /// The current access token, refreshed first if it is about to expire.
    fn access_token(&self) -> BoxFuture<'_, Result<UpstreamToken, UpstreamTokenError>>;
}

/// The handle to a user's upstream token that an authenticator attaches to
/// a [`Principal`](crate::principal::Principal)
/// ([`with_upstream_access`](crate::principal::Principal::with_upstream_access)).
/// Cheap to clone; `Debug` shows nothing of the token. Two handles are equal
/// when they are clones of one another.
#[derive(Clone)]
pub struct UpstreamAccess(Arc<dyn UpstreamTokenSource>);

impl UpstreamAccess {
    /// A handle on `source`.
    pub fn new(source: impl UpstreamTokenSource) -> Self {
        Self(Arc::new(source))
    }

    /// The current access token, refreshed first if it is about to expire.
    ///
    /// # Errors
    ///
    /// An [`UpstreamTokenError`] when there is none to give.
    pub async fn access_token(&self) -> Result<UpstreamToken, UpstreamTokenError> {
        self.0.access_token().await
    }
}

impl PartialEq for UpstreamAccess {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl fmt::Debug for UpstreamAccess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UpstreamAccess(..)")
    }
}
