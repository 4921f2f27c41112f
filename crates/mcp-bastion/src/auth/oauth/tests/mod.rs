//! The whole flow in process: an identity provider on loopback (discovery,
//! JWKS, token endpoint, ID tokens signed with its own key), the
//! authorization server driven through its router, and its tokens checked
//! by `McpAuthLayer`.
#![allow(clippy::unwrap_used)]

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use axum::{
    Form, Json, Router,
    body::Body,
    extract::State,
    routing::{get, post},
};
use http::{Request, StatusCode, header};
use serde_json::{Value, json};
use tower::ServiceExt as _;

use super::*;
use crate::{
    auth::{Authenticator, McpAuthLayer},
    principal::Principal,
};

pub(super) const RESOURCE: &str = "https://mcp.example.com/mcp";
pub(super) const ISSUER: &str = "https://mcp.example.com";
pub(super) const REDIRECT: &str = "http://127.0.0.1:4000/callback";

/// What the provider answers for each code it was told about: (sub, nonce).
pub(super) type Codes = Arc<Mutex<HashMap<String, (String, String)>>>;

/// Claims that replace the ID token's own (a wrong `aud`, `iss`…).
pub(super) type Overrides = Arc<Mutex<serde_json::Map<String, Value>>>;

/// How the provider answers `refresh_token` grants, and what it did.
#[derive(Debug, Default)]
pub(super) struct Refreshes {
    /// Refresh grants answered so far (each gives `upstream-access-<n>`).
    pub(super) calls: u32,
    /// Answer `invalid_grant` instead.
    pub(super) refuse: bool,
    /// `expires_in` of the code exchange's access token (default 300).
    pub(super) code_expires_in: Option<u64>,
}

pub(super) struct Idp {
    pub(super) url: String,
    pub(super) codes: Codes,
    pub(super) overrides: Overrides,
    pub(super) refreshes: Arc<Mutex<Refreshes>>,
}

#[derive(Clone)]
struct IdpState {
    url: String,
    key: SigningKey,
    codes: Codes,
    overrides: Overrides,
    refreshes: Arc<Mutex<Refreshes>>,
}

pub(super) async fn idp() -> Idp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let state = IdpState {
        url: url.clone(),
        key: SigningKey::generate(),
        codes: Codes::default(),
        overrides: Overrides::default(),
        refreshes: Arc::default(),
    };
    let (codes, overrides, refreshes) = (
        state.codes.clone(),
        state.overrides.clone(),
        state.refreshes.clone(),
    );
    let app = Router::new()
        .route(
            "/.well-known/openid-configuration",
            get(|State(s): State<IdpState>| async move {
                Json(json!({
                    "issuer": s.url,
                    "authorization_endpoint": format!("{}/authorize", s.url),
                    "token_endpoint": format!("{}/token", s.url),
                    "jwks_uri": format!("{}/jwks", s.url),
                }))
            }),
        )
        .route(
            "/jwks",
            get(|State(s): State<IdpState>| async move { Json(s.key.jwks()) }),
        )
        .route(
            "/token",
            post(
                |State(s): State<IdpState>, Form(f): Form<HashMap<String, String>>| async move {
                    if f.get("grant_type").map(String::as_str) == Some("refresh_token") {
                        let mut r = s.refreshes.lock().unwrap();
                        if r.refuse || !f["refresh_token"].starts_with("upstream-refresh") {
                            return (
                                StatusCode::BAD_REQUEST,
                                Json(json!({"error": "invalid_grant"})),
                            );
                        }
                        r.calls += 1;
                        return (
                            StatusCode::OK,
                            Json(json!({
                                "access_token": format!("upstream-access-{}", r.calls),
                                "refresh_token": format!("upstream-refresh-{}", r.calls),
                                "token_type": "Bearer", "expires_in": 3600,
                            })),
                        );
                    }
                    let code_expires_in =
                        s.refreshes.lock().unwrap().code_expires_in.unwrap_or(300);
                    let Some((sub, nonce)) = s.codes.lock().unwrap().remove(&f["code"]) else {
                        return (
                            StatusCode::BAD_REQUEST,
                            Json(json!({"error": "invalid_grant"})),
                        );
                    };
                    let now = unix_now();
                    let mut claims = json!({
                        "iss": s.url, "aud": "bastion", "sub": sub, "nonce": nonce,
                        "email": format!("{sub}@example.com"), "email_verified": true,
                        "iat": now, "exp": now + 300,
                    });
                    for (k, v) in s.overrides.lock().unwrap().iter() {
                        claims[k] = v.clone();
                    }
                    let id_token = s.key.sign(&claims).unwrap();
                    (
                        StatusCode::OK,
                        Json(json!({
                            "access_token": "upstream-access", "token_type": "Bearer",
                            "refresh_token": "upstream-refresh-0",
                            "expires_in": code_expires_in, "id_token": id_token,
                        })),
                    )
                },
            ),
        )
        .route(
            "/client.json",
            get(|State(s): State<IdpState>| async move {
                Json(json!({
                    "client_id": format!("{}/client.json", s.url),
                    "client_name": "Doc Client",
                    "redirect_uris": [REDIRECT],
                    "token_endpoint_auth_method": "none",
                }))
            }),
        )
        .route(
            "/other.json",
            get(|State(s): State<IdpState>| async move {
                Json(json!({
                    "client_id": format!("{}/client.json", s.url),
                    "redirect_uris": [REDIRECT],
                }))
            }),
        )
        .route(
            "/big.json",
            get(|State(s): State<IdpState>| async move {
                Json(json!({
                    "client_id": format!("{}/big.json", s.url),
                    "client_name": "x".repeat(20_000),
                    "redirect_uris": [REDIRECT],
                }))
            }),
        )
        .route(
            "/redirect.json",
            get(|| async { axum::response::Redirect::temporary("/client.json") }),
        )
        .with_state(state);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Idp {
        url,
        codes,
        overrides,
        refreshes,
    }
}

pub(super) fn builder(idp: &Idp) -> OAuthServerBuilder {
    OAuthServer::builder()
        .issuer(ISSUER)
        .resource(RESOURCE)
        .scopes(["mcp", "admin"])
        .upstream(UpstreamOidc::new(&idp.url, "bastion").client_secret("upstream-secret"))
        .allow_email_domain("example.com")
        .client(
            StaticClient::new("app")
                .name("The App")
                .redirect_uri(REDIRECT),
        )
        .client(
            StaticClient::new("private")
                .redirect_uri(REDIRECT)
                .secret("private-secret"),
        )
        .dcr(DcrPolicy::Open)
        .redirect_allow_loopback(true)
}

pub(super) async fn send(app: &Router, req: Request<Body>) -> axum::response::Response {
    app.clone().oneshot(req).await.unwrap()
}

pub(super) async fn text(res: axum::response::Response) -> String {
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .unwrap();
    String::from_utf8_lossy(&bytes).into_owned()
}

pub(super) fn location(res: &axum::response::Response) -> url::Url {
    url::Url::parse(res.headers()[header::LOCATION].to_str().unwrap()).unwrap()
}

/// The `name=value` of the cookie a response sets.
pub(super) fn browser_cookie(res: &axum::response::Response) -> String {
    res.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

pub(super) fn param(url: &url::Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// A PKCE verifier and its S256 challenge.
pub(super) fn pkce() -> (String, String) {
    let v = random_token();
    let c = s256(&v);
    (v, c)
}

pub(super) fn authorize_uri(client: &str, challenge: &str, extra: &str) -> String {
    let client: String = form_urlencoded::byte_serialize(client.as_bytes()).collect();
    format!(
        "/oauth/authorize?response_type=code&client_id={client}&redirect_uri=http%3A%2F%2F127.0.0.1%3A4000%2Fcallback&state=xyz&code_challenge={challenge}&code_challenge_method=S256{extra}"
    )
}

/// Plays the browser from `/oauth/authorize` to the client's redirect:
/// the provider is told the code it will see, with the nonce it was sent
/// (or `nonce_override`); returns the final response (redirect to the
/// client, or a page).
pub(super) async fn login(
    app: &Router,
    idp: &Idp,
    authorize: &str,
    sub: &str,
    nonce_override: Option<&str>,
) -> axum::response::Response {
    login_deciding(app, idp, authorize, sub, nonce_override, "approve").await
}

/// [`login`], answering the consent page with `decision`.
pub(super) async fn login_deciding(
    app: &Router,
    idp: &Idp,
    authorize: &str,
    sub: &str,
    nonce_override: Option<&str>,
    decision: &str,
) -> axum::response::Response {
    let res = send(app, Request::get(authorize).body(Body::empty()).unwrap()).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "{}", text(res).await);
    let upstream = location(&res);
    let cookie = browser_cookie(&res);
    assert_eq!(
        param(&upstream, "code_challenge_method").as_deref(),
        Some("S256")
    );
    let state = param(&upstream, "state").unwrap();
    let nonce = nonce_override.map_or_else(|| param(&upstream, "nonce").unwrap(), str::to_owned);
    idp.codes
        .lock()
        .unwrap()
        .insert("upstream-code".into(), (sub.into(), nonce));
    let res = send(
        app,
        Request::get(format!("/oauth/callback?code=upstream-code&state={state}"))
            .header(header::COOKIE, &cookie)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    if res.status() != StatusCode::OK
        || !res.headers().contains_key(header::CONTENT_SECURITY_POLICY)
    {
        return res;
    }
    let csp = res.headers()[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .to_owned();
    let page = text(res).await;
    if !page.contains("consent_id") {
        panic!("not a consent page: {page}");
    }
    assert!(csp.contains("frame-ancestors 'none'"));
    let field = |name: &str| {
        let marker = format!("name=\"{name}\" value=\"");
        let start = page.find(&marker).unwrap() + marker.len();
        page[start..start + page[start..].find('"').unwrap()].to_owned()
    };
    let form = format!(
        "consent_id={}&csrf={}&decision={decision}",
        field("consent_id"),
        field("csrf")
    );
    send(
        app,
        Request::post("/oauth/consent")
            .header(header::COOKIE, &cookie)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(form))
            .unwrap(),
    )
    .await
}

pub(super) async fn token(app: &Router, form: &str) -> (StatusCode, Value, Option<String>) {
    let res = send(
        app,
        Request::post("/oauth/token")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(form.to_owned()))
            .unwrap(),
    )
    .await;
    let status = res.status();
    let cache = res
        .headers()
        .get(header::CACHE_CONTROL)
        .map(|v| v.to_str().unwrap().to_owned());
    (
        status,
        serde_json::from_str(&text(res).await).unwrap(),
        cache,
    )
}

/// A code for `app`, and the verifier it needs.
pub(super) async fn code_for(app: &Router, idp: &Idp, sub: &str) -> (String, String) {
    let (verifier, challenge) = pkce();
    let res = login(app, idp, &authorize_uri("app", &challenge, ""), sub, None).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let back = location(&res);
    assert_eq!(param(&back, "state").as_deref(), Some("xyz"));
    assert_eq!(param(&back, "iss").as_deref(), Some(ISSUER));
    (param(&back, "code").unwrap(), verifier)
}

pub(super) fn redeem(code: &str, verifier: &str) -> String {
    format!(
        "grant_type=authorization_code&client_id=app&code={code}&code_verifier={verifier}&redirect_uri=http%3A%2F%2F127.0.0.1%3A4000%2Fcallback&resource=https%3A%2F%2Fmcp.example.com%2Fmcp"
    )
}

/// The MCP endpoint behind `McpAuthLayer` with the server's authenticator.
pub(super) fn mcp(auth: impl Authenticator) -> Router {
    Router::new()
        .route(
            "/mcp",
            post(|p: Principal| async move { p.subject().to_owned() }),
        )
        .layer(McpAuthLayer::new(auth))
}

pub(super) async fn call(mcp: &Router, token: &str) -> StatusCode {
    send(
        mcp,
        Request::post("/mcp")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await
    .status()
}

mod authorization;
mod login_policy;
#[cfg(feature = "redis")]
mod replicas;
mod rotation;
mod tokens;
mod upstream_tokens;
