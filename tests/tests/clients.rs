//! Real clients through the real proxy: the official Python SDK (`mcp` on PyPI) and the official
//! TypeScript SDK (`@modelcontextprotocol/sdk`), over Streamable HTTP and legacy HTTP+SSE, drive
//! the `mcp-bastion` binary in front of stdio `@modelcontextprotocol/server-everything`.
//!
//! The full scenario (see `tests/clients/py_client.py`) is: initialize, tools/list, an echo
//! tools/call, a tool that sends progress notifications, a tool whose server asks the client for
//! sampling and one that asks for elicitation (answered by the client, the answer checked in the
//! tool result), resources/read, prompts/get, and session end, after which the proxy must answer
//! that session with 404. Each test also checks the proxy's child processes: one per session and
//! gone (not a zombie) after the session ends, or exactly one shared by every session.
//!
//! The same scenario also runs against the rmcp demo server of `examples/` (profile `rmcp`, which
//! has no elicitation tool): served in process over both transports, and over stdio behind the
//! proxy.
//!
//! Needs `node`, `python3`, `pip install -r tests/requirements.txt` and
//! `npm ci --prefix tests/node` (all done by `bash .ci/test`).

use std::{
    sync::atomic::{AtomicBool, AtomicUsize, Ordering},
    thread,
    time::Duration,
};

use tests::{
    ClientRun, FULL_STEPS, Sdk, Server, SessionMode, Transport, assert_full_summary,
    assert_summary, example_bin,
};

/// How long the proxy may take to stop a per-session child after its session ended.
const CHILD_EXIT: Duration = Duration::from_secs(10);

/// Runs `f` while sampling the server's child-process count; returns `f`'s value and the largest
/// count seen.
fn with_max_children<T>(server: &Server, f: impl FnOnce() -> T) -> (T, usize) {
    /// Stops the sampler even when `f` panics (else the scope would never end).
    struct Stop<'a>(&'a AtomicBool);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    let done = AtomicBool::new(false);
    let max = AtomicUsize::new(0);
    let value = thread::scope(|scope| {
        scope.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                max.fetch_max(server.children().len(), Ordering::Relaxed);
                thread::sleep(Duration::from_millis(20));
            }
        });
        let _stop = Stop(&done);
        f()
    });
    (value, max.load(Ordering::Relaxed))
}

fn full_scenario(sdk: Sdk, transport: Transport, mode: SessionMode, prefix: Option<&str>) {
    let server = Server::bastion_everything(mode, prefix);
    let run = ClientRun::against(sdk, transport, &server, prefix.unwrap_or(""));
    let (summary, max_children) = with_max_children(&server, || run.run_ok(&server));
    assert_full_summary(&summary);
    assert_eq!(
        max_children,
        1,
        "one session should have used exactly one child process\n{}",
        server.logs()
    );
    match mode {
        // the session ended, so its child must be stopped and reaped
        SessionMode::PerSession => server.wait_for_children(0, CHILD_EXIT),
        SessionMode::Shared => {
            let children = server.children();
            assert!(
                children.len() <= 1,
                "shared mode runs at most one child: {children:?}"
            );
        }
    }
}

fn fifty_clients_on_one_shared_child(sdk: Sdk, transport: Transport) {
    const CLIENTS: usize = 50;
    const CALLS: usize = 4;
    let server = Server::bastion_everything(SessionMode::Shared, None);
    let run = ClientRun::against(sdk, transport, &server, "")
        .scenario("echo")
        .concurrency(CLIENTS)
        .calls(CALLS)
        .timeout(Duration::from_secs(120));
    let (summary, max_children) = with_max_children(&server, || run.run_ok(&server));
    assert_eq!(summary["clients"], CLIENTS, "{summary}");
    assert_eq!(
        summary["distinct_sessions"], CLIENTS,
        "every client must get its own session: {summary}"
    );
    assert_eq!(
        max_children,
        1,
        "all {CLIENTS} sessions must share one child process\n{}",
        server.logs()
    );
}

macro_rules! full_scenario_tests {
    ($($name:ident: $sdk:ident, $transport:ident, $mode:ident, $prefix:expr;)*) => {$(
        #[test]
        fn $name() {
            full_scenario(Sdk::$sdk, Transport::$transport, SessionMode::$mode, $prefix);
        }
    )*};
}

full_scenario_tests! {
    python_streamable_per_session_full_scenario: Python, Streamable, PerSession, None;
    python_streamable_shared_full_scenario: Python, Streamable, Shared, None;
    python_sse_per_session_full_scenario: Python, Sse, PerSession, None;
    python_sse_shared_full_scenario: Python, Sse, Shared, None;
    typescript_streamable_per_session_full_scenario: TypeScript, Streamable, PerSession, None;
    typescript_streamable_shared_full_scenario: TypeScript, Streamable, Shared, None;
    typescript_sse_per_session_full_scenario: TypeScript, Sse, PerSession, None;
    typescript_sse_shared_full_scenario: TypeScript, Sse, Shared, None;

    python_streamable_under_path_prefix_full_scenario: Python, Streamable, PerSession, Some("/k/abc");
    python_sse_under_path_prefix_full_scenario: Python, Sse, PerSession, Some("/k/abc");
    typescript_streamable_under_path_prefix_full_scenario: TypeScript, Streamable, PerSession, Some("/k/abc");
    typescript_sse_under_path_prefix_full_scenario: TypeScript, Sse, PerSession, Some("/k/abc");
}

#[test]
fn fifty_python_streamable_clients_share_one_child_and_each_gets_its_own_answers() {
    fifty_clients_on_one_shared_child(Sdk::Python, Transport::Streamable);
}

#[test]
fn fifty_python_sse_clients_share_one_child_and_each_gets_its_own_answers() {
    fifty_clients_on_one_shared_child(Sdk::Python, Transport::Sse);
}

#[test]
fn fifty_typescript_streamable_clients_share_one_child_and_each_gets_its_own_answers() {
    fifty_clients_on_one_shared_child(Sdk::TypeScript, Transport::Streamable);
}

#[test]
fn fifty_typescript_sse_clients_share_one_child_and_each_gets_its_own_answers() {
    fifty_clients_on_one_shared_child(Sdk::TypeScript, Transport::Sse);
}

/// The rmcp demo server (`examples/examples/rmcp_server.rs`) serving both transports in process.
fn rmcp_in_process(sdk: Sdk, transport: Transport) {
    let bin = example_bin("rmcp_server");
    let server = Server::spawn(
        "rmcp_server",
        &bin,
        &["--listen".into(), "127.0.0.1:0".into()],
    );
    let summary = ClientRun::against(sdk, transport, &server, "")
        .profile("rmcp")
        .run_ok(&server);
    assert_summary(&summary, &["elicitation"]);
    assert_eq!(summary["server"], "mcp-bastion-rmcp-demo", "{summary}");
}

/// The rmcp demo server run as a stdio child of the proxy.
fn rmcp_over_stdio_behind_bastion(sdk: Sdk, transport: Transport, mode: SessionMode) {
    let bin = example_bin("rmcp_server");
    let command = [bin.display().to_string(), "--stdio".to_owned()];
    let server = Server::bastion(&["--session-mode", mode.as_arg()], &command);
    let summary = ClientRun::against(sdk, transport, &server, "")
        .profile("rmcp")
        .run_ok(&server);
    assert_summary(&summary, &["elicitation"]);
    assert_eq!(summary["server"], "mcp-bastion-rmcp-demo", "{summary}");
}

#[test]
fn python_streamable_rmcp_in_process_full_scenario() {
    rmcp_in_process(Sdk::Python, Transport::Streamable);
}

#[test]
fn python_sse_rmcp_in_process_full_scenario() {
    rmcp_in_process(Sdk::Python, Transport::Sse);
}

#[test]
fn typescript_streamable_rmcp_in_process_full_scenario() {
    rmcp_in_process(Sdk::TypeScript, Transport::Streamable);
}

#[test]
fn typescript_sse_rmcp_in_process_full_scenario() {
    rmcp_in_process(Sdk::TypeScript, Transport::Sse);
}

#[test]
fn python_streamable_rmcp_stdio_child_per_session_full_scenario() {
    rmcp_over_stdio_behind_bastion(Sdk::Python, Transport::Streamable, SessionMode::PerSession);
}

#[test]
fn typescript_sse_rmcp_stdio_child_shared_full_scenario() {
    rmcp_over_stdio_behind_bastion(Sdk::TypeScript, Transport::Sse, SessionMode::Shared);
}

/// The Python SDK's high-level `Client` negotiates by default: it probes `server/discover`
/// (revision 2026-07-28) first and must fall back to the `initialize` handshake through the proxy
/// when 2026-07-28 is turned off (`--no-2026`).
fn python_auto_negotiation(transport: Transport) {
    let server = Server::bastion(
        &[
            "--session-mode",
            SessionMode::PerSession.as_arg(),
            "--no-2026",
        ],
        &tests::everything_stdio(),
    );
    let run = ClientRun::against(Sdk::Python, transport, &server, "")
        .arg("--handshake")
        .arg("auto");
    let summary = run.run_ok(&server);
    assert_full_summary(&summary);
    assert_eq!(
        summary["steps"]["initialize"]["handshake"], "auto",
        "{summary}"
    );
    server.wait_for_children(0, CHILD_EXIT);
}

#[test]
fn python_streamable_auto_negotiation_falls_back_to_initialize_full_scenario() {
    python_auto_negotiation(Transport::Streamable);
}

#[test]
fn python_sse_auto_negotiation_falls_back_to_initialize_full_scenario() {
    python_auto_negotiation(Transport::Sse);
}

/// Revision 2026-07-28 end to end: the Python SDK pinned to 2026-07-28 runs the full scenario as
/// sessionless requests through the proxy (pooled links to the shared child; sampling and
/// elicitation through the multi-round-trip bridge: `Client.call_tool` answers each
/// `InputRequiredResult` with the client's callbacks and retries), and no session id is ever
/// assigned. The deprecated `--sessionless` is still accepted (a no-op: 2026-07-28 is on by
/// default).
#[test]
fn python_2026_07_28_sessionless_requests_through_the_proxy() {
    let server = Server::bastion(
        &["--session-mode", "shared", "--sessionless"],
        &tests::everything_stdio(),
    );
    let run = ClientRun::against(Sdk::Python, Transport::Streamable, &server, "")
        .strict_session_end(false)
        .arg("--handshake")
        .arg("2026-07-28");
    let summary = run.run_ok(&server);
    assert_eq!(summary["protocolVersion"], "2026-07-28", "{summary}");
    // the full scenario's steps but the session's own (initialize, session_end)
    for step in &FULL_STEPS[1..8] {
        let done = &summary["steps"][step];
        assert!(
            !done.is_null() && done["skipped"].is_null(),
            "step {step} not done: {summary}"
        );
    }
    assert!(
        summary["sessionId"].is_null(),
        "a sessionless client got a session id: {summary}"
    );
    // the shared child served every request and is still the only one
    server.wait_for_children(1, CHILD_EXIT);
}

/// By default, the Python SDK in its default mode discovers 2026-07-28 through
/// `server/discover`, while the TypeScript SDK (2025-11-25) keeps using sessions on the same path.
#[test]
fn old_and_new_clients_share_one_path_by_default() {
    let server = Server::bastion(&["--session-mode", "shared"], &tests::everything_stdio());
    let py = ClientRun::against(Sdk::Python, Transport::Streamable, &server, "")
        .strict_session_end(false)
        .arg("--handshake")
        .arg("auto");
    let ts = ClientRun::against(Sdk::TypeScript, Transport::Streamable, &server, "");
    let (py_summary, ts_summary) = thread::scope(|s| {
        let py = s.spawn(|| py.run_ok(&server));
        let ts = s.spawn(|| ts.run_ok(&server));
        (py.join().unwrap(), ts.join().unwrap())
    });
    assert_eq!(py_summary["protocolVersion"], "2026-07-28", "{py_summary}");
    assert!(py_summary["sessionId"].is_null(), "{py_summary}");
    assert_full_summary(&ts_summary);
    assert_eq!(ts_summary["protocolVersion"], "2025-11-25", "{ts_summary}");
}
