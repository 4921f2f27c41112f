//! [`AuditBody`]: the response body, counted and glanced at as it streams,
//! so the record can say how many bytes went out and whether the answer was
//! a JSON-RPC error or a tool error. The record is written when the body
//! ends or is dropped (a client that went away).

use std::{
    fmt,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use serde::{
    Deserialize, Deserializer,
    de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor},
};

use super::{AuditRecord, AuditWriter, Outcome};
use crate::jsonrpc::RequestId;

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
                first: Bytes::new(),
                more: BytesMut::new(),
                bytes: 0,
            },
        }
    }
}

/// The record waiting for the end of the body.
struct Pending {
    record: Option<AuditRecord>,
    writer: Arc<AuditWriter>,
    /// The first frame of the answer (most answers are one), kept without
    /// a copy.
    first: Bytes,
    /// Once a second frame came: the kept bytes of all of them.
    more: BytesMut,
    bytes: u64,
}

impl Pending {
    fn saw(&mut self, data: &Bytes) {
        if data.is_empty() {
            return;
        }
        self.bytes += u64::try_from(data.len()).unwrap_or(u64::MAX);
        if self.first.is_empty() && self.more.is_empty() {
            self.first = data.slice(..data.len().min(KEPT_BYTES));
            return;
        }
        if self.more.is_empty() {
            self.more
                .extend_from_slice(&std::mem::take(&mut self.first));
        }
        let room = KEPT_BYTES.saturating_sub(self.more.len());
        self.more.extend_from_slice(&data[..data.len().min(room)]);
    }

    fn kept(&self) -> &[u8] {
        if self.more.is_empty() {
            &self.first
        } else {
            &self.more
        }
    }

    fn finish(&mut self) {
        let Some(mut rec) = self.record.take() else {
            return;
        };
        rec.bytes_out = Some(self.bytes);
        judge_answer(self.kept(), &mut rec);
        self.writer.write_record(rec);
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.finish();
    }
}

impl<B: Body<Data = Bytes>> Body for AuditBody<B> {
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
                    this.pending.saw(data);
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

/// Visitor methods that take a JSON value of the kinds named (all scalars
/// by default) as the visitor's default value.
macro_rules! ignore_scalars {
    () => {
        ignore_scalars!(bool, i64, u64, f64, str, unit);
    };
    ($($kind:ident),*) => {
        $(ignore_scalars!(@ $kind);)*
    };
    (@ bool) => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
    };
    (@ i64) => {
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
    };
    (@ u64) => {
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
    };
    (@ f64) => {
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
    };
    (@ str) => {
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
    };
    (@ unit) => {
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
    };
}

/// A visitor method that skips an array, giving the default value.
macro_rules! ignore_arrays {
    () => {
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(Default::default())
        }
    };
}

/// A visitor method that skips an object, giving the default value.
macro_rules! ignore_objects {
    () => {
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            Ok(Default::default())
        }
    };
}

/// Reads the JSON-RPC answer to the record's request out of a JSON or SSE
/// body: an `error` gives `error_code` (and `error` as the outcome of an
/// answered request), a result with `isError: true` a `tool_error`.
///
/// The first message with the record's id decides (with no id on the
/// record, the first message with any id). Only `id`, `error.code` and
/// `result.isError` are read: the rest of each message is skipped by the
/// parser, never built into values.
pub(crate) fn judge_answer(body: &[u8], rec: &mut AuditRecord) {
    if !may_name_an_error(body) {
        // no member can be `error` or `isError`: nothing to read
        return;
    }
    let want = rec.request_id.as_ref();
    let start = body
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(body.len());
    let verdict = if matches!(body.get(start), Some(b'{' | b'[')) {
        judge_json(&body[start..], want)
    } else {
        body.split(|&b| b == b'\n')
            .filter_map(|line| line.strip_prefix(b"data:"))
            .find_map(|data| judge_json(data.trim_ascii(), want))
    };
    let Some(verdict) = verdict else { return };
    if let Some(code) = verdict.error_code {
        rec.error_code = Some(code);
        if rec.outcome == Outcome::Answered {
            rec.outcome = Outcome::Error;
        }
    } else if verdict.is_error && rec.outcome == Outcome::Answered {
        rec.outcome = Outcome::ToolError;
    }
}

/// False when no message in `body` can have an `error` member or an
/// `isError` member that is `true` (a tool's usual answer carries
/// `"isError":false`): without a backslash nothing is escaped, so such a
/// member is spelt out as `"error"`, or as `"isError"` then `:` then `true`.
fn may_name_an_error(body: &[u8]) -> bool {
    if body.contains(&b'\\') {
        return true;
    }
    body.iter().enumerate().any(|(i, &b)| {
        if b != b'r' || !body[i..].starts_with(b"rror\"") {
            return false;
        }
        let before = &body[..i];
        if before.ends_with(b"\"e") {
            return true;
        }
        before.ends_with(b"\"isE")
            && body[i + 5..]
                .trim_ascii_start()
                .strip_prefix(b":")
                .is_some_and(|v| v.trim_ascii_start().starts_with(b"true"))
    })
}

/// What the message answering the record's request said.
#[derive(Debug, Default, Clone, Copy)]
struct Verdict {
    error_code: Option<i64>,
    is_error: bool,
}

/// The verdict of the first message of `json` (one message or a batch)
/// that answers `want`; `None` when there is none or `json` does not parse.
fn judge_json(json: &[u8], want: Option<&RequestId>) -> Option<Verdict> {
    let mut de = serde_json::Deserializer::from_slice(json);
    let verdict = de.deserialize_any(Messages { want }).ok()?;
    de.end().ok()?;
    verdict
}

/// Visits one message or a batch (an array of messages).
struct Messages<'w> {
    want: Option<&'w RequestId>,
}

impl<'de> Visitor<'de> for Messages<'_> {
    type Value = Option<Verdict>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON-RPC message or batch")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        Ok(read_message(map)?.verdict_for(self.want))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut verdict = None;
        while let Some(m) = seq.next_element::<Message>()? {
            if verdict.is_none() {
                verdict = m.verdict_for(self.want);
            }
        }
        Ok(verdict)
    }

    ignore_scalars!();
}

/// The parts of one message the verdict needs.
#[derive(Debug, Default)]
struct Message {
    /// `None`: no `id` member.
    id: Option<SeenId>,
    error_code: Option<i64>,
    is_error: bool,
}

impl Message {
    fn verdict_for(&self, want: Option<&RequestId>) -> Option<Verdict> {
        let ours = match (want, &self.id) {
            (Some(want), Some(got)) => got.is(want),
            (None, Some(_)) => true,
            (_, None) => false,
        };
        ours.then_some(Verdict {
            error_code: self.error_code,
            is_error: self.is_error,
        })
    }
}

/// A message's `id`: compared with the request's, as JSON values.
#[derive(Debug, Default)]
enum SeenId {
    Number(i64),
    String(String),
    #[default]
    Other,
}

impl SeenId {
    fn is(&self, want: &RequestId) -> bool {
        match (self, want) {
            (Self::Number(a), RequestId::Number(b)) => a == b,
            (Self::String(a), RequestId::String(b)) => a == b,
            _ => false,
        }
    }
}

impl<'de> Deserialize<'de> for Message {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Message;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON-RPC message")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Message, A::Error> {
                read_message(map)
            }
            ignore_scalars!();
            ignore_arrays!();
        }
        de.deserialize_any(V)
    }
}

/// Reads `id`, `error.code` and `result.isError` of a message; a later
/// duplicate member wins, as in a parsed `Value`.
fn read_message<'de, A: MapAccess<'de>>(mut map: A) -> Result<Message, A::Error> {
    let mut m = Message::default();
    while let Some(key) = map.next_key::<Key>()? {
        match key {
            Key::Id => m.id = Some(map.next_value::<IdValue>()?.0),
            Key::Error => m.error_code = map.next_value::<Member<Code>>()?.0,
            Key::Result => m.is_error = map.next_value::<Member<IsError>>()?.0.unwrap_or(false),
            _ => {
                map.next_value::<IgnoredAny>()?;
            }
        }
    }
    Ok(m)
}

/// The member names the verdict looks at.
enum Key {
    Id,
    Error,
    Result,
    Code,
    IsError,
    Other,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
                Ok(match v {
                    "id" => Key::Id,
                    "error" => Key::Error,
                    "result" => Key::Result,
                    "code" => Key::Code,
                    "isError" => Key::IsError,
                    _ => Key::Other,
                })
            }
        }
        de.deserialize_str(V)
    }
}

/// The `id` member's value.
#[derive(Default)]
struct IdValue(SeenId);

impl<'de> Deserialize<'de> for IdValue {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = IdValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON-RPC id")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<IdValue, E> {
                Ok(IdValue(SeenId::Number(v)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<IdValue, E> {
                Ok(IdValue(
                    i64::try_from(v).map_or(SeenId::Other, SeenId::Number),
                ))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<IdValue, E> {
                Ok(IdValue(SeenId::String(v.to_owned())))
            }
            ignore_scalars!(f64, bool, unit);
            ignore_arrays!();
            ignore_objects!();
        }
        de.deserialize_any(V)
    }
}

/// Which member of an object [`Member`] reads, and how.
trait Wanted {
    fn is_key(key: &Key) -> bool;
    type Out;
    fn read<'de, A: MapAccess<'de>>(map: &mut A) -> Result<Option<Self::Out>, A::Error>;
}

/// `error.code`, when an integer.
struct Code;

impl Wanted for Code {
    fn is_key(key: &Key) -> bool {
        matches!(key, Key::Code)
    }
    type Out = i64;
    fn read<'de, A: MapAccess<'de>>(map: &mut A) -> Result<Option<i64>, A::Error> {
        Ok(map.next_value::<Scalar>()?.as_i64())
    }
}

/// `result.isError`, when a boolean.
struct IsError;

impl Wanted for IsError {
    fn is_key(key: &Key) -> bool {
        matches!(key, Key::IsError)
    }
    type Out = bool;
    fn read<'de, A: MapAccess<'de>>(map: &mut A) -> Result<Option<bool>, A::Error> {
        Ok(map.next_value::<Scalar>()?.as_bool())
    }
}

/// One member of an object value (`None` when the value is not an object
/// or has no such member), the rest skipped.
struct Member<W: Wanted>(Option<W::Out>);

impl<W: Wanted> Default for Member<W> {
    fn default() -> Self {
        Self(None)
    }
}

impl<'de, W: Wanted> Deserialize<'de> for Member<W> {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct V<W>(std::marker::PhantomData<W>);
        impl<'de, W: Wanted> Visitor<'de> for V<W> {
            type Value = Member<W>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Member<W>, A::Error> {
                let mut out = None;
                while let Some(key) = map.next_key::<Key>()? {
                    if W::is_key(&key) {
                        out = W::read(&mut map)?;
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(Member(out))
            }
            ignore_scalars!();
            ignore_arrays!();
        }
        de.deserialize_any(V(std::marker::PhantomData))
    }
}

/// A member's value, kept only when a boolean or an integer that fits an
/// `i64` (what `Value::as_bool` and `Value::as_i64` accept).
#[derive(Default)]
enum Scalar {
    Bool(bool),
    Int(i64),
    #[default]
    Other,
}

impl Scalar {
    fn as_i64(&self) -> Option<i64> {
        match self {
            Self::Int(i) => Some(*i),
            _ => None,
        }
    }

    fn as_bool(&self) -> Option<bool> {
        match self {
            Self::Bool(b) => Some(*b),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar::Bool(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(i64::try_from(v).map_or(Scalar::Other, Scalar::Int))
            }
            ignore_scalars!(f64, str, unit);
            ignore_arrays!();
            ignore_objects!();
        }
        de.deserialize_any(V)
    }
}
