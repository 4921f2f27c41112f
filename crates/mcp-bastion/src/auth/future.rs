//! [`ResponseFuture`]: the response future of [`McpAuth`](super::McpAuth).

use std::{
    fmt,
    future::Future,
    pin::Pin,
    task::{Context, Poll, ready},
};

use axum::response::Response;
use bytes::Bytes;
use http_body::Body as HttpBody;
use pin_project_lite::pin_project;

use super::service::{QueryCredential, finish};
use crate::backend::BoxFuture;

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
        state: State<F, E>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, E> {
        /// The layer's own answer (a challenge).
        Ready { response: Option<Response> },
        /// The inner service's future; `carry` is taken when it completes.
        Inner { #[pin] future: F, carry: Option<Option<QueryCredential>> },
        /// Authenticates, then calls the inner service.
        Boxed { future: BoxFuture<'static, Result<Response, E>> },
    }
}

impl<F, E> ResponseFuture<F, E> {
    pub(super) fn ready(response: Response) -> Self {
        Self {
            state: State::Ready {
                response: Some(response),
            },
        }
    }

    pub(super) fn inner(future: F, carry: Option<QueryCredential>) -> Self {
        Self {
            state: State::Inner {
                future,
                carry: Some(carry),
            },
        }
    }

    pub(super) fn boxed(
        future: impl Future<Output = Result<Response, E>> + Send + 'static,
    ) -> Self {
        Self {
            state: State::Boxed {
                future: Box::pin(future),
            },
        }
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
        match self.project().state.project() {
            // `None` only when polled again after completion
            StateProj::Ready { response } => match response.take() {
                Some(res) => Poll::Ready(Ok(res)),
                None => Poll::Pending,
            },
            StateProj::Inner { future, carry } => {
                // never poll the inner future again after it completed
                if carry.is_none() {
                    return Poll::Pending;
                }
                let out = ready!(future.poll(cx));
                match carry.take() {
                    Some(carry) => Poll::Ready(out.map(|res| finish(res, carry))),
                    None => Poll::Pending,
                }
            }
            StateProj::Boxed { future } => future.as_mut().poll(cx),
        }
    }
}

impl<F, E> fmt::Debug for ResponseFuture<F, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Ready { .. } => "Ready",
            State::Inner { .. } => "Inner",
            State::Boxed { .. } => "Boxed",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish_non_exhaustive()
    }
}
