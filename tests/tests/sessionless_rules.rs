//! The request rules of revision 2026-07-28, through the binary (2026-07-28 on by default) in
//! front of server-everything over stdio: each rule answered with its HTTP status and JSON-RPC
//! error, and a well-formed request served; with `--no-2026`, every 2026-07-28 request is
//! refused as an unsupported version.
#![allow(clippy::unwrap_used, reason = "tests")]

use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use tests::{Server, everything_stdio};

const V2026: &str = "2026-07-28";

fn meta() -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": V2026,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "rules", "version": "0"},
    })
}

/// POSTs one 2026-07-28 request (`version` in the header): its status and its JSON-RPC message
/// (the body is JSON, or an SSE stream whose data is the answer).
async fn send(
    http: &Client,
    server: &Server,
    version: &str,
    method: &str,
    params: Value,
) -> (StatusCode, Value) {
    let mut req = http
        .post(server.url("/mcp"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", version)
        .header("mcp-method", method);
    if let Some(name) = params.get("name").and_then(Value::as_str) {
        req = req.header("mcp-name", name);
    }
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": params});
    let res = req.body(body.to_string()).send().await.unwrap();
    tests::sse::answer(res).await
}

#[test]
fn each_request_rule_of_2026_07_28_is_answered_with_its_status_and_error() {
    let server = Server::bastion(&["--session-mode", "shared"], &everything_stdio());
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let http = Client::new();

            // a well-formed request is served
            let (status, ok) = send(
                &http,
                &server,
                V2026,
                "tools/list",
                json!({"_meta": meta()}),
            )
            .await;
            assert_eq!(status, StatusCode::OK, "{ok}");
            assert!(ok["result"]["tools"].is_array(), "{ok}");

            // _meta without the client capabilities: -32602, 400
            let (status, e) = send(
                &http,
                &server,
                V2026,
                "tools/list",
                json!({"_meta": {"io.modelcontextprotocol/protocolVersion": V2026}}),
            )
            .await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{e}");
            assert_eq!(e["error"]["code"], -32602, "{e}");
            assert_eq!(e["id"], 7, "the error names the request: {e}");

            // a removed method, and one the backend does not know: -32601, 404
            for method in ["ping", "resources/subscribe", "no/such-method"] {
                let (status, e) =
                    send(&http, &server, V2026, method, json!({"_meta": meta()})).await;
                assert_eq!(status, StatusCode::NOT_FOUND, "{method}: {e}");
                assert_eq!(e["error"]["code"], -32601, "{method}: {e}");
            }

            // an unsupported version: -32022, 400, naming the supported ones and the requested one
            let (status, e) = send(
                &http,
                &server,
                "2099-01-01",
                "tools/list",
                json!({"_meta": meta()}),
            )
            .await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{e}");
            assert_eq!(e["error"]["code"], -32022, "{e}");
            assert_eq!(e["error"]["data"]["requested"], "2099-01-01", "{e}");
            assert!(
                e["error"]["data"]["supported"]
                    .as_array()
                    .is_some_and(|v| !v.is_empty()),
                "{e}"
            );
        });
}

#[test]
fn with_no_2026_a_2026_request_is_refused_naming_the_handshake_revisions() {
    let server = Server::bastion(
        &["--session-mode", "shared", "--no-2026"],
        &everything_stdio(),
    );
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let http = Client::new();
            for method in ["server/discover", "tools/list"] {
                let (status, e) =
                    send(&http, &server, V2026, method, json!({"_meta": meta()})).await;
                assert_eq!(status, StatusCode::BAD_REQUEST, "{method}: {e}");
                assert_eq!(e["error"]["code"], -32022, "{method}: {e}");
                assert_eq!(e["id"], 7, "{method}: {e}");
                let supported = e["error"]["data"]["supported"].as_array().unwrap();
                assert!(supported.contains(&json!("2025-11-25")), "{e}");
                assert!(!supported.contains(&json!(V2026)), "{e}");
            }
        });
}
