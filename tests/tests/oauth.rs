//! mcp-bastion's own OAuth authorization server, black-box: the `oauth_server` example (the
//! authorization server and an MCP endpoint in one app) with a real identity provider
//! (`oidc-provider`, started here on loopback with a client registration for mcp-bastion and its
//! development login form), and real clients: the official Python SDK's `OAuthClientProvider`
//! (dynamic registration, and a Client ID Metadata Document served over https; login, consent,
//! token, MCP call over Streamable HTTP and legacy SSE, refresh, revocation), the TypeScript
//! SDK's OAuth client (the same), and a browser played here with reqwest and a cookie jar for the cases
//! that must fail.

use std::{
    collections::HashMap,
    net::TcpListener,
    path::{Path, PathBuf},
    process::Command,
    sync::Mutex,
};

use base64::Engine as _;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tests::{Server, binaries::node, clients_dir, example_bin, node_modules_dir, python};

const UPSTREAM_CLIENT: &str = "bastion";
const UPSTREAM_SECRET: &str = "upstream-secret-for-tests";
const REDIRECT: &str = "http://127.0.0.1:53682/callback";

/// `oidc-provider`'s entry: `$OIDC_PROVIDER_MODULE`, else tests/node/node_modules.
fn oidc_provider_module() -> PathBuf {
    let path = std::env::var_os("OIDC_PROVIDER_MODULE").map_or_else(
        || node_modules_dir().join("oidc-provider/lib/index.js"),
        PathBuf::from,
    );
    assert!(
        path.is_file(),
        "{} is missing: install the test dependencies with `npm ci --prefix tests/node`",
        path.display()
    );
    path
}

/// A port nobody listens on now (the issuer must be known before the identity provider, which
/// must know mcp-bastion's callback URL, starts).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The identity provider and mcp-bastion (the example) wired to each other.
struct Setup {
    _idp: Server,
    bastion: Server,
}

/// The example started with `extra` arguments and `env` beside the upstream secret.
fn setup_with_env(extra: &[&str], env: &[(&str, &str)]) -> Setup {
    let port = free_port();
    let callback = format!("http://127.0.0.1:{port}/oauth/callback");
    let script = clients_dir().join("oidc_idp.mjs");
    let idp = Server::spawn_with_env(
        "oidc-provider",
        Path::new(&node()),
        &[
            script.display().to_string(),
            "--client-id".into(),
            UPSTREAM_CLIENT.into(),
            "--client-secret".into(),
            UPSTREAM_SECRET.into(),
            "--redirect-uri".into(),
            callback,
        ],
        &[(
            "OIDC_PROVIDER_MODULE",
            oidc_provider_module().to_str().expect("a UTF-8 path"),
        )],
    );
    let mut args: Vec<String> = [
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--upstream-issuer",
        idp.base_url(),
        "--upstream-client-id",
        UPSTREAM_CLIENT,
        "--allow-email-domain",
        "example.com",
        "--dcr",
        "open",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let mut env = env.to_vec();
    env.push(("UPSTREAM_CLIENT_SECRET", UPSTREAM_SECRET));
    let bastion = Server::spawn_with_env("oauth_server", &example_bin("oauth_server"), &args, &env);
    Setup { _idp: idp, bastion }
}

fn setup(extra: &[&str]) -> Setup {
    setup_with_env(extra, &[])
}

/// Runs tests/clients/py_oauth.py against the MCP endpoint at `path`; its JSON report.
fn python_oauth(s: &Setup, path: &str, extra: &[&str]) -> Value {
    let out = Command::new(python())
        .arg(clients_dir().join("py_oauth.py"))
        .args(["--url", &s.bastion.url(path), "--login", "alice"])
        .args(["--probe-url", &s.bastion.url("/mcp")])
        .args(["--redirect-uri", REDIRECT])
        .args(extra)
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "py_oauth failed: {}\n--- mcp-bastion ---\n{}",
        String::from_utf8_lossy(&out.stderr),
        s.bastion.logs()
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("one JSON line");
    assert_eq!(report["whoami"], "alice", "{report}");
    assert_eq!(report["refreshed"], true, "{report}");
    assert_eq!(report["revoked_status"], 401, "{report}");
    // the login went through the provider and mcp-bastion's consent page
    let pages = report["pages"].to_string();
    assert!(pages.contains("POST /interaction/"), "{pages}");
    assert!(pages.contains("POST /oauth/consent -> 303"), "{pages}");
    // no secret of the flow reached the logs
    let logs = s.bastion.logs();
    assert!(!logs.contains(UPSTREAM_SECRET));
    let secrets = report["secrets"]
        .as_array()
        .expect("the secrets of the flow");
    assert!(secrets.len() >= 5, "{report}");
    for secret in secrets {
        let secret = secret.as_str().expect("a string");
        assert!(
            !logs.contains(secret),
            "a secret of the flow is in the logs"
        );
    }
    report
}

#[test]
fn python_sdk_registers_logs_in_through_the_identity_provider_refreshes_and_is_revoked() {
    // every log line the example writes, so that the secrets check sees them all
    let s = setup_with_env(&[], &[("RUST_LOG", "trace")]);
    let report = python_oauth(&s, "/mcp", &[]);
    assert_eq!(report["metadata_document"], false, "{report}");
}

#[test]
fn python_sdk_logs_in_and_calls_over_legacy_sse() {
    let s = setup(&[]);
    let report = python_oauth(&s, "/sse", &["--transport", "sse"]);
    assert_eq!(report["whoami"], "alice", "{report}");
}

/// Runs tests/clients/ts_oauth.mjs against the MCP endpoint at `path`; its JSON report.
fn typescript_oauth(s: &Setup, path: &str, extra: &[&str]) -> Value {
    let out = Command::new(node())
        .arg(clients_dir().join("ts_oauth.mjs"))
        .args(["--url", &s.bastion.url(path), "--login", "alice"])
        .args(["--probe-url", &s.bastion.url("/mcp")])
        .args(["--redirect-uri", REDIRECT])
        .args(extra)
        .output()
        .expect("node runs");
    assert!(
        out.status.success(),
        "ts_oauth failed: {}\n--- mcp-bastion ---\n{}",
        String::from_utf8_lossy(&out.stderr),
        s.bastion.logs()
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("one JSON line");
    assert_eq!(report["whoami"], "alice", "{report}");
    assert_eq!(report["refreshed"], true, "{report}");
    assert_eq!(report["revoked_status"], 401, "{report}");
    assert!(
        report["pages"]
            .to_string()
            .contains("POST /oauth/consent -> 303"),
        "{report}"
    );
    report
}

#[test]
fn typescript_sdk_registers_logs_in_refreshes_and_is_revoked() {
    let s = setup(&[]);
    let report = typescript_oauth(&s, "/mcp", &[]);
    assert_eq!(report["metadata_document"], false, "{report}");
}

#[test]
fn typescript_sdk_logs_in_and_calls_over_legacy_sse() {
    let s = setup(&[]);
    typescript_oauth(&s, "/sse", &["--transport", "sse"]);
}

/// A self-signed end-entity certificate (`CA:FALSE`: rustls refuses a CA certificate as a
/// server's) for 127.0.0.1, in a fresh directory: (cert, key).
fn leaf_certificate() -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("mcp-bastion-oauth-cimd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert, key)
}

#[test]
fn python_sdk_logs_in_with_a_client_id_metadata_document() {
    let (cert, key) = leaf_certificate();
    let (cert, key) = (cert.to_str().expect("utf-8"), key.to_str().expect("utf-8"));
    // the document is on loopback, which only this test switch lets the fetch reach
    let s = setup(&["--cimd-allow-loopback", "--cimd-ca-file", cert]);
    let report = python_oauth(&s, "/mcp", &["--serve-cimd", cert, key]);
    assert_eq!(report["metadata_document"], true, "{report}");
    assert!(
        report["client_id"]
            .as_str()
            .is_some_and(|id| id.starts_with("https://127.0.0.1:"))
    );
}

#[test]
fn typescript_sdk_logs_in_with_a_client_id_metadata_document() {
    let (cert, key) = leaf_certificate();
    let (cert, key) = (cert.to_str().expect("utf-8"), key.to_str().expect("utf-8"));
    let s = setup(&["--cimd-allow-loopback", "--cimd-ca-file", cert]);
    let report = typescript_oauth(&s, "/mcp", &["--cimd-cert", cert, "--cimd-key", key]);
    assert_eq!(report["metadata_document"], true, "{report}");
}

/// A browser: no automatic redirects, one cookie jar for every host (the provider and
/// mcp-bastion are both on 127.0.0.1).
struct Browser {
    http: reqwest::Client,
    cookies: Mutex<HashMap<String, String>>,
}

impl Browser {
    fn new() -> Self {
        Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("a client"),
            cookies: Mutex::new(HashMap::new()),
        }
    }

    async fn send(
        &self,
        method: reqwest::Method,
        url: &str,
        form: Option<Vec<(String, String)>>,
    ) -> reqwest::Response {
        let cookie = self
            .cookies
            .lock()
            .expect("jar")
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let mut req = self.http.request(method, url).header("cookie", cookie);
        if let Some(form) = form {
            req = req.form(&form);
        }
        let res = req.send().await.expect("the request is answered");
        for v in res.headers().get_all("set-cookie") {
            let pair = v.to_str().expect("ascii").split(';').next().unwrap_or("");
            if let Some((k, v)) = pair.split_once('=') {
                self.cookies
                    .lock()
                    .expect("jar")
                    .insert(k.trim().to_owned(), v.to_owned());
            }
        }
        res
    }

    /// From an authorization URL to the client's redirect (its URL) or to a page that is not a
    /// form this browser fills (its status and text).
    async fn authorize(&self, url: &str, login: &str) -> Result<url::Url, (u16, String)> {
        let mut url = url.to_owned();
        let mut form = None;
        for _ in 0..30 {
            if url.starts_with(REDIRECT) {
                return Ok(url::Url::parse(&url).expect("a URL"));
            }
            let method = if form.is_some() {
                reqwest::Method::POST
            } else {
                reqwest::Method::GET
            };
            let res = self.send(method, &url, form.take()).await;
            let status = res.status().as_u16();
            if let Some(location) = res.headers().get("location") {
                let next = url::Url::parse(&url)
                    .and_then(|u| u.join(location.to_str().expect("ascii")))
                    .expect("a location");
                url = next.into();
                continue;
            }
            let html = res.text().await.unwrap_or_default();
            let action = html
                .split("action=\"")
                .nth(1)
                .and_then(|s| s.split('"').next())
                .map(|a| a.replace("&amp;", "&"));
            let Some(action) = action.filter(|_| status == 200) else {
                return Err((status, html));
            };
            url = url::Url::parse(&url)
                .and_then(|u| u.join(&action))
                .expect("an action")
                .into();
            let field = |name: &str| {
                let marker = format!("name=\"{name}\" value=\"");
                html.split(&marker)
                    .nth(1)
                    .and_then(|s| s.split('"').next())
                    .unwrap_or("")
                    .to_owned()
            };
            let pairs: Vec<(&str, String)> = if html.contains("name=\"prompt\" value=\"login\"") {
                vec![
                    ("prompt", "login".into()),
                    ("login", login.into()),
                    ("password", "any".into()),
                ]
            } else if html.contains("name=\"prompt\" value=\"consent\"") {
                vec![("prompt", "consent".into())]
            } else if html.contains("name=\"consent_id\"") {
                vec![
                    ("consent_id", field("consent_id")),
                    ("csrf", field("csrf")),
                    ("decision", "approve".into()),
                ]
            } else {
                return Err((status, html));
            };
            form = Some(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect());
        }
        panic!("too many redirects from {url}");
    }
}

fn param(url: &url::Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn pkce() -> (String, String) {
    let verifier: String = (0..64)
        .map(|i| char::from(b'a' + (i * 7 % 26) as u8))
        .collect::<String>()
        + &format!(
            "{:x}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        );
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

async fn register(bastion: &Server) -> String {
    let res = reqwest::Client::new()
        .post(bastion.url("/oauth/register"))
        .json(&serde_json::json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none", "client_name": "black-box"}))
        .send()
        .await
        .expect("registration answers");
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.expect("json");
    body["client_id"].as_str().expect("a client id").to_owned()
}

fn authorize_url(bastion: &Server, client_id: &str, challenge: &str, method: &str) -> String {
    let mut url = url::Url::parse(&bastion.url("/oauth/authorize")).expect("a URL");
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("state", "s-1")
        .append_pair("code_challenge", challenge)
        .append_pair("code_challenge_method", method);
    url.into()
}

async fn token(bastion: &Server, form: &[(&str, &str)]) -> (u16, Value) {
    let res = reqwest::Client::new()
        .post(bastion.url("/oauth/token"))
        .form(form)
        .send()
        .await
        .expect("the token endpoint answers");
    assert_eq!(res.headers()["cache-control"], "no-store");
    (res.status().as_u16(), res.json().await.expect("json"))
}

#[tokio::test(flavor = "multi_thread")]
async fn codes_and_refresh_tokens_are_single_use_and_bound_to_the_verifier() {
    let s = setup(&[]);
    let b = &s.bastion;
    let client = register(b).await;
    let browser = Browser::new();
    let (verifier, challenge) = pkce();
    let back = browser
        .authorize(&authorize_url(b, &client, &challenge, "S256"), "alice")
        .await
        .expect("the login completes");
    assert_eq!(param(&back, "state").as_deref(), Some("s-1"));
    assert_eq!(param(&back, "iss").as_deref(), Some(b.base_url()));
    let code = param(&back, "code").expect("a code");

    // a wrong verifier spends the code
    let (status, body) = token(
        b,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", &client),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &pkce().0),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "{body}"
    );
    let (_, body) = token(
        b,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", &client),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    assert_eq!(
        body["error_description"], "the code was already used",
        "{body}"
    );

    // a fresh login (consent remembered: no page this time), the right verifier
    let (verifier, challenge) = pkce();
    let back = browser
        .authorize(&authorize_url(b, &client, &challenge, "S256"), "alice")
        .await
        .expect("the login completes");
    let code = param(&back, "code").expect("a code");
    let redeem = [
        ("grant_type", "authorization_code"),
        ("client_id", client.as_str()),
        ("code", &code),
        ("redirect_uri", REDIRECT),
        ("code_verifier", &verifier),
    ];
    let (status, tokens) = token(b, &redeem).await;
    assert_eq!(status, 200, "{tokens}");
    let access = tokens["access_token"].as_str().expect("a token");
    let ping = |token: String| async move {
        reqwest::Client::new()
            .post(b.url("/mcp"))
            .bearer_auth(token)
            .header("accept", "application/json, text/event-stream")
            .json(&serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}))
            .send()
            .await
            .expect("the MCP endpoint answers")
            .status()
            .as_u16()
    };
    assert_eq!(ping(access.to_owned()).await, 200);

    // refresh: rotation, then the old refresh token again revokes the grant
    let old = tokens["refresh_token"].as_str().expect("a refresh token");
    let refresh = |t: &str| {
        [
            ("grant_type", "refresh_token".to_owned()),
            ("client_id", client.clone()),
            ("refresh_token", t.to_owned()),
        ]
    };
    let (status, rotated) = token(
        b,
        &refresh(old)
            .iter()
            .map(|(k, v)| (*k, v.as_str()))
            .collect::<Vec<_>>(),
    )
    .await;
    assert_eq!(status, 200, "{rotated}");
    let new_access = rotated["access_token"]
        .as_str()
        .expect("a token")
        .to_owned();
    let (_, body) = token(
        b,
        &refresh(old)
            .iter()
            .map(|(k, v)| (*k, v.as_str()))
            .collect::<Vec<_>>(),
    )
    .await;
    assert_eq!(
        body["error_description"], "the refresh token was already used",
        "{body}"
    );
    let newer = rotated["refresh_token"].as_str().expect("a refresh token");
    let (_, body) = token(
        b,
        &refresh(newer)
            .iter()
            .map(|(k, v)| (*k, v.as_str()))
            .collect::<Vec<_>>(),
    )
    .await;
    assert_eq!(body["error"], "invalid_grant", "{body}");
    assert_eq!(ping(new_access).await, 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_that_cannot_be_trusted_are_refused() {
    let s = setup(&[]);
    let b = &s.bastion;
    let client = register(b).await;
    let browser = Browser::new();
    let (_, challenge) = pkce();

    // plain PKCE: back to the (registered) client with the error
    let back = browser
        .authorize(&authorize_url(b, &client, &challenge, "plain"), "alice")
        .await
        .expect("a redirect to the client");
    assert_eq!(param(&back, "error").as_deref(), Some("invalid_request"));
    assert_eq!(
        param(&back, "error_description").as_deref(),
        Some("code_challenge_method must be S256")
    );

    // a redirect URI the client did not register (loopback: any port, but the same path): a
    // page, never a redirect
    let url = authorize_url(b, &client, &challenge, "S256").replace("%2Fcallback", "%2Fother");
    let (status, page) = browser.authorize(&url, "alice").await.expect_err("a page");
    assert_eq!(status, 400);
    assert!(page.contains("Invalid redirect URI"), "{page}");

    // a registration with a redirect URI outside the allowlist
    let res = reqwest::Client::new()
        .post(b.url("/oauth/register"))
        .json(&serde_json::json!({"redirect_uris": ["https://attacker.example/cb"]}))
        .send()
        .await
        .expect("registration answers");
    assert_eq!(res.status(), 400);
    assert_eq!(
        res.json::<Value>().await.expect("json")["error"],
        "invalid_redirect_uri"
    );

    // Client ID Metadata Documents on internal addresses are not fetched
    for doc in [
        "https://169.254.169.254/latest/client.json",
        "https://10.0.0.1/client.json",
        "https://127.0.0.1/client.json",
        "https://localhost/client.json",
    ] {
        let (status, page) = browser
            .authorize(&authorize_url(b, doc, &challenge, "S256"), "alice")
            .await
            .expect_err("a page");
        assert_eq!(status, 400, "{doc}");
        assert!(page.contains("Unknown client"), "{doc}: {page}");
    }
}
