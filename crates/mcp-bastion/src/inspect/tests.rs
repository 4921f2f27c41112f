use axum::{Extension, Router, body::Body, routing::post};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use super::*;

fn app() -> Router {
    Router::new()
        .route(
            "/mcp",
            post(
                |Extension(req): Extension<McpRequest>, body: String| async move {
                    json!({
                        "kind": format!("{:?}", req.kind()),
                        "method": req.method(),
                        "tool": req.tool_name(),
                        "uri": req.resource_uri(),
                        "prompt": req.prompt_name(),
                        "session": req.session_id(),
                        "count": req.messages().len(),
                        "same_body": body.as_bytes() == req.body().as_ref(),
                    })
                    .to_string()
                },
            ),
        )
        .layer(McpInspectLayer::new().max_body_bytes(256))
}

async fn send(req: Request<Body>) -> (StatusCode, Value) {
    let res = app().oneshot(req).await.unwrap();
    let status = res.status();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn post_json(body: &str) -> http::request::Builder {
    let _ = body;
    Request::post("/mcp").header("content-type", "application/json")
}

#[tokio::test]
async fn parses_tool_calls_resources_prompts_and_session() {
    let body =
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{}}}"#;
    let (status, v) = send(
        post_json(body)
            .header("mcp-session-id", "abc")
            .body(Body::from(body))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["kind"], "Request");
    assert_eq!(v["tool"], "echo");
    assert_eq!(v["session"], "abc");
    assert_eq!(v["same_body"], true);

    let body = r#"{"jsonrpc":"2.0","id":2,"method":"resources/read","params":{"uri":"file:///a"}}"#;
    let (_, v) = send(post_json(body).body(Body::from(body)).unwrap()).await;
    assert_eq!(v["uri"], "file:///a");

    let body = r#"{"jsonrpc":"2.0","id":3,"method":"prompts/get","params":{"name":"greet"}}"#;
    let (_, v) = send(
        Request::post("/mcp?sessionId=s%2F1")
            .header("content-type", "application/json; charset=utf-8")
            .body(Body::from(body))
            .unwrap(),
    )
    .await;
    assert_eq!(v["prompt"], "greet");
    assert_eq!(v["session"], "s/1");
}

#[tokio::test]
async fn wrong_content_type_is_415_with_json_rpc_body() {
    let (status, v) = send(
        Request::post("/mcp")
            .header("content-type", "text/plain")
            .body(Body::from("{}"))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(v["error"]["code"], -32600);
    assert_eq!(v["jsonrpc"], "2.0");
}

#[tokio::test]
async fn body_over_the_limit_is_413_declared_or_streamed() {
    let big = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"{}"}}"#,
        "x".repeat(300)
    );
    let (status, _) = send(post_json(&big).body(Body::from(big.clone())).unwrap()).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    // No Content-Length: the limit still holds while streaming.
    let stream = futures_util::stream::iter(
        big.into_bytes()
            .chunks(50)
            .map(|c| Ok::<_, std::io::Error>(bytes::Bytes::copy_from_slice(c)))
            .collect::<Vec<_>>(),
    );
    let (status, v) = send(post_json("").body(Body::from_stream(stream)).unwrap()).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(v["error"]["code"], -32600);
}

#[tokio::test]
async fn malformed_json_is_400_parse_error() {
    let (status, v) = send(post_json("").body(Body::from("{not json")).unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["code"], -32700);
    assert_eq!(v["id"], Value::Null);
}

#[tokio::test]
async fn non_json_rpc_shapes_are_400_invalid_request() {
    for body in [
        r#"{"id":1,"method":"x"}"#,
        r#""hello""#,
        r#"[]"#,
        r#"{"jsonrpc":"2.0","id":{},"method":"x"}"#,
    ] {
        let (status, v) = send(post_json(body).body(Body::from(body)).unwrap()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(v["error"]["code"], -32600, "{body}");
    }
}

#[tokio::test]
async fn batches_only_for_2025_03_26() {
    let batch = r#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a"}},{"jsonrpc":"2.0","method":"notifications/x"}]"#;
    let (status, v) = send(post_json(batch).body(Body::from(batch)).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["kind"], "Batch");
    assert_eq!(v["count"], 2);
    let (status, v) = send(
        post_json(batch)
            .header("mcp-protocol-version", "2025-06-18")
            .body(Body::from(batch))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["code"], -32600);
}

#[tokio::test]
async fn unsupported_protocol_version_is_400() {
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
    let (status, v) = send(
        post_json(body)
            .header("mcp-protocol-version", "1999-01-01")
            .body(Body::from(body))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["code"], -32022);
}

#[tokio::test]
async fn unsupported_version_error_carries_supported_requested_and_the_request_id() {
    let meta = r#"{"io.modelcontextprotocol/protocolVersion":"v999.0.0","io.modelcontextprotocol/clientCapabilities":{}}"#;
    let sessionless = format!(
        r#"{{"jsonrpc":"2.0","id":301,"method":"server/discover","params":{{"_meta":{meta}}}}}"#
    );
    let handshake = r#"{"jsonrpc":"2.0","id":"h","method":"tools/list"}"#.to_owned();
    for (body, id, supported) in [
        (sessionless, json!(301), json!(["2026-07-28"])),
        (
            handshake,
            json!("h"),
            json!(["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"]),
        ),
    ] {
        let (status, v) = send(
            post_json(&body)
                .header("mcp-protocol-version", "v999.0.0")
                .body(Body::from(body.clone()))
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(v["error"]["code"], -32022);
        assert_eq!(v["id"], id);
        assert_eq!(v["error"]["data"]["requested"], "v999.0.0");
        assert_eq!(v["error"]["data"]["supported"], supported, "{body}");
    }
}

#[tokio::test]
async fn header_body_mismatch_is_400_header_mismatch() {
    let body = r#"{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"echo"}}"#;
    let cases = [
        ("tools/call", Some("delete_everything")),
        ("tools/list", Some("echo")),
        ("tools/call", None),
    ];
    for (method, name) in cases {
        let mut b = post_json(body)
            .header("mcp-protocol-version", "2026-07-28")
            .header("mcp-method", method);
        if let Some(name) = name {
            b = b.header("mcp-name", name);
        }
        let (status, v) = send(b.body(Body::from(body)).unwrap()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{method} {name:?}");
        assert_eq!(v["error"]["code"], -32020);
        assert_eq!(v["id"], 9);
    }
    let (status, _) = send(
        post_json(body)
            .header("mcp-protocol-version", "2026-07-28")
            .header("mcp-method", "tools/call")
            .header("mcp-name", "echo")
            .body(Body::from(body))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn get_and_delete_pass_through_untouched() {
    let app = Router::new()
        .route("/mcp", axum::routing::get(|| async { "stream" }))
        .layer(McpInspectLayer::new());
    let res = app
        .oneshot(Request::get("/mcp").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_server_keeps_serving_after_bad_input() {
    let app = app();
    let bad = app
        .clone()
        .oneshot(post_json("").body(Body::from("{")).unwrap())
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
    let good = app
        .oneshot(post_json(body).body(Body::from(body)).unwrap())
        .await
        .unwrap();
    assert_eq!(good.status(), StatusCode::OK);
}
