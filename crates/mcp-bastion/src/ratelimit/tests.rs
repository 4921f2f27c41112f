#![allow(clippy::unwrap_used)]

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use axum::{
    Router,
    body::Body,
    extract::ConnectInfo,
    routing::{get, post},
};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::{Layer, Service, ServiceExt};

use super::*;
use crate::{inspect::McpInspectLayer, net::TrustedProxies, principal::Principal};

fn app(layer: McpRateLimitLayer) -> Router {
    Router::new()
        .route("/mcp", post(|| async { "ok" }).get(|| async { "stream" }))
        .route("/other", get(|| async { "other" }))
        .layer(layer)
        .layer(McpInspectLayer::new())
}

fn call_tool(id: i64, tool: &str) -> Request<Body> {
    let body = json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":tool}});
    Request::post("/mcp")
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

fn from(mut req: Request<Body>, peer: &str) -> Request<Body> {
    let addr: SocketAddr = format!("{peer}:40000").parse().unwrap();
    req.extensions_mut().insert(ConnectInfo(addr));
    req
}

fn as_principal(mut req: Request<Body>, p: Principal) -> Request<Body> {
    req.extensions_mut().insert(p);
    req
}

async fn body_json(res: Response<Body>) -> Value {
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&bytes).unwrap_or(Value::Null)
}

fn limit(s: &str) -> Limit {
    s.parse().unwrap()
}

#[tokio::test(start_paused = true)]
async fn sliding_window_through_the_layer_exact_boundary_on_a_paused_clock() {
    let app = app(McpRateLimitLayer::new(
        RateLimitPolicy::new().default_limit(limit("3/10s")),
    ));
    // the clock starts when the layer is built: the arithmetic below is exact.
    // 10 s is nine slots of 1_111_111_112 ns.
    let slot = Duration::from_nanos(1_111_111_112);
    let ok = |res: &Response<Body>, left: u32| {
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(
            res.headers()[RATELIMIT],
            format!("\"default\";r={left};t=10").as_str()
        );
        assert_eq!(res.headers()[RATELIMIT_POLICY], "\"default\";q=3;w=10");
    };
    for i in 0..2 {
        ok(
            &app.clone().oneshot(call_tool(i, "echo")).await.unwrap(),
            2 - i as u32,
        );
    }
    tokio::time::advance(Duration::from_secs(5)).await;
    ok(&app.clone().oneshot(call_tool(2, "echo")).await.unwrap(), 0);
    let res = app.clone().oneshot(call_tool(9, "echo")).await.unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    // the two calls at 0 s sit in slot 0, which leaves the window when slot 10
    // starts: 11.111 s, 6.111 s from now
    assert_eq!(res.headers()["retry-after"], "7");
    assert_eq!(res.headers()[RATELIMIT], "\"default\";r=0;t=7");
    let v = body_json(res).await;
    assert_eq!(v["id"], 9);
    assert_eq!(v["error"]["code"], -32029);
    assert_eq!(v["error"]["data"]["retryAfterSeconds"], 7);
    assert_eq!(v["error"]["data"]["policy"], "default");

    tokio::time::advance(slot * 10 - Duration::from_secs(5) - Duration::from_nanos(1)).await;
    let res = app.clone().oneshot(call_tool(10, "echo")).await.unwrap();
    assert_eq!(
        res.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "a nanosecond too early"
    );
    tokio::time::advance(Duration::from_nanos(1)).await;
    // room for two: the call at 5 s is still in the window
    for id in 11..13 {
        let res = app.clone().oneshot(call_tool(id, "echo")).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    }
    let res = app.clone().oneshot(call_tool(13, "echo")).await.unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    // a whole window after the last admission, all three are back at once
    tokio::time::advance(Duration::from_secs(10)).await;
    for id in 14..17 {
        let res = app.clone().oneshot(call_tool(id, "echo")).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    }
}

#[tokio::test(start_paused = true)]
async fn gcra_through_the_layer_exact_boundary_on_a_paused_clock() {
    let app = app(McpRateLimitLayer::new(
        RateLimitPolicy::new().default_limit(limit("2/s gcra")),
    ));
    for i in 0..2 {
        assert_eq!(
            app.clone()
                .oneshot(call_tool(i, "x"))
                .await
                .unwrap()
                .status(),
            StatusCode::OK
        );
    }
    let res = app.clone().oneshot(call_tool(2, "x")).await.unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(res.headers()["retry-after"], "1");
    tokio::time::advance(Duration::from_millis(499)).await;
    assert_eq!(
        app.clone()
            .oneshot(call_tool(3, "x"))
            .await
            .unwrap()
            .status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    tokio::time::advance(Duration::from_millis(1)).await;
    assert_eq!(
        app.clone()
            .oneshot(call_tool(4, "x"))
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
}

#[tokio::test(start_paused = true)]
async fn exhausting_one_tool_leaves_other_tools_and_other_principals_untouched() {
    let app = app(McpRateLimitLayer::new(
        RateLimitPolicy::new()
            .key(KeyBy::Principal)
            .default_limit(limit("100/min"))
            .tool("expensive", limit("2/min"))
            .tool("cheap", limit("50/min")),
    ));
    let alice = || Principal::new("alice");
    for i in 0..2 {
        let res = app
            .clone()
            .oneshot(as_principal(call_tool(i, "expensive"), alice()))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    }
    for i in 2..5 {
        let res = app
            .clone()
            .oneshot(as_principal(call_tool(i, "expensive"), alice()))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            body_json(res).await["error"]["data"]["policy"],
            "tool.expensive"
        );
    }
    let res = app
        .clone()
        .oneshot(as_principal(call_tool(5, "cheap"), alice()))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    // refused calls did not spend the default limit: 2 expensive + 1 cheap
    assert!(
        res.headers()[RATELIMIT]
            .to_str()
            .unwrap()
            .contains("\"default\";r=97")
    );
    let res = app
        .clone()
        .oneshot(as_principal(
            call_tool(6, "expensive"),
            Principal::new("bob"),
        ))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn every_call_of_a_batch_counts() {
    let app = app(McpRateLimitLayer::new(
        RateLimitPolicy::new().tool("t", limit("2/min")),
    ));
    let batch = json!([
        {"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t"}},
        {"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"t"}},
        {"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"t"}}
    ]);
    let req = Request::post("/mcp")
        .header("content-type", "application/json")
        .header("mcp-protocol-version", "2025-03-26")
        .body(Body::from(batch.to_string()))
        .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    // two single calls still fit: the refused batch spent nothing
    for i in 0..2 {
        assert_eq!(
            app.clone()
                .oneshot(call_tool(i, "t"))
                .await
                .unwrap()
                .status(),
            StatusCode::OK
        );
    }
}

#[tokio::test]
async fn x_forwarded_for_from_an_untrusted_peer_is_ignored_and_from_a_trusted_one_keys_the_limit() {
    let policy = RateLimitPolicy::new()
        .key(KeyBy::Ip)
        .default_limit(limit("1/min"));
    let spoofed = |i: i64, peer: &str, xff: &str| {
        let mut req = from(call_tool(i, "x"), peer);
        req.headers_mut()
            .insert("x-forwarded-for", xff.parse().unwrap());
        req
    };
    // untrusted peer: a new X-Forwarded-For each time changes nothing
    let untrusted = app(McpRateLimitLayer::new(policy.clone()));
    let res = untrusted
        .clone()
        .oneshot(spoofed(1, "192.0.2.1", "1.1.1.1"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res = untrusted
        .clone()
        .oneshot(spoofed(2, "192.0.2.1", "2.2.2.2"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);

    // trusted proxy: each forwarded client has its own bucket
    let trusted = app(McpRateLimitLayer::new(policy)
        .trusted_proxies(TrustedProxies::parse(["10.0.0.0/8"]).unwrap()));
    let res = trusted
        .clone()
        .oneshot(spoofed(1, "10.0.0.1", "1.1.1.1"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res = trusted
        .clone()
        .oneshot(spoofed(2, "10.0.0.1", "2.2.2.2"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res = trusted
        .clone()
        .oneshot(spoofed(3, "10.0.0.2", "1.1.1.1"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn a_tier_selected_by_scope_gets_its_own_policy() {
    let app = app(McpRateLimitLayer::new(
        RateLimitPolicy::new()
            .key(KeyBy::Principal)
            .default_limit(limit("1/min")),
    )
    .tier(
        TierMatch::scope("premium"),
        RateLimitPolicy::new()
            .key(KeyBy::Principal)
            .default_limit(limit("3/min")),
    ));
    let premium = || Principal::new("p").with_scopes(["premium"]);
    for i in 0..3 {
        let res = app
            .clone()
            .oneshot(as_principal(call_tool(i, "x"), premium()))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    }
    let res = app
        .clone()
        .oneshot(as_principal(call_tool(3, "x"), premium()))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let res = app
        .clone()
        .oneshot(as_principal(call_tool(4, "x"), Principal::new("f")))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res = app
        .clone()
        .oneshot(as_principal(call_tool(5, "x"), Principal::new("f")))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(
        TierMatch::claim("groups", "gold").matches(
            &Principal::new("g").with_claims(
                json!({"groups": ["gold", "x"]})
                    .as_object()
                    .unwrap()
                    .clone()
            )
        )
    );
}

#[tokio::test]
async fn method_limits_notifications_and_headers_off() {
    let app = app(McpRateLimitLayer::new(
        RateLimitPolicy::new()
            .default_limit(limit("1/min"))
            .method("resources/read", limit("1/min")),
    )
    .headers(false));
    let read = |id: i64| {
        Request::post("/mcp")
            .header("content-type", "application/json")
            .body(Body::from(
                json!({"jsonrpc":"2.0","id":id,"method":"resources/read","params":{"uri":"a://b"}})
                    .to_string(),
            ))
            .unwrap()
    };
    let res = app.clone().oneshot(read(1)).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(!res.headers().contains_key(RATELIMIT));
    let res = app.clone().oneshot(read(2)).await.unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        body_json(res).await["error"]["data"]["policy"],
        "method.resources/read"
    );
    // notifications are never counted
    for _ in 0..3 {
        let note = Request::post("/mcp")
            .header("content-type", "application/json")
            .body(Body::from(
                r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
            ))
            .unwrap();
        assert_eq!(
            app.clone().oneshot(note).await.unwrap().status(),
            StatusCode::OK
        );
    }
}

#[tokio::test]
async fn concurrency_caps_hold_a_slot_until_the_body_is_dropped() {
    let layer = McpRateLimitLayer::new(RateLimitPolicy::new())
        .max_concurrent(1)
        .max_streams(1);
    let stats = layer.stats();
    let app = app(layer);
    let get = || Request::get("/mcp").body(Body::empty()).unwrap();
    let open = app.clone().oneshot(get()).await.unwrap();
    assert_eq!(stats.concurrent(), 1);
    let res = app.clone().oneshot(get()).await.unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body_json(res).await["error"]["data"]["policy"], "streams");
    // POSTs have their own cap
    let post = app.clone().oneshot(call_tool(1, "x")).await.unwrap();
    assert_eq!(post.status(), StatusCode::OK);
    drop(post);
    drop(open);
    assert_eq!(stats.concurrent(), 0);
    assert_eq!(
        app.clone().oneshot(get()).await.unwrap().status(),
        StatusCode::OK
    );
}

#[tokio::test(start_paused = true)]
async fn distinct_ips_are_evicted_once_idle() {
    // The million-IP memory measurement is `tests/ratelimit_memory.rs`.
    let layer = McpRateLimitLayer::new(RateLimitPolicy::new().default_limit(limit("5/s")));
    let stats = layer.stats();
    let app = app(layer);
    for i in 0..2_000u32 {
        let ip = std::net::Ipv4Addr::from(0x0a00_0000 + i);
        let res = app
            .clone()
            .oneshot(from(call_tool(1, "x"), &ip.to_string()))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    }
    assert_eq!(stats.keys_in_memory(), 2_000);
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let res = app
        .clone()
        .oneshot(from(call_tool(1, "x"), "192.0.2.1"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(stats.keys_in_memory(), 1);
}

/// An inner service that counts its clones and its calls, answering with a
/// body that is not axum's.
struct Counting {
    clones: Arc<AtomicUsize>,
    calls: Arc<AtomicUsize>,
}

impl Clone for Counting {
    fn clone(&self) -> Self {
        self.clones.fetch_add(1, Ordering::Relaxed);
        Self {
            clones: self.clones.clone(),
            calls: self.calls.clone(),
        }
    }
}

impl tower::Service<Request<Body>> for Counting {
    type Response = Response<String>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Response<String>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<Body>) -> Self::Future {
        self.calls.fetch_add(1, Ordering::Relaxed);
        std::future::ready(Ok(Response::new("ok".to_owned())))
    }
}

fn counting() -> (Counting, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let clones = Arc::default();
    let calls = Arc::default();
    let svc = Counting {
        clones: Arc::clone(&clones),
        calls: Arc::clone(&calls),
    };
    (svc, clones, calls)
}

fn count(n: &AtomicUsize) -> usize {
    n.load(Ordering::Relaxed)
}

#[tokio::test]
async fn memory_limits_are_decided_in_call_without_cloning_the_inner_service() {
    use futures_util::FutureExt;

    let layer = McpRateLimitLayer::new(RateLimitPolicy::new().default_limit(limit("2/min")))
        .max_concurrent(1);
    let stats = layer.stats();
    let (inner, clones, calls) = counting();
    let mut svc = layer.layer(inner);
    let post = || Request::post("/mcp").body(Body::empty()).unwrap();

    // allowed: the inner service's future, ready as soon as the inner one is
    let held = svc.ready().await.unwrap().call(post()).now_or_never();
    let held = held.expect("decided in `call`").unwrap();
    assert_eq!(held.status(), StatusCode::OK);
    assert_eq!(held.headers()[RATELIMIT], "\"default\";r=1;t=60");
    assert_eq!(held.headers()[RATELIMIT_POLICY], "\"default\";q=2;w=60");
    assert_eq!(stats.concurrent(), 1, "the body holds the slot");

    // over the concurrency cap: refused without the inner service
    let res = svc.ready().await.unwrap().call(post()).now_or_never();
    let res = res.expect("decided in `call`").unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        body_json(res).await["error"]["data"]["policy"],
        "concurrency"
    );
    drop(held);
    assert_eq!(stats.concurrent(), 0);

    // over the rate limit (the refused request above spent its unit)
    let res = svc.ready().await.unwrap().call(post()).now_or_never();
    let res = res.expect("decided in `call`").unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(res.headers()[RATELIMIT], "\"default\";r=0;t=60");
    assert_eq!(body_json(res).await["error"]["data"]["policy"], "default");

    assert_eq!(count(&calls), 1);
    assert_eq!(count(&clones), 0, "the ready service is called in place");
}

#[tokio::test]
async fn headers_off_and_no_caps_answer_the_inner_body_untouched() {
    let layer =
        McpRateLimitLayer::new(RateLimitPolicy::new().default_limit(limit("5/min"))).headers(false);
    let (inner, clones, _) = counting();
    let mut svc = layer.layer(inner);
    let req = Request::post("/mcp").body(Body::empty()).unwrap();
    let res = svc.ready().await.unwrap().call(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(!res.headers().contains_key(RATELIMIT));
    assert!(!res.headers().contains_key(RATELIMIT_POLICY));
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&bytes[..], b"ok");
    assert_eq!(count(&clones), 0);
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn an_unreachable_redis_store_is_asked_from_the_future_and_the_failure_policy_decides() {
    // a port nobody listens on: the connection is refused at once
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("redis://127.0.0.1:{port}");
    let store = || RedisStore::with_options(&url, "test:", Duration::from_secs(2)).unwrap();
    let policy = RateLimitPolicy::new().default_limit(limit("1/min"));
    let post = || Request::post("/mcp").body(Body::empty()).unwrap();

    let closed = McpRateLimitLayer::new(policy.clone())
        .redis(store())
        .failure_policy(FailurePolicy::Closed);
    let (inner, _, calls) = counting();
    let mut svc = closed.layer(inner);
    let res = svc.ready().await.unwrap().call(post()).await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(count(&calls), 0);
    assert_eq!(closed.stats().store_failures(), 1);

    let open = McpRateLimitLayer::new(policy)
        .redis(store())
        .failure_policy(FailurePolicy::Open)
        .max_concurrent(1);
    let stats = open.stats();
    let (inner, _, calls) = counting();
    let mut svc = open.layer(inner);
    for _ in 0..2 {
        let res = svc.ready().await.unwrap().call(post()).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "failing open: unlimited");
        // no decision from the store: no `RateLimit` headers
        assert!(!res.headers().contains_key(RATELIMIT));
        assert_eq!(stats.concurrent(), 1, "the body holds the slot");
    }
    assert_eq!(count(&calls), 2);
    assert_eq!(stats.concurrent(), 0);
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn a_redis_store_decides_from_the_future_with_headers_and_slots() {
    let (_server, url) = super::redis::tests::redis_server().await;
    let layer = McpRateLimitLayer::new(RateLimitPolicy::new().default_limit(limit("2/min")))
        .redis(RedisStore::open(&url).unwrap())
        .max_concurrent(1);
    let stats = layer.stats();
    let (inner, _, calls) = counting();
    let mut svc = layer.layer(inner);
    let post = || Request::post("/mcp").body(Body::empty()).unwrap();

    let held = svc.ready().await.unwrap().call(post()).await.unwrap();
    assert_eq!(held.status(), StatusCode::OK);
    assert_eq!(held.headers()[RATELIMIT], "\"default\";r=1;t=60");
    assert_eq!(held.headers()[RATELIMIT_POLICY], "\"default\";q=2;w=60");
    assert_eq!(stats.concurrent(), 1);
    let res = svc.ready().await.unwrap().call(post()).await.unwrap();
    assert_eq!(
        body_json(res).await["error"]["data"]["policy"],
        "concurrency"
    );
    drop(held);
    let res = svc.ready().await.unwrap().call(post()).await.unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body_json(res).await["error"]["data"]["policy"], "default");
    assert_eq!(count(&calls), 1);
    assert_eq!(stats.concurrent(), 0);
}
