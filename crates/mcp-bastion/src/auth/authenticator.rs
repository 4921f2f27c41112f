//! The [`Authenticator`] trait, the [`AnyOf`] combinator and closures as
//! authenticators ([`from_fn`]).

use std::{fmt, future::Future, sync::Arc};

use http::request::Parts;

use super::{AuthError, Credential};
use crate::{boxed::BoxFuture, principal::Principal};

/// What an authenticator concluded.
pub type AuthResult = Result<Option<Principal>, AuthError>;

/// Turns a request's headers (never its body) into a [`Principal`].
///
/// [`McpAuthLayer`](super::McpAuthLayer) finds the request's [`Credential`]
/// first (see [`CredentialSources`](super::CredentialSources)) and hands it
/// over with the request head. An authenticator answers:
///
/// - `Ok(Some(principal))`: authenticated;
/// - `Ok(None)`: not a credential of mine (let the next one try);
/// - `Err(AuthError::InvalidToken(_))`: mine, and refused;
/// - `Err(AuthError::Unavailable(_))`: I cannot decide now (the layer
///   answers 503, never lets the request through).
///
/// Implementations are built once and shared (`Arc`) by every request.
pub trait Authenticator: Send + Sync + 'static {
    /// Authenticates one request.
    fn authenticate<'a>(
        &'a self,
        parts: &'a Parts,
        credential: Option<&'a Credential>,
    ) -> BoxFuture<'a, AuthResult>;

    /// The answer [`authenticate`](Self::authenticate) would give, when it
    /// is known without waiting: a static key, a token verified moments
    /// ago. `None` (the default) means "ask `authenticate`".
    ///
    /// The layer tries this first and, when it answers, passes the request
    /// on without allocating a future of its own. An implementation must
    /// answer exactly as `authenticate` would, or not at all.
    fn authenticate_now(
        &self,
        parts: &Parts,
        credential: Option<&Credential>,
    ) -> Option<AuthResult> {
        let _ = (parts, credential);
        None
    }
}

impl<A: Authenticator + ?Sized> Authenticator for Arc<A> {
    fn authenticate<'a>(
        &'a self,
        parts: &'a Parts,
        credential: Option<&'a Credential>,
    ) -> BoxFuture<'a, AuthResult> {
        (**self).authenticate(parts, credential)
    }

    fn authenticate_now(
        &self,
        parts: &Parts,
        credential: Option<&Credential>,
    ) -> Option<AuthResult> {
        (**self).authenticate_now(parts, credential)
    }
}

/// A shared, type-erased authenticator.
pub type DynAuthenticator = Arc<dyn Authenticator>;

/// Tries authenticators in order: the first `Some` wins. When none accepts,
/// an `Unavailable` answer wins over a refusal (the one that could not
/// answer might have accepted: fail closed with 503, not 401), then the first
/// refusal; when nobody recognised the credential, `Unrecognized`.
///
/// ```
/// use mcp_bastion::auth::{AnyOf, ApiKeys};
/// use mcp_bastion::principal::Principal;
///
/// let auth = AnyOf::new()
///     .with(ApiKeys::new().key("k-ops", Principal::new("ops")))
///     .with(ApiKeys::new().key("k-ci", Principal::new("ci")));
/// # let _ = auth;
/// ```
#[derive(Clone, Default)]
pub struct AnyOf {
    inner: Vec<DynAuthenticator>,
}

impl fmt::Debug for AnyOf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AnyOf")
            .field("authenticators", &self.inner.len())
            .finish()
    }
}

impl AnyOf {
    /// An empty chain (it recognises nothing).
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends an authenticator.
    pub fn with(mut self, auth: impl Authenticator) -> Self {
        self.inner.push(Arc::new(auth));
        self
    }

    /// Appends a shared authenticator.
    pub fn with_shared(mut self, auth: DynAuthenticator) -> Self {
        self.inner.push(auth);
        self
    }

    /// Number of authenticators.
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }
}

impl Authenticator for AnyOf {
    fn authenticate<'a>(
        &'a self,
        parts: &'a Parts,
        credential: Option<&'a Credential>,
    ) -> BoxFuture<'a, AuthResult> {
        Box::pin(async move {
            let mut verdict = Verdict::default();
            for auth in &self.inner {
                if let Some(accepted) = verdict.add(auth.authenticate(parts, credential).await) {
                    return accepted;
                }
            }
            verdict.finish()
        })
    }

    /// Answers only when every authenticator it asks answers at once.
    fn authenticate_now(
        &self,
        parts: &Parts,
        credential: Option<&Credential>,
    ) -> Option<AuthResult> {
        let mut verdict = Verdict::default();
        for auth in &self.inner {
            if let Some(accepted) = verdict.add(auth.authenticate_now(parts, credential)?) {
                return Some(accepted);
            }
        }
        Some(verdict.finish())
    }
}

/// How [`AnyOf`] combines answers: the one place its precedence lives.
#[derive(Default)]
struct Verdict {
    refused: Option<AuthError>,
    unavailable: Option<AuthError>,
}

impl Verdict {
    /// Takes one answer; returns the final result once one accepts.
    fn add(&mut self, answer: AuthResult) -> Option<AuthResult> {
        match answer {
            Ok(Some(p)) => return Some(Ok(Some(p))),
            Ok(None) => {}
            Err(e @ AuthError::Unavailable(_)) => {
                self.unavailable.get_or_insert(e);
            }
            Err(e) => {
                self.refused.get_or_insert(e);
            }
        }
        None
    }

    fn finish(self) -> AuthResult {
        match (self.unavailable, self.refused) {
            (Some(e), _) | (None, Some(e)) => Err(e),
            (None, None) => Ok(None),
        }
    }
}

/// An authenticator from a closure over the request head and credential.
/// The closure returns a `'static` future, so copy what it needs first.
///
/// ```
/// use mcp_bastion::auth::{from_fn, Credential};
/// use mcp_bastion::principal::Principal;
///
/// let auth = from_fn(|parts: &http::request::Parts, _cred: Option<&Credential>| {
///     let tenant = parts.headers.get("x-tenant").and_then(|v| v.to_str().ok()).map(str::to_owned);
///     async move { Ok(tenant.map(Principal::new)) }
/// });
/// # let _ = auth;
/// ```
pub fn from_fn<F, Fut>(f: F) -> FromFn<F>
where
    F: Fn(&Parts, Option<&Credential>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = AuthResult> + Send + 'static,
{
    FromFn { f }
}

/// See [`from_fn`].
#[derive(Clone)]
pub struct FromFn<F> {
    f: F,
}

impl<F> fmt::Debug for FromFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FromFn")
    }
}

impl<F, Fut> Authenticator for FromFn<F>
where
    F: Fn(&Parts, Option<&Credential>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = AuthResult> + Send + 'static,
{
    fn authenticate<'a>(
        &'a self,
        parts: &'a Parts,
        credential: Option<&'a Credential>,
    ) -> BoxFuture<'a, AuthResult> {
        Box::pin((self.f)(parts, credential))
    }
}
