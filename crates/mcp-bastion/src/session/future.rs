//! [`SessionFuture`]: the response future of
//! [`SessionService`](super::SessionService).

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

use super::service::After;
use crate::backend::BoxFuture;

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
        state: State<F, E>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, E> {
        /// The layer's own answer (a refusal).
        Ready { response: Option<Response> },
        /// The inner service's future, and what follows its response.
        Inner { #[pin] future: F, after: Option<After> },
        /// Awaits the store or opens a session.
        Boxed { future: BoxFuture<'static, Result<Response, E>> },
    }
}

impl<F, E> SessionFuture<F, E> {
    /// The layer's answer, ready at once.
    pub(super) fn ready(response: Response) -> Self {
        Self {
            state: State::Ready {
                response: Some(response),
            },
        }
    }

    /// The inner service's future; `after` is applied to its response.
    pub(super) fn inner(future: F, after: After) -> Self {
        Self {
            state: State::Inner {
                future,
                after: Some(after),
            },
        }
    }

    /// A future that awaits the store or opens a session.
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

impl<F, E, ResBody> Future for SessionFuture<F, E>
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
            StateProj::Inner { future, after } => {
                // `after` is taken when `future` completes: polled again
                // after completion, the inner future is not polled again
                if after.is_none() {
                    return Poll::Pending;
                }
                let out = ready!(future.poll(cx));
                match after.take() {
                    // an error drops `after`: the activity ends
                    Some(after) => Poll::Ready(out.map(|res| after.finish(res))),
                    None => Poll::Pending,
                }
            }
            StateProj::Boxed { future } => future.as_mut().poll(cx),
        }
    }
}

impl<F, E> fmt::Debug for SessionFuture<F, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Ready { .. } => "Ready",
            State::Inner { .. } => "Inner",
            State::Boxed { .. } => "Boxed",
        };
        f.debug_struct("SessionFuture")
            .field("state", &state)
            .finish_non_exhaustive()
    }
}
