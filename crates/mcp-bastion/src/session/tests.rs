#![allow(clippy::unwrap_used, reason = "tests")]
//! SessionLayer rules, each named after the rule. Capture, binding and the
//! store run over a stand-in transport; lifetimes and caps run over the real
//! Streamable HTTP transport and real stdio children, on a paused clock.

use std::{
    io::Write,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{
    Router,
    body::Body,
    http::{HeaderMap, Request, StatusCode},
    routing::any,
};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::{Layer, Service, ServiceExt};

use super::*;
use crate::{backend::stdio::StdioBackend, principal::Principal, transport::StreamableHttp};

// ---------------------------------------------------------------------------------------------
// a stand-in transport: opens a session on a request without an id and shows what it received

async fn fake_transport(
    headers: HeaderMap,
    params: Option<SessionParams>,
) -> axum::response::Response {
    let body = json!({
        "params": params.as_ref().map(|p| p.iter().map(|(k, v)| (k.to_owned(), json!(v))).collect::<serde_json::Map<_, _>>()),
    })
    .to_string();
    let mut res = axum::response::Response::new(Body::from(body));
    if !headers.contains_key("mcp-session-id") {
        let id = new_session_id(Some("r1")).unwrap();
        res.headers_mut()
            .insert("mcp-session-id", id.parse().unwrap());
    }
    res
}

fn app(layer: SessionLayer) -> Router {
    Router::new()
        .route("/mcp", any(fake_transport))
        .route("/sse", any(fake_transport))
        .layer(layer)
}

fn req(method: &str, uri: &str, session: Option<&str>, who: Option<&str>) -> Request<Body> {
    let mut b = Request::builder().method(method).uri(uri);
    if let Some(s) = session {
        b = b.header("mcp-session-id", s);
    }
    let mut r = b.body(Body::empty()).unwrap();
    if let Some(who) = who {
        r.extensions_mut().insert(Principal::new(who));
    }
    r
}

async fn send(app: &Router, r: Request<Body>) -> (StatusCode, Option<String>, Value) {
    let res = app.clone().oneshot(r).await.unwrap();
    let status = res.status();
    let sid = res
        .headers()
        .get("mcp-session-id")
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, sid, body)
}

#[tokio::test]
async fn allowlisted_query_params_are_captured_on_open_and_seen_by_every_later_request() {
    let layer = SessionLayer::new()
        .capture_param("service")
        .capture_param("auth");
    let app = app(layer.clone());
    // the legacy SSE stream: the session lives as long as this response body
    let stream = app
        .clone()
        .oneshot(req("GET", "/sse?auth=KEY1&service=billing&x=1", None, None))
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    let sid = stream.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    // a later request (the legacy message endpoint: id in the query) sees the same params,
    // whatever its own query says
    let later = format!("/mcp?session_id={sid}&service=other");
    let (status, _, body) = send(&app, req("POST", &later, None, None)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["params"],
        json!({"auth": "KEY1", "service": "billing"})
    );
    let (_, _, body) = send(&app, req("POST", "/mcp", Some(&sid), None)).await;
    assert_eq!(body["params"]["service"], "billing");
    // the legacy session ends with its stream
    drop(stream);
    tokio::task::yield_now().await;
    assert_eq!(layer.session_count(), 0);
    let (status, _, _) = send(&app, req("POST", "/mcp", Some(&sid), None)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn mapped_headers_are_captured_as_params() {
    let layer = SessionLayer::new()
        .capture_header("x-tenant", "tenant")
        .unwrap();
    let app = app(layer);
    let mut r = req("POST", "/mcp", None, None);
    r.headers_mut().insert("x-tenant", "acme".parse().unwrap());
    let (_, sid, _) = send(&app, r).await;
    let (_, _, body) = send(&app, req("POST", "/mcp", Some(&sid.unwrap()), None)).await;
    assert_eq!(body["params"]["tenant"], "acme");
}

#[test]
fn sensitive_params_are_redacted_in_debug_output() {
    let p = SessionParams::new([("auth", "KEY1"), ("service", "billing"), ("ticket", "T-9")])
        .with_sensitive(["Ticket"]);
    let shown = format!("{p:?}");
    assert!(shown.contains("billing"), "{shown}");
    assert!(!shown.contains("KEY1") && !shown.contains("T-9"), "{shown}");
    let layer = SessionLayer::new()
        .sensitive_param("auth")
        .capture_param("auth");
    assert!(!format!("{layer:?}").contains("KEY1"));
}

/// Captures this thread's log output.
fn capture_logs() -> (Arc<Mutex<Vec<u8>>>, tracing::subscriber::DefaultGuard) {
    #[derive(Clone)]
    struct W(Arc<Mutex<Vec<u8>>>);
    impl Write for W {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Arc::new(Mutex::new(Vec::new()));
    let w = W(buf.clone());
    let sub = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || w.clone())
        .finish();
    (buf, tracing::subscriber::set_default(sub))
}

#[tokio::test]
async fn a_session_presented_by_another_principal_is_404_and_logged_without_the_id() {
    let (logs, _guard) = capture_logs();
    let app = app(SessionLayer::new().capture_param("auth"));
    let (_, sid, _) = send(&app, req("POST", "/mcp?auth=KEY_A", None, Some("alice"))).await;
    let sid = sid.unwrap();
    let (status, _, body) = send(&app, req("POST", "/mcp", Some(&sid), Some("bob"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        body["error"]["code"],
        crate::jsonrpc::codes::SESSION_NOT_FOUND
    );
    let (status, _, _) = send(&app, req("POST", "/mcp", Some(&sid), None)).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "no principal presents no session"
    );
    // the owner goes on unaffected
    let (status, _, body) = send(&app, req("POST", "/mcp", Some(&sid), Some("alice"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["params"]["auth"], "KEY_A");
    let logs = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("WARN") && logs.contains("another principal"),
        "{logs}"
    );
    let hex = sid.split_once('.').unwrap().1;
    assert!(
        !logs.contains(hex),
        "the session id leaked into the logs:\n{logs}"
    );
    assert!(
        !logs.contains("KEY_A"),
        "a captured secret leaked into the logs:\n{logs}"
    );
}

#[tokio::test]
async fn ids_the_layer_never_saw_open_are_404_and_malformed_ones_400() {
    let app = app(SessionLayer::new());
    let (status, _, _) = send(
        &app,
        req(
            "POST",
            "/mcp",
            Some("r1.00000000000000000000000000000000"),
            None,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let mut bad = req("POST", "/mcp", None, None);
    bad.headers_mut()
        .insert("mcp-session-id", "a b".parse().unwrap());
    let (status, _, _) = send(&app, bad).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn delete_forgets_the_session() {
    let layer = SessionLayer::new();
    let app = app(layer.clone());
    let (_, sid, _) = send(&app, req("POST", "/mcp", None, None)).await;
    let sid = sid.unwrap();
    assert_eq!(layer.session_count(), 1);
    let (status, _, _) = send(&app, req("DELETE", "/mcp", Some(&sid), None)).await;
    assert_eq!(status, StatusCode::OK);
    tokio::task::yield_now().await;
    assert_eq!(layer.session_count(), 0);
    let (status, _, _) = send(&app, req("POST", "/mcp", Some(&sid), None)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn two_layers_sharing_a_store_validate_each_others_sessions() {
    let store = Arc::new(MemorySessionStore::new());
    let one = app(SessionLayer::new()
        .store(store.clone())
        .capture_param("service")
        .replica_id("r1"));
    let two = app(SessionLayer::new()
        .store(store.clone())
        .capture_param("service")
        .replica_id("r2"));
    let (_, sid, _) = send(
        &one,
        req("POST", "/mcp?service=billing", None, Some("alice")),
    )
    .await;
    let sid = sid.unwrap();
    let (status, _, body) = send(&two, req("POST", "/mcp", Some(&sid), Some("alice"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["params"]["service"], "billing");
    let (status, _, _) = send(&two, req("POST", "/mcp", Some(&sid), Some("bob"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let record = store.get(&sid).await.unwrap().unwrap();
    assert_eq!(record.owner.as_deref(), Some("r1"));
    assert!(!format!("{record:?}").contains(&sid));
}

#[tokio::test]
async fn a_404_from_a_replica_that_does_not_own_the_session_keeps_the_shared_record() {
    let store = Arc::new(MemorySessionStore::new());
    let owner = app(SessionLayer::new().store(store.clone()));
    // another replica whose transport does not know the session (a misrouted request)
    let other = Router::new()
        .route("/mcp", any(|| async { StatusCode::NOT_FOUND }))
        .layer(SessionLayer::new().store(store.clone()));
    let (_, sid, _) = send(&owner, req("POST", "/mcp", None, Some("alice"))).await;
    let sid = sid.unwrap();
    let (status, _, _) = send(&other, req("POST", "/mcp", Some(&sid), Some("alice"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    tokio::task::yield_now().await;
    let (status, _, _) = send(&owner, req("POST", "/mcp", Some(&sid), Some("alice"))).await;
    assert_eq!(status, StatusCode::OK, "the owner's session must survive");
    assert!(store.get(&sid).await.unwrap().is_some());
}

#[tokio::test(start_paused = true)]
async fn requests_write_their_activity_to_the_store_at_most_once_per_touch_interval() {
    // idle 2 s: the touch interval is 2 s / 16 = 125 ms
    let store = Arc::new(MemorySessionStore::new());
    let app = app(SessionLayer::new()
        .store(store.clone())
        .idle_timeout(Some(Duration::from_secs(2))));
    let (_, sid, _) = send(&app, req("POST", "/mcp", None, Some("alice"))).await;
    let sid = sid.unwrap();
    let opened = store.get(&sid).await.unwrap().unwrap().last_seen_ms;
    tokio::time::advance(Duration::from_millis(100)).await;
    let (status, _, _) = send(&app, req("POST", "/mcp", Some(&sid), Some("alice"))).await;
    assert_eq!(status, StatusCode::OK);
    let record = store.get(&sid).await.unwrap().unwrap();
    assert_eq!(record.last_seen_ms, opened, "100 ms later: no store write");
    tokio::time::advance(Duration::from_millis(50)).await;
    let (status, _, _) = send(&app, req("POST", "/mcp", Some(&sid), Some("alice"))).await;
    assert_eq!(status, StatusCode::OK);
    let record = store.get(&sid).await.unwrap().unwrap();
    assert!(
        record.last_seen_ms >= opened + 150,
        "150 ms after the last write: written ({} vs {opened})",
        record.last_seen_ms
    );
    // a record lives for the idle timeout plus the interval after its last
    // write (150 ms), so an activity that was not written cannot lose it:
    // still there 2.05 s after the write...
    tokio::time::advance(Duration::from_millis(2050)).await;
    assert!(store.get(&sid).await.unwrap().is_some());
    // ...and gone after 2.125 s
    tokio::time::advance(Duration::from_millis(100)).await;
    assert!(store.get(&sid).await.unwrap().is_none());
}

// ---------------------------------------------------------------------------------------------
// the fast path: with a store that answers at once, `call` decides a request of an existing
// session and calls the inner service itself

/// A stand-in transport as a service that counts its clones.
struct CountedClones {
    inner: Router,
    clones: Arc<AtomicUsize>,
}

impl Clone for CountedClones {
    fn clone(&self) -> Self {
        self.clones.fetch_add(1, Ordering::SeqCst);
        Self {
            inner: self.inner.clone(),
            clones: Arc::clone(&self.clones),
        }
    }
}

impl Service<Request<Body>> for CountedClones {
    type Response = <Router as Service<Request<Body>>>::Response;
    type Error = <Router as Service<Request<Body>>>::Error;
    type Future = <Router as Service<Request<Body>>>::Future;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        Service::<Request<Body>>::poll_ready(&mut self.inner, cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        self.inner.call(req)
    }
}

/// The layer over a counted stand-in transport; `/gone` answers 404, as a
/// transport that ended the session does.
fn counted(layer: &SessionLayer) -> (SessionService<CountedClones>, Arc<AtomicUsize>) {
    let clones = Arc::new(AtomicUsize::new(0));
    let inner = CountedClones {
        inner: Router::new()
            .route("/mcp", any(fake_transport))
            .route("/gone", any(|| async { StatusCode::NOT_FOUND })),
        clones: Arc::clone(&clones),
    };
    (layer.layer(inner), clones)
}

/// Calls the service itself (no clone of it): the state its future starts
/// in (`Ready`, `Inner` or `Boxed`), the status and the JSON body.
async fn call_on(
    svc: &mut SessionService<CountedClones>,
    r: Request<Body>,
) -> (&'static str, StatusCode, Value) {
    let fut = ServiceExt::<Request<Body>>::ready(svc)
        .await
        .unwrap()
        .call(r);
    let shown = format!("{fut:?}");
    let state = ["Ready", "Inner", "Boxed"]
        .into_iter()
        .find(|s| shown.contains(&format!("\"{s}\"")))
        .unwrap();
    let res = fut.await.unwrap();
    let status = res.status();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (
        state,
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// Opens a session through `svc` (the boxed path) and returns its id.
async fn open_on(svc: &mut SessionService<CountedClones>, uri: &str, who: &str) -> String {
    let fut = ServiceExt::<Request<Body>>::ready(svc)
        .await
        .unwrap()
        .call(req("POST", uri, None, Some(who)));
    assert!(format!("{fut:?}").contains("Boxed"), "{fut:?}");
    let res = fut.await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let sid = res.headers()["mcp-session-id"].to_str().unwrap().to_owned();
    res.into_body().collect().await.unwrap();
    sid
}

#[tokio::test]
async fn memory_store_session_requests_are_decided_in_call_without_cloning_the_inner_service() {
    let layer = SessionLayer::new().capture_param("service");
    let (mut svc, clones) = counted(&layer);
    let sid = open_on(&mut svc, "/mcp?service=billing", "alice").await;
    let before = clones.load(Ordering::SeqCst);

    // admitted: the inner service's future, unboxed, with the session's params
    let (state, status, body) =
        call_on(&mut svc, req("POST", "/mcp", Some(&sid), Some("alice"))).await;
    assert_eq!((state, status), ("Inner", StatusCode::OK));
    assert_eq!(body["params"]["service"], "billing");
    let legacy = format!("/mcp?session_id={sid}");
    let (state, status, body) = call_on(&mut svc, req("POST", &legacy, None, Some("alice"))).await;
    assert_eq!((state, status), ("Inner", StatusCode::OK));
    assert_eq!(body["params"]["service"], "billing");

    // refused: the layer's answer, ready at once
    let unknown = "r1.00000000000000000000000000000000";
    for (r, expected) in [
        (
            req("POST", "/mcp", Some(unknown), Some("alice")),
            StatusCode::NOT_FOUND,
        ),
        (
            req("POST", "/mcp", Some(&sid), Some("bob")),
            StatusCode::NOT_FOUND,
        ),
        (req("POST", "/mcp", Some(&sid), None), StatusCode::NOT_FOUND),
        (
            req("POST", "/mcp?session_id=a%20b", None, Some("alice")),
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let (state, status, body) = call_on(&mut svc, r).await;
        assert_eq!((state, status), ("Ready", expected));
        assert!(body["error"]["code"].is_i64(), "{body}");
    }
    assert_eq!(
        layer.session_count(),
        1,
        "refusals leave the owner's session alone"
    );

    // a successful DELETE forgets the session
    let (state, status, _) =
        call_on(&mut svc, req("DELETE", "/mcp", Some(&sid), Some("alice"))).await;
    assert_eq!((state, status), ("Inner", StatusCode::OK));
    assert_eq!(layer.session_count(), 0);
    let (state, status, _) =
        call_on(&mut svc, req("POST", "/mcp", Some(&sid), Some("alice"))).await;
    assert_eq!((state, status), ("Ready", StatusCode::NOT_FOUND));
    assert_eq!(
        clones.load(Ordering::SeqCst),
        before,
        "the inner service was cloned for a request of an existing session"
    );

    // so does a 404 from the transport of the replica that owns it
    let sid = open_on(&mut svc, "/mcp", "alice").await;
    let before = clones.load(Ordering::SeqCst);
    assert_eq!(layer.session_count(), 1);
    let (state, status, _) =
        call_on(&mut svc, req("POST", "/gone", Some(&sid), Some("alice"))).await;
    assert_eq!((state, status), ("Inner", StatusCode::NOT_FOUND));
    assert_eq!(layer.session_count(), 0);
    let (state, status, _) =
        call_on(&mut svc, req("POST", "/mcp", Some(&sid), Some("alice"))).await;
    assert_eq!((state, status), ("Ready", StatusCode::NOT_FOUND));
    assert_eq!(clones.load(Ordering::SeqCst), before);
}

/// Advances the paused clock by `total` in small steps, letting the cleanup
/// task run at each.
async fn advance_by(total: Duration) {
    let step = Duration::from_millis(50);
    let mut gone = Duration::ZERO;
    while gone < total {
        tokio::time::advance(step).await;
        settle().await;
        gone += step;
    }
}

#[tokio::test(start_paused = true)]
async fn on_the_fast_path_an_open_response_body_keeps_its_session_from_going_idle() {
    let layer = SessionLayer::new().idle_timeout(Some(Duration::from_secs(2)));
    let (mut svc, _) = counted(&layer);
    let sid = open_on(&mut svc, "/mcp", "alice").await;
    let fut = ServiceExt::<Request<Body>>::ready(&mut svc)
        .await
        .unwrap()
        .call(req("POST", "/mcp", Some(&sid), Some("alice")));
    assert!(format!("{fut:?}").contains("Inner"), "{fut:?}");
    let streaming = fut.await.unwrap();
    advance_by(Duration::from_secs(5)).await;
    assert_eq!(layer.session_count(), 1, "a body still open is activity");
    drop(streaming);
    advance_by(Duration::from_secs(3)).await;
    assert_eq!(layer.session_count(), 0, "idle for 2 s once the body ended");
    let (state, status, _) =
        call_on(&mut svc, req("POST", "/mcp", Some(&sid), Some("alice"))).await;
    assert_eq!((state, status), ("Ready", StatusCode::NOT_FOUND));
}

/// A store that keeps [`SessionStore::get_now`] (and, unless `sync_get`,
/// also `touch_now`) at their defaults, as a store with I/O does.
struct Awaited {
    inner: MemorySessionStore,
    sync_get: bool,
}

impl SessionStore for Awaited {
    fn put(
        &self,
        record: SessionRecord,
        ttl: Duration,
    ) -> crate::boxed::BoxFuture<'static, Result<(), StoreError>> {
        self.inner.put(record, ttl)
    }
    fn get(
        &self,
        id: &str,
    ) -> crate::boxed::BoxFuture<'static, Result<Option<SessionRecord>, StoreError>> {
        self.inner.get(id)
    }
    fn touch(
        &self,
        id: &str,
        last_seen_ms: u64,
        ttl: Duration,
    ) -> crate::boxed::BoxFuture<'static, Result<(), StoreError>> {
        self.inner.touch(id, last_seen_ms, ttl)
    }
    fn remove(&self, id: &str) -> crate::boxed::BoxFuture<'static, Result<(), StoreError>> {
        self.inner.remove(id)
    }
    fn get_now(&self, id: &str) -> Option<Result<Option<SessionRecord>, StoreError>> {
        self.sync_get.then(|| self.inner.get_now(id)).flatten()
    }
}

#[tokio::test(start_paused = true)]
async fn stores_that_must_be_awaited_take_the_boxed_path_with_the_same_answers() {
    // idle 2 s: the touch interval is 125 ms
    let idle = Some(Duration::from_secs(2));
    for sync_get in [false, true] {
        let store = MemorySessionStore::new();
        let layer = SessionLayer::new()
            .store(Awaited {
                inner: store.clone(),
                sync_get,
            })
            .capture_param("service")
            .idle_timeout(idle);
        let (mut svc, _) = counted(&layer);
        let sid = open_on(&mut svc, "/mcp?service=billing", "alice").await;
        let opened = store.get_now(&sid).unwrap().unwrap().unwrap().last_seen_ms;
        // a read that must be awaited: boxed; a read at once with no touch due: the fast path
        let (state, status, body) =
            call_on(&mut svc, req("POST", "/mcp", Some(&sid), Some("alice"))).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(state, if sync_get { "Inner" } else { "Boxed" });
        assert_eq!(body["params"]["service"], "billing");
        // a touch due that must be awaited: boxed either way, and written
        tokio::time::advance(Duration::from_millis(200)).await;
        let (state, status, body) =
            call_on(&mut svc, req("POST", "/mcp", Some(&sid), Some("alice"))).await;
        assert_eq!((state, status), ("Boxed", StatusCode::OK));
        assert_eq!(body["params"]["service"], "billing");
        let seen = store.get_now(&sid).unwrap().unwrap().unwrap().last_seen_ms;
        assert!(seen >= opened + 200, "{seen} vs {opened}");
        // refusals
        let (state, status, _) =
            call_on(&mut svc, req("POST", "/mcp", Some(&sid), Some("bob"))).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(state, if sync_get { "Ready" } else { "Boxed" });
        let (state, status, _) =
            call_on(&mut svc, req("POST", "/mcp?session_id=a%20b", None, None)).await;
        assert_eq!((state, status), ("Ready", StatusCode::BAD_REQUEST));
        // DELETE forgets
        let (_, status, _) =
            call_on(&mut svc, req("DELETE", "/mcp", Some(&sid), Some("alice"))).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(layer.session_count(), 0);
        assert!(store.is_empty());
    }
}

// ---------------------------------------------------------------------------------------------
// lifetimes over the real transport and real stdio children, on a paused clock

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/echo_server.py");

struct Stack {
    app: Router,
    layer: SessionLayer,
    transport: StreamableHttp<Arc<StdioBackend>>,
    backend: Arc<StdioBackend>,
}

fn stack(layer: SessionLayer) -> Stack {
    let backend = Arc::new(
        StdioBackend::builder("python3")
            .args(["-u", FIXTURE])
            .grace_period(Duration::from_millis(200))
            .build()
            .unwrap(),
    );
    let transport = StreamableHttp::new(backend.clone())
        .json_response(true)
        .session_idle_timeout(None);
    let layer = layer.closer(transport.clone());
    let app = Router::new()
        .route_service("/mcp", transport.clone())
        .layer(layer.clone());
    Stack {
        app,
        layer,
        transport,
        backend,
    }
}

fn rpc(body: Value, session: Option<&str>, who: &str) -> Request<Body> {
    let mut b = Request::post("/mcp")
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json");
    if let Some(s) = session {
        b = b.header("mcp-session-id", s);
    }
    let mut r = b.body(Body::from(body.to_string())).unwrap();
    r.extensions_mut().insert(Principal::new(who));
    r
}

async fn open(s: &Stack, who: &str) -> (StatusCode, Option<String>) {
    let init = json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}});
    let (status, sid, _) = send(&s.app, rpc(init, None, who)).await;
    (status, sid)
}

/// A request of the session that the transport answers without waiting for the child (202),
/// so that a paused clock never jumps while the test waits for a process.
async fn ping(s: &Stack, sid: &str, who: &str) -> StatusCode {
    let note = json!({"jsonrpc":"2.0","method":"notifications/initialized"});
    let (status, _, _) = send(&s.app, rpc(note, Some(sid), who)).await;
    status
}

/// Lets spawned tasks run on the paused clock.
async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

/// With the clock running again, waits (real time) for every child to be gone.
async fn children_gone(backend: &StdioBackend) -> bool {
    tokio::time::resume();
    for _ in 0..500 {
        if backend.live_children() == 0 {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

#[tokio::test]
async fn idle_sessions_are_ended_by_the_cleanup_task_and_their_children_exit() {
    let s = stack(SessionLayer::new().idle_timeout(Some(Duration::from_secs(60))));
    let (_, a) = open(&s, "alice").await;
    let (_, b) = open(&s, "bob").await;
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(s.backend.live_children(), 2);
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(40)).await;
    assert_eq!(
        ping(&s, &b, "bob").await,
        StatusCode::ACCEPTED,
        "bob stays active"
    );
    tokio::time::advance(Duration::from_secs(25)).await;
    settle().await;
    // alice was idle for 65 s: ended; bob for 25 s: alive
    assert_eq!(s.layer.session_count(), 1);
    assert_eq!(s.transport.session_count(), 1);
    assert_eq!(ping(&s, &a, "alice").await, StatusCode::NOT_FOUND);
    assert_eq!(ping(&s, &b, "bob").await, StatusCode::ACCEPTED);
    tokio::time::advance(Duration::from_secs(61)).await;
    settle().await;
    assert_eq!(s.layer.session_count(), 0);
    assert_eq!(s.transport.session_count(), 0);
    assert!(children_gone(&s.backend).await, "children still running");
}

#[tokio::test]
async fn max_lifetime_ends_even_a_busy_session() {
    let s = stack(
        SessionLayer::new()
            .idle_timeout(None)
            .max_lifetime(Some(Duration::from_secs(300))),
    );
    let (_, a) = open(&s, "alice").await;
    let a = a.unwrap();
    tokio::time::pause();
    for _ in 0..5 {
        tokio::time::advance(Duration::from_secs(50)).await;
        assert_eq!(ping(&s, &a, "alice").await, StatusCode::ACCEPTED);
    }
    tokio::time::advance(Duration::from_secs(60)).await;
    settle().await;
    assert_eq!(ping(&s, &a, "alice").await, StatusCode::NOT_FOUND);
    assert!(children_gone(&s.backend).await);
}

#[tokio::test]
async fn the_per_principal_cap_ends_the_oldest_idle_session() {
    let s =
        stack(SessionLayer::new().max_sessions_per_principal(2, OverflowPolicy::EvictOldestIdle));
    let (_, first) = open(&s, "alice").await;
    let (_, second) = open(&s, "alice").await;
    let (_, bob) = open(&s, "bob").await;
    let (first, second) = (first.unwrap(), second.unwrap());
    assert!(bob.is_some());
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(10)).await;
    // first used recently: second is now alice's oldest idle session
    assert_eq!(ping(&s, &first, "alice").await, StatusCode::ACCEPTED);
    tokio::time::advance(Duration::from_secs(10)).await;
    // a real child answers the next initialize: let the clock run, or it would jump while we wait
    tokio::time::resume();
    let (status, third) = open(&s, "alice").await;
    assert_eq!(status, StatusCode::OK);
    assert!(third.is_some());
    settle().await;
    assert_eq!(ping(&s, &second, "alice").await, StatusCode::NOT_FOUND);
    assert_eq!(ping(&s, &first, "alice").await, StatusCode::ACCEPTED);
    // bob's session is not alice's to lose
    assert_eq!(s.transport.session_count(), 3);
    for _ in 0..500 {
        if s.backend.live_children() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        s.backend.live_children(),
        3,
        "the evicted session's child must exit"
    );
}

#[tokio::test]
async fn the_per_principal_cap_can_refuse_the_new_session() {
    let s = stack(SessionLayer::new().max_sessions_per_principal(1, OverflowPolicy::Refuse));
    let (status, _) = open(&s, "alice").await;
    assert_eq!(status, StatusCode::OK);
    let (status, sid) = open(&s, "alice").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(sid.is_none());
    assert_eq!(
        s.backend.live_children(),
        1,
        "a refused session starts no child"
    );
}
