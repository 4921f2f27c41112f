//! One child per session: round trip, environment, failure, lifecycle.

use std::{collections::BTreeSet, time::Duration};

use serde_json::json;
use tokio::time::Instant;

use super::{
    Client, fixture, no_children_within, process_gone, process_state, python, reaped_within,
    request,
};
use crate::{
    backend::stdio::{DEFAULT_INHERIT_ENV, EnvSource, SessionEnv, StdioBackend},
    backend::{Backend, BackendError, SessionContext},
    boxed::BoxFuture,
    jsonrpc::{Message, RequestId, codes},
    principal::Principal,
    upstream_token::{UpstreamAccess, UpstreamToken, UpstreamTokenError, UpstreamTokenSource},
};

#[tokio::test]
async fn round_trip_restores_the_client_id() {
    let backend = fixture().build().expect("valid config");
    let mut client = Client::connect(&backend, SessionContext::default()).await;
    let init = client.initialize("init-1").await;
    assert_eq!(init["serverInfo"]["name"], "echo");
    let result = client.call(42, "echo", json!({"hello": "world"})).await;
    assert_eq!(result["echo"], json!({"hello": "world"}));
    // A string id survives too.
    let result = client.call("abc", "echo", json!({"n": 1})).await;
    assert_eq!(result["echo"], json!({"n": 1}));
}

/// The child's environment as a map.
async fn child_env(client: &mut Client) -> serde_json::Map<String, serde_json::Value> {
    let result = client.call(1, "env", json!({})).await;
    result["env"].as_object().expect("an env object").clone()
}

/// Python may add `LC_CTYPE` itself (PEP 538 locale coercion).
fn without_python_additions(env: &serde_json::Map<String, serde_json::Value>) -> BTreeSet<String> {
    env.keys().filter(|k| *k != "LC_CTYPE").cloned().collect()
}

#[tokio::test]
async fn env_allowlist_fixed_entries_and_allowed_session_names_reach_the_child_and_nothing_else() {
    let backend = fixture()
        .inherit_env(["PATH"])
        .env("FIXED", "operator")
        .session_env(
            SessionEnv::new()
                .map("TENANT", EnvSource::PrincipalEnv("tenant".into()))
                .expect("allowed"),
        )
        .build()
        .expect("valid config");
    let mut ctx = SessionContext::default();
    // Whatever else the principal carries, only mapped names reach the child.
    ctx.extensions.insert(Principal::new("alice").with_env([
        ("tenant", "acme"),
        ("LD_PRELOAD", "/tmp/evil.so"),
        ("PATH", "/tmp/evil"),
        ("NODE_OPTIONS", "--require /tmp/evil.js"),
        ("HOME", "/tmp/evil"),
        ("PYTHONSTARTUP", "/tmp/evil.py"),
    ]));
    let mut client = Client::connect(&backend, ctx).await;
    let env = child_env(&mut client).await;

    let expected: BTreeSet<String> = ["PATH", "FIXED", "TENANT"].map(String::from).into();
    assert_eq!(without_python_additions(&env), expected);
    assert_eq!(env["TENANT"], "acme");
    assert_eq!(env["FIXED"], "operator");
    assert_eq!(
        env["PATH"].as_str(),
        std::env::var("PATH").ok().as_deref(),
        "PATH is the proxy's, not the session's"
    );
    // The proxy's own variables do not leak: HOME is set here but not allowlisted.
    assert!(std::env::var_os("HOME").is_some());
    assert!(!env.contains_key("HOME"));
}

/// An upstream token source that answers `answer` (a token or an error).
struct FixedUpstream(Result<&'static str, UpstreamTokenError>);

impl UpstreamTokenSource for FixedUpstream {
    fn access_token(&self) -> BoxFuture<'_, Result<UpstreamToken, UpstreamTokenError>> {
        let answer = self.0.map(UpstreamToken::new);
        Box::pin(async move { answer })
    }
}

#[tokio::test]
async fn the_upstream_token_reaches_the_child_only_where_mapped_and_a_missing_one_refuses_the_session()
 {
    let backend = fixture()
        .inherit_env(["PATH"])
        .session_env(
            SessionEnv::new()
                .parse_principal_pair("UPSTREAM_TOKEN=upstream:access_token")
                .expect("allowed"),
        )
        .build()
        .expect("valid config");
    let with = |answer| {
        let mut ctx = SessionContext::default();
        ctx.extensions.insert(
            Principal::new("alice")
                .with_upstream_access(UpstreamAccess::new(FixedUpstream(answer))),
        );
        ctx
    };
    let mut client = Client::connect(&backend, with(Ok("idp-access-1"))).await;
    let env = child_env(&mut client).await;
    assert_eq!(env["UPSTREAM_TOKEN"], "idp-access-1");
    // a principal without the handle (another authenticator): no variable, the session opens
    let mut ctx = SessionContext::default();
    ctx.extensions.insert(Principal::new("bob"));
    let mut client = Client::connect(&backend, ctx).await;
    assert!(!child_env(&mut client).await.contains_key("UPSTREAM_TOKEN"));
    // a token that cannot be had refuses the session, and the error names no secret
    let Err(BackendError::Unavailable(why)) = backend
        .connect(with(Err(UpstreamTokenError::Refused)))
        .await
    else {
        panic!("a refused refresh must refuse the session");
    };
    assert!(why.contains("log in again"), "{why}");
    // unmapped, the token is never asked for
    let unmapped = fixture()
        .inherit_env(["PATH"])
        .build()
        .expect("valid config");
    let mut client = Client::connect(&unmapped, with(Err(UpstreamTokenError::Unavailable))).await;
    assert!(!child_env(&mut client).await.contains_key("UPSTREAM_TOKEN"));
}

#[tokio::test]
async fn default_inherit_env_is_path_home_user_lang_tmpdir_systemroot() {
    assert_eq!(
        DEFAULT_INHERIT_ENV,
        ["PATH", "HOME", "USER", "LANG", "TMPDIR", "SYSTEMROOT"]
    );
    let backend = fixture().build().expect("valid config");
    let mut client = Client::connect(&backend, SessionContext::default()).await;
    let env = child_env(&mut client).await;
    let expected: BTreeSet<String> = DEFAULT_INHERIT_ENV
        .iter()
        .filter(|n| std::env::var_os(n).is_some())
        .map(|n| n.to_string())
        .collect();
    assert_eq!(without_python_additions(&env), expected);
}

#[tokio::test]
async fn crash_fails_pending_requests_within_a_second_and_the_child_is_reaped() {
    let backend = fixture().build().expect("valid config");
    let mut client = Client::connect(&backend, SessionContext::default()).await;
    let pid = client.pid(0).await;
    client.send(request(1, "hang", json!({}))).await;
    client.send(request(2, "hang", json!({}))).await;
    let crashed = Instant::now();
    client.send(request(3, "crash", json!({"code": 3}))).await;

    let mut failed = BTreeSet::new();
    for _ in 0..3 {
        let resp = client.response().await;
        let err = resp.outcome.expect_err("an error response");
        assert_eq!(err.code, codes::INTERNAL_ERROR);
        assert!(
            err.message.contains("exited") && err.message.contains('3'),
            "{}",
            err.message
        );
        let Some(RequestId::Number(id)) = resp.id else {
            panic!("a numeric id")
        };
        failed.insert(id);
    }
    assert!(
        crashed.elapsed() < Duration::from_secs(1),
        "took {:?}",
        crashed.elapsed()
    );
    assert_eq!(failed, BTreeSet::from([1, 2, 3]));
    client.assert_ended().await;
    assert!(
        reaped_within(pid, Duration::from_secs(1)).await,
        "pid {pid} is still there (state {:?})",
        process_state(pid)
    );
    assert_eq!(backend.live_children(), 0);
}

#[tokio::test]
async fn request_timeout_answers_with_request_timeout_and_cancels_in_the_child() {
    let backend = fixture()
        .request_timeout(Duration::from_millis(300))
        .build()
        .expect("valid config");
    let mut client = Client::connect(&backend, SessionContext::default()).await;
    let started = Instant::now();
    client.send(request(7, "hang", json!({}))).await;
    let resp = client.response().await;
    assert_eq!(resp.id, Some(RequestId::Number(7)));
    let err = resp.outcome.expect_err("a timeout error");
    assert_eq!(err.code, codes::REQUEST_TIMEOUT);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_secs(2),
        "{waited:?}"
    );

    let seen = client.call(8, "cancellations", json!({})).await;
    let hung_id = seen["hung"][0].clone();
    assert!(hung_id.is_number(), "{seen}");
    assert_eq!(
        seen["cancelled"],
        json!([{"requestId": hung_id, "reason": "timeout"}])
    );
    // The connection is still usable.
    client.call(9, "echo", json!({})).await;
}

#[tokio::test]
async fn garbage_and_over_long_stdout_lines_are_skipped() {
    let backend = fixture()
        .max_line_bytes(1024)
        .build()
        .expect("valid config");
    let mut client = Client::connect(&backend, SessionContext::default()).await;
    let result = client.call(1, "garbage", json!({"bytes": 2_000_000})).await;
    assert_eq!(result, json!({"ok": true}));
    let result = client.call(2, "echo", json!({"after": "garbage"})).await;
    assert_eq!(result["echo"], json!({"after": "garbage"}));
}

#[tokio::test]
async fn closing_the_connection_closes_stdin_and_the_child_exits() {
    // A generous grace period: the child must leave on EOF, not by the kill.
    let backend = fixture()
        .grace_period(Duration::from_secs(30))
        .build()
        .expect("valid config");
    let mut client = Client::connect(&backend, SessionContext::default()).await;
    let pid = client.pid(1).await;
    client.conn.closed.cancel();
    assert!(
        reaped_within(pid, Duration::from_secs(2)).await,
        "state {:?}",
        process_state(pid)
    );
}

#[tokio::test]
async fn a_child_that_ignores_eof_is_killed_after_the_grace_period() {
    let backend = fixture()
        .arg("--ignore-eof")
        .grace_period(Duration::from_millis(200))
        .build()
        .expect("valid config");
    let mut cancelled = Client::connect(&backend, SessionContext::default()).await;
    let mut dropped = Client::connect(&backend, SessionContext::default()).await;
    let pids = [cancelled.pid(1).await, dropped.pid(1).await];
    assert_eq!(backend.live_children(), 2);

    let closing = Instant::now();
    cancelled.conn.closed.cancel();
    drop(dropped);
    for pid in pids {
        assert!(
            reaped_within(pid, Duration::from_secs(2)).await,
            "state {:?}",
            process_state(pid)
        );
    }
    assert!(
        closing.elapsed() >= Duration::from_millis(200),
        "{:?}",
        closing.elapsed()
    );
    cancelled.assert_ended().await;
    assert!(no_children_within(&backend, Duration::from_secs(1)).await);
}

#[tokio::test]
async fn shutdown_terminates_every_child_and_refuses_new_connections() {
    let backend = fixture()
        .arg("--ignore-eof")
        .grace_period(Duration::from_millis(200))
        .build()
        .expect("valid config");
    let mut a = Client::connect(&backend, SessionContext::default()).await;
    let mut b = Client::connect(&backend, SessionContext::default()).await;
    let pids = [a.pid(1).await, b.pid(1).await];
    a.send(request(2, "hang", json!({}))).await;
    // Once this is answered the child has the hung request.
    a.call(3, "cancellations", json!({})).await;

    backend.shutdown().await;
    for pid in pids {
        assert!(
            process_gone(pid),
            "pid {pid}: state {:?}",
            process_state(pid)
        );
    }
    let resp = a.response().await;
    assert_eq!(resp.id, Some(RequestId::Number(2)));
    assert_eq!(
        resp.outcome.expect_err("an error").code,
        codes::INTERNAL_ERROR
    );
    a.assert_ended().await;
    b.assert_ended().await;
    assert!(matches!(
        backend.connect(SessionContext::default()).await,
        Err(BackendError::Unavailable(_))
    ));
    assert!(backend.ready().await.is_err());
}

#[tokio::test]
async fn ready_checks_that_the_program_resolves() {
    let ok = |b: StdioBackend| async move { b.ready().await.is_ok() };
    assert!(ok(fixture().build().expect("valid")).await);
    assert!(ok(StdioBackend::builder("sh").build().expect("valid")).await);
    assert!(
        !ok(StdioBackend::builder("/nonexistent/bin/server")
            .build()
            .expect("valid"))
        .await
    );
    assert!(
        !ok(StdioBackend::builder("no-such-program-mcp-bastion")
            .build()
            .expect("valid"))
        .await
    );
    // Resolution uses the child's PATH.
    let no_path = StdioBackend::builder("sh")
        .env("PATH", "/nonexistent")
        .build()
        .expect("valid");
    assert!(!ok(no_path).await);
}

#[tokio::test]
async fn spawn_failure_is_a_spawn_error() {
    let backend = StdioBackend::builder("/nonexistent/bin/server")
        .build()
        .expect("valid");
    assert!(matches!(
        backend.connect(SessionContext::default()).await,
        Err(BackendError::Spawn { .. })
    ));
}

#[test]
fn builder_refuses_configuration_that_cannot_work() {
    let refused = |b: crate::backend::stdio::StdioBackendBuilder| {
        matches!(b.build(), Err(BackendError::Config(_)))
    };
    assert!(refused(StdioBackend::builder("")));
    assert!(refused(StdioBackend::builder("x").env("A=B", "1")));
    assert!(refused(StdioBackend::builder("x").env("", "1")));
    assert!(refused(StdioBackend::builder("x").env("A", "nul\0")));
    assert!(refused(StdioBackend::builder("x").inherit_env(["X=Y"])));
    assert!(refused(StdioBackend::builder("x").arg("a\0b")));
    assert!(refused(StdioBackend::builder("x").max_line_bytes(0)));
    assert!(refused(
        StdioBackend::builder("x").request_timeout(Duration::ZERO)
    ));
    // The operator may set what sessions may not.
    assert!(
        StdioBackend::builder(python())
            .env("PATH", "/usr/bin")
            .env("HOME", "/srv")
            .build()
            .is_ok()
    );
}

#[test]
fn debug_output_names_env_variables_without_values() {
    let builder = StdioBackend::builder("x")
        .env("API_KEY", "s3cret")
        .arg("--token=s3cret");
    assert!(!format!("{builder:?}").contains("s3cret"));
    let backend = builder.build().expect("valid");
    assert!(!format!("{backend:?}").contains("s3cret"));
}

#[tokio::test]
async fn a_server_request_reaches_the_session_and_its_answer_the_child() {
    let backend = fixture().build().expect("valid config");
    let mut client = Client::connect(&backend, SessionContext::default()).await;
    client
        .send(request(1, "sample", json!({"tag": "solo"})))
        .await;
    let Some(Message::Request(ask)) = client.recv().await else {
        panic!("a sampling request")
    };
    assert_eq!(ask.method, "sampling/createMessage");
    client
        .send(Message::Response(crate::jsonrpc::Response::result(
            ask.id,
            json!({"model": "m"}),
        )))
        .await;
    let resp = client.response().await;
    assert_eq!(resp.id, Some(RequestId::Number(1)));
    assert_eq!(
        resp.outcome.expect("a result")["sampled"],
        json!({"model": "m"})
    );
}

/// Gone, or killed and waiting for an init that does not reap (containers).
fn ended(pid: u32) -> bool {
    process_gone(pid) || process_state(pid) == Some('Z')
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn what_the_child_started_ends_with_it() {
    // Like `npx`: the server process leaves a grandchild of its own.
    let dir = std::env::temp_dir().join(format!("mcp-bastion-group-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let pid_file = dir.join("grandchild.pid");
    let script = format!(
        "sleep 300 & echo $! > '{}'; exec '{}' -u '{}'",
        pid_file.display(),
        python(),
        super::FIXTURE
    );
    let backend = StdioBackend::builder("/bin/sh")
        .args(["-c", script.as_str()])
        .grace_period(Duration::from_secs(5))
        .build()
        .expect("valid config");
    let mut client = Client::connect(&backend, SessionContext::default()).await;
    client.initialize(1).await;
    let grandchild: u32 = std::fs::read_to_string(&pid_file)
        .expect("the grandchild's pid")
        .trim()
        .parse()
        .expect("a pid");
    assert!(
        !ended(grandchild),
        "the grandchild runs while the session lives"
    );
    client.conn.closed.cancel();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !ended(grandchild) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        ended(grandchild),
        "the grandchild {grandchild} outlived its session: state {:?}",
        process_state(grandchild)
    );
}
