//! [`AuditBody`]: the response body, counted and glanced at as it streams,
//! so the record can say how many bytes went out and whether the answer was
//! a JSON-RPC error or a tool error. The record is written when the body
//! ends or is dropped (a client that went away).

use std::{
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use bytes::{Buf, BytesMut};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use serde_json::Value;

use super::{AuditRecord, AuditWriter, Outcome};

/// How much of an answer is kept to read its JSON-RPC outcome; a larger
/// answer is still counted, and judged by what fit.
const KEPT_BYTES: usize = 64 * 1024;

pin_project! {
    /// The response body of [`McpAudit`](super::McpAudit).
    pub struct AuditBody<B> {
        #[pin]
        inner: B,
        pending: Pending,
    }
}

impl<B> AuditBody<B> {
    pub(crate) fn new(inner: B, record: AuditRecord, writer: Arc<AuditWriter>) -> Self {
        Self {
            inner,
            pending: Pending {
                record: Some(record),
                writer,
                kept: BytesMut::new(),
                bytes: 0,
            },
        }
    }
}

/// The record waiting for the end of the body.
struct Pending {
    record: Option<AuditRecord>,
    writer: Arc<AuditWriter>,
    kept: BytesMut,
    bytes: u64,
}

impl Pending {
    fn saw(&mut self, data: &[u8]) {
        self.bytes += u64::try_from(data.len()).unwrap_or(u64::MAX);
        let room = KEPT_BYTES.saturating_sub(self.kept.len());
        self.kept.extend_from_slice(&data[..data.len().min(room)]);
    }

    fn finish(&mut self) {
        let Some(mut rec) = self.record.take() else {
            return;
        };
        rec.bytes_out = Some(self.bytes);
        judge_answer(&self.kept, &mut rec);
        if let Ok(line) = serde_json::to_string(&rec) {
            self.writer.write_line(line);
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.finish();
    }
}

impl<B: Body> Body for AuditBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let frame = std::task::ready!(this.inner.poll_frame(cx));
        match &frame {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    this.pending.saw(data.chunk());
                }
            }
            Some(Err(_)) | None => this.pending.finish(),
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Reads the JSON-RPC answer to the record's request out of a JSON or SSE
/// body: an `error` gives `error_code` (and `error` as the outcome of an
/// answered request), a result with `isError: true` a `tool_error`.
pub(crate) fn judge_answer(body: &[u8], rec: &mut AuditRecord) {
    let text = String::from_utf8_lossy(body);
    let trimmed = text.trim_start();
    let messages: Vec<Value> = if trimmed.starts_with('{') || trimmed.starts_with('[') {
        serde_json::from_str(trimmed).into_iter().collect()
    } else {
        text.lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .filter_map(|d| serde_json::from_str(d.trim()).ok())
            .collect()
    };
    let flat = messages.into_iter().flat_map(|m| match m {
        Value::Array(batch) => batch,
        one => vec![one],
    });
    for m in flat {
        let is_ours = match (&rec.request_id, m.get("id")) {
            (Some(id), Some(got)) => serde_json::to_value(id).is_ok_and(|id| &id == got),
            (None, Some(_)) => true,
            _ => false,
        };
        if !is_ours {
            continue;
        }
        if let Some(code) = m.pointer("/error/code").and_then(Value::as_i64) {
            rec.error_code = Some(code);
            if rec.outcome == Outcome::Answered {
                rec.outcome = Outcome::Error;
            }
        } else if m.pointer("/result/isError") == Some(&Value::Bool(true))
            && rec.outcome == Outcome::Answered
        {
            rec.outcome = Outcome::ToolError;
        }
        return;
    }
}
