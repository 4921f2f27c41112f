//! [`SessionFuture`]: the response future of
//! [`SessionService`](super::SessionService).

use std::{
    fmt,
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use axum::response::Response;
use bytes::Bytes;
use http_body::Body as HttpBody;
use pin_project_lite::pin_project;

use super::service::After;
use crate::decided::{Decided, debug_state};

pin_project! {
    /// The response future of [`SessionService`](super::SessionService).
    ///
    /// For a request of an existing session whose store answers at once
    /// (the in-memory store), everything was decided in `call`: this is
    /// either the layer's own answer, ready at once, or the inner service's
    /// future `F`, unboxed, whose response is then finished (the session
    /// forgotten if the transport ended it, the body marked as session
    /// activity). Opening requests and stores that must be awaited (Redis)
    /// use a boxed future. `E` is the inner service's error.
    pub struct SessionFuture<F, E> {
        #[pin]
        state: Decided<F, E, After>,
    }
}

impl<F, E> From<Decided<F, E, After>> for SessionFuture<F, E> {
    fn from(state: Decided<F, E, After>) -> Self {
        Self { state }
    }
}

impl<F, E, ResBody> Future for SessionFuture<F, E>
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

impl<F, E> fmt::Debug for SessionFuture<F, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug_state(f, "SessionFuture", self.state.state())
    }
}
