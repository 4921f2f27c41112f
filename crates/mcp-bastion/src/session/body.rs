//! [`SessionBody`]: a response body that counts as session activity until it
//! ends, so a session with an open stream is never idle.

use std::{
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use super::registry::Shared;

/// Marks one activity of a session; its drop ends the activity (and, for a
/// legacy SSE stream, the session).
pub(crate) struct ActivityGuard {
    pub(crate) shared: Arc<Shared>,
    pub(crate) id: String,
    pub(crate) ends_session: bool,
}

impl Drop for ActivityGuard {
    fn drop(&mut self) {
        self.shared.finish(&self.id);
        if self.ends_session {
            // The legacy SSE session lives as long as its stream.
            self.shared.end(&self.id);
        }
    }
}

pin_project! {
    /// The response body of [`SessionService`](super::SessionService): the
    /// inner body, unchanged, plus the session's activity mark.
    pub struct SessionBody<B> {
        #[pin]
        inner: B,
        guard: Option<ActivityGuard>,
    }
}

impl<B> SessionBody<B> {
    pub(crate) fn new(inner: B, guard: Option<ActivityGuard>) -> Self {
        Self { inner, guard }
    }
}

impl<B: Body> Body for SessionBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        if let Poll::Ready(None) = polled {
            this.guard.take();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
