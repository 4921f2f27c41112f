//! The `mcp-bastion` binary over raw HTTP and with real clients, for the protocol rules that
//! need the whole process: every kind of bad input gets its spec-shaped answer and the proxy
//! keeps serving; a dropped SSE stream resumes with `Last-Event-ID` and loses nothing; a stdio
//! server that dies mid-call fails that call and leaves no zombie.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::{collections::BTreeMap, path::PathBuf, time::Duration};

use reqwest::{Client, StatusCode, header::HeaderMap};
use serde_json::{Value, json};
use tests::{ClientRun, Sdk, Server, SessionMode, Transport, clients_dir, python, workspace_dir};

const ACCEPT_BOTH: &str = "application/json, text/event-stream";
const VERSION: &str = "2025-11-25";

fn echo_fixture() -> Vec<String> {
    let script: PathBuf = workspace_dir().join("crates/mcp-bastion/tests/fixtures/echo_server.py");
    vec![python(), script.display().to_string()]
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// One POST to `url`: status, headers and body.
async fn post(
    http: &Client,
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<reqwest::Body>,
) -> (StatusCode, HeaderMap, String) {
    let mut req = http.post(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = req.body(body).send().await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    (status, headers, res.text().await.unwrap_or_default())
}

/// Splits SSE text into complete events: (id, data).
fn sse_events(text: &str) -> Vec<(Option<String>, String)> {
    text.split("\n\n")
        .filter(|block| block.lines().any(|l| l.starts_with("data:")))
        .map(|block| {
            let mut id = None;
            let mut data = String::new();
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("id:") {
                    id = Some(v.trim_start().to_owned());
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim_start());
                }
            }
            (id, data)
        })
        .collect()
}

/// Opens a session the way an SDK does; returns its id.
async fn open_session(http: &Client, url: &str) -> String {
    let init = json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
        "protocolVersion": VERSION, "capabilities": {}, "clientInfo": {"name":"raw","version":"0"}}});
    let (status, headers, body) = post(
        http,
        url,
        &[
            ("content-type", "application/json"),
            ("accept", ACCEPT_BOTH),
        ],
        init.to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "initialize: {body}");
    let sid = headers["mcp-session-id"].to_str().unwrap().to_owned();
    let (status, _, _) = post(
        http,
        url,
        &session_headers(&sid),
        json!({"jsonrpc":"2.0","method":"notifications/initialized"}).to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    sid
}

fn session_headers(sid: &str) -> [(&'static str, &str); 4] {
    [
        ("content-type", "application/json"),
        ("accept", ACCEPT_BOTH),
        ("mcp-session-id", sid),
        ("mcp-protocol-version", VERSION),
    ]
}

/// One bad request: what it is, url, headers, body, the status and JSON-RPC code it must get.
type BadInput<'a> = (
    &'a str,
    &'a str,
    Vec<(&'a str, &'a str)>,
    Vec<u8>,
    StatusCode,
    Option<i64>,
);

/// The JSON-RPC error code of a body, if it is an error object.
fn error_code(body: &str) -> Option<i64> {
    serde_json::from_str::<Value>(body).ok()?["error"]["code"].as_i64()
}

/// Every bad request the proxy can get answers with its own status and JSON-RPC error code, and
/// afterwards a real client still runs its whole scenario on the same process.
#[test]
fn bad_input_gets_spec_shaped_errors_and_the_proxy_keeps_serving() {
    let server = Server::bastion_everything(SessionMode::PerSession, None);
    let mcp = server.url("/mcp");
    let messages = server.url("/messages");
    runtime().block_on(async {
        let http = Client::new();
        let sid = open_session(&http, &mcp).await;
        let json_ct = ("content-type", "application/json");
        let accept = ("accept", ACCEPT_BOTH);
        let ping = json!({"jsonrpc":"2.0","id":1,"method":"ping"}).to_string();
        let unknown = "0123456789abcdef0123456789abcdef";
        let long_id = "x".repeat(300);
        let batch = json!([{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"method":"ping"}]).to_string();
        let call = json!({"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"echo","arguments":{"message":"m"}}}).to_string();

        let cases: Vec<BadInput> = vec![
            ("malformed JSON", &mcp, vec![json_ct, accept, ("mcp-session-id", &sid)], b"{\"jsonrpc\":".to_vec(), StatusCode::BAD_REQUEST, Some(-32700)),
            ("not a JSON-RPC message", &mcp, vec![json_ct, accept, ("mcp-session-id", &sid)], b"{\"foo\":1}".to_vec(), StatusCode::BAD_REQUEST, Some(-32600)),
            ("wrong content type", &mcp, vec![("content-type", "text/plain"), accept], ping.clone().into_bytes(), StatusCode::UNSUPPORTED_MEDIA_TYPE, None),
            ("Accept without text/event-stream", &mcp, vec![json_ct, ("accept", "application/json"), ("mcp-session-id", &sid)], ping.clone().into_bytes(), StatusCode::NOT_ACCEPTABLE, Some(-32000)),
            ("no session id", &mcp, vec![json_ct, accept], ping.clone().into_bytes(), StatusCode::BAD_REQUEST, Some(-32000)),
            ("unknown session id", &mcp, vec![json_ct, accept, ("mcp-session-id", unknown)], ping.clone().into_bytes(), StatusCode::NOT_FOUND, Some(-32002)),
            ("malformed session id", &mcp, vec![json_ct, accept, ("mcp-session-id", &long_id)], ping.clone().into_bytes(), StatusCode::BAD_REQUEST, Some(-32000)),
            ("unsupported protocol version", &mcp, vec![json_ct, accept, ("mcp-session-id", &sid), ("mcp-protocol-version", "1999-01-01")], ping.clone().into_bytes(), StatusCode::BAD_REQUEST, None),
            ("batch after 2025-03-26", &mcp, vec![json_ct, accept, ("mcp-session-id", &sid), ("mcp-protocol-version", "2025-06-18")], batch.into_bytes(), StatusCode::BAD_REQUEST, Some(-32600)),
            ("2026-07-28 Mcp-Name disagreeing with the body", &mcp, vec![json_ct, accept, ("mcp-protocol-version", "2026-07-28"), ("mcp-method", "tools/call"), ("mcp-name", "other")], call.into_bytes(), StatusCode::BAD_REQUEST, Some(-32020)),
            ("legacy POST without session", &messages, vec![json_ct], ping.clone().into_bytes(), StatusCode::BAD_REQUEST, None),
        ];
        for (what, url, headers, body, status, code) in cases {
            let (got, _, text) = post(&http, url, &headers, body).await;
            assert_eq!(got, status, "{what}: {text}");
            if let Some(code) = code {
                assert_eq!(error_code(&text), Some(code), "{what}: {text}");
            }
        }
        let unknown_legacy = format!("{messages}?session_id={unknown}");
        let (got, _, _) = post(&http, &unknown_legacy, &[json_ct], ping.clone()).await;
        assert_eq!(got, StatusCode::NOT_FOUND, "legacy POST, unknown session");

        // a body over the 4 MiB limit is refused from its Content-Length, before it is read
        let too_large = format!("content-type: application/json\r\naccept: {ACCEPT_BOTH}\r\ncontent-length: {}\r\n", 5 * 1024 * 1024);
        assert_eq!(raw_status(&mcp, &too_large, "").await, 413, "body over 4 MiB");
        // (reqwest always sends `Accept: */*`; a raw request can leave it out)
        let no_accept = format!("content-type: application/json\r\nmcp-session-id: {sid}\r\ncontent-length: {}\r\n", ping.len());
        assert_eq!(raw_status(&mcp, &no_accept, &ping).await, 406, "no Accept header");

        let put = http.put(&mcp).body(ping.clone()).send().await.unwrap();
        assert_eq!(put.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert!(put.headers().contains_key("allow"));
        let get = http
            .get(&mcp)
            .header("mcp-session-id", &sid)
            .header("accept", "application/json")
            .send()
            .await
            .unwrap();
        assert_eq!(get.status(), StatusCode::NOT_ACCEPTABLE, "GET without text/event-stream");

        // the session opened before all that is untouched
        let (got, _, text) = post(&http, &mcp, &session_headers(&sid), ping).await;
        assert_eq!(got, StatusCode::OK, "{text}");
        assert!(text.contains("\"result\""), "{text}");
    });
    ClientRun::against(Sdk::Python, Transport::Streamable, &server, "").run_ok(&server);
}

/// A client that loses its SSE response mid-request reconnects with GET + `Last-Event-ID` and
/// receives every event it missed (the remaining progress and the final result), none twice.
#[test]
fn resumption_over_http_replays_missed_events_exactly_once() {
    let server = Server::bastion_everything(SessionMode::Shared, None);
    let mcp = server.url("/mcp");
    runtime().block_on(async {
        let http = Client::new();
        let sid = open_session(&http, &mcp).await;
        let call = json!({"jsonrpc":"2.0","id":"long","method":"tools/call","params":{
            "name":"trigger-long-running-operation","arguments":{"duration":2,"steps":4},
            "_meta":{"progressToken":"tok"}}});
        let mut req = http.post(&mcp);
        for (k, v) in session_headers(&sid) {
            req = req.header(k, v);
        }
        let mut res = req.body(call.to_string()).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        // read until the first progress event, then drop the connection
        let mut text = String::new();
        let first: Vec<(Option<String>, String)> = loop {
            let chunk = tokio::time::timeout(Duration::from_secs(10), res.chunk())
                .await
                .expect("a progress event within 10 s")
                .unwrap()
                .expect("the stream stays open until the result");
            text.push_str(&String::from_utf8_lossy(&chunk));
            let events = sse_events(&text);
            if events
                .iter()
                .any(|(_, d)| d.contains("notifications/progress"))
            {
                break events;
            }
        };
        drop(res);
        let last_id = first
            .iter()
            .rev()
            .find_map(|(id, _)| id.clone())
            .expect("events carry ids");
        // wait so that more events happen while disconnected
        tokio::time::sleep(Duration::from_millis(800)).await;
        let mut res = http
            .get(&mcp)
            .header("accept", "text/event-stream")
            .header("mcp-session-id", &sid)
            .header("mcp-protocol-version", VERSION)
            .header("last-event-id", &last_id)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let mut text = String::new();
        let rest = loop {
            let chunk = tokio::time::timeout(Duration::from_secs(10), res.chunk())
                .await
                .expect("the result within 10 s")
                .unwrap();
            let Some(chunk) = chunk else {
                break sse_events(&text);
            };
            text.push_str(&String::from_utf8_lossy(&chunk));
            let events = sse_events(&text);
            if events.iter().any(|(_, d)| d.contains("\"id\":\"long\"")) {
                break events;
            }
        };
        let mut progress: BTreeMap<i64, usize> = BTreeMap::new();
        let mut results = 0;
        for (_, data) in first.iter().chain(rest.iter()) {
            let Ok(v) = serde_json::from_str::<Value>(data) else {
                continue;
            };
            if v["method"] == "notifications/progress" {
                *progress
                    .entry(v["params"]["progress"].as_f64().unwrap() as i64)
                    .or_default() += 1;
            } else if v["id"] == "long" {
                results += 1;
                assert!(v["result"].is_object(), "{v}");
            }
        }
        assert_eq!(results, 1, "exactly one result: {first:?} then {rest:?}");
        assert_eq!(progress.len(), 4, "every progress step: {progress:?}");
        assert!(
            progress.values().all(|n| *n == 1),
            "no event twice: {progress:?}"
        );
        let mut ids: Vec<&String> = first
            .iter()
            .chain(rest.iter())
            .filter_map(|(id, _)| id.as_ref())
            .collect();
        let n = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), n, "event ids are unique");
    });
}

/// Sends a POST with exactly the header lines `headers` (each ending in CRLF) and `body` (which
/// may be shorter than its declared length) and returns the status code answered.
async fn raw_status(url: &str, headers: &str, body: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let url = reqwest::Url::parse(url).unwrap();
    let addr = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap());
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "POST {} HTTP/1.1\r\nhost: x\r\n{headers}\r\n{body}",
        url.path()
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut buf))
        .await
        .expect("an answer before the body is sent")
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    text.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

fn crash_run(server: &Server, transport: Transport) -> Value {
    let url = server.url(transport.endpoint());
    let out = std::process::Command::new(python())
        .arg(clients_dir().join("py_call.py"))
        .args(["--url", &url, "--transport", transport.as_arg()])
        .args(["--tool", "crash", "--expect", "error"])
        .current_dir(clients_dir())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "py_call failed: {}\n{stdout}\n--- server log ---\n{}",
        String::from_utf8_lossy(&out.stderr),
        server.logs()
    );
    serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap()
}

/// The Python SDK calls a tool whose per-session child exits mid-call: the call fails with a
/// JSON-RPC error (not a hang), the child is reaped (no zombie), and the proxy serves the next
/// client on both transports.
#[test]
fn a_child_dying_mid_call_fails_the_call_and_leaves_no_zombie() {
    let server = Server::bastion(&["--session-mode", "per-session"], &echo_fixture());
    for transport in [Transport::Streamable, Transport::Sse] {
        let outcome = crash_run(&server, transport);
        assert!(outcome["code"].is_i64(), "{transport:?}: {outcome}");
        // the bound: an error within a second, not a hang (the child's exit is seen at
        // once; this is a liveness bound, not a performance figure)
        assert!(
            outcome["seconds"].as_f64().unwrap() < 1.0,
            "{transport:?}: the error took {}",
            outcome["seconds"]
        );
        server.wait_for_children(0, Duration::from_secs(10));
        assert!(
            server.children().iter().all(|(_, state, _)| *state != 'Z'),
            "zombies: {:?}",
            server.children()
        );
    }
    let echo_only = json!({
        "echo": {"tool": "echo", "arguments": {"message": "{nonce}"}},
        "progress": null, "sampling": null, "elicitation": null, "resource": null, "prompt": null
    });
    ClientRun::against(Sdk::Python, Transport::Streamable, &server, "")
        .profile(echo_only.to_string())
        .run_ok(&server);
    ClientRun::against(Sdk::TypeScript, Transport::Sse, &server, "")
        .profile(echo_only.to_string())
        .run_ok(&server);
}
