//! The audit log through the real `mcp-bastion` binary, driven by the official Python and
//! TypeScript SDKs through every outcome (`tests/clients/py_outcomes.py`, `ts_outcomes.mjs`): a
//! call answered, a tool error, a 401 (a wrong key), a 403 for a missing scope, a 429, a 403 for a
//! foreign `Origin` set through the SDK's header options, a 413 (an argument over the size limit).
//! Every refused request the SDKs saw is exactly one record naming the refusing layer and its
//! status; records of requests that got past authentication name the SDK's client and the key's
//! subject; no key (the right one or the wrong one) and no argument is in the file. The drop
//! counter is on `/metrics` at 0 before anything was dropped, and client-chosen tool names and
//! methods are bounded in the file as they are in the metrics labels.
//!
//! Needs `node`, `python3` with the `mcp` SDK and `tests/node/node_modules`.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::{collections::HashSet, path::PathBuf, process::Command};

use serde_json::{Value, json};
use tests::{
    Server,
    audit::{wait_for_records, wait_until},
    clients_dir, everything_stdio, python,
};

const KEY: &str = "mcpb_auditsdk0123456789abcdef012345";
const WRONG_KEY: &str = "mcpb_wrongkey0123456789abcdef012345";
const MAX_BYTES: usize = 4096;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mcp-bastion-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs an outcomes script; its report (step → {statuses, outcome}).
fn run_outcomes(mut cmd: Command, server: &Server, name: &str) -> Value {
    let out = cmd
        .args([
            "--url",
            &server.url("/mcp"),
            "--key",
            KEY,
            "--bad-key",
            WRONG_KEY,
        ])
        .args([
            "--origin",
            "https://evil.example",
            "--scope-tool",
            "audit-admin",
        ])
        .args(["--limited-tool", "audit-probe", "--name", name])
        .args(["--max-bytes", &MAX_BYTES.to_string()])
        .current_dir(clients_dir())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{name}: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{name}: {e}: {stdout}"))
}

fn statuses(report: &Value, step: &str) -> Vec<u64> {
    report[step]["statuses"]
        .as_array()
        .unwrap_or_else(|| panic!("no step {step} in {report}"))
        .iter()
        .filter_map(Value::as_u64)
        .collect()
}

#[test]
fn both_sdks_drive_every_outcome_each_one_record_and_no_secret_is_written() {
    let dir = temp_dir("audit-sdk");
    let path = dir.join("audit.jsonl");
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
            "https://app.example",
            "--max-body-bytes",
            &MAX_BYTES.to_string(),
            "--tool-rate-limit",
            "audit-probe=1/min",
            "--audit-log",
            path.to_str().unwrap(),
            "--audit-hash-arguments",
        ],
        &everything_stdio(),
    );
    let mut py = Command::new(python());
    py.arg(clients_dir().join("py_outcomes.py"))
        .env("PYTHONDONTWRITEBYTECODE", "1");
    let mut ts = Command::new(std::env::var("NODE").unwrap_or_else(|_| "node".into()));
    ts.arg(clients_dir().join("ts_outcomes.mjs"));
    let reports = [
        ("audit-py", run_outcomes(py, &server, "audit-py")),
        ("audit-ts", run_outcomes(ts, &server, "audit-ts")),
    ];
    // what each SDK saw: every outcome
    for (name, report) in &reports {
        assert_eq!(report["answered"]["outcome"], "ok", "{name}: {report}");
        assert_eq!(
            report["tool_error"]["outcome"], "tool_error",
            "{name}: {report}"
        );
        for (step, status) in [
            ("auth", 401),
            ("scopes", 403),
            ("rate_limit", 429),
            ("origin", 403),
            ("size", 413),
        ] {
            assert_eq!(
                statuses(report, step).last(),
                Some(&status),
                "{name} {step}: {report}"
            );
        }
    }
    // every refusal the SDKs saw is one record, and nothing else is refused
    let refused_seen = reports
        .iter()
        .flat_map(|(_, r)| {
            ["auth", "scopes", "rate_limit", "origin", "size"].map(|s| statuses(r, s))
        })
        .flatten()
        .filter(|s| *s >= 400)
        .count();
    let refusals = |recs: &[Value]| recs.iter().filter(|r| r["outcome"] == "refused").count();
    let recs = wait_until(&path, |recs| refusals(recs) >= refused_seen);
    let refused: Vec<&Value> = recs.iter().filter(|r| r["outcome"] == "refused").collect();
    assert_eq!(refused.len(), refused_seen, "{refused:#?}");
    for (by, status) in [
        ("auth", 401),
        ("scopes", 403),
        ("rate_limit", 429),
        ("origin", 403),
        ("size", 413),
    ] {
        let of: Vec<&&Value> = refused.iter().filter(|r| r["refused_by"] == by).collect();
        assert_eq!(of.len(), 2, "one {by} refusal per SDK: {refused:#?}");
        assert!(of.iter().all(|r| r["status"] == status), "{of:#?}");
    }
    for (name, _) in &reports {
        let of_client = |what: &str, pred: &dyn Fn(&Value) -> bool| -> Value {
            let rec = recs
                .iter()
                .find(|r| r["client_name"] == *name && pred(r))
                .unwrap_or_else(|| panic!("no {what} record of {name} in:\n{recs:#?}"))
                .clone();
            assert_eq!(rec["subject"], "alice", "{rec}");
            assert_eq!(rec["auth_key_id"], "ops-key", "{rec}");
            assert!(
                rec["session"].as_str().is_some_and(|s| s.len() == 8),
                "{rec}"
            );
            assert_eq!(rec["client_version"], "1.2.3", "{rec}");
            rec
        };
        let answered = of_client("answered", &|r| {
            r["tool"] == "echo" && r["outcome"] == "answered"
        });
        assert_eq!(answered["status"], 200);
        assert!(answered["arguments_sha256"].is_string(), "{answered}");
        let failed = of_client("tool error", &|r| r["tool"] == "no-such-tool");
        assert_eq!(failed["outcome"], "tool_error", "{failed}");
        assert_eq!(failed["status"], 200, "{failed}");
        let scopes = of_client("scopes", &|r| r["refused_by"] == "scopes");
        assert_eq!(
            (&scopes["tool"], &scopes["status"]),
            (&json!("audit-admin"), &json!(403))
        );
        let limited = of_client("rate limit", &|r| r["refused_by"] == "rate_limit");
        assert_eq!(
            (&limited["tool"], &limited["status"]),
            (&json!("audit-probe"), &json!(429))
        );
        // refused before authentication, on the SDK's session: its session and client, no subject
        let size = recs
            .iter()
            .find(|r| r["client_name"] == *name && r["refused_by"] == "size")
            .unwrap_or_else(|| panic!("no 413 record of {name} in:\n{recs:#?}"));
        assert_eq!(size["status"], 413, "{size}");
        assert!(
            size["session"].as_str().is_some_and(|s| s.len() == 8),
            "{size}"
        );
    }
    // refused before authentication: nobody is named, and the wrong key is not either
    for r in refused
        .iter()
        .filter(|r| ["auth", "origin", "size"].contains(&r["refused_by"].as_str().unwrap_or("")))
    {
        assert!(r["subject"].is_null(), "{r}");
    }
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains(KEY), "the API key is in the audit log");
    assert!(
        !text.contains(WRONG_KEY),
        "the wrong key is in the audit log"
    );
    assert!(
        !text.contains("\"message\""),
        "arguments are in the audit log"
    );
    assert!(
        !text.contains("xxxxxxxx"),
        "the large argument is in the audit log"
    );
}

/// POSTs each body to `/mcp` with the key; the statuses.
fn post_all(server: &Server, bodies: Vec<String>) -> Vec<u16> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = reqwest::Client::new();
        let mut got = Vec::new();
        for body in bodies {
            let res = client
                .post(server.url("/mcp"))
                .bearer_auth(KEY)
                .header("content-type", "application/json")
                .header("accept", "application/json, text/event-stream")
                .body(body)
                .send()
                .await
                .unwrap();
            got.push(res.status().as_u16());
        }
        got
    })
}

fn scrape(server: &Server) -> String {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        reqwest::Client::new()
            .get(server.url("/metrics"))
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    })
}

#[test]
fn the_drop_counter_is_on_metrics_at_zero_before_any_drop() {
    let dir = temp_dir("audit-counter");
    let path = dir.join("audit.jsonl");
    let server = Server::bastion(
        &["--api-key", KEY, "--audit-log", path.to_str().unwrap()],
        &everything_stdio(),
    );
    let metrics = scrape(&server);
    let line = metrics
        .lines()
        .find(|l| l.starts_with("mcp_audit_records_dropped_total"))
        .unwrap_or_else(|| panic!("no drop counter on /metrics:\n{metrics}"));
    assert_eq!(line, "mcp_audit_records_dropped_total 0", "{metrics}");

    // and without an audit log, no such counter
    let plain = Server::bastion(&["--api-key", KEY], &everything_stdio());
    assert!(!scrape(&plain).contains("mcp_audit_records_dropped_total"));
}

#[test]
fn client_chosen_tool_names_and_methods_are_bounded_in_the_file() {
    let dir = temp_dir("audit-flood");
    let path = dir.join("audit.jsonl");
    let server = Server::bastion(
        &["--api-key", KEY, "--audit-log", path.to_str().unwrap()],
        &everything_stdio(),
    );
    let tools = 400;
    let methods = 50;
    let mut bodies: Vec<String> = (0..tools)
        .map(|i| {
            json!({"jsonrpc":"2.0","id":i,"method":"tools/call",
                   "params":{"name":format!("flood-{i}"),"arguments":{}}})
            .to_string()
        })
        .collect();
    bodies.extend((0..methods).map(|i| {
        json!({"jsonrpc":"2.0","id":1000 + i,"method":format!("flood/method-{i}")}).to_string()
    }));
    // names no label may take: too long, or with characters outside the label alphabet
    let long = "l".repeat(200);
    for name in [
        long.as_str(),
        "a name with spaces",
        "ünïcödé",
        "line\nbreak",
    ] {
        bodies.push(
            json!({"jsonrpc":"2.0","id":2000,"method":"tools/call",
                   "params":{"name":name,"arguments":{}}})
            .to_string(),
        );
    }
    let sent = bodies.len();
    assert_eq!(post_all(&server, bodies).len(), sent);
    let recs = wait_for_records(&path, sent);
    assert_eq!(recs.len(), sent, "one record per request");

    let tool_values: HashSet<&str> = recs.iter().filter_map(|r| r["tool"].as_str()).collect();
    assert!(
        tool_values.len() <= mcp_bastion::metrics::MAX_TOOL_LABELS + 1,
        "{} distinct tool names in the file",
        tool_values.len()
    );
    assert!(tool_values.contains("other"), "{tool_values:?}");
    assert!(
        !tool_values.contains(format!("flood-{}", tools - 1).as_str()),
        "the last flood name is past the bound"
    );
    let calls = recs.iter().filter(|r| r["method"] == "tools/call").count();
    assert_eq!(calls, tools as usize + 4);

    let method_values: HashSet<&str> = recs.iter().filter_map(|r| r["method"].as_str()).collect();
    assert_eq!(
        method_values,
        HashSet::from(["tools/call", "other"]),
        "unknown methods are `other`"
    );
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        !text.contains("flood/method-"),
        "a client-chosen method is in the file"
    );
    assert!(
        !text.contains(&long),
        "an unbounded tool name is in the file"
    );
    assert!(
        !text.contains("spaces"),
        "a tool name outside the alphabet is in the file"
    );
}
