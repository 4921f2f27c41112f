//! The secrets sweep: the binary at TRACE, every way a secret reaches it configured at once
//! (API key by header and by `?auth=`, a JWT, an introspected token and the introspection client
//! secret, session parameters captured from the URL and passed to the child's environment, a
//! Redis URL with a password, upstream credentials), both SDKs over both transports, refusals
//! of wrong credentials; then every line of the log, every error body and every challenge is
//! searched for every secret, and so is the audit log (`--audit-log`). `logs.rs` does the same for the auth layers in process.

use tests::{redis::Redis, upstream};

use crate::support::*;

const SWEEP_KEY: &str = "sk-sweep-7c41e0b9d2";
/// Captured as `tenant_token`: a sensitive name by its words.
const TENANT_TOKEN: &str = "tt-sweep-91ab52e7";
/// Captured as `ticket`, declared sensitive with `--sensitive-param`.
const TICKET: &str = "tk-sweep-3f7e0c18";
const REDIS_PASSWORD: &str = "redis-sweep-6b0c93";
const INTROSPECTION_SECRET: &str = "intro-client-sweep-5d2a";
const UPSTREAM_TOKEN: &str = "up-bearer-sweep-4e8f";
const UPSTREAM_HEADER: &str = "up-header-sweep-a1c7";

/// Asserts that no secret appears in `text`, naming where (and a prefix of the secret only).
fn assert_clean(text: &str, secrets: &[String], what: &str) {
    for secret in secrets {
        assert!(
            !text.contains(secret.as_str()),
            "a secret ({}…) appears in {what}",
            &secret[..secret.len().min(6)]
        );
    }
}

/// `token` with the last character of its signature changed.
fn tampered(token: &str) -> String {
    let (head, last) = token.split_at(token.len() - 1);
    format!("{head}{}", if last == "A" { "B" } else { "A" })
}

/// Wrong credentials of every kind; returns each answer's status line, challenge and body.
fn refusals(server: &Server, presented: &[String]) -> Vec<String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let http = reqwest::Client::new();
        let mut answers = Vec::new();
        for bad in presented {
            for req in [
                http.post(server.url("/mcp")).bearer_auth(bad),
                http.post(server.url("/mcp")).header("x-api-key", bad),
                http.post(server.url(&format!("/mcp?auth={bad}"))),
                http.get(server.url(&format!("/sse?auth={bad}"))),
            ] {
                let res = req
                    .header("content-type", "application/json")
                    .header("accept", "application/json, text/event-stream")
                    .body(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#)
                    .send()
                    .await
                    .unwrap();
                let status = res.status();
                let challenge = res
                    .headers()
                    .get_all("www-authenticate")
                    .iter()
                    .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                    .collect::<Vec<_>>()
                    .join(" | ");
                let body = res.text().await.unwrap_or_default();
                assert!(
                    status == StatusCode::UNAUTHORIZED,
                    "a wrong credential got {status}: {body}"
                );
                answers.push(format!("{status} [{challenge}] {body}"));
            }
        }
        answers
    })
}

#[test]
fn no_secret_appears_in_trace_logs_or_error_answers_across_transports_and_features() {
    let key = ec_key("sweep");
    let jwks = Jwks::start(vec![key.jwk.clone()]);
    let token = sign(&key, &claims("https://issuer.test", "sweeper"));
    let mut expired = claims("https://issuer.test", "sweeper");
    expired["exp"] = json!(now() - 1000);
    let expired = sign(&key, &expired);
    let intro = format!("{}/introspect", introspection_server(Calls::default()));
    let redis = Redis::start_with_password(REDIS_PASSWORD);
    let redis_url = redis.url_with_password(REDIS_PASSWORD);
    let audit_dir = std::env::temp_dir().join(format!("mcp-sweep-audit-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&audit_dir);
    std::fs::create_dir_all(&audit_dir).unwrap();
    let audit_log = audit_dir.join("audit.jsonl");
    let server = Server::bastion_recorded(
        &[
            "--audit-log",
            audit_log.to_str().unwrap(),
            "--audit-hash-arguments",
            "--session-mode",
            "per-session",
            "--api-key",
            SWEEP_KEY,
            "--api-key-query-param",
            "auth",
            "--jwt-jwks-url",
            &jwks.url(),
            "--jwt-audience",
            AUD,
            "--introspection-url",
            &intro,
            "--introspection-client-id",
            "sweep-client",
            "--introspection-client-secret-env",
            "SWEEP_INTRO_SECRET",
            "--capture-param",
            "tenant_token",
            "--capture-param",
            "ticket",
            "--sensitive-param",
            "ticket",
            "--param-env",
            "tenant_token=SWEEP_TENANT_TOKEN",
            "--redis-url",
            &redis_url,
            "--rate-limit",
            "10000/min",
        ],
        &everything_stdio(),
        &[
            ("MCP_BASTION_LOG", "trace"),
            ("SWEEP_INTRO_SECRET", INTROSPECTION_SECRET),
        ],
    );
    let params = format!("tenant_token={TENANT_TOKEN}&ticket={TICKET}");
    // JWT by header, captured parameters in the URL: Python, Streamable HTTP, whole scenario
    let s = ClientRun::new(
        Sdk::Python,
        Transport::Streamable,
        server.url(&format!("/mcp?{params}")),
    )
    .strict_session_end(true)
    .arg("--header")
    .arg(format!("Authorization: Bearer {token}"))
    .run_ok(&server);
    assert_full(&s);
    // API key by `?auth=` on the legacy SSE stream, with the captured parameters
    let s = ClientRun::new(
        Sdk::Python,
        Transport::Sse,
        server.url(&format!("/sse?auth={SWEEP_KEY}&{params}")),
    )
    .strict_session_end(true)
    .scenario("echo")
    .run_ok(&server);
    assert_echo(&s);
    // API key by header: TypeScript, both transports
    for transport in [Transport::Streamable, Transport::Sse] {
        let s = echo_with_headers(
            Sdk::TypeScript,
            transport,
            &server,
            &[&format!("X-Api-Key: {SWEEP_KEY}")],
        );
        assert_echo(&s);
    }
    // an introspected token: TypeScript, Streamable HTTP
    let s = echo_with_headers(
        Sdk::TypeScript,
        Transport::Streamable,
        &server,
        &["Authorization: Bearer at-active"],
    );
    assert_echo(&s);

    // wrong credentials, each shaped like a real one
    let presented = vec![
        expired.clone(),
        tampered(&token),
        "sk-sweep-wrong-0d9f31".to_owned(),
        "at-sweep-inactive-77e2".to_owned(),
    ];
    let answers = refusals(&server, &presented).join("\n");

    let mut secrets: Vec<String> = [
        SWEEP_KEY,
        TENANT_TOKEN,
        TICKET,
        REDIS_PASSWORD,
        INTROSPECTION_SECRET,
        token.as_str(),
        token.rsplit('.').next().unwrap(),
        "at-active",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    secrets.extend(presented.iter().cloned());
    secrets.push(expired.rsplit('.').next().unwrap().to_owned());

    let log = server.transcript();
    assert!(
        log.contains("TRACE") && log.matches("mcp.request").count() >= 10,
        "the sweep needs the TRACE log of the requests: {} lines",
        log.lines().count()
    );
    // what was swept really ran: rate limits counted in the password-protected Redis
    assert!(
        redis.command_stats().iter().any(|(cmd, calls, _)| {
            (cmd.starts_with("eval") || cmd.starts_with("fcall")) && *calls > 0
        }),
        "the rate limiter never used Redis: {:?}",
        redis.command_stats()
    );
    assert_clean(&log, &secrets, "the TRACE log");
    assert_clean(&answers, &secrets, "an error answer or challenge");
    // the writer's thread flushes when its queue is empty: wait for the last refusals
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let mut audit = String::new();
    while std::time::Instant::now() < deadline {
        audit = std::fs::read_to_string(&audit_log).unwrap_or_default();
        if audit.matches("\"refused_by\":\"auth\"").count() >= presented.len() * 4 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(
        audit.lines().count() >= 10 && audit.contains("\"refused_by\":\"auth\""),
        "the sweep needs the audit records of the requests and refusals: {} lines",
        audit.lines().count()
    );
    assert_clean(&audit, &secrets, "the audit log");
    eprintln!(
        "swept {} log lines and {} refusals for {} secrets",
        log.lines().count(),
        presented.len() * 4,
        secrets.len()
    );
}

#[test]
fn upstream_credentials_never_appear_in_trace_logs() {
    let everything = upstream::Everything::start(upstream::Mode::Streamable);
    let server = Server::bastion_args_recorded(
        &[
            "--upstream",
            &format!("{}/mcp", everything.base_url()),
            "--upstream-bearer-env",
            "SWEEP_UPSTREAM_TOKEN",
            "--upstream-header",
            &format!("X-Upstream-Key: {UPSTREAM_HEADER}"),
        ],
        &[
            ("MCP_BASTION_LOG", "trace"),
            ("SWEEP_UPSTREAM_TOKEN", UPSTREAM_TOKEN),
        ],
    );
    for (sdk, transport) in [
        (Sdk::Python, Transport::Streamable),
        (Sdk::TypeScript, Transport::Sse),
    ] {
        let s = ClientRun::against(sdk, transport, &server, "")
            .scenario("echo")
            .run_ok(&server);
        assert_echo(&s);
    }
    let log = server.transcript();
    assert!(log.contains("TRACE"), "the sweep needs the TRACE log");
    let secrets = [UPSTREAM_TOKEN.to_owned(), UPSTREAM_HEADER.to_owned()];
    assert_clean(&log, &secrets, "the TRACE log of an upstream proxy");
}
