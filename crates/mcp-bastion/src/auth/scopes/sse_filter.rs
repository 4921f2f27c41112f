//! [`FilteredSse`]: an SSE response body whose `tools/list` answers are
//! filtered as they pass.
//!
//! Events are decoded with `sse-stream` and encoded again with the
//! transports' encoder ([`encode_block`]), so no SSE grammar is written
//! here. Comments are not events and a decoder drops them; a keepalive
//! comment of the inner stream is passed on as our own keepalive, so that a
//! filtered stream stays alive through proxies as the original did.

use std::{
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
};

use axum::body::Body;
use bytes::Bytes;
use futures_util::Stream;
use http_body::{Body as HttpBody, Frame};
use pin_project_lite::pin_project;
use sse_stream::SseStream;

use crate::transport::sse_codec::{KEEPALIVE, encode_block};

/// Rewrites an event's data: `Some(new)` replaces it, `None` keeps it.
pub(super) type Rewrite = Box<dyn FnMut(&str) -> Option<String> + Send>;

pin_project! {
    /// An SSE body passed through a [`Rewrite`] event by event.
    pub(super) struct FilteredSse {
        #[pin]
        events: SseStream<NoteKeepalives>,
        keepalive: Arc<AtomicBool>,
        rewrite: Rewrite,
    }
}

impl FilteredSse {
    pub(super) fn new(inner: Body, rewrite: Rewrite) -> Self {
        let keepalive = Arc::new(AtomicBool::new(false));
        let noted = NoteKeepalives {
            inner,
            seen: Arc::clone(&keepalive),
        };
        Self {
            events: SseStream::new(noted),
            keepalive,
            rewrite,
        }
    }
}

impl HttpBody for FilteredSse {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.project();
        if this.keepalive.swap(false, Ordering::Relaxed) {
            return Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(KEEPALIVE)))));
        }
        let polled = this.events.poll_next(cx);
        // A keepalive read during this poll leaves before what follows it.
        let keepalive = this.keepalive.swap(false, Ordering::Relaxed);
        match polled {
            Poll::Ready(Some(Ok(ev))) => {
                let data = match ev.data.as_deref() {
                    Some(data) => (this.rewrite)(data).or(ev.data),
                    None => None,
                };
                let block = encode_block(
                    ev.event.as_deref(),
                    ev.id.as_deref(),
                    ev.retry,
                    data.as_deref(),
                );
                let out = if keepalive {
                    [KEEPALIVE, &block[..]].concat().into()
                } else {
                    block
                };
                Poll::Ready(Some(Ok(Frame::data(out))))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(axum::Error::new(e)))),
            _ if keepalive => Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(KEEPALIVE))))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

pin_project! {
    /// The inner body, noting each frame that is only comments (a
    /// keepalive): the decoder skips comments, so they are noted here.
    struct NoteKeepalives {
        #[pin]
        inner: Body,
        seen: Arc<AtomicBool>,
    }
}

impl HttpBody for NoteKeepalives {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && frame.data_ref().is_some_and(|d| is_comment_block(d))
        {
            this.seen.store(true, Ordering::Relaxed);
        }
        polled
    }
}

/// A frame of comment lines closed by a blank line, as transports write a
/// keepalive (`: keepalive\n\n`).
fn is_comment_block(data: &[u8]) -> bool {
    data.starts_with(b":")
        && data.ends_with(b"\n\n")
        && data
            .split(|&b| b == b'\n')
            .all(|line| line.is_empty() || line.starts_with(b":"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use http_body_util::BodyExt;

    use super::*;

    #[tokio::test]
    async fn events_are_rewritten_and_keepalives_pass() {
        let inner = Body::from_stream(futures_util::stream::iter(
            [
                "event: message\nid: 7\ndata: {\"a\":1}\n\n",
                ": keepalive\n\n",
                "retry: 500\ndata: keep\n\n",
            ]
            .map(|s| Ok::<_, std::io::Error>(Bytes::from(s))),
        ));
        let rewrite: Rewrite = Box::new(|data| (data != "keep").then(|| "{}".to_owned()));
        let out = FilteredSse::new(inner, rewrite).collect().await.unwrap();
        assert_eq!(
            out.to_bytes(),
            "event: message\nid: 7\ndata: {}\n\n: keepalive\n\nretry: 500\ndata: keep\n\n"
        );
        assert!(is_comment_block(b": a\n: b\n\n"));
        assert!(!is_comment_block(b": a\ndata: x\n\n"));
    }
}
