//! The requests that must fail, with a browser played by reqwest and a cookie jar.

use std::{collections::HashMap, sync::Mutex};

use base64::Engine as _;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tests::Server;

use crate::{REDIRECT, setup};

/// A browser: no automatic redirects, one cookie jar for every host (the provider and
/// mcp-bastion are both on 127.0.0.1).
pub(crate) struct Browser {
    http: reqwest::Client,
    cookies: Mutex<HashMap<String, String>>,
}

impl Browser {
    pub(crate) fn new() -> Self {
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
    pub(crate) async fn authorize(
        &self,
        url: &str,
        login: &str,
    ) -> Result<url::Url, (u16, String)> {
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

pub(crate) fn param(url: &url::Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

pub(crate) fn pkce() -> (String, String) {
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
