//! [`Decided`]: the state of a layer's response future when the layer
//! decides a request inside `Service::call` whenever it can (authentication,
//! rate limiting, sessions), so the common request gets the inner service's
//! own future, unboxed, with no clone of the inner service.

use std::{
    fmt,
    future::Future,
    pin::Pin,
    task::{Context, Poll, ready},
};

use axum::{BoxError, response::Response};
use bytes::Bytes;
use http_body::Body as HttpBody;
use pin_project_lite::pin_project;

use crate::boxed::BoxFuture;

/// The inner service that `poll_ready` drove to readiness, for a boxed
/// future that calls it after an `await`; a clone is left in its place for
/// the next request.
pub(crate) fn take_ready<S: Clone>(inner: &mut S) -> S {
    let clone = inner.clone();
    std::mem::replace(inner, clone)
}

/// What a layer does to the inner service's response once it arrives.
pub(crate) trait AfterResponse {
    /// The response as the layer gives it.
    fn finish<B>(self, res: http::Response<B>) -> Response
    where
        B: HttpBody<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>;
}

pin_project! {
    /// Where a request stands once `call` returned.
    #[project = DecidedProj]
    pub(crate) enum Decided<F, E, A> {
        /// The layer's own answer (a refusal), ready at once.
        Ready { response: Option<Response> },
        /// Decided in `call`: the inner service's future, then `after`
        /// (taken when the future completes).
        Inner { #[pin] future: F, after: Option<A> },
        /// Decided by waiting (a signature to check, a store to ask):
        /// a boxed future that then calls a clone of the inner service.
        Boxed { future: BoxFuture<'static, Result<Response, E>> },
    }
}

impl<F, E, A> Decided<F, E, A> {
    pub(crate) fn ready(response: Response) -> Self {
        Self::Ready {
            response: Some(response),
        }
    }

    pub(crate) fn inner(future: F, after: A) -> Self {
        Self::Inner {
            future,
            after: Some(after),
        }
    }

    pub(crate) fn boxed(
        future: impl Future<Output = Result<Response, E>> + Send + 'static,
    ) -> Self {
        Self::Boxed {
            future: Box::pin(future),
        }
    }

    /// `Ready`, `Inner` or `Boxed`, for `Debug`.
    pub(crate) fn state(&self) -> &'static str {
        match self {
            Self::Ready { .. } => "Ready",
            Self::Inner { .. } => "Inner",
            Self::Boxed { .. } => "Boxed",
        }
    }
}

impl<F, E, A, B> Future for Decided<F, E, A>
where
    F: Future<Output = Result<http::Response<B>, E>>,
    A: AfterResponse,
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            // `None` only when polled again after completion
            DecidedProj::Ready { response } => match response.take() {
                Some(res) => Poll::Ready(Ok(res)),
                None => Poll::Pending,
            },
            DecidedProj::Inner { future, after } => {
                // never poll the inner future again after it completed
                if after.is_none() {
                    return Poll::Pending;
                }
                let out = ready!(future.poll(cx));
                match after.take() {
                    // an error drops `after` (and what it holds)
                    Some(after) => Poll::Ready(out.map(|res| after.finish(res))),
                    None => Poll::Pending,
                }
            }
            DecidedProj::Boxed { future } => future.as_mut().poll(cx),
        }
    }
}

/// Writes `Name { state: "…" }` for a layer's response future.
pub(crate) fn debug_state(
    f: &mut fmt::Formatter<'_>,
    name: &str,
    state: &'static str,
) -> fmt::Result {
    f.debug_struct(name)
        .field("state", &state)
        .finish_non_exhaustive()
}
