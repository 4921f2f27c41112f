//! The secrets sweep: the binary at TRACE, every way a secret reaches it configured at once
//! (API key by header and by `?auth=`, a JWT, an introspected token and the introspection client
//! secret, session parameters captured from the URL and passed to the child's environment, a
//! Redis URL with a password, upstream credentials), both SDKs over both transports, refusals
//! of wrong credentials; then every line of the log, every error body and every challenge is
//! searched for every secret, and so are the audit log (`--audit-log`) and the spans exported
//! over OTLP (`--otlp-endpoint`, to a real receiver). `logs.rs` does the same for the auth layers in process.

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
    let otlp = tests::otlp::Receiver::start("sweep");
    let server = Server::bastion_recorded(
        &[
            "--otlp-endpoint",
            &otlp.endpoint(),
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
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
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
    let spans = otlp.wait_until(|spans| {
        spans.iter().filter(|s| s["kind"] == "SERVER").count() >= 10
            && spans.iter().any(|s| s["kind"] == "CLIENT")
    });
    assert!(
        spans.iter().filter(|s| s["kind"] == "SERVER").count() >= 10,
        "the sweep needs the exported spans of the requests: {} spans",
        spans.len()
    );
    assert_clean(&otlp.text(), &secrets, "the exported OpenTelemetry spans");
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

/// The initial access token of `--oauth-dcr token`.
const DCR_TOKEN: &str = "dcr-initial-sweep-8c2e51";

/// The binary as its own OAuth authorization server at TRACE, through whole flows: the Python
/// SDK's client with a Client ID Metadata Document (login at the identity provider, consent,
/// code, tokens, a call, a refresh, a revocation), a registration with the initial access token
/// (and one without it), and a static client played by a browser here (code, tokens, refresh).
/// No secret of any of them may appear in the log: client secrets, the upstream client secret,
/// the DCR token, codes, access and refresh tokens of mcp-bastion and of the identity provider
/// (the upstream tokens, which also go to each child through `--principal-env
/// …=upstream:access_token`), the secrets key that seals them at rest, PKCE verifiers, `state`s and
/// `nonce`s (the provider reports every secret it sees or issues: `tests::oauth::Idp::secrets`).
/// The key that seals the upstream tokens in the OAuth sweep (base64 of 32 bytes).
const SWEEP_SECRETS_KEY: &str = "c3dlZXAtc2VjcmV0cy1rZXktMzItYnl0ZXMtbG9uZyE=";

#[test]
fn oauth_flow_secrets_never_appear_in_trace_logs() {
    use tests::oauth::{Browser, OAuthBastion, REDIRECT, UPSTREAM_SECRET, pkce, sdk_oauth};

    let dir = std::env::temp_dir().join(format!("mcp-bastion-oauth-sweep-{}", std::process::id()));
    let (cert, key) = tests::certs::self_signed_end_entity(&dir);
    let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let s = OAuthBastion::start(
        &[
            "--oauth-dcr",
            "token",
            "--oauth-dcr-token-env",
            "SWEEP_DCR_TOKEN",
            "--oauth-cimd-allow-loopback",
            "--oauth-cimd-ca-file",
            cert,
            "--oauth-client",
            &format!("sweep-cli={REDIRECT}"),
            // the user's upstream token goes through the token manager into each child
            "--principal-env",
            "SWEEP_UPSTREAM_TOKEN=upstream:access_token",
            "--oauth-secrets-key-env",
            "SWEEP_SECRETS_KEY",
        ],
        &[
            ("MCP_BASTION_LOG", "trace"),
            ("SWEEP_DCR_TOKEN", DCR_TOKEN),
            ("SWEEP_SECRETS_KEY", SWEEP_SECRETS_KEY),
        ],
        "",
        Some(&everything_stdio()),
    );
    let b = &s.bastion;
    let mut secrets = vec![
        UPSTREAM_SECRET.to_owned(),
        DCR_TOKEN.to_owned(),
        SWEEP_SECRETS_KEY.to_owned(),
    ];

    // an SDK's whole flow
    let report = sdk_oauth(
        Sdk::Python,
        &b.url("/mcp"),
        &b.url("/mcp"),
        &["--cimd-cert", cert, "--cimd-key", key],
    )
    .unwrap_or_else(|e| panic!("{e}\n--- mcp-bastion ---\n{}", b.logs()));
    assert_eq!(report["whoami"], "alice", "{report}");
    assert_eq!(report["revoked_status"], 401, "{report}");
    secrets.extend(
        report["secrets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned()),
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let http = reqwest::Client::new();
        // registration: with the initial access token (its answer holds a client secret), without
        let registration = json!({"redirect_uris": [REDIRECT], "client_name": "sweep"});
        let res = http
            .post(b.url("/oauth/register"))
            .bearer_auth(DCR_TOKEN)
            .json(&registration)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
        let registered: Value = res.json().await.unwrap();
        if let Some(secret) = registered["client_secret"].as_str() {
            secrets.push(secret.to_owned());
        }
        let res = http
            .post(b.url("/oauth/register"))
            .json(&registration)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401);

        // a static client through a browser: its state and PKCE verifier are secrets too
        let (verifier, challenge) = pkce();
        let (state, _) = pkce();
        let mut url = reqwest::Url::parse(&b.url("/oauth/authorize")).unwrap();
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", "sweep-cli")
            .append_pair("redirect_uri", REDIRECT)
            .append_pair("state", &state)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        let back = Browser::new()
            .authorize(url.as_str(), "alice", REDIRECT)
            .await
            .unwrap_or_else(|(status, page)| panic!("{status}: {page}"));
        let code = back
            .query_pairs()
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v.into_owned())
            .unwrap();
        let tokens: Value = http
            .post(b.url("/oauth/token"))
            .form(&[
                ("grant_type", "authorization_code"),
                ("client_id", "sweep-cli"),
                ("code", &code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", &verifier),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
        let rotated: Value = http
            .post(b.url("/oauth/token"))
            .form(&[
                ("grant_type", "refresh_token"),
                ("client_id", "sweep-cli"),
                ("refresh_token", &refresh),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        // a wrong verifier and a reused code are refused (their errors are logged too)
        let res = http
            .post(b.url("/oauth/token"))
            .form(&[
                ("grant_type", "authorization_code"),
                ("client_id", "sweep-cli"),
                ("code", &code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", &verifier),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400);
        for t in [&tokens, &rotated] {
            for field in ["access_token", "refresh_token"] {
                secrets.push(t[field].as_str().unwrap().to_owned());
            }
        }
        secrets.extend([code, verifier, state]);
    });

    let upstream = s.idp.secrets();
    // mcp-bastion's state, nonce and PKCE verifier at the provider, its codes and tokens
    assert!(
        upstream.len() >= 8,
        "the provider reported {} secrets",
        upstream.len()
    );
    secrets.extend(upstream);
    let log = b.transcript();
    assert!(log.contains("TRACE"), "the sweep needs the TRACE log");
    // the endpoints that carry the secrets are in the log (by path)
    for path in [
        "/oauth/authorize",
        "/oauth/callback",
        "/oauth/token",
        "/oauth/register",
    ] {
        assert!(log.contains(path), "no log line of {path}");
    }
    assert_clean(&log, &secrets, "the TRACE log of the OAuth server");
    eprintln!(
        "swept {} log lines for {} secrets of OAuth flows",
        log.lines().count(),
        secrets.len()
    );
    let _ = std::fs::remove_dir_all(dir);
}
