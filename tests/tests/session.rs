#![allow(clippy::unwrap_used, reason = "tests")]
//! Sessions through real processes and real SDK clients:
//!
//! - the `session_params` example (an rmcp tool reading `SessionParams`, behind `SessionLayer`
//!   and a toy bearer authenticator; served by our transports and by rmcp's own
//!   `StreamableHttpService`): the Python SDK over legacy SSE
//!   (`/sse?auth=…&service=billing`) and the TypeScript SDK over Streamable HTTP with a query
//!   string see `service = billing`; the `auth` value never reaches the logs (at debug level);
//!   another principal presenting the session id gets 404 and the owner goes on;
//! - the `mcp-bastion` binary with `--param-env github_token=GITHUB_PERSONAL_ACCESS_TOKEN` in front
//!   of server-everything: two users with different `?github_token=` each get a child whose
//!   environment (its `get-env` tool) holds their own value, and the children exit afterwards;
//! - a real `redis-server` (installed by `.ci/deps/redis.sh`, started here on an ephemeral port):
//!   a session opened through one stack is validated (binding, params) by a second stack sharing
//!   that Redis, expires by TTL, and the binary runs with `--session-store redis`.

use std::{
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;
use tests::{Server, clients_dir, everything_stdio, example_bin, redis::Redis, workspace_dir};

const SCRIPT_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy)]
enum Sdk {
    Python,
    TypeScript,
}

/// Runs `tests/clients/session_call.{py,mjs}` and returns its JSON summary (panics with its
/// output and the server log on failure).
fn session_call(sdk: Sdk, server: &Server, args: &[&str]) -> Value {
    let (program, script) = match sdk {
        Sdk::Python => (
            std::env::var("PYTHON").unwrap_or_else(|_| "python3".into()),
            clients_dir().join("session_call.py"),
        ),
        Sdk::TypeScript => (
            std::env::var("NODE").unwrap_or_else(|_| "node".into()),
            clients_dir().join("session_call.mjs"),
        ),
    };
    let mut child = Command::new(program)
        .arg(&script)
        .args(args)
        .args(["--timeout", &SCRIPT_TIMEOUT.as_secs().to_string()])
        .current_dir(workspace_dir())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + SCRIPT_TIMEOUT + Duration::from_secs(15);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .and_then(|l| serde_json::from_str::<Value>(l).ok());
    match summary {
        Some(v) if out.status.success() && v["ok"] == true => v,
        _ => panic!(
            "{sdk:?} {} {args:?} failed ({})\n--- stdout ---\n{stdout}\n--- stderr ---\n{}\n--- server log ---\n{}",
            script.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr),
            server.logs()
        ),
    }
}

fn session_params_server() -> Server {
    let bin = example_bin("session_params");
    let args: Vec<String> = [
        "--listen",
        "127.0.0.1:0",
        "--api-key",
        "alice=KEY-ALICE-7f3a",
        "--api-key",
        "bob=KEY-BOB-19c2",
        "--log",
        // rmcp's own server logs its session ids; ours must not
        "debug,rmcp=warn",
    ]
    .map(String::from)
    .to_vec();
    Server::spawn("session_params", &bin, &args)
}

/// The secrets of these tests: none may appear in any log line.
const SECRETS: [&str; 3] = ["SECRET-AUTH-5e1d", "KEY-ALICE-7f3a", "KEY-BOB-19c2"];

fn assert_no_secret_in_logs(server: &Server) {
    let logs = server.logs();
    assert!(
        logs.contains("session opened"),
        "expected debug logs of the session layer:\n{logs}"
    );
    for secret in SECRETS {
        assert!(
            !logs.contains(secret),
            "{secret} leaked into the log:\n{logs}"
        );
    }
}

#[test]
fn python_sse_client_tool_sees_the_captured_service_and_auth_never_reaches_the_logs() {
    let server = session_params_server();
    let url = server.url("/sse?auth=SECRET-AUTH-5e1d&service=billing");
    let summary = session_call(
        Sdk::Python,
        &server,
        &[
            "--url",
            &url,
            "--transport",
            "sse",
            "--call",
            r#"param={"name": "service"}"#,
            "--call",
            r#"param={"name": "auth"}"#,
            "--call",
            r#"param={"name": "region"}"#,
        ],
    );
    assert_eq!(summary["results"][0], "billing", "{summary}");
    assert_eq!(summary["results"][1], "<redacted>", "{summary}");
    assert_eq!(summary["results"][2], "<unset>", "{summary}");
    assert_no_secret_in_logs(&server);
}

#[test]
fn typescript_streamable_client_with_a_query_string_tool_sees_the_captured_service() {
    let server = session_params_server();
    let url = server.url("/mcp?auth=SECRET-AUTH-5e1d&service=billing");
    let summary = session_call(
        Sdk::TypeScript,
        &server,
        &[
            "--url",
            &url,
            "--transport",
            "streamable",
            "--call",
            r#"param={"name":"service"}"#,
        ],
    );
    assert_eq!(summary["results"][0], "billing", "{summary}");
    assert!(
        summary["sessionId"].as_str().is_some_and(|s| s.len() >= 32),
        "{summary}"
    );
    assert_no_secret_in_logs(&server);
}

fn hijack(sdk: Sdk, transport: &str, path: &str) {
    let server = session_params_server();
    let url = server.url(path);
    let summary = session_call(
        sdk,
        &server,
        &[
            "--url",
            &url,
            "--transport",
            transport,
            "--call",
            "whoami",
            "--call",
            r#"param={"name":"service"}"#,
            "--bearer",
            "KEY-ALICE-7f3a",
            "--hijack-bearer",
            "KEY-BOB-19c2",
        ],
    );
    assert_eq!(summary["results"][0], "alice", "{summary}");
    assert_eq!(
        summary["hijack_status"], 404,
        "bob must not use alice's session: {summary}"
    );
    assert_eq!(
        summary["after_hijack"][0], "alice",
        "alice goes on: {summary}"
    );
    assert_eq!(summary["after_hijack"][1], "billing", "{summary}");
    let logs = server.logs();
    assert!(
        logs.contains("another principal"),
        "the hijack attempt is logged:\n{logs}"
    );
    let sid = summary["sessionId"].as_str().unwrap();
    assert!(
        !logs.contains(sid),
        "the session id must not appear in clear:\n{logs}"
    );
    assert_no_secret_in_logs(&server);
}

#[test]
fn python_sse_session_presented_by_another_principal_is_404_and_the_owner_continues() {
    hijack(Sdk::Python, "sse", "/sse?service=billing");
}

#[test]
fn typescript_streamable_session_presented_by_another_principal_is_404_and_the_owner_continues() {
    hijack(Sdk::TypeScript, "streamable", "/mcp?service=billing");
}

/// rmcp's own `StreamableHttpService` behind the same layers (the example's `/rmcp`): the layer
/// learns its (UUID) session ids from responses, so capture and binding work there too.
#[test]
fn rmcp_streamable_http_service_behind_the_session_layer_sees_params_and_refuses_hijack() {
    hijack(
        Sdk::TypeScript,
        "streamable",
        "/rmcp?auth=SECRET-AUTH-5e1d&service=billing",
    );
}

// ---------------------------------------------------------------------------------------------
// per-session child environment

/// The value of `name` in the `get-env` output of server-everything.
fn env_var(get_env_text: &str, name: &str) -> Option<String> {
    let env: Value = serde_json::from_str(get_env_text).ok()?;
    env[name].as_str().map(str::to_owned)
}

/// Two users at once, each `(SDK, URL, transport, bearer)`: what `get-env` shows each one.
fn get_env_of_two(server: &Server, users: [(Sdk, &str, &str, Option<&str>); 2]) -> [String; 2] {
    thread::scope(|scope| {
        users
            .map(|(sdk, url, transport, bearer)| {
                scope.spawn(move || {
                    let mut args =
                        vec!["--url", url, "--transport", transport, "--call", "get-env"];
                    if let Some(bearer) = bearer {
                        args.extend(["--bearer", bearer]);
                    }
                    let summary = session_call(sdk, server, &args);
                    summary["results"][0].as_str().unwrap().to_owned()
                })
            })
            .map(|user| user.join().unwrap())
    })
}

#[test]
fn each_user_gets_a_child_whose_environment_holds_their_own_github_token() {
    let server = Server::bastion(
        &[
            "--session-mode",
            "per-session",
            "--param-env",
            "github_token=GITHUB_PERSONAL_ACCESS_TOKEN",
            "--capture-param",
            "service",
        ],
        &everything_stdio(),
    );
    let one = server.url("/mcp?github_token=ghp_userONE_4b8e&service=a");
    let two = server.url("/sse?github_token=ghp_userTWO_90d1&service=b");
    let [a_env, b_env] = get_env_of_two(
        &server,
        [
            (Sdk::Python, &one, "streamable", None),
            (Sdk::TypeScript, &two, "sse", None),
        ],
    );
    let (a_env, b_env) = (a_env.as_str(), b_env.as_str());
    assert_eq!(
        env_var(a_env, "GITHUB_PERSONAL_ACCESS_TOKEN").as_deref(),
        Some("ghp_userONE_4b8e")
    );
    assert_eq!(
        env_var(b_env, "GITHUB_PERSONAL_ACCESS_TOKEN").as_deref(),
        Some("ghp_userTWO_90d1")
    );
    // only the mapped parameter becomes a variable
    assert!(!a_env.contains("ghp_userTWO") && !b_env.contains("ghp_userONE"));
    assert_eq!(env_var(a_env, "service"), None);
    let logs = server.logs();
    assert!(
        !logs.contains("ghp_userONE") && !logs.contains("ghp_userTWO"),
        "token in logs:\n{logs}"
    );
    // both sessions ended (DELETE, closed stream): their children exit
    server.wait_for_children(0, Duration::from_secs(10));
}

/// `/sse?token=T` and `/mcp?token=T`, with `token` captured for the backend (`--capture-param`,
/// `--param-env`): a parameter named like a credential is session data when the operator says so.
/// Each user authenticates with a header; each user's child sees its own token; no token is
/// logged.
#[test]
fn a_captured_parameter_named_token_reaches_each_users_child_and_no_log() {
    let server = Server::bastion(
        &[
            "--session-mode",
            "per-session",
            "--api-key",
            "KEY-ONE-a51c",
            "--api-key",
            "KEY-TWO-c07e",
            "--capture-param",
            "token",
            "--param-env",
            "token=BASTION_TOKEN",
        ],
        &everything_stdio(),
    );
    let one = server.url("/mcp?token=tok_userONE_71aa");
    let two = server.url("/sse?token=tok_userTWO_e3b9");
    let [a_env, b_env] = get_env_of_two(
        &server,
        [
            (Sdk::Python, &one, "streamable", Some("KEY-ONE-a51c")),
            (Sdk::Python, &two, "sse", Some("KEY-TWO-c07e")),
        ],
    );
    let (a_env, b_env) = (a_env.as_str(), b_env.as_str());
    assert_eq!(
        env_var(a_env, "BASTION_TOKEN").as_deref(),
        Some("tok_userONE_71aa")
    );
    assert_eq!(
        env_var(b_env, "BASTION_TOKEN").as_deref(),
        Some("tok_userTWO_e3b9")
    );
    let logs = server.logs();
    for secret in ["tok_userONE", "tok_userTWO", "KEY-ONE-a51c", "KEY-TWO-c07e"] {
        assert!(!logs.contains(secret), "{secret} in logs:\n{logs}");
    }
}

/// The other seed URL: `/sse?auth=KEY&service=X`, `auth` the credential
/// (`--api-key-query-param auth`) and `service` captured and mapped into the child.
#[test]
fn a_query_credential_and_a_captured_service_share_one_url() {
    let server = Server::bastion(
        &[
            "--session-mode",
            "per-session",
            "--api-key",
            "KEY-QUERY-9e02",
            "--api-key-query-param",
            "auth",
            "--param-env",
            "service=SERVICE_NAME",
        ],
        &everything_stdio(),
    );
    for (transport, path) in [("sse", "/sse"), ("streamable", "/mcp")] {
        let url = server.url(&format!("{path}?auth=KEY-QUERY-9e02&service=billing"));
        let summary = session_call(
            Sdk::Python,
            &server,
            &["--url", &url, "--transport", transport, "--call", "get-env"],
        );
        let env = summary["results"][0].as_str().unwrap();
        assert_eq!(
            env_var(env, "SERVICE_NAME").as_deref(),
            Some("billing"),
            "{transport}"
        );
    }
    let logs = server.logs();
    assert!(!logs.contains("KEY-QUERY-9e02"), "key in logs:\n{logs}");
}

/// A credential-like parameter configured neither way is refused, and the refusal names both
/// ways out; configured both ways, the binary refuses to start.
#[test]
fn an_unconfigured_token_parameter_is_refused_with_both_ways_out() {
    let server = Server::bastion(
        &["--session-mode", "shared", "--api-key", "KEY-PLAIN-33d0"],
        &everything_stdio(),
    );
    let out = Command::new("curl")
        .args([
            "-s",
            "-i",
            "-X",
            "POST",
            "-H",
            "Authorization: Bearer KEY-PLAIN-33d0",
        ])
        .args(["-H", "Content-Type: application/json"])
        .args(["-H", "Accept: application/json, text/event-stream"])
        .args(["--data", r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#])
        .arg(server.url("/mcp?token=tok_unconfigured_5f"))
        .output()
        .unwrap();
    let answer = String::from_utf8_lossy(&out.stdout);
    assert!(answer.starts_with("HTTP/1.1 4"), "refused: {answer}");
    let challenge = answer
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("www-authenticate:"))
        .unwrap_or_default();
    assert!(
        challenge.contains("--api-key-query-param") && challenge.contains("--capture-param"),
        "{answer}"
    );
    let logs = server.logs();
    assert!(
        logs.contains("--capture-param"),
        "the log names the way out:\n{logs}"
    );
    assert!(!logs.contains("tok_unconfigured_5f"), "{logs}");

    let both = Command::new(tests::bastion_bin())
        .args(["--api-key", "k", "--api-key-query-param", "token"])
        .args(["--capture-param", "token", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(both.status.code(), Some(2));
    let err = String::from_utf8_lossy(&both.stderr);
    assert!(
        err.contains("token") && err.contains("credential") && err.contains("session"),
        "{err}"
    );
}

#[test]
fn a_reserved_variable_in_param_env_is_refused_at_startup() {
    let out = Command::new(tests::bastion_bin())
        .args(["--param-env", "token=NODE_OPTIONS", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("NODE_OPTIONS") && err.contains("may not be set"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------------
// Redis

/// `redis-cli -p PORT ARGS…`, trimmed.
fn redis_cli(redis: &Redis, args: &[&str]) -> String {
    Command::new("redis-cli")
        .args(["-p", &redis.port.to_string()])
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

mod in_process {
    use std::time::Duration;

    use axum::{
        Router,
        body::Body,
        http::{HeaderMap, Request, StatusCode},
        routing::any,
    };
    use http_body_util::BodyExt;
    use mcp_bastion::{
        principal::Principal,
        session::{RedisSessionStore, SessionLayer, SessionParams, new_session_id},
    };
    use tower::ServiceExt;

    /// A stand-in transport on replica `key`: opens a session on a request without an id and
    /// answers with the params it was given.
    fn stack(store: RedisSessionStore, key: &'static str) -> Router {
        let transport = any(
            move |headers: HeaderMap, params: Option<SessionParams>| async move {
                let mut res = axum::response::Response::new(Body::from(
                    params
                        .and_then(|p| p.get("service").map(str::to_owned))
                        .unwrap_or_default(),
                ));
                if !headers.contains_key("mcp-session-id") {
                    let id = new_session_id(Some(key)).unwrap();
                    res.headers_mut()
                        .insert("mcp-session-id", id.parse().unwrap());
                }
                res
            },
        );
        Router::new().route("/mcp", transport).layer(
            SessionLayer::new()
                .store(store)
                .capture_param("service")
                .replica_id(key)
                .idle_timeout(Some(Duration::from_secs(2))),
        )
    }

    async fn send(
        app: &Router,
        uri: &str,
        sid: Option<&str>,
        who: &str,
    ) -> (StatusCode, Option<String>, String) {
        let mut b = Request::post(uri);
        if let Some(s) = sid {
            b = b.header("mcp-session-id", s);
        }
        let mut req = b.body(Body::empty()).unwrap();
        req.extensions_mut().insert(Principal::new(who));
        let res = app.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let id = res
            .headers()
            .get("mcp-session-id")
            .map(|v| v.to_str().unwrap().to_owned());
        let body = res.into_body().collect().await.unwrap().to_bytes();
        (status, id, String::from_utf8_lossy(&body).into_owned())
    }

    pub(super) async fn two_stacks_share_sessions(url: &str, redis: &tests::redis::Redis) {
        let one = stack(RedisSessionStore::connect(url).await.unwrap(), "r1");
        let two = stack(RedisSessionStore::connect(url).await.unwrap(), "r2");
        let (status, sid, _) = send(&one, "/mcp?service=billing", None, "alice").await;
        assert_eq!(status, StatusCode::OK);
        let sid = sid.unwrap();
        assert!(sid.starts_with("r1."), "{sid}");
        // the record is in Redis, with its TTL
        let key = format!("mcp-bastion:session:{sid}");
        assert_eq!(super::redis_cli(redis, &["EXISTS", &key]), "1");
        let ttl: i64 = super::redis_cli(redis, &["PTTL", &key]).parse().unwrap();
        // the idle timeout (2 s) plus the touch interval (2 s / 16)
        assert!((1..=2125).contains(&ttl), "ttl {ttl}");
        // the second stack validates it: params for the owner, 404 for anyone else
        let (status, _, body) = send(&two, "/mcp", Some(&sid), "alice").await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "billing"));
        let (status, _, _) = send(&two, "/mcp", Some(&sid), "bob").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        // every request restarts the TTL (2 s): busy past the first TTL, the session lives on
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert_eq!(
            send(&two, "/mcp", Some(&sid), "alice").await.0,
            StatusCode::OK
        );
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert_eq!(
            send(&one, "/mcp", Some(&sid), "alice").await.0,
            StatusCode::OK
        );
        // idle past the TTL: the record expires and both stacks answer 404
        tokio::time::sleep(Duration::from_millis(2300)).await;
        assert_eq!(super::redis_cli(redis, &["EXISTS", &key]), "0");
        let (status, _, _) = send(&two, "/mcp", Some(&sid), "alice").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
}

#[test]
fn redis_store_a_session_opened_on_one_stack_is_validated_by_another() {
    let redis = Redis::start();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(in_process::two_stacks_share_sessions(&redis.url(), &redis));
}

#[test]
fn the_binary_keeps_its_sessions_in_redis_with_the_replica_route_key() {
    let redis = Redis::start();
    let url = redis.url();
    let server = Server::bastion(
        &[
            "--session-store",
            "redis",
            "--redis-url",
            &url,
            "--replica-id",
            "east-1",
        ],
        &everything_stdio(),
    );
    let summary = session_call(
        Sdk::Python,
        &server,
        &[
            "--url",
            &server.url("/mcp"),
            "--transport",
            "streamable",
            "--call",
            r#"echo={"message":"hi"}"#,
        ],
    );
    let sid = summary["sessionId"].as_str().unwrap();
    assert!(sid.starts_with("east-1."), "{sid}");
    assert!(
        summary["results"][0].as_str().unwrap().contains("hi"),
        "{summary}"
    );
    // DELETE at the end removed the record
    let key = format!("mcp-bastion:session:{sid}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while redis_cli(&redis, &["EXISTS", &key]) != "0" {
        assert!(
            Instant::now() < deadline,
            "the ended session's record is still in Redis"
        );
        thread::sleep(Duration::from_millis(50));
    }
}
