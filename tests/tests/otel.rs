//! OpenTelemetry export of the `mcp-bastion` binary (`--otlp-endpoint`), against a real OTLP/HTTP
//! receiver ([`tests::otlp::Receiver`]: `tests/clients/otlp_receiver.py`, which decodes what
//! arrives with the official `opentelemetry-proto` package and writes the spans as JSON lines).
//! (The secrets sweep, `tests/tests/auth/sweep.rs`, searches the exported spans too.)
//!
//! - stdio backend (`tests/clients/meta_echo_server.py`, a child that answers a tool call with
//!   the `_meta` it received): a `tools/call` with a client `traceparent` header gives a SERVER
//!   span `tools/call echo_meta` whose parent is the client's span (same trace id), with the MCP
//!   semantic-convention attributes and the session as a fingerprint only; its CLIENT child is
//!   the backend call, and the child process received that span's context in
//!   `params._meta.traceparent`. A 2026-07-28 request's `_meta.traceparent` is the parent too
//!   (it wins over the header), and the bridged child sees the trace continue. The spans arrive
//!   although the batch delay is an hour: they are flushed at shutdown.
//!   A JSON-RPC error answer sets `error.type` (the code) and the status ERROR on both spans, a
//!   tool error `error.type = tool_error`, an HTTP refusal (404, unknown session) its status.
//! - upstream backend (server-everything over Streamable HTTP behind a recording proxy): the
//!   upstream receives a `traceparent` header whose trace id is the client's and whose parent is
//!   the backend call's span in that trace.
//! - gRPC export (`--otlp-protocol grpc`, to the receiver's gRPC mode): the same request span,
//!   child of the client's.
//! - 2026-07-28 pass-through (the Python SDK's 2026 server, `tests/clients/py_2026_server.py`,
//!   behind the recording proxy): the upstream receives the trace context of the proxy's CLIENT
//!   span in the `traceparent` header (the body's `params._meta` gets the same: a unit test of
//!   `mcp_bastion::otel` covers that rewrite).
//! - 2026-07-28 bridged onto a 2025 stdio child (server-everything, per-session, behind
//!   `tests/clients/stdio_tee.py`, which logs every line the child receives): the SERVER span
//!   (child of the client's `_meta` span) has a CLIENT child per request the link sent, the
//!   `initialize` of the new link and the call, and the child received each under its CLIENT
//!   span's context in `params._meta`. A multi-round-trip call (server-everything's elicitation):
//!   the first request's SERVER span has the call's CLIENT span, ended without error when the
//!   backend asked, the retry's SERVER span a CLIENT span of its own (the backend's id for the
//!   call), and the child continued the first one's trace. The same call to a shared child (one
//!   child, each link a logical session of it) has the same two CLIENT spans.
//! - 2026-07-28 sent as it is to a stdio child that speaks it (the Python SDK's
//!   `py_2026_stdio_server.py`, `--stdio-protocol-version 2026-07-28`, behind the same tee): one
//!   CLIENT span, child of the SERVER span, whose context the child received in `_meta` (with
//!   the rest of the envelope as it was, and no `initialize`).
//! - Long-lived requests: a 2026-07-28 `subscriptions/listen` sent as it is to that child has a
//!   SERVER span and one CLIENT span (its context in the listen's `_meta`), both exported while
//!   the stream is still open (they end when it opens); bridged onto server-everything (shared),
//!   the listen's SERVER span has the CLIENT spans of its link's `initialize` and of the
//!   `resources/subscribe` it sent (each received by the child under its own context), and the
//!   `notifications/resources/updated` the stream relays add no span to the trace. A
//!   `resources/subscribe` in a 2025-11-25 session has its CLIENT span and `_meta`, and the
//!   updates that follow on the session's GET stream add no span.

#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};
use tests::{
    Server, clients_dir,
    otlp::Receiver,
    python,
    upstream::{Everything, Mode, RecordingProxy, py_2026_server},
};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

/// One POST to the proxy: status, headers, the JSON-RPC answer (of a JSON or an SSE body;
/// `Null` for none).
fn post(
    url: &str,
    headers: &[(&str, &str)],
    body: Value,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut req = reqwest::Client::new()
            .post(url)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .body(body.to_string());
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let text = res.text().await.unwrap();
        let answer = tests::sse::json_messages(&text)
            .await
            .into_iter()
            .find(|m| m.get("id").is_some())
            .unwrap_or(Value::Null);
        (status, headers, answer)
    })
}

/// Opens a 2025-11-25 session at `url` and sends in it one `tools/call` with `params` and the
/// client's trace context (`TRACE_ID`, `CLIENT_SPAN`): the status and the answer.
fn traced_call(url: &str, params: Value) -> (u16, Value) {
    let session = open_session(url);
    let (status, _, answer) = post(
        url,
        &[
            ("mcp-session-id", &session),
            ("mcp-protocol-version", "2025-11-25"),
            ("traceparent", &traceparent(TRACE_ID, CLIENT_SPAN)),
        ],
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": params}),
    );
    (status, answer)
}

/// `initialize` + `notifications/initialized` at 2025-11-25; the session id.
fn open_session(url: &str) -> String {
    let (status, headers, _) = post(
        url,
        &[],
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "otel-test", "version": "1"}}}),
    );
    assert_eq!(status, 200);
    let session = headers["mcp-session-id"].to_str().unwrap().to_owned();
    let (status, _, _) = post(
        url,
        &[
            ("mcp-session-id", &session),
            ("mcp-protocol-version", "2025-11-25"),
        ],
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    );
    assert_eq!(status, 202);
    session
}

fn traceparent(trace: &str, span: &str) -> String {
    format!("00-{trace}-{span}-01")
}

/// The `(trace id, parent id)` of a `traceparent` value.
fn parse_traceparent(value: &str) -> (String, String) {
    let parts: Vec<&str> = value.split('-').collect();
    assert_eq!(parts.len(), 4, "{value}");
    (parts[1].to_owned(), parts[2].to_owned())
}

fn find(spans: &[Value], what: impl Fn(&Value) -> bool) -> &Value {
    spans
        .iter()
        .find(|s| what(s))
        .unwrap_or_else(|| panic!("no such span among:\n{spans:#?}"))
}

/// Stops `bastion` (which must exit cleanly: the flush at shutdown exports its spans), waits for
/// the CLIENT span of the client's trace (`TRACE_ID`), and checks that the SERVER span of that
/// trace is the child of the client's span (`CLIENT_SPAN`): the spans and that SERVER span.
fn traced_spans(bastion: &mut Server, receiver: &Receiver) -> (Vec<Value>, Value) {
    assert!(
        bastion.stop().is_some_and(|s| s.success()),
        "{}",
        bastion.logs()
    );
    let spans = receiver.wait_for(|s| s["kind"] == "CLIENT" && s["trace_id"] == TRACE_ID);
    let server = find(&spans, |s| {
        s["kind"] == "SERVER" && s["trace_id"] == TRACE_ID
    })
    .clone();
    assert_eq!(server["parent_span_id"], CLIENT_SPAN);
    (spans, server)
}

fn attr<'a>(span: &'a Value, key: &str) -> &'a Value {
    &span["attributes"][key]
}

/// The `_meta` the child answered with.
fn echoed_meta(answer: &Value) -> Value {
    let text = answer["result"]["content"][0]["text"].as_str().unwrap();
    serde_json::from_str(text).unwrap()
}

#[test]
fn a_tool_call_through_a_stdio_child_is_one_trace_from_the_client_into_the_child() {
    let receiver = Receiver::start("stdio");
    let child = vec![
        python(),
        clients_dir()
            .join("meta_echo_server.py")
            .display()
            .to_string(),
    ];
    let mut bastion = Server::bastion_with_env(
        &[
            "--otlp-endpoint",
            &receiver.endpoint(),
            "--json-response",
            "--shutdown-timeout",
            "1",
        ],
        &child,
        // only the flush at shutdown can deliver the spans in time
        &[
            ("OTEL_BSP_SCHEDULE_DELAY", "3600000"),
            ("OTEL_SERVICE_NAME", "bastion-under-test"),
        ],
    );
    let url = bastion.url("/mcp");

    // a 2025-11-25 session: the trace context in the HTTP headers
    let session = open_session(&url);
    let (status, _, answer) = post(
        &url,
        &[
            ("mcp-session-id", &session),
            ("mcp-protocol-version", "2025-11-25"),
            ("traceparent", &traceparent(TRACE_ID, CLIENT_SPAN)),
            ("tracestate", "client=1"),
        ],
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
               "params": {"name": "echo_meta", "arguments": {}}}),
    );
    assert_eq!(status, 200, "{answer}");
    let child_meta = echoed_meta(&answer);

    // a JSON-RPC error from the child
    let (status, _, error) = post(
        &url,
        &[
            ("mcp-session-id", &session),
            ("mcp-protocol-version", "2025-11-25"),
        ],
        json!({"jsonrpc": "2.0", "id": 4, "method": "resources/list", "params": {}}),
    );
    assert_eq!(status, 200);
    assert_eq!(error["error"]["code"], -32601, "{error}");

    // a tool error
    let (status, _, failed) = post(
        &url,
        &[
            ("mcp-session-id", &session),
            ("mcp-protocol-version", "2025-11-25"),
        ],
        json!({"jsonrpc": "2.0", "id": 6, "method": "tools/call",
               "params": {"name": "fail", "arguments": {}}}),
    );
    assert_eq!(status, 200);
    assert_eq!(failed["result"]["isError"], true, "{failed}");

    // an HTTP refusal: an unknown session
    let (status, _, _) = post(
        &url,
        &[
            ("mcp-session-id", "no-such-session"),
            ("mcp-protocol-version", "2025-11-25"),
        ],
        json!({"jsonrpc": "2.0", "id": 7, "method": "tools/list", "params": {}}),
    );
    assert_eq!(status, 404);

    // a 2026-07-28 request: the trace context in `_meta` (which wins over the header)
    let meta_trace = "0af7651916cd43dd8448eb211c80319c";
    let meta_span = "b7ad6b7169203331";
    let (status, _, answer_2026) = post(
        &url,
        &[
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/call"),
            ("mcp-name", "echo_meta"),
            ("traceparent", &traceparent(TRACE_ID, CLIENT_SPAN)),
        ],
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {
        "name": "echo_meta", "arguments": {},
        "_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": {"name": "otel-test", "version": "1"},
            "traceparent": traceparent(meta_trace, meta_span),
        }}}),
    );
    assert_eq!(status, 200, "{answer_2026}");
    let child_meta_2026 = echoed_meta(&answer_2026);

    assert!(
        bastion.stop().is_some_and(|s| s.success()),
        "{}",
        bastion.logs()
    );
    let spans = receiver.wait_for(|s| s["attributes"]["jsonrpc.request.id"] == "3");

    // the request span: SERVER, child of the client's span, the conventions' attributes
    let server = find(&spans, |s| {
        s["kind"] == "SERVER" && s["trace_id"] == TRACE_ID && s["name"] == "tools/call echo_meta"
    });
    assert_eq!(server["parent_span_id"], CLIENT_SPAN, "{server:#}");
    assert_eq!(server["service"], "bastion-under-test");
    assert_eq!(attr(server, "mcp.method.name"), "tools/call");
    assert_eq!(attr(server, "gen_ai.tool.name"), "echo_meta");
    assert_eq!(attr(server, "gen_ai.operation.name"), "execute_tool");
    assert_eq!(attr(server, "jsonrpc.request.id"), "2");
    assert_eq!(attr(server, "mcp.protocol.version"), "2025-11-25");
    let fingerprint = attr(server, "mcp.session.id").as_str().unwrap();
    assert!(!fingerprint.is_empty() && fingerprint != session);

    // the trace holds these two spans only: the request's log span is not exported
    let in_trace: Vec<&Value> = spans.iter().filter(|s| s["trace_id"] == TRACE_ID).collect();
    assert_eq!(in_trace.len(), 2, "{in_trace:#?}");

    // the backend call: CLIENT, child of the request span
    let call = find(&spans, |s| {
        s["kind"] == "CLIENT"
            && s["trace_id"] == TRACE_ID
            && s["parent_span_id"] == server["span_id"]
    });
    assert_eq!(call["name"], "tools/call echo_meta");
    assert_eq!(attr(call, "jsonrpc.request.id"), "2");

    // the child saw the backend call's span as its parent, in `_meta`
    let (trace, parent) = parse_traceparent(child_meta["traceparent"].as_str().unwrap());
    assert_eq!(trace, TRACE_ID);
    assert_eq!(parent, call["span_id"].as_str().unwrap());

    // 2026-07-28: `_meta`'s trace context is the parent, and the child continues that trace
    let server_2026 = find(&spans, |s| {
        s["kind"] == "SERVER" && s["attributes"]["jsonrpc.request.id"] == "3"
    });
    assert_eq!(server_2026["trace_id"], meta_trace, "{server_2026:#}");
    assert_eq!(server_2026["parent_span_id"], meta_span);
    let (trace, parent) = parse_traceparent(child_meta_2026["traceparent"].as_str().unwrap());
    assert_eq!(trace, meta_trace);
    let in_trace: Vec<&str> = spans
        .iter()
        .filter(|s| s["trace_id"] == meta_trace)
        .map(|s| s["span_id"].as_str().unwrap())
        .collect();
    assert!(
        in_trace.contains(&parent.as_str()),
        "{parent} not in {in_trace:?}"
    );

    // the error answer marks both the backend call and the request
    for kind in ["SERVER", "CLIENT"] {
        let failed = find(&spans, |s| {
            s["kind"] == kind && s["attributes"]["jsonrpc.request.id"] == "4"
        });
        assert_eq!(failed["name"], "resources/list");
        assert_eq!(failed["status"], "ERROR", "{failed:#}");
        assert_eq!(attr(failed, "error.type"), "-32601");
        assert_eq!(attr(failed, "rpc.response.status_code"), "-32601");
    }

    // a tool error is `tool_error`
    let tool_failed = find(&spans, |s| {
        s["kind"] == "SERVER" && s["attributes"]["jsonrpc.request.id"] == "6"
    });
    assert_eq!(tool_failed["name"], "tools/call fail");
    assert_eq!(tool_failed["status"], "ERROR");
    assert_eq!(attr(tool_failed, "error.type"), "tool_error");

    // an HTTP refusal is its status
    let refused = find(&spans, |s| {
        s["kind"] == "SERVER" && s["attributes"]["jsonrpc.request.id"] == "7"
    });
    assert_eq!(refused["status"], "ERROR");
    assert_eq!(attr(refused, "error.type"), "404");

    // never the session id itself
    let all = receiver.text();
    assert!(!all.contains(&session), "the session id was exported");
}

#[test]
fn the_upstream_receives_the_trace_context_of_the_backend_call() {
    let everything = Everything::start(Mode::Streamable);
    let recorder = RecordingProxy::start(everything.base_url());
    let receiver = Receiver::start("upstream");
    let mut bastion = Server::bastion_args_with_env(
        &[
            "--upstream",
            &recorder.url("/mcp"),
            "--otlp-endpoint",
            &receiver.endpoint(),
            "--otlp-protocol",
            "http-protobuf",
            "--json-response",
            "--shutdown-timeout",
            "1",
        ],
        &[("OTEL_BSP_SCHEDULE_DELAY", "3600000")],
    );
    let url = bastion.url("/mcp");
    let (status, answer) = traced_call(
        &url,
        json!({"name": "echo", "arguments": {"message": "hi"}}),
    );
    assert_eq!(status, 200, "{answer}");
    assert!(
        answer["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("hi")
    );

    let with_client_trace: Vec<(String, String)> = recorder
        .seen()
        .iter()
        .filter(|s| s.method == "POST")
        .filter_map(|s| s.header("traceparent").map(parse_traceparent))
        .filter(|(trace, _)| trace == TRACE_ID)
        .collect();
    assert_eq!(with_client_trace.len(), 1, "{:#?}", recorder.seen());
    let upstream_parent = &with_client_trace[0].1;

    let (spans, server) = traced_spans(&mut bastion, &receiver);
    assert_eq!(server["name"], "tools/call echo");
    let call = find(&spans, |s| {
        s["kind"] == "CLIENT"
            && s["trace_id"] == TRACE_ID
            && s["parent_span_id"] == server["span_id"]
    });
    assert_eq!(upstream_parent, call["span_id"].as_str().unwrap());
}

#[test]
fn a_2026_pass_through_carries_the_trace_context_to_the_upstream() {
    let upstream = py_2026_server();
    let recorder = RecordingProxy::start(upstream.base_url().to_owned());
    let receiver = Receiver::start("passthru");
    let mut bastion = Server::bastion_args_with_env(
        &[
            "--upstream",
            &recorder.url("/mcp"),
            "--otlp-endpoint",
            &receiver.endpoint(),
            "--shutdown-timeout",
            "1",
        ],
        &[("OTEL_BSP_SCHEDULE_DELAY", "3600000")],
    );
    let (status, _, answer) = post(
        &bastion.url("/mcp"),
        &[
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/call"),
            ("mcp-name", "echo"),
        ],
        json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {
        "name": "echo", "arguments": {"text": "hi"},
        "_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": {"name": "otel-test", "version": "1"},
            "traceparent": traceparent(TRACE_ID, CLIENT_SPAN),
        }}}),
    );
    assert_eq!(status, 200, "{answer}");
    assert!(answer["result"].is_object(), "{answer}");

    let seen = recorder.seen();
    let call = seen
        .iter()
        .find(|s| s.method == "POST" && s.header("mcp-method") == Some("tools/call"))
        .unwrap_or_else(|| panic!("no tools/call reached the upstream: {seen:#?}"));
    let (trace, upstream_parent) = parse_traceparent(call.header("traceparent").unwrap());
    assert_eq!(trace, TRACE_ID);

    let (spans, server) = traced_spans(&mut bastion, &receiver);
    let backend = find(&spans, |s| {
        s["kind"] == "CLIENT"
            && s["trace_id"] == TRACE_ID
            && s["parent_span_id"] == server["span_id"]
    });
    assert_eq!(backend["name"], "tools/call echo");
    assert_eq!(upstream_parent, backend["span_id"].as_str().unwrap());
}

#[test]
fn spans_are_exported_over_grpc_too() {
    let receiver = Receiver::start_grpc("grpc");
    let mut bastion = Server::bastion_with_env(
        &[
            "--otlp-endpoint",
            &receiver.endpoint(),
            "--otlp-protocol",
            "grpc",
            "--json-response",
            "--shutdown-timeout",
            "1",
        ],
        &[
            python(),
            clients_dir()
                .join("meta_echo_server.py")
                .display()
                .to_string(),
        ],
        &[("OTEL_BSP_SCHEDULE_DELAY", "3600000")],
    );
    let url = bastion.url("/mcp");
    let (status, answer) = traced_call(&url, json!({"name": "echo_meta", "arguments": {}}));
    assert_eq!(status, 200, "{answer}");
    let (_, server) = traced_spans(&mut bastion, &receiver);
    assert_eq!(server["name"], "tools/call echo_meta");
    assert_eq!(server["service"], "mcp-bastion");
}

/// A fresh directory of this test (the children's stdin log).
fn test_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("mcp-bastion-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `command` run behind `tests/clients/stdio_tee.py`, which writes every line the child
/// receives to `log`.
fn teed(log: &std::path::Path, command: Vec<String>) -> Vec<String> {
    let tee = clients_dir().join("stdio_tee.py").display().to_string();
    [python(), tee, log.display().to_string()]
        .into_iter()
        .chain(command)
        .collect()
}

/// The JSON-RPC requests the children received (from a `teed` log), of `method`.
fn received(log: &std::path::Path, method: &str) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|m| m["method"] == method && m.get("id").is_some())
        .collect()
}

/// The `_meta.traceparent` of a request a child received, as `(trace id, parent id)`.
fn received_parent(request: &Value) -> (String, String) {
    parse_traceparent(
        request["params"]["_meta"]["traceparent"]
            .as_str()
            .unwrap_or_else(|| panic!("no traceparent in {request}")),
    )
}

/// The 2026-07-28 envelope of a request's `_meta`, with the client's `traceparent`.
fn meta_2026(traceparent: &str, capabilities: Value) -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": capabilities,
        "io.modelcontextprotocol/clientInfo": {"name": "otel-test", "version": "1"},
        "traceparent": traceparent,
    })
}

/// One 2026-07-28 `tools/call` of `name` with `params` (beside `name`; `_meta` included) and id
/// `id`: the status and the answer.
fn call_2026(url: &str, id: u64, name: &str, mut params: Value) -> (u16, Value) {
    params["name"] = json!(name);
    let (status, _, answer) = post(
        url,
        &[
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/call"),
            ("mcp-name", name),
        ],
        json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params}),
    );
    (status, answer)
}

/// The CLIENT spans whose parent is `server`, by name.
fn backend_calls<'a>(spans: &'a [Value], server: &Value) -> Vec<&'a Value> {
    let mut calls: Vec<&Value> = spans
        .iter()
        .filter(|s| s["kind"] == "CLIENT" && s["parent_span_id"] == server["span_id"])
        .collect();
    calls.sort_by_key(|s| s["name"].as_str().unwrap().to_owned());
    calls
}

#[test]
fn a_bridged_2026_call_to_a_stdio_child_has_its_backend_call_span_and_the_child_continues_it() {
    let receiver = Receiver::start("bridge");
    let log = test_dir("otel-bridge").join("received.jsonl");
    let mut bastion = Server::bastion_with_env(
        &[
            "--otlp-endpoint",
            &receiver.endpoint(),
            "--session-mode",
            "per-session",
            // always bridged onto 2025-11-25 connections (server-everything speaks no 2026)
            "--stdio-protocol-version",
            "2025-11-25",
            "--shutdown-timeout",
            "1",
        ],
        &teed(&log, tests::everything_stdio()),
        &[("OTEL_BSP_SCHEDULE_DELAY", "3600000")],
    );
    let url = bastion.url("/mcp");

    // one call: the link is opened (`initialize`) and the call sent, both inside the request
    let (status, answer) = call_2026(
        &url,
        5,
        "echo",
        json!({"arguments": {"message": "traced"},
               "_meta": meta_2026(&traceparent(TRACE_ID, CLIENT_SPAN), json!({}))}),
    );
    assert_eq!(status, 200, "{answer}");
    assert!(answer["result"].to_string().contains("traced"), "{answer}");

    // a multi-round-trip call (server-everything's elicitation), each round with the client's
    // trace context of its own: the first answer is an `InputRequiredResult`, the retry ends it
    let round_trip = "5e1d4f2a9c3b4e6f8a7d6c5b4a392817";
    let (first_span, retry_span) = ("a1a1a1a1a1a1a1a1", "b2b2b2b2b2b2b2b2");
    let elicitation = json!({"elicitation": {}});
    let (status, first) = call_2026(
        &url,
        11,
        "trigger-elicitation-request",
        json!({"arguments": {},
               "_meta": meta_2026(&traceparent(round_trip, first_span), elicitation.clone())}),
    );
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["result"]["resultType"], "input_required", "{first}");
    let (key, _) = first["result"]["inputRequests"]
        .as_object()
        .unwrap()
        .iter()
        .next()
        .unwrap();
    let (status, done) = call_2026(
        &url,
        12,
        "trigger-elicitation-request",
        json!({"arguments": {},
               "requestState": first["result"]["requestState"],
               "inputResponses": {key.clone(): {"action": "accept",
                   "content": {"name": "traced-answer", "check": true}}},
               "_meta": meta_2026(&traceparent(round_trip, retry_span), elicitation)}),
    );
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["result"]["resultType"], "complete", "{done}");

    let (_, server) = traced_spans(&mut bastion, &receiver);
    // the link's `initialize`, the first round's call, the retry's
    let spans = receiver.wait_until(|all| {
        all.iter()
            .filter(|s| s["kind"] == "CLIENT" && s["trace_id"] == round_trip)
            .count()
            >= 3
    });

    // the request span (child of the client's span) has the link's two backend calls as
    // CLIENT children: the `initialize` that opened it, and the call
    assert_eq!(server["name"], "tools/call echo");
    let calls = backend_calls(&spans, &server);
    let names: Vec<&str> = calls.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["initialize", "tools/call echo"], "{calls:#?}");
    let (init, call) = (calls[0], calls[1]);
    assert_eq!(attr(call, "jsonrpc.request.id"), "5");
    assert_eq!(attr(call, "gen_ai.tool.name"), "echo");
    assert_ne!(call["status"], "ERROR", "{call:#}");

    // the child received each one under its CLIENT span (not the request span)
    let in_trace = |method: &str| -> Vec<(String, String)> {
        received(&log, method)
            .iter()
            .map(received_parent)
            .filter(|(trace, _)| trace == TRACE_ID)
            .collect()
    };
    assert_eq!(
        in_trace("tools/call"),
        [(
            TRACE_ID.to_owned(),
            call["span_id"].as_str().unwrap().to_owned()
        )]
    );
    assert_eq!(
        in_trace("initialize"),
        [(
            TRACE_ID.to_owned(),
            init["span_id"].as_str().unwrap().to_owned()
        )]
    );

    // the round trip: each request span has a backend call of its own, the first one ended
    // when the backend asked for input (no error), the retry's from its answer to the result
    let server_of = |parent: &str| {
        find(&spans, |s| {
            s["kind"] == "SERVER" && s["trace_id"] == round_trip && s["parent_span_id"] == parent
        })
        .clone()
    };
    let (first_server, retry_server) = (server_of(first_span), server_of(retry_span));
    let first_calls = backend_calls(&spans, &first_server);
    let names: Vec<&str> = first_calls
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["initialize", "tools/call trigger-elicitation-request"],
        "{first_calls:#?}"
    );
    let first_call = first_calls[1];
    assert_ne!(first_call["status"], "ERROR", "{first_call:#}");
    let retry_calls = backend_calls(&spans, &retry_server);
    assert_eq!(retry_calls.len(), 1, "{retry_calls:#?}");
    assert_eq!(
        retry_calls[0]["name"],
        "tools/call trigger-elicitation-request"
    );
    // the backend knows the call by the first request's id
    assert_eq!(attr(retry_calls[0], "jsonrpc.request.id"), "11");
    assert_ne!(retry_calls[0]["span_id"], first_call["span_id"]);
    // the child continued the trace of the call's first request
    let elicited: Vec<(String, String)> = received(&log, "tools/call")
        .iter()
        .map(received_parent)
        .filter(|(trace, _)| trace == round_trip)
        .collect();
    assert_eq!(
        elicited,
        [(
            round_trip.to_owned(),
            first_call["span_id"].as_str().unwrap().to_owned()
        )]
    );
}

#[test]
fn a_2026_call_sent_as_it_is_to_a_2026_stdio_child_has_its_backend_call_span() {
    let receiver = Receiver::start("direct");
    let dir = test_dir("otel-direct");
    let log = dir.join("received.jsonl");
    let child = vec![
        python(),
        clients_dir()
            .join("py_2026_stdio_server.py")
            .display()
            .to_string(),
        "--log".to_owned(),
        dir.join("child.jsonl").display().to_string(),
    ];
    let mut bastion = Server::bastion_with_env(
        &[
            "--otlp-endpoint",
            &receiver.endpoint(),
            "--session-mode",
            "per-session",
            // sent as they are, without asking the child
            "--stdio-protocol-version",
            "2026-07-28",
            "--shutdown-timeout",
            "1",
        ],
        &teed(&log, child),
        &[("OTEL_BSP_SCHEDULE_DELAY", "3600000")],
    );
    let (status, answer) = call_2026(
        &bastion.url("/mcp"),
        8,
        "echo",
        json!({"arguments": {"text": "traced"},
               "_meta": meta_2026(&traceparent(TRACE_ID, CLIENT_SPAN), json!({}))}),
    );
    assert_eq!(status, 200, "{answer}");
    assert!(
        answer["result"].to_string().contains("echo: traced"),
        "{answer}"
    );

    let (spans, server) = traced_spans(&mut bastion, &receiver);
    assert_eq!(server["name"], "tools/call echo");
    let calls = backend_calls(&spans, &server);
    assert_eq!(calls.len(), 1, "{calls:#?}");
    let call = calls[0];
    assert_eq!(call["name"], "tools/call echo");
    assert_eq!(attr(call, "jsonrpc.request.id"), "8");

    // the child got the request as it is (no `initialize`, the 2026-07-28 envelope kept), with
    // the CLIENT span's context in place of the client's
    assert!(received(&log, "initialize").is_empty());
    let sent = received(&log, "tools/call");
    assert_eq!(sent.len(), 1, "{sent:#?}");
    assert_eq!(
        sent[0]["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"],
        "2026-07-28"
    );
    assert_eq!(
        received_parent(&sent[0]),
        (
            TRACE_ID.to_owned(),
            call["span_id"].as_str().unwrap().to_owned()
        )
    );
}

#[test]
fn a_bridged_2026_call_to_a_shared_stdio_child_has_its_backend_call_span() {
    let receiver = Receiver::start("bridge-shared");
    let log = test_dir("otel-bridge-shared").join("received.jsonl");
    let mut bastion = Server::bastion_with_env(
        &[
            "--otlp-endpoint",
            &receiver.endpoint(),
            // one child, each link a logical session of it
            "--session-mode",
            "shared",
            "--shutdown-timeout",
            "1",
        ],
        &teed(&log, tests::everything_stdio()),
        &[("OTEL_BSP_SCHEDULE_DELAY", "3600000")],
    );
    let (status, answer) = call_2026(
        &bastion.url("/mcp"),
        6,
        "echo",
        json!({"arguments": {"message": "shared"},
               "_meta": meta_2026(&traceparent(TRACE_ID, CLIENT_SPAN), json!({}))}),
    );
    assert_eq!(status, 200, "{answer}");
    assert!(answer["result"].to_string().contains("shared"), "{answer}");

    let (spans, server) = traced_spans(&mut bastion, &receiver);
    let calls = backend_calls(&spans, &server);
    let names: Vec<&str> = calls.iter().map(|s| s["name"].as_str().unwrap()).collect();
    // the link is a new logical session: its `initialize` is a backend call too
    assert_eq!(names, ["initialize", "tools/call echo"], "{calls:#?}");
    let sent: Vec<(String, String)> = received(&log, "tools/call")
        .iter()
        .map(received_parent)
        .collect();
    assert_eq!(
        sent,
        [(
            TRACE_ID.to_owned(),
            calls[1]["span_id"].as_str().unwrap().to_owned()
        )]
    );
}

// ---------------------------------------------------------------------------------------------
// OTLP over TLS: a collector behind a private CA (`OTEL_EXPORTER_OTLP_[TRACES_]CERTIFICATE`),
// and one requiring a client certificate (`…_CLIENT_CERTIFICATE`, `…_CLIENT_KEY`), over gRPC
// and HTTPS; bad files stop the start.

/// A fresh private CA with a server and a client certificate (`tests::certs::private_ca`).
fn tls_ca(tag: &str) -> tests::certs::PrivateCa {
    let dir =
        std::env::temp_dir().join(format!("mcp-bastion-otlp-tls-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    tests::certs::private_ca(&dir)
}

fn path(p: &std::path::Path) -> String {
    p.display().to_string()
}

/// A bastion exporting to `receiver` with `protocol` and the variables `env` answers one traced
/// `tools/call`; once it has stopped (flushing), the request span has arrived, child of the
/// client's span.
fn one_traced_call_arrives(receiver: &Receiver, protocol: &str, env: &[(&str, &str)]) {
    assert!(receiver.endpoint().starts_with("https://"));
    let mut all_env = vec![("OTEL_BSP_SCHEDULE_DELAY", "3600000")];
    all_env.extend_from_slice(env);
    let mut bastion = Server::bastion_with_env(
        &[
            "--otlp-endpoint",
            &receiver.endpoint(),
            "--otlp-protocol",
            protocol,
            "--json-response",
            "--shutdown-timeout",
            "1",
        ],
        &[
            python(),
            clients_dir()
                .join("meta_echo_server.py")
                .display()
                .to_string(),
        ],
        &all_env,
    );
    let (status, answer) = traced_call(
        &bastion.url("/mcp"),
        json!({"name": "echo_meta", "arguments": {}}),
    );
    assert_eq!(status, 200, "{answer}");
    assert!(
        bastion.stop().is_some_and(|s| s.success()),
        "{}",
        bastion.logs()
    );
    let spans = receiver.wait_for(|s| s["kind"] == "SERVER" && s["trace_id"] == TRACE_ID);
    let server = spans
        .iter()
        .find(|s| s["kind"] == "SERVER" && s["trace_id"] == TRACE_ID)
        .unwrap_or_else(|| {
            panic!(
                "no request span arrived over {protocol}+TLS; the proxy's output:\n{}",
                bastion.logs()
            )
        });
    assert_eq!(server["name"], "tools/call echo_meta");
    assert_eq!(server["parent_span_id"], CLIENT_SPAN);
}

#[test]
fn spans_arrive_over_grpc_with_tls_trusting_a_private_ca() {
    let ca = tls_ca("grpc");
    let receiver = Receiver::start_tls("grpc-tls", true, &ca, false);
    one_traced_call_arrives(
        &receiver,
        "grpc",
        &[("OTEL_EXPORTER_OTLP_CERTIFICATE", &path(&ca.ca))],
    );
}

#[test]
fn spans_arrive_over_https_trusting_the_ca_of_the_signal_specific_variable() {
    let ca = tls_ca("https");
    let receiver = Receiver::start_tls("https", false, &ca, false);
    // the general variable names a certificate that did not issue the receiver's: the traces
    // one wins, or nothing would arrive
    one_traced_call_arrives(
        &receiver,
        "http-protobuf",
        &[
            ("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", &path(&ca.ca)),
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", &path(&ca.client_cert)),
        ],
    );
}

#[test]
fn a_receiver_requiring_a_client_certificate_gets_spans_when_the_client_variables_are_set() {
    let ca = tls_ca("mtls");
    // gRPC with the general variables
    let grpc = Receiver::start_tls("mtls-grpc", true, &ca, true);
    one_traced_call_arrives(
        &grpc,
        "grpc",
        &[
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", &path(&ca.ca)),
            (
                "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
                &path(&ca.client_cert),
            ),
            ("OTEL_EXPORTER_OTLP_CLIENT_KEY", &path(&ca.client_key)),
        ],
    );
    // HTTPS with the traces ones (the general ones name the server's pair, which the receiver
    // would refuse as a client's: no `clientAuth`)
    let https = Receiver::start_tls("mtls-https", false, &ca, true);
    one_traced_call_arrives(
        &https,
        "http-protobuf",
        &[
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", &path(&ca.ca)),
            (
                "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE",
                &path(&ca.client_cert),
            ),
            (
                "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY",
                &path(&ca.client_key),
            ),
            (
                "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
                &path(&ca.server_cert),
            ),
            ("OTEL_EXPORTER_OTLP_CLIENT_KEY", &path(&ca.server_key)),
        ],
    );
}

#[test]
fn a_bad_tls_file_stops_the_start_with_the_variable_and_the_path_and_no_key() {
    let ca = tls_ca("bad");
    let missing = ca.ca.with_file_name("no-such-ca.pem");
    let key_text = std::fs::read_to_string(&ca.client_key).unwrap();
    let server_key_text = std::fs::read_to_string(&ca.server_key).unwrap();
    // (the variables, what the error must say)
    type Case<'a> = (Vec<(&'a str, String)>, Vec<String>);
    let cases: Vec<Case> = vec![
        // a missing CA bundle
        (
            vec![("OTEL_EXPORTER_OTLP_CERTIFICATE", path(&missing))],
            vec![format!("OTEL_EXPORTER_OTLP_CERTIFICATE={}", path(&missing))],
        ),
        // a key where the CA bundle should be
        (
            vec![(
                "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
                path(&ca.client_key),
            )],
            vec![
                format!(
                    "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE={}",
                    path(&ca.client_key)
                ),
                "no PEM certificate".into(),
            ],
        ),
        // a client certificate without its key
        (
            vec![(
                "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
                path(&ca.client_cert),
            )],
            vec![
                format!(
                    "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE={}",
                    path(&ca.client_cert)
                ),
                "OTEL_EXPORTER_OTLP_CLIENT_KEY".into(),
            ],
        ),
        // a key that is not the certificate's
        (
            vec![
                (
                    "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
                    path(&ca.client_cert),
                ),
                ("OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY", path(&ca.server_key)),
            ],
            vec![format!(
                "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY={}",
                path(&ca.server_key)
            )],
        ),
    ];
    for protocol in ["grpc", "http-protobuf"] {
        for (env, expected) in &cases {
            let out = std::process::Command::new(tests::bastion_bin())
                .args(["--listen", "127.0.0.1:0", "--allow-unauthenticated"])
                .args(["--otlp-endpoint", "https://127.0.0.1:9"])
                .args(["--otlp-protocol", protocol, "--", "true"])
                .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{env:?}: {stderr}");
            for want in expected {
                assert!(
                    stderr.contains(want.as_str()),
                    "{env:?}: {want} not in {stderr}"
                );
            }
            assert!(!stderr.contains("panicked"), "{stderr}");
            // no line of a private key's PEM body
            for line in key_text.lines().chain(server_key_text.lines()) {
                if !line.starts_with("-----") && line.len() > 8 {
                    assert!(!stderr.contains(line), "key material in: {stderr}");
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Long-lived requests: `subscriptions/listen` (2026-07-28), sent as it is to a 2026 stdio child
// and bridged onto a 2025-11-25 one, and `resources/subscribe` in a 2025-11-25 session. The
// spans of a listen end when its stream opens (they are exported while it is still open), and
// the notifications a stream carries get no span.

/// The resource of server-everything the subscription tests subscribe to.
const RESOURCE: &str = "demo://resource/static/document/architecture.md";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The next JSON-RPC message of an SSE stream (a hang guard of 30 s, not an assertion on time).
async fn next_frame(
    frames: &mut (impl futures_util::Stream<Item = Value> + Unpin),
) -> Option<Value> {
    use futures_util::StreamExt;
    tokio::time::timeout(std::time::Duration::from_secs(30), frames.next())
        .await
        .ok()
        .flatten()
}

/// The JSON-RPC messages of an SSE response, as they come.
fn frames(res: reqwest::Response) -> impl futures_util::Stream<Item = Value> + Unpin {
    use futures_util::StreamExt;
    Box::pin(
        sse_stream::SseStream::from_bytes_stream(res.bytes_stream())
            .filter_map(|e| async move { serde_json::from_str::<Value>(&e.ok()?.data?).ok() }),
    )
}

/// Opens a 2026-07-28 `subscriptions/listen` stream with id `id`, the `notifications` filter and
/// the client's `traceparent` in `_meta`: its frames (dropping them closes the stream).
async fn listen_2026(
    url: &str,
    id: &str,
    notifications: Value,
    traceparent: &str,
) -> impl futures_util::Stream<Item = Value> + Unpin + use<> {
    let body = json!({"jsonrpc": "2.0", "id": id, "method": "subscriptions/listen", "params": {
        "notifications": notifications,
        "_meta": meta_2026(traceparent, json!({})),
    }});
    let res = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "subscriptions/listen")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    frames(res)
}

/// Waits (while the stream is still open) for the SERVER span `subscriptions/listen` of the
/// client's trace and for `calls` CLIENT spans under it: the spans so far and that SERVER span.
fn listen_spans_while_open(receiver: &Receiver, calls: usize) -> (Vec<Value>, Value) {
    let is_listen = |s: &Value| {
        s["kind"] == "SERVER" && s["trace_id"] == TRACE_ID && s["name"] == "subscriptions/listen"
    };
    let spans = receiver.wait_until(|all| {
        all.iter().find(|s| is_listen(s)).is_some_and(|server| {
            all.iter()
                .filter(|s| s["kind"] == "CLIENT" && s["parent_span_id"] == server["span_id"])
                .count()
                >= calls
        })
    });
    let server = find(&spans, is_listen).clone();
    assert_eq!(server["parent_span_id"], CLIENT_SPAN);
    (spans, server)
}

/// The spans of the client's trace (`TRACE_ID`).
fn of_client_trace(spans: &[Value]) -> Vec<&Value> {
    spans.iter().filter(|s| s["trace_id"] == TRACE_ID).collect()
}

#[test]
fn a_2026_listen_sent_as_it_is_to_a_2026_stdio_child_has_spans_that_end_when_the_stream_opens() {
    let receiver = Receiver::start("direct-listen");
    let dir = test_dir("otel-direct-listen");
    let log = dir.join("received.jsonl");
    let child = vec![
        python(),
        clients_dir()
            .join("py_2026_stdio_server.py")
            .display()
            .to_string(),
        "--log".to_owned(),
        dir.join("child.jsonl").display().to_string(),
    ];
    let mut bastion = Server::bastion_with_env(
        &[
            "--otlp-endpoint",
            &receiver.endpoint(),
            "--session-mode",
            "per-session",
            "--stdio-protocol-version",
            "2026-07-28",
            "--shutdown-timeout",
            "1",
        ],
        &teed(&log, child),
        // exported soon after they end: the spans must arrive while the stream is open
        &[("OTEL_BSP_SCHEDULE_DELAY", "100")],
    );
    let url = bastion.url("/mcp");
    let (during, server) = runtime().block_on(async {
        let mut stream = listen_2026(
            &url,
            "listen-d",
            json!({"toolsListChanged": true}),
            &traceparent(TRACE_ID, CLIENT_SPAN),
        )
        .await;
        let ack = next_frame(&mut stream).await.unwrap();
        assert_eq!(
            ack["method"], "notifications/subscriptions/acknowledged",
            "{ack}"
        );
        // the stream is open, and the request's SERVER span and the listen's CLIENT span have
        // ended (only ended spans are exported)
        let seen = listen_spans_while_open(&receiver, 1);
        drop(stream);
        seen
    });
    let calls = backend_calls(&during, &server);
    assert_eq!(calls.len(), 1, "{calls:#?}");
    let call = calls[0];
    assert_eq!(call["name"], "subscriptions/listen");
    assert_eq!(attr(call, "mcp.method.name"), "subscriptions/listen");
    assert_eq!(attr(call, "jsonrpc.request.id"), "listen-d");
    // the stream opened: not a failure
    assert_ne!(call["status"], "ERROR", "{call:#}");
    assert_ne!(server["status"], "ERROR", "{server:#}");

    // the child received the listen as it is, under the CLIENT span's context
    let sent = received(&log, "subscriptions/listen");
    assert_eq!(sent.len(), 1, "{sent:#?}");
    assert_eq!(
        received_parent(&sent[0]),
        (
            TRACE_ID.to_owned(),
            call["span_id"].as_str().unwrap().to_owned()
        )
    );

    // closing the stream (and the shutdown) adds no span to the trace: its frames have none
    assert!(
        bastion.stop().is_some_and(|s| s.success()),
        "{}",
        bastion.logs()
    );
    let all = receiver.spans();
    let traced = of_client_trace(&all);
    assert_eq!(traced.len(), 2, "{traced:#?}");
}

#[test]
fn a_bridged_2026_listen_has_a_span_per_subscribe_and_none_for_the_updates_it_relays() {
    let receiver = Receiver::start("bridge-listen");
    let log = test_dir("otel-bridge-listen").join("received.jsonl");
    let mut bastion = Server::bastion_with_env(
        &[
            "--otlp-endpoint",
            &receiver.endpoint(),
            // one child: a tool call on another link of it starts the resource updates
            "--session-mode",
            "shared",
            "--shutdown-timeout",
            "1",
        ],
        &teed(&log, tests::everything_stdio()),
        &[("OTEL_BSP_SCHEDULE_DELAY", "100")],
    );
    let url = bastion.url("/mcp");
    let other_trace = "6c0ffee06c0ffee06c0ffee06c0ffee0";
    let (during, server) = runtime().block_on(async {
        let mut stream = listen_2026(
            &url,
            "listen-b",
            json!({"resourceSubscriptions": [RESOURCE]}),
            &traceparent(TRACE_ID, CLIENT_SPAN),
        )
        .await;
        let ack = next_frame(&mut stream).await.unwrap();
        assert_eq!(
            ack["method"], "notifications/subscriptions/acknowledged",
            "{ack}"
        );
        assert_eq!(
            ack["params"]["notifications"]["resourceSubscriptions"],
            json!([RESOURCE]),
            "{ack}"
        );
        // while the stream is open: the SERVER span and its two backend calls have ended
        let seen = listen_spans_while_open(&receiver, 2);

        // updates start (a call in a trace of its own) and come down the stream
        // (a thread of its own: `call_2026` runs a runtime of its own)
        let url = url.clone();
        let (status, answer) = std::thread::spawn(move || {
            call_2026(
                &url,
                30,
                "toggle-subscriber-updates",
                json!({"arguments": {},
                       "_meta": meta_2026(&traceparent(other_trace, CLIENT_SPAN), json!({}))}),
            )
        })
        .join()
        .unwrap();
        assert_eq!(status, 200, "{answer}");
        let update = next_frame(&mut stream).await.unwrap();
        assert_eq!(
            update["method"], "notifications/resources/updated",
            "{update}"
        );
        assert_eq!(update["params"]["uri"], RESOURCE, "{update}");
        drop(stream);
        seen
    });

    // the link's `initialize` and the `resources/subscribe` it sent, each a CLIENT span child of
    // the listen's SERVER span, each received by the child under its own span's context
    let calls = backend_calls(&during, &server);
    let names: Vec<&str> = calls.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["initialize", "resources/subscribe"], "{calls:#?}");
    let subscribe = calls[1];
    assert_eq!(attr(subscribe, "mcp.method.name"), "resources/subscribe");
    assert_ne!(subscribe["status"], "ERROR", "{subscribe:#}");
    let in_trace = |method: &str| -> Vec<(String, String)> {
        received(&log, method)
            .iter()
            .map(received_parent)
            .filter(|(trace, _)| trace == TRACE_ID)
            .collect()
    };
    assert_eq!(
        in_trace("resources/subscribe"),
        [(
            TRACE_ID.to_owned(),
            subscribe["span_id"].as_str().unwrap().to_owned()
        )]
    );
    assert_eq!(
        in_trace("initialize"),
        [(
            TRACE_ID.to_owned(),
            calls[0]["span_id"].as_str().unwrap().to_owned()
        )]
    );

    // the updates the stream relayed, its end and the shutdown add no span to the trace
    assert!(
        bastion.stop().is_some_and(|s| s.success()),
        "{}",
        bastion.logs()
    );
    let all = receiver.spans();
    let traced = of_client_trace(&all);
    assert_eq!(traced.len(), 3, "{traced:#?}");
}

#[test]
fn a_resources_subscribe_in_a_2025_session_has_its_backend_call_span_and_updates_have_none() {
    let receiver = Receiver::start("session-subscribe");
    let log = test_dir("otel-session-subscribe").join("received.jsonl");
    let mut bastion = Server::bastion_with_env(
        &[
            "--otlp-endpoint",
            &receiver.endpoint(),
            "--shutdown-timeout",
            "1",
        ],
        &teed(&log, tests::everything_stdio()),
        &[("OTEL_BSP_SCHEDULE_DELAY", "3600000")],
    );
    let url = bastion.url("/mcp");
    let session = open_session(&url);
    let in_session = |trace: &str, id: u64, method: &str, params: Value| {
        let (url, session, trace) = (url.clone(), session.clone(), trace.to_owned());
        let method = method.to_owned();
        // (a thread of its own: `post` runs a runtime of its own)
        std::thread::spawn(move || {
            post(
                &url,
                &[
                    ("mcp-session-id", &session),
                    ("mcp-protocol-version", "2025-11-25"),
                    ("traceparent", &traceparent(&trace, CLIENT_SPAN)),
                ],
                json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}),
            )
        })
        .join()
        .unwrap()
    };
    let (status, _, answer) =
        in_session(TRACE_ID, 2, "resources/subscribe", json!({"uri": RESOURCE}));
    assert_eq!(status, 200, "{answer}");
    assert!(answer["result"].is_object(), "{answer}");

    // updates (started by a call in a trace of its own) come on the session's GET stream
    let other_trace = "6c0ffee06c0ffee06c0ffee06c0ffee0";
    runtime().block_on(async {
        let res = reqwest::Client::new()
            .get(&url)
            .header("accept", "text/event-stream")
            .header("mcp-session-id", &session)
            .header("mcp-protocol-version", "2025-11-25")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let mut stream = frames(res);
        let (status, _, answer) = in_session(
            other_trace,
            3,
            "tools/call",
            json!({"name": "toggle-subscriber-updates", "arguments": {}}),
        );
        assert_eq!(status, 200, "{answer}");
        loop {
            let frame = next_frame(&mut stream).await.unwrap();
            if frame["method"] == "notifications/resources/updated" {
                assert_eq!(frame["params"]["uri"], RESOURCE, "{frame}");
                break;
            }
        }
    });

    // the session ends (and its GET stream with it) before the shutdown
    runtime().block_on(async {
        let res = reqwest::Client::new()
            .delete(&url)
            .header("mcp-session-id", &session)
            .header("mcp-protocol-version", "2025-11-25")
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success(), "{}", res.status());
    });
    let (spans, server) = traced_spans(&mut bastion, &receiver);
    assert_eq!(server["name"], "resources/subscribe");
    assert_eq!(attr(&server, "mcp.method.name"), "resources/subscribe");
    let calls = backend_calls(&spans, &server);
    assert_eq!(calls.len(), 1, "{calls:#?}");
    let call = calls[0];
    assert_eq!(call["name"], "resources/subscribe");
    assert_eq!(attr(call, "jsonrpc.request.id"), "2");
    assert_ne!(call["status"], "ERROR", "{call:#}");
    // the child received the subscribe under the CLIENT span's context
    let sent: Vec<(String, String)> = received(&log, "resources/subscribe")
        .iter()
        .map(received_parent)
        .collect();
    assert_eq!(
        sent,
        [(
            TRACE_ID.to_owned(),
            call["span_id"].as_str().unwrap().to_owned()
        )]
    );
    // the updates that followed are in no span of the subscribe's trace
    let traced = of_client_trace(&spans);
    assert_eq!(traced.len(), 2, "{traced:#?}");
}

#[test]
fn spans_are_flushed_when_the_drain_gives_up_on_open_connections_and_exits() {
    let receiver = Receiver::start("forced-exit");
    let mut bastion = Server::bastion_with_env(
        &[
            "--otlp-endpoint",
            &receiver.endpoint(),
            "--json-response",
            "--shutdown-timeout",
            "1",
        ],
        &tests::everything_stdio(),
        // only a flush at exit can deliver the spans in time
        &[("OTEL_BSP_SCHEDULE_DELAY", "3600000")],
    );
    let url = bastion.url("/mcp");
    let session = open_session(&url);
    let (status, _, _) = post(
        &url,
        &[
            ("mcp-session-id", &session),
            ("mcp-protocol-version", "2025-11-25"),
            ("traceparent", &traceparent(TRACE_ID, CLIENT_SPAN)),
        ],
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
               "params": {"name": "echo", "arguments": {"message": "before the exit"}}}),
    );
    assert_eq!(status, 200);
    // a client that never finishes its request head keeps its connection open past the drain
    let mut stalled =
        std::net::TcpStream::connect(tests::raw::socket_addr(bastion.base_url())).unwrap();
    std::io::Write::write_all(&mut stalled, b"POST /mcp HTTP/1.1\r\nHost: bastion\r\n").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    bastion.stop();
    assert!(
        bastion
            .logs()
            .contains("connections still open after the shutdown timeout; exiting"),
        "{}",
        bastion.logs()
    );
    let spans = receiver.wait_for(|s| s["kind"] == "CLIENT" && s["trace_id"] == TRACE_ID);
    assert!(
        spans
            .iter()
            .any(|s| s["kind"] == "SERVER" && s["trace_id"] == TRACE_ID),
        "{spans:#?}"
    );
    drop(stalled);
}
