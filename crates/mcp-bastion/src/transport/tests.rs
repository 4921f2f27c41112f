#![allow(clippy::unwrap_used, reason = "tests")]
//! Protocol-rule tests of both transports over a small in-process backend.
//! (The real-client tests against real servers live in the `tests` package.)

use std::{collections::HashSet, time::Duration};

use axum::body::Body;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body::Body as _;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use super::*;
use crate::{
    backend::{Backend, BackendError, Connection, SessionContext},
    boxed::BoxFuture,
    jsonrpc::{Message, Request as RpcRequest, Response as RpcResponse},
};

/// Answers initialize, echoes tools/call, streams progress for `slow`, asks
/// the client for sampling for `ask`, never answers `hang`.
#[derive(Clone, Default)]
struct EchoBackend;

impl Backend for EchoBackend {
    fn connect(
        &self,
        _ctx: SessionContext,
    ) -> BoxFuture<'static, Result<Connection, BackendError>> {
        Box::pin(async {
            let (to_server, mut from_client) = mpsc::channel::<Message>(16);
            let (to_client, from_server) = mpsc::channel::<Message>(16);
            let closed = CancellationToken::new();
            let done = closed.clone();
            tokio::spawn(async move {
                let mut waiting_sample: Option<crate::jsonrpc::RequestId> = None;
                loop {
                    let msg = tokio::select! {
                        _ = done.cancelled() => break,
                        m = from_client.recv() => match m { Some(m) => m, None => break },
                    };
                    match msg {
                        Message::Request(r) => {
                            let reply =
                                |v: Value| Message::Response(RpcResponse::result(r.id.clone(), v));
                            match r.method.as_str() {
                                "initialize" => {
                                    let v = r
                                        .params
                                        .as_ref()
                                        .and_then(|p| p.get("protocolVersion"))
                                        .cloned();
                                    let _ = to_client
                                        .send(reply(json!({"protocolVersion": v, "capabilities": {}, "serverInfo": {"name":"echo","version":"0"}})))
                                        .await;
                                }
                                "slow" => {
                                    let token = r
                                        .params
                                        .as_ref()
                                        .and_then(|p| p.get("_meta"))
                                        .and_then(|m| m.get("progressToken"))
                                        .cloned();
                                    for i in 0..5 {
                                        tokio::time::sleep(Duration::from_millis(30)).await;
                                        let _ = to_client
                                            .send(Message::Notification(crate::jsonrpc::Notification {
                                                method: "notifications/progress".into(),
                                                params: Some(json!({"progressToken": token, "progress": i})),
                                            }))
                                            .await;
                                    }
                                    let _ = to_client.send(reply(json!({"done": true}))).await;
                                }
                                "ask" => {
                                    waiting_sample = Some(r.id.clone());
                                    let _ = to_client
                                        .send(Message::Request(RpcRequest {
                                            id: "srv-1".into(),
                                            method: "sampling/createMessage".into(),
                                            params: Some(json!({})),
                                        }))
                                        .await;
                                }
                                "hang" => {}
                                _ => {
                                    let _ = to_client.send(reply(json!({"echo": r.params}))).await;
                                }
                            }
                        }
                        Message::Response(resp) => {
                            if let Some(id) = waiting_sample.take() {
                                let answer = resp.outcome.unwrap_or(Value::Null);
                                let _ = to_client
                                    .send(Message::Response(RpcResponse::result(
                                        id,
                                        json!({"sampled": answer}),
                                    )))
                                    .await;
                            }
                        }
                        Message::Notification(_) => {}
                    }
                }
            });
            Ok(Connection::new(to_server, from_server, closed))
        })
    }
}

const ACCEPT_BOTH: &str = "application/json, text/event-stream";

fn post(body: &Value, session: Option<&str>) -> Request<Body> {
    let mut b = Request::post("/mcp")
        .header("content-type", "application/json")
        .header("accept", ACCEPT_BOTH);
    if let Some(s) = session {
        b = b
            .header("mcp-session-id", s)
            .header("mcp-protocol-version", "2025-11-25");
    }
    b.body(Body::from(body.to_string())).unwrap()
}

fn init_body(version: &str) -> Value {
    json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":version,"capabilities":{},"clientInfo":{"name":"t","version":"0"}}})
}

async fn initialize(svc: &StreamableHttp<EchoBackend>, version: &str) -> String {
    let res = svc
        .clone()
        .oneshot(post(&init_body(version), None))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let id = res.headers()["mcp-session-id"].to_str().unwrap().to_owned();
    let events = sse_events(res.into_body()).await;
    assert_eq!(
        events.last().unwrap().1["result"]["protocolVersion"],
        version
    );
    id
}

/// Reads a whole SSE body into (id, data) pairs, skipping priming events.
async fn sse_events(body: Body) -> Vec<(Option<String>, Value)> {
    let bytes = body.collect().await.unwrap().to_bytes();
    parse_sse(&bytes)
}

/// Decodes SSE bytes with `sse-stream` into (id, JSON data) pairs; events
/// whose data is not JSON (priming events) are skipped.
fn parse_sse(bytes: &[u8]) -> Vec<(Option<String>, Value)> {
    use futures_util::{FutureExt, StreamExt};
    let chunk =
        futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::copy_from_slice(bytes))]);
    let events: Vec<_> = sse_stream::SseByteStream::new(chunk)
        .collect::<Vec<_>>()
        .now_or_never()
        .expect("one chunk decodes at once");
    events
        .into_iter()
        .filter_map(|e| {
            let e = e.ok()?;
            let data = serde_json::from_str(e.data.as_deref()?).ok()?;
            Some((e.id, data))
        })
        .collect()
}

async fn status_and_json(res: axum::response::Response) -> (StatusCode, Value) {
    let status = res.status();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn initialize_assigns_a_session_id_and_requests_stream_their_answer() {
    let svc = StreamableHttp::new(EchoBackend);
    let sid = initialize(&svc, "2025-06-18").await;
    assert!(crate::session::validate_session_id(&sid).is_ok());
    let call = json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}});
    let res = svc.clone().oneshot(post(&call, Some(&sid))).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    assert_eq!(res.headers()["cache-control"], "no-cache");
    assert_eq!(res.headers()["x-accel-buffering"], "no");
    let events = sse_events(res.into_body()).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].1["id"], 1);
    assert_eq!(events[0].1["result"]["echo"]["name"], "echo");
}

#[tokio::test]
async fn a_request_answered_at_once_is_one_body_of_known_length_and_a_slow_one_streams() {
    let svc = StreamableHttp::new(EchoBackend);
    let sid = initialize(&svc, "2025-06-18").await;
    let call = json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}});
    let res = svc.clone().oneshot(post(&call, Some(&sid))).await.unwrap();
    // head, event and end can leave in one write, with a Content-Length
    let known = res.body().size_hint().exact();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(known, Some(bytes.len() as u64));
    assert_eq!(parse_sse(&bytes)[0].1["id"], 1);

    let slow =
        json!({"jsonrpc":"2.0","id":2,"method":"slow","params":{"_meta":{"progressToken":"p"}}});
    let res = svc.clone().oneshot(post(&slow, Some(&sid))).await.unwrap();
    assert_eq!(res.body().size_hint().exact(), None, "still streaming");
    let events = sse_events(res.into_body()).await;
    assert_eq!(events.len(), 6);
    assert_eq!(events[5].1["id"], 2);
}

#[tokio::test]
async fn notifications_and_responses_get_202_without_body() {
    let svc = StreamableHttp::new(EchoBackend);
    let sid = initialize(&svc, "2025-06-18").await;
    let note = json!({"jsonrpc":"2.0","method":"notifications/initialized"});
    let res = svc.clone().oneshot(post(&note, Some(&sid))).await.unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    assert!(
        res.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .is_empty()
    );
    let resp = json!({"jsonrpc":"2.0","id":"x","result":{}});
    let res = svc.clone().oneshot(post(&resp, Some(&sid))).await.unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
}

#[tokio::test]
async fn missing_session_is_400_unknown_is_404_deleted_is_404() {
    let svc = StreamableHttp::new(EchoBackend);
    let call = json!({"jsonrpc":"2.0","id":1,"method":"tools/list"});
    let (status, v) = status_and_json(svc.clone().oneshot(post(&call, None)).await.unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["code"], crate::jsonrpc::codes::BAD_REQUEST);
    let (status, v) = status_and_json(
        svc.clone()
            .oneshot(post(&call, Some("nope")))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(v["error"]["code"], crate::jsonrpc::codes::SESSION_NOT_FOUND);

    let sid = initialize(&svc, "2025-06-18").await;
    let del = Request::delete("/mcp")
        .header("mcp-session-id", &sid)
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        svc.clone().oneshot(del).await.unwrap().status(),
        StatusCode::OK
    );
    let (status, _) =
        status_and_json(svc.clone().oneshot(post(&call, Some(&sid))).await.unwrap()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(svc.session_count(), 0);
}

#[tokio::test]
async fn post_without_both_accept_types_is_406() {
    let svc = StreamableHttp::new(EchoBackend);
    let req = Request::post("/mcp")
        .header("content-type", "application/json")
        .header("accept", "application/json")
        .body(Body::from(init_body("2025-06-18").to_string()))
        .unwrap();
    let (status, v) = status_and_json(svc.clone().oneshot(req).await.unwrap()).await;
    assert_eq!(status, StatusCode::NOT_ACCEPTABLE);
    assert_eq!(v["jsonrpc"], "2.0");
    let get = Request::get("/mcp")
        .header("accept", "application/json")
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        svc.oneshot(get).await.unwrap().status(),
        StatusCode::NOT_ACCEPTABLE
    );
}

#[tokio::test]
async fn unsupported_protocol_version_on_get_and_delete_is_400() {
    let svc = StreamableHttp::new(EchoBackend);
    let sid = initialize(&svc, "2025-06-18").await;
    let get = Request::get("/mcp")
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &sid)
        .header("mcp-protocol-version", "1900-01-01")
        .body(Body::empty())
        .unwrap();
    let (status, v) = status_and_json(svc.clone().oneshot(get).await.unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        v["error"]["code"],
        crate::jsonrpc::codes::UNSUPPORTED_PROTOCOL_VERSION
    );
}

#[tokio::test]
async fn with_2026_off_sessionless_requests_are_refused_so_clients_fall_back() {
    let svc = StreamableHttp::new(EchoBackend).sessionless(false);
    let req = Request::post("/mcp")
        .header("content-type", "application/json")
        .header("accept", ACCEPT_BOTH)
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "server/discover")
        .body(Body::from(
            json!({"jsonrpc":"2.0","id":1,"method":"server/discover"}).to_string(),
        ))
        .unwrap();
    let (status, v) = status_and_json(svc.clone().oneshot(req).await.unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["code"], -32022);
    assert!(
        v["error"]["data"]["supported"]
            .as_array()
            .unwrap()
            .contains(&json!("2025-11-25"))
    );
    let get = Request::get("/mcp")
        .header("accept", "text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        svc.oneshot(get).await.unwrap().status(),
        StatusCode::METHOD_NOT_ALLOWED
    );
}

#[tokio::test]
async fn other_methods_are_405_with_allow() {
    let svc = StreamableHttp::new(EchoBackend);
    let res = svc
        .oneshot(Request::put("/mcp").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(res.headers()["allow"], "GET, POST, DELETE");
}

#[tokio::test]
async fn json_response_mode_answers_with_one_json_body() {
    let svc = StreamableHttp::new(EchoBackend).json_response(true);
    let res = svc
        .clone()
        .oneshot(post(&init_body("2025-03-26"), None))
        .await
        .unwrap();
    let sid = res.headers()["mcp-session-id"].to_str().unwrap().to_owned();
    assert_eq!(res.headers()["content-type"], "application/json");
    let batch = json!([
        {"jsonrpc":"2.0","id":1,"method":"tools/list"},
        {"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"a"}},
    ]);
    let mut req = post(&batch, Some(&sid));
    req.headers_mut()
        .insert("mcp-protocol-version", "2025-03-26".parse().unwrap());
    let (status, v) = status_and_json(svc.oneshot(req).await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    let ids: HashSet<i64> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, HashSet::from([1, 2]));
}

#[tokio::test]
async fn progress_goes_to_the_request_stream_and_2025_11_25_primes_it() {
    let svc = StreamableHttp::new(EchoBackend);
    let sid = initialize(&svc, "2025-11-25").await;
    let slow =
        json!({"jsonrpc":"2.0","id":7,"method":"slow","params":{"_meta":{"progressToken":"p"}}});
    let res = svc.clone().oneshot(post(&slow, Some(&sid))).await.unwrap();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.starts_with("id: "), "priming event first: {text}");
    assert!(text.split("\n\n").next().unwrap().ends_with("data: "));
    let events = parse_sse(&bytes);
    assert_eq!(events.len(), 6);
    assert!(
        events[..5]
            .iter()
            .all(|(_, v)| v["method"] == "notifications/progress")
    );
    assert_eq!(events[5].1["id"], 7);
}

#[tokio::test]
async fn server_requests_reach_the_client_and_its_answer_reaches_the_server() {
    let svc = StreamableHttp::new(EchoBackend);
    let sid = initialize(&svc, "2025-06-18").await;
    let ask = json!({"jsonrpc":"2.0","id":3,"method":"ask"});
    let res = svc.clone().oneshot(post(&ask, Some(&sid))).await.unwrap();
    let mut body = res.into_body();
    let frame = body.frame().await.unwrap().unwrap().into_data().unwrap();
    let events = parse_sse(&frame);
    assert_eq!(events[0].1["method"], "sampling/createMessage");
    let answer =
        json!({"jsonrpc":"2.0","id":"srv-1","result":{"content":{"type":"text","text":"hi"}}});
    let res = svc
        .clone()
        .oneshot(post(&answer, Some(&sid)))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let rest = body.collect().await.unwrap().to_bytes();
    let events = parse_sse(&rest);
    assert_eq!(events[0].1["result"]["sampled"]["content"]["text"], "hi");
}

#[tokio::test]
async fn resumption_after_a_dropped_stream_delivers_every_event_exactly_once() {
    let svc = StreamableHttp::new(EchoBackend);
    let sid = initialize(&svc, "2025-11-25").await;
    let slow =
        json!({"jsonrpc":"2.0","id":9,"method":"slow","params":{"_meta":{"progressToken":1}}});
    let res = svc.clone().oneshot(post(&slow, Some(&sid))).await.unwrap();
    let mut body = res.into_body();
    // Read the priming event and the first progress event, then drop.
    let mut seen = Vec::new();
    let mut last_id = None;
    while seen.is_empty() {
        let frame = body.frame().await.unwrap().unwrap().into_data().unwrap();
        let text = String::from_utf8_lossy(&frame).to_string();
        if let Some(id) = text.lines().find_map(|l| l.strip_prefix("id: ")) {
            last_id = Some(id.to_owned());
        }
        seen.extend(parse_sse(&frame).into_iter().map(|(_, v)| v));
    }
    drop(body);
    tokio::time::sleep(Duration::from_millis(70)).await;
    let get = Request::get("/mcp")
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &sid)
        .header("mcp-protocol-version", "2025-11-25")
        .header("last-event-id", last_id.unwrap())
        .body(Body::empty())
        .unwrap();
    let res = svc.clone().oneshot(get).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    seen.extend(
        sse_events(res.into_body())
            .await
            .into_iter()
            .map(|(_, v)| v),
    );
    let progress: Vec<i64> = seen
        .iter()
        .filter(|v| v["method"] == "notifications/progress")
        .map(|v| v["params"]["progress"].as_i64().unwrap())
        .collect();
    assert_eq!(progress, vec![0, 1, 2, 3, 4]);
    assert_eq!(seen.iter().filter(|v| v["id"] == 9).count(), 1);
}

#[tokio::test]
async fn legacy_sse_sends_endpoint_first_then_replies_as_message_events() {
    let app = Sse::new(EchoBackend).keepalive(None).into_router::<()>();
    let res = app
        .clone()
        .oneshot(Request::get("/sse").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["x-accel-buffering"], "no");
    let sid = res.headers()["mcp-session-id"].to_str().unwrap().to_owned();
    let mut body = res.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&first),
        format!("event: endpoint\ndata: messages?session_id={sid}\n\n")
    );
    for (param, id) in [("session_id", 1), ("sessionId", 2)] {
        let req = Request::post(format!("/messages?{param}={sid}"))
            .header("content-type", "application/json")
            .body(Body::from(
                json!({"jsonrpc":"2.0","id":id,"method":"tools/list"}).to_string(),
            ))
            .unwrap();
        let res = app.clone().oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::ACCEPTED);
        let frame: Bytes = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert!(String::from_utf8_lossy(&frame).starts_with("event: message\n"));
        assert_eq!(parse_sse(&frame)[0].1["id"], id);
    }
}

#[tokio::test]
async fn legacy_sse_post_without_or_with_unknown_session_is_400_or_404() {
    let app = Sse::new(EchoBackend).into_router::<()>();
    let body = json!({"jsonrpc":"2.0","id":1,"method":"ping"}).to_string();
    let req = Request::post("/messages")
        .header("content-type", "application/json")
        .body(Body::from(body.clone()))
        .unwrap();
    let (status, v) = status_and_json(app.clone().oneshot(req).await.unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(v["jsonrpc"], "2.0");
    let req = Request::post("/messages?session_id=unknown")
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap();
    let (status, v) = status_and_json(app.oneshot(req).await.unwrap()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(v["error"]["code"], crate::jsonrpc::codes::SESSION_NOT_FOUND);
}

#[tokio::test]
async fn legacy_session_ends_when_its_stream_closes() {
    let sse = Sse::new(EchoBackend);
    let app = sse.clone().into_router::<()>();
    let res = app
        .oneshot(Request::get("/sse").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(sse.session_count(), 1);
    drop(res);
    assert!(
        eventually(50, || sse.session_count() == 0).await,
        "session still open after its stream closed"
    );
}

/// Refuses every session.
#[derive(Clone, Default)]
struct Unavailable;

impl Backend for Unavailable {
    fn connect(&self, _: SessionContext) -> BoxFuture<'static, Result<Connection, BackendError>> {
        Box::pin(async { Err(BackendError::Unavailable("down".into())) })
    }
}

async fn open_legacy(app: &axum::Router) -> (String, Body) {
    let res = app
        .clone()
        .oneshot(Request::get("/sse").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let sid = res.headers()["mcp-session-id"].to_str().unwrap().to_owned();
    let mut body = res.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert!(String::from_utf8_lossy(&first).starts_with("event: endpoint\n"));
    (sid, body)
}

fn legacy_post(sid: &str, msg: &Value) -> Request<Body> {
    Request::post(format!("/messages?session_id={sid}"))
        .header("content-type", "application/json")
        .body(Body::from(msg.to_string()))
        .unwrap()
}

#[tokio::test]
async fn legacy_backend_session_opens_on_the_first_post_once_and_closes_with_the_stream() {
    let backend = Recording::default();
    let sse = Sse::new(backend.clone()).keepalive(None);
    let app = sse.clone().into_router::<()>();
    let (sid, mut body) = open_legacy(&app).await;
    // A stream that has not posted holds no backend session.
    assert_eq!(backend.opened(), 0);
    assert_eq!(sse.session_count(), 1);
    // Two first POSTs at once open one backend session.
    let a = app.clone().oneshot(legacy_post(
        &sid,
        &json!({"jsonrpc":"2.0","id":1,"method":"tools/list"}),
    ));
    let b = app.clone().oneshot(legacy_post(
        &sid,
        &json!({"jsonrpc":"2.0","id":2,"method":"tools/list"}),
    ));
    let (a, b) = tokio::join!(a, b);
    assert_eq!(a.unwrap().status(), StatusCode::ACCEPTED);
    assert_eq!(b.unwrap().status(), StatusCode::ACCEPTED);
    assert_eq!(backend.opened(), 1);
    assert_eq!(sse.session_count(), 1);
    let mut ids = Vec::new();
    for _ in 0..2 {
        let frame = body.frame().await.unwrap().unwrap().into_data().unwrap();
        ids.push(parse_sse(&frame)[0].1["id"].as_i64().unwrap());
    }
    ids.sort_unstable();
    assert_eq!(ids, vec![1, 2]);
    drop(body);
    assert!(
        eventually(50, || sse.session_count() == 0 && backend.all_closed()).await,
        "backend session still open after its stream closed"
    );
}

#[tokio::test]
async fn legacy_failing_backend_is_a_500_on_the_first_post_and_ends_the_stream() {
    let sse = Sse::new(Unavailable).keepalive(None);
    let app = sse.clone().into_router::<()>();
    let (sid, mut body) = open_legacy(&app).await;
    let ping = json!({"jsonrpc":"2.0","id":1,"method":"ping"});
    let res = app.clone().oneshot(legacy_post(&sid, &ping)).await.unwrap();
    let (status, v) = status_and_json(res).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(v["jsonrpc"], "2.0");
    assert_eq!(v["error"]["code"], crate::jsonrpc::codes::INTERNAL_ERROR);
    assert_eq!(v["error"]["message"], "MCP backend unavailable");
    // The stream ends, and the session is gone.
    assert!(body.frame().await.is_none());
    assert_eq!(sse.session_count(), 0);
    let res = app.oneshot(legacy_post(&sid, &ping)).await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn legacy_stream_without_a_post_is_ended_by_close_session_and_close_all() {
    let backend = Recording::default();
    let sse = Sse::new(backend.clone()).keepalive(None);
    let app = sse.clone().into_router::<()>();
    let (sid, mut one) = open_legacy(&app).await;
    let (_, mut two) = open_legacy(&app).await;
    assert_eq!(sse.session_count(), 2);
    assert!(sse.close_session(&sid));
    assert!(!sse.close_session(&sid));
    assert!(one.frame().await.is_none());
    sse.close_all_sessions();
    assert!(two.frame().await.is_none());
    assert_eq!(sse.session_count(), 0);
    assert_eq!(backend.opened(), 0);
    let res = app
        .oneshot(legacy_post(
            &sid,
            &json!({"jsonrpc":"2.0","id":1,"method":"ping"}),
        ))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn idle_sessions_are_ended_and_then_unknown() {
    let svc =
        StreamableHttp::new(EchoBackend).session_idle_timeout(Some(Duration::from_millis(40)));
    let sid = initialize(&svc, "2025-06-18").await;
    assert_eq!(svc.session_count(), 1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(svc.session_count(), 0);
    let call = json!({"jsonrpc":"2.0","id":1,"method":"tools/list"});
    let (status, _) = status_and_json(svc.oneshot(post(&call, Some(&sid))).await.unwrap()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_session_with_an_open_get_stream_is_not_idle() {
    let svc =
        StreamableHttp::new(EchoBackend).session_idle_timeout(Some(Duration::from_millis(40)));
    let sid = initialize(&svc, "2025-06-18").await;
    let get = Request::get("/mcp")
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &sid)
        .body(Body::empty())
        .unwrap();
    let stream = svc.clone().oneshot(get).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(svc.session_count(), 1);
    drop(stream);
}

/// Records the close handle of every connection it opens.
#[derive(Clone, Default)]
struct Recording(std::sync::Arc<std::sync::Mutex<Vec<CancellationToken>>>);

impl Backend for Recording {
    fn connect(&self, ctx: SessionContext) -> BoxFuture<'static, Result<Connection, BackendError>> {
        let seen = self.0.clone();
        Box::pin(async move {
            let conn = EchoBackend.connect(ctx).await?;
            seen.lock().unwrap().push(conn.closed.clone());
            Ok(conn)
        })
    }
}

impl Recording {
    fn all_closed(&self) -> bool {
        self.0
            .lock()
            .unwrap()
            .iter()
            .all(CancellationToken::is_cancelled)
    }
    fn opened(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

fn post_2026(method: &str, id: impl Into<Value>, params: Value) -> Request<Body> {
    let (mut params, id) = (params, id.into());
    params["_meta"]["io.modelcontextprotocol/protocolVersion"] = json!("2026-07-28");
    params["_meta"]["io.modelcontextprotocol/clientInfo"] = json!({"name": "t26", "version": "1"});
    params["_meta"]["io.modelcontextprotocol/clientCapabilities"] = json!({"sampling": {}});
    Request::post("/mcp")
        .header("content-type", "application/json")
        .header("accept", ACCEPT_BOTH)
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", method)
        .body(Body::from(
            json!({"jsonrpc":"2.0","id":id,"method":method,"params":params}).to_string(),
        ))
        .unwrap()
}

/// Whether `cond` holds within `tries` checks 10 ms apart.
async fn eventually(tries: u32, mut cond: impl FnMut() -> bool) -> bool {
    for _ in 0..tries {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

/// Waits (bounded) until every backend connection opened so far is closed.
async fn eventually_all_closed(backend: &Recording) -> bool {
    eventually(100, || backend.all_closed()).await
}

#[tokio::test]
async fn sessionless_discover_is_answered_from_the_backends_initialize_result() {
    let backend = Recording::default();
    // on by default
    let svc = StreamableHttp::new(backend.clone());
    let res = svc
        .clone()
        .oneshot(post_2026("server/discover", 1, json!({})))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers().get("mcp-session-id").is_none());
    let events = sse_events(res.into_body()).await;
    let result = &events.last().unwrap().1["result"];
    assert_eq!(result["supportedVersions"], json!(["2026-07-28"]));
    assert_eq!(result["resultType"], "complete");
    assert_eq!(result["cacheScope"], "private");
    assert_eq!(
        result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"],
        "echo"
    );
    assert!(result["capabilities"].is_object());
    assert_eq!(
        svc.session_count(),
        0,
        "a sessionless request opens no session"
    );
    // the initialized link is pooled: the next request of the same client
    // skips connect and initialize
    assert_eq!(svc.sessionless_links(), 1);
    assert!(!backend.all_closed(), "kept open for the next request");
    let again = svc
        .clone()
        .oneshot(post_2026("server/discover", 2, json!({})))
        .await
        .unwrap();
    let events = sse_events(again.into_body()).await;
    assert_eq!(events.last().unwrap().1["id"], 2);
    assert_eq!(backend.opened(), 1, "served by the pooled link");
    svc.close_all_sessions();
    assert!(backend.all_closed(), "a shutdown closes pooled links");
}

#[tokio::test]
async fn sessionless_request_streams_its_progress_then_its_answer_then_pools_its_link() {
    let backend = Recording::default();
    let svc = StreamableHttp::new(backend.clone()).sessionless(true);
    let res = svc
        .clone()
        .oneshot(post_2026(
            "slow",
            7,
            json!({"_meta": {"progressToken": "p"}}),
        ))
        .await
        .unwrap();
    let events = sse_events(res.into_body()).await;
    let progress = events
        .iter()
        .filter(|(_, v)| v["method"] == "notifications/progress")
        .count();
    assert_eq!(progress, 5);
    let last = &events.last().unwrap().1;
    assert_eq!(last["id"], 7);
    assert_eq!(last["result"]["done"], true);
    assert_eq!(last["result"]["resultType"], "complete");
    assert_eq!(backend.opened(), 1);
    // answered completely: the link went back to the pool before the answer
    // was sent, and serves the next request
    let res = svc
        .clone()
        .oneshot(post_2026("tools/list", 8, json!({})))
        .await
        .unwrap();
    let events = sse_events(res.into_body()).await;
    assert_eq!(events.last().unwrap().1["id"], 8);
    assert_eq!(backend.opened(), 1);
    assert!(!backend.all_closed());
}

#[tokio::test]
async fn sessionless_link_left_mid_request_is_closed_not_pooled() {
    // refused with -32021 while the backend still works on the request: the
    // link is not between requests, so it must not serve another
    let backend = Recording::default();
    let svc = StreamableHttp::new(backend.clone()).sessionless(true);
    let mut req = post_2026("ask", 6, json!({}));
    *req.body_mut() = Body::from(
        json!({"jsonrpc":"2.0","id":6,"method":"ask","params":{"_meta":{
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {}}}})
        .to_string(),
    );
    let (status, v) = status_and_json(svc.clone().oneshot(req).await.unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["code"], -32021);
    assert!(backend.all_closed());
    assert_eq!(svc.sessionless_links(), 0);
}

#[tokio::test]
async fn sessionless_backend_requests_are_refused_not_relayed() {
    let svc = StreamableHttp::new(EchoBackend)
        .sessionless(true)
        .json_response(true);
    let (status, v) =
        status_and_json(svc.oneshot(post_2026("ask", 3, json!({}))).await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["id"], 3);
    // EchoBackend answers `ask` with what the client said to its sampling
    // request: nothing, since the gateway refused it on the client's behalf.
    assert_eq!(v["result"]["sampled"], Value::Null);
}

#[tokio::test]
async fn sessionless_request_without_required_meta_is_400_invalid_params() {
    let svc = StreamableHttp::new(EchoBackend).sessionless(true);
    let mut req = post_2026("tools/list", 101, json!({}));
    *req.body_mut() = Body::from(
        json!({"jsonrpc":"2.0","id":101,"method":"tools/list","params":{"_meta":{
            "io.modelcontextprotocol/protocolVersion": "2026-07-28"}}})
        .to_string(),
    );
    let (status, v) = status_and_json(svc.oneshot(req).await.unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["code"], -32602);
    assert_eq!(v["id"], 101);
}

#[tokio::test]
async fn sessionless_removed_method_is_404_method_not_found() {
    let backend = Recording::default();
    let svc = StreamableHttp::new(backend.clone()).sessionless(true);
    let (status, v) =
        status_and_json(svc.oneshot(post_2026("ping", 5, json!({}))).await.unwrap()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(v["error"]["code"], -32601);
    assert_eq!(v["id"], 5);
    assert_eq!(backend.opened(), 0, "refused before any backend connection");
}

#[tokio::test]
async fn sessionless_backend_request_needing_an_undeclared_capability_is_400_missing_capability() {
    let svc = StreamableHttp::new(EchoBackend).sessionless(true);
    let mut req = post_2026("ask", 6, json!({}));
    *req.body_mut() = Body::from(
        json!({"jsonrpc":"2.0","id":6,"method":"ask","params":{"_meta":{
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {}}}})
        .to_string(),
    );
    let (status, v) = status_and_json(svc.oneshot(req).await.unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["code"], -32021);
    assert_eq!(v["id"], 6);
}

#[tokio::test]
async fn sessionless_client_closing_its_stream_closes_the_backend_connection() {
    let backend = Recording::default();
    let svc = StreamableHttp::new(backend.clone()).sessionless(true);
    let res = svc.oneshot(post_2026("slow", 8, json!({}))).await.unwrap();
    let mut body = res.into_body();
    // read the first frame, then hang up mid-request
    let _ = body.frame().await;
    drop(body);
    assert!(eventually_all_closed(&backend).await);
}

#[tokio::test]
async fn a_draining_gateway_ends_listen_streams_gracefully_with_their_result() {
    let backend = Recording::default();
    let svc = StreamableHttp::new(backend.clone()).sessionless(true);
    let req = post_2026(
        "subscriptions/listen",
        "listen-3",
        json!({"notifications": {"toolsListChanged": true}}),
    );
    let res = svc.clone().oneshot(req).await.unwrap();
    svc.start_draining();
    // the whole stream: the ack, then the result, then the end
    let events = sse_events(res.into_body()).await;
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(
        events[0].1["method"],
        "notifications/subscriptions/acknowledged"
    );
    let result = &events[1].1;
    assert_eq!(result["id"], "listen-3");
    assert_eq!(
        result["result"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        "listen-3"
    );
    assert!(eventually_all_closed(&backend).await);
}

#[tokio::test]
async fn concurrent_sessionless_requests_use_a_link_each_then_both_are_reused() {
    let backend = Recording::default();
    let svc = StreamableHttp::new(backend.clone()).sessionless(true);
    let (a, b) = tokio::join!(
        svc.clone().oneshot(post_2026("slow", 1, json!({}))),
        svc.clone().oneshot(post_2026("slow", 2, json!({}))),
    );
    let (a, b) = tokio::join!(
        sse_events(a.unwrap().into_body()),
        sse_events(b.unwrap().into_body())
    );
    assert_eq!(a.last().unwrap().1["id"], 1);
    assert_eq!(b.last().unwrap().1["id"], 2);
    assert_eq!(backend.opened(), 2, "one request at a time per link");
    assert_eq!(svc.sessionless_links(), 2);
    let (c, d) = tokio::join!(
        svc.clone().oneshot(post_2026("slow", 3, json!({}))),
        svc.clone().oneshot(post_2026("slow", 4, json!({}))),
    );
    let (c, d) = tokio::join!(
        sse_events(c.unwrap().into_body()),
        sse_events(d.unwrap().into_body())
    );
    assert_eq!(c.last().unwrap().1["id"], 3);
    assert_eq!(d.last().unwrap().1["id"], 4);
    assert_eq!(backend.opened(), 2, "both pooled links served again");
}

#[tokio::test]
async fn sessionless_subscriptions_listen_without_a_filter_is_400_invalid_params() {
    let backend = Recording::default();
    let svc = StreamableHttp::new(backend.clone()).sessionless(true);
    let (status, v) = status_and_json(
        svc.oneshot(post_2026("subscriptions/listen", 4, json!({})))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["code"], -32602);
    assert_eq!(v["id"], 4);
    assert_eq!(backend.opened(), 0);
}

#[tokio::test]
async fn sessionless_subscriptions_listen_acknowledges_first_on_a_link_of_its_own() {
    let backend = Recording::default();
    let svc = StreamableHttp::new(backend.clone()).sessionless(true);
    let req = post_2026(
        "subscriptions/listen",
        9,
        json!({"notifications": {"toolsListChanged": true}}),
    );
    let res = svc.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let mut body = res.into_body();
    let frame = body.frame().await.unwrap().unwrap();
    let text = String::from_utf8_lossy(frame.data_ref().unwrap()).into_owned();
    let data = text.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
    let ack: Value = serde_json::from_str(data).unwrap();
    assert_eq!(ack["method"], "notifications/subscriptions/acknowledged");
    assert_eq!(
        ack["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        9
    );
    // the echo backend declares no listChanged: nothing is honored
    assert_eq!(ack["params"]["notifications"], json!({}));
    assert_eq!(backend.opened(), 1);
    assert_eq!(svc.sessionless_links(), 0, "not a pooled link");
    drop(body);
    assert!(
        eventually_all_closed(&backend).await,
        "the client's close ends the listen's backend connection"
    );
}

/// A shutdown waits for answers to reach the client, not only to be routed:
/// a request stream counts as in flight until its body is written (or
/// dropped), so the drain does not end sessions under a reply in transit.
#[tokio::test]
async fn a_request_is_in_flight_until_its_answer_stream_is_written() {
    let svc = StreamableHttp::new(EchoBackend);
    let sid = initialize(&svc, "2025-11-25").await;
    let call = json!({"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo"}});
    let res = svc.clone().oneshot(post(&call, Some(&sid))).await.unwrap();
    // the echo answers at once: routed to the stream, not yet read
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        svc.in_flight_requests(),
        1,
        "the answer is not delivered yet"
    );
    let events = sse_events(res.into_body()).await;
    assert_eq!(events.last().unwrap().1["id"], 7);
    assert_eq!(svc.in_flight_requests(), 0, "written and dropped");

    // a client that goes away ends it too
    let res = svc.clone().oneshot(post(&call, Some(&sid))).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(svc.in_flight_requests(), 1);
    drop(res);
    assert_eq!(svc.in_flight_requests(), 0);
}

#[tokio::test]
async fn draining_refuses_new_sessions_but_serves_open_ones() {
    let svc = StreamableHttp::new(EchoBackend).json_response(true);
    let sid = {
        let res = svc
            .clone()
            .oneshot(post(&init_body("2025-11-25"), None))
            .await
            .unwrap();
        res.headers()["mcp-session-id"].to_str().unwrap().to_owned()
    };
    svc.start_draining();
    let res = svc
        .clone()
        .oneshot(post(&init_body("2025-11-25"), None))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(res.headers().contains_key("retry-after"));
    let (status, v) = status_and_json(
        svc.clone()
            .oneshot(post(
                &json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"x"}}),
                Some(&sid),
            ))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["id"], 2);
    assert_eq!(svc.in_flight_requests(), 0);

    let sse = Sse::new(EchoBackend);
    sse.start_draining();
    let res = sse
        .oneshot(
            Request::get("/sse")
                .header("accept", "text/event-stream")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
}

/// A backend that speaks 2026-07-28: records what [`Backend::forward`] got
/// and answers with a status and body of its own.
#[derive(Clone, Default)]
struct Modern {
    got: std::sync::Arc<std::sync::Mutex<Vec<crate::backend::PassThrough>>>,
}

impl Backend for Modern {
    fn connect(
        &self,
        _ctx: SessionContext,
    ) -> BoxFuture<'static, Result<Connection, BackendError>> {
        Box::pin(async { Err(BackendError::Unavailable("pass-through only".into())) })
    }

    fn protocol_versions(&self) -> BoxFuture<'static, Result<Vec<String>, BackendError>> {
        Box::pin(async { Ok(vec!["2026-07-28".to_owned()]) })
    }

    fn forward(
        &self,
        request: crate::backend::PassThrough,
    ) -> BoxFuture<'static, Result<http::Response<Body>, BackendError>> {
        self.got.lock().unwrap().push(request);
        Box::pin(async {
            Ok(http::Response::builder()
                .status(StatusCode::NOT_FOUND)
                .header("content-type", "application/json")
                .body(Body::from(
                    r#"{"jsonrpc":"2.0","id":5,"error":{"code":-32601,"message":"upstream's own","data":{"k":1}}}"#,
                ))
                .unwrap())
        })
    }
}

#[tokio::test]
async fn a_2026_request_to_a_backend_that_speaks_2026_passes_through_unchanged() {
    let backend = Modern::default();
    let svc = StreamableHttp::new(backend.clone());
    let mut req = post_2026("tools/list", 5, json!({"cursor": "c1"}));
    req.headers_mut()
        .insert("authorization", "Bearer client-secret".parse().unwrap());
    req.headers_mut()
        .insert("cookie", "sid=client-cookie".parse().unwrap());
    let sent = {
        let (parts, body) = req.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes();
        req = Request::from_parts(parts, Body::from(bytes.clone()));
        bytes
    };
    let res = svc.clone().oneshot(req).await.unwrap();
    // the backend's status, content type and body, as they are
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let (status, v) = status_and_json(res).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(v["error"]["message"], "upstream's own");
    assert_eq!(v["error"]["data"]["k"], 1);
    let got = backend.got.lock().unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body, sent, "the body is passed byte for byte");
    let mut names: Vec<_> = got[0].headers.keys().map(|n| n.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["mcp-method", "mcp-protocol-version"]);
    assert_eq!(svc.session_count(), 0);
    assert_eq!(svc.in_flight_requests(), 0);
}
