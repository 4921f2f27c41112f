//! Revision 2026-07-28 passed through to an upstream that speaks it, through the binary
//! (`--upstream URL`, 2026-07-28 on by default).
//!
//! The upstream is the official Python SDK's own server (`mcp` 2.3 serves 2026-07-28 and the
//! handshake revisions on one endpoint): `tests/clients/py_2026_server.py`, with a tool, a tool
//! that elicits (an `InputRequiredResult` round trip at 2026-07-28) and a resource, started on a
//! loopback port. Between the binary and it sits the recording reverse proxy of
//! [`tests::upstream`], so the tests see every header that reached the upstream.
//!
//! - pass-through: the SDK's `mcp.Client` (`tests/clients/py_passthru.py`) negotiates
//!   2026-07-28, lists and calls tools, does the elicitation round trip (the upstream's
//!   `InputRequiredResult` reaches it, its retry with `inputResponses` and `requestState`
//!   completes), reads the resource; the upstream received every request with the 2026 headers
//!   and the operator's credential, never the client's `Authorization`, and no handshake; raw
//!   requests get the same status and body through the proxy as directly (an
//!   `InputRequiredResult`, a `-32601` 404, a `-32602` 400);
//! - a `subscriptions/listen` stream passes through: the upstream's acknowledgement first, then
//!   a list-changed notification tagged with the subscription id, as they are;
//! - `--upstream-protocol-version 2025-11-25`: the same client works through the bridge, and
//!   the upstream is spoken to at 2025-11-25 only;
//! - a 2025 client (the TypeScript SDK, sessions) keeps working through the default binary over
//!   stdio server-everything.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::{
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use reqwest::StatusCode;
use serde_json::{Value, json};
use tests::{
    ClientRun, Sdk, Server, Transport, assert_full_summary, clients_dir, everything_stdio, python,
    upstream::{RecordingProxy, Seen, py_2026_server},
};

const V2026: &str = "2026-07-28";
/// The client's own credential at mcp-bastion: it must never reach the upstream.
const CLIENT_KEY: &str = "mcpb_client_key_passthru_4e1d";
/// The operator's header for the upstream: it must reach it on every request.
const STATIC_HEADER: (&str, &str) = ("x-upstream-static", "static-passthru-9a0c");

/// The binary in front of `upstream_url`, clients authenticated by [`CLIENT_KEY`].
fn bastion(upstream_url: &str, extra: &[&str]) -> Server {
    let header = format!("{}: {}", STATIC_HEADER.0, STATIC_HEADER.1);
    let mut args = vec![
        "--upstream",
        upstream_url,
        "--upstream-header",
        &header,
        "--api-key",
        CLIENT_KEY,
    ];
    args.extend_from_slice(extra);
    Server::bastion_args_with_env(&args, &[])
}

/// Runs `tests/clients/py_passthru.py` against `url` with the client's key; its JSON summary.
fn py_client(url: &str, mode: &str, elicit: Option<&str>, server: &Server) -> Value {
    let mut cmd = Command::new(python());
    cmd.arg(clients_dir().join("py_passthru.py"))
        .args(["--url", url, "--mode", mode])
        .args(["--header", &format!("Authorization: Bearer {CLIENT_KEY}")])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(name) = elicit {
        cmd.args(["--elicit", name]);
    }
    let mut child = cmd.spawn().unwrap();
    // a hang guard, not an assertion on time
    let deadline = Instant::now() + tests::CLIENT_TIMEOUT;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "py_passthru.py failed: {stdout}\n{}\n--- proxy log ---\n{}",
        String::from_utf8_lossy(&out.stderr),
        server.logs()
    );
    serde_json::from_str(stdout.trim()).unwrap()
}

/// POSTs one 2026-07-28 request to `url`: its status and its JSON-RPC answer.
async fn send(url: &str, method: &str, params: Value) -> (StatusCode, Value) {
    let mut req = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("authorization", format!("Bearer {CLIENT_KEY}"))
        .header("mcp-protocol-version", V2026)
        .header("mcp-method", method);
    if let Some(name) = params.get("name").and_then(Value::as_str) {
        req = req.header("mcp-name", name);
    }
    let body = json!({"jsonrpc": "2.0", "id": 11, "method": method, "params": params});
    let res = req.body(body.to_string()).send().await.unwrap();
    tests::sse::answer(res).await
}

fn meta(capabilities: Value) -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": V2026,
        "io.modelcontextprotocol/clientCapabilities": capabilities,
        "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "0"},
    })
}

/// The client's summary of a full run: 2026-07-28, the upstream's tools, echo, the resource.
fn assert_served(summary: &Value) {
    assert_eq!(summary["protocolVersion"], V2026, "{summary}");
    assert_eq!(summary["server"], "py-2026-upstream", "{summary}");
    assert_eq!(
        summary["tools"],
        json!(["ask_name", "echo", "touch_tools"]),
        "{summary}"
    );
    assert_eq!(summary["echo"], "echo: through", "{summary}");
    assert_eq!(
        summary["resource"], "hello from the 2026 upstream",
        "{summary}"
    );
}

/// No client credential reached the upstream; the operator's header did, on every request.
fn assert_credentials_isolated(seen: &[Seen]) {
    assert!(!seen.is_empty(), "the upstream saw no request");
    for s in seen {
        for (name, value) in &s.headers {
            assert!(
                !value.contains(CLIENT_KEY),
                "the client's key reached the upstream in {name}: {s:?}"
            );
        }
        assert_eq!(s.header(STATIC_HEADER.0), Some(STATIC_HEADER.1), "{s:?}");
    }
}

#[test]
fn a_2026_client_is_passed_through_to_a_2026_upstream_unchanged() {
    let upstream = py_2026_server();
    let recording = RecordingProxy::start(upstream.base_url().to_owned());
    let server = bastion(&recording.url("/mcp"), &[]);

    let summary = py_client(&server.url("/mcp"), "auto", Some("Ada"), &server);
    assert_served(&summary);
    // the upstream's InputRequiredResult reached the client, and its retry completed
    tests::assert_input_round_trip(&summary);
    assert_eq!(summary["askName"], "hello, Ada", "{summary}");
    assert_eq!(summary["askNameLoop"], "hello, Ada", "{summary}");

    // what the upstream received: 2026-07-28 requests as they were, no handshake, no session
    let seen = recording.seen();
    assert_credentials_isolated(&seen);
    for s in &seen {
        assert_eq!(s.method, "POST", "{s:?}");
        assert_eq!(s.header("mcp-protocol-version"), Some(V2026), "{s:?}");
        assert!(s.header("mcp-method").is_some(), "{s:?}");
        assert!(s.header("mcp-session-id").is_none(), "{s:?}");
    }
    let methods: Vec<_> = seen.iter().filter_map(|s| s.header("mcp-method")).collect();
    assert!(!methods.contains(&"initialize"), "{methods:?}");
    for (method, name) in [("tools/call", "echo"), ("tools/call", "ask_name")] {
        assert!(
            seen.iter()
                .any(|s| s.header("mcp-method") == Some(method)
                    && s.header("mcp-name") == Some(name)),
            "no {method} {name} with its Mcp-Name upstream: {seen:?}"
        );
    }
    assert!(
        seen.iter()
            .any(|s| s.header("mcp-method") == Some("resources/read")
                && s.header("mcp-name") == Some("note://greeting")),
        "{seen:?}"
    );

    // raw requests: the same status and answer through the proxy as directly
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let direct = upstream.url("/mcp");
            let proxied = server.url("/mcp");
            let ask = json!({"name": "ask_name", "arguments": {},
                "_meta": meta(json!({"elicitation": {}}))});
            let (s1, mut a1) = send(&direct, "tools/call", ask.clone()).await;
            let (s2, mut a2) = send(&proxied, "tools/call", ask).await;
            assert_eq!((s1, s2), (StatusCode::OK, StatusCode::OK), "{a1}\n{a2}");
            assert_eq!(a2["result"]["resultType"], "input_required", "{a2}");
            // the request state is the upstream's own sealed state, new on each call
            for a in [&mut a1, &mut a2] {
                let state = a["result"].as_object_mut().unwrap().remove("requestState");
                assert!(state.is_some_and(|s| s.is_string()), "{a}");
            }
            assert_eq!(a1, a2, "an InputRequiredResult changed on its way");

            let unknown = json!({"_meta": meta(json!({}))});
            let (s1, a1) = send(&direct, "no/such-method", unknown.clone()).await;
            let (s2, a2) = send(&proxied, "no/such-method", unknown).await;
            assert_eq!(s1, StatusCode::NOT_FOUND, "{a1}");
            assert_eq!((s1, &a1), (s2, &a2), "an unknown method's answer changed");

            let no_meta = json!({});
            let (s1, a1) = send(&direct, "tools/list", no_meta.clone()).await;
            let (s2, a2) = send(&proxied, "tools/list", no_meta).await;
            assert_eq!(s1, StatusCode::BAD_REQUEST, "{a1}");
            assert_eq!(a1["error"]["code"], -32602, "{a1}");
            assert_eq!((s1, &a1), (s2, &a2), "an invalid request's answer changed");
        });
}

#[test]
fn with_the_upstream_pinned_to_2025_11_25_a_2026_client_is_bridged() {
    let upstream = py_2026_server();
    let recording = RecordingProxy::start(upstream.base_url().to_owned());
    let server = bastion(
        &recording.url("/mcp"),
        &["--upstream-protocol-version", "2025-11-25"],
    );
    let summary = py_client(&server.url("/mcp"), "auto", None, &server);
    assert_served(&summary);

    let seen = recording.seen();
    assert_credentials_isolated(&seen);
    assert!(
        seen.iter()
            .all(|s| s.header("mcp-protocol-version") != Some(V2026)),
        "a request reached the upstream at 2026-07-28: {seen:?}"
    );
    assert!(
        seen.iter()
            .any(|s| s.header("mcp-protocol-version") == Some("2025-11-25")
                && s.header("mcp-session-id").is_some()),
        "the upstream was not spoken to in 2025-11-25 sessions: {seen:?}"
    );
}

#[test]
fn a_2025_client_still_works_through_the_default_binary() {
    let server = Server::bastion(&["--session-mode", "per-session"], &everything_stdio());
    let run = ClientRun::against(Sdk::TypeScript, Transport::Streamable, &server, "");
    let summary = run.run_ok(&server);
    assert_full_summary(&summary);
    assert_eq!(summary["protocolVersion"], "2025-11-25", "{summary}");
}

#[test]
fn a_subscriptions_listen_stream_passes_through() {
    use futures_util::StreamExt;

    let upstream = py_2026_server();
    let server = bastion(&upstream.url("/mcp"), &[]);
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let url = server.url("/mcp");
            let params = json!({"notifications": {"toolsListChanged": true}, "_meta": meta(json!({}))});
            let body = json!({"jsonrpc": "2.0", "id": 21, "method": "subscriptions/listen", "params": params});
            let res = reqwest::Client::new()
                .post(&url)
                .header("content-type", "application/json")
                .header("accept", "application/json, text/event-stream")
                .header("authorization", format!("Bearer {CLIENT_KEY}"))
                .header("mcp-protocol-version", V2026)
                .header("mcp-method", "subscriptions/listen")
                .body(body.to_string())
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::OK);
            assert!(
                res.headers()["content-type"]
                    .to_str()
                    .unwrap()
                    .starts_with("text/event-stream")
            );
            let mut events = Box::pin(sse_stream::SseStream::from_bytes_stream(res.bytes_stream())
                .filter_map(|e| async move { serde_json::from_str::<Value>(&e.ok()?.data?).ok() }));
            // a hang guard, not an assertion on time
            let guard = Duration::from_secs(30);
            let ack = tokio::time::timeout(guard, events.next()).await.unwrap().unwrap();
            assert_eq!(ack["method"], "notifications/subscriptions/acknowledged", "{ack}");
            let id = ack["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"].clone();
            assert!(!id.is_null(), "{ack}");

            let touch = json!({"name": "touch_tools", "arguments": {}, "_meta": meta(json!({}))});
            let (status, done) = send(&url, "tools/call", touch).await;
            assert_eq!(status, StatusCode::OK, "{done}");
            let changed = tokio::time::timeout(guard, events.next()).await.unwrap().unwrap();
            assert_eq!(changed["method"], "notifications/tools/list_changed", "{changed}");
            assert_eq!(
                changed["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"], id,
                "{changed}"
            );
        });
}
