//! The official MCP conformance suite (`@modelcontextprotocol/conformance`, pinned in
//! `tests/node/package.json`) against the `mcp-bastion` binary in front of stdio server-everything.
//!
//! Only the scenarios that test the protocol and the transport run here. The suite's other
//! scenarios call tools, resources and prompts by the names of the suite's own reference server
//! (`test_image_content`, …), which server-everything does not have; they test a server's
//! features, not a proxy's.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::process::Command;

use tests::{Server, SessionMode, node_modules_dir};

/// Protocol and transport scenarios, each of which must pass through the proxy.
const SCENARIOS: &[&str] = &[
    "server-initialize",
    "ping",
    "logging-set-level",
    "tools-list",
    "tools-call-error",
    "server-sse-multiple-streams",
    "resources-list",
    "resources-subscribe",
    "resources-unsubscribe",
    "prompts-list",
];

fn run_suite(mode: SessionMode) {
    let server = Server::bastion_everything(mode, None);
    let url = server.url("/mcp");
    let bin = node_modules_dir().join("@modelcontextprotocol/conformance/dist/index.js");
    let mut failed = Vec::new();
    for scenario in SCENARIOS {
        let out = Command::new("node")
            .arg(&bin)
            .args(["server", "--url", &url, "--scenario", scenario])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        // "Passed: 1/1, 0 failed, 0 warnings"
        let summary = stdout
            .lines()
            .find_map(|l| l.trim().strip_prefix("Passed:"))
            .unwrap_or("")
            .to_owned();
        let all_passed = summary
            .split(',')
            .next()
            .and_then(|f| f.trim().split_once('/'))
            .is_some_and(|(passed, total)| passed == total && passed != "0");
        if !out.status.success() || !all_passed || !summary.contains(" 0 failed") {
            failed.push(format!(
                "{scenario}: {summary}\n{stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    assert!(
        failed.is_empty(),
        "conformance scenarios failed ({mode:?}):\n{}\n--- server log ---\n{}",
        failed.join("\n"),
        server.logs()
    );
}

#[test]
fn conformance_protocol_scenarios_pass_through_the_proxy_per_session() {
    run_suite(SessionMode::PerSession);
}

#[test]
fn conformance_protocol_scenarios_pass_through_the_proxy_shared() {
    run_suite(SessionMode::Shared);
}
