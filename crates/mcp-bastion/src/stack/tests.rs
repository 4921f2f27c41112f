#![allow(clippy::unwrap_used, reason = "tests")]
//! The order of `McpStack`, each rule named after why the order is what it
//! is; and its router over a real stdio child (`tests/fixtures/echo_server.py`).

use std::time::Duration;

use axum::{
    Router,
    body::Body,
    http::{Request, StatusCode},
    routing::post,
};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use super::*;
use crate::{
    auth::ApiKeys,
    backend::stdio::StdioBackend,
    principal::Principal,
    ratelimit::{KeyBy, RateLimitPolicy},
};

const KEY: &str = "stack-test-key";
const ORIGIN: &str = "https://app.example";
const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/echo_server.py");

fn stack() -> McpStack {
    McpStack::new()
        .browser(AllowedOrigins::new().allow(ORIGIN).unwrap())
        .auth(McpAuthLayer::new(
            ApiKeys::new().key(KEY, Principal::new("alice")),
        ))
        .inspect(McpInspectLayer::new().max_body_bytes(1024))
        .rate_limit(McpRateLimitLayer::new(
            RateLimitPolicy::new()
                .key(KeyBy::Principal)
                .default_limit("2/min".parse().unwrap()),
        ))
        .resource_metadata(
            ProtectedResourceMetadata::new()
                .resource("https://mcp.example/mcp")
                .authorization_server("https://login.example"),
        )
}

/// A plain handler behind the stack as one layer: it answers with the
/// principal it was handed.
fn layered(stack: McpStack) -> Router {
    Router::new()
        .route(
            "/mcp",
            post(|p: Option<Principal>| async move {
                p.map(|p| p.subject().to_owned()).unwrap_or_default()
            }),
        )
        .layer(stack)
}

fn ping(key: Option<&str>, body: String) -> Request<Body> {
    let mut b = Request::post("/mcp")
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream");
    if let Some(key) = key {
        b = b.header("authorization", format!("Bearer {key}"));
    }
    b.body(Body::from(body)).unwrap()
}

fn ping_body() -> String {
    json!({"jsonrpc":"2.0","id":1,"method":"ping"}).to_string()
}

async fn status_of(app: &Router, req: Request<Body>) -> StatusCode {
    app.clone().oneshot(req).await.unwrap().status()
}

#[tokio::test]
async fn preflight_is_answered_before_authentication() {
    let app = layered(stack());
    let preflight = Request::options("/mcp")
        .header("origin", ORIGIN)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, mcp-session-id",
        )
        .body(Body::empty())
        .unwrap();
    let res = app.clone().oneshot(preflight).await.unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    assert_eq!(res.headers()["access-control-allow-origin"], ORIGIN);
}

#[tokio::test]
async fn foreign_origin_is_refused_before_authentication() {
    let app = layered(stack());
    let mut req = ping(None, ping_body());
    req.headers_mut()
        .insert("origin", "https://evil.example".parse().unwrap());
    assert_eq!(status_of(&app, req).await, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn authentication_comes_before_the_body_is_read() {
    let app = layered(stack());
    let big = "x".repeat(4096);
    // without a credential, the oversized body is never read: 401, not 413
    assert_eq!(
        status_of(&app, ping(None, big.clone())).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status_of(&app, ping(Some(KEY), big)).await,
        StatusCode::PAYLOAD_TOO_LARGE
    );
}

#[tokio::test]
async fn rate_limits_count_the_authenticated_principal() {
    let app = layered(stack());
    for _ in 0..2 {
        let res = app.clone().oneshot(ping(Some(KEY), ping_body())).await;
        let res = res.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let body = res.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"alice");
    }
    assert_eq!(
        status_of(&app, ping(Some(KEY), ping_body())).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // refused by authentication: never counted against anyone
    assert_eq!(
        status_of(&app, ping(Some("wrong"), ping_body())).await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn the_default_stack_has_no_authentication() {
    let app = layered(McpStack::new());
    assert_eq!(
        status_of(&app, ping(None, ping_body())).await,
        StatusCode::OK
    );
}

fn echo_backend() -> StdioBackend {
    StdioBackend::builder("python3")
        .args(["-u", FIXTURE])
        .grace_period(Duration::from_millis(200))
        .build()
        .unwrap()
}

#[tokio::test]
async fn metadata_is_served_outside_authentication() {
    let app = stack().serve(echo_backend());
    let res = app
        .clone()
        .oneshot(
            Request::get("/.well-known/oauth-protected-resource/mcp")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value =
        serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(body["resource"], "https://mcp.example/mcp");
}

#[tokio::test]
async fn serve_mounts_both_transports_and_sessions_close_them() {
    let stack = McpStack::new().sessions(SessionLayer::new().capture_param("service"));
    let streamable = StreamableHttp::new(echo_backend()).json_response(true);
    let sse = Sse::new(echo_backend());
    let app = stack.router(streamable.clone(), sse);

    let init = json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
        "protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}});
    let res = app
        .clone()
        .oneshot(ping(None, init.to_string()))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let sid = res.headers()["mcp-session-id"].to_str().unwrap().to_owned();
    assert_eq!(streamable.session_count(), 1);

    // the legacy SSE endpoint is mounted beside it
    let sse_res = app
        .clone()
        .oneshot(
            Request::get("/sse")
                .header("accept", "text/event-stream")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(sse_res.status(), StatusCode::OK);
    drop(sse_res);

    // DELETE through the stack ends the session in the transport
    let res = app
        .clone()
        .oneshot(
            Request::delete("/mcp")
                .header("mcp-session-id", &sid)
                .header("mcp-protocol-version", "2025-06-18")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    assert_eq!(streamable.session_count(), 0);
}

#[tokio::test]
async fn a_parameter_the_session_layer_captures_is_session_data_not_a_credential() {
    let with_token = |stack: McpStack| async move {
        let app = layered(stack);
        let mut req = ping(Some(KEY), ping_body());
        *req.uri_mut() = "/mcp?token=ghp_user_token".parse().unwrap();
        app.oneshot(req).await.unwrap()
    };
    // not declared anywhere: refused, and the refusal names both ways out
    let refused = with_token(stack()).await;
    assert!(refused.status().is_client_error(), "{}", refused.status());
    let challenge = refused.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.contains("--api-key-query-param") && challenge.contains("--capture-param"),
        "{challenge}"
    );
    // captured by the session layer: accepted, and the key in the header authenticates
    let captured = with_token(stack().sessions(SessionLayer::new().capture_param("token"))).await;
    assert_eq!(captured.status(), StatusCode::OK);
}
