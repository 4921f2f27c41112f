//! Signing-key rotation: the previous key keeps verifying (and is
//! published) until it is retired; new tokens are signed by the current key.

use std::{collections::BTreeSet, sync::Arc};

use axum::body::Body;
use http::{Request, StatusCode};
use serde_json::Value;

use super::*;

async fn published_kids(app: &Router) -> BTreeSet<String> {
    let res = send(
        app,
        Request::get("/oauth/jwks.json")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    let jwks: Value = serde_json::from_str(&text(res).await).unwrap();
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

#[tokio::test]
async fn a_rotated_key_verifies_its_tokens_until_it_is_retired() {
    let idp = idp().await;
    let store: Arc<dyn OAuthStore> = Arc::new(MemoryStore::new());
    let (old, new) = (SigningKey::generate(), SigningKey::generate());
    let before = builder(&idp)
        .signing_key(old.clone())
        .store(store.clone())
        .build()
        .unwrap();
    let app = before.router();
    let (code, verifier) = code_for(&app, &idp, "alice").await;
    let (_, tokens, _) = token(&app, &redeem(&code, &verifier)).await;
    let old_token = tokens["access_token"].as_str().unwrap().to_owned();
    assert_eq!(kid_of(&old_token), old.kid());

    // rotated: signs with the new key, verifies and publishes both
    let rotated = builder(&idp)
        .signing_key(new.clone())
        .previous_signing_key(old.clone())
        .previous_signing_key(new.clone())
        .store(store.clone())
        .build()
        .unwrap();
    let app = rotated.router();
    assert_eq!(
        published_kids(&app).await,
        BTreeSet::from([old.kid().to_owned(), new.kid().to_owned()])
    );
    assert_eq!(rotated.previous_signing_keys().len(), 1, "no repeat");
    let mcp_rotated = mcp(rotated.authenticator());
    assert_eq!(call(&mcp_rotated, &old_token).await, StatusCode::OK);
    // the refresh token of before the rotation gets a token of the new key
    let form = format!(
        "grant_type=refresh_token&client_id=app&refresh_token={}",
        tokens["refresh_token"].as_str().unwrap()
    );
    let (status, refreshed, _) = token(&app, &form).await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    let new_token = refreshed["access_token"].as_str().unwrap().to_owned();
    assert_eq!(kid_of(&new_token), new.kid());
    assert_eq!(call(&mcp_rotated, &new_token).await, StatusCode::OK);

    // a token of a key this server never had: refused, whatever its kid says
    let stranger = builder(&idp)
        .signing_key(SigningKey::generate())
        .store(store.clone())
        .build()
        .unwrap();
    let (code, verifier) = code_for(&stranger.router(), &idp, "bob").await;
    let (_, foreign, _) = token(&stranger.router(), &redeem(&code, &verifier)).await;
    let foreign = foreign["access_token"].as_str().unwrap();
    assert_eq!(call(&mcp_rotated, foreign).await, StatusCode::UNAUTHORIZED);

    // retired: the old key is no longer published, its tokens are refused
    let retired = builder(&idp)
        .signing_key(new.clone())
        .store(store)
        .build()
        .unwrap();
    assert_eq!(
        published_kids(&retired.router()).await,
        BTreeSet::from([new.kid().to_owned()])
    );
    let mcp_retired = mcp(retired.authenticator());
    assert_eq!(
        call(&mcp_retired, &old_token).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(call(&mcp_retired, &new_token).await, StatusCode::OK);

    // revocation finds the grant through a token of the previous key too
    let res = send(
        &app,
        Request::post("/oauth/revoke")
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(Body::from(format!("client_id=app&token={old_token}")))
            .unwrap(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        call(&mcp_rotated, &new_token).await,
        StatusCode::UNAUTHORIZED
    );
}
