//! The audit log through the real `mcp-bastion` binary in front of stdio server-everything: the
//! official Python and TypeScript SDKs (with an API key) leave answered records naming the
//! principal, the client and the tool, and a call of an unknown tool is recorded as an error;
//! raw HTTP gets a 401, a 403 for a foreign Origin, a 403 for a missing scope, a 413
//! and a 429, each one record naming the refusing layer with its status; the API key appears
//! nowhere in the file; a logrotate-style rename plus SIGHUP loses no record. A sink that stops
//! reading (a pipe nobody drains) costs records, counted on `/metrics`, never a request.
//!
//! Needs `node`, `python3` with the `mcp` SDK and `tests/node/node_modules`.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::{
    process::Command,
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use tests::{
    ClientRun, Sdk, Server, Transport,
    audit::{records, wait_for_records, wait_until},
    clients_dir, everything_stdio, python,
};

const KEY: &str = "mcpb_audit0123456789abcdef0123456789";
const ORIGIN: &str = "https://app.example";

/// POSTs `body` to `/mcp` with the given extra headers; the status.
fn post(server: &Server, headers: &[(&str, &str)], body: String) -> u16 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut req = reqwest::Client::new()
            .post(server.url("/mcp"))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream");
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        req.body(body).send().await.unwrap().status().as_u16()
    })
}

fn call(id: i64, tool: &str) -> String {
    json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":tool,"arguments":{"m":"x"}}})
        .to_string()
}

fn find<'a>(recs: &'a [Value], what: &str, pred: impl Fn(&Value) -> bool) -> &'a Value {
    recs.iter()
        .find(|r| pred(r))
        .unwrap_or_else(|| panic!("no record of {what} in:\n{recs:#?}"))
}

#[test]
fn every_outcome_is_one_record_and_no_secret_is_written() {
    let dir = std::env::temp_dir().join(format!("mcp-bastion-audit-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("audit.jsonl");
    let path_arg = path.to_str().unwrap().to_owned();
    let keys = dir.join("keys.json");
    let entry =
        json!([{"key": KEY, "subject": "alice", "id": "ops-key", "scopes": ["tools:read"]}]);
    std::fs::write(&keys, entry.to_string()).unwrap();
    let server = Server::bastion(
        &[
            "--api-keys-file",
            keys.to_str().unwrap(),
            "--tool-scope",
            "audit-admin=tools:admin",
            "--allow-origin",
            ORIGIN,
            "--max-body-bytes",
            "4096",
            "--tool-rate-limit",
            "audit-probe=1/min",
            "--audit-log",
            &path_arg,
            "--audit-hash-arguments",
        ],
        &everything_stdio(),
    );
    let bearer = format!("Authorization: Bearer {KEY}");
    for sdk in [Sdk::Python, Sdk::TypeScript] {
        ClientRun::against(sdk, Transport::Streamable, &server, "")
            .arg("--header")
            .arg(bearer.clone())
            .run_ok(&server);
    }
    // a tool error, through the Python SDK
    let out = Command::new(python())
        .arg(clients_dir().join("py_call.py"))
        .args(["--url", &server.url("/mcp"), "--transport", "streamable"])
        .args(["--tool", "no-such-tool", "--expect", "error"])
        .args(["--header", &bearer])
        .current_dir(clients_dir())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let auth = format!("Bearer {KEY}");
    let auth = [("authorization", auth.as_str())];
    assert_eq!(post(&server, &[], call(901, "echo")), 401);
    let foreign = [auth[0], ("origin", "https://evil.example")];
    assert_eq!(post(&server, &foreign, call(902, "echo")), 403);
    let big = json!({"jsonrpc":"2.0","id":903,"method":"ping","params":{"pad":"x".repeat(8192)}});
    assert_eq!(post(&server, &auth, big.to_string()), 413);
    assert_eq!(post(&server, &auth, call(906, "audit-admin")), 403);
    // the first call passes the limit (and is refused further in: no session), the second not
    let _ = post(&server, &auth, call(904, "audit-probe"));
    assert_eq!(post(&server, &auth, call(905, "audit-probe")), 429);

    // the writer's queue is first in, first out: once the record of the last request sent (905)
    // is there, every earlier one is
    let recs = wait_until(&path, |recs| recs.iter().any(|r| r["request_id"] == 905));
    // the SDKs' sessions: initialize with the client's name, tool calls answered for the key's
    // principal, each with the session's fingerprint and the arguments' hash
    let inits: Vec<&Value> = recs
        .iter()
        .filter(|r| r["method"] == "initialize")
        .collect();
    assert!(inits.len() >= 2, "{recs:#?}");
    assert!(
        inits.iter().all(|r| r["client_name"].is_string()
            && r["subject"] == "alice"
            && r["auth_key_id"] == "ops-key"),
        "{inits:#?}"
    );
    let answered = find(&recs, "an answered tools/call", |r| {
        r["method"] == "tools/call" && r["outcome"] == "answered" && r["status"] == 200
    });
    assert!(answered["tool"].is_string(), "{answered}");
    assert!(
        answered["client_name"].is_string(),
        "the session's client: {answered}"
    );
    assert!(
        answered["session"].as_str().is_some_and(|s| s.len() == 8),
        "{answered}"
    );
    assert!(
        answered["arguments_sha256"]
            .as_str()
            .is_some_and(|s| s.len() == 64)
    );
    assert!(answered["request_id"].is_number() || answered["request_id"].is_string());
    assert!(answered["time"].as_str().unwrap().ends_with('Z'));

    let failed = find(&recs, "the unknown tool's call", |r| {
        r["tool"] == "no-such-tool"
    });
    assert!(
        failed["outcome"] == "tool_error"
            || (failed["outcome"] == "error" && failed["error_code"].is_i64()),
        "{failed}"
    );
    assert_eq!(failed["status"], 200, "{failed}");

    let refused = |id: i64, by: &str, status: u16| {
        let r = find(&recs, by, |r| {
            r["refused_by"] == by && r["status"] == status
        });
        assert_eq!(r["outcome"], "refused", "{r}");
        if id != 0 {
            assert_eq!(r["request_id"], id, "{r}");
        }
    };
    refused(0, "auth", 401);
    refused(0, "origin", 403);
    refused(0, "size", 413);
    refused(905, "rate_limit", 429);
    refused(906, "scopes", 403);
    let limited = find(&recs, "429", |r| r["status"] == 429);
    assert_eq!(limited["tool"], "audit-probe");
    assert!(limited["subject"].is_string());

    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains(KEY), "the API key is in the audit log");
    assert!(
        !text.contains("\"m\":\"x\""),
        "arguments are in the audit log"
    );

    // logrotate: rename, SIGHUP, then more requests: every record is in one of the two files
    let before = records(&path).len();
    let rotated = dir.join("audit.jsonl.1");
    std::fs::rename(&path, &rotated).unwrap();
    let hup = Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    std::thread::sleep(Duration::from_millis(300));
    for id in 0..3 {
        assert_eq!(post(&server, &[], call(950 + id, "echo")), 401);
    }
    let after = wait_for_records(&path, 3);
    assert_eq!(
        after.len(),
        3,
        "the new file has the records after the signal"
    );
    assert_eq!(
        records(&rotated).len(),
        before,
        "the renamed file keeps its records"
    );
    assert!(server.is_ready(), "SIGHUP does not stop the server");
}

#[test]
fn a_stalled_sink_drops_and_counts_records_and_never_stalls_a_request() {
    let dir = std::env::temp_dir().join(format!("mcp-bastion-audit-fifo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let fifo = dir.join("audit.pipe");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    // a reader that opens the pipe and never reads: the pipe fills, then the writer stalls
    let mut reader = Command::new("sh")
        .arg("-c")
        .arg(format!("exec sleep 300 < '{}'", fifo.display()))
        .spawn()
        .unwrap();
    let fifo_arg = fifo.to_str().unwrap().to_owned();
    let server = Server::bastion(
        &["--api-key", KEY, "--audit-log", &fifo_arg],
        &everything_stdio(),
    );
    // more requests than the queue (8192) and the pipe (64 KiB) hold together
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let url = server.url("/mcp");
    let started = Instant::now();
    let statuses: Vec<u16> = rt.block_on(async {
        let client = reqwest::Client::new();
        let tasks: Vec<_> = (0..16)
            .map(|t| {
                let (client, url) = (client.clone(), url.clone());
                tokio::spawn(async move {
                    let mut got = Vec::new();
                    for i in 0..640 {
                        let res = client
                            .post(&url)
                            .header("content-type", "application/json")
                            .header("accept", "application/json, text/event-stream")
                            .body(call(t * 1000 + i, "echo"))
                            .send()
                            .await
                            .unwrap();
                        got.push(res.status().as_u16());
                    }
                    got
                })
            })
            .collect();
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        all
    });
    assert_eq!(statuses.len(), 10_240);
    assert!(
        statuses.iter().all(|s| *s == 401),
        "every request was answered"
    );
    let elapsed = started.elapsed();
    let metrics = rt.block_on(async {
        reqwest::Client::new()
            .get(server.url("/metrics"))
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    });
    let dropped: f64 = metrics
        .lines()
        .find(|l| l.starts_with("mcp_audit_records_dropped_total"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no drop counter on /metrics:\n{metrics}"));
    assert!(dropped >= 100.0, "dropped {dropped} (in {elapsed:?})");
    assert!(
        server.logs().contains("audit log queue full"),
        "a warning was logged"
    );
    let _ = reader.kill();
    let _ = reader.wait();
}
