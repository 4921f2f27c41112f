#![allow(clippy::unwrap_used, reason = "tests")]

use axum::{Router, body::Body, routing::post};
use http::{Request, StatusCode};
use tower::ServiceExt;

use super::*;

fn app(origins: AllowedOrigins) -> Router {
    Router::new()
        .route(
            "/mcp",
            post(|| async { ([("mcp-session-id", "abc")], "ok") }),
        )
        .layer(OriginGuardLayer::new(origins.clone()))
        .layer(mcp_cors(origins))
}

fn preflight(origin: &str) -> Request<Body> {
    Request::options("/mcp")
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type, mcp-session-id, mcp-protocol-version",
        )
        .body(Body::empty())
        .unwrap()
}

#[tokio::test]
async fn preflight_from_an_allowed_origin_lists_the_mcp_methods_and_headers() {
    let res = app(AllowedOrigins::new()
        .allow("https://app.example.com")
        .unwrap())
    .oneshot(preflight("https://app.example.com"))
    .await
    .unwrap();
    assert!(res.status().is_success());
    let h = res.headers();
    assert_eq!(h["access-control-allow-origin"], "https://app.example.com");
    let methods = h["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .to_ascii_uppercase();
    for m in ["GET", "POST", "DELETE", "OPTIONS"] {
        assert!(methods.contains(m), "{methods}");
    }
    let headers = h["access-control-allow-headers"].to_str().unwrap();
    for name in MCP_ALLOW_HEADERS {
        assert!(headers.contains(name), "{name} missing from {headers}");
    }
    assert!(h.get("access-control-allow-credentials").is_none());
}

#[tokio::test]
async fn preflight_from_another_origin_gets_no_cors_grant() {
    let res = app(AllowedOrigins::new()
        .allow("https://app.example.com")
        .unwrap())
    .oneshot(preflight("https://evil.example"))
    .await
    .unwrap();
    assert!(res.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn responses_expose_the_session_id_and_rate_limit_headers() {
    let req = Request::post("/mcp")
        .header("origin", "https://a.tenant.example")
        .body(Body::empty())
        .unwrap();
    let res = app(AllowedOrigins::new()
        .allow("https://*.tenant.example")
        .unwrap())
    .oneshot(req)
    .await
    .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let exposed = res.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap();
    for name in MCP_EXPOSE_HEADERS {
        assert!(exposed.contains(name), "{name} missing from {exposed}");
    }
}

#[tokio::test]
async fn a_present_origin_that_is_not_allowed_is_403_with_a_json_rpc_body() {
    let req = Request::post("/mcp")
        .header("origin", "http://attacker.example:8080")
        .body(Body::empty())
        .unwrap();
    let res = app(AllowedOrigins::loopback()).oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let body = axum::body::to_bytes(res.into_body(), 4096).await.unwrap();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["jsonrpc"], "2.0");
    assert!(v["error"]["message"].as_str().unwrap().contains("Origin"));
}

#[tokio::test]
async fn requests_without_origin_pass_and_null_origin_does_not() {
    let app = app(AllowedOrigins::loopback());
    let ok = Request::post("/mcp").body(Body::empty()).unwrap();
    assert_eq!(
        app.clone().oneshot(ok).await.unwrap().status(),
        StatusCode::OK
    );
    let null = Request::post("/mcp")
        .header("origin", "null")
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        app.oneshot(null).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn the_host_allowlist_refuses_rebinding_names() {
    let app = Router::new().route("/mcp", post(|| async { "ok" })).layer(
        OriginGuardLayer::new(AllowedOrigins::loopback()).allow_hosts(["localhost", "127.0.0.1"]),
    );
    let good = Request::post("/mcp")
        .header("host", "127.0.0.1:8080")
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        app.clone().oneshot(good).await.unwrap().status(),
        StatusCode::OK
    );
    let bad = Request::post("/mcp")
        .header("host", "rebind.attacker.example:8080")
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        app.oneshot(bad).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
}

#[test]
fn origin_patterns_are_parsed_strictly() {
    for bad in [
        "example.com",
        "https://",
        "https://a.com/path",
        "ftp://a.com",
        "https://*",
        "https://a*.com",
    ] {
        assert!(AllowedOrigins::new().allow(bad).is_err(), "{bad}");
    }
    let o = AllowedOrigins::new()
        .allow("https://App.Example.com:443/")
        .unwrap()
        .allow("http://localhost:3000")
        .unwrap();
    assert!(o.is_allowed("https://app.example.com"));
    assert!(o.is_allowed("http://localhost:3000"));
    assert!(!o.is_allowed("http://localhost:3001"));
    assert!(!o.is_allowed("https://app.example.com.evil.example"));
    let loop6 = AllowedOrigins::loopback();
    assert!(loop6.is_allowed("http://[::1]:8080"));
    assert!(!loop6.is_allowed("http://localhost.evil.example"));
}

#[tokio::test]
async fn every_answer_varies_on_origin_and_only_an_allowed_origin_gets_a_grant() {
    let origins = AllowedOrigins::new()
        .allow("https://app.example.com")
        .unwrap();
    let app = app(origins.clone());
    // no Origin (an SDK client): no grant, but caches must still key on Origin
    let plain = Request::post("/mcp").body(Body::empty()).unwrap();
    let res = app.clone().oneshot(plain).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers().get("access-control-allow-origin").is_none());
    assert!(res.headers().get("access-control-expose-headers").is_none());
    let vary = res.headers()["vary"].to_str().unwrap();
    assert!(vary.contains("origin"), "{vary}");

    // a preflight from elsewhere learns nothing about methods or headers
    let res = app
        .clone()
        .oneshot(preflight("https://evil.example"))
        .await
        .unwrap();
    for name in [
        "access-control-allow-methods",
        "access-control-allow-headers",
        "access-control-max-age",
    ] {
        assert!(res.headers().get(name).is_none(), "{name}");
    }
    assert!(res.headers().contains_key("vary"));

    // an allowed one gets the cache time, and credentials when configured
    let app = Router::new().route("/mcp", post(|| async { "ok" })).layer(
        McpCors::new(origins)
            .allow_credentials(true)
            .max_age(std::time::Duration::from_secs(600))
            .into_layer(),
    );
    let res = app
        .clone()
        .oneshot(preflight("https://app.example.com"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["access-control-max-age"], "600");
    assert_eq!(res.headers()["access-control-allow-credentials"], "true");
    let post = Request::post("/mcp")
        .header("origin", "https://app.example.com")
        .body(Body::empty())
        .unwrap();
    let res = app.oneshot(post).await.unwrap();
    assert_eq!(res.headers()["access-control-allow-credentials"], "true");
    assert_eq!(
        res.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
}
