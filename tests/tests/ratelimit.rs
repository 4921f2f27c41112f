//! Rate limits through the real `mcp-bastion` binary in front of stdio server-everything: the
//! official Python and TypeScript SDKs get the JSON-RPC rate-limit error (`-32029`, with
//! `data.retryAfterSeconds`); raw HTTP sees the 429 with `Retry-After`, `RateLimit-Policy` and
//! `RateLimit` on both transports; per-tool limits leave other tools alone; a spoofed
//! `X-Forwarded-For` from an untrusted peer changes nothing; two binaries sharing one real
//! `redis-server` enforce one combined limit, and stopping Redis mid-test yields each binary's
//! declared failure policy while both keep answering.
//!
//! Needs `node`, `python3` with the `mcp` SDK, `tests/node/node_modules` and `redis-server`
//! (`bash .ci/test` installs them all; `.ci/deps/redis.sh` installs Redis).
#![allow(clippy::unwrap_used)]

#[path = "ratelimit/support.rs"]
mod support;

use std::{
    io::{BufRead, BufReader, Write},
    net::TcpStream,
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use support::{Answer, Redis, host_of, request};
use tests::{Server, clients_dir, everything_stdio, example_bin};

/// A `tools/call` POSTed to `/mcp` without a session: the transport answers 400 (no session),
/// but only once the rate limit, which runs first, let it through. So 400 = allowed, 429 =
/// limited, and no backend process is ever started.
fn call_tool(server: &Server, id: i64, tool: &str, extra: &[(&str, &str)]) -> Answer {
    let body = json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":tool,"arguments":{}}});
    let mut headers = vec![
        ("Content-Type", "application/json"),
        ("Accept", "application/json, text/event-stream"),
    ];
    headers.extend_from_slice(extra);
    request(server, "POST", "/mcp", &headers, &body.to_string())
}

fn assert_rate_limited(a: &Answer, id: i64, policy: &str) {
    assert_eq!(a.status, 429, "body: {}", a.body);
    let retry: u64 = a.header("retry-after").unwrap().parse().unwrap();
    assert!(retry >= 1, "Retry-After {retry}");
    assert!(
        a.header("ratelimit-policy")
            .unwrap()
            .contains(&format!("\"{policy}\";q="))
    );
    assert!(
        a.header("ratelimit")
            .unwrap()
            .contains(&format!("\"{policy}\";r=0;t="))
    );
    let v = a.json();
    assert_eq!(v["jsonrpc"], "2.0");
    assert_eq!(v["id"], id, "{v}");
    assert_eq!(v["error"]["code"], -32029, "{v}");
    assert_eq!(v["error"]["data"]["retryAfterSeconds"], retry, "{v}");
    assert_eq!(v["error"]["data"]["policy"], policy, "{v}");
}

fn bastion(args: &[&str]) -> Server {
    Server::bastion(args, &everything_stdio())
}

// ---------------------------------------------------------------------------------------------
// real SDK clients

fn run_client(program: &str, script: &str, url: &str) -> Value {
    run_client_on(program, script, url, "echo", 3)
}

fn run_client_on(program: &str, script: &str, url: &str, tool: &str, calls: u32) -> Value {
    run_client_with(program, script, url, tool, calls, &[])
}

/// Whether each call of a `py_ratelimit.py` report succeeded.
fn call_outcomes(report: &Value) -> Vec<bool> {
    report["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["ok"] == true)
        .collect()
}

fn run_client_with(
    program: &str,
    script: &str,
    url: &str,
    tool: &str,
    calls: u32,
    extra: &[&str],
) -> Value {
    let out = Command::new(program)
        .arg(clients_dir().join(script))
        .args(["--url", url, "--tool", tool, "--calls", &calls.to_string()])
        .args(extra)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{script} failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap()
}

#[test]
fn python_sdk_sees_the_json_rpc_rate_limit_error_with_its_code_and_retry_data() {
    let server = bastion(&["--tool-rate-limit", "echo=2/min"]);
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let v = run_client(&python, "py_ratelimit.py", &server.url("/mcp"));
    let calls = v["calls"].as_array().unwrap();
    assert_eq!(calls[0]["ok"], true, "{v}");
    assert_eq!(calls[1]["ok"], true, "{v}");
    assert_eq!(calls[2]["code"], -32029, "{v}");
    assert!(
        calls[2]["data"]["retryAfterSeconds"].as_u64().unwrap() >= 1,
        "{v}"
    );
    assert_eq!(calls[2]["data"]["policy"], "tool.echo", "{v}");
    // the session survives the refusal, and other methods are not limited
    assert!(
        v["after"].as_str().unwrap().starts_with("tools/list ok"),
        "{v}"
    );
    // the HTTP answers: RateLimit on the allowed calls, 429 + Retry-After on the refused one
    let posts = v["posts"].as_array().unwrap();
    assert!(
        posts.iter().any(|p| p[0] == 200
            && p[1]
                .as_str()
                .is_some_and(|h| h.starts_with("\"tool.echo\";r=0"))),
        "{v}"
    );
    assert!(
        posts.iter().any(|p| p[0] == 429 && p[2].as_str().is_some()),
        "{v}"
    );
}

#[test]
fn typescript_sdk_gets_429_with_the_json_rpc_rate_limit_body() {
    let server = bastion(&["--tool-rate-limit", "echo=2/min"]);
    let node = std::env::var("NODE").unwrap_or_else(|_| "node".into());
    let v = run_client(&node, "ts_ratelimit.mjs", &server.url("/mcp"));
    let calls = v["calls"].as_array().unwrap();
    assert_eq!(calls[0]["ok"], true, "{v}");
    assert_eq!(calls[1]["ok"], true, "{v}");
    assert_eq!(calls[2]["status"], 429, "{v}");
    assert_eq!(calls[2]["body"]["error"]["code"], -32029, "{v}");
    assert!(
        calls[2]["body"]["error"]["data"]["retryAfterSeconds"]
            .as_u64()
            .unwrap()
            >= 1,
        "{v}"
    );
    assert!(
        v["after"].as_str().unwrap().starts_with("tools/list ok"),
        "{v}"
    );
}

/// `examples/examples/rate_limit_tools.rs`: limits declared with `#[rate_limit]` on rmcp tools
/// (`echo` 2/min; `summarize`, fn `slow_summary`, `6/min gcra burst=3` per session).
#[test]
fn limits_declared_with_the_rate_limit_attribute_on_rmcp_tools_are_enforced() {
    let bin = example_bin("rate_limit_tools");
    let server = Server::spawn(
        "rate_limit_tools",
        &bin,
        &["--listen".into(), "127.0.0.1:0".into()],
    );
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let v = run_client_on(&python, "py_ratelimit.py", &server.url("/mcp"), "echo", 3);
    let ok = call_outcomes(&v);
    assert_eq!(ok, [true, true, false], "{v}");
    assert_eq!(v["calls"][2]["code"], -32029, "{v}");
    assert_eq!(v["calls"][2]["data"]["policy"], "tool.echo", "{v}");
    // the tool's name came from #[tool(name = "summarize")], the burst from the declaration
    let v = run_client_on(
        &python,
        "py_ratelimit.py",
        &server.url("/mcp"),
        "summarize",
        4,
    );
    let ok = call_outcomes(&v);
    assert_eq!(ok, [true, true, true, false], "{v}");
    assert_eq!(v["calls"][3]["data"]["policy"], "tool.summarize", "{v}");
}

/// `examples/examples/minimal.rs`, the 40-line server on `McpStack`: its API key is required
/// (401 without it, before any body is read) and its tool's `#[rate_limit("2/min")]` holds.
#[test]
fn the_minimal_example_requires_its_api_key_and_enforces_the_declared_limit() {
    let bin = example_bin("minimal");
    let server = Server::spawn_with_env(
        "minimal",
        &bin,
        &["127.0.0.1:0".into()],
        &[("MCP_API_KEY", "KEY-MINIMAL-41c0")],
    );
    let unauthenticated = request(
        &server,
        "POST",
        "/mcp",
        &[
            ("Content-Type", "application/json"),
            ("Accept", "application/json, text/event-stream"),
        ],
        &json!({"jsonrpc":"2.0","id":1,"method":"ping"}).to_string(),
    );
    assert_eq!(unauthenticated.status, 401, "{}", unauthenticated.body);
    assert!(
        unauthenticated
            .header("www-authenticate")
            .is_some_and(|c| c.starts_with("Bearer")),
        "a challenge is sent"
    );
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let v = run_client_with(
        &python,
        "py_ratelimit.py",
        &server.url("/mcp"),
        "hello",
        3,
        &["--bearer", "KEY-MINIMAL-41c0"],
    );
    let ok = call_outcomes(&v);
    assert_eq!(ok, [true, true, false], "{v}");
    assert_eq!(v["calls"][0]["text"], "Hello!", "{v}");
    assert_eq!(v["calls"][2]["code"], -32029, "{v}");
    assert_eq!(v["calls"][2]["data"]["policy"], "tool.hello", "{v}");
}

// ---------------------------------------------------------------------------------------------
// raw HTTP: headers, per-tool isolation, both transports, trusted proxies

#[test]
fn streamable_http_answers_429_with_headers_and_per_tool_limits_are_isolated() {
    let server = bastion(&[
        "--tool-rate-limit",
        "expensive=2/min",
        "--rate-limit",
        "50/min",
    ]);
    for id in 1..=2 {
        let a = call_tool(&server, id, "expensive", &[]);
        assert_eq!(
            a.status, 400,
            "allowed (then refused by the transport: no session)"
        );
        let state = a.header("ratelimit").unwrap();
        assert!(
            state.contains(&format!("\"tool.expensive\";r={}", 2 - id)),
            "{state}"
        );
        assert!(
            a.header("ratelimit-policy")
                .unwrap()
                .contains("\"tool.expensive\";q=2;w=60")
        );
    }
    assert_rate_limited(
        &call_tool(&server, 3, "expensive", &[]),
        3,
        "tool.expensive",
    );
    // another tool is untouched
    for id in 4..=6 {
        assert_eq!(call_tool(&server, id, "cheap", &[]).status, 400);
    }
    // a string id is echoed too
    let body =
        json!({"jsonrpc":"2.0","id":"abc","method":"tools/call","params":{"name":"expensive"}});
    let a = request(
        &server,
        "POST",
        "/mcp",
        &[
            ("Content-Type", "application/json"),
            ("Accept", "application/json, text/event-stream"),
        ],
        &body.to_string(),
    );
    assert_eq!(a.status, 429);
    assert_eq!(a.json()["id"], "abc");
    // health checks are never limited
    assert_eq!(request(&server, "GET", "/healthz", &[], "").status, 200);
}

#[test]
fn legacy_sse_messages_get_the_same_429() {
    let server = bastion(&["--tool-rate-limit", "echo=1/min"]);
    // open the stream and read the endpoint event
    let mut tcp = TcpStream::connect(host_of(&server)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        tcp,
        "GET /sse HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\n\r\n",
        host_of(&server)
    )
    .unwrap();
    let mut reader = BufReader::new(tcp.try_clone().unwrap());
    let endpoint = loop {
        let mut line = String::new();
        assert!(reader.read_line(&mut line).unwrap() > 0, "stream closed");
        if let Some(data) = line.trim_end().strip_prefix("data: ")
            && data.contains("session")
        {
            break data.to_owned();
        }
    };
    // absolute, absolute-path, or relative to `/sse`
    let path = if endpoint.starts_with("http") {
        let rest = endpoint.split_once("://").unwrap().1;
        format!("/{}", rest.split_once('/').unwrap().1)
    } else if endpoint.starts_with('/') {
        endpoint
    } else {
        format!("/{endpoint}")
    };
    let post = |id: i64| {
        let body = json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":"echo","arguments":{"message":"x"}}});
        request(
            &server,
            "POST",
            &path,
            &[("Content-Type", "application/json")],
            &body.to_string(),
        )
    };
    let first = post(1);
    assert_eq!(first.status, 202, "{}", first.body);
    assert!(
        first
            .header("ratelimit")
            .unwrap()
            .contains("\"tool.echo\";r=0")
    );
    assert_rate_limited(&post(2), 2, "tool.echo");
    drop(tcp);
}

#[test]
fn spoofed_x_forwarded_for_from_an_untrusted_peer_changes_nothing() {
    let server = bastion(&["--rate-limit", "1/min", "--rate-limit-key", "ip"]);
    assert_eq!(
        call_tool(&server, 1, "x", &[("X-Forwarded-For", "198.51.100.1")]).status,
        400
    );
    for (id, spoof) in [(2, "198.51.100.2"), (3, "203.0.113.3")] {
        let a = call_tool(
            &server,
            id,
            "x",
            &[
                ("X-Forwarded-For", spoof),
                ("X-Real-IP", spoof),
                ("Forwarded", "for=192.0.2.9"),
            ],
        );
        assert_rate_limited(&a, id, "default");
    }
}

#[test]
fn x_forwarded_for_from_a_trusted_proxy_keys_the_limit() {
    let server = bastion(&[
        "--rate-limit",
        "1/min",
        "--trusted-proxy",
        "127.0.0.0/8",
        "--trusted-proxy",
        "::1",
    ]);
    assert_eq!(
        call_tool(&server, 1, "x", &[("X-Forwarded-For", "198.51.100.1")]).status,
        400
    );
    assert_eq!(
        call_tool(&server, 2, "x", &[("X-Forwarded-For", "198.51.100.2")]).status,
        400
    );
    let a = call_tool(&server, 3, "x", &[("X-Forwarded-For", "198.51.100.1")]);
    assert_rate_limited(&a, 3, "default");
    // a client-written entry left of the real one is not believed
    let a = call_tool(
        &server,
        4,
        "x",
        &[("X-Forwarded-For", "10.9.9.9, 198.51.100.2")],
    );
    assert_rate_limited(&a, 4, "default");
}

#[test]
fn open_streams_are_capped_per_client() {
    let server = bastion(&["--max-streams", "1"]);
    let open_sse = || {
        let mut tcp = TcpStream::connect(host_of(&server)).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        write!(
            tcp,
            "GET /sse HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\n\r\n",
            host_of(&server)
        )
        .unwrap();
        let mut reader = BufReader::new(tcp);
        let mut status = String::new();
        reader.read_line(&mut status).unwrap();
        (reader, status)
    };
    let (first, status) = open_sse();
    assert!(status.contains(" 200 "), "{status}");
    let (_, status) = open_sse();
    assert!(status.contains(" 429 "), "{status}");
    // closing the first stream frees the slot
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_stream, status) = open_sse();
        if status.contains(" 200 ") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the slot was never freed: {status}"
        );
        thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn two_binaries_sharing_one_redis_enforce_one_limit_and_redis_down_yields_the_declared_policy() {
    let mut redis = Redis::start();
    let url = redis.url();
    let common = [
        "--redis-url",
        url.as_str(),
        "--tool-rate-limit",
        "echo=3/min",
        "--tool-rate-limit",
        "burst=2/min gcra",
    ];
    let mut closed_args = common.to_vec();
    closed_args.extend(["--redis-failure", "closed"]);
    let mut open_args = common.to_vec();
    open_args.extend(["--redis-failure", "open"]);
    let closed = bastion(&closed_args);
    let open = bastion(&open_args);

    // sliding window: 3 allowed between the two, whichever gets them
    assert_eq!(call_tool(&closed, 1, "echo", &[]).status, 400);
    assert_eq!(call_tool(&open, 2, "echo", &[]).status, 400);
    let a = call_tool(&closed, 3, "echo", &[]);
    assert_eq!(a.status, 400);
    assert!(
        a.header("ratelimit").unwrap().contains("\"tool.echo\";r=0"),
        "{:?}",
        a.headers
    );
    assert_rate_limited(&call_tool(&open, 4, "echo", &[]), 4, "tool.echo");
    assert_rate_limited(&call_tool(&closed, 5, "echo", &[]), 5, "tool.echo");
    // GCRA: 2 at once between the two
    assert_eq!(call_tool(&open, 6, "burst", &[]).status, 400);
    assert_eq!(call_tool(&closed, 7, "burst", &[]).status, 400);
    assert_rate_limited(&call_tool(&open, 8, "burst", &[]), 8, "tool.burst");

    // one round trip per decision: one successful EVALSHA each (a first EVALSHA of a script
    // fails with NOSCRIPT, which loads it), nothing else from the proxies
    let stats = redis.command_stats();
    let evalsha = stats.iter().find(|(c, ..)| c == "evalsha").unwrap();
    assert_eq!(evalsha.1 - evalsha.2, 8, "{stats:?}");
    let loads = stats
        .iter()
        .find(|(c, ..)| c == "script|load")
        .map_or(0, |s| s.1);
    assert!(loads <= 4, "{stats:?}");
    assert!(!stats.iter().any(|(c, ..)| c == "eval"), "{stats:?}");

    // Redis goes away mid-test
    redis.stop();
    for id in 10..13 {
        // fail closed: 503, the rate-limit code, Retry-After
        let a = call_tool(&closed, id, "echo", &[]);
        assert_eq!(a.status, 503, "{}", a.body);
        assert_eq!(a.header("retry-after"), Some("1"));
        assert_eq!(a.json()["error"]["code"], -32029);
        assert_eq!(a.json()["id"], id);
        // fail open: through, unlimited
        assert_eq!(call_tool(&open, id, "echo", &[]).status, 400);
    }
    // both keep answering everything else
    assert_eq!(request(&closed, "GET", "/healthz", &[], "").status, 200);
    assert_eq!(request(&open, "GET", "/healthz", &[], "").status, 200);
    // Redis comes back on the same port: limits apply again (fresh, empty counters)
    let _back = Redis::start_on(redis.port);
    let deadline = Instant::now() + Duration::from_secs(15);
    while call_tool(&closed, 20, "echo", &[]).status != 400 {
        assert!(Instant::now() < deadline, "{}", closed.logs());
        thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(call_tool(&open, 21, "echo", &[]).status, 400);
    // the open one answers either way: wait until its once-a-second probe has found Redis back
    let deadline = Instant::now() + Duration::from_secs(15);
    while !open.logs().contains("rate-limit store reachable again") {
        assert!(Instant::now() < deadline, "{}", open.logs());
        thread::sleep(Duration::from_millis(200));
        assert_eq!(call_tool(&open, 22, "echo", &[]).status, 400);
    }
    // each logged the outage once, not once per request, and its end once
    for server in [&closed, &open] {
        let logs = server.logs();
        assert_eq!(
            logs.matches("rate-limit store unreachable").count(),
            1,
            "{logs}"
        );
        assert_eq!(
            logs.matches("rate-limit store reachable again").count(),
            1,
            "{logs}"
        );
        assert!(!logs.contains("panicked"), "{logs}");
    }
}

#[test]
fn a_tier_flag_gives_principals_with_that_scope_their_own_limit() {
    let keys =
        std::env::temp_dir().join(format!("mcp-bastion-tier-keys-{}.json", std::process::id()));
    std::fs::write(
        &keys,
        json!([
            {"key": "k-basic-tier-test", "subject": "basic", "scopes": []},
            {"key": "k-premium-tier-test", "subject": "premium", "scopes": ["premium"]}
        ])
        .to_string(),
    )
    .unwrap();
    let server = bastion(&[
        "--api-keys-file",
        keys.to_str().unwrap(),
        "--rate-limit",
        "1/min",
        "--rate-limit-key",
        "principal",
        "--tier-rate-limit",
        "premium=3/min",
    ]);
    let basic = [("X-API-Key", "k-basic-tier-test")];
    let premium = [("X-API-Key", "k-premium-tier-test")];
    assert_eq!(call_tool(&server, 1, "x", &basic).status, 400);
    assert_rate_limited(&call_tool(&server, 2, "x", &basic), 2, "default");
    for id in 3..6 {
        let a = call_tool(&server, id, "x", &premium);
        assert_eq!(a.status, 400, "{}", a.body);
        assert!(
            a.header("ratelimit-policy")
                .unwrap()
                .contains("\"default\";q=3;w=60")
        );
    }
    let a = call_tool(&server, 6, "x", &premium);
    assert_rate_limited(&a, 6, "default");
    assert_eq!(a.json()["error"]["data"]["limit"], 3);
    let _ = std::fs::remove_file(&keys);
}

#[test]
fn a_redis_over_tls_behind_a_private_ca_is_shared_with_redis_ca_and_refused_without_it() {
    let pki = tests::certs::private_ca(&tests::scratch_dir("redis-tls"));
    let redis = Redis::start_tls(&pki.server_cert, &pki.server_key);
    let url = redis.tls_url();
    let ca = pki.ca.to_str().unwrap();
    let args = |with_ca: bool| {
        let mut args = vec![
            "--redis-url",
            url.as_str(),
            "--redis-failure",
            "closed",
            "--tool-rate-limit",
            "echo=2/min",
        ];
        if with_ca {
            args.extend(["--redis-ca", ca]);
        }
        args
    };
    let a = bastion(&args(true));
    let b = bastion(&args(true));
    // one limit between the two, counted over TLS (a failed connection would be 503: closed)
    assert_eq!(call_tool(&a, 1, "echo", &[]).status, 400, "{}", a.logs());
    assert_eq!(call_tool(&b, 2, "echo", &[]).status, 400, "{}", b.logs());
    assert_rate_limited(&call_tool(&a, 3, "echo", &[]), 3, "tool.echo");
    let stats = redis.command_stats();
    let evalsha = stats.iter().find(|(c, ..)| c == "evalsha").unwrap();
    assert_eq!(evalsha.1 - evalsha.2, 3, "{stats:?}");

    // the same Redis without the CA: its certificate is not trusted, so the store is down
    let untrusting = bastion(&args(false));
    let refused = call_tool(&untrusting, 4, "echo", &[]);
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert_eq!(refused.json()["error"]["code"], -32029);

    // a CA for a plain `redis://` URL, or without any URL: refused at start, naming the flag
    let plain = format!("redis://127.0.0.1:{}", redis.port);
    let err = tests::refused_start(
        &["--redis-url", &plain, "--redis-ca", ca, "--", "true"],
        &[],
    );
    assert!(
        err.contains("--redis-ca") && err.contains("`rediss://`"),
        "{err}"
    );
    let err = tests::refused_start(&["--redis-ca", ca, "--", "true"], &[]);
    assert!(
        err.contains("redis-ca") && err.contains("needs `redis-url`"),
        "{err}"
    );
}
