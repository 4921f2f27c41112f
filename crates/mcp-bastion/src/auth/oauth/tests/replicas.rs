//! Two authorization servers (replicas) sharing one Redis and one signing
//! key: what one issues, the other redeems, refreshes, revokes and checks.

use std::sync::Arc;

use axum::body::Body;
use http::{Request, StatusCode, header};

use super::*;
use crate::ratelimit::redis_test_server;

#[tokio::test]
async fn replicas_sharing_redis_share_codes_grants_and_consents() {
    let (_server, url) = redis_test_server().await;
    let idp = idp().await;
    let key = SigningKey::generate();
    let secrets = SecretsKey::generate();
    let replica = || {
        builder(&idp)
            .signing_key(key.clone())
            .secrets_key(secrets.clone())
            .store(Arc::new(RedisOAuthStore::open(&url).unwrap()))
            .build()
            .unwrap()
    };
    let (a, b) = (replica(), replica());
    let (app_a, app_b) = (a.router(), b.router());
    let mcp_b = mcp(b.authenticator());

    // a code issued on A (consent given there) is redeemed on B
    let (code, verifier) = code_for(&app_a, &idp, "alice").await;
    let (status, first, _) = token(&app_b, &redeem(&code, &verifier)).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    // and is spent for A too
    let (_, again, _) = token(&app_a, &redeem(&code, &verifier)).await;
    assert_eq!(again["error_description"], "the code was already used");

    // the consent remembered on A is seen on B: no page, straight back
    let (_, challenge) = pkce();
    let res = login(
        &app_b,
        &idp,
        &authorize_uri("app", &challenge, ""),
        "alice",
        None,
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(param(&location(&res), "code").is_some());

    // (reusing the first code revoked its grant) a fresh grant, refreshed on B
    let (code, verifier) = code_for(&app_a, &idp, "bob").await;
    let (_, tokens, _) = token(&app_b, &redeem(&code, &verifier)).await;
    let form = format!(
        "grant_type=refresh_token&client_id=app&refresh_token={}",
        tokens["refresh_token"].as_str().unwrap()
    );
    let (status, refreshed, _) = token(&app_b, &form).await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    let access = refreshed["access_token"].as_str().unwrap();
    assert_eq!(call(&mcp_b, access).await, StatusCode::OK);

    // revoked on A: refused on B
    let res = send(
        &app_a,
        Request::post("/oauth/revoke")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(format!("client_id=app&token={access}")))
            .unwrap(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(call(&mcp_b, access).await, StatusCode::UNAUTHORIZED);
}

/// A Redis that cannot be reached fails closed: the token endpoint answers
/// `temporarily_unavailable` (503) and a valid token is not let through (503).
#[tokio::test]
async fn an_unreachable_redis_fails_closed() {
    let idp = idp().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).unwrap();
    let store =
        RedisOAuthStore::with_timeout(client, std::time::Duration::from_millis(200)).unwrap();
    let oauth = builder(&idp)
        .store(Arc::new(store))
        .secrets_key(SecretsKey::generate())
        .build()
        .unwrap();
    let (status, body, _) = token(&oauth.router(), &redeem("a-code", "a-verifier")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"], "temporarily_unavailable");

    let now = unix_now();
    let claims = super::super::keys::AccessClaims {
        iss: ISSUER.into(),
        aud: RESOURCE.into(),
        sub: "alice".into(),
        client_id: "app".into(),
        scope: "mcp".into(),
        exp: now + 60,
        iat: now,
        jti: random_token(),
        grant_id: random_token(),
    };
    let access = oauth.signing_key().sign(&claims).unwrap();
    assert_eq!(
        call(&mcp(oauth.authenticator()), &access).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
}
