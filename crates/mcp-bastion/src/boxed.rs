//! [`BoxFuture`]: the one boxed future type of the crate's object-safe
//! traits ([`Backend`](crate::backend::Backend), `Authenticator`,
//! `SessionStore`) and of the layers whose futures cannot be named.

use std::{future::Future, pin::Pin};

/// A boxed, `Send` future.
///
/// ```
/// use mcp_bastion::boxed::BoxFuture;
///
/// fn answer() -> BoxFuture<'static, u32> {
///     Box::pin(async { 42 })
/// }
/// # let _ = answer();
/// ```
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
