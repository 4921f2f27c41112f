//! The authorization endpoint, the upstream login, consent, and clients.
#![allow(clippy::unwrap_used)]

use axum::body::Body;
use http::{Request, StatusCode, header};
use serde_json::{Value, json};

use super::*;

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
    let cookie = browser_cookie(&res);
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

#[tokio::test]
async fn id_tokens_for_another_audience_or_issuer_are_refused() {
    let idp = idp().await;
    let app = builder(&idp).build().unwrap().router();
    for (claim, value) in [
        ("aud", json!("another-client")),
        ("iss", json!("https://evil.example")),
        ("exp", json!(1_000_000)),
    ] {
        idp.overrides.lock().unwrap().clear();
        idp.overrides.lock().unwrap().insert(claim.into(), value);
        let (_, challenge) = pkce();
        let res = login(
            &app,
            &idp,
            &authorize_uri("app", &challenge, ""),
            "alice",
            None,
        )
        .await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{claim}");
        assert!(text(res).await.contains("Login failed"), "{claim}");
    }
}

#[tokio::test]
async fn a_refused_consent_goes_back_as_access_denied() {
    let idp = idp().await;
    let app = builder(&idp).build().unwrap().router();
    let (_, challenge) = pkce();
    let res = login_deciding(
        &app,
        &idp,
        &authorize_uri("app", &challenge, ""),
        "alice",
        None,
        "deny",
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let back = location(&res);
    assert_eq!(param(&back, "error").as_deref(), Some("access_denied"));
    assert_eq!(param(&back, "state").as_deref(), Some("xyz"));
    assert!(param(&back, "code").is_none());
    // and nothing was remembered: the next login asks again
    let (_, challenge) = pkce();
    let res = login_deciding(
        &app,
        &idp,
        &authorize_uri("app", &challenge, ""),
        "alice",
        None,
        "approve",
    )
    .await;
    assert!(param(&location(&res), "code").is_some());
}

#[tokio::test]
async fn unusable_metadata_documents_are_a_page() {
    let idp = idp().await;
    let app = builder(&idp)
        .cimd_allow_loopback(true)
        .build()
        .unwrap()
        .router();
    let (_, challenge) = pkce();
    for (doc, detail) in [
        ("other.json", "its client_id must equal its URL"),
        ("big.json", "could not be fetched"),
        ("redirect.json", "could not be fetched"),
        ("missing.json", "could not be fetched"),
    ] {
        let uri = authorize_uri(&format!("{}/{doc}", idp.url), &challenge, "");
        let res = send(&app, Request::get(&uri).body(Body::empty()).unwrap()).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{doc}");
        assert!(res.headers().get(header::LOCATION).is_none(), "{doc}");
        assert!(text(res).await.contains(detail), "{doc}");
    }
}
