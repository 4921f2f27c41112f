use std::{
    fmt,
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use axum::response::Response;

use crate::backend::BoxFuture;

/// The response future of [`McpRateLimit`](super::McpRateLimit): the limit
/// check (a Redis round trip at most), then the inner service.
pub struct ResponseFuture<E> {
    pub(super) inner: BoxFuture<'static, Result<Response, E>>,
}

impl<E> Future for ResponseFuture<E> {
    type Output = Result<Response, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

impl<E> fmt::Debug for ResponseFuture<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
