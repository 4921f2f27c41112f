//! A response body that rewrites complete SSE events as they pass, without
//! holding back anything but the event being received.

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use bytes::{Bytes, BytesMut};
use http_body::{Body as HttpBody, Frame};
use pin_project_lite::pin_project;

/// One parsed SSE event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SseEvent {
    pub event: Option<String>,
    pub id: Option<String>,
    pub data: Option<String>,
}

impl SseEvent {
    /// Parses a complete event block; `None` for a comment-only block or
    /// one that is not UTF-8 (passed through untouched).
    pub fn parse(block: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(block).ok()?;
        let mut ev = SseEvent::default();
        let mut data: Vec<&str> = Vec::new();
        for line in text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)) {
            if line.is_empty() || line.starts_with(':') {
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "event" => ev.event = Some(value.to_owned()),
                "id" => ev.id = Some(value.to_owned()),
                "data" => data.push(value),
                // `retry` and unknown fields: keep the block untouched
                _ => return None,
            }
        }
        if data.is_empty() {
            return None;
        }
        ev.data = Some(data.join("\n"));
        Some(ev)
    }

    /// Encodes the event (LF line endings, blank line after).
    pub fn encode(&self) -> Bytes {
        let mut out = String::new();
        if let Some(e) = &self.event {
            out.push_str(&format!("event: {e}\n"));
        }
        if let Some(id) = &self.id {
            out.push_str(&format!("id: {id}\n"));
        }
        for line in self.data.as_deref().unwrap_or("").split('\n') {
            out.push_str(&format!("data: {line}\n"));
        }
        out.push('\n');
        Bytes::from(out)
    }
}

/// Rewrites an event: `Some(bytes)` replaces it, `None` keeps it.
pub(crate) type Rewrite = Box<dyn FnMut(&[u8]) -> Option<Bytes> + Send>;

pin_project! {
    /// A body passing SSE events through a [`Rewrite`].
    pub(crate) struct RewriteSse<B> {
        #[pin]
        inner: B,
        buf: BytesMut,
        rewrite: Rewrite,
        done: bool,
    }
}

impl<B> RewriteSse<B> {
    pub(crate) fn new(inner: B, rewrite: Rewrite) -> Self {
        Self {
            inner,
            buf: BytesMut::new(),
            rewrite,
            done: false,
        }
    }
}

/// The end of the first complete event in `buf` (index after its blank line).
fn event_end(buf: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i + 1 < buf.len() {
        if buf[i] == b'\n' {
            if buf[i + 1] == b'\n' {
                return Some(i + 2);
            }
            if buf[i + 1] == b'\r' && buf.get(i + 2) == Some(&b'\n') {
                return Some(i + 3);
            }
        }
        i += 1;
    }
    None
}

impl<B> HttpBody for RewriteSse<B>
where
    B: HttpBody<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let mut this = self.project();
        loop {
            if let Some(end) = event_end(this.buf) {
                let block = this.buf.split_to(end).freeze();
                let out = (this.rewrite)(&block).unwrap_or(block);
                return Poll::Ready(Some(Ok(Frame::data(out))));
            }
            if *this.done {
                if this.buf.is_empty() {
                    return Poll::Ready(None);
                }
                let rest = this.buf.split().freeze();
                return Poll::Ready(Some(Ok(Frame::data(rest))));
            }
            match this.inner.as_mut().poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => *this.done = true,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => this.buf.extend_from_slice(&data),
                    Err(frame) => return Poll::Ready(Some(Ok(frame))),
                },
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done && self.buf.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_encodes_events() {
        let ev = SseEvent::parse(b"event: message\nid: 7\ndata: {\"a\":1}\n\n").unwrap();
        assert_eq!(ev.event.as_deref(), Some("message"));
        assert_eq!(ev.data.as_deref(), Some("{\"a\":1}"));
        assert_eq!(
            ev.encode(),
            Bytes::from("event: message\nid: 7\ndata: {\"a\":1}\n\n")
        );
        assert_eq!(SseEvent::parse(b": keepalive\n\n"), None);
        assert_eq!(event_end(b"data: x\n\nrest"), Some(9));
        assert_eq!(event_end(b"data: x\r\n\r\n"), Some(11));
        assert_eq!(event_end(b"data: x\n"), None);
    }
}
