//! Reading SSE bodies in tests with the workspace's one decoder (`sse-stream`, which the
//! upstream backend and the load harness use too), never a hand-written parser.

use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::Value;
use sse_stream::SseStream;

/// The `data` of each event of a complete (or partial: an unfinished last event is left out)
/// SSE body, parsed as JSON; events whose data is not JSON (priming events, comments) are
/// skipped. A body that is one JSON value (an `application/json` answer) is returned as is.
pub async fn json_messages(body: &str) -> Vec<Value> {
    if let Ok(value) = serde_json::from_str::<Value>(body) {
        return vec![value];
    }
    let bytes = Bytes::copy_from_slice(body.as_bytes());
    let stream = futures_util::stream::iter([Ok::<_, std::convert::Infallible>(bytes)]);
    SseStream::from_bytes_stream(stream)
        .filter_map(|event| async move {
            let data = event.ok()?.data?;
            serde_json::from_str(&data).ok()
        })
        .collect()
        .await
}

/// The status of `res` and the JSON-RPC answer in its body (one JSON value or an SSE stream):
/// the first message with an `id`. Without one (or an unreadable body) the test fails.
pub async fn answer(res: reqwest::Response) -> (reqwest::StatusCode, Value) {
    let status = res.status();
    let text = match res.text().await {
        Ok(text) => text,
        Err(e) => panic!("{status}: unreadable body: {e}"),
    };
    match json_messages(&text)
        .await
        .into_iter()
        .find(|m| m.get("id").is_some())
    {
        Some(message) => (status, message),
        None => panic!("{status}: no JSON-RPC answer in {text:?}"),
    }
}
