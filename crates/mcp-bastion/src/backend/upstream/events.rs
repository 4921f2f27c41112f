//! Reading the upstream's answers: `application/json` bodies (bounded) and
//! Server-Sent Events (decoded by `sse-stream`), each turned into JSON-RPC
//! [`Message`]s.

use std::{pin::Pin, time::Duration};

use futures_util::{Stream, StreamExt};
use http::{HeaderMap, header};
use serde_json::Value;
use sse_stream::{Sse, SseByteStream};

use super::{TARGET, failure::UpstreamFailure};
use crate::jsonrpc::Message;

/// The largest `application/json` answer read from the upstream: 16 MiB.
pub(crate) const MAX_JSON_BYTES: usize = 16 * 1024 * 1024;

/// What an upstream response body holds, by its `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyKind {
    /// `application/json`: one message (or a batch).
    Json,
    /// `text/event-stream`.
    EventStream,
    /// Anything else (or no body type at all).
    Other,
}

/// Classifies a body by its `Content-Type` (parameters ignored).
pub(crate) fn body_kind(headers: &HeaderMap) -> BodyKind {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return BodyKind::Other;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "application/json" => BodyKind::Json,
        "text/event-stream" => BodyKind::EventStream,
        _ => BodyKind::Other,
    }
}

/// A stream of decoded SSE events; a decoding or connection error ends it
/// with `Err(Broken)`.
pub(crate) type EventStream = Pin<Box<dyn Stream<Item = Result<Sse, UpstreamFailure>> + Send>>;

/// Decodes a response body as Server-Sent Events.
pub(crate) fn sse_events(response: reqwest::Response) -> EventStream {
    sse_events_from(response.bytes_stream())
}

/// Decodes any byte stream as Server-Sent Events.
pub(crate) fn sse_events_from<S, E>(bytes: S) -> EventStream
where
    S: Stream<Item = Result<bytes::Bytes, E>> + Send + 'static,
    E: std::error::Error + Send + Sync + 'static,
{
    Box::pin(SseByteStream::new(bytes).map(|event| {
        event.map_err(|error| {
            tracing::debug!(target: TARGET, %error, "upstream event stream broke");
            UpstreamFailure::Broken
        })
    }))
}

/// The JSON-RPC message an event carries: events without a type or of type
/// `message`, with non-empty data. Priming events (empty data), other event
/// types and data that is not JSON-RPC yield `None` (the last is logged).
pub(crate) fn event_message(event: &Sse) -> Option<Message> {
    if !matches!(event.event.as_deref(), None | Some("message")) {
        return None;
    }
    let data = event.data.as_deref()?;
    if data.trim().is_empty() {
        return None;
    }
    match Message::from_slice(data.as_bytes()) {
        Ok(message) => Some(message),
        Err(error) => {
            tracing::warn!(target: TARGET, %error, "skipped an upstream event that is not a JSON-RPC message");
            None
        }
    }
}

/// The reconnection delay an event asks for.
pub(crate) fn event_retry(event: &Sse) -> Option<Duration> {
    event.retry.map(Duration::from_millis)
}

/// Reads an `application/json` body of at most `limit` bytes as one message
/// or a batch of messages.
pub(crate) async fn json_messages(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Vec<Message>, UpstreamFailure> {
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| UpstreamFailure::from_reqwest(&e))?
    {
        if body.len() + chunk.len() > limit {
            return Err(UpstreamFailure::Protocol(
                "a JSON answer over the size limit",
            ));
        }
        body.extend_from_slice(&chunk);
    }
    parse_messages(&body)
}

/// One message or a JSON array of messages.
pub(crate) fn parse_messages(body: &[u8]) -> Result<Vec<Message>, UpstreamFailure> {
    let invalid = UpstreamFailure::Protocol("a JSON answer that is not JSON-RPC");
    let value: Value = serde_json::from_slice(body).map_err(|_| invalid.clone())?;
    let values = match value {
        Value::Array(values) => values,
        single => vec![single],
    };
    values
        .into_iter()
        .map(|v| Message::from_value(v).map_err(|_| invalid.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::jsonrpc::RequestId;
    use http::HeaderValue;

    fn headers(content_type: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_str(content_type).unwrap(),
        );
        h
    }

    #[test]
    fn body_kind_follows_the_content_type_essence() {
        assert_eq!(
            body_kind(&headers("application/json; charset=utf-8")),
            BodyKind::Json
        );
        assert_eq!(
            body_kind(&headers("Text/Event-Stream")),
            BodyKind::EventStream
        );
        assert_eq!(body_kind(&headers("text/html")), BodyKind::Other);
        assert_eq!(body_kind(&HeaderMap::new()), BodyKind::Other);
    }

    async fn decode(chunks: &[&'static str]) -> Vec<Result<Sse, UpstreamFailure>> {
        let bytes = futures_util::stream::iter(
            chunks
                .iter()
                .map(|c| Ok::<_, std::io::Error>(bytes::Bytes::from_static(c.as_bytes())))
                .collect::<Vec<_>>(),
        );
        sse_events_from(bytes).collect().await
    }

    #[tokio::test]
    async fn events_split_across_chunks_become_messages_and_priming_events_are_skipped() {
        let events = decode(&[
            "id: 0\ndata: \n\n",
            ": keepalive\n\nevent: message\nid: 1\nretry: 1500\nda",
            "ta: {\"jsonrpc\":\"2.0\",\"id\":7,\n",
            "data: \"result\":{}}\n\n",
            "event: endpoint\ndata: /message?sessionId=abc\n\n",
            "data: not json\n\n",
        ])
        .await;
        let events: Vec<Sse> = events.into_iter().map(Result::unwrap).collect();
        assert_eq!(events.len(), 4, "{events:?}");
        assert!(event_message(&events[0]).is_none(), "priming event");
        let message = event_message(&events[1]).unwrap();
        assert_eq!(message.id(), Some(&RequestId::Number(7)));
        assert_eq!(events[1].id.as_deref(), Some("1"));
        assert_eq!(event_retry(&events[1]), Some(Duration::from_millis(1500)));
        assert!(
            event_message(&events[2]).is_none(),
            "endpoint is no message"
        );
        assert_eq!(events[2].data.as_deref(), Some("/message?sessionId=abc"));
        assert!(event_message(&events[3]).is_none(), "garbage is skipped");
    }

    #[tokio::test]
    async fn a_broken_stream_ends_with_broken() {
        let bytes = futures_util::stream::iter(vec![
            Ok(bytes::Bytes::from_static(b"data: {}\n\n")),
            Err(std::io::Error::other("reset")),
        ]);
        let events: Vec<_> = sse_events_from(bytes).collect().await;
        assert_eq!(events.last(), Some(&Err(UpstreamFailure::Broken)));
    }

    #[test]
    fn json_bodies_hold_one_message_or_a_batch() {
        let one = parse_messages(br#"{"jsonrpc":"2.0","id":1,"result":{}}"#).unwrap();
        assert_eq!(one.len(), 1);
        let batch = parse_messages(
            br#"[{"jsonrpc":"2.0","id":1,"result":{}},{"jsonrpc":"2.0","method":"x"}]"#,
        )
        .unwrap();
        assert_eq!(batch.len(), 2);
        assert!(matches!(
            parse_messages(b"<html>"),
            Err(UpstreamFailure::Protocol(_))
        ));
        assert!(matches!(
            parse_messages(br#"{"id":1}"#),
            Err(UpstreamFailure::Protocol(_))
        ));
    }
}
