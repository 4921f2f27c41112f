//! The bridge's pool of warm backend links and `subscriptions/listen`, for 2026-07-28 clients,
//! through the binary (`--sessionless`) in front of stdio server-everything:
//!
//! - the official Python SDK's `Client` in mode 2026-07-28 (asserted negotiated), two users with
//!   their own API keys at once, per-session mode with `--principal-env`: each sees their own
//!   environment in `get-env` on every call, and all calls of one user are served by one child
//!   (one child per user, counted by the server's spawn log lines and its child processes);
//! - `subscriptions/listen` in raw HTTP: the acknowledgement is the first event and carries the
//!   subscription id (the request's id) and the honored filter; a resource update triggered by a
//!   tool call is relayed tagged with the same id; closing the stream ends the listen's own
//!   backend connection (its per-session child exits);
//! - `subscriptions/listen` through the Python SDK's `Client.listen`, which waits for the
//!   acknowledgement and routes events by the subscription id.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::{thread, time::Duration};

use futures_util::StreamExt;
use serde_json::{Value, json};
use sse_stream::SseStream;
use tests::{Server, everything_stdio, script_report};

const V2026: &str = "2026-07-28";
const RESOURCE: &str = "demo://resource/static/document/architecture.md";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn spawned_children(server: &Server) -> usize {
    server.logs().matches("spawned backend process").count()
}

#[test]
fn each_user_keeps_one_child_with_their_own_environment_across_2026_requests() {
    let dir = std::env::temp_dir().join(format!("mcp-bastion-pool-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let keys = dir.join("keys.json");
    let entries = json!([
        {"key": "k-pool-alice-5b1e", "subject": "alice", "id": "alice-key",
         "env": {"GITHUB_TOKEN": "ghp_poolAlice_93ad"}},
        {"key": "k-pool-bob-c07f", "subject": "bob", "id": "bob-key",
         "env": {"GITHUB_TOKEN": "ghp_poolBob_1e88"}},
    ]);
    std::fs::write(&keys, entries.to_string()).unwrap();
    let server = Server::bastion(
        &[
            "--session-mode",
            "per-session",
            "--sessionless",
            "--api-keys-file",
            keys.to_str().unwrap(),
            "--principal-env",
            "GITHUB_PERSONAL_ACCESS_TOKEN=env:GITHUB_TOKEN",
        ],
        &everything_stdio(),
    );
    let url = server.url("/mcp");
    let users = [
        ("k-pool-alice-5b1e", "ghp_poolAlice_93ad"),
        ("k-pool-bob-c07f", "ghp_poolBob_1e88"),
    ];
    // both users at once, each with several requests (server/discover, then the calls)
    let runs: Vec<_> = users
        .iter()
        .map(|(key, _)| {
            let (url, header) = (url.clone(), format!("Authorization: Bearer {key}"));
            thread::spawn(move || {
                script_report(
                    "py_pool.py",
                    &[
                        "--url",
                        &url,
                        "--header",
                        &header,
                        "env",
                        "--var",
                        "GITHUB_PERSONAL_ACCESS_TOKEN",
                        "--calls",
                        "4",
                    ],
                )
            })
        })
        .collect();
    for ((_, token), run) in users.iter().zip(runs) {
        let report = run.join().unwrap();
        assert_eq!(report["ok"], true, "{report}");
        assert_eq!(report["protocolVersion"], V2026, "{report}");
        assert_eq!(
            report["values"],
            json!([token, token, token, token]),
            "{report}"
        );
    }
    // five requests each (server/discover and four calls): one child per user
    assert_eq!(spawned_children(&server), 2, "{}", server.logs());
    server.wait_for_children(2, Duration::from_secs(10));

    // and again later: the same warm children serve them
    let report = script_report(
        "py_pool.py",
        &[
            "--url",
            &url,
            "--header",
            "Authorization: Bearer k-pool-alice-5b1e",
            "env",
            "--var",
            "GITHUB_PERSONAL_ACCESS_TOKEN",
            "--calls",
            "2",
        ],
    );
    assert_eq!(
        report["values"],
        json!([users[0].1, users[0].1]),
        "{report}"
    );
    assert_eq!(spawned_children(&server), 2, "{}", server.logs());
    // the pool's gauge: one link per user, idle now
    let metrics = runtime().block_on(async {
        let res = reqwest::Client::new()
            .get(server.url("/metrics"))
            .bearer_auth(users[0].0)
            .send()
            .await
            .unwrap();
        res.text().await.unwrap()
    });
    assert!(
        metrics.lines().any(|l| l == "mcp_sessionless_links_open 2"),
        "{metrics}"
    );
    let logs = server.logs();
    assert!(!logs.contains("ghp_pool"), "a token in the logs:\n{logs}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// POSTs a 2026-07-28 request; the response (not read).
async fn post(
    http: &reqwest::Client,
    server: &Server,
    id: Value,
    method: &str,
    name: Option<&str>,
    mut params: Value,
) -> reqwest::Response {
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": V2026,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "pool-test", "version": "0"},
    });
    let mut req = http
        .post(server.url("/mcp"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", V2026)
        .header("mcp-method", method);
    if let Some(name) = name {
        req = req.header("mcp-name", name);
    }
    let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
    req.body(body.to_string()).send().await.unwrap()
}

/// The JSON messages of an SSE response, as they arrive.
fn messages(res: reqwest::Response) -> impl futures_util::Stream<Item = Value> + Unpin {
    Box::pin(
        SseStream::from_bytes_stream(res.bytes_stream()).filter_map(|event| async move {
            let data = event.ok()?.data?;
            serde_json::from_str(&data).ok()
        }),
    )
}

#[test]
fn subscriptions_listen_acknowledges_first_and_tags_every_notification() {
    let server = Server::bastion(
        &["--session-mode", "shared", "--sessionless"],
        &everything_stdio(),
    );
    runtime().block_on(async {
        let http = reqwest::Client::new();
        // what the backend declares decides which list-change kinds are honored
        let discover = post(&http, &server, json!(0), "server/discover", None, json!({})).await;
        let discover = tests::sse::json_messages(&discover.text().await.unwrap()).await;
        let caps = &discover[0]["result"]["capabilities"];
        let mut honored = serde_json::Map::new();
        for (flag, cap) in [
            ("promptsListChanged", "prompts"),
            ("resourcesListChanged", "resources"),
            ("toolsListChanged", "tools"),
        ] {
            if caps[cap]["listChanged"] == true {
                honored.insert(flag.into(), json!(true));
            }
        }
        assert_eq!(caps["resources"]["subscribe"], true, "{caps}");
        honored.insert("resourceSubscriptions".into(), json!([RESOURCE]));
        let listen = post(
            &http,
            &server,
            json!("sub-7"),
            "subscriptions/listen",
            None,
            json!({"notifications": {
                "resourceSubscriptions": [RESOURCE],
                "promptsListChanged": true,
                "resourcesListChanged": true,
                "toolsListChanged": true,
                "taskIds": ["not-a-kind-this-gateway-serves"],
            }}),
        )
        .await;
        assert_eq!(listen.status(), 200);
        assert_eq!(
            listen.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        let mut stream = messages(listen);
        let ack = stream.next().await.unwrap();
        assert_eq!(
            ack["method"], "notifications/subscriptions/acknowledged",
            "{ack}"
        );
        assert_eq!(
            ack["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"], "sub-7",
            "{ack}"
        );
        // the requested kinds the backend declares, the URI it accepted; an unknown kind is
        // left out
        assert_eq!(
            ack["params"]["notifications"],
            Value::Object(honored),
            "{ack}"
        );

        // a tool call (on a pooled link of the same shared child) starts resource updates
        let call = post(
            &http,
            &server,
            json!(1),
            "tools/call",
            Some("toggle-subscriber-updates"),
            json!({"name": "toggle-subscriber-updates", "arguments": {}}),
        )
        .await;
        assert_eq!(call.status(), 200);
        let answer = tests::sse::json_messages(&call.text().await.unwrap()).await;
        assert!(
            answer.iter().any(|m| m.get("result").is_some()),
            "{answer:?}"
        );

        let update = stream.next().await.unwrap();
        assert_eq!(
            update["method"], "notifications/resources/updated",
            "{update}"
        );
        assert_eq!(update["params"]["uri"], RESOURCE, "{update}");
        assert_eq!(
            update["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"], "sub-7",
            "{update}"
        );
        // nothing the client did not subscribe to (the log lines of the subscribe and of the
        // tool call) came through
        let next = stream.next().await.unwrap();
        assert_eq!(next["method"], "notifications/resources/updated", "{next}");
    });
}

#[test]
fn closing_a_listen_stream_ends_its_backend_connection() {
    let server = Server::bastion(
        &["--session-mode", "per-session", "--sessionless"],
        &everything_stdio(),
    );
    runtime().block_on(async {
        let http = reqwest::Client::new();
        let listen = post(
            &http,
            &server,
            json!(5),
            "subscriptions/listen",
            None,
            json!({"notifications": {"toolsListChanged": true}}),
        )
        .await;
        let mut stream = messages(listen);
        let ack = stream.next().await.unwrap();
        assert_eq!(
            ack["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"], 5,
            "{ack}"
        );
        // the listen stream has a child of its own while open
        server.wait_for_children(1, Duration::from_secs(10));
        drop(stream);
    });
    server.wait_for_children(0, Duration::from_secs(10));
}

#[test]
fn the_python_sdk_listens_through_the_bridge() {
    let server = Server::bastion(
        &["--session-mode", "shared", "--sessionless"],
        &everything_stdio(),
    );
    let report = script_report(
        "py_pool.py",
        &[
            "--url",
            &server.url("/mcp"),
            "listen",
            "--uri",
            RESOURCE,
            "--trigger",
            "toggle-subscriber-updates",
        ],
    );
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["protocolVersion"], V2026, "{report}");
    assert_eq!(
        report["honored"],
        json!({"resourceSubscriptions": [RESOURCE]}),
        "{report}"
    );
    assert_eq!(report["event"], "ResourceUpdated", "{report}");
    assert_eq!(report["uri"], RESOURCE, "{report}");
}
