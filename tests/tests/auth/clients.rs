//! Through the `mcp-bastion` binary (and the example) with the official Python and TypeScript SDKs.

use crate::support::*;

#[test]
fn python_streamable_with_authorization_header_full_scenario() {
    let server = bastion(&["--api-key", KEY]);
    let s = client_with_headers(
        Sdk::Python,
        Transport::Streamable,
        &server,
        &[&format!("Authorization: Bearer {KEY}")],
    );
    assert_full(&s);
}

#[test]
fn python_sse_with_api_key_header_echo_scenario() {
    let server = bastion(&["--api-key", KEY]);
    let s = echo_with_headers(
        Sdk::Python,
        Transport::Sse,
        &server,
        &[&format!("X-API-Key: {KEY}")],
    );
    assert_echo(&s);
}

#[test]
fn typescript_streamable_with_authorization_header_full_scenario() {
    let server = bastion(&["--api-key", KEY]);
    let s = client_with_headers(
        Sdk::TypeScript,
        Transport::Streamable,
        &server,
        &[&format!("Authorization: Bearer {KEY}")],
    );
    assert_full(&s);
}

#[test]
fn typescript_sse_with_authorization_header_echo_scenario() {
    let server = bastion(&["--api-key", KEY]);
    let s = echo_with_headers(
        Sdk::TypeScript,
        Transport::Sse,
        &server,
        &[&format!("Authorization: Bearer {KEY}")],
    );
    assert_echo(&s);
}

#[test]
fn python_sse_url_with_auth_query_parameter_echo_scenario() {
    sse_url_with_auth_query(Sdk::Python);
}

#[test]
fn typescript_sse_url_with_auth_query_parameter_echo_scenario() {
    sse_url_with_auth_query(Sdk::TypeScript);
}

#[test]
fn clients_without_credentials_fail_and_the_binary_challenges() {
    let server = bastion(&["--api-key", KEY]);
    for sdk in [Sdk::Python, Sdk::TypeScript] {
        let out = ClientRun::against(sdk, Transport::Streamable, &server, "").run();
        assert!(
            !out.success(),
            "{sdk:?} without a key must fail: {}",
            out.stdout
        );
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let http = reqwest::Client::new();
        let res = http.post(server.url("/mcp")).send().await.unwrap();
        assert_eq!(res.status(), 401);
        let host = server.base_url().trim_start_matches("http://");
        assert_eq!(
            res.headers()["www-authenticate"],
            format!(r#"Bearer resource_metadata="http://{host}/.well-known/oauth-protected-resource/mcp""#).as_str()
        );
        // never behind auth: health, readiness, metadata
        for path in ["/healthz", "/readyz", "/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp"] {
            let res = http.get(server.url(path)).send().await.unwrap();
            assert_eq!(res.status(), 200, "{path}");
        }
        let md: Value = http
            .get(server.url("/.well-known/oauth-protected-resource/mcp"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(md["resource"], format!("http://{host}/mcp"));
        assert_eq!(md["bearer_methods_supported"], json!(["header"]));
    });
}

#[test]
fn jwt_from_jwks_through_the_binary_python_streamable_and_typescript_sse() {
    let key = rsa_key("bin-rsa", Algorithm::RS256);
    let jwks = Jwks::start(vec![key.jwk.clone()]);
    let server = bastion(&[
        "--jwt-jwks-url",
        &jwks.url(),
        "--jwt-issuer",
        "https://issuer.test",
        "--jwt-audience",
        AUD,
        "--resource-url",
        AUD,
        "--authorization-server",
        "https://issuer.test",
    ]);
    let token = sign(&key, &claims("https://issuer.test", "jwt-user"));
    let header = format!("Authorization: Bearer {token}");
    assert_full(&client_with_headers(
        Sdk::Python,
        Transport::Streamable,
        &server,
        &[&header],
    ));
    assert_full(&client_with_headers(
        Sdk::TypeScript,
        Transport::Sse,
        &server,
        &[&header],
    ));
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let http = reqwest::Client::new();
        let mut expired = claims("https://issuer.test", "jwt-user");
        expired["exp"] = json!(now() - 1000);
        let res = http
            .post(server.url("/mcp"))
            .bearer_auth(sign(&key, &expired))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401);
        let c = res.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            c.contains(r#"error="invalid_token""#) && c.contains("expired"),
            "{c}"
        );
        assert!(
            c.contains(&format!(r#"resource_metadata="{MD_URL}""#)),
            "{c}"
        );
        let md: Value = http
            .get(server.url("/.well-known/oauth-protected-resource/mcp"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(md["resource"], AUD);
        assert_eq!(md["authorization_servers"], json!(["https://issuer.test"]));
    });
    assert!(!server.logs().contains(&token));
}

#[test]
fn example_auth_rmcp_tool_greets_the_authenticated_subject() {
    let bin = tests::example_bin("auth_rmcp");
    let server = Server::spawn_with_env(
        "auth_rmcp",
        &bin,
        &["--listen".into(), "127.0.0.1:0".into()],
        &[
            ("MCP_API_KEYS", "sk-example-user"),
            ("MCP_ADMIN_KEY", "sk-example-admin"),
        ],
    );
    let user = py_tool(
        &server,
        Transport::Sse,
        "sk-example-user",
        Some(("whoami", json!({}))),
    );
    assert_eq!(user["call"]["text"], "Hello, user-1!", "{user}");
    assert_eq!(user["tools"], json!(["whoami"]), "{user}");
    let admin = py_tool(
        &server,
        Transport::Streamable,
        "sk-example-admin",
        Some(("whoami", json!({}))),
    );
    assert_eq!(admin["call"]["text"], "Hello, admin!", "{admin}");
    let mut tools: Vec<&str> = admin["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    tools.sort_unstable();
    assert_eq!(tools, ["shutdown_all", "whoami"], "{admin}");
    // rmcp's own StreamableHttpService behind the same layers
    let rmcp = py_tool_at(
        &server,
        "/rmcp",
        Transport::Streamable,
        "sk-example-user",
        Some(("whoami", json!({}))),
    );
    assert_eq!(rmcp["call"]["text"], "Hello, user-1!", "{rmcp}");
    assert_eq!(rmcp["tools"], json!(["whoami"]), "{rmcp}");
}

#[test]
fn under_a_path_prefix_the_challenge_points_to_metadata_that_is_served() {
    let server = bastion(&["--api-key", KEY, "--path-prefix", "/k/abc"]);
    let s = ClientRun::against(Sdk::Python, Transport::Sse, &server, "/k/abc")
        .scenario("echo")
        .arg("--header")
        .arg(format!("Authorization: Bearer {KEY}"))
        .run_ok(&server);
    assert_echo(&s);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let http = reqwest::Client::new();
        let res = http.post(server.url("/k/abc/mcp")).send().await.unwrap();
        assert_eq!(res.status(), 401);
        let c = res.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_owned();
        let url = challenge_param(&c, "resource_metadata").unwrap();
        let host = server.base_url().trim_start_matches("http://");
        assert_eq!(
            url,
            format!("http://{host}/k/abc/.well-known/oauth-protected-resource/mcp")
        );
        let md: Value = http.get(&url).send().await.unwrap().json().await.unwrap();
        assert_eq!(md["resource"], format!("http://{host}/k/abc/mcp"));
    });
}
