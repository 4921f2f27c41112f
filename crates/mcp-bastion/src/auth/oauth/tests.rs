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

const RESOURCE: &str = "https://mcp.example.com/mcp";
const ISSUER: &str = "https://mcp.example.com";
const REDIRECT: &str = "http://127.0.0.1:4000/callback";

/// What the provider answers for each code it was told about: (sub, nonce).
type Codes = Arc<Mutex<HashMap<String, (String, String)>>>;

struct Idp {
    url: String,
    codes: Codes,
}

#[derive(Clone)]
struct IdpState {
    url: String,
    key: SigningKey,
    codes: Codes,
}

async fn idp() -> Idp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let state = IdpState {
        url: url.clone(),
        key: SigningKey::generate(),
        codes: Codes::default(),
    };
    let codes = state.codes.clone();
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
                    let Some((sub, nonce)) = s.codes.lock().unwrap().remove(&f["code"]) else {
                        return (
                            StatusCode::BAD_REQUEST,
                            Json(json!({"error": "invalid_grant"})),
                        );
                    };
                    let now = unix_now();
                    let id_token = s
                        .key
                        .sign(&json!({
                            "iss": s.url, "aud": "bastion", "sub": sub, "nonce": nonce,
                            "email": format!("{sub}@example.com"), "email_verified": true,
                            "iat": now, "exp": now + 300,
                        }))
                        .unwrap();
                    (
                        StatusCode::OK,
                        Json(json!({
                            "access_token": "upstream-access", "token_type": "Bearer",
                            "expires_in": 300, "id_token": id_token,
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
        .with_state(state);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Idp { url, codes }
}

fn builder(idp: &Idp) -> OAuthServerBuilder {
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

async fn send(app: &Router, req: Request<Body>) -> axum::response::Response {
    app.clone().oneshot(req).await.unwrap()
}

async fn text(res: axum::response::Response) -> String {
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .unwrap();
    String::from_utf8_lossy(&bytes).into_owned()
}

fn location(res: &axum::response::Response) -> url::Url {
    url::Url::parse(res.headers()[header::LOCATION].to_str().unwrap()).unwrap()
}

fn param(url: &url::Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// A PKCE verifier and its S256 challenge.
fn pkce() -> (String, String) {
    let v = random_token();
    let c = s256(&v);
    (v, c)
}

fn authorize_uri(client: &str, challenge: &str, extra: &str) -> String {
    let client: String = form_urlencoded::byte_serialize(client.as_bytes()).collect();
    format!(
        "/oauth/authorize?response_type=code&client_id={client}&redirect_uri=http%3A%2F%2F127.0.0.1%3A4000%2Fcallback&state=xyz&code_challenge={challenge}&code_challenge_method=S256{extra}"
    )
}

/// Plays the browser from `/oauth/authorize` to the client's redirect:
/// the provider is told the code it will see, with the nonce it was sent
/// (or `nonce_override`); returns the final response (redirect to the
/// client, or a page).
async fn login(
    app: &Router,
    idp: &Idp,
    authorize: &str,
    sub: &str,
    nonce_override: Option<&str>,
) -> axum::response::Response {
    let res = send(app, Request::get(authorize).body(Body::empty()).unwrap()).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "{}", text(res).await);
    let upstream = location(&res);
    let cookie = res.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
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
        "consent_id={}&csrf={}&decision=approve",
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

async fn token(app: &Router, form: &str) -> (StatusCode, Value, Option<String>) {
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
async fn code_for(app: &Router, idp: &Idp, sub: &str) -> (String, String) {
    let (verifier, challenge) = pkce();
    let res = login(app, idp, &authorize_uri("app", &challenge, ""), sub, None).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let back = location(&res);
    assert_eq!(param(&back, "state").as_deref(), Some("xyz"));
    assert_eq!(param(&back, "iss").as_deref(), Some(ISSUER));
    (param(&back, "code").unwrap(), verifier)
}

fn redeem(code: &str, verifier: &str) -> String {
    format!(
        "grant_type=authorization_code&client_id=app&code={code}&code_verifier={verifier}&redirect_uri=http%3A%2F%2F127.0.0.1%3A4000%2Fcallback&resource=https%3A%2F%2Fmcp.example.com%2Fmcp"
    )
}

/// The MCP endpoint behind `McpAuthLayer` with the server's authenticator.
fn mcp(auth: impl Authenticator) -> Router {
    Router::new()
        .route(
            "/mcp",
            post(|p: Principal| async move { p.subject().to_owned() }),
        )
        .layer(McpAuthLayer::new(auth))
}

async fn call(mcp: &Router, token: &str) -> StatusCode {
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

#[tokio::test]
async fn metadata_advertises_exactly_what_is_supported() {
    let idp = idp().await;
    let app = builder(&idp).build().unwrap().router();
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        let res = send(&app, Request::get(path).body(Body::empty()).unwrap()).await;
        assert_eq!(res.status(), StatusCode::OK);
        let doc: Value = serde_json::from_str(&text(res).await).unwrap();
        assert_eq!(doc["issuer"], ISSUER);
        assert_eq!(doc["response_types_supported"], json!(["code"]));
        assert_eq!(doc["code_challenge_methods_supported"], json!(["S256"]));
        assert_eq!(doc["client_id_metadata_document_supported"], true);
        assert_eq!(doc["authorization_response_iss_parameter_supported"], true);
        assert_eq!(doc["scopes_supported"], json!(["mcp", "admin"]));
        assert_eq!(
            doc["registration_endpoint"],
            format!("{ISSUER}/oauth/register")
        );
        assert!(!doc.to_string().contains("offline_access"));
    }
    let res = send(
        &app,
        Request::get("/oauth/jwks.json")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    let jwks: Value = serde_json::from_str(&text(res).await).unwrap();
    assert_eq!(jwks["keys"][0]["alg"], "ES256");

    // an issuer with a path: the path-inserted form
    let app = builder(&idp)
        .issuer("https://mcp.example.com/tenant")
        .dcr(DcrPolicy::Off)
        .build()
        .unwrap()
        .router();
    let res = send(
        &app,
        Request::get("/.well-known/oauth-authorization-server/tenant")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    let doc: Value = serde_json::from_str(&text(res).await).unwrap();
    assert_eq!(
        doc["token_endpoint"],
        "https://mcp.example.com/tenant/oauth/token"
    );
    assert!(doc.get("registration_endpoint").is_none());
}

#[tokio::test]
async fn issued_tokens_pass_mcp_auth_and_are_only_for_this_resource() {
    let idp = idp().await;
    let oauth = builder(&idp).build().unwrap();
    let app = oauth.router();
    let (code, verifier) = code_for(&app, &idp, "alice").await;
    let (status, body, cache) = token(&app, &redeem(&code, &verifier)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(cache.as_deref(), Some("no-store"));
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["scope"], "mcp admin");
    let access = body["access_token"].as_str().unwrap();

    // verified locally with the key published at the JWKS endpoint
    let res = send(
        &app,
        Request::get("/oauth/jwks.json")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    let jwks: Value = serde_json::from_str(&text(res).await).unwrap();
    let jwk = &jwks["keys"][0];
    let published = jsonwebtoken::DecodingKey::from_ec_components(
        jwk["x"].as_str().unwrap(),
        jwk["y"].as_str().unwrap(),
    )
    .unwrap();
    let jwt = crate::auth::JwtAuthenticator::builder()
        .key(jwk["kid"].as_str().map(str::to_owned), published)
        .issuer(ISSUER)
        .audience(RESOURCE)
        .build()
        .unwrap();
    let mcp_app = mcp(jwt);
    assert_eq!(call(&mcp_app, access).await, StatusCode::OK);
    assert_eq!(
        call(&mcp(oauth.jwt_authenticator()), access).await,
        StatusCode::OK
    );
    let p = oauth.jwt_authenticator().verify(access).await.unwrap();
    assert_eq!(p.subject(), "alice");
    assert_eq!(p.claim("client_id"), Some(&json!("app")));
    assert!(p.has_scope("mcp"));

    // the same issuer and key, another resource: refused
    let other = builder(&idp)
        .resource("https://other.example.com/mcp")
        .signing_key(oauth.signing_key().clone())
        .build()
        .unwrap();
    let other_app = other.router();
    let (code, verifier) = code_for(&other_app, &idp, "alice").await;
    let form =
        redeem(&code, &verifier).replace("&resource=https%3A%2F%2Fmcp.example.com%2Fmcp", "");
    let (_, body, _) = token(&other_app, &form).await;
    let foreign = body["access_token"].as_str().unwrap();
    assert_eq!(call(&mcp_app, foreign).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_reused_code_is_refused_and_revokes_what_it_issued() {
    let idp = idp().await;
    let oauth = builder(&idp).build().unwrap();
    let app = oauth.router();
    let mcp_app = mcp(oauth.authenticator());
    let (code, verifier) = code_for(&app, &idp, "alice").await;
    let (_, body, _) = token(&app, &redeem(&code, &verifier)).await;
    let access = body["access_token"].as_str().unwrap().to_owned();
    let refresh = body["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(call(&mcp_app, &access).await, StatusCode::OK);

    let (status, body, _) = token(&app, &redeem(&code, &verifier)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(body["error_description"], "the code was already used");
    assert_eq!(call(&mcp_app, &access).await, StatusCode::UNAUTHORIZED);
    let (_, body, _) = token(
        &app,
        &format!("grant_type=refresh_token&client_id=app&refresh_token={refresh}"),
    )
    .await;
    assert_eq!(body["error"], "invalid_grant");
}

/// A token request form from a code and its verifier.
type FormOf = fn(String, String) -> String;

#[tokio::test]
async fn codes_are_bound_to_verifier_redirect_client_and_resource() {
    let idp = idp().await;
    let app = builder(&idp).build().unwrap().router();
    let cases: [(&str, FormOf, &str); 4] = [
        (
            "wrong verifier",
            |c, _| redeem(&c, &random_token()),
            "the PKCE code_verifier does not match",
        ),
        (
            "another redirect URI",
            |c, v| redeem(&c, &v).replace("4000", "4001"),
            "redirect_uri differs from the authorization request's",
        ),
        (
            "another client",
            |c, v| {
                redeem(&c, &v).replace(
                    "client_id=app",
                    "client_id=private&client_secret=private-secret",
                )
            },
            "the code was issued to another client",
        ),
        (
            "no verifier",
            |c, v| redeem(&c, &v).replace(&format!("&code_verifier={v}"), ""),
            "the PKCE code_verifier does not match",
        ),
    ];
    for (name, form, description) in cases {
        let (code, verifier) = code_for(&app, &idp, "alice").await;
        let (status, body, _) = token(&app, &form(code.clone(), verifier.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name}");
        assert_eq!(body["error_description"], description, "{name}");
        // the code is spent
        let (_, body, _) = token(&app, &redeem(&code, &verifier)).await;
        assert_eq!(body["error"], "invalid_grant", "{name}");
    }
    // a confidential client without its secret
    let (status, body, _) = token(
        &app,
        "grant_type=authorization_code&client_id=private&code=x",
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );
}

#[tokio::test]
async fn refresh_tokens_rotate_and_reuse_revokes_the_grant() {
    let idp = idp().await;
    let oauth = builder(&idp).build().unwrap();
    let app = oauth.router();
    let mcp_app = mcp(oauth.authenticator());
    let (code, verifier) = code_for(&app, &idp, "alice").await;
    let (_, first, _) = token(&app, &redeem(&code, &verifier)).await;
    let refresh = |t: &Value| {
        format!(
            "grant_type=refresh_token&client_id=app&refresh_token={}",
            t["refresh_token"].as_str().unwrap()
        )
    };
    let (status, second, cache) = token(&app, &refresh(&first)).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_eq!(cache.as_deref(), Some("no-store"));
    assert_ne!(second["refresh_token"], first["refresh_token"]);
    let access = second["access_token"].as_str().unwrap();
    assert_eq!(call(&mcp_app, access).await, StatusCode::OK);

    // the first refresh token again: refused, and the whole grant is gone
    let (_, body, _) = token(&app, &refresh(&first)).await;
    assert_eq!(
        body["error_description"],
        "the refresh token was already used"
    );
    let (_, body, _) = token(&app, &refresh(&second)).await;
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(call(&mcp_app, access).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn revocation_ends_access() {
    let idp = idp().await;
    let oauth = builder(&idp).build().unwrap();
    let app = oauth.router();
    let mcp_app = mcp(oauth.authenticator());
    let (code, verifier) = code_for(&app, &idp, "alice").await;
    let (_, body, _) = token(&app, &redeem(&code, &verifier)).await;
    let access = body["access_token"].as_str().unwrap();
    let res = send(
        &app,
        Request::post("/oauth/revoke")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(format!("client_id=app&token={access}")))
            .unwrap(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(call(&mcp_app, access).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn bad_authorization_requests_are_pages_or_redirected_errors() {
    let idp = idp().await;
    let app = builder(&idp).build().unwrap().router();
    let (_, challenge) = pkce();
    // cannot safely redirect: a page
    for uri in [
        authorize_uri("nobody", &challenge, ""),
        authorize_uri("app", &challenge, "").replace("4000%2Fcallback", "4000%2Fother"),
        authorize_uri(&format!("{}/client.json", idp.url), &challenge, ""),
    ] {
        let res = send(&app, Request::get(&uri).body(Body::empty()).unwrap()).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{uri}");
        assert!(res.headers().get(header::LOCATION).is_none());
        assert!(
            res.headers()[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .unwrap()
                .contains("frame-ancestors 'none'")
        );
    }
    // redirected back with the error
    for (uri, error) in [
        (
            authorize_uri("app", &challenge, "").replace("S256", "plain"),
            "invalid_request",
        ),
        (
            authorize_uri("app", "", "").replace("&code_challenge_method=S256", ""),
            "invalid_request",
        ),
        (
            authorize_uri(
                "app",
                &challenge,
                "&resource=https%3A%2F%2Fother.example%2Fmcp",
            ),
            "invalid_target",
        ),
        (
            authorize_uri("app", &challenge, "&scope=mcp%20offline_access"),
            "invalid_scope",
        ),
        (
            authorize_uri("app", &challenge, "")
                .replace("response_type=code", "response_type=token"),
            "unsupported_response_type",
        ),
    ] {
        let res = send(&app, Request::get(&uri).body(Body::empty()).unwrap()).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "{uri}");
        let back = location(&res);
        assert!(back.as_str().starts_with(REDIRECT));
        assert_eq!(param(&back, "error").as_deref(), Some(error), "{uri}");
        assert_eq!(param(&back, "state").as_deref(), Some("xyz"));
        assert_eq!(param(&back, "iss").as_deref(), Some(ISSUER));
    }
}

#[tokio::test]
async fn the_upstream_login_is_checked() {
    let idp = idp().await;
    let app = builder(&idp).build().unwrap().router();
    let (_, challenge) = pkce();
    // an ID token carrying another nonce
    let res = login(
        &app,
        &idp,
        &authorize_uri("app", &challenge, ""),
        "alice",
        Some("forged"),
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(text(res).await.contains("Login failed"));
    // a user outside the allowlist (a verified email elsewhere)
    let only_bob = OAuthServer::builder()
        .issuer(ISSUER)
        .resource(RESOURCE)
        .upstream(UpstreamOidc::new(&idp.url, "bastion"))
        .allow_subject("bob")
        .client(StaticClient::new("app").redirect_uri(REDIRECT))
        .build()
        .unwrap()
        .router();
    let res = login(
        &only_bob,
        &idp,
        &authorize_uri("app", &challenge, ""),
        "alice",
        None,
    )
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    // the callback without the browser's cookie, or with an unknown state
    let res = send(
        &app,
        Request::get(authorize_uri("app", &challenge, ""))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    let state = param(&location(&res), "state").unwrap();
    let res = send(
        &app,
        Request::get(format!("/oauth/callback?code=c&state={state}"))
            .header(header::COOKIE, "mcp_bastion_oauth=someone-else")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(text(res).await.contains("Login expired"));
}

#[tokio::test]
async fn consent_is_remembered_per_user_and_client() {
    let idp = idp().await;
    let app = builder(&idp).build().unwrap().router();
    let _ = code_for(&app, &idp, "alice").await;
    // the second time, no consent page: straight back to the client
    let (_, challenge) = pkce();
    let res = send(
        &app,
        Request::get(authorize_uri("app", &challenge, ""))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    let cookie = res.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let upstream = location(&res);
    idp.codes.lock().unwrap().insert(
        "c2".into(),
        ("alice".into(), param(&upstream, "nonce").unwrap()),
    );
    let res = send(
        &app,
        Request::get(format!(
            "/oauth/callback?code=c2&state={}",
            param(&upstream, "state").unwrap()
        ))
        .header(header::COOKIE, cookie)
        .body(Body::empty())
        .unwrap(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(param(&location(&res), "code").is_some());
}

#[tokio::test]
async fn client_id_metadata_documents_and_registration() {
    let idp = idp().await;
    let app = builder(&idp)
        .cimd_allow_loopback(true)
        .build()
        .unwrap()
        .router();
    let (verifier, challenge) = pkce();
    let doc_id = format!("{}/client.json", idp.url);
    let res = login(
        &app,
        &idp,
        &authorize_uri(&doc_id, &challenge, ""),
        "alice",
        None,
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let code = param(&location(&res), "code").unwrap();
    let id: String = form_urlencoded::byte_serialize(doc_id.as_bytes()).collect();
    let (status, body, _) = token(
        &app,
        &redeem(&code, &verifier).replace("client_id=app", &format!("client_id={id}")),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // registration: loopback redirects allowed, others refused
    let register = |body: Value| {
        Request::post("/oauth/register")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    let res = send(
        &app,
        register(json!({"redirect_uris": ["https://evil.example/cb"]})),
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        serde_json::from_str::<Value>(&text(res).await).unwrap()["error"],
        "invalid_redirect_uri"
    );
    let res = send(
        &app,
        register(json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none", "client_name": "Reg"})),
    )
    .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let reg: Value = serde_json::from_str(&text(res).await).unwrap();
    let client_id = reg["client_id"].as_str().unwrap();
    assert!(reg.get("client_secret").is_none());
    let (verifier, challenge) = pkce();
    let res = login(
        &app,
        &idp,
        &authorize_uri(client_id, &challenge, ""),
        "alice",
        None,
    )
    .await;
    let code = param(&location(&res), "code").unwrap();
    let (status, _, _) = token(
        &app,
        &redeem(&code, &verifier).replace("client_id=app", &format!("client_id={client_id}")),
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    // registration with an initial access token
    let guarded = builder(&idp)
        .dcr(DcrPolicy::initial_token("let-me-in"))
        .build()
        .unwrap()
        .router();
    let res = send(&guarded, register(json!({"redirect_uris": [REDIRECT]}))).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let mut req = register(json!({"redirect_uris": [REDIRECT]}));
    req.headers_mut()
        .insert(header::AUTHORIZATION, "Bearer let-me-in".parse().unwrap());
    let res = send(&guarded, req).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    assert!(serde_json::from_str::<Value>(&text(res).await).unwrap()["client_secret"].is_string());
}

#[test]
fn secrets_stay_out_of_debug() {
    let key = SigningKey::generate();
    let pem = key.to_pkcs8_pem();
    let secret_line = pem.lines().nth(1).unwrap();
    assert!(!format!("{key:?}").contains(secret_line));
    let tokens = upstream::UpstreamTokens {
        access_token: "upstream-secret-token".into(),
        ..Default::default()
    };
    assert!(!format!("{tokens:?}").contains("upstream-secret-token"));
    assert!(!format!("{:?}", DcrPolicy::initial_token("t0ken")).contains("t0ken"));
}
