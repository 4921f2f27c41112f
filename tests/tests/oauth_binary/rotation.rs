//! Signing-key rotation through the binary (`--oauth-signing-key-previous-file`), the grants kept
//! across restarts in Redis: a token of the old key passes after the rotation and the JWKS lists
//! both keys; a refresh gets a token of the new key; once the old key is retired its token is
//! refused.

use base64::Engine as _;
use serde_json::Value;
use tests::{
    Server,
    oauth::{Idp, REDIRECT, free_port},
    redis::Redis,
};

use crate::replicas::{initialize, register_and_log_in, replica, token};

fn kid(jwt: &str) -> String {
    let header = jwt.split('.').next().unwrap();
    let header: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header)
            .unwrap(),
    )
    .unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

async fn published_kids(server: &Server) -> Vec<String> {
    let jwks: Value = reqwest::get(server.url("/oauth/jwks.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut kids: Vec<String> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect();
    kids.sort();
    kids
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rotated_key_verifies_its_tokens_until_it_is_retired() {
    let redis = Redis::start();
    let port = free_port();
    let issuer = format!("http://127.0.0.1:{port}");
    let idp = Idp::start(&format!("{issuer}/oauth/callback"));
    let dir = std::env::temp_dir().join(format!("oauth-binary-rotation-{port}"));
    std::fs::create_dir_all(&dir).unwrap();
    let (old, new) = (dir.join("old.pem"), dir.join("new.pem"));
    let (old, new) = (old.to_str().unwrap(), new.to_str().unwrap());

    // before: the old key (generated into its file) signs
    let mut before = replica(port, &issuer, &idp, &redis, old, &[]);
    let (client, code, verifier) = register_and_log_in(&before, &before).await;
    let (status, tokens) = token(
        &before,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", &client),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    assert_eq!(status, 200, "{tokens}");
    let old_token = tokens["access_token"].as_str().unwrap().to_owned();
    let old_kid = kid(&old_token);
    assert_eq!(
        published_kids(&before).await,
        std::slice::from_ref(&old_kid)
    );
    before.stop();

    // rotated: the new key (generated) signs, the old one still verifies
    let mut rotated = replica(
        free_port(),
        &issuer,
        &idp,
        &redis,
        new,
        &["--oauth-signing-key-previous-file", old],
    );
    assert_eq!(initialize(&rotated, &old_token).await, 200);
    let kids = published_kids(&rotated).await;
    assert_eq!(kids.len(), 2, "{kids:?}");
    assert!(kids.contains(&old_kid), "{kids:?}");
    let (status, refreshed) = token(
        &rotated,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", &client),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
        ],
    )
    .await;
    assert_eq!(status, 200, "{refreshed}");
    let new_token = refreshed["access_token"].as_str().unwrap().to_owned();
    let new_kid = kid(&new_token);
    assert_ne!(new_kid, old_kid);
    assert!(kids.contains(&new_kid), "{kids:?}");
    rotated.stop();

    // retired: the old key's token is refused, the new one's passes
    let retired = replica(free_port(), &issuer, &idp, &redis, new, &[]);
    assert_eq!(published_kids(&retired).await, [new_kid]);
    assert_eq!(initialize(&retired, &old_token).await, 401);
    assert_eq!(initialize(&retired, &new_token).await, 200);
    let _ = std::fs::remove_dir_all(dir);
}
