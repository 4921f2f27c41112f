//! Revision 2026-07-28 sent as it is to a stdio child that speaks it, through the binary in
//! per-session mode (2026-07-28 on by default).
//!
//! The child is the official Python SDK's own server over stdio (`mcp` 2.3 serves 2026-07-28 and
//! the handshake revisions, the era picked by a connection's first request):
//! `tests/clients/py_2026_stdio_server.py`, with a tool, a tool that elicits (its own
//! `InputRequiredResult` at 2026-07-28), a tool that reads `MCP_USER` from its environment, and
//! a resource. It logs every line it receives (with its pid) to a file the tests read.
//!
//! - direct: two users at once, each with the SDK's `mcp.Client` (`tests/clients/py_stdio26.py`)
//!   negotiating 2026-07-28: the elicitation round trip passes through (the child's own
//!   `InputRequiredResult` and `requestState`, the client's retry completes), each user sees
//!   their own `MCP_USER` on every call, and the children never received `initialize`: every
//!   request carried the 2026-07-28 envelope. One probe child, then one child per user; an
//!   unknown method gets the child's `-32601` with 404;
//! - `--stdio-protocol-version 2025-11-25`: the same client works through the bridge, the child
//!   is initialized at 2025-11-25, never probed, and receives no 2026-07-28 envelope;
//! - `--stdio-protocol-version 2026-07-28` (no probe): `subscriptions/listen` goes as it is to a
//!   child of its own, whose acknowledgement is the first event (with the client's subscription
//!   id), and closing the stream ends that child.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::{collections::BTreeMap, path::PathBuf, thread};

use reqwest::StatusCode;
use serde_json::{Value, json};
use tests::{Server, clients_dir, python, script_report};

const V2026: &str = "2026-07-28";

/// A fresh directory of this test: the API keys file and the children's log.
fn test_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mcp-bastion-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The binary in front of the Python stdio server in per-session mode, users alice and bob by
/// API key, each child's `MCP_USER` their subject; children log to `log`.
fn bastion(dir: &std::path::Path, log: &std::path::Path, extra: &[&str]) -> Server {
    let keys = dir.join("keys.json");
    let entries = json!([
        {"key": "k-stdio26-alice-7c1d", "subject": "alice", "id": "alice-key"},
        {"key": "k-stdio26-bob-2e9a", "subject": "bob", "id": "bob-key"},
    ]);
    std::fs::write(&keys, entries.to_string()).unwrap();
    let mut args = vec![
        "--session-mode",
        "per-session",
        "--api-keys-file",
        keys.to_str().unwrap(),
        "--principal-env",
        "MCP_USER=subject",
    ];
    args.extend_from_slice(extra);
    let command = [
        python(),
        clients_dir()
            .join("py_2026_stdio_server.py")
            .to_string_lossy()
            .into_owned(),
        "--log".to_owned(),
        log.to_string_lossy().into_owned(),
    ];
    Server::bastion(&args, &command)
}

/// What the children received: one JSON object per line (pid, method, id, protocolVersion).
fn received(log: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn client(url: &str, key: &str, elicit: &str) -> Value {
    script_report(
        "py_stdio26.py",
        &[
            "--url",
            url,
            "--header",
            &format!("Authorization: Bearer {key}"),
            "--elicit",
            elicit,
            "--whoami",
            "2",
        ],
    )
}

/// A full run of one user: 2026-07-28 or not, the child's tools, the elicitation, their env.
fn assert_served(summary: &Value, user: &str, name: &str) {
    assert_eq!(summary["step"], "done", "{summary}");
    assert_eq!(summary["server"], "py-2026-stdio", "{summary}");
    assert_eq!(
        summary["tools"],
        json!(["ask_name", "echo", "whoami"]),
        "{summary}"
    );
    assert_eq!(summary["echo"], "echo: through", "{summary}");
    assert_eq!(summary["askName"], format!("hello, {name}"), "{summary}");
    assert_eq!(
        summary["askNameLoop"],
        format!("hello, {name}"),
        "{summary}"
    );
    assert_eq!(summary["whoami"], json!([user, user]), "{summary}");
    assert_eq!(
        summary["resource"], "hello from the 2026 stdio server",
        "{summary}"
    );
}

#[test]
fn a_2026_client_reaches_a_2026_stdio_child_as_it_is() {
    let dir = test_dir("stdio26-direct");
    let log = dir.join("received.jsonl");
    let server = bastion(&dir, &log, &[]);
    let url = server.url("/mcp");
    let users = [
        ("k-stdio26-alice-7c1d", "alice", "Ada"),
        ("k-stdio26-bob-2e9a", "bob", "Bo"),
    ];
    let runs: Vec<_> = users
        .iter()
        .map(|&(key, _, name)| {
            let url = url.clone();
            thread::spawn(move || client(&url, key, name))
        })
        .collect();
    for (&(_, user, name), run) in users.iter().zip(runs) {
        let summary = run.join().unwrap();
        assert_served(&summary, user, name);
        assert_eq!(summary["protocolVersion"], V2026, "{summary}");
        // the child's own InputRequiredResult reached the client, and its retry completed
        let state = tests::assert_input_round_trip(&summary);
        assert!(
            state.starts_with("v1."),
            "the child's sealed requestState: {summary}"
        );
    }

    // an unknown method: the child's own error, with the status 2026-07-28 gives it
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let body = json!({"jsonrpc": "2.0", "id": 5, "method": "no/such-method", "params": {
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": V2026,
                "io.modelcontextprotocol/clientCapabilities": {},
                "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "0"},
            }}});
            let res = reqwest::Client::new()
                .post(&url)
                .header("content-type", "application/json")
                .header("accept", "application/json, text/event-stream")
                .header("authorization", "Bearer k-stdio26-alice-7c1d")
                .header("mcp-protocol-version", V2026)
                .header("mcp-method", "no/such-method")
                .body(body.to_string())
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::NOT_FOUND);
            let answer: Value = res.json().await.unwrap();
            assert_eq!(answer["id"], 5, "{answer}");
            assert_eq!(answer["error"]["code"], -32601, "{answer}");
        });

    // what the children received: no handshake, the 2026-07-28 envelope on every request
    let seen = received(&log);
    assert!(!seen.is_empty(), "the children received nothing");
    for line in &seen {
        let method = line["method"].as_str().unwrap_or("");
        assert!(
            !method.starts_with("initialize") && method != "notifications/initialized",
            "a child received the handshake: {line}"
        );
        if line.get("id").is_some_and(|id| !id.is_null()) && !method.is_empty() {
            assert_eq!(line["protocolVersion"], V2026, "{line}");
        }
    }
    // the probe: a child of its own, asked server/discover only; then one warm child per user
    // served all of that user's requests (ids are the engine's own on the child side)
    let mut by_child: BTreeMap<u64, Vec<&str>> = BTreeMap::new();
    for line in &seen {
        by_child
            .entry(line["pid"].as_u64().unwrap())
            .or_default()
            .push(line["method"].as_str().unwrap_or(""));
    }
    assert_eq!(by_child.len(), 3, "probe, alice, bob: {by_child:?}");
    let probes = by_child
        .values()
        .filter(|methods| *methods == &["server/discover"])
        .count();
    assert_eq!(probes, 1, "{by_child:?}");
    assert_eq!(
        by_child
            .values()
            .filter(|methods| methods.iter().filter(|m| **m == "tools/call").count() == 7)
            .count(),
        2,
        "echo, ask_name twice, its retry twice, whoami twice, per user: {by_child:?}"
    );
}

#[test]
fn pinned_to_2025_11_25_a_2026_client_is_bridged() {
    let dir = test_dir("stdio26-bridged");
    let log = dir.join("received.jsonl");
    let server = bastion(&dir, &log, &["--stdio-protocol-version", "2025-11-25"]);
    let summary = client(&server.url("/mcp"), "k-stdio26-alice-7c1d", "Ada");
    assert_served(&summary, "alice", "Ada");
    assert_eq!(summary["protocolVersion"], V2026, "{summary}");

    let seen = received(&log);
    assert!(
        seen.iter().any(|l| l["method"] == "initialize"),
        "the bridge initializes its links: {seen:?}"
    );
    assert!(
        seen.iter().all(|l| l["method"] != "server/discover"),
        "a pinned child is not probed (and the bridge answers server/discover): {seen:?}"
    );
    assert!(
        seen.iter().all(|l| l["protocolVersion"].is_null()),
        "a bridged child received the 2026-07-28 envelope: {seen:?}"
    );
}

#[test]
fn a_subscriptions_listen_stream_goes_to_a_child_of_its_own_and_ends_with_the_stream() {
    use futures_util::StreamExt;

    let dir = test_dir("stdio26-listen");
    let log = dir.join("received.jsonl");
    let server = bastion(&dir, &log, &["--stdio-protocol-version", "2026-07-28"]);
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let body = json!({"jsonrpc": "2.0", "id": 21, "method": "subscriptions/listen", "params": {
                "notifications": {"toolsListChanged": true},
                "_meta": {
                    "io.modelcontextprotocol/protocolVersion": V2026,
                    "io.modelcontextprotocol/clientCapabilities": {},
                    "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "0"},
                }}});
            let res = reqwest::Client::new()
                .post(server.url("/mcp"))
                .header("content-type", "application/json")
                .header("accept", "application/json, text/event-stream")
                .header("authorization", "Bearer k-stdio26-alice-7c1d")
                .header("mcp-protocol-version", V2026)
                .header("mcp-method", "subscriptions/listen")
                .body(body.to_string())
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::OK);
            let mut events = Box::pin(
                sse_stream::SseStream::from_bytes_stream(res.bytes_stream()).filter_map(
                    |e| async move { serde_json::from_str::<Value>(&e.ok()?.data?).ok() },
                ),
            );
            // a hang guard, not an assertion on time
            let guard = std::time::Duration::from_secs(30);
            let ack = tokio::time::timeout(guard, events.next())
                .await
                .unwrap()
                .unwrap();
            // the child's own acknowledgement, as it sent it
            assert_eq!(
                ack["method"], "notifications/subscriptions/acknowledged",
                "{ack}"
            );
            assert_eq!(
                ack["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"], 21,
                "{ack}"
            );
            assert_eq!(server.children().len(), 1, "the listen's own child");
            drop(events);
        });
    // closing the stream ends the listen's child; pinned, nothing was probed
    server.wait_for_children(0, std::time::Duration::from_secs(10));
    // it received the listen request as it was, then at most its cancellation
    let seen = received(&log);
    assert_eq!(seen[0]["method"], "subscriptions/listen", "{seen:?}");
    assert_eq!(seen[0]["protocolVersion"], V2026, "{seen:?}");
    assert!(
        seen[1..]
            .iter()
            .all(|l| l["method"] == "notifications/cancelled"),
        "{seen:?}"
    );
}
