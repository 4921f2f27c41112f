//! Named backends, `[servers.<name>]`, served under `/servers/<name>/…` by the binary: real SDK
//! clients on both transports (at the root and under a path prefix), session ids confined to
//! their server, `/readyz` naming a server that cannot start, and the config errors.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::process::Command;

use serde_json::{Value, json};
use tests::{
    ClientRun, Sdk, Server, Transport, assert_full_summary, bastion_bin, everything_stdio,
};

fn write(name: &str, text: &str) -> std::path::PathBuf {
    let path =
        std::env::temp_dir().join(format!("mcp-bastion-servers-{}-{name}", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path
}

fn toml_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", quoted.join(", "))
}

/// Two named server-everything backends, `a` shared and `b` per session, and no default server.
fn two_servers_config(name: &str, prefix: Option<&str>) -> std::path::PathBuf {
    let prefix = prefix
        .map(|p| format!("path-prefix = {p:?}\n"))
        .unwrap_or_default();
    let command = toml_list(&everything_stdio());
    write(
        name,
        &format!(
            "listen = \"127.0.0.1:0\"\nallow-unauthenticated = true\n{prefix}\n\
             [servers.a]\ncommand = {command}\nsession-mode = \"shared\"\n\n\
             [servers.b]\ncommand = {command}\nsession-mode = \"per-session\"\n"
        ),
    )
}

fn spawn_config(path: &std::path::Path) -> Server {
    Server::spawn(
        "mcp-bastion",
        &bastion_bin(),
        &["--config".to_owned(), path.display().to_string()],
    )
}

fn full_run(sdk: Sdk, transport: Transport, server: &Server, prefix: &str) {
    let summary = ClientRun::against(sdk, transport, server, prefix).run_ok(server);
    assert_full_summary(&summary);
}

#[test]
fn both_sdks_complete_their_scenario_on_two_named_servers() {
    let path = two_servers_config("two.toml", None);
    let server = spawn_config(&path);
    full_run(Sdk::Python, Transport::Streamable, &server, "/servers/a");
    full_run(Sdk::TypeScript, Transport::Sse, &server, "/servers/b");
    full_run(
        Sdk::TypeScript,
        Transport::Streamable,
        &server,
        "/servers/b",
    );
    full_run(Sdk::Python, Transport::Sse, &server, "/servers/a");
    let _ = std::fs::remove_file(path);
}

#[test]
fn both_sdks_complete_their_scenario_on_named_servers_under_a_path_prefix() {
    let path = two_servers_config("prefixed.toml", Some("/k/demo"));
    let server = spawn_config(&path);
    full_run(
        Sdk::Python,
        Transport::Streamable,
        &server,
        "/k/demo/servers/a",
    );
    full_run(
        Sdk::TypeScript,
        Transport::Sse,
        &server,
        "/k/demo/servers/b",
    );
    let _ = std::fs::remove_file(path);
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

const ACCEPT: &str = "application/json, text/event-stream";

fn initialize() -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "raw", "version": "0"}}})
}

/// The response (the message with an `id`) in an SSE body, or the body as JSON; notifications
/// sent before it are skipped.
fn response_message(body: &str) -> Value {
    body.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
        .find(|m| !m["id"].is_null())
        .or_else(|| serde_json::from_str(body).ok())
        .unwrap_or(Value::Null)
}

#[test]
fn a_session_of_one_server_is_unknown_to_another_and_survives_the_attempt() {
    let path = two_servers_config("confined.toml", None);
    let server = spawn_config(&path);
    let a = server.url("/servers/a/mcp");
    let b = server.url("/servers/b/mcp");
    runtime().block_on(async {
        let http = reqwest::Client::new();
        let res = http
            .post(&a)
            .header("accept", ACCEPT)
            .json(&initialize())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{}", server.logs());
        let id = res.headers()["mcp-session-id"].to_str().unwrap().to_owned();
        let _ = res.text().await;
        let post = |url: &str, body: Value| {
            http.post(url)
                .header("accept", ACCEPT)
                .header("mcp-session-id", &id)
                .header("mcp-protocol-version", "2025-06-18")
                .json(&body)
                .send()
        };
        let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        assert_eq!(post(&a, initialized).await.unwrap().status(), 202);
        let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
        let res = post(&b, list.clone()).await.unwrap();
        assert_eq!(res.status(), 404, "a's session at b");
        // and on b's legacy message endpoint
        let res = http
            .post(server.url(&format!("/servers/b/messages?session_id={id}")))
            .json(&list)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 404, "a's session at b's SSE messages");
        // a still serves its session
        let res = post(&a, list).await.unwrap();
        assert_eq!(res.status(), 200, "{}", server.logs());
        let answer = response_message(&res.text().await.unwrap());
        assert!(
            answer["result"]["tools"]
                .as_array()
                .is_some_and(|t| !t.is_empty()),
            "{answer}"
        );
        // the open-session gauge counts the sessions of every server
        let res = http
            .post(&b)
            .header("accept", ACCEPT)
            .json(&initialize())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{}", server.logs());
        assert!(
            res.headers()
                .get("mcp-session-id")
                .is_some_and(|b_id| b_id != id.as_str())
        );
        let _ = res.text().await;
        let metrics = http
            .get(server.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            metrics
                .lines()
                .any(|l| l == "mcp_sessions_open{transport=\"streamable-http\"} 2"),
            "{metrics}"
        );
        // no default server is configured: /mcp is not served
        let res = http
            .post(server.url("/mcp"))
            .header("accept", ACCEPT)
            .json(&initialize())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 404);
    });
    let _ = std::fs::remove_file(path);
}

#[test]
fn readyz_names_the_server_whose_command_cannot_start() {
    let command = toml_list(&everything_stdio());
    let path = write(
        "ready.toml",
        &format!(
            "listen = \"127.0.0.1:0\"\nallow-unauthenticated = true\ncommand = {command}\n\n\
             [servers.good]\ncommand = {command}\n\n\
             [servers.broken]\ncommand = [\"/nonexistent/mcp-server-nowhere\"]\n"
        ),
    );
    let server = spawn_config(&path);
    runtime().block_on(async {
        let res = reqwest::get(server.url("/readyz")).await.unwrap();
        assert_eq!(res.status(), 503);
        let text = res.text().await.unwrap();
        assert!(text.contains("server `broken`"), "{text}");
        assert!(
            !text.contains("good") && !text.contains("default"),
            "{text}"
        );
        let res = reqwest::get(server.url("/healthz")).await.unwrap();
        assert_eq!(res.status(), 200);
    });
    // the other servers, the default one included, still work
    ClientRun::against(Sdk::Python, Transport::Streamable, &server, "")
        .scenario("echo")
        .run_ok(&server);
    ClientRun::against(Sdk::TypeScript, Transport::Sse, &server, "/servers/good")
        .scenario("echo")
        .run_ok(&server);
    let _ = std::fs::remove_file(path);

    let ok = write(
        "ready-ok.toml",
        &format!(
            "listen = \"127.0.0.1:0\"\nallow-unauthenticated = true\n\n\
             [servers.good]\ncommand = {command}\n"
        ),
    );
    let server = spawn_config(&ok);
    runtime().block_on(async {
        let res = reqwest::get(server.url("/readyz")).await.unwrap();
        assert_eq!(res.status(), 200, "{}", server.logs());
    });
    let _ = std::fs::remove_file(ok);
}

/// `check-config FILE`: its exit status and its stdout and stderr.
fn check_config(text: &str, name: &str) -> (Option<i32>, String, String) {
    let path = write(name, text);
    let out = Command::new(bastion_bin())
        .args(["check-config", path.to_str().unwrap()])
        .env("REMOTE_TOKEN", "tok-never-shown")
        .output()
        .unwrap();
    let _ = std::fs::remove_file(path);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_config_prints_named_servers_masked_and_names_their_errors() {
    let (code, out, err) = check_config(
        "[servers.everything]\ncommand = [\"npx\", \"-y\", \"@modelcontextprotocol/server-everything\", \"stdio\"]\n\
         session-mode = \"shared\"\nenv = [\"API_TOKEN=hush-hush\"]\n\n\
         [servers.remote]\nupstream = \"https://example.com/mcp\"\nupstream-bearer-env = \"REMOTE_TOKEN\"\n\
         upstream-header = [\"X-Api-Key: sk-upstream-secret\"]\n",
        "servers-good.toml",
    );
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains("[servers.everything]  # config line 1"),
        "{out}"
    );
    assert!(
        out.contains("session-mode = \"shared\"  # config line 3"),
        "{out}"
    );
    assert!(out.contains("env = \"API_TOKEN=********\""), "{out}");
    assert!(out.contains("[servers.remote]  # config line 6"), "{out}");
    assert!(
        out.contains("upstream = \"https://example.com/mcp\""),
        "{out}"
    );
    assert!(out.contains("upstream-header = \"********\""), "{out}");
    for secret in ["hush-hush", "sk-upstream-secret", "tok-never-shown"] {
        assert!(!out.contains(secret) && !err.contains(secret), "{out}{err}");
    }

    let cases = [
        (
            "listen = \"127.0.0.1:0\"\n[servers.\"no/slash\"]\ncommand = [\"x\"]\n",
            ":2: `servers.no/slash`: invalid server name",
        ),
        (
            "[servers.a]\ncommand = [\"x\"]\nsesion-mode = \"shared\"\n",
            ":3: `servers.a.sesion-mode`: unknown key; expected one of: command, env",
        ),
        (
            "[servers.a]\nsession-mode = \"shared\"\n",
            ":1: `servers.a`: expected `command = [\"program\", ..]` or `upstream = \"URL\"`",
        ),
        (
            "[servers.a]\ncommand = [\"x\"]\nupstream = \"https://example.com/mcp\"\n",
            ":1: `servers.a`: give either `command = [..]` or `upstream = \"URL\"`, not both",
        ),
        (
            "[servers.a]\ncommand = [\"x\"]\nupstream-timeout = \"soon\"\n",
            ":3: `servers.a.upstream-timeout`: invalid value 'soon'",
        ),
        (
            &format!("[servers.{}]\ncommand = [\"x\"]\n", "n".repeat(65)),
            ":1: `servers.nnnn",
        ),
    ];
    for (i, (text, expected)) in cases.iter().enumerate() {
        let (code, out, err) = check_config(text, &format!("servers-bad-{i}.toml"));
        assert_eq!(code, Some(2), "{text}\n{out}{err}");
        assert!(
            err.contains(expected),
            "{text}\nwant {expected:?} in:\n{err}"
        );
    }
}

/// SIGTERM drains every server: a slow call in flight on one named server completes, the other
/// server's shared child and this one's per-session child both end, and the process exits 0.
#[test]
fn sigterm_drains_every_named_server() {
    use std::time::Duration;
    use tests::CallInFlight;
    let path = two_servers_config("shutdown.toml", None);
    let mut server = spawn_config(&path);
    // a's shared child stays after its session
    ClientRun::against(Sdk::TypeScript, Transport::Sse, &server, "/servers/a")
        .scenario("echo")
        .run_ok(&server);
    server.wait_for_children(1, Duration::from_secs(20));
    let call = CallInFlight::start(server.url("/servers/b/mcp"), "servers-shutdown");
    server.wait_for_children(2, Duration::from_secs(20));
    let children: Vec<u32> = server.children().iter().map(|(pid, _, _)| *pid).collect();
    call.wait_until_under_way();
    let status = server.stop();
    call.assert_completed(&server);
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{}", server.logs());
    for pid in children {
        assert!(tests::process_gone(pid), "child {pid} outlived the proxy");
    }
    let _ = std::fs::remove_file(path);
}

/// A named upstream server beside a named stdio one: the client's scenario completes through
/// `/servers/remote/mcp`, and the upstream sees that server's own bearer and header on every
/// request, never the client's credentials.
#[test]
fn a_named_upstream_server_uses_its_own_outbound_credentials() {
    use tests::upstream::{Everything, Mode, RecordingProxy};
    let everything = Everything::start(Mode::Streamable);
    let recorder = RecordingProxy::start(everything.base_url());
    let path = write(
        "remote.toml",
        &format!(
            "listen = \"127.0.0.1:0\"\nallow-unauthenticated = true\n\n\
             [servers.local]\ncommand = {}\n\n\
             [servers.remote]\nupstream = {:?}\nupstream-bearer-env = \"NAMED_REMOTE_TOKEN\"\n\
             upstream-header = [\"X-Upstream-Static: static-77aa\"]\n",
            toml_list(&everything_stdio()),
            recorder.url("/mcp")
        ),
    );
    let server = Server::spawn_with_env(
        "mcp-bastion",
        &bastion_bin(),
        &["--config".to_owned(), path.display().to_string()],
        &[("NAMED_REMOTE_TOKEN", "named-upstream-token-31c9")],
    );
    let summary = ClientRun::against(
        Sdk::Python,
        Transport::Streamable,
        &server,
        "/servers/remote",
    )
    .arg("--header")
    .arg("Authorization: Bearer client-secret-0f3b")
    .run_ok(&server);
    assert_full_summary(&summary);
    let seen = recorder.seen();
    assert!(!seen.is_empty(), "{}", server.logs());
    for request in &seen {
        assert_eq!(
            request.header("authorization"),
            Some("Bearer named-upstream-token-31c9"),
            "{request:?}"
        );
        assert_eq!(
            request.header("x-upstream-static"),
            Some("static-77aa"),
            "{request:?}"
        );
    }
    let logs = server.logs();
    assert!(
        !logs.contains("named-upstream-token-31c9") && !logs.contains("static-77aa"),
        "{logs}"
    );
    let _ = std::fs::remove_file(path);
}
