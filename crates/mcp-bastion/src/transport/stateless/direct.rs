//! Direct: a 2026-07-28 request sent as it is over a backend connection
//! whose server speaks 2026-07-28 ([`Backend::connection_versions`]; the
//! stdio backend whose child's `server/discover` says so).
//!
//! No `initialize` and no bridging: the link is a connection of its own kind
//! in the [`Pool`] ([`PoolKey::direct`]: the principal and captured
//! parameters, so that a per-session child keeps its principal's
//! environment), never one a bridged request initialized (a server may bind
//! a connection to the protocol era of its first request).
//!
//! 1. check out a link for the request's key: an idle one, or a new
//!    connection opened with the request's extensions (for a per-session
//!    stdio backend, a child with the principal's environment);
//! 2. send the client's request unchanged (its id, method and params,
//!    `_meta`, `inputResponses` and `requestState` included), except, with
//!    OpenTelemetry on, the trace context in `_meta`: that of the request's
//!    CLIENT span (see [`crate::otel`]), which ends with the response (a
//!    listen's with the backend's first frame: the stream is then open);
//! 3. relay what the backend sends for it: its notifications (progress,
//!    logs) as SSE events, then its response as it is (an
//!    `InputRequiredResult`, error data, caching hints: mcp-bastion adds
//!    nothing, unlike the bridge). A response that comes before anything
//!    else goes out alone, with `404` for `-32601`, `400` for `-32020`,
//!    `-32021` and `-32022`, `200` otherwise;
//! 4. hand the link back to the pool once the response is there; close it
//!    instead when the client closed its response stream first (the
//!    2026-07-28 cancel: the backend's session ends, and a stdio child is
//!    told `notifications/cancelled`, then ended) or the backend went away.
//!
//! The backend's own requests on such a link are answered here (`ping`, and
//! a refusal of the others: a 2026-07-28 server asks for input with an
//! `InputRequiredResult`, not a request).
//!
//! `subscriptions/listen` gets a dedicated connection outside the pool,
//! counted against its limits ([`Pool::listen_slot`]; `429` over them): the
//! request is sent as it is and everything the backend sends for it is
//! relayed (the subscription id its frames carry given back as the client's
//! listen request id, see [`with_subscription_id`]) until the client closes the stream (then the connection closes),
//! the backend answers it, the backend goes away, or the gateway shuts down.

use std::sync::Arc;

use axum::response::Response;
use bytes::Bytes;
use http::{StatusCode, request::Parts};
use serde_json::{Map, Value};
use tokio::sync::mpsc;

use super::{
    TARGET, backend_unavailable, closed_response, event, json_message,
    listen::META_SUBSCRIPTION_ID,
    lists_2026, one_request,
    pool::{Pool, PoolKey, Pooled},
    reply,
};
use crate::{
    backend::{Backend, SessionContext},
    inspect::McpRequest,
    jsonrpc::{self, ErrorObject, Message, RequestId, codes, http_error},
    otel::BackendCall,
    protocol::ProtocolVersion,
    transport::{config::TransportConfig, session_table::RequestInFlight, sse_codec::SseBody},
};

/// Whether `backend`'s connections take 2026-07-28 requests as they are.
pub(crate) async fn speaks_2026<B: Backend>(backend: &B) -> bool {
    lists_2026(
        backend.connection_versions().await,
        "backend connection revisions",
    )
}

/// Serves one 2026-07-28 POST over a backend connection, as it is.
pub(crate) async fn serve<B: Backend>(
    backend: &B,
    pool: &Arc<Pool>,
    config: &TransportConfig,
    parts: Parts,
    mcp: McpRequest,
    in_flight: RequestInFlight,
) -> Response {
    let request = match one_request(mcp) {
        Ok(r) => r,
        Err(response) => return *response,
    };
    if request.method == "subscriptions/listen" {
        return listen(backend, pool, config, parts, request).await;
    }
    let id = request.id.clone();
    let key = PoolKey::direct(&parts.extensions);
    let checkout = pool
        .checkout(key, || backend.connect(context(parts.extensions)))
        .await;
    let mut link = match checkout {
        Ok(link) => link,
        Err(e) => {
            tracing::error!(target: TARGET, error = %e, "backend failed to open a connection for a 2026-07-28 request");
            return backend_unavailable(id);
        }
    };
    // never initialized, and never needs to be: ready for the pool
    link.init.get_or_insert_with(Map::new);
    let (message, mut call) = traced(request);
    if link.outgoing.send(message).await.is_err() {
        return backend_unavailable(id);
    }
    let first = match next(&mut link, &id, &mut call, None).await {
        Some(Step::Event(n)) if !config.json_response => n,
        Some(Step::Event(_)) => {
            // a JSON reply has no room for notifications: wait for the end
            return match until_end(&mut link, &id, &mut call, None).await {
                Some(response) => {
                    link.release();
                    whole_reply(config, response)
                }
                None => whole_reply(config, closed_response(&id)),
            };
        }
        Some(Step::End(response)) => {
            link.release();
            return whole_reply(config, response);
        }
        None => return whole_reply(config, closed_response(&id)),
    };
    let (tx, rx) = mpsc::channel(16);
    let _ = tx.send(event(&Message::Notification(first))).await;
    tokio::spawn(async move {
        // in flight until the response is written (a shutdown waits)
        let _in_flight = in_flight;
        match until_end(&mut link, &id, &mut call, Some(&tx)).await {
            Some(response) => {
                link.release();
                let _ = tx.send(event(&Message::Response(response))).await;
            }
            // the client closed its stream (dropping the link cancels the
            // request at the backend), or the backend went away
            None => {
                let _ = tx
                    .send(event(&Message::Response(closed_response(&id))))
                    .await;
            }
        }
    });
    SseBody::settled(Default::default(), rx, config.keepalive)
        .await
        .into_response()
}

/// The context a direct connection is opened with: the request's
/// extensions (principal, captured parameters), no session, 2026-07-28.
fn context(extensions: http::Extensions) -> SessionContext {
    SessionContext {
        session_id: None,
        protocol_version: Some(ProtocolVersion::V2026_07_28.as_str().to_owned()),
        extensions,
    }
}

/// The client's request as it goes to the backend, with its CLIENT span
/// (OpenTelemetry; its context written into `params._meta`), which ends
/// when [`next`] sees the response.
fn traced(request: jsonrpc::Request) -> (Message, BackendCall) {
    let mut message = Message::Request(request);
    let call = BackendCall::start(&mut message);
    (message, call)
}

/// What the backend sent next for the client's request.
enum Step {
    /// A notification, relayed as it is.
    Event(jsonrpc::Notification),
    /// The response, as it is.
    End(jsonrpc::Response),
}

/// The next backend message for the request `id`: a notification or its
/// response (which ends `call`, the request's span). The backend's own
/// requests are answered here. `None` when the backend went away, or the
/// client closed its stream (`events` closed).
async fn next(
    link: &mut Pooled,
    id: &RequestId,
    call: &mut BackendCall,
    events: Option<&mpsc::Sender<Bytes>>,
) -> Option<Step> {
    loop {
        let message = match events {
            Some(tx) => tokio::select! {
                m = link.incoming.recv() => m,
                () = tx.closed() => {
                    tracing::debug!(target: TARGET, "client closed a 2026-07-28 stream: request cancelled");
                    return None;
                }
            },
            None => link.incoming.recv().await,
        };
        let Some(message) = message else {
            tracing::warn!(target: TARGET, "backend closed during a 2026-07-28 request");
            return None;
        };
        match message {
            Message::Response(r) if r.id.as_ref() == Some(id) => {
                std::mem::take(call).finish(&r);
                return Some(Step::End(r));
            }
            Message::Response(_) => {}
            Message::Notification(n) => return Some(Step::Event(n)),
            Message::Request(r) => {
                let answer = jsonrpc::Response::ping_or_refuse(
                    r,
                    "a 2026-07-28 client is not reachable for server requests",
                );
                if link.outgoing.send(Message::Response(answer)).await.is_err() {
                    return None;
                }
            }
        }
    }
}

/// Relays notifications to `events` (dropped without) until the response.
async fn until_end(
    link: &mut Pooled,
    id: &RequestId,
    call: &mut BackendCall,
    events: Option<&mpsc::Sender<Bytes>>,
) -> Option<jsonrpc::Response> {
    loop {
        match next(link, id, call, events).await? {
            Step::End(response) => return Some(response),
            Step::Event(n) => {
                if let Some(tx) = events {
                    let _ = tx.send(event(&Message::Notification(n))).await;
                }
            }
        }
    }
}

/// The HTTP status of an error the backend answered with before anything
/// else: the statuses 2026-07-28 gives its protocol errors, `200` for the
/// errors of the request's own processing.
fn status_of(error: &ErrorObject) -> StatusCode {
    match error.code {
        codes::METHOD_NOT_FOUND => StatusCode::NOT_FOUND,
        codes::HEADER_MISMATCH
        | codes::MISSING_CLIENT_CAPABILITY
        | codes::UNSUPPORTED_PROTOCOL_VERSION => StatusCode::BAD_REQUEST,
        _ => StatusCode::OK,
    }
}

/// A response that came before anything was sent, with its status.
fn whole_reply(config: &TransportConfig, response: jsonrpc::Response) -> Response {
    if let Err(err) = &response.outcome {
        let status = status_of(err);
        if status != StatusCode::OK {
            return json_message(status, &Message::Response(response));
        }
    }
    reply(config, &Message::Response(response))
}

/// `subscriptions/listen` on a dedicated connection, relayed as it is.
async fn listen<B: Backend>(
    backend: &B,
    pool: &Arc<Pool>,
    config: &TransportConfig,
    parts: Parts,
    request: jsonrpc::Request,
) -> Response {
    let id = request.id.clone();
    let Some(slot) = pool.listen_slot(PoolKey::direct(&parts.extensions)) else {
        return http_error(
            StatusCode::TOO_MANY_REQUESTS,
            Some(id),
            ErrorObject::new(codes::INTERNAL_ERROR, "Subscription limit reached"),
        );
    };
    let conn = match backend.connect(context(parts.extensions)).await {
        Ok(conn) => conn,
        Err(e) => {
            tracing::error!(target: TARGET, error = %e, "backend failed to open a subscriptions/listen connection");
            return backend_unavailable(id);
        }
    };
    let mut link = Pooled::detached(conn);
    let (message, mut call) = traced(request);
    if link.outgoing.send(message).await.is_err() {
        return backend_unavailable(id);
    }
    let first = match next(&mut link, &id, &mut call, None).await {
        Some(Step::Event(n)) => {
            // the stream is open: the listen's CLIENT span ends here (without
            // error), so that no span stays open for the life of the stream
            // (see docs/observability.md); its frames get no span
            call = BackendCall::default();
            with_subscription_id(n, &id)
        }
        // refused (or answered at once): no stream
        Some(Step::End(response)) => return whole_reply(config, response),
        None => return whole_reply(config, closed_response(&id)),
    };
    let (tx, rx) = mpsc::channel(64);
    let closing = pool.closing();
    tokio::spawn(async move {
        let _slot = slot;
        loop {
            let step = tokio::select! {
                step = next(&mut link, &id, &mut call, Some(&tx)) => step,
                () = closing.cancelled() => return,
            };
            match step {
                Some(Step::Event(n)) => {
                    let n = with_subscription_id(n, &id);
                    if tx.send(event(&Message::Notification(n))).await.is_err() {
                        return;
                    }
                }
                Some(Step::End(response)) => {
                    let _ = tx.send(event(&Message::Response(response))).await;
                    return;
                }
                // the client closed the stream, or the backend went away:
                // dropping the link closes the connection
                None => return,
            }
        }
    });
    tracing::debug!(target: TARGET, "2026-07-28 subscriptions/listen stream opened");
    SseBody::new(
        [event(&Message::Notification(first))].into(),
        rx,
        config.keepalive,
        None,
    )
    .into_response()
}

/// A frame of a listen stream with the client's subscription id: the
/// backend tags its frames with the id of the listen request as it received
/// it, and a stdio child receives requests under ids of the engine's own
/// (restored on responses, not inside notifications). Frames without a
/// subscription id stay as they are.
fn with_subscription_id(mut n: jsonrpc::Notification, id: &RequestId) -> jsonrpc::Notification {
    if let Some(Value::Object(meta)) = n.params.as_mut().and_then(|p| p.get_mut("_meta"))
        && let Some(tag) = meta.get_mut(META_SUBSCRIPTION_ID)
    {
        *tag = serde_json::to_value(id).unwrap_or(Value::Null);
    }
    n
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn protocol_errors_get_their_statuses_and_the_others_200() {
        let status = |code| status_of(&ErrorObject::new(code, "x"));
        assert_eq!(status(codes::METHOD_NOT_FOUND), StatusCode::NOT_FOUND);
        assert_eq!(
            status(codes::MISSING_CLIENT_CAPABILITY),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            status(codes::UNSUPPORTED_PROTOCOL_VERSION),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(status(codes::HEADER_MISMATCH), StatusCode::BAD_REQUEST);
        assert_eq!(status(codes::INVALID_PARAMS), StatusCode::OK);
        assert_eq!(status(codes::INTERNAL_ERROR), StatusCode::OK);
    }

    #[test]
    fn listen_frames_carry_the_clients_subscription_id() {
        let frame = |params: Value| jsonrpc::Notification {
            method: "notifications/tools/list_changed".into(),
            params: Some(params),
        };
        let tagged = with_subscription_id(
            frame(json!({"_meta": {META_SUBSCRIPTION_ID: 3, "other": 1}})),
            &RequestId::String("listen-a".into()),
        );
        assert_eq!(
            tagged.params,
            Some(json!({"_meta": {META_SUBSCRIPTION_ID: "listen-a", "other": 1}}))
        );
        let untagged = with_subscription_id(frame(json!({"x": 1})), &RequestId::Number(21));
        assert_eq!(untagged.params, Some(json!({"x": 1})));
    }
}
