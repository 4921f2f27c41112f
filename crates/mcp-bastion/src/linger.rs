//! Lingering close: a client that is still sending its request body reads the
//! answer that was sent before the body was read, instead of a reset
//! connection.
//!
//! Many answers go out before a request body is read to its end: 413 from
//! the body limit, 401 from authentication, 403 from the Origin guard, 429
//! from a rate limit, 408 from a body deadline. If the server then closes the
//! connection while the client is still writing, the unread bytes make the
//! kernel reset the connection, and clients that write the whole body before
//! reading (Node's `fetch`, which the TypeScript SDK uses; Python's `urllib`)
//! see `EPIPE` or `ECONNRESET` instead of the status and the JSON-RPC error.
//! [`LingeringCloseLayer`] keeps reading and discarding such a body in the
//! background, bounded in bytes, total time and time between reads
//! ([`LingerLimits`], like nginx's `lingering_close`), so that the answer
//! reaches the client and the connection can even be reused. A client that
//! keeps sending past a bound is cut off, so lingering is no slowloris
//! vector. The default [`LingerLimits`]: at most 64 MiB discarded, for at
//! most 10 s, with at most 2 s between reads.
//!
//! ```
//! use axum::{Router, routing::post};
//! use mcp_bastion::linger::{LingerLimits, LingeringCloseLayer};
//!
//! let app: Router = Router::new()
//!     .route("/mcp", post(|| async { "ok" }))
//!     // outermost: it wraps the body every other layer reads
//!     .layer(LingeringCloseLayer::new(LingerLimits::default()));
//! ```
//!
//! [`McpStack`](crate::stack::McpStack) mounts it outermost by default
//! ([`lingering_close`](crate::stack::McpStack::lingering_close) sets other
//! limits, or `None` to turn it off).

use std::{
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use axum::body::Body;
use bytes::{Buf, Bytes};
use http::Request;
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::BodyExt;
use tower::{Layer, Service};

/// How much of an unread request body is read and discarded after the
/// answer, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LingerLimits {
    /// Most bytes discarded (default 64 MiB).
    pub max_bytes: u64,
    /// Most time spent discarding, from the moment the body is dropped
    /// (default 10 s; nginx's `lingering_time` is 30 s).
    pub max_time: Duration,
    /// Most time to wait for the next bytes (default 2 s; nginx's
    /// `lingering_timeout` is 5 s).
    pub idle: Duration,
}

impl Default for LingerLimits {
    fn default() -> Self {
        Self {
            max_bytes: 64 * 1024 * 1024,
            max_time: Duration::from_secs(10),
            idle: Duration::from_secs(2),
        }
    }
}

/// Wraps each request body so that, if it is dropped before its end, the
/// rest is read and discarded within [`LingerLimits`]; see the
/// [module docs](self).
#[derive(Debug, Clone, Copy, Default)]
pub struct LingeringCloseLayer {
    limits: LingerLimits,
}

impl LingeringCloseLayer {
    /// The layer with these limits.
    pub fn new(limits: LingerLimits) -> Self {
        Self { limits }
    }
}

impl<S> Layer<S> for LingeringCloseLayer {
    type Service = LingeringClose<S>;

    fn layer(&self, inner: S) -> Self::Service {
        LingeringClose {
            inner,
            limits: self.limits,
        }
    }
}

/// The service of [`LingeringCloseLayer`].
#[derive(Debug, Clone)]
pub struct LingeringClose<S> {
    inner: S,
    limits: LingerLimits,
}

impl<S> Service<Request<Body>> for LingeringClose<S>
where
    S: Service<Request<Body>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        // a request without a body (GET, DELETE) costs nothing
        if req.body().is_end_stream() {
            return self.inner.call(req);
        }
        let limits = self.limits;
        self.inner
            .call(req.map(|body| Body::new(LingerBody::new(body, limits))))
    }
}

/// A request body that, dropped before its end, hands the rest to a task
/// that discards it within its [`LingerLimits`].
#[derive(Debug)]
pub struct LingerBody<B: HttpBody + Unpin + Send + 'static> {
    inner: Option<B>,
    limits: LingerLimits,
}

impl<B: HttpBody + Unpin + Send + 'static> LingerBody<B> {
    /// Wraps `body`.
    pub fn new(body: B, limits: LingerLimits) -> Self {
        Self {
            inner: Some(body),
            limits,
        }
    }
}

impl<B> HttpBody for LingerBody<B>
where
    B: HttpBody<Data = Bytes> + Unpin + Send + 'static,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let frame = std::task::ready!(Pin::new(inner).poll_frame(cx));
        if frame.is_none() {
            // read to its end: nothing to linger for
            self.inner = None;
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(HttpBody::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), HttpBody::size_hint)
    }
}

impl<B: HttpBody + Unpin + Send + 'static> Drop for LingerBody<B> {
    fn drop(&mut self) {
        let Some(body) = self.inner.take() else {
            return;
        };
        if body.is_end_stream() {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(discard(body, self.limits));
        }
    }
}

/// Reads and drops `body` until its end or a bound of `limits`.
async fn discard<B: HttpBody + Unpin>(mut body: B, limits: LingerLimits) {
    let deadline = tokio::time::Instant::now() + limits.max_time;
    let mut discarded: u64 = 0;
    let outcome = loop {
        let wait_until = deadline.min(tokio::time::Instant::now() + limits.idle);
        match tokio::time::timeout_at(wait_until, body.frame()).await {
            Ok(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    discarded = discarded.saturating_add(data.remaining() as u64);
                    if discarded > limits.max_bytes {
                        break "too many bytes";
                    }
                }
            }
            Ok(None) => break "read to its end",
            Ok(Some(Err(_))) => break "the body failed",
            Err(_) if tokio::time::Instant::now() >= deadline => break "time limit",
            Err(_) => break "idle limit",
        }
    };
    tracing::debug!(
        discarded,
        outcome,
        "lingering close: unread request body discarded"
    );
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use std::sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    };

    use super::*;

    /// A body of `left` frames of 1 KiB, counting what was read.
    struct Counted {
        left: u64,
        read: Arc<AtomicU64>,
    }

    impl HttpBody for Counted {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            if self.left == 0 {
                return Poll::Ready(None);
            }
            self.left -= 1;
            self.read.fetch_add(1024, Ordering::Relaxed);
            Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![b'x'; 1024])))))
        }
    }

    #[tokio::test]
    async fn a_body_dropped_unread_is_read_to_its_end_in_the_background() {
        let read = Arc::new(AtomicU64::new(0));
        let body = LingerBody::new(
            Counted {
                left: 100,
                read: read.clone(),
            },
            LingerLimits::default(),
        );
        drop(body);
        for _ in 0..100 {
            if read.load(Ordering::Relaxed) == 100 * 1024 {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!("read only {} bytes", read.load(Ordering::Relaxed));
    }

    #[tokio::test]
    async fn discarding_stops_at_the_byte_bound() {
        let read = Arc::new(AtomicU64::new(0));
        let limits = LingerLimits {
            max_bytes: 10 * 1024,
            ..LingerLimits::default()
        };
        discard(
            Counted {
                left: u64::MAX,
                read: read.clone(),
            },
            limits,
        )
        .await;
        assert_eq!(read.load(Ordering::Relaxed), 11 * 1024);
    }

    /// One frame, then nothing ever again.
    struct Stalled(bool);

    impl HttpBody for Stalled {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            if std::mem::replace(&mut self.0, true) {
                Poll::Pending
            } else {
                Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"some")))))
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn discarding_stops_when_the_client_goes_quiet() {
        let started = tokio::time::Instant::now();
        discard(Stalled(false), LingerLimits::default()).await;
        assert_eq!(started.elapsed(), LingerLimits::default().idle);
    }

    #[tokio::test]
    async fn a_body_read_to_its_end_leaves_nothing_behind() {
        let read = Arc::new(AtomicU64::new(0));
        let mut body = LingerBody::new(
            Counted {
                left: 3,
                read: read.clone(),
            },
            LingerLimits::default(),
        );
        while body.frame().await.is_some() {}
        assert!(body.is_end_stream());
        drop(body);
        assert_eq!(read.load(Ordering::Relaxed), 3 * 1024);
    }
}
