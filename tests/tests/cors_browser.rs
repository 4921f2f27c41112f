#![allow(clippy::unwrap_used, reason = "tests")]
//! A real browser: headless Debian Chromium (`.ci/deps/chromium.sh`) driven by `playwright-core`
//! (`tests/node`), loading a page from an allowed origin and the same page from another origin.
//! Each page calls the `mcp-bastion` binary (in front of server-everything, on a third origin) with
//! `fetch` and with the TypeScript SDK bundled for the browser, sending an `Authorization` header:
//!
//! - from the allowed origin the preflight is granted, the page reads `Mcp-Session-Id`, and the SDK
//!   connects and calls a tool;
//! - from the other origin the preflight gets no CORS grant (the browser blocks the request), and
//!   a "simple" no-cors POST, which skips preflight, is refused 403 by the Origin guard before it
//!   can open a session.
//!
//! The outcome is read from the page (`window.outcome`) by `tests/clients/browser_cors.mjs`.

use std::{
    net::TcpListener,
    process::{Command, Stdio},
    time::Duration,
};

use serde_json::Value;
use tests::{Server, clients_dir, everything_stdio, workspace_dir};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn statuses(outcome: &Value) -> Vec<String> {
    outcome["network"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn chromium_page_from_an_allowed_origin_reads_the_session_id_and_another_origin_is_refused() {
    assert!(
        std::path::Path::new("/usr/bin/chromium").exists(),
        "/usr/bin/chromium is missing: run `bash .ci/deps/chromium.sh`"
    );
    let (allowed, other) = (free_port(), free_port());
    let allowed_origin = format!("http://127.0.0.1:{allowed}");
    let server = Server::bastion(&["--allow-origin", &allowed_origin], &everything_stdio());
    let mcp = server.url("/mcp");
    let out = Command::new(std::env::var("NODE").unwrap_or_else(|_| "node".into()))
        .arg(clients_dir().join("browser_cors.mjs"))
        .args(["--mcp", &mcp])
        .args(["--allowed-port", &allowed.to_string()])
        .args(["--other-port", &other.to_string()])
        .args(["--timeout", "90"])
        .current_dir(workspace_dir())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary: Value = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| {
            panic!(
                "browser_cors.mjs failed ({})\n--- stdout ---\n{stdout}\n--- stderr ---\n{}\n--- server log ---\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr),
                server.logs()
            )
        });
    let (ok, bad) = (&summary["allowed"], &summary["other"]);

    // the allowed origin: fetch reads Mcp-Session-Id, the SDK connects and calls a tool
    assert_eq!(ok["origin"], allowed_origin.as_str(), "{summary}");
    assert_eq!(ok["fetchStatus"], 200, "{summary}");
    assert!(
        ok["fetchSessionId"].as_str().is_some_and(|s| s.len() >= 32),
        "{summary}"
    );
    assert_eq!(ok["deleteStatus"], 200, "{summary}");
    assert!(
        ok["sdkSessionId"].as_str().is_some_and(|s| s.len() >= 32),
        "{summary}"
    );
    assert_eq!(
        ok["sdkEcho"],
        format!("Echo: hello from {allowed_origin}"),
        "{summary}"
    );
    // (Chromium does not report preflights as responses: a cross-origin POST with Authorization
    // that got through was preflighted and granted)
    assert!(statuses(ok).contains(&"POST 200".to_owned()), "{summary}");

    // the other origin: the browser blocks it, and the server refuses what skips preflight
    assert!(
        bad["fetchError"]
            .as_str()
            .is_some_and(|e| e.contains("Failed to fetch")),
        "{summary}"
    );
    assert!(
        bad["fetchSessionId"].is_null() && bad["sdkSessionId"].is_null(),
        "{summary}"
    );
    assert!(bad["sdkError"].is_string(), "{summary}");
    let bad_posts: Vec<String> = statuses(bad)
        .into_iter()
        .filter(|s| s.starts_with("POST"))
        .collect();
    assert_eq!(
        bad_posts,
        ["POST 403"],
        "only the no-cors POST reaches the server, and it is refused: {summary}"
    );
    let logs = server.logs();
    assert!(
        logs.contains("refused a request from an origin that is not allowed")
            && logs.contains(&format!("http://127.0.0.1:{other}")),
        "{logs}"
    );

    // every session the allowed page opened was ended (DELETE): no child is left
    server.wait_for_children(0, Duration::from_secs(10));
}
