//! Keys generated at test time, real HTTP servers on loopback, `McpAuthLayer` in process,
//! and the binary and client helpers the other modules share.

pub(crate) use std::{
    collections::BTreeMap,
    io::Write as _,
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

pub(crate) use axum::{
    Json, Router,
    body::Body,
    extract::{Query, State},
    response::IntoResponse,
    routing::{get, post},
};
pub(crate) use base64::Engine as _;
pub(crate) use http::{Request, StatusCode};
pub(crate) use jsonwebtoken::{Algorithm, EncodingKey, Header};
pub(crate) use mcp_bastion::{
    auth::{
        AnyOf, ApiKeys, Authenticator, CredentialSources, Introspection, JwksPolicy,
        JwtAuthenticator, McpAuthLayer, RemoteAuth, RemotePolicy,
    },
    principal::Principal,
};
pub(crate) use serde_json::{Value, json};
pub(crate) use tests::{ClientRun, Sdk, Server, Transport, everything_stdio};
pub(crate) use tower::ServiceExt;

pub(crate) const AUD: &str = "https://mcp.test/mcp";
pub(crate) const MD_URL: &str = "https://mcp.test/.well-known/oauth-protected-resource/mcp";
pub(crate) const HMAC_SECRET: &str = "hmac-secret-0123456789-abcdefghijklmnop";

pub(crate) struct TestKey {
    pub(crate) kid: String,
    pub(crate) alg: Algorithm,
    pub(crate) enc: EncodingKey,
    pub(crate) jwk: Value,
    /// SPKI PEM of the public key.
    pub(crate) public_pem: String,
}

pub(crate) fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub(crate) fn rsa_private() -> &'static rsa::RsaPrivateKey {
    static KEY: OnceLock<rsa::RsaPrivateKey> = OnceLock::new();
    KEY.get_or_init(|| rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 2048).unwrap())
}

pub(crate) fn rsa_key(kid: &str, alg: Algorithm) -> TestKey {
    use rsa::{
        pkcs1::EncodeRsaPrivateKey,
        pkcs8::{EncodePublicKey, LineEnding},
        traits::PublicKeyParts,
    };
    let key = rsa_private();
    let public = key.to_public_key();
    TestKey {
        kid: kid.into(),
        alg,
        enc: EncodingKey::from_rsa_der(key.to_pkcs1_der().unwrap().as_bytes()),
        jwk: json!({"kty": "RSA", "kid": kid, "use": "sig", "alg": format!("{alg:?}"),
            "n": b64(&public.n().to_bytes_be()), "e": b64(&public.e().to_bytes_be())}),
        public_pem: public.to_public_key_pem(LineEnding::LF).unwrap(),
    }
}

pub(crate) fn ec_key(kid: &str) -> TestKey {
    use p256::{
        elliptic_curve::sec1::ToEncodedPoint,
        pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding},
    };
    let secret = p256::SecretKey::random(&mut rand_core::OsRng);
    let point = secret.public_key().to_encoded_point(false);
    TestKey {
        kid: kid.into(),
        alg: Algorithm::ES256,
        enc: EncodingKey::from_ec_der(secret.to_pkcs8_der().unwrap().as_bytes()),
        jwk: json!({"kty": "EC", "kid": kid, "use": "sig", "alg": "ES256", "crv": "P-256",
            "x": b64(point.x().unwrap()), "y": b64(point.y().unwrap())}),
        public_pem: secret
            .public_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap(),
    }
}

pub(crate) fn ed_key(kid: &str) -> TestKey {
    use ed25519_dalek::pkcs8::{EncodePublicKey, spki::der::pem::LineEnding};
    let signing = ed25519_dalek::SigningKey::generate(&mut rand_core::OsRng);
    // PKCS#8 v1 (RFC 8410): the 16-byte prefix and the 32-byte seed
    let mut der = vec![
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    der.extend_from_slice(&signing.to_bytes());
    TestKey {
        kid: kid.into(),
        alg: Algorithm::EdDSA,
        enc: EncodingKey::from_ed_der(&der),
        jwk: json!({"kty": "OKP", "kid": kid, "use": "sig", "alg": "EdDSA", "crv": "Ed25519",
            "x": b64(signing.verifying_key().as_bytes())}),
        public_pem: signing
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap(),
    }
}

pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

pub(crate) fn claims(iss: &str, sub: &str) -> Value {
    json!({"iss": iss, "sub": sub, "aud": AUD, "exp": now() + 600, "iat": now(),
        "scope": "tools:read tools:call", "jti": format!("jti-{sub}")})
}

pub(crate) fn sign(key: &TestKey, claims: &Value) -> String {
    let mut header = Header::new(key.alg);
    header.kid = Some(key.kid.clone());
    jsonwebtoken::encode(&header, claims, &key.enc).unwrap()
}

pub(crate) fn hs256(claims: &Value, secret: &[u8]) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .unwrap()
}

/// A token with a hand-made header and signature (for `alg: none` and friends).
pub(crate) fn raw_token(header: &Value, claims: &Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes()),
        b64(signature)
    )
}

pub(crate) fn spawn_http(router: Router) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            axum::serve(listener, router).await.unwrap();
        });
    });
    format!("http://{}", rx.recv().unwrap())
}

/// A JWKS server (with an OIDC discovery document) whose keys and availability the test
/// changes, counting fetches.
#[derive(Clone)]
pub(crate) struct Jwks {
    pub(crate) base: String,
    pub(crate) keys: Arc<Mutex<Vec<Value>>>,
    pub(crate) fetches: Arc<AtomicUsize>,
    pub(crate) failing: Arc<AtomicBool>,
    pub(crate) max_age: Arc<Mutex<Option<u64>>>,
    /// Milliseconds each answer of the key set waits before it is sent.
    pub(crate) delay_ms: Arc<AtomicU64>,
}

impl Jwks {
    pub(crate) fn start(keys: Vec<Value>) -> Jwks {
        let keys = Arc::new(Mutex::new(keys));
        let fetches = Arc::new(AtomicUsize::new(0));
        let failing = Arc::new(AtomicBool::new(false));
        let max_age = Arc::new(Mutex::new(None));
        let delay_ms = Arc::new(AtomicU64::new(0));
        let base = Arc::new(OnceLock::<String>::new());
        let router = {
            let (keys, fetches, failing, max_age, base, delay_ms) = (
                keys.clone(),
                fetches.clone(),
                failing.clone(),
                max_age.clone(),
                base.clone(),
                delay_ms.clone(),
            );
            let base2 = base.clone();
            Router::new()
                .route(
                    "/jwks.json",
                    get(move || {
                        let (keys, fetches, failing, max_age, delay_ms) = (
                            keys.clone(),
                            fetches.clone(),
                            failing.clone(),
                            max_age.clone(),
                            delay_ms.clone(),
                        );
                        async move {
                            fetches.fetch_add(1, Ordering::SeqCst);
                            let delay = delay_ms.load(Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(delay)).await;
                            if failing.load(Ordering::SeqCst) {
                                return StatusCode::INTERNAL_SERVER_ERROR.into_response();
                            }
                            let mut res =
                                Json(json!({"keys": *keys.lock().unwrap()})).into_response();
                            if let Some(age) = *max_age.lock().unwrap() {
                                res.headers_mut().insert(
                                    "cache-control",
                                    format!("public, max-age={age}").parse().unwrap(),
                                );
                            }
                            res
                        }
                    }),
                )
                .route(
                    "/.well-known/openid-configuration",
                    get(move || {
                        let base = base2.get().cloned().unwrap_or_default();
                        async move {
                            Json(
                                json!({"issuer": base, "jwks_uri": format!("{base}/jwks.json"),
                                "authorization_endpoint": format!("{base}/authorize")}),
                            )
                        }
                    }),
                )
        };
        let url = spawn_http(router);
        base.set(url.clone()).unwrap();
        Jwks {
            base: url,
            keys,
            fetches,
            failing,
            max_age,
            delay_ms,
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("{}/jwks.json", self.base)
    }

    pub(crate) fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) challenge: Option<String>,
    pub(crate) body: Value,
}

impl Answer {
    pub(crate) fn error(&self) -> Option<String> {
        challenge_param(self.challenge.as_deref()?, "error")
    }
    pub(crate) fn description(&self) -> String {
        self.challenge
            .as_deref()
            .and_then(|c| challenge_param(c, "error_description"))
            .unwrap_or_default()
    }
}

/// A quoted parameter of a challenge (no escapes are used by the values tested here).
pub(crate) fn challenge_param(challenge: &str, name: &str) -> Option<String> {
    let at = challenge.find(&format!("{name}=\""))? + name.len() + 2;
    let end = challenge[at..].find('"')?;
    Some(challenge[at..at + end].to_owned())
}

pub(crate) fn protected(auth: impl Authenticator, sources: CredentialSources) -> Router {
    Router::new()
        .route(
            "/mcp",
            post(|p: Principal| async move {
                Json(json!({"sub": p.subject(), "scopes": p.scopes(), "env": p.env()}))
            }),
        )
        .layer(
            McpAuthLayer::new(auth)
                .credentials(sources)
                .resource_metadata(MD_URL),
        )
}

pub(crate) async fn send(app: &Router, req: Request<Body>) -> Answer {
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let challenge = res
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .unwrap();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Answer {
        status,
        challenge,
        body,
    }
}

pub(crate) fn bearer(token: &str) -> Request<Body> {
    Request::post("/mcp")
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap()
}

pub(crate) fn jwt_over(jwks: &Jwks, policy: JwksPolicy) -> JwtAuthenticator {
    JwtAuthenticator::builder()
        .jwks_url(jwks.url())
        .issuer("https://issuer.test")
        .audience(AUD)
        .leeway(Duration::from_secs(5))
        .jwks_policy(policy)
        .build()
        .unwrap()
}

pub(crate) fn fast_policy(interval: Duration) -> JwksPolicy {
    JwksPolicy {
        min_refetch_interval: interval,
        ..JwksPolicy::default()
    }
}

pub(crate) fn assert_401(a: &Answer, error: &str, description: &str) {
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{a:?}");
    let c = a
        .challenge
        .as_deref()
        .expect("a WWW-Authenticate challenge");
    assert!(c.starts_with("Bearer "), "{c}");
    assert_eq!(
        challenge_param(c, "resource_metadata").as_deref(),
        Some(MD_URL),
        "{c}"
    );
    assert_eq!(a.error().as_deref(), Some(error), "{c}");
    assert!(
        a.description().contains(description),
        "want {description:?} in {c}"
    );
    assert_eq!(a.body["error"]["code"], -32001, "{:?}", a.body);
    assert_eq!(a.body["jsonrpc"], "2.0");
}

#[derive(Clone, Default)]
pub(crate) struct Calls(pub(crate) Arc<AtomicUsize>);

pub(crate) fn remote_auth_server(calls: Calls) -> String {
    spawn_http(Router::new().route(
        "/check",
        get(
            |State(calls): State<Calls>, Query(q): Query<BTreeMap<String, String>>| async move {
                calls.0.fetch_add(1, Ordering::SeqCst);
                match q.get("apiKey").map(String::as_str) {
                    Some("rk-valid") => Json(json!({"valid": true, "userId": "remote-user",
                        "permissions": ["tools:read", "tools:admin"], "env": {"GITHUB_TOKEN": "ghp_remote"}})),
                    _ => Json(json!({"valid": false})),
                }
            },
        ),
    )
    .with_state(calls))
}

pub(crate) fn introspection_server(calls: Calls) -> String {
    spawn_http(
        Router::new()
            .route(
                "/introspect",
                post(
                    |State(calls): State<Calls>, body: String| async move {
                        calls.0.fetch_add(1, Ordering::SeqCst);
                        let form: BTreeMap<String, String> =
                            url_form(&body);
                        let token = form.get("token").cloned().unwrap_or_default();
                        let exp = now() + 3600;
                        Json(match token.as_str() {
                            "at-active" => json!({"active": true, "sub": "intro-user", "scope": "tools:read", "aud": AUD, "exp": exp}),
                            "at-short" => {
                                static SHORT_EXP: OnceLock<u64> = OnceLock::new();
                                let exp = *SHORT_EXP.get_or_init(|| now() + 1);
                                json!({"active": true, "sub": "short", "aud": [AUD], "exp": exp})
                            }
                            "at-other-aud" => json!({"active": true, "sub": "x", "aud": "https://elsewhere.test", "exp": exp}),
                            _ => json!({"active": false}),
                        })
                    },
                ),
            )
            .with_state(calls),
    )
}

pub(crate) fn url_form(body: &str) -> BTreeMap<String, String> {
    body.split('&')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.replace("%2F", "/").replace("%3A", ":")))
        .collect()
}

pub(crate) fn closed_port_url(path: &str) -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    format!("http://{addr}{path}")
}

pub(crate) fn bastion(extra: &[&str]) -> Server {
    let mut args = vec!["--session-mode", "per-session"];
    args.extend_from_slice(extra);
    Server::bastion(&args, &everything_stdio())
}

pub(crate) fn assert_full(summary: &Value) {
    for step in [
        "initialize",
        "tools/list",
        "echo",
        "progress",
        "resource",
        "prompt",
    ] {
        assert!(
            summary["steps"][step].is_object() || summary["steps"][step] == "ok",
            "step {step} not done: {summary}"
        );
        assert!(
            summary["steps"][step]["skipped"].is_null(),
            "{step} skipped: {summary}"
        );
    }
    assert_eq!(
        summary["steps"]["session_end"]["after_end_status"], 404,
        "{summary}"
    );
}

/// The short scenario: initialize, three concurrent echo calls, session end (checked 404 after).
pub(crate) fn assert_echo(summary: &Value) {
    assert_eq!(summary["steps"]["echo"]["calls"], 3, "{summary}");
    assert_eq!(
        summary["steps"]["session_end"]["after_end_status"], 404,
        "{summary}"
    );
}

pub(crate) fn echo_with_headers(
    sdk: Sdk,
    transport: Transport,
    server: &Server,
    headers: &[&str],
) -> Value {
    let mut run = ClientRun::against(sdk, transport, server, "").scenario("echo");
    for h in headers {
        run = run.arg("--header").arg(*h);
    }
    run.run_ok(server)
}

pub(crate) fn client_with_headers(
    sdk: Sdk,
    transport: Transport,
    server: &Server,
    headers: &[&str],
) -> Value {
    let mut run = ClientRun::against(sdk, transport, server, "");
    for h in headers {
        run = run.arg("--header").arg(*h);
    }
    run.run_ok(server)
}

pub(crate) const KEY: &str = "sk-client-0f1e2d3c4b5a";

pub(crate) fn sse_url_with_auth_query(sdk: Sdk) {
    let server = bastion(&["--api-key", KEY, "--api-key-query-param", "auth"]);
    let url = server.url(&format!("/sse?auth={KEY}"));
    let s = ClientRun::new(sdk, Transport::Sse, url)
        .strict_session_end(true)
        .scenario("echo")
        .run_ok(&server);
    assert_echo(&s);
    assert!(!server.logs().contains(KEY), "the key must not be logged");
}

pub(crate) fn py_tool(
    server: &Server,
    transport: Transport,
    key: &str,
    call: Option<(&str, Value)>,
) -> Value {
    py_tool_at(server, transport.endpoint(), transport, key, call)
}

/// [`py_tool`] against another endpoint path.
pub(crate) fn py_tool_at(
    server: &Server,
    path: &str,
    transport: Transport,
    key: &str,
    call: Option<(&str, Value)>,
) -> Value {
    let mut cmd =
        std::process::Command::new(std::env::var("PYTHON").unwrap_or_else(|_| "python3".into()));
    cmd.arg(tests::clients_dir().join("py_tool.py"))
        .args([
            "--url",
            &server.url(path),
            "--transport",
            transport.as_arg(),
        ])
        .args(["--header", &format!("X-API-Key: {key}")]);
    if let Some((tool, args)) = call {
        cmd.args(["--call", tool, "--arguments", &args.to_string()]);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "py_tool failed: {}\n{stdout}\n--- server ---\n{}",
        String::from_utf8_lossy(&out.stderr),
        server.logs()
    );
    serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap()
}

pub(crate) fn keys_file(name: &str, entries: Value) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("bastion-auth-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("keys.json");
    std::fs::write(&path, entries.to_string()).unwrap();
    path
}

pub(crate) fn scope_server(json_response: bool) -> Server {
    let file = keys_file(
        &format!("scopes-{json_response}"),
        json!([
            {"key": "sk-user", "subject": "user", "scopes": ["tools:read"]},
            {"key": "sk-admin", "subject": "admin", "scopes": ["tools:read", "tools:admin"]}
        ]),
    );
    let mut args = vec![
        "--api-keys-file".to_owned(),
        file.display().to_string(),
        "--tool-scope".into(),
        "get-sum=tools:admin".into(),
    ];
    if json_response {
        args.push("--json-response".into());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    bastion(&args)
}

pub(crate) fn admin_tool_needs_tools_admin(json_response: bool, transport: Transport) {
    let server = scope_server(json_response);
    let sum = Some(("get-sum", json!({"a": 1, "b": 2})));
    let user = py_tool(&server, transport, "sk-user", sum.clone());
    let tools: Vec<&str> = user["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(tools.contains(&"echo"), "{user}");
    assert!(
        !tools.contains(&"get-sum"),
        "a caller without tools:admin must not see it: {user}"
    );
    assert!(
        user["call"]["error"].is_string(),
        "the call must be refused: {user}"
    );
    let admin = py_tool(&server, transport, "sk-admin", sum);
    let tools: Vec<&str> = admin["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(tools.contains(&"get-sum"), "{admin}");
    assert_eq!(admin["call"]["is_error"], false, "{admin}");
    assert!(
        admin["call"]["text"].as_str().unwrap().contains('3'),
        "{admin}"
    );
}
