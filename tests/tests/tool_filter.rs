//! `--tools-allow` / `--tools-deny`: the operator trims a backend's tools. With server-everything
//! behind the binary, both official SDKs on both transports see the removed tools neither in
//! `tools/list` nor as callable (the error of an unknown tool), the rest work, and the trim
//! composes with per-tool scopes.
#![allow(clippy::unwrap_used, reason = "tests")]

use serde_json::Value;
use tests::{Server, everything_stdio, script_report};

const KEY: &str = "KEY-TOOLS-6d1f";

/// Lists the tools and calls `call` through one SDK's client script; the report.
fn run(sdk: &str, transport: &str, server: &Server, call: &str) -> Value {
    let endpoint = if transport == "sse" { "/sse" } else { "/mcp" };
    let url = server.url(endpoint);
    let header = format!("Authorization: Bearer {KEY}");
    let (script, credential) = match sdk {
        "python" => ("py_tool.py", ["--header", header.as_str()]),
        _ => ("ts_tools.mjs", ["--bearer", KEY]),
    };
    let mut args = vec!["--url", &url, "--transport", transport, "--call", call];
    args.extend(credential);
    args.extend(["--arguments", r#"{"message": "hi"}"#]);
    script_report(script, &args)
}

fn tools(report: &Value) -> Vec<String> {
    report["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_owned())
        .collect()
}

fn bastion(args: &[&str]) -> Server {
    let mut all = vec!["--session-mode", "shared", "--api-key", KEY];
    all.extend_from_slice(args);
    Server::bastion(&all, &everything_stdio())
}

#[test]
fn denied_tools_are_neither_listed_nor_callable_in_both_sdks_on_both_transports() {
    let server = bastion(&["--tools-deny", "get-env", "--tools-deny", "*long-running*"]);
    for sdk in ["python", "typescript"] {
        for transport in ["streamable", "sse"] {
            let denied = run(sdk, transport, &server, "get-env");
            let listed = tools(&denied);
            assert!(
                listed.contains(&"echo".to_owned()),
                "{sdk} {transport}: {listed:?}"
            );
            assert!(
                !listed
                    .iter()
                    .any(|t| t == "get-env" || t.contains("long-running")),
                "{sdk} {transport} lists a removed tool: {listed:?}"
            );
            assert_eq!(
                denied["call"]["code"], -32602,
                "{sdk} {transport}: {denied}"
            );
            assert!(
                denied["call"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("Unknown tool: get-env")),
                "{sdk} {transport}: {denied}"
            );
            let allowed = run(sdk, transport, &server, "echo");
            assert!(
                allowed["call"]["text"]
                    .as_str()
                    .is_some_and(|t| t.contains("hi")),
                "{sdk} {transport}: {allowed}"
            );
        }
    }
}

#[test]
fn an_allow_list_keeps_only_its_tools_and_composes_with_scopes() {
    // get-sum needs a scope this key does not have; echo and get-sum are the only ones allowed
    let server = bastion(&[
        "--tools-allow",
        "echo",
        "--tools-allow",
        "get-s?m",
        "--tool-scope",
        "get-sum=math",
    ]);
    for sdk in ["python", "typescript"] {
        let report = run(sdk, "streamable", &server, "get-env");
        assert_eq!(tools(&report), ["echo"], "{sdk}: {report}");
        assert_eq!(report["call"]["code"], -32602, "{sdk}: {report}");
    }
}
