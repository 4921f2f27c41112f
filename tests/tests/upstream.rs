//! `mcp-bastion --upstream URL` in front of a real remote MCP server: `@modelcontextprotocol/
//! server-everything` run as a process in its Streamable HTTP mode, and in its legacy HTTP+SSE
//! (2024-11-05) mode (found by the proxy's fallback), driven by the official Python and
//! TypeScript SDK clients over both of the proxy's transports (full scenario: initialize,
//! tools/list, echo, progress, sampling, elicitation, resource, prompt, session end).
//!
//! Between the proxy and server-everything sits a recording reverse proxy (axum + reqwest, in
//! this test process) that keeps the headers of every upstream request. The clients send an
//! `Authorization` bearer, a `Cookie` and an `X-Api-Key` of their own; the test asserts that
//! none of them reaches the upstream, and that the proxy's configured credentials
//! (`--upstream-bearer-env`, `--upstream-header`) reach it on every request.
//!
//! Also: an upstream that is down gives the client a clear JSON-RPC error while the proxy keeps
//! serving (`/healthz` 200, `/readyz` 503), and once the upstream is up, clients succeed; an
//! upstream that dies mid-session fails the next call with a clear error; and the CLI refuses
//! configurations that cannot work (both or neither backend, an unset token variable, a
//! malformed or protocol header) without echoing header values.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use serde_json::{Value, json};
use tests::{
    ClientRun, Sdk, Server, Transport, assert_full_summary,
    upstream::{Everything, Mode, RecordingProxy, Seen, free_port},
};

/// The proxy's own token for the upstream, given through this environment variable.
const TOKEN_VAR: &str = "MCP_BASTION_TEST_UPSTREAM_TOKEN";
const UPSTREAM_TOKEN: &str = "upstream-token-7f3a9c";
const STATIC_HEADER: (&str, &str) = ("x-upstream-static", "static-4d2e");

/// What the clients send to the proxy and must never reach the upstream.
const CLIENT_HEADERS: [&str; 3] = [
    "Authorization: Bearer client-bearer-secret-1b8e",
    "Cookie: sid=client-cookie-secret-5c0d",
    "X-Api-Key: client-api-key-secret-9e61",
];
const CLIENT_SECRETS: [&str; 3] = [
    "client-bearer-secret-1b8e",
    "client-cookie-secret-5c0d",
    "client-api-key-secret-9e61",
];

// ---------------------------------------------------------------------------------------------
// scenarios

/// The proxy in front of `upstream_url`, with its own credentials.
fn bastion_for(upstream_url: &str) -> Server {
    let static_header = format!("{}: {}", STATIC_HEADER.0, STATIC_HEADER.1);
    Server::bastion_args_with_env(
        &[
            "--upstream",
            upstream_url,
            "--upstream-bearer-env",
            TOKEN_VAR,
            "--upstream-header",
            &static_header,
            "--upstream-timeout",
            "60",
        ],
        &[(TOKEN_VAR, UPSTREAM_TOKEN)],
    )
}

fn with_client_credentials(mut run: ClientRun) -> ClientRun {
    for header in CLIENT_HEADERS {
        run = run.arg("--header").arg(header);
    }
    run
}

/// No client credential reached the upstream; the proxy's own did, on every request.
fn assert_credentials_isolated(seen: &[Seen], bastion: &Server) {
    assert!(
        !seen.is_empty(),
        "the upstream saw no request\n{}",
        bastion.logs()
    );
    let bearer = format!("Bearer {UPSTREAM_TOKEN}");
    for request in seen {
        for (name, value) in &request.headers {
            for secret in CLIENT_SECRETS {
                assert!(
                    !value.contains(secret),
                    "the client's credential reached the upstream in `{name}` of {request:?}"
                );
            }
        }
        assert!(request.header("cookie").is_none(), "{request:?}");
        assert!(request.header("x-api-key").is_none(), "{request:?}");
        assert_eq!(
            request.header("authorization"),
            Some(bearer.as_str()),
            "the configured bearer must be on every upstream request: {request:?}"
        );
        assert_eq!(
            request.header(STATIC_HEADER.0),
            Some(STATIC_HEADER.1),
            "{request:?}"
        );
    }
    let logs = bastion.logs();
    assert!(
        !logs.contains(UPSTREAM_TOKEN) && !logs.contains(STATIC_HEADER.1),
        "the proxy logged its upstream credentials:\n{logs}"
    );
}

fn full_scenario_through_upstream(mode: Mode, sdk: Sdk, transport: Transport) {
    let everything = Everything::start(mode);
    let recorder = RecordingProxy::start(everything.base_url());
    let bastion = bastion_for(&recorder.url(mode.path()));
    let run = with_client_credentials(ClientRun::against(sdk, transport, &bastion, ""));
    let outcome = run.run();
    if !outcome.success() {
        eprintln!("--- server-everything log ---\n{}", everything.log());
    }
    let summary = outcome.assert_ok(&bastion);
    assert_full_summary(&summary);

    match mode {
        Mode::Streamable => {
            // The upstream session was opened, used with its own id, and deleted at the end.
            assert!(
                recorder.wait_for(Duration::from_secs(10), |s| s.method == "DELETE"
                    && s.header("mcp-session-id").is_some()),
                "no DELETE of the upstream session: {:#?}\n{}",
                recorder.seen(),
                bastion.logs()
            );
            let seen = recorder.seen();
            assert!(
                seen.iter().any(|s| s.method == "GET" && s.path == "/mcp"),
                "the GET stream was not opened: {seen:#?}"
            );
            let versioned = seen
                .iter()
                .filter(|s| s.method == "POST" && s.header("mcp-session-id").is_some())
                .all(|s| s.header("mcp-protocol-version").is_some());
            assert!(versioned, "{seen:#?}");
        }
        Mode::LegacySse => {
            let seen = recorder.seen();
            assert!(
                seen.iter().any(|s| s.method == "GET" && s.path == "/sse"),
                "{seen:#?}"
            );
            assert!(
                seen.iter()
                    .any(|s| s.method == "POST" && s.path == "/message"),
                "{seen:#?}"
            );
        }
    }
    assert_credentials_isolated(&recorder.seen(), &bastion);
}

macro_rules! upstream_tests {
    ($($name:ident: $mode:ident, $sdk:ident, $transport:ident;)*) => {$(
        #[test]
        fn $name() {
            full_scenario_through_upstream(Mode::$mode, Sdk::$sdk, Transport::$transport);
        }
    )*};
}

upstream_tests! {
    streamable_upstream_python_streamable_full_scenario_with_own_credentials: Streamable, Python, Streamable;
    streamable_upstream_python_sse_full_scenario_with_own_credentials: Streamable, Python, Sse;
    streamable_upstream_typescript_streamable_full_scenario_with_own_credentials: Streamable, TypeScript, Streamable;
    streamable_upstream_typescript_sse_full_scenario_with_own_credentials: Streamable, TypeScript, Sse;
    legacy_sse_upstream_python_streamable_full_scenario_with_own_credentials: LegacySse, Python, Streamable;
    legacy_sse_upstream_python_sse_full_scenario_with_own_credentials: LegacySse, Python, Sse;
    legacy_sse_upstream_typescript_streamable_full_scenario_with_own_credentials: LegacySse, TypeScript, Streamable;
    legacy_sse_upstream_typescript_sse_full_scenario_with_own_credentials: LegacySse, TypeScript, Sse;
}

/// One answer of the proxy's Streamable HTTP endpoint.
struct Reply {
    status: u16,
    session: Option<String>,
    /// The JSON-RPC message: the JSON body, or the last non-empty SSE event.
    body: Value,
}

/// POSTs one message to the proxy's `/mcp`, on `session` if given.
async fn post_mcp(
    client: &reqwest::Client,
    bastion: &Server,
    session: Option<&str>,
    body: Value,
) -> Reply {
    let mut request = client
        .post(bastion.url("/mcp"))
        .header("accept", "application/json, text/event-stream")
        .json(&body);
    if let Some(session) = session {
        request = request
            .header("mcp-session-id", session)
            .header("mcp-protocol-version", "2025-06-18");
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let session = response
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let text = response.text().await.unwrap();
    let json = text
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(str::trim)
        .rfind(|d| !d.is_empty())
        .unwrap_or(text.trim())
        .to_owned();
    let body = serde_json::from_str(&json).unwrap_or(Value::String(text));
    Reply {
        status,
        session,
        body,
    }
}

fn initialize_body() -> Value {
    json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "upstream-test", "version": "0"},
        },
    })
}

async fn get_status(client: &reqwest::Client, url: String) -> u16 {
    client.get(url).send().await.unwrap().status().as_u16()
}

#[test]
fn upstream_down_gives_a_clear_json_rpc_error_and_the_proxy_keeps_serving() {
    let port = free_port(); // nothing listens here (yet)
    let bastion = bastion_for(&format!("http://127.0.0.1:{port}/mcp"));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = reqwest::Client::new();

    runtime.block_on(async {
        for _ in 0..2 {
            let Reply { status, body, .. } =
                post_mcp(&client, &bastion, None, initialize_body()).await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(body["id"], 1, "{body}");
            assert_eq!(body["error"]["code"], -32603, "{body}");
            assert_eq!(body["error"]["data"]["upstream"], "connect", "{body}");
            let message = body["error"]["message"].as_str().unwrap_or_default();
            assert!(message.contains("cannot connect to the upstream"), "{body}");
            assert!(
                !message.contains(&port.to_string()),
                "no topology in client errors: {body}"
            );
        }
        assert_eq!(get_status(&client, bastion.url("/healthz")).await, 200);
        assert_eq!(get_status(&client, bastion.url("/readyz")).await, 503);
    });

    // The SDK client gets the error too (and fails cleanly, without hanging).
    let outcome = ClientRun::new(Sdk::Python, Transport::Streamable, bastion.url("/mcp"))
        .timeout(Duration::from_secs(30))
        .run();
    assert!(!outcome.success() && !outcome.timed_out, "{outcome:?}");
    assert!(outcome.stderr.contains("upstream"), "{}", outcome.stderr);

    // Once the upstream is up, the same proxy serves it.
    let Some(_everything) = Everything::start_on(Mode::Streamable, port) else {
        // Someone took the port meanwhile: what was asserted above still holds.
        return;
    };
    runtime.block_on(async {
        assert_eq!(get_status(&client, bastion.url("/readyz")).await, 200);
    });
    let summary =
        ClientRun::against(Sdk::TypeScript, Transport::Streamable, &bastion, "").run_ok(&bastion);
    assert_full_summary(&summary);
}

#[test]
fn an_upstream_that_dies_mid_session_fails_the_next_call_with_a_clear_error() {
    let everything = Everything::start(Mode::Streamable);
    let bastion = bastion_for(&format!("{}/mcp", everything.base_url()));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = reqwest::Client::new();
    let echo = |id: i64| {
        json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
               "params": {"name": "echo", "arguments": {"message": "still there?"}}})
    };

    let session = runtime.block_on(async {
        let init = post_mcp(&client, &bastion, None, initialize_body()).await;
        assert_eq!(init.status, 200, "{}", init.body);
        assert!(
            init.body["result"]["serverInfo"].is_object(),
            "{}",
            init.body
        );
        let session = init.session.expect("a session id");
        let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        let accepted = post_mcp(&client, &bastion, Some(&session), initialized).await;
        assert_eq!(accepted.status, 202);
        let answer = post_mcp(&client, &bastion, Some(&session), echo(2)).await;
        let text = answer.body["result"]["content"][0]["text"].as_str();
        assert_eq!(text, Some("Echo: still there?"), "{}", answer.body);
        session
    });

    drop(everything);

    runtime.block_on(async {
        let answer = post_mcp(&client, &bastion, Some(&session), echo(3)).await;
        let body = &answer.body;
        assert_eq!(body["id"], 3, "{body}");
        assert_eq!(body["error"]["code"], -32603, "{body}");
        let kind = body["error"]["data"]["upstream"]
            .as_str()
            .unwrap_or_default();
        assert!(
            ["connect", "broken"].contains(&kind),
            "a connection failure, not a hang: {body}"
        );
        assert_eq!(get_status(&client, bastion.url("/healthz")).await, 200);
        assert_eq!(get_status(&client, bastion.url("/readyz")).await, 503);
    });
}

use tests::refused_start as refused;

#[test]
fn the_cli_wants_exactly_one_backend_and_usable_upstream_credentials() {
    let neither = refused(&[], &[]);
    assert!(neither.contains("--upstream URL"), "{neither}");
    let both = refused(&["--upstream", "http://127.0.0.1:1/mcp", "--", "true"], &[]);
    assert!(both.contains("cannot be used with"), "{both}");
    let orphan = refused(&["--upstream-bearer-env", TOKEN_VAR, "--", "true"], &[]);
    assert!(orphan.contains("need --upstream"), "{orphan}");

    let unset = "MCP_BASTION_TEST_UPSTREAM_TOKEN_UNSET";
    let missing = refused(
        &[
            "--upstream",
            "http://127.0.0.1:1/mcp",
            "--upstream-bearer-env",
            unset,
        ],
        &[],
    );
    assert!(missing.contains(unset), "{missing}");

    // A malformed header is refused without echoing its value, which may be a secret.
    let bad = refused(
        &[
            "--upstream",
            "http://127.0.0.1:1/mcp",
            "--upstream-header",
            "secret-value-3c1f",
        ],
        &[],
    );
    assert!(
        bad.contains("Name: value") && !bad.contains("secret-value-3c1f"),
        "{bad}"
    );
    let managed = refused(
        &[
            "--upstream",
            "http://127.0.0.1:1/mcp",
            "--upstream-header",
            "Mcp-Session-Id: x",
        ],
        &[],
    );
    assert!(managed.contains("set by the proxy"), "{managed}");
}
