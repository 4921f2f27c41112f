#![allow(clippy::unwrap_used, reason = "tests")]
//! One record per outcome, through `McpStack`; the writer's queue, drops and
//! reopen.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant, UNIX_EPOCH},
};

use axum::{
    Router,
    body::Body,
    http::{Request, StatusCode},
    routing::post,
};
use serde_json::{Value, json};
use tower::ServiceExt;

use super::{
    record::{classify, rfc3339},
    *,
};
use crate::{
    auth::{ApiKeys, McpAuthLayer, McpScopeLayer, ScopePolicy},
    cors::AllowedOrigins,
    inspect::McpInspectLayer,
    principal::Principal,
    ratelimit::{KeyBy, McpRateLimitLayer, RateLimitPolicy},
    session::new_session_id,
    stack::McpStack,
};

const KEY: &str = "audit-test-key-0123456789";
const ORIGIN: &str = "https://app.example";

fn temp_path(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mcp-audit-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("audit.jsonl")
}

fn app(path: &Path, hash: bool) -> Router {
    let writer = AuditWriter::open(AuditSink::File(path.to_owned()), 64).unwrap();
    let stack = McpStack::new()
        .browser(AllowedOrigins::new().allow(ORIGIN).unwrap())
        .audit(McpAuditLayer::new(writer).hash_arguments(hash))
        .auth(McpAuthLayer::new(
            ApiKeys::new().key(KEY, Principal::new("alice").with_key_id("ops-key")),
        ))
        .inspect(McpInspectLayer::new().max_body_bytes(1024))
        .scopes(McpScopeLayer::new(
            ScopePolicy::new().tool("admin", ["admin"]),
        ))
        .rate_limit(McpRateLimitLayer::new(
            RateLimitPolicy::new()
                .key(KeyBy::Principal)
                .default_limit("3/min".parse().unwrap()),
        ));
    Router::new()
        .route("/mcp", post(|| async { "{}" }))
        .layer(stack)
}

fn post_mcp(key: Option<&str>, session: Option<&str>, body: String) -> Request<Body> {
    let mut b = Request::post("/mcp")
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream");
    if let Some(key) = key {
        b = b.header("authorization", format!("Bearer {key}"));
    }
    if let Some(session) = session {
        b = b.header("mcp-session-id", session);
    }
    b.body(Body::from(body)).unwrap()
}

fn call(id: i64, tool: &str, args: Value) -> String {
    json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":tool,"arguments":args}})
        .to_string()
}

async fn status(app: &Router, req: Request<Body>) -> StatusCode {
    app.clone().oneshot(req).await.unwrap().status()
}

/// The records in `path`, once there are `n` of them (the writer's thread
/// flushes when its queue is empty).
fn records(path: &Path, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        if lines.len() >= n || Instant::now() > deadline {
            assert_eq!(lines.len(), n, "{text}");
            return lines;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn each_outcome_leaves_one_record_with_its_layer_and_status() {
    let path = temp_path("outcomes");
    let app = app(&path, false);
    let session = new_session_id(Some("replica-a")).unwrap();

    // answered
    let ok = post_mcp(
        Some(KEY),
        Some(&session),
        call(7, "echo", json!({"m":"hi"})),
    );
    assert_eq!(status(&app, ok).await, StatusCode::OK);
    // 401: no credential
    let unauth = post_mcp(None, None, call(8, "echo", json!({})));
    assert_eq!(status(&app, unauth).await, StatusCode::UNAUTHORIZED);
    // 403: foreign Origin
    let mut foreign = post_mcp(Some(KEY), None, call(9, "echo", json!({})));
    foreign
        .headers_mut()
        .insert("origin", "https://evil.example".parse().unwrap());
    assert_eq!(status(&app, foreign).await, StatusCode::FORBIDDEN);
    // 413: body over the limit
    let big = post_mcp(
        Some(KEY),
        None,
        call(10, "echo", json!({"m": "x".repeat(2048)})),
    );
    assert_eq!(status(&app, big).await, StatusCode::PAYLOAD_TOO_LARGE);
    // 403: insufficient scope
    let admin = post_mcp(Some(KEY), None, call(11, "admin", json!({})));
    assert_eq!(status(&app, admin).await, StatusCode::FORBIDDEN);
    // 429: the limit is 3/min for alice (answered and scopes-refused counted
    // or not, two more calls pass it)
    let mut last = StatusCode::OK;
    for id in 12..16 {
        last = status(&app, post_mcp(Some(KEY), None, call(id, "echo", json!({})))).await;
    }
    assert_eq!(last, StatusCode::TOO_MANY_REQUESTS);

    let recs = records(&path, 9);
    let answered = &recs[0];
    assert_eq!(answered["outcome"], "answered");
    assert_eq!(answered["status"], 200);
    assert_eq!(answered["request_id"], 7);
    assert_eq!(answered["method"], "tools/call");
    assert_eq!(answered["tool"], "echo");
    assert_eq!(answered["subject"], "alice");
    assert_eq!(answered["auth_key_id"], "ops-key");
    assert_eq!(
        answered["session"],
        crate::session::session_fingerprint(&session)
    );
    assert_eq!(answered["route_key"], "replica-a");
    assert!(answered["bytes_in"].as_u64().unwrap() > 0);
    assert!(answered["latency_ms"].as_f64().unwrap() >= 0.0);
    for rec in &recs {
        let latency = rec["latency_ms"].to_string();
        let decimals = latency.split_once('.').map_or(0, |(_, d)| d.len());
        assert!(decimals <= 3, "latency to the microsecond: {latency}");
    }
    assert!(answered.get("arguments_sha256").is_none());
    let time = answered["time"].as_str().unwrap();
    assert!(time.ends_with('Z') && time.len() == 24, "{time}");

    let refused = |i: usize, by: &str, code: u16| {
        assert_eq!(recs[i]["outcome"], "refused", "{}", recs[i]);
        assert_eq!(recs[i]["refused_by"], by, "{}", recs[i]);
        assert_eq!(recs[i]["status"], code, "{}", recs[i]);
    };
    refused(1, "auth", 401);
    assert!(recs[1].get("subject").is_none());
    refused(2, "origin", 403);
    refused(3, "size", 413);
    refused(4, "scopes", 403);
    assert_eq!(recs[4]["tool"], "admin");
    assert_eq!(recs[4]["request_id"], 11);
    refused(8, "rate_limit", 429);
    assert_eq!(recs[8]["subject"], "alice");

    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains(KEY), "the API key is never logged");
    assert!(!text.contains(&session), "the session id is never logged");
    assert!(!text.contains("\"hi\""), "arguments are not logged");
}

#[tokio::test]
async fn arguments_hash_is_of_the_canonical_form() {
    let path = temp_path("hash");
    let app = app(&path, true);
    let a = call(1, "echo", json!({"b": 1, "a": {"y": [1, 2], "x": "s"}}));
    let b = r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"arguments":{ "a":{"x":"s","y":[1,2]},"b":1},"name":"echo"}}"#;
    let c = call(3, "echo", json!({"b": 2}));
    for body in [a, b.to_owned(), c] {
        assert_eq!(
            status(&app, post_mcp(Some(KEY), None, body)).await,
            StatusCode::OK
        );
    }
    let recs = records(&path, 3);
    let hash = |i: usize| recs[i]["arguments_sha256"].as_str().unwrap().to_owned();
    assert_eq!(hash(0).len(), 64);
    assert_eq!(hash(0), hash(1), "key order does not change the hash");
    assert_ne!(hash(0), hash(2));
}

#[test]
fn status_and_stage_name_the_refusing_layer() {
    assert_eq!(classify(200, true), (Outcome::Answered, None));
    assert_eq!(classify(202, true), (Outcome::Answered, None));
    assert_eq!(
        classify(401, false),
        (Outcome::Refused, Some(RefusedBy::Auth))
    );
    assert_eq!(
        classify(403, false),
        (Outcome::Refused, Some(RefusedBy::Origin))
    );
    assert_eq!(
        classify(403, true),
        (Outcome::Refused, Some(RefusedBy::Scopes))
    );
    assert_eq!(
        classify(413, false),
        (Outcome::Refused, Some(RefusedBy::Size))
    );
    assert_eq!(
        classify(429, true),
        (Outcome::Refused, Some(RefusedBy::RateLimit))
    );
    assert_eq!(
        classify(404, true),
        (Outcome::Refused, Some(RefusedBy::Request))
    );
    assert_eq!(classify(502, true), (Outcome::Failed, None));
}

#[test]
fn time_is_rfc3339_utc() {
    let at = UNIX_EPOCH + Duration::from_millis(1_796_408_503_512);
    assert_eq!(rfc3339(at), "2026-12-04T18:21:43.512Z");
    assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
    // a leap day
    assert_eq!(
        rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)),
        "2000-02-29T00:00:00.000Z"
    );
}

#[test]
fn sink_names() {
    assert_eq!("stderr".parse::<AuditSink>().unwrap(), AuditSink::Stderr);
    assert!("".parse::<AuditSink>().is_err());
}

#[test]
fn rename_then_reopen_loses_no_record() {
    let path = temp_path("reopen");
    let rotated = path.with_extension("jsonl.1");
    let writer = AuditWriter::open(AuditSink::File(path.clone()), 1024).unwrap();
    for i in 0..500 {
        writer.write_line(format!("{{\"n\":{i}}}"));
    }
    std::fs::rename(&path, &rotated).unwrap();
    writer.reopen();
    for i in 500..1000 {
        writer.write_line(format!("{{\"n\":{i}}}"));
    }
    drop(writer);
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        seen = [&rotated, &path]
            .iter()
            .flat_map(|p| {
                std::fs::read_to_string(p)
                    .unwrap_or_default()
                    .lines()
                    .map(|l| {
                        serde_json::from_str::<Value>(l).unwrap()["n"]
                            .as_u64()
                            .unwrap()
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        if seen.len() == 1000 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    seen.sort_unstable();
    assert_eq!(seen, (0..1000).collect::<Vec<_>>());
    assert!(
        std::fs::read_to_string(&path).unwrap().lines().count() > 0,
        "lines after the reopen go to the new file"
    );
}

#[cfg(unix)]
#[test]
fn a_stalled_pipe_drops_and_counts_instead_of_blocking() {
    let path = temp_path("fifo");
    let fifo = path.with_extension("fifo");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    // a reader that opens the pipe and never reads
    let mut reader = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("exec sleep 30 < '{}'", fifo.display()))
        .spawn()
        .unwrap();
    let writer = AuditWriter::open(AuditSink::File(fifo.clone()), 8).unwrap();
    let line = "x".repeat(200);
    let started = Instant::now();
    for _ in 0..5000 {
        writer.write_line(line.clone());
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "writes never wait on the sink"
    );
    // the pipe holds at most 64 KiB (~320 lines) plus 8 queued
    assert!(writer.dropped() > 4000, "{}", writer.dropped());
    reader.kill().unwrap();
    reader.wait().unwrap();
}

#[test]
fn the_answer_says_whether_it_was_an_error_or_a_tool_error() {
    use super::body::judge_answer;
    let rec = |id: i64| AuditRecord {
        request_id: Some(crate::jsonrpc::RequestId::Number(id)),
        ..AuditRecord::default()
    };
    let mut json_error = rec(3);
    judge_answer(
        br#"{"jsonrpc":"2.0","id":3,"error":{"code":-32602,"message":"unknown tool"}}"#,
        &mut json_error,
    );
    assert_eq!(
        (json_error.outcome, json_error.error_code),
        (Outcome::Error, Some(-32602))
    );

    // over SSE, after a notification of another message
    let mut tool_error = rec(4);
    judge_answer(
        b"event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\n\n\
          event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":4,\"result\":{\"isError\":true,\"content\":[]}}\n\n",
        &mut tool_error,
    );
    assert_eq!(
        (tool_error.outcome, tool_error.error_code),
        (Outcome::ToolError, None)
    );

    let mut answered = rec(5);
    judge_answer(
        br#"{"jsonrpc":"2.0","id":5,"result":{"content":[]}}"#,
        &mut answered,
    );
    assert_eq!(answered.outcome, Outcome::Answered);

    // another request's error is not this one's
    let mut other = rec(6);
    judge_answer(
        br#"{"jsonrpc":"2.0","id":7,"error":{"code":-1,"message":"x"}}"#,
        &mut other,
    );
    assert_eq!((other.outcome, other.error_code), (Outcome::Answered, None));

    // a refusal keeps its outcome, and gains the code of its JSON-RPC body
    let mut refused = rec(8);
    refused.outcome = Outcome::Refused;
    judge_answer(
        br#"{"jsonrpc":"2.0","id":8,"error":{"code":-32029,"message":"slow down"}}"#,
        &mut refused,
    );
    assert_eq!(
        (refused.outcome, refused.error_code),
        (Outcome::Refused, Some(-32029))
    );
}

#[tokio::test]
async fn bytes_out_are_counted_and_an_error_answer_is_recorded_as_one() {
    use http_body_util::BodyExt;
    let path = temp_path("body");
    let writer = AuditWriter::open(AuditSink::File(path.clone()), 64).unwrap();
    let answer = r#"{"jsonrpc":"2.0","id":21,"error":{"code":-32601,"message":"no such method"}}"#;
    let app = Router::new()
        .route("/mcp", post(move || async move { answer }))
        .layer(McpStack::new().audit(McpAuditLayer::new(writer)));
    let req = post_mcp(None, None, call(21, "echo", json!({})));
    let res = app.oneshot(req).await.unwrap();
    assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), answer);
    let recs = records(&path, 1);
    assert_eq!(recs[0]["outcome"], "error", "{}", recs[0]);
    assert_eq!(recs[0]["error_code"], -32601);
    assert_eq!(recs[0]["bytes_out"], answer.len());
}

#[tokio::test]
async fn every_record_of_a_session_names_the_client_its_initialize_named() {
    let path = temp_path("clients");
    let writer = AuditWriter::open(AuditSink::File(path.clone()), 64).unwrap();
    let session = new_session_id(Some("r2")).unwrap();
    let sid = session.clone();
    let app = Router::new()
        .route(
            "/mcp",
            post(move || {
                let sid = sid.clone();
                async move { ([("mcp-session-id", sid)], "{}") }
            })
            .delete(|| async { "" }),
        )
        .layer(McpStack::new().audit(McpAuditLayer::new(writer)));
    let init = json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
        "protocolVersion":"2025-06-18","capabilities":{},
        "clientInfo":{"name":"inspector","version":"1.2.3"}}});
    assert_eq!(
        status(&app, post_mcp(None, None, init.to_string())).await,
        StatusCode::OK
    );
    let in_session = post_mcp(None, Some(&session), call(2, "echo", json!({})));
    assert_eq!(status(&app, in_session).await, StatusCode::OK);
    let end = Request::delete("/mcp")
        .header("mcp-session-id", &session)
        .body(Body::empty())
        .unwrap();
    assert_eq!(status(&app, end).await, StatusCode::OK);
    let after = post_mcp(None, Some(&session), call(3, "echo", json!({})));
    assert_eq!(status(&app, after).await, StatusCode::OK);

    let layer = McpAuditLayer::new(AuditWriter::open(AuditSink::Stderr, 1).unwrap());
    layer.clients.remember(&session, (Some("x".into()), None));
    let shown = format!("{layer:?}");
    assert!(
        !shown.contains(&session),
        "Debug never shows a session id: {shown}"
    );

    let recs = records(&path, 4);
    let fingerprint = crate::session::session_fingerprint(&session);
    assert_eq!(
        recs[0]["session"], fingerprint,
        "initialize names the session it opened"
    );
    assert_eq!(recs[0]["route_key"], "r2");
    for rec in &recs[..2] {
        assert_eq!(rec["client_name"], "inspector", "{rec}");
        assert_eq!(rec["client_version"], "1.2.3", "{rec}");
    }
    assert_eq!(recs[2]["method"], "http:DELETE");
    assert_eq!(recs[2]["session"], fingerprint);
    assert!(
        recs[3].get("client_name").is_none(),
        "a deleted session is forgotten"
    );
}

#[tokio::test]
async fn a_request_refused_before_authentication_names_its_session_and_client_not_a_subject() {
    let path = temp_path("refused-session");
    let writer = AuditWriter::open(AuditSink::File(path.clone()), 64).unwrap();
    let session = new_session_id(Some("r3")).unwrap();
    let sid = session.clone();
    let app = Router::new()
        .route(
            "/mcp",
            post(move || {
                let sid = sid.clone();
                async move { ([("mcp-session-id", sid)], "{}") }
            }),
        )
        .layer(
            McpStack::new()
                .browser(AllowedOrigins::new().allow(ORIGIN).unwrap())
                .audit(McpAuditLayer::new(writer))
                .auth(McpAuthLayer::new(
                    ApiKeys::new().key(KEY, Principal::new("alice")),
                )),
        );
    let init = json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
        "protocolVersion":"2025-06-18","capabilities":{},
        "clientInfo":{"name":"inspector","version":"1.2.3"}}});
    assert_eq!(
        status(&app, post_mcp(Some(KEY), None, init.to_string())).await,
        StatusCode::OK
    );
    // the session's id with a wrong key: refused by authentication
    let wrong = post_mcp(
        Some("wrong-key"),
        Some(&session),
        call(2, "echo", json!({})),
    );
    assert_eq!(status(&app, wrong).await, StatusCode::UNAUTHORIZED);

    let recs = records(&path, 2);
    let refused = &recs[1];
    assert_eq!(refused["refused_by"], "auth", "{refused}");
    assert_eq!(
        refused["session"],
        crate::session::session_fingerprint(&session)
    );
    assert_eq!(refused["route_key"], "r3");
    assert_eq!(refused["client_name"], "inspector", "{refused}");
    assert!(refused.get("subject").is_none(), "{refused}");
    assert!(
        refused.get("tool").is_none(),
        "the body was not read: {refused}"
    );
}

#[test]
fn the_written_line_is_the_records_serialization() {
    let full = AuditRecord {
        time: rfc3339(UNIX_EPOCH + Duration::from_millis(1_796_408_503_512)),
        request_id: Some(crate::jsonrpc::RequestId::String("a\"b\\c\u{1}\n".into())),
        subject: Some("alice \u{e9}\u{7f}\u{1f}".into()),
        auth_key_id: Some("ops\tkey\r\u{8}\u{c}".into()),
        client_name: Some("claude-code".into()),
        client_version: Some("1.0.0".into()),
        session: Some("9f3c01a2".into()),
        route_key: Some("replica-a".into()),
        method: "tools/call".into(),
        tool: Some("echo".into()),
        prompt: Some("p".into()),
        resource: Some("file:///x".into()),
        arguments_sha256: Some("ab".repeat(32)),
        outcome: Outcome::Refused,
        error_code: Some(-32_602),
        refused_by: Some(RefusedBy::RateLimit),
        status: 429,
        latency_ms: 3.25,
        bytes_in: Some(112),
        bytes_out: Some(u64::MAX),
    };
    let minimal = AuditRecord {
        time: rfc3339(UNIX_EPOCH),
        method: "http:GET".into(),
        latency_ms: 0.000_012_5,
        ..AuditRecord::default()
    };
    let numeric = AuditRecord {
        request_id: Some(crate::jsonrpc::RequestId::Number(i64::MIN)),
        latency_ms: 12.0,
        outcome: Outcome::ToolError,
        ..AuditRecord::default()
    };
    for outcome in [
        Outcome::Answered,
        Outcome::Error,
        Outcome::ToolError,
        Outcome::Refused,
        Outcome::Failed,
    ] {
        assert_eq!(
            serde_json::to_value(outcome).unwrap(),
            Value::from(outcome.as_str())
        );
    }
    for by in [
        RefusedBy::Origin,
        RefusedBy::Auth,
        RefusedBy::Scopes,
        RefusedBy::RateLimit,
        RefusedBy::Size,
        RefusedBy::Request,
    ] {
        assert_eq!(serde_json::to_value(by).unwrap(), Value::from(by.as_str()));
    }
    for rec in [full, minimal, numeric] {
        let mut line = Vec::new();
        rec.write_json(&mut line);
        assert_eq!(
            String::from_utf8(line).unwrap(),
            serde_json::to_string(&rec).unwrap()
        );
    }
}

#[test]
fn the_answer_is_found_in_a_batch_and_by_a_string_id() {
    use super::body::judge_answer;
    let with_id = |id: crate::jsonrpc::RequestId| AuditRecord {
        request_id: Some(id),
        ..AuditRecord::default()
    };
    // in a batch, after another message; the rest of the batch is skipped
    let mut in_batch = with_id(crate::jsonrpc::RequestId::Number(2));
    judge_answer(
        br#" [{"jsonrpc":"2.0","id":1,"error":{"code":-1}}, 7, {"jsonrpc":"2.0","id":2,"result":{"content":[{"type":"text","text":"x"}],"isError":true}}, {"id":2,"error":{"code":-3}}]"#,
        &mut in_batch,
    );
    assert_eq!(
        (in_batch.outcome, in_batch.error_code),
        (Outcome::ToolError, None)
    );
    // a string id, escaped in the answer; the error's code is read when the
    // error comes before the id
    let mut by_string = with_id(crate::jsonrpc::RequestId::String("a/b".into()));
    judge_answer(
        br#"{"error":{"message":"no","code":-32601,"data":[1,{"code":2}]},"id":"a\/b","jsonrpc":"2.0"}"#,
        &mut by_string,
    );
    assert_eq!(
        (by_string.outcome, by_string.error_code),
        (Outcome::Error, Some(-32601))
    );
    // 1.0 is not the id 1; a null id is no one's; an answer cut short says
    // nothing
    for body in [
        &br#"{"id":1.0,"error":{"code":-1}}"#[..],
        br#"{"id":null,"error":{"code":-1}}"#,
        br#"{"id":1,"error":{"code":-1}"#,
        br#"{"id":1,"error":{"code":-1}} trailing"#,
        b"",
    ] {
        let mut rec = with_id(crate::jsonrpc::RequestId::Number(1));
        judge_answer(body, &mut rec);
        assert_eq!((rec.outcome, rec.error_code), (Outcome::Answered, None));
    }
    // a record without an id takes the first message with one, even null
    let mut no_id = AuditRecord::default();
    judge_answer(
        b"event: message\r\ndata: {\"method\":\"x\"}\r\n\r\ndata:   {\"id\":null,\"error\":{\"code\":-32700}}\n\n",
        &mut no_id,
    );
    assert_eq!(
        (no_id.outcome, no_id.error_code),
        (Outcome::Error, Some(-32700))
    );
    // a non-integer code or a non-boolean isError is not read as one
    let mut odd = with_id(crate::jsonrpc::RequestId::Number(1));
    judge_answer(
        br#"{"id":1,"error":{"code":"-1"},"result":{"isError":"true"}}"#,
        &mut odd,
    );
    assert_eq!((odd.outcome, odd.error_code), (Outcome::Answered, None));
}

#[test]
fn an_answer_without_error_members_is_not_parsed_and_escapes_still_count() {
    use super::body::judge_answer;
    let rec = || AuditRecord {
        request_id: Some(crate::jsonrpc::RequestId::Number(1)),
        ..AuditRecord::default()
    };
    let mut plain = rec();
    judge_answer(
        br#"{"jsonrpc":"2.0","id":1,"result":{"content":[]}}"#,
        &mut plain,
    );
    assert_eq!((plain.outcome, plain.error_code), (Outcome::Answered, None));
    // member names spelt with escapes are still read
    let mut escaped = rec();
    judge_answer(
        br#"{"jsonrpc":"2.0","id":1,"\u0065rror":{"c\u006fde":-32000}}"#,
        &mut escaped,
    );
    assert_eq!(
        (escaped.outcome, escaped.error_code),
        (Outcome::Error, Some(-32000))
    );
    let mut tool = rec();
    judge_answer(br#"{"id":1,"result":{"is\u0045rror":true}}"#, &mut tool);
    assert_eq!(tool.outcome, Outcome::ToolError);
}

#[test]
fn a_tool_answer_with_is_error_false_or_true_is_judged_right() {
    use super::body::judge_answer;
    let rec = || AuditRecord {
        request_id: Some(crate::jsonrpc::RequestId::Number(1)),
        ..AuditRecord::default()
    };
    let mut ok = rec();
    judge_answer(
        b"event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"content\":[{\"type\":\"text\",\"text\":\"an error\"}],\"isError\":false}}\n\n",
        &mut ok,
    );
    assert_eq!((ok.outcome, ok.error_code), (Outcome::Answered, None));
    let mut spaced = rec();
    judge_answer(
        b"data: {\"id\":1,\"result\":{\"isError\" :\t true}}\n\n",
        &mut spaced,
    );
    assert_eq!(spaced.outcome, Outcome::ToolError);
    let mut error = rec();
    judge_answer(br#"{"id":1,"error" : {"code":-32603}}"#, &mut error);
    assert_eq!(
        (error.outcome, error.error_code),
        (Outcome::Error, Some(-32603))
    );
}
