//! Graceful shutdown of the `mcp-bastion` binary: SIGTERM while a slow tool call is in flight lets
//! the call complete, then the process ends its sessions and children and exits 0.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::time::Duration;

use tests::{CallInFlight, Server, everything_stdio, process_gone};

#[test]
fn sigterm_lets_the_call_in_flight_finish_then_exits_0_with_no_child_left() {
    let mut server = Server::bastion(
        &["--session-mode", "per-session", "--shutdown-timeout", "10"],
        &everything_stdio(),
    );
    let call = CallInFlight::start(server.url("/mcp"), "shutdown");
    server.wait_for_children(1, Duration::from_secs(20));
    let children: Vec<u32> = server.children().iter().map(|(pid, _, _)| *pid).collect();
    call.wait_until_under_way();
    let status = server.stop();
    let report = call.assert_completed(&server);
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
        assert!(process_gone(pid), "child {pid} outlived the proxy");
    }
}
