//! API keys (headers, query parameters, files), remote auth and RFC 7662 introspection.

use crate::support::*;

#[tokio::test]
async fn api_keys_from_bearer_header_and_enabled_query_params() {
    let keys = ApiKeys::new().key(
        "sk-alice-123",
        Principal::new("alice")
            .with_scopes(["tools:read"])
            .with_env([("TENANT", "acme")]),
    );
    let app = protected(
        keys,
        CredentialSources::new().query_params(["auth", "apiKey"]),
    );
    let a = send(&app, bearer("sk-alice-123")).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body["sub"], "alice");
    assert_eq!(a.body["env"]["TENANT"], "acme");
    let req = Request::post("/mcp")
        .header("x-api-key", "sk-alice-123")
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&app, req).await.status, StatusCode::OK);
    for q in [
        "auth=sk-alice-123",
        "apiKey=sk-alice-123",
        "session_id=x&auth=sk-alice-123",
    ] {
        let req = Request::post(format!("/mcp?{q}"))
            .body(Body::empty())
            .unwrap();
        assert_eq!(send(&app, req).await.status, StatusCode::OK, "{q}");
    }
    let req = Request::post("/mcp?auth=sk-wrong")
        .body(Body::empty())
        .unwrap();
    let a = send(&app, req).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.error().as_deref(), Some("invalid_token"));
    // a disabled name is still refused rather than ignored
    let req = Request::post("/mcp?api_key=sk-alice-123")
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        send(&app, req).await.error().as_deref(),
        Some("invalid_request")
    );
}

#[tokio::test]
async fn api_keys_file_holds_digests_subjects_scopes_and_env() {
    let dir = std::env::temp_dir().join(format!("bastion-keys-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("keys.json");
    let digest: String = {
        use sha2_hex::hex_sha256;
        hex_sha256("sk-by-digest")
    };
    std::fs::write(
        &path,
        json!([
            {"key": "sk-file-1", "subject": "one", "scopes": ["tools:admin"]},
            {"sha256": digest, "subject": "two", "env": {"GH_TOKEN": "t"}}
        ])
        .to_string(),
    )
    .unwrap();
    let keys = ApiKeys::new().from_file(&path).unwrap();
    let app = protected(keys, CredentialSources::new());
    let a = send(&app, bearer("sk-file-1")).await;
    assert_eq!(
        (a.body["sub"].clone(), a.body["scopes"].clone()),
        (json!("one"), json!(["tools:admin"]))
    );
    let a = send(&app, bearer("sk-by-digest")).await;
    assert_eq!(a.body["sub"], "two");
    assert_eq!(a.body["env"]["GH_TOKEN"], "t");
    std::fs::write(&path, r#"[{"subject": "no key"}]"#).unwrap();
    let err = ApiKeys::new().from_file(&path).unwrap_err().to_string();
    assert!(err.contains("entry 0"), "{err}");
}

mod sha2_hex {
    pub fn hex_sha256(s: &str) -> String {
        use sha2::{Digest, Sha256};
        Sha256::digest(s.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

#[tokio::test]
async fn remote_auth_contract_gives_principal_scopes_env_and_is_cached() {
    let calls = Calls::default();
    let url = format!("{}/check", remote_auth_server(calls.clone()));
    let app = protected(
        RemoteAuth::new(url, RemotePolicy::default()),
        CredentialSources::new(),
    );
    for _ in 0..5 {
        let a = send(&app, bearer("rk-valid")).await;
        assert_eq!(a.status, StatusCode::OK, "{a:?}");
        assert_eq!(a.body["sub"], "remote-user");
        assert_eq!(a.body["scopes"], json!(["tools:admin", "tools:read"]));
        assert_eq!(a.body["env"]["GITHUB_TOKEN"], "ghp_remote");
    }
    assert_eq!(
        calls.0.load(Ordering::SeqCst),
        1,
        "accepted keys are cached"
    );
    let a = send(&app, bearer("rk-invalid")).await;
    assert_401(&a, "invalid_token", "rejected by the authorization server");
}

#[tokio::test]
async fn remote_auth_down_answers_503_never_401_never_a_pass() {
    let app = protected(
        RemoteAuth::new(
            closed_port_url("/check"),
            RemotePolicy {
                timeout: Duration::from_secs(2),
                ..RemotePolicy::default()
            },
        ),
        CredentialSources::new(),
    );
    let a = send(&app, bearer("rk-valid")).await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{a:?}");
    assert!(a.challenge.is_none());
    assert!(
        a.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unavailable"),
        "{:?}",
        a.body
    );
}

#[tokio::test]
async fn introspection_checks_active_audience_and_caches_within_exp() {
    let calls = Calls::default();
    let url = format!("{}/introspect", introspection_server(calls.clone()));
    let app = protected(
        Introspection::new(url, RemotePolicy::default()).audience(AUD),
        CredentialSources::new(),
    );
    for _ in 0..3 {
        let a = send(&app, bearer("at-active")).await;
        assert_eq!(a.status, StatusCode::OK, "{a:?}");
        assert_eq!(a.body["sub"], "intro-user");
        assert_eq!(a.body["scopes"], json!(["tools:read"]));
    }
    assert_eq!(calls.0.load(Ordering::SeqCst), 1);
    assert_401(
        &send(&app, bearer("at-revoked")).await,
        "invalid_token",
        "rejected",
    );
    assert_401(
        &send(&app, bearer("at-other-aud")).await,
        "invalid_token",
        "another audience",
    );
    // cached no longer than the token's own expiry
    assert_eq!(send(&app, bearer("at-short")).await.status, StatusCode::OK);
    let before = calls.0.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let a = send(&app, bearer("at-short")).await;
    assert_eq!(
        calls.0.load(Ordering::SeqCst),
        before + 1,
        "re-introspected after exp"
    );
    assert_401(&a, "invalid_token", "expired");
}

#[tokio::test]
async fn introspection_down_answers_503() {
    let app = protected(
        Introspection::new(closed_port_url("/introspect"), RemotePolicy::default()),
        CredentialSources::new(),
    );
    let a = send(&app, bearer("at-active")).await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{a:?}");
}

/// `--auth-server-url`, `--introspection-url`, `--jwt-oidc-issuer` and `--principal-env
/// VAR=env:NAME` through the binary: the remote-auth `env` reaches the caller's child.
#[test]
fn binary_remote_auth_introspection_and_oidc_flags() {
    let remote = format!("{}/check", remote_auth_server(Calls::default()));
    let intro = format!("{}/introspect", introspection_server(Calls::default()));
    let server = bastion(&[
        "--auth-server-url",
        &remote,
        "--introspection-url",
        &intro,
        "--resource-url",
        AUD,
        "--principal-env",
        "GITHUB_TOKEN=env:GITHUB_TOKEN",
    ]);
    let out = py_tool(
        &server,
        Transport::Streamable,
        "rk-valid",
        Some(("get-env", json!({}))),
    );
    let env: Value =
        serde_json::from_str(out["call"]["text"].as_str().unwrap_or("")).unwrap_or(Value::Null);
    assert_eq!(env["GITHUB_TOKEN"], "ghp_remote", "{out}");

    let key = ec_key("oidc-bin");
    let idp = Jwks::start(vec![key.jwk.clone()]);
    let oidc = bastion(&["--jwt-oidc-issuer", &idp.base, "--jwt-audience", AUD]);
    let down = bastion(&["--auth-server-url", &closed_port_url("/check")]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let http = reqwest::Client::new();
        let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}});
        let post = |url: String, token: String| {
            http.post(url)
                .bearer_auth(token)
                .header("accept", "application/json, text/event-stream")
                .json(&init)
                .send()
        };
        // introspection: active, then revoked (the remote-auth service refuses both first)
        let res = post(server.url("/mcp"), "at-active".into()).await.unwrap();
        assert_eq!(res.status(), 200);
        let res = post(server.url("/mcp"), "at-revoked".into()).await.unwrap();
        assert_eq!(res.status(), 401);
        // OIDC discovery from the issuer, `iss` checked against it
        let good = sign(&key, &claims(&idp.base, "oidc-user"));
        assert_eq!(post(oidc.url("/mcp"), good).await.unwrap().status(), 200);
        let wrong_iss = sign(&key, &claims("https://evil.test", "oidc-user"));
        let res = post(oidc.url("/mcp"), wrong_iss).await.unwrap();
        assert_eq!(res.status(), 401);
        assert!(res.headers()["www-authenticate"].to_str().unwrap().contains("wrong issuer"));
        // the remote is down: 503, never a pass
        let res = post(down.url("/mcp"), "rk-valid".into()).await.unwrap();
        assert_eq!(res.status(), 503);
        assert!(res.headers().get("retry-after").is_some());
    });
}
