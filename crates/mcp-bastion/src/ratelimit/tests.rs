#![allow(clippy::unwrap_used)]

use std::{net::SocketAddr, time::Duration};

use axum::{
    Router,
    body::Body,
    extract::ConnectInfo,
    routing::{get, post},
};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

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
