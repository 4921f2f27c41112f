use std::{
    fmt,
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use axum::{BoxError, body::Body, response::Response};
use bytes::Bytes;
use http_body::Body as HttpBody;
use http_body_util::BodyExt;
use pin_project_lite::pin_project;

use super::{concurrency::Permit, rejection::RateLimitHeaders};
use crate::decided::{AfterResponse, Decided, debug_state};

pin_project! {
    /// The response future of [`McpRateLimit`](super::McpRateLimit).
    ///
    /// With every limit in memory the request is decided in `call`: this is
    /// then the refusal, ready, or the inner service's future, with nothing
    /// boxed. With a shared store (Redis) it is a boxed future that asks the
    /// store (one round trip at most), then calls the inner service.
    pub struct ResponseFuture<F, E> {
        #[pin]
        state: Decided<F, E, Held>,
    }
}

impl<F, E> From<Decided<F, E, Held>> for ResponseFuture<F, E> {
    fn from(state: Decided<F, E, Held>) -> Self {
        Self { state }
    }
}

/// What an allowed request holds until its answer: the concurrency slot and
/// the `RateLimit` headers to add.
pub(super) struct Held {
    pub(super) permit: Option<Permit>,
    pub(super) headers: Option<RateLimitHeaders>,
}

impl AfterResponse for Held {
    fn finish<B>(self, res: http::Response<B>) -> Response
    where
        B: HttpBody<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        finish(res, self.permit, self.headers)
    }
}

impl<F, B, E> Future for ResponseFuture<F, E>
where
    F: Future<Output = Result<http::Response<B>, E>>,
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
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

/// The inner service's answer as the layer gives it: `headers` added, and the
/// concurrency slot held by the body.
pub(super) fn finish<B>(
    response: http::Response<B>,
    permit: Option<Permit>,
    headers: Option<RateLimitHeaders>,
) -> Response
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let mut response = match permit {
        // the slot is freed when the body is dropped: at its end, or when the
        // client goes away
        Some(permit) => response.map(|b| {
            Body::new(b.map_frame(move |frame| {
                let _held = &permit;
                frame
            }))
        }),
        None => response.map(Body::new),
    };
    if let Some(headers) = headers {
        headers.insert_into(response.headers_mut());
    }
    response
}
