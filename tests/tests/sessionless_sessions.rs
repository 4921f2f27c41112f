//! What keys on sessions, for 2026-07-28 requests (which have none), through the binary
//! (2026-07-28 on by default) in front of server-everything over stdio, in raw HTTP:
//!
//! - a rate limit keyed `session` counts each principal's 2026 requests in one bucket (two
//!   requests of one API key share it, another key has its own);
//! - captured parameters come from each request's own URL: with `--param-env` in per-session
//!   mode, `get-env` of a request to `/mcp?github_token=A` shows `A`, the next request to
//!   `/mcp?github_token=B` shows `B` (each from a pooled child of its own, ended after
//!   `--sessionless-idle-timeout`), and neither value reaches the logs.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::time::Duration;

use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use tests::{Server, everything_stdio};

const V2026: &str = "2026-07-28";

/// POSTs one 2026-07-28 `tools/call` of `tool` to `path`, with `bearer` if any: its status and
/// its JSON-RPC answer.
async fn call(
    http: &Client,
    server: &Server,
    path: &str,
    bearer: Option<&str>,
    tool: &str,
) -> (StatusCode, Value) {
    let params = json!({
        "name": tool,
        "arguments": if tool == "echo" { json!({"message": "hi"}) } else { json!({}) },
        "_meta": {
            "io.modelcontextprotocol/protocolVersion": V2026,
            "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": {"name": "sessionless-test", "version": "0"},
        },
    });
    let mut req = http
        .post(server.url(path))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", V2026)
        .header("mcp-method", "tools/call")
        .header("mcp-name", tool);
    if let Some(bearer) = bearer {
        req = req.bearer_auth(bearer);
    }
    let body = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": params});
    let res = req.body(body.to_string()).send().await.unwrap();
    tests::sse::answer(res).await
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_rate_limit_keyed_session_counts_2026_requests_per_principal() {
    let dir = std::env::temp_dir().join(format!("mcp-bastion-sless-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let keys = dir.join("keys.json");
    let entries = json!([
        {"key": "k-sless-alice-7f3a", "subject": "alice", "id": "alice-key"},
        {"key": "k-sless-bob-29c1", "subject": "bob", "id": "bob-key"},
    ]);
    std::fs::write(&keys, entries.to_string()).unwrap();
    let server = Server::bastion(
        &[
            "--session-mode",
            "shared",
            "--api-keys-file",
            keys.to_str().unwrap(),
            "--rate-limit",
            "2/min",
            "--rate-limit-key",
            "session",
        ],
        &everything_stdio(),
    );
    runtime().block_on(async {
        let http = Client::new();
        let alice = Some("k-sless-alice-7f3a");
        for _ in 0..2 {
            let (status, msg) = call(&http, &server, "/mcp", alice, "echo").await;
            assert_eq!(status, StatusCode::OK, "{msg}");
            assert!(msg.get("result").is_some(), "{msg}");
        }
        // no session id on any of them, yet they share alice's bucket
        let (status, msg) = call(&http, &server, "/mcp", alice, "echo").await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{msg}");
        // bob has his own
        let (status, msg) = call(&http, &server, "/mcp", Some("k-sless-bob-29c1"), "echo").await;
        assert_eq!(status, StatusCode::OK, "{msg}");
    });
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn captured_parameters_come_from_each_2026_requests_own_url() {
    let server = Server::bastion(
        &[
            "--session-mode",
            "per-session",
            "--param-env",
            "github_token=GITHUB_PERSONAL_ACCESS_TOKEN",
            "--sessionless-idle-timeout",
            "1s",
        ],
        &everything_stdio(),
    );
    runtime().block_on(async {
        let http = Client::new();
        for token in ["ghp_sessionlessA_51c0", "ghp_sessionlessB_e29d"] {
            let path = format!("/mcp?github_token={token}");
            let (status, msg) = call(&http, &server, &path, None, "get-env").await;
            assert_eq!(status, StatusCode::OK, "{msg}");
            let text = msg["result"]["content"][0]["text"].as_str().unwrap();
            let env: Value = serde_json::from_str(text).unwrap();
            assert_eq!(env["GITHUB_PERSONAL_ACCESS_TOKEN"], token, "{text}");
        }
    });
    let logs = server.logs();
    assert!(!logs.contains("ghp_sessionless"), "token in logs:\n{logs}");
    // each value has a pooled child of its own (never shared: the child's environment comes from
    // it), ended once idle for the idle timeout
    assert_eq!(
        server.logs().matches("spawned backend process").count(),
        2,
        "{}",
        server.logs()
    );
    server.wait_for_children(0, Duration::from_secs(10));
}
