//! Graceful shutdown of the `mcp-bastion` binary: SIGTERM while a slow tool call is in flight lets
//! the call complete, then the process ends its sessions and children and exits 0.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::{process::Command, thread, time::Duration};

use serde_json::Value;
use tests::{Server, clients_dir, everything_stdio, python};

fn gone(pid: u32) -> bool {
    std::fs::metadata(format!("/proc/{pid}")).is_err()
}

#[test]
fn sigterm_lets_the_call_in_flight_finish_then_exits_0_with_no_child_left() {
    let mut server = Server::bastion(
        &["--session-mode", "per-session", "--shutdown-timeout", "10"],
        &everything_stdio(),
    );
    let url = server.url("/mcp");
    let started = std::env::temp_dir().join(format!("mcp-bastion-shutdown-{}", std::process::id()));
    let _ = std::fs::remove_file(&started);
    let started_arg = started.display().to_string();
    let call = thread::spawn(move || {
        Command::new(python())
            .arg(clients_dir().join("py_call.py"))
            .args(["--url", &url, "--transport", "streamable"])
            .args(["--tool", "trigger-long-running-operation"])
            .args(["--arguments", r#"{"duration": 2, "steps": 4}"#])
            .args(["--timeout", "20", "--started-file", &started_arg])
            .current_dir(clients_dir())
            .output()
            .unwrap()
    });
    server.wait_for_children(1, Duration::from_secs(20));
    let children: Vec<u32> = server.children().iter().map(|(pid, _, _)| *pid).collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !started.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the client never made its call"
        );
        thread::sleep(Duration::from_millis(10));
    }
    // the call (2 s long) is under way
    thread::sleep(Duration::from_millis(500));
    let _ = std::fs::remove_file(&started);
    let status = server.stop();
    let out = call.join().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: Value =
        serde_json::from_str(stdout.lines().last().unwrap_or("null")).unwrap_or_default();
    assert_eq!(
        report["outcome"],
        "ok",
        "the call in flight did not complete: {stdout}\n{}\n--- server log ---\n{}",
        String::from_utf8_lossy(&out.stderr),
        server.logs()
    );
    assert!(
        report["seconds"].as_f64().unwrap() >= 1.5,
        "the call ended early: {report}"
    );
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "exit status {status:?}\n{}",
        server.logs()
    );
    for pid in children {
        assert!(gone(pid), "child {pid} outlived the proxy");
    }
}
