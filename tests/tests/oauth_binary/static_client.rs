//! Static clients (`--oauth-client ID=REDIRECT_URI`, and the TOML `[[oauth-client]]` table of a
//! confidential client given by its secret's SHA-256), played by a reqwest browser: login at the
//! provider, consent, code, token, then the MCP call with the token.

use base64::Engine as _;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tests::{
    Server, bastion_bin, everything_stdio,
    oauth::{
        Browser, Idp, OAuthBastion, REDIRECT, UPSTREAM_CLIENT, UPSTREAM_SECRET,
        UPSTREAM_SECRET_ENV, USER_VAR, free_port, pkce,
    },
    script_report,
};

/// The confidential client's secret; the configuration holds only its SHA-256.
const STATIC_SECRET: &str = "static-client-secret-3b9f07c2";

fn authorize_url(bastion: &Server, prefix: &str, client_id: &str, challenge: &str) -> String {
    let mut url = reqwest::Url::parse(&bastion.url(&format!("{prefix}/oauth/authorize"))).unwrap();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("state", "static-state-1")
        .append_pair("scope", "mcp")
        .append_pair("code_challenge", challenge)
        .append_pair("code_challenge_method", "S256");
    url.into()
}

/// POSTs the token form, with HTTP Basic client authentication when `basic` is given.
async fn token(
    bastion: &Server,
    form: &[(&str, &str)],
    basic: Option<(&str, &str)>,
) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(bastion.url("/oauth/token"))
        .form(form);
    if let Some((id, secret)) = basic {
        req = req.basic_auth(id, Some(secret));
    }
    let res = req.send().await.unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

/// The claims of a JWT (not verified: the binary did that).
fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

/// Logs alice in as `client_id` and returns the code, after checking `state` and `iss`.
async fn code_for(bastion: &Server, client_id: &str, challenge: &str) -> String {
    let browser = Browser::new();
    let back = browser
        .authorize(
            &authorize_url(bastion, "", client_id, challenge),
            "alice",
            REDIRECT,
        )
        .await
        .unwrap_or_else(|(status, page)| panic!("the login ended on {status}: {page}"));
    let param = |name: &str| {
        back.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    assert_eq!(param("state").as_deref(), Some("static-state-1"));
    assert_eq!(param("iss").as_deref(), Some(bastion.base_url()));
    let pages = browser.pages.lock().unwrap().join("\n");
    assert!(pages.contains("POST /oauth/consent -> 303"), "{pages}");
    param("code").expect("a code")
}

/// `get-env` through an SDK session with `token`: the child's `MCP_USER`.
fn user_seen_by_the_child(bastion: &Server, transport: &str, token: &str) -> String {
    let path = if transport == "sse" { "/sse" } else { "/mcp" };
    let report = script_report(
        "session_call.py",
        &[
            "--url",
            &bastion.url(path),
            "--transport",
            transport,
            "--call",
            "get-env",
            "--bearer",
            token,
            "--timeout",
            "60",
        ],
    );
    let env: Value = serde_json::from_str(report["results"][0].as_str().unwrap()).unwrap();
    env[USER_VAR].as_str().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_static_public_client_from_the_flag_logs_in_and_calls_a_tool() {
    let s = OAuthBastion::start(
        &["--oauth-client", &format!("static-cli={REDIRECT}")],
        &[],
        "",
        Some(&everything_stdio()),
    );
    let b = &s.bastion;
    let (verifier, challenge) = pkce();
    let code = code_for(b, "static-cli", &challenge).await;
    let (status, tokens) = token(
        b,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", "static-cli"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &verifier),
        ],
        None,
    )
    .await;
    assert_eq!(status, 200, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap();
    // the resource is the issuer: one token for every endpoint of this instance
    let c = claims(access);
    assert_eq!(c["aud"], b.base_url(), "{c}");
    assert_eq!(c["iss"], b.base_url(), "{c}");
    assert_eq!(c["sub"], "alice", "{c}");
    assert_eq!(c["client_id"], "static-cli", "{c}");
    assert_eq!(user_seen_by_the_child(b, "streamable", access), "alice");
    assert_eq!(user_seen_by_the_child(b, "sse", access), "alice");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_confidential_client_from_a_toml_table_needs_its_secret() {
    let port = free_port();
    let issuer = format!("http://127.0.0.1:{port}");
    let idp = Idp::start(&format!("{issuer}/oauth/callback"));
    let dir = std::env::temp_dir().join(format!(
        "mcp-bastion-oauth-binary-toml-{}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let digest: String = Sha256::digest(STATIC_SECRET.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let command: Vec<String> = everything_stdio()
        .iter()
        .map(|c| format!("{c:?}"))
        .collect();
    let key_file = dir.join("oauth-key.pem");
    let config = dir.join("oauth.toml");
    std::fs::write(
        &config,
        format!(
            r#"listen = "127.0.0.1:{port}"
oauth-issuer = "{issuer}"
oauth-upstream-issuer = "{upstream}"
oauth-upstream-client-id = "{UPSTREAM_CLIENT}"
oauth-upstream-client-secret-env = "{UPSTREAM_SECRET_ENV}"
oauth-allow-subject = ["alice"]
oauth-scope = ["mcp"]
oauth-token-ttl = "10m"
oauth-signing-key-file = "{key}"
principal-env = ["{USER_VAR}=subject"]
command = [{command}]

[[oauth-client]]
id = "ops-dashboard"
name = "Ops dashboard"
redirect-uris = ["{REDIRECT}"]
secret-sha256 = "{digest}"
"#,
            upstream = idp.server.base_url(),
            key = key_file.display(),
            command = command.join(", "),
        ),
    )
    .unwrap();
    // check-config shows the client, never its digest
    let out = std::process::Command::new(bastion_bin())
        .arg("check-config")
        .arg(&config)
        .env(UPSTREAM_SECRET_ENV, UPSTREAM_SECRET)
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{shown}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        shown.contains(&format!(
            "oauth-client = \"ops-dashboard={REDIRECT} (confidential)\""
        )),
        "{shown}"
    );
    assert!(!shown.contains(&digest), "{shown}");

    let b = Server::spawn_recorded(
        "mcp-bastion",
        &bastion_bin(),
        &["--config".to_owned(), config.display().to_string()],
        &[(UPSTREAM_SECRET_ENV, UPSTREAM_SECRET)],
    );
    let (verifier, challenge) = pkce();
    let code = code_for(&b, "ops-dashboard", &challenge).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("client_id", "ops-dashboard"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", verifier.as_str()),
    ];
    // without its secret, or with a wrong one: refused, and the code is not spent
    let (status, body) = token(&b, &form, None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client")),
        "{body}"
    );
    let (status, body) = token(&b, &form, Some(("ops-dashboard", "not-the-secret"))).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client")),
        "{body}"
    );
    let (status, tokens) = token(&b, &form, Some(("ops-dashboard", STATIC_SECRET))).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["expires_in"], 600, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    assert_eq!(user_seen_by_the_child(&b, "streamable", &access), "alice");
    // the signing key was generated and persisted, owner-only
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&key_file).unwrap().permissions(),
    );
    assert_eq!(
        mode & 0o077,
        0,
        "the key file is readable by others: {mode:o}"
    );
    drop(b);
    let _ = std::fs::remove_dir_all(dir);
}
