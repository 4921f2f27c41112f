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

/// SIGTERM without waiting for the exit.
fn sigterm(server: &Server) {
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &server.pid().to_string()])
        .status();
}

/// A lone server keeps accepting while it drains (its clients have nowhere else to go) and says
/// it is not ready; a replica (route key) closes its listener at the signal, so that a load
/// balancer's next connection attempt fails and goes to another replica.
#[test]
fn after_sigterm_readyz_reports_draining_and_a_replica_refuses_new_connections() {
    for route_key in [None, Some("r1")] {
        let mut args = vec!["--session-mode", "shared", "--shutdown-timeout", "10"];
        if let Some(key) = route_key {
            args.extend(["--route-key", key]);
        }
        let mut server = Server::bastion(&args, &everything_stdio());
        assert!(server.is_ready(), "ready before the signal");
        let call = CallInFlight::start(server.url("/mcp"), "drain-ready");
        call.wait_until_under_way();
        sigterm(&server);
        std::thread::sleep(Duration::from_millis(300));
        let answer = server.get("/readyz");
        match route_key {
            None => assert!(
                answer
                    .as_deref()
                    .is_some_and(|a| a.starts_with("HTTP/1.1 503") && a.contains("draining")),
                "a draining server is not ready: {answer:?}\n{}",
                server.logs()
            ),
            Some(_) => assert_eq!(
                answer,
                None,
                "a draining replica accepts no connection\n{}",
                server.logs()
            ),
        }
        if route_key.is_none() {
            call.assert_completed(&server);
        }
        // (a replica's clients reach it through a load balancer, which holds the connection the
        // call needs: tests/tests/nginx/restarts.rs; a direct client that needs a new connection
        // to answer the server during the drain is refused)
        let status = server.stop();
        assert_eq!(status.and_then(|s| s.code()), Some(0), "{}", server.logs());
    }
}
