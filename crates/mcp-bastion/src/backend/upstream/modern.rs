//! Revision 2026-07-28 towards the upstream: learning whether it speaks that
//! revision (`server/discover`, cached), and passing a client's 2026-07-28
//! request through as it is.
//!
//! A 2026-07-28 request is self-contained (no session, no handshake), so a
//! pass-through is one POST per client request: the client's body byte for
//! byte, its MCP protocol headers (`MCP-Protocol-Version`, `Mcp-Method`,
//! `Mcp-Name`, `Mcp-Param-*`, checked against the body by the inspect layer
//! before), and the operator's credentials, as for every upstream request.
//! (With OpenTelemetry on, feature `otel`, the one change: the trace context
//! of the proxy's span for the call replaces the client's in
//! `params._meta` and goes in `traceparent`/`tracestate` headers too.)
//! The answer's status, `Content-Type` and body (JSON, or an SSE stream:
//! progress, an `InputRequiredResult`, a `subscriptions/listen` stream) go
//! back unchanged; the client closing its stream drops the upstream
//! response, which closes that upstream connection (the cancel signal of
//! 2026-07-28). No [`Connection`](crate::backend::Connection) is involved:
//! its message channels cannot carry HTTP statuses, which 2026-07-28 gives
//! meaning (404 for an unknown method, 400 for invalid `_meta`).

use std::sync::{Arc, Mutex};

use axum::body::Body;
use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde_json::{Value, json};

use super::{
    Inner, TARGET,
    events::{BodyKind, EventStream, body_kind, event_message, json_messages, sse_events},
    failure::UpstreamFailure,
    session_outbound,
};
use crate::{
    backend::{BackendError, PassThrough, SessionContext, handshake_versions},
    jsonrpc::{Message, RequestId, codes},
    protocol::{
        HEADER_METHOD, HEADER_PROTOCOL_VERSION, META_CLIENT_CAPABILITIES, META_CLIENT_INFO,
        META_PROTOCOL_VERSION, ProtocolVersion,
    },
};

/// The id of the probe's `server/discover` request.
const PROBE_ID: &str = "mcp-bastion/discover";

/// How much of a 400 answer is read to see whether the upstream refused the
/// revision (`-32022`): 64 KiB (the rest, if any, is relayed unread).
const MAX_ERROR_BODY: usize = 64 * 1024;

/// What the backend knows of the revisions its upstream speaks.
#[derive(Debug, Default)]
pub(super) struct Revisions {
    /// The last probe's answer; `None` until a probe succeeds, and again
    /// after a pass-through fails (the upstream may have changed).
    known: Mutex<Option<Vec<String>>>,
}

impl Revisions {
    fn get(&self) -> Option<Vec<String>> {
        self.known.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set(&self, versions: Vec<String>) {
        *self.known.lock().unwrap_or_else(|e| e.into_inner()) = Some(versions);
    }

    /// Forgets the answer: the next 2026-07-28 request probes again.
    pub(super) fn forget(&self) {
        *self.known.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

/// The revisions to report: the pinned one's era, the cached probe, or a
/// new probe. A probe that fails (connection, 5xx, 401…) is not cached and
/// is an error; an upstream that refuses `server/discover` (another 4xx, or
/// a JSON-RPC error) speaks the handshake revisions only, and that is cached.
pub(super) async fn protocol_versions(inner: Arc<Inner>) -> Result<Vec<String>, BackendError> {
    match inner.pinned {
        Some(ProtocolVersion::V2026_07_28) => {
            return Ok(vec![ProtocolVersion::V2026_07_28.as_str().to_owned()]);
        }
        Some(_) => return Ok(handshake_versions()),
        None => {}
    }
    if inner.transport == super::UpstreamTransport::LegacySse {
        return Ok(handshake_versions());
    }
    if let Some(known) = inner.revisions.get() {
        return Ok(known);
    }
    let versions = match probe(&inner).await {
        Ok(Some(versions)) => versions,
        Ok(None) => handshake_versions(),
        Err(failure) => {
            tracing::debug!(target: TARGET, %failure, "server/discover probe failed; will probe again");
            return Err(BackendError::Unavailable(failure.to_string()));
        }
    };
    tracing::info!(target: TARGET, versions = ?versions, "upstream protocol revisions");
    inner.revisions.set(versions.clone());
    Ok(versions)
}

/// POSTs `server/discover` at 2026-07-28 with the operator's credentials.
/// `Some(supportedVersions)` when the upstream answers it, `None` when it
/// refuses it (it predates 2026-07-28).
async fn probe(inner: &Inner) -> Result<Option<Vec<String>>, UpstreamFailure> {
    let body = json!({
        "jsonrpc": "2.0",
        "id": PROBE_ID,
        "method": "server/discover",
        "params": { "_meta": {
            META_PROTOCOL_VERSION: ProtocolVersion::V2026_07_28.as_str(),
            META_CLIENT_CAPABILITIES: {},
            META_CLIENT_INFO: { "name": "mcp-bastion", "version": env!("CARGO_PKG_VERSION") },
        }},
    });
    let mut headers = HeaderMap::new();
    headers.insert(
        HEADER_PROTOCOL_VERSION,
        HeaderValue::from_static(ProtocolVersion::V2026_07_28.as_str()),
    );
    headers.insert(HEADER_METHOD, HeaderValue::from_static("server/discover"));
    let request = inner
        .outbound
        .post_as_is(headers, Bytes::from(body.to_string()))
        .send();
    let exchange = async {
        let response = request
            .await
            .map_err(|e| UpstreamFailure::from_request_error(e, "server/discover probe"))?;
        let status = response.status();
        if matches!(
            status,
            StatusCode::UNAUTHORIZED
                | StatusCode::FORBIDDEN
                | StatusCode::REQUEST_TIMEOUT
                | StatusCode::TOO_MANY_REQUESTS
        ) || status.is_server_error()
        {
            return Err(UpstreamFailure::Status(status.as_u16()));
        }
        if !status.is_success() {
            return Ok(None);
        }
        let id = RequestId::String(PROBE_ID.into());
        let messages = match body_kind(response.headers()) {
            BodyKind::Json => json_messages(response, MAX_ERROR_BODY * 16).await?,
            BodyKind::EventStream => first_response(sse_events(response), &id).await,
            BodyKind::Other => Vec::new(),
        };
        Ok(messages
            .into_iter()
            .find_map(|m| supported_versions(m, &id)))
    };
    let limit = inner.outbound.connect_timeout() * 2;
    tokio::time::timeout(limit, exchange)
        .await
        .unwrap_or(Err(UpstreamFailure::Timeout))
}

/// Reads an SSE answer until the response to `id` (or its end).
async fn first_response(mut events: EventStream, id: &RequestId) -> Vec<Message> {
    while let Some(Ok(event)) = events.next().await {
        if let Some(message @ Message::Response(_)) = event_message(&event)
            && message.id() == Some(id)
        {
            return vec![message];
        }
    }
    Vec::new()
}

/// `result.supportedVersions` of the probe's response.
fn supported_versions(message: Message, id: &RequestId) -> Option<Vec<String>> {
    let Message::Response(response) = message else {
        return None;
    };
    if response.id.as_ref() != Some(id) {
        return None;
    }
    let result = response.outcome.ok()?;
    let versions: Vec<String> = result
        .get("supportedVersions")?
        .as_array()?
        .iter()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect();
    (!versions.is_empty()).then_some(versions)
}

/// Passes one 2026-07-28 request through: see the [module docs](self).
pub(super) async fn forward(
    inner: Arc<Inner>,
    request: PassThrough,
) -> Result<http::Response<Body>, BackendError> {
    if inner.shutdown.is_cancelled() {
        return Err(BackendError::Unavailable(
            "the upstream backend is shut down".into(),
        ));
    }
    let ctx = SessionContext {
        extensions: request.extensions,
        ..SessionContext::default()
    };
    let outbound = session_outbound(&inner, &ctx).await?;
    // With OpenTelemetry on: a CLIENT span for the call, its context in the
    // headers and in the body's `params._meta` (see `crate::otel`).
    #[cfg(feature = "otel")]
    let call = {
        let header = |name| {
            request
                .headers
                .get(name)
                .and_then(|v: &http::HeaderValue| v.to_str().ok())
        };
        crate::otel::Outbound::start(
            header(crate::protocol::HEADER_METHOD),
            header(crate::protocol::HEADER_NAME),
        )
    };
    #[cfg(feature = "otel")]
    let body = call
        .as_ref()
        .and_then(|call| call.rewrite_body(&request.body))
        .map_or(request.body, Bytes::from);
    #[cfg(not(feature = "otel"))]
    let body = request.body;
    #[allow(
        unused_mut,
        reason = "trace headers are added with the otel feature only"
    )]
    let mut post = outbound.post_as_is(request.headers, body);
    #[cfg(feature = "otel")]
    for (name, value) in call.iter().flat_map(crate::otel::Outbound::headers) {
        post = post.header(name, value);
    }
    let send = post.send();
    // The limit covers the answer's start only: an SSE answer (a long tool
    // call's progress, a `subscriptions/listen` stream) lasts as it lasts.
    let sent = match inner.request_timeout {
        Some(limit) => tokio::time::timeout(limit, send)
            .await
            .map_err(|_| UpstreamFailure::Timeout),
        None => Ok(send.await),
    };
    let response = match sent.and_then(|r| {
        r.map_err(|e| UpstreamFailure::from_request_error(e, "upstream pass-through POST"))
    }) {
        Ok(response) => response,
        Err(failure) => {
            inner.revisions.forget();
            return Err(BackendError::Unavailable(failure.to_string()));
        }
    };
    let status = response.status();
    #[cfg(feature = "otel")]
    if let Some(call) = &call {
        call.status(status);
    }
    let mut out = http::Response::builder().status(status.as_u16());
    for name in [header::CONTENT_TYPE, header::CACHE_CONTROL] {
        if let Some(value) = response.headers().get(&name) {
            out = out.header(name, value.clone());
        }
    }
    let body = if status == StatusCode::BAD_REQUEST
        && body_kind(response.headers()) == BodyKind::Json
    {
        // Read its start to see whether the upstream no longer speaks
        // 2026-07-28; the client gets the whole body all the same.
        let mut response = response;
        let (prefix, whole) = match read_prefix(&mut response).await {
            Ok(read) => read,
            Err(failure) => {
                inner.revisions.forget();
                return Err(BackendError::Unavailable(failure.to_string()));
            }
        };
        if whole && refuses_revision(&prefix) {
            tracing::info!(target: TARGET, "the upstream refused revision 2026-07-28; probing again on the next request");
            inner.revisions.forget();
        }
        let first = futures_util::stream::once(async move { Ok::<_, reqwest::Error>(prefix) });
        Body::from_stream(first.chain(response.bytes_stream()))
    } else {
        if status.is_server_error() {
            inner.revisions.forget();
        }
        Body::from_stream(response.bytes_stream())
    };
    out.body(body)
        .map_err(|e| BackendError::Unavailable(format!("upstream answer: {e}")))
}

/// The body's first [`MAX_ERROR_BODY`] bytes (or more, to a chunk's end),
/// and whether that is the whole body.
async fn read_prefix(response: &mut reqwest::Response) -> Result<(Bytes, bool), UpstreamFailure> {
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| UpstreamFailure::from_request_error(e, "upstream pass-through answer"))?
    {
        body.extend_from_slice(&chunk);
        if body.len() >= MAX_ERROR_BODY {
            return Ok((Bytes::from(body), false));
        }
    }
    Ok((Bytes::from(body), true))
}

/// Whether an error body is the unsupported-version error (`-32022`).
fn refuses_revision(body: &[u8]) -> bool {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.pointer("/error/code").and_then(Value::as_i64))
        == Some(i64::from(codes::UNSUPPORTED_PROTOCOL_VERSION))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::{Router, extract::State, routing::post};
    use http::HeaderMap;

    use super::*;
    use crate::backend::{Backend, upstream::UpstreamBackend};

    #[test]
    fn the_probe_reads_supported_versions_of_its_own_response_only() {
        let id = RequestId::String(PROBE_ID.into());
        let ok = Message::from_value(json!({"jsonrpc": "2.0", "id": PROBE_ID,
            "result": {"supportedVersions": ["2026-07-28"], "capabilities": {}}}))
        .unwrap();
        assert_eq!(
            supported_versions(ok, &id),
            Some(vec!["2026-07-28".to_owned()])
        );
        let other = Message::from_value(json!({"jsonrpc": "2.0", "id": 7,
            "result": {"supportedVersions": ["2026-07-28"]}}))
        .unwrap();
        assert_eq!(supported_versions(other, &id), None);
        let refused = Message::from_value(json!({"jsonrpc": "2.0", "id": PROBE_ID,
            "error": {"code": -32601, "message": "Method not found"}}))
        .unwrap();
        assert_eq!(supported_versions(refused, &id), None);
    }

    #[test]
    fn an_unsupported_version_error_is_recognised() {
        assert!(refuses_revision(
            br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32022,"message":"x"}}"#
        ));
        assert!(!refuses_revision(
            br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"x"}}"#
        ));
        assert!(!refuses_revision(b"not json"));
    }

    /// A small upstream: answers `server/discover` when `modern`, else 400
    /// (a handshake-era server); answers `tools/call` with 503 when told to,
    /// else echoes the headers it got; counts discovers.
    #[derive(Clone, Default)]
    struct Fake {
        modern: bool,
        discovers: Arc<AtomicUsize>,
        fail_calls: Arc<std::sync::atomic::AtomicBool>,
        refuse_calls: Arc<std::sync::atomic::AtomicBool>,
    }

    async fn answer(
        State(fake): State<Fake>,
        headers: HeaderMap,
        body: Bytes,
    ) -> http::Response<Body> {
        let request: Value = serde_json::from_slice(&body).unwrap();
        let json_reply = |status: StatusCode, v: Value| {
            http::Response::builder()
                .status(status)
                .header("content-type", "application/json")
                .header("x-upstream-internal", "not relayed")
                .body(Body::from(v.to_string()))
                .unwrap()
        };
        match request["method"].as_str().unwrap() {
            "server/discover" => {
                fake.discovers.fetch_add(1, Ordering::SeqCst);
                if !fake.modern {
                    return json_reply(
                        StatusCode::BAD_REQUEST,
                        json!({"jsonrpc": "2.0", "id": request["id"],
                        "error": {"code": -32022, "message": "Unsupported protocol version"}}),
                    );
                }
                json_reply(
                    StatusCode::OK,
                    json!({"jsonrpc": "2.0", "id": request["id"],
                    "result": {"supportedVersions": ["2026-07-28"], "capabilities": {}}}),
                )
            }
            _ if fake.refuse_calls.load(Ordering::SeqCst) => json_reply(
                StatusCode::BAD_REQUEST,
                json!({"jsonrpc": "2.0", "id": request["id"], "error": {"code": -32022,
                    "message": "Unsupported protocol version", "data": {"supported": ["2025-11-25"]}}}),
            ),
            _ if fake.fail_calls.load(Ordering::SeqCst) => json_reply(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"jsonrpc": "2.0", "id": request["id"], "error": {"code": -32603, "message": "down"}}),
            ),
            _ => {
                let mut seen: Vec<&str> = headers.keys().map(|k| k.as_str()).collect();
                seen.sort_unstable();
                json_reply(
                    StatusCode::NOT_FOUND,
                    json!({"jsonrpc": "2.0", "id": request["id"],
                    "error": {"code": -32601, "message": "nope", "data": {"headers": seen, "body": request}}}),
                )
            }
        }
    }

    async fn start(fake: Fake) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().route("/mcp", post(answer)).with_state(fake);
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}/mcp")
    }

    fn pass_through(method: &str) -> PassThrough {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", method),
            ("authorization", "Bearer client-secret"),
            ("cookie", "sid=1"),
        ] {
            headers.insert(http::HeaderName::from_static(name), value.parse().unwrap());
        }
        PassThrough {
            body: Bytes::from(
                json!({"jsonrpc": "2.0", "id": 3, "method": method, "params": {"x": [1, 2]}})
                    .to_string(),
            ),
            headers,
            extensions: http::Extensions::new(),
        }
    }

    #[tokio::test]
    async fn revisions_are_probed_once_and_again_after_a_failed_pass_through() {
        let fake = Fake {
            modern: true,
            ..Fake::default()
        };
        let url = start(fake.clone()).await;
        let backend = UpstreamBackend::builder(&url)
            .header("X-Operator", "op")
            .build()
            .unwrap();
        for _ in 0..3 {
            assert_eq!(backend.protocol_versions().await.unwrap(), ["2026-07-28"]);
        }
        assert_eq!(fake.discovers.load(Ordering::SeqCst), 1, "cached");

        // the answer comes back as it is: status, content type, body
        let answer = backend.forward(pass_through("tools/call")).await.unwrap();
        assert_eq!(answer.status(), StatusCode::NOT_FOUND);
        assert_eq!(answer.headers()["content-type"], "application/json");
        assert!(answer.headers().get("x-upstream-internal").is_none());
        let body = axum::body::to_bytes(answer.into_body(), 1 << 20)
            .await
            .unwrap();
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"]["code"], -32601);
        assert_eq!(v["error"]["data"]["body"]["params"], json!({"x": [1, 2]}));
        // the MCP headers and the operator's credential went; the client's did not
        let headers = &v["error"]["data"]["headers"];
        for name in ["mcp-protocol-version", "mcp-method", "x-operator"] {
            assert!(
                headers.as_array().unwrap().contains(&json!(name)),
                "{headers}"
            );
        }
        for name in ["authorization", "cookie"] {
            assert!(
                !headers.as_array().unwrap().contains(&json!(name)),
                "{headers}"
            );
        }
        assert_eq!(fake.discovers.load(Ordering::SeqCst), 1);

        // a 5xx: relayed, and the next request asks again
        fake.fail_calls.store(true, Ordering::SeqCst);
        let answer = backend.forward(pass_through("tools/call")).await.unwrap();
        assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(backend.protocol_versions().await.unwrap(), ["2026-07-28"]);
        assert_eq!(fake.discovers.load(Ordering::SeqCst), 2, "probed again");

        // -32022 (the upstream changed): relayed whole, and the next request asks again
        fake.fail_calls.store(false, Ordering::SeqCst);
        fake.refuse_calls.store(true, Ordering::SeqCst);
        let answer = backend.forward(pass_through("tools/call")).await.unwrap();
        assert_eq!(answer.status(), StatusCode::BAD_REQUEST);
        let body = axum::body::to_bytes(answer.into_body(), 1 << 20)
            .await
            .unwrap();
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"]["code"], -32022);
        assert_eq!(v["error"]["data"]["supported"], json!(["2025-11-25"]));
        assert_eq!(backend.protocol_versions().await.unwrap(), ["2026-07-28"]);
        assert_eq!(fake.discovers.load(Ordering::SeqCst), 3, "probed again");
    }

    #[tokio::test]
    async fn a_handshake_era_upstream_is_bridged_and_an_unreachable_one_asked_again() {
        let fake = Fake::default();
        let url = start(fake.clone()).await;
        let backend = UpstreamBackend::builder(&url).build().unwrap();
        for _ in 0..2 {
            assert_eq!(
                backend.protocol_versions().await.unwrap(),
                handshake_versions()
            );
        }
        assert_eq!(
            fake.discovers.load(Ordering::SeqCst),
            1,
            "a refusal is cached"
        );

        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let gone = format!("http://{}/mcp", listener.local_addr().unwrap());
        drop(listener);
        let backend = UpstreamBackend::builder(&gone).build().unwrap();
        assert!(backend.protocol_versions().await.is_err());
        assert!(
            backend.inner.revisions.get().is_none(),
            "a failed probe is not cached"
        );
    }

    #[tokio::test]
    async fn a_pinned_revision_is_not_probed() {
        let fake = Fake {
            modern: true,
            ..Fake::default()
        };
        let url = start(fake.clone()).await;
        let pinned = UpstreamBackend::builder(&url)
            .protocol_version(ProtocolVersion::V2025_11_25)
            .build()
            .unwrap();
        assert_eq!(
            pinned.protocol_versions().await.unwrap(),
            handshake_versions()
        );
        let pinned = UpstreamBackend::builder(&url)
            .protocol_version(ProtocolVersion::V2026_07_28)
            .build()
            .unwrap();
        assert_eq!(pinned.protocol_versions().await.unwrap(), ["2026-07-28"]);
        assert_eq!(fake.discovers.load(Ordering::SeqCst), 0);
        let legacy = UpstreamBackend::builder(&url)
            .transport(super::super::UpstreamTransport::LegacySse)
            .protocol_version(ProtocolVersion::V2026_07_28)
            .build();
        assert!(legacy.is_err(), "legacy SSE cannot speak 2026-07-28");
    }
}
