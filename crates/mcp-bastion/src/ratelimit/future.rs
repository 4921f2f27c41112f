use std::{
    fmt,
    future::Future,
    pin::Pin,
    task::{Context, Poll, ready},
};

use axum::{BoxError, body::Body, response::Response};
use bytes::Bytes;
use http_body::Body as HttpBody;
use http_body_util::BodyExt;
use pin_project_lite::pin_project;

use super::{concurrency::Permit, rejection::RateLimitHeaders};
use crate::backend::BoxFuture;

pin_project! {
    /// The response future of [`McpRateLimit`](super::McpRateLimit).
    ///
    /// With every limit in memory the request is decided in `call`: this is
    /// then the refusal, ready, or the inner service's future, with nothing
    /// boxed. With a shared store (Redis) it is a boxed future that asks the
    /// store (one round trip at most), then calls the inner service.
    pub struct ResponseFuture<F, E> {
        #[pin]
        state: State<F, E>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, E> {
        // refused in `call`
        Ready { response: Option<Response> },
        // allowed in `call`
        Inner {
            #[pin]
            future: F,
            permit: Option<Permit>,
            headers: Option<RateLimitHeaders>,
        },
        // decided by a shared store
        Boxed { future: BoxFuture<'static, Result<Response, E>> },
    }
}

impl<F, E> ResponseFuture<F, E> {
    /// An answer made without the inner service.
    pub(super) fn ready(response: Response) -> Self {
        Self {
            state: State::Ready {
                response: Some(response),
            },
        }
    }

    /// The inner service's answer, completed by [`finish`].
    pub(super) fn inner(
        future: F,
        permit: Option<Permit>,
        headers: Option<RateLimitHeaders>,
    ) -> Self {
        Self {
            state: State::Inner {
                future,
                permit,
                headers,
            },
        }
    }

    /// A decision that waits for the shared store.
    pub(super) fn boxed(future: BoxFuture<'static, Result<Response, E>>) -> Self {
        Self {
            state: State::Boxed { future },
        }
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
        match self.project().state.project() {
            StateProj::Ready { response } => match response.take() {
                Some(response) => Poll::Ready(Ok(response)),
                // polled again after completion: a contract violation by the caller
                None => Poll::Pending,
            },
            StateProj::Inner {
                future,
                permit,
                headers,
            } => {
                let response = ready!(future.poll(cx))?;
                Poll::Ready(Ok(finish(response, permit.take(), headers.take())))
            }
            StateProj::Boxed { future } => future.as_mut().poll(cx),
        }
    }
}

impl<F, E> fmt::Debug for ResponseFuture<F, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
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
