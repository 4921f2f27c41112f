//! Server-Sent Events: encoding one event into one buffer, and the response
//! body that streams events with keepalive comments.
//!
//! Each event is encoded into a single [`Bytes`] and handed to hyper as one
//! frame, so it leaves in one write (see the `TCP_NODELAY` note in the crate
//! docs: several small writes meet Nagle plus delayed ACK).

use std::{
    collections::VecDeque,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderValue, header};
use http_body::{Body, Frame, SizeHint};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::DropGuard;

/// Encodes one event. `data` may contain newlines: each line becomes its own
/// `data:` field, as the SSE grammar requires. `\r\n` and lone `\r` count as
/// line breaks too.
pub fn encode_event(event: Option<&str>, id: Option<&str>, data: &str) -> Bytes {
    encode_block(event, id, None, Some(data))
}

/// Encodes one block with every field the SSE grammar has: `event`, `id`,
/// `retry` (milliseconds) and `data` (none: a block without data lines, as
/// a relayed metadata-only block had). [`encode_event`] is the common case.
pub fn encode_block(
    event: Option<&str>,
    id: Option<&str>,
    retry: Option<u64>,
    data: Option<&str>,
) -> Bytes {
    let len = data.map_or(0, str::len);
    let mut buf = BytesMut::with_capacity(len + 48);
    if let Some(event) = event {
        put_field(&mut buf, "event", event);
    }
    if let Some(id) = id {
        put_field(&mut buf, "id", id);
    }
    if let Some(retry) = retry {
        put_field(&mut buf, "retry", &retry.to_string());
    }
    if let Some(mut rest) = data {
        loop {
            match rest.find(['\r', '\n']) {
                Some(i) => {
                    put_field(&mut buf, "data", &rest[..i]);
                    let skip = if rest[i..].starts_with("\r\n") { 2 } else { 1 };
                    rest = &rest[i + skip..];
                }
                None => {
                    put_field(&mut buf, "data", rest);
                    break;
                }
            }
        }
    }
    buf.put_u8(b'\n');
    buf.freeze()
}

/// A field value must not break the line: `event` and `id` values come from
/// us, but strip line breaks anyway so a bad id can never inject a field.
fn put_field(buf: &mut BytesMut, name: &str, value: &str) {
    buf.put_slice(name.as_bytes());
    buf.put_slice(b": ");
    for part in value.split(['\r', '\n']) {
        buf.put_slice(part.as_bytes());
    }
    buf.put_u8(b'\n');
}

/// How long a request stream's response head waits for the stream's first
/// event (see [`SseBody::settled`]).
const FIRST_EVENT_WAIT: Duration = Duration::from_millis(50);

/// The keepalive comment.
pub(crate) const KEEPALIVE: &[u8] = b": keepalive\n\n";

/// Sets `Content-Type: text/event-stream`, `Cache-Control: no-cache` and
/// `X-Accel-Buffering: no` (so nginx does not buffer the stream).
fn set_sse_headers(headers: &mut http::HeaderMap) {
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
}

/// A streaming SSE response body: first `prelude` frames, then frames from a
/// channel, with a keepalive comment whenever the stream has been idle for
/// the keepalive period. The stream ends when the channel's senders are gone;
/// a [`complete`](SseBody::complete) body is its prelude alone.
/// Dropping the body (the client went away) drops `guard`, which tells the
/// owner.
pub(crate) struct SseBody {
    prelude: VecDeque<Bytes>,
    frames: Frames,
    keepalive: Option<Pin<Box<tokio::time::Sleep>>>,
    period: Option<Duration>,
    _guard: Option<DropGuard>,
    /// Kept as long as the body, dropped with it (see [`Self::holding`]).
    _held: Option<Box<dyn std::any::Any + Send + Sync>>,
}

/// SSE response bodies alive in this process.
static OPEN_STREAMS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// How many SSE response streams (request streams, GET streams, legacy
/// `/sse` streams) this process has open: for a gauge or a leak check.
pub fn open_sse_streams() -> usize {
    OPEN_STREAMS.load(std::sync::atomic::Ordering::Relaxed)
}

impl Drop for SseBody {
    fn drop(&mut self) {
        OPEN_STREAMS.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        #[cfg(feature = "metrics")]
        metrics::gauge!(crate::metrics::SSE_STREAMS_OPEN).decrement(1.0);
    }
}

/// Where a body's frames after the prelude come from.
enum Frames {
    /// A channel, there from the start.
    Channel(mpsc::Receiver<Bytes>),
    /// A channel handed over later: a legacy stream gets its channel with
    /// its first POST, so that one that never posts does not hold a
    /// channel's first block (about 1 KB) for its whole life. The stream
    /// ends if the sender is dropped without handing one over.
    Later(oneshot::Receiver<mpsc::Receiver<Bytes>>),
    /// None: the prelude is the whole body.
    Done,
}

impl Frames {
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        if let Frames::Later(later) = self {
            match Pin::new(later).poll(cx) {
                Poll::Ready(Ok(rx)) => *self = Frames::Channel(rx),
                Poll::Ready(Err(_)) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
        match self {
            Frames::Channel(rx) => rx.poll_recv(cx),
            Frames::Later(_) => Poll::Pending,
            Frames::Done => Poll::Ready(None),
        }
    }
}

impl SseBody {
    pub(crate) fn new(
        prelude: VecDeque<Bytes>,
        rx: mpsc::Receiver<Bytes>,
        keepalive: Option<Duration>,
        guard: Option<DropGuard>,
    ) -> Self {
        Self::with_frames(prelude, Frames::Channel(rx), keepalive, guard)
    }

    /// Like [`Self::new`], with the channel handed over later through
    /// `later`; the body ends if `later`'s sender is dropped first.
    pub(crate) fn channel_later(
        prelude: VecDeque<Bytes>,
        later: oneshot::Receiver<mpsc::Receiver<Bytes>>,
        keepalive: Option<Duration>,
    ) -> Self {
        Self::with_frames(prelude, Frames::Later(later), keepalive, None)
    }

    /// A body of exactly `frames`, whose length is known: hyper writes it
    /// with its response head in one write, with a `Content-Length`.
    pub(crate) fn complete(frames: VecDeque<Bytes>) -> Self {
        Self::with_frames(frames, Frames::Done, None, None)
    }

    /// The body of a request stream, built once the stream's first event is
    /// there or [`FIRST_EVENT_WAIT`] (50 ms) has passed, whichever comes
    /// first. Events already
    /// queued by then go into the prelude, and a stream that has already
    /// ended (the common case: one request, answered quickly) becomes a
    /// [`complete`](Self::complete) body. Its head, events and end then
    /// leave in one write instead of a head first and the events later: one
    /// packet and one wake-up of the client per request instead of two.
    /// A slow request costs its client nothing but the wait on the head.
    pub(crate) async fn settled(
        mut prelude: VecDeque<Bytes>,
        mut rx: mpsc::Receiver<Bytes>,
        keepalive: Option<Duration>,
    ) -> Self {
        match tokio::time::timeout(FIRST_EVENT_WAIT, rx.recv()).await {
            Ok(Some(first)) => prelude.push_back(first),
            Ok(None) => return Self::complete(prelude),
            Err(_) => return Self::new(prelude, rx, keepalive, None),
        }
        loop {
            match rx.try_recv() {
                Ok(next) => prelude.push_back(next),
                Err(mpsc::error::TryRecvError::Disconnected) => return Self::complete(prelude),
                Err(mpsc::error::TryRecvError::Empty) => {
                    return Self::new(prelude, rx, keepalive, None);
                }
            }
        }
    }

    fn with_frames(
        prelude: VecDeque<Bytes>,
        frames: Frames,
        keepalive: Option<Duration>,
        guard: Option<DropGuard>,
    ) -> Self {
        OPEN_STREAMS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        #[cfg(feature = "metrics")]
        metrics::gauge!(crate::metrics::SSE_STREAMS_OPEN).increment(1.0);
        Self {
            prelude,
            frames,
            keepalive: keepalive.map(|d| Box::pin(tokio::time::sleep(d))),
            period: keepalive,
            _guard: guard,
            _held: None,
        }
    }

    /// The 200 response streaming this body, with the SSE headers
    /// ([`set_sse_headers`]).
    pub(crate) fn into_response(self) -> axum::response::Response {
        let mut res = axum::response::Response::new(axum::body::Body::new(self));
        set_sse_headers(res.headers_mut());
        res
    }

    /// Keeps `value` alive until the body is dropped: written to the end, or
    /// its client gone.
    pub(crate) fn holding(mut self, value: impl std::any::Any + Send + Sync) -> Self {
        self._held = Some(Box::new(value));
        self
    }

    fn reset_keepalive(&mut self) {
        if let (Some(sleep), Some(period)) = (self.keepalive.as_mut(), self.period) {
            sleep.as_mut().reset(tokio::time::Instant::now() + period);
        }
    }
}

impl Body for SseBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Some(first) = self.prelude.pop_front() {
            self.reset_keepalive();
            return Poll::Ready(Some(Ok(Frame::data(first))));
        }
        match self.frames.poll_recv(cx) {
            Poll::Ready(Some(bytes)) => {
                self.reset_keepalive();
                return Poll::Ready(Some(Ok(Frame::data(bytes))));
            }
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => {}
        }
        if let Some(sleep) = self.keepalive.as_mut()
            && sleep.as_mut().poll(cx).is_ready()
        {
            self.reset_keepalive();
            // Register the timer again before returning.
            if let Some(sleep) = self.keepalive.as_mut() {
                let _ = sleep.as_mut().poll(cx);
            }
            return Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(KEEPALIVE)))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.prelude.is_empty() && matches!(self.frames, Frames::Done)
    }

    fn size_hint(&self) -> SizeHint {
        match self.frames {
            Frames::Done => SizeHint::with_exact(self.prelude.iter().map(|b| b.len() as u64).sum()),
            _ => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[test]
    fn multi_line_data_becomes_several_data_fields() {
        let ev = encode_event(Some("message"), Some("1-2"), "a\nb\r\nc\rd");
        assert_eq!(
            &ev[..],
            b"event: message\nid: 1-2\ndata: a\ndata: b\ndata: c\ndata: d\n\n"
        );
    }

    #[test]
    fn ids_cannot_inject_fields() {
        let ev = encode_event(None, Some("1\ndata: evil"), "x");
        assert_eq!(&ev[..], b"id: 1data: evil\ndata: x\n\n");
    }

    #[test]
    fn empty_data_is_a_priming_event() {
        assert_eq!(
            &encode_event(None, Some("0-0"), "")[..],
            b"id: 0-0\ndata: \n\n"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn body_sends_prelude_then_channel_then_keepalives_and_ends() {
        let (tx, rx) = mpsc::channel(4);
        let mut body = SseBody::new(
            VecDeque::from([Bytes::from_static(b"first")]),
            rx,
            Some(Duration::from_secs(30)),
            None,
        );
        tx.send(Bytes::from_static(b"second")).await.unwrap();
        let f = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(&f[..], b"first");
        let f = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(&f[..], b"second");
        let f = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(&f[..], KEEPALIVE);
        drop(tx);
        assert!(body.frame().await.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_channel_handed_over_later_carries_frames_and_keepalives_come_before_it() {
        let (deliver, later) = oneshot::channel();
        let mut body = SseBody::channel_later(
            VecDeque::from([Bytes::from_static(b"endpoint")]),
            later,
            Some(Duration::from_secs(30)),
        );
        let f = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(&f[..], b"endpoint");
        // No channel yet: the stream stays open and keeps alive.
        let f = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(&f[..], KEEPALIVE);
        let (tx, rx) = mpsc::channel(4);
        deliver.send(rx).unwrap();
        tx.send(Bytes::from_static(b"message")).await.unwrap();
        let f = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(&f[..], b"message");
        drop(tx);
        assert!(body.frame().await.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_stream_answered_within_the_wait_is_one_complete_body_of_known_length() {
        let (tx, rx) = mpsc::channel(4);
        tx.send(Bytes::from_static(b"progress")).await.unwrap();
        tx.send(Bytes::from_static(b"reply")).await.unwrap();
        drop(tx);
        let prelude = VecDeque::from([Bytes::from_static(b"priming")]);
        let body = SseBody::settled(prelude, rx, Some(Duration::from_secs(30))).await;
        assert_eq!(body.size_hint().exact(), Some(20));
        assert!(!body.is_end_stream());
        let all = body.collect().await.unwrap().to_bytes();
        assert_eq!(&all[..], b"primingprogressreply");
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_ends_with_its_last_frame_so_the_end_leaves_with_it() {
        let mut body = SseBody::complete(VecDeque::from([Bytes::from_static(b"only")]));
        let f = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(&f[..], b"only");
        assert!(body.is_end_stream());
        assert!(body.frame().await.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_stream_streams_after_the_wait_and_keeps_what_was_queued() {
        let (tx, rx) = mpsc::channel(4);
        // Nothing within the wait: the head goes out, the events follow.
        let mut body = SseBody::settled(VecDeque::new(), rx, None).await;
        assert_eq!(body.size_hint().exact(), None);
        tx.send(Bytes::from_static(b"late")).await.unwrap();
        let f = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(&f[..], b"late");
        drop(tx);
        assert!(body.frame().await.is_none());

        // A first event but an open stream: the event is kept, the rest streams.
        let (tx, rx) = mpsc::channel(4);
        tx.send(Bytes::from_static(b"progress")).await.unwrap();
        let body = SseBody::settled(VecDeque::new(), rx, None).await;
        assert_eq!(body.size_hint().exact(), None);
        tx.send(Bytes::from_static(b"reply")).await.unwrap();
        drop(tx);
        let all = body.collect().await.unwrap().to_bytes();
        assert_eq!(&all[..], b"progressreply");
    }

    #[tokio::test]
    async fn a_body_whose_channel_never_comes_ends_when_the_handover_is_dropped() {
        let (deliver, later) = oneshot::channel::<mpsc::Receiver<Bytes>>();
        let mut body = SseBody::channel_later(VecDeque::new(), later, None);
        drop(deliver);
        assert!(body.frame().await.is_none());
    }
}

/// Round trip through an independent decoder (`sse-stream`, the upstream
/// backend's): whatever the data, the client reads back exactly what was
/// sent, line breaks normalized to `\n` as the SSE grammar defines.
#[cfg(all(test, feature = "upstream"))]
mod round_trip {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use futures_util::StreamExt;
    use proptest::prelude::*;

    use super::encode_event;

    fn decode(bytes: bytes::Bytes) -> Vec<(Option<String>, Option<String>, String)> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let stream = futures_util::stream::iter([Ok::<_, std::io::Error>(bytes)]);
            sse_stream::SseByteStream::new(stream)
                .map(|e| {
                    let e = e.unwrap();
                    (e.event, e.id, e.data.unwrap_or_default())
                })
                .collect()
                .await
        })
    }

    proptest! {
        #[test]
        fn any_data_survives_encoding(
            data in "(?s).{0,200}",
            id in proptest::option::of("[ -~]{1,20}"),
            event in proptest::option::of("[a-z]{1,10}"),
        ) {
            let wire = encode_event(event.as_deref(), id.as_deref(), &data);
            let events = decode(wire);
            prop_assert_eq!(events.len(), 1);
            let (got_event, got_id, got_data) = events[0].clone();
            let normalized = data.replace("\r\n", "\n").replace('\r', "\n");
            prop_assert_eq!(got_data, normalized);
            prop_assert_eq!(got_event, event);
            prop_assert_eq!(got_id, id);
        }
    }
}
