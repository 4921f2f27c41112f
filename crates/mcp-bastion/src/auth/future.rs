//! [`ResponseFuture`]: the response future of [`McpAuth`](super::McpAuth).

use std::{
    fmt,
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use axum::{body::Body, response::Response};
use bytes::Bytes;
use http_body::Body as HttpBody;
use pin_project_lite::pin_project;

use crate::decided::{AfterResponse, Decided, debug_state};

pin_project! {
    /// The response future of [`McpAuth`](super::McpAuth).
    ///
    /// When the authenticator answered at once (a static API key, a JWT in
    /// the verified-token cache), everything was decided in `call`: this is
    /// the challenge, ready at once, or the inner service's future `F`,
    /// unboxed. An authenticator that must be awaited (a signature to check,
    /// a key set to fetch, a remote endpoint) runs in a boxed future. `E` is
    /// the inner service's error.
    pub struct ResponseFuture<F, E> {
        #[pin]
        state: Decided<F, E, Admitted>,
    }
}

impl<F, E> From<Decided<F, E, Admitted>> for ResponseFuture<F, E> {
    fn from(state: Decided<F, E, Admitted>) -> Self {
        Self { state }
    }
}

/// An admitted request: its response passes unchanged.
pub(super) struct Admitted;

impl AfterResponse for Admitted {
    fn finish<B>(self, res: http::Response<B>) -> Response
    where
        B: HttpBody<Data = Bytes> + Send + 'static,
        B::Error: Into<axum::BoxError>,
    {
        res.map(Body::new)
    }
}

impl<F, E, ResBody> Future for ResponseFuture<F, E>
where
    F: Future<Output = Result<http::Response<ResBody>, E>>,
    ResBody: HttpBody<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<axum::BoxError>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().state.poll(cx)
    }
}

impl<F, E> fmt::Debug for ResponseFuture<F, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug_state(f, "ResponseFuture", self.state.state())
    }
}
