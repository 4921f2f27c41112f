//! The requests that must fail, with a browser played by reqwest and a cookie jar.

use serde_json::Value;
use tests::Server;

use crate::{REDIRECT, setup};

/// The harness's browser (`tests::oauth::Browser`: reqwest, one cookie jar, routes to replicas)
/// stopping at one client redirect URI.
pub(crate) struct Browser {
    inner: tests::oauth::Browser,
    /// Where the client waits for the authorization response: the browser stops there.
    redirect: String,
}

impl Browser {
    pub(crate) fn new() -> Self {
        Self::routed(Vec::new())
    }

    /// A browser that stops at this client redirect URI.
    pub(crate) fn returning_to(redirect: &str) -> Self {
        Self {
            inner: tests::oauth::Browser::new(),
            redirect: redirect.to_owned(),
        }
    }

    /// A browser whose requests to a URL starting with a route's first prefix go to the same
    /// URL with the second prefix instead: one public URL served by several replicas.
    pub(crate) fn routed(routes: Vec<(String, String)>) -> Self {
        Self {
            inner: tests::oauth::Browser::routed(routes),
            redirect: REDIRECT.to_owned(),
        }
    }

    /// Every URL requested so far.
    pub(crate) fn visited(&self) -> Vec<String> {
        self.inner.visited()
    }

    /// From an authorization URL to the client's redirect (its URL) or to a page that is not a
    /// form this browser fills (its status and text).
    pub(crate) async fn authorize(
        &self,
        url: &str,
        login: &str,
    ) -> Result<url::Url, (u16, String)> {
        self.inner.authorize(url, login, &self.redirect).await
    }
}

pub(crate) fn param(url: &url::Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

pub(crate) use tests::oauth::pkce;

pub(crate) async fn register(bastion: &Server) -> String {
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

pub(crate) fn authorize_url(
    bastion: &Server,
    client_id: &str,
    challenge: &str,
    method: &str,
) -> String {
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

pub(crate) async fn token(bastion: &Server, form: &[(&str, &str)]) -> (u16, Value) {
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
