//! Secrets never logged: all tracing output at TRACE level captured and searched.

use crate::support::*;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn secrets_never_appear_in_trace_output_of_the_auth_suite() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut secrets: Vec<String> = vec![HMAC_SECRET.into(), "sk-log-key".into(), "rk-valid".into()];
    rt.block_on(async {
        let rsa = rsa_key("log-rsa", Algorithm::RS256);
        let jwks = Jwks::start(vec![rsa.jwk.clone()]);
        let remote = format!("{}/check", remote_auth_server(Calls::default()));
        let intro = format!("{}/introspect", introspection_server(Calls::default()));
        let auth = AnyOf::new()
            .with(ApiKeys::new().key("sk-log-key", Principal::new("k")))
            .with(jwt_over(&jwks, JwksPolicy::default()))
            .with(RemoteAuth::new(remote, RemotePolicy::default()))
            .with(Introspection::new(intro, RemotePolicy::default()));
        let app = protected(auth, CredentialSources::new().query_params(["auth"]));
        let good = sign(&rsa, &claims("https://issuer.test", "alice"));
        let mut expired = claims("https://issuer.test", "alice");
        expired["exp"] = json!(now() - 1000);
        let expired = sign(&rsa, &expired);
        let hmac = hs256(&claims("https://issuer.test", "x"), HMAC_SECRET.as_bytes());
        let tokens = [
            good.clone(),
            expired.clone(),
            hmac.clone(),
            "at-active".into(),
        ];
        for t in &tokens {
            send(&app, bearer(t)).await;
            secrets.push(t.clone());
            secrets.push(t.rsplit('.').next().unwrap().to_owned());
        }
        send(&app, bearer("sk-log-key")).await;
        send(&app, bearer("rk-valid")).await;
        let req = Request::post("/mcp?auth=sk-log-key")
            .body(Body::empty())
            .unwrap();
        assert_eq!(send(&app, req).await.status, StatusCode::OK);
        let req = Request::post(format!("/mcp?api_key={good}"))
            .body(Body::empty())
            .unwrap();
        send(&app, req).await;
        // unavailable remote, with the key in its URL
        let down = protected(
            RemoteAuth::new(closed_port_url("/check"), RemotePolicy::default()),
            CredentialSources::new(),
        );
        assert_eq!(
            send(&down, bearer("rk-valid")).await.status,
            StatusCode::SERVICE_UNAVAILABLE
        );
        // Debug output of the configured types
        let dbg = format!(
            "{:?} {:?}",
            ApiKeys::new().key("sk-log-key", Principal::new("k")),
            JwtAuthenticator::builder().secret(HMAC_SECRET.as_bytes())
        );
        tracing::info!("{dbg}");
    });
    drop(_guard);
    let log = String::from_utf8_lossy(&captured.0.lock().unwrap()).into_owned();
    assert!(
        log.contains("authenticated"),
        "the capture saw the auth suite: {log}"
    );
    for secret in &secrets {
        assert!(
            !log.contains(secret.as_str()),
            "a secret ({}…) appears in the TRACE output",
            &secret[..secret.len().min(6)]
        );
    }
    let _ = std::io::stderr().flush();
}

#[test]
fn binary_trace_logs_never_show_keys_or_tokens() {
    let key = ec_key("trace");
    let jwks = Jwks::start(vec![key.jwk.clone()]);
    let token = sign(&key, &claims("https://issuer.test", "tracer"));
    let mut expired = claims("https://issuer.test", "tracer");
    expired["exp"] = json!(now() - 1000);
    let expired = sign(&key, &expired);
    let server = Server::bastion_with_env(
        &[
            "--session-mode",
            "per-session",
            "--api-key",
            KEY,
            "--api-key-query-param",
            "auth",
            "--jwt-jwks-url",
            &jwks.url(),
            "--jwt-audience",
            AUD,
        ],
        &everything_stdio(),
        &[("MCP_BASTION_LOG", "trace")],
    );
    let s = ClientRun::new(
        Sdk::Python,
        Transport::Sse,
        server.url(&format!("/sse?auth={KEY}")),
    )
    .scenario("echo")
    .run_ok(&server);
    assert_eq!(s["ok"], true);
    let s = echo_with_headers(
        Sdk::TypeScript,
        Transport::Streamable,
        &server,
        &[&format!("Authorization: Bearer {token}")],
    );
    assert_echo(&s);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let http = reqwest::Client::new();
        for bad in [expired.as_str(), "sk-wrong-key", &token[..40]] {
            let res = http
                .post(server.url("/mcp"))
                .bearer_auth(bad)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 401);
        }
        let res = http
            .post(server.url(&format!("/mcp?apiKey={token}")))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401);
    });
    let logs = server.logs();
    assert!(
        logs.lines().count() < 2000,
        "the log was truncated: cannot check it all"
    );
    assert!(
        logs.contains("TRACE") || logs.contains("DEBUG"),
        "logs at TRACE level: {logs}"
    );
    for secret in [
        KEY,
        token.as_str(),
        expired.as_str(),
        token.rsplit('.').next().unwrap(),
    ] {
        assert!(
            !logs.contains(secret),
            "a secret ({}…) appears in the log",
            &secret[..6]
        );
    }
}
