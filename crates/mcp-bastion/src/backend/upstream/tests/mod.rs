//! Unit tests of the upstream backend against small in-process upstreams
//! (axum on `127.0.0.1:0`) that answer as a script says and record what they
//! received.
#![allow(clippy::unwrap_used)]

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Router,
    body::{Body, Bytes},
    extract::State,
    http::{HeaderMap, Method, StatusCode, header},
    response::{IntoResponse, Response},
    routing::any,
};
use serde_json::{Value, json};
use tokio::{sync::mpsc, time::timeout};

use super::*;
use crate::jsonrpc::{
    ErrorObject, Notification, Request, RequestId, Response as RpcResponse, codes,
};

const WAIT: Duration = Duration::from_secs(5);

/// One request the fake upstream received.
#[derive(Debug, Clone)]
struct Received {
    method: Method,
    path: String,
    headers: HeaderMap,
    body: Value,
}

#[derive(Clone, Default)]
struct Fake {
    received: Arc<Mutex<Vec<Received>>>,
    /// Legacy mode: where `message` events for the open stream go.
    stream: Arc<Mutex<Option<mpsc::Sender<String>>>>,
    /// Legacy mode: the `endpoint` event's data.
    endpoint: Arc<Mutex<String>>,
    /// The id of the `resume` call, answered on the resumed stream.
    resume_id: Arc<Mutex<Value>>,
}

impl Fake {
    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    fn posted(&self, method: &str) -> Option<Received> {
        self.received()
            .into_iter()
            .find(|r| r.method == Method::POST && r.body["method"] == method)
    }
}

async fn serve(fake: Fake, router: Router<Fake>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = router.with_state(fake);
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

async fn record(
    fake: &Fake,
    method: Method,
    path: &str,
    headers: HeaderMap,
    body: &Bytes,
) -> Value {
    let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    fake.received.lock().unwrap().push(Received {
        method,
        path: path.to_owned(),
        headers,
        body: body.clone(),
    });
    body
}

fn json_reply(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn sse_reply(events: &[Value]) -> Response {
    let mut text = String::from("id: prime\ndata: \n\n");
    for event in events {
        text.push_str(&format!("event: message\ndata: {event}\n\n"));
    }
    ([(header::CONTENT_TYPE, "text/event-stream")], text).into_response()
}

/// A Streamable HTTP upstream at `/mcp`. Tools (by `params.name` of
/// `tools/call`): `steps` (SSE: progress, then the result), `boom` (500),
/// `rejected` (400 with a JSON-RPC error), `gone` (404), `slow` (never
/// answers), `cut` (SSE that ends without the result), `resume` (SSE that
/// ends after a priming event; the result comes on GET with
/// `Last-Event-ID`).
async fn streamable(
    fake: State<Fake>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let State(fake) = fake;
    let resuming = headers.get("last-event-id").is_some_and(|v| v == "r-1");
    let body = record(&fake, method.clone(), "/mcp", headers, &body).await;
    match method {
        Method::GET if resuming => {
            let id = fake.resume_id.lock().unwrap().clone();
            return sse_reply(&[json!({"jsonrpc": "2.0", "id": id, "result": {"resumed": true}})]);
        }
        Method::GET => return StatusCode::METHOD_NOT_ALLOWED.into_response(),
        Method::DELETE => return StatusCode::OK.into_response(),
        Method::OPTIONS => return StatusCode::NO_CONTENT.into_response(),
        _ => {}
    }
    let id = body["id"].clone();
    if id.is_null() {
        return StatusCode::ACCEPTED.into_response();
    }
    let result = |r: Value| json!({"jsonrpc": "2.0", "id": id, "result": r});
    match body["method"].as_str() {
        Some("initialize") => {
            let mut res = json_reply(
                StatusCode::OK,
                result(
                    json!({"protocolVersion": "2025-06-18", "capabilities": {}, "serverInfo": {"name": "fake", "version": "0"}}),
                ),
            );
            res.headers_mut()
                .insert("mcp-session-id", "up-session-1".parse().unwrap());
            res
        }
        _ => match body["params"]["name"].as_str() {
            Some("steps") => {
                let token = body["params"]["_meta"]["progressToken"].clone();
                let progress = json!({"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progressToken": token, "progress": 1}});
                sse_reply(&[
                    progress,
                    result(json!({"content": [{"type": "text", "text": "done"}]})),
                ])
            }
            Some("boom") => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
            Some("rejected") => json_reply(
                StatusCode::BAD_REQUEST,
                json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32602, "message": "no such tool here"}}),
            ),
            Some("gone") => StatusCode::NOT_FOUND.into_response(),
            Some("slow") => {
                tokio::time::sleep(Duration::from_secs(60)).await;
                StatusCode::ACCEPTED.into_response()
            }
            Some("cut") => {
                let text = ": no events with ids, so nothing to resume\n\n";
                ([(header::CONTENT_TYPE, "text/event-stream")], text).into_response()
            }
            Some("resume") => {
                *fake.resume_id.lock().unwrap() = id.clone();
                let text = "id: r-1\nretry: 10\ndata: \n\n";
                ([(header::CONTENT_TYPE, "text/event-stream")], text).into_response()
            }
            _ => json_reply(StatusCode::OK, result(json!({}))),
        },
    }
}

/// A legacy SSE upstream: POST `/sse` is 405; GET `/sse` streams the
/// `endpoint` event, then one `message` event per POSTed request (echoing
/// its method).
async fn legacy_stream(
    fake: State<Fake>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let State(fake) = fake;
    record(&fake, method.clone(), "/sse", headers, &body).await;
    if method != Method::GET {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    let (tx, rx) = mpsc::channel::<String>(16);
    let endpoint = fake.endpoint.lock().unwrap().clone();
    tx.send(format!("event: endpoint\ndata: {endpoint}\n\n"))
        .await
        .unwrap();
    *fake.stream.lock().unwrap() = Some(tx);
    let events = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|text| (Ok::<_, std::io::Error>(Bytes::from(text)), rx))
    });
    (
        [(header::CONTENT_TYPE, "text/event-stream")],
        Body::from_stream(events),
    )
        .into_response()
}

async fn legacy_messages(
    fake: State<Fake>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let State(fake) = fake;
    let body = record(&fake, method, "/messages", headers, &body).await;
    if !body["id"].is_null() && body["method"].is_string() {
        let reply = json!({"jsonrpc": "2.0", "id": body["id"], "result": {"echo": body["method"]}});
        let tx = fake.stream.lock().unwrap().clone();
        if let Some(tx) = tx {
            let _ = tx.send(format!("event: message\ndata: {reply}\n\n")).await;
        }
    }
    StatusCode::ACCEPTED.into_response()
}

fn streamable_router() -> Router<Fake> {
    Router::new().route("/mcp", any(streamable))
}

fn legacy_router() -> Router<Fake> {
    Router::new()
        .route("/sse", any(legacy_stream))
        .route("/messages", any(legacy_messages))
}

fn request(id: i64, method: &str, params: Value) -> Message {
    Message::Request(Request {
        id: RequestId::Number(id),
        method: method.into(),
        params: Some(params),
    })
}

fn call(id: i64, tool: &str) -> Message {
    request(
        id,
        "tools/call",
        json!({"name": tool, "arguments": {}, "_meta": {"progressToken": "p1"}}),
    )
}

async fn next(conn: &mut Connection) -> Message {
    timeout(WAIT, conn.incoming.recv())
        .await
        .expect("an answer in time")
        .expect("the connection is open")
}

/// The error the next message carries for `id`.
async fn next_error(conn: &mut Connection, id: i64) -> ErrorObject {
    let Message::Response(response) = next(conn).await else {
        panic!("expected a response");
    };
    assert_eq!(response.id, Some(RequestId::Number(id)));
    response.outcome.expect_err("an error response")
}

async fn open(url: String, transport: UpstreamTransport) -> (UpstreamBackend, Connection) {
    let backend = UpstreamBackend::builder(url)
        .bearer("proxy-token")
        .transport(transport)
        .request_timeout(Some(Duration::from_millis(800)))
        .build()
        .unwrap();
    let conn = backend.connect(SessionContext::default()).await.unwrap();
    (backend, conn)
}

async fn initialize(conn: &mut Connection) -> Value {
    let params = json!({"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}});
    conn.outgoing
        .send(request(1, "initialize", params))
        .await
        .unwrap();
    let Message::Response(RpcResponse { outcome, .. }) = next(conn).await else {
        panic!("expected the initialize result");
    };
    let initialized = Notification {
        method: "notifications/initialized".into(),
        params: None,
    };
    conn.outgoing
        .send(Message::Notification(initialized))
        .await
        .unwrap();
    outcome.expect("initialize succeeds")
}

#[tokio::test]
async fn later_requests_carry_the_upstream_session_and_version_and_close_deletes_it() {
    let fake = Fake::default();
    let url = serve(fake.clone(), streamable_router()).await;
    let (_backend, mut conn) = open(format!("{url}/mcp"), UpstreamTransport::Auto).await;
    assert!(
        fake.received().is_empty(),
        "nothing is sent before initialize"
    );

    initialize(&mut conn).await;
    conn.outgoing.send(call(2, "steps")).await.unwrap();
    let Message::Notification(progress) = next(&mut conn).await else {
        panic!("progress comes first");
    };
    assert_eq!(progress.method, "notifications/progress");
    let Message::Response(RpcResponse { outcome, .. }) = next(&mut conn).await else {
        panic!("then the result");
    };
    assert_eq!(outcome.unwrap()["content"][0]["text"], "done");

    let init = fake.posted("initialize").unwrap();
    assert!(init.headers.get("mcp-session-id").is_none());
    let tool = fake.posted("tools/call").unwrap();
    assert_eq!(tool.headers["mcp-session-id"], "up-session-1");
    assert_eq!(tool.headers["mcp-protocol-version"], "2025-06-18");
    assert_eq!(tool.headers["authorization"], "Bearer proxy-token");
    let initialized = fake.posted("notifications/initialized").unwrap();
    assert_eq!(initialized.headers["mcp-session-id"], "up-session-1");

    conn.closed.cancel();
    timeout(WAIT, async {
        while conn.incoming.recv().await.is_some() {}
    })
    .await
    .expect("incoming ends");
    timeout(WAIT, async {
        while !fake.received().iter().any(|r| r.method == Method::DELETE) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the upstream session is deleted");
    let delete = fake
        .received()
        .into_iter()
        .find(|r| r.method == Method::DELETE)
        .unwrap();
    assert_eq!(delete.headers["mcp-session-id"], "up-session-1");
    assert!(
        fake.received()
            .iter()
            .any(|r| r.method == Method::GET && r.path == "/mcp"),
        "the GET stream was tried (405 is fine)"
    );
}

#[tokio::test]
async fn http_errors_become_json_rpc_errors_for_their_request() {
    let fake = Fake::default();
    let url = serve(fake.clone(), streamable_router()).await;
    let (_backend, mut conn) = open(format!("{url}/mcp"), UpstreamTransport::Auto).await;
    initialize(&mut conn).await;

    conn.outgoing.send(call(2, "boom")).await.unwrap();
    let error = next_error(&mut conn, 2).await;
    assert_eq!(error.code, codes::INTERNAL_ERROR);
    assert_eq!(
        error.data,
        Some(json!({"upstream": "status", "status": 500}))
    );

    conn.outgoing.send(call(3, "rejected")).await.unwrap();
    let error = next_error(&mut conn, 3).await;
    assert_eq!(
        (error.code, error.message.as_str()),
        (-32602, "no such tool here")
    );

    conn.outgoing.send(call(4, "cut")).await.unwrap();
    let error = next_error(&mut conn, 4).await;
    assert_eq!(error.data, Some(json!({"upstream": "protocol"})));

    // The session goes on.
    conn.outgoing.send(call(5, "steps")).await.unwrap();
    assert!(matches!(next(&mut conn).await, Message::Notification(_)));
}

#[tokio::test]
async fn a_stream_closed_early_is_resumed_with_last_event_id() {
    let fake = Fake::default();
    let url = serve(fake.clone(), streamable_router()).await;
    let (_backend, mut conn) = open(format!("{url}/mcp"), UpstreamTransport::Auto).await;
    initialize(&mut conn).await;

    conn.outgoing.send(call(9, "resume")).await.unwrap();
    let Message::Response(RpcResponse { id, outcome }) = next(&mut conn).await else {
        panic!("the response");
    };
    assert_eq!(id, Some(RequestId::Number(9)));
    assert_eq!(outcome.unwrap(), json!({"resumed": true}));
    let resumed = fake
        .received()
        .into_iter()
        .find(|r| r.method == Method::GET && r.headers.contains_key("last-event-id"))
        .unwrap();
    assert_eq!(resumed.headers["mcp-session-id"], "up-session-1");
}

#[tokio::test]
async fn a_late_request_gets_request_timeout_and_is_cancelled_upstream() {
    let fake = Fake::default();
    let url = serve(fake.clone(), streamable_router()).await;
    let (_backend, mut conn) = open(format!("{url}/mcp"), UpstreamTransport::Auto).await;
    initialize(&mut conn).await;

    conn.outgoing.send(call(7, "slow")).await.unwrap();
    let error = next_error(&mut conn, 7).await;
    assert_eq!(error.code, codes::REQUEST_TIMEOUT);
    timeout(WAIT, async {
        while fake.posted("notifications/cancelled").is_none() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the upstream is told");
    let cancelled = fake.posted("notifications/cancelled").unwrap();
    assert_eq!(cancelled.body["params"]["requestId"], 7);
}

#[tokio::test]
async fn a_404_on_the_session_ends_the_connection() {
    let fake = Fake::default();
    let url = serve(fake.clone(), streamable_router()).await;
    let (_backend, mut conn) = open(format!("{url}/mcp"), UpstreamTransport::Auto).await;
    initialize(&mut conn).await;

    conn.outgoing.send(call(2, "gone")).await.unwrap();
    let error = next_error(&mut conn, 2).await;
    assert_eq!(error.data, Some(json!({"upstream": "session_gone"})));
    let end = timeout(WAIT, conn.incoming.recv())
        .await
        .expect("ends in time");
    assert!(end.is_none(), "the connection ends");
    assert!(conn.closed.is_cancelled());
}

#[tokio::test]
async fn an_unreachable_upstream_is_an_error_and_the_connection_stays_usable() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}/mcp");
    let (backend, mut conn) = open(url, UpstreamTransport::Auto).await;
    for id in [1, 2] {
        conn.outgoing
            .send(request(id, "initialize", json!({})))
            .await
            .unwrap();
        let error = next_error(&mut conn, id).await;
        assert_eq!(error.data, Some(json!({"upstream": "connect"})));
    }
    assert!(matches!(
        backend.ready().await,
        Err(BackendError::Unavailable(_))
    ));
}

#[tokio::test]
async fn auto_falls_back_to_legacy_sse_when_initialize_gets_405() {
    let fake = Fake::default();
    *fake.endpoint.lock().unwrap() = "/messages?sessionId=abc".into();
    let url = serve(fake.clone(), legacy_router()).await;
    let (backend, mut conn) = open(format!("{url}/sse"), UpstreamTransport::Auto).await;

    let init = initialize(&mut conn).await;
    assert_eq!(init, json!({"echo": "initialize"}));
    conn.outgoing.send(call(2, "x")).await.unwrap();
    let Message::Response(RpcResponse { id, outcome }) = next(&mut conn).await else {
        panic!("a response");
    };
    assert_eq!(id, Some(RequestId::Number(2)));
    assert_eq!(outcome.unwrap(), json!({"echo": "tools/call"}));

    let received = fake.received();
    let methods: Vec<_> = received
        .iter()
        .map(|r| (r.method.as_str().to_owned(), r.path.as_str()))
        .collect();
    assert_eq!(
        &methods[..3],
        [
            ("POST".to_owned(), "/sse"),
            ("GET".to_owned(), "/sse"),
            ("POST".to_owned(), "/messages")
        ]
    );
    assert!(
        received
            .iter()
            .all(|r| r.headers["authorization"] == "Bearer proxy-token")
    );
    assert!(backend.ready().await.is_ok());
}

#[tokio::test]
async fn a_legacy_endpoint_on_another_origin_is_refused() {
    let fake = Fake::default();
    *fake.endpoint.lock().unwrap() = "http://127.0.0.2:9/steal".into();
    let url = serve(fake.clone(), legacy_router()).await;
    let (_backend, mut conn) = open(format!("{url}/sse"), UpstreamTransport::LegacySse).await;

    conn.outgoing
        .send(request(1, "initialize", json!({})))
        .await
        .unwrap();
    let error = next_error(&mut conn, 1).await;
    assert_eq!(error.data, Some(json!({"upstream": "protocol"})));
    assert!(
        fake.received().iter().all(|r| r.path != "/steal"),
        "nothing was POSTed elsewhere"
    );
}

#[tokio::test]
async fn shutdown_closes_connections_deletes_upstream_sessions_and_refuses_new_ones() {
    let fake = Fake::default();
    let url = serve(fake.clone(), streamable_router()).await;
    let (backend, mut conn) = open(format!("{url}/mcp"), UpstreamTransport::StreamableHttp).await;
    initialize(&mut conn).await;
    backend.shutdown().await;
    assert!(conn.closed.is_cancelled());
    assert!(
        fake.received().iter().any(|r| r.method == Method::DELETE),
        "shutdown completes after the upstream sessions are deleted"
    );
    let end = timeout(WAIT, async {
        while conn.incoming.recv().await.is_some() {}
    });
    end.await.expect("incoming ends");
    assert!(backend.connect(SessionContext::default()).await.is_err());
    assert!(backend.ready().await.is_err());
}

mod user_token;
