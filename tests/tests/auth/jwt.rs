//! JWT verification with every algorithm, JWKS caching, rotation, stale keys and OIDC discovery.

use crate::support::*;

#[tokio::test]
async fn jwt_every_algorithm_verifies_from_jwks_pem_and_secret() {
    let keys = [
        rsa_key("rs256", Algorithm::RS256),
        rsa_key("rs384", Algorithm::RS384),
        rsa_key("rs512", Algorithm::RS512),
        rsa_key("ps256", Algorithm::PS256),
        rsa_key("ps384", Algorithm::PS384),
        rsa_key("ps512", Algorithm::PS512),
        ec_key("es256"),
        ed_key("ed"),
    ];
    let jwks = Jwks::start(keys.iter().map(|k| k.jwk.clone()).collect());
    let app = protected(
        jwt_over(&jwks, JwksPolicy::default()),
        CredentialSources::new(),
    );
    for key in &keys {
        let a = send(
            &app,
            bearer(&sign(key, &claims("https://issuer.test", &key.kid))),
        )
        .await;
        assert_eq!(a.status, StatusCode::OK, "{:?}: {a:?}", key.alg);
        assert_eq!(a.body["sub"], key.kid.as_str());
        assert_eq!(a.body["scopes"], json!(["tools:call", "tools:read"]));
    }
    assert_eq!(jwks.fetches(), 1, "one fetch serves every key");

    // PEM public keys, one authenticator per key type
    for key in [&keys[0], &keys[6], &keys[7]] {
        let jwt = JwtAuthenticator::builder()
            .public_key_pem(key.public_pem.as_bytes())
            .audience(AUD)
            .build()
            .unwrap();
        let app = protected(jwt, CredentialSources::new());
        let a = send(&app, bearer(&sign(key, &claims("any", "pem-user")))).await;
        assert_eq!(a.status, StatusCode::OK, "PEM {:?}: {a:?}", key.alg);
    }

    // HMAC: HS256/384/512 with a shared secret
    let jwt = JwtAuthenticator::builder()
        .secret(HMAC_SECRET.as_bytes())
        .audience(AUD)
        .build()
        .unwrap();
    let app = protected(jwt, CredentialSources::new());
    for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
        let token = jsonwebtoken::encode(
            &Header::new(alg),
            &claims("x", "hmac-user"),
            &EncodingKey::from_secret(HMAC_SECRET.as_bytes()),
        )
        .unwrap();
        let a = send(&app, bearer(&token)).await;
        assert_eq!(a.status, StatusCode::OK, "{alg:?}: {a:?}");
    }
}

/// Many requests arriving together before the key set is loaded all wait
/// for the one fetch, instead of the ones that lose the race getting 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_first_requests_arriving_together_share_one_fetch_and_all_pass() {
    let key = rsa_key("rs256", Algorithm::RS256);
    let jwks = Jwks::start(vec![key.jwk.clone()]);
    // a slow key set, so that most requests arrive while the first fetch is
    // in flight
    jwks.delay_ms.store(300, Ordering::SeqCst);
    let app = protected(
        jwt_over(&jwks, JwksPolicy::default()),
        CredentialSources::new(),
    );
    let token = sign(&key, &claims("https://issuer.test", "alice"));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..32 {
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let (app, token) = (app.clone(), token.clone());
        tasks.spawn(async move { send(&app, bearer(&token)).await });
    }
    while let Some(answer) = tasks.join_next().await {
        let a = answer.unwrap();
        assert_eq!(a.status, StatusCode::OK, "{a:?}");
    }
    assert_eq!(jwks.fetches(), 1, "one fetch served all 32 requests");
}

/// A token verified once is reused from the verified-token cache, but never
/// past its `exp` (here with no leeway).
#[tokio::test]
async fn a_reused_verified_token_still_expires_at_its_exp() {
    let key = rsa_key("rs256", Algorithm::RS256);
    let jwks = Jwks::start(vec![key.jwk.clone()]);
    let jwt = JwtAuthenticator::builder()
        .jwks_url(jwks.url())
        .issuer("https://issuer.test")
        .audience(AUD)
        .leeway(Duration::ZERO)
        .build()
        .unwrap();
    let app = protected(jwt, CredentialSources::new());
    let mut c = claims("https://issuer.test", "short-lived");
    c["exp"] = json!(now() + 2);
    let token = sign(&key, &c);
    for _ in 0..3 {
        assert_eq!(send(&app, bearer(&token)).await.status, StatusCode::OK);
    }
    while now() <= c["exp"].as_u64().unwrap() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let a = send(&app, bearer(&token)).await;
    assert_401(&a, "invalid_token", "expired");
}

/// The very token string verified before its key left the key set is
/// refused once the set is fetched again, even though it was cached as
/// verified.
#[tokio::test]
async fn a_reused_verified_token_stops_when_its_key_leaves_the_key_set() {
    let old = rsa_key("rs256", Algorithm::RS256);
    let other = ec_key("other");
    let jwks = Jwks::start(vec![old.jwk.clone()]);
    *jwks.max_age.lock().unwrap() = Some(1);
    let app = protected(
        jwt_over(&jwks, fast_policy(Duration::from_millis(100))),
        CredentialSources::new(),
    );
    let token = sign(&old, &claims("https://issuer.test", "alice"));
    for _ in 0..3 {
        assert_eq!(send(&app, bearer(&token)).await.status, StatusCode::OK);
    }
    assert_eq!(jwks.fetches(), 1);
    *jwks.keys.lock().unwrap() = vec![other.jwk.clone()];
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let a = send(&app, bearer(&token)).await;
    assert_401(&a, "invalid_token", "unknown key");
    assert_eq!(jwks.fetches(), 2);
}

#[tokio::test]
async fn jwt_scopes_come_from_scope_scp_or_a_configured_claim() {
    let key = ec_key("k");
    let jwks = Jwks::start(vec![key.jwk.clone()]);
    let app = protected(
        jwt_over(&jwks, JwksPolicy::default()),
        CredentialSources::new(),
    );
    let mut c = claims("https://issuer.test", "u");
    c.as_object_mut().unwrap().remove("scope");
    c["scp"] = json!(["a", "b"]);
    let a = send(&app, bearer(&sign(&key, &c))).await;
    assert_eq!(a.body["scopes"], json!(["a", "b"]));

    let jwt = JwtAuthenticator::builder()
        .jwks_url(jwks.url())
        .audience(AUD)
        .scope_claim("permissions")
        .build()
        .unwrap();
    let app = protected(jwt, CredentialSources::new());
    c["permissions"] = json!("x y");
    let a = send(&app, bearer(&sign(&key, &c))).await;
    assert_eq!(a.body["scopes"], json!(["x", "y"]));
}

#[tokio::test]
async fn jwks_rotation_old_kid_works_until_removed_and_new_kid_is_picked_up_once() {
    let old = ec_key("old");
    let new = ed_key("new");
    let jwks = Jwks::start(vec![old.jwk.clone()]);
    *jwks.max_age.lock().unwrap() = Some(3);
    let interval = Duration::from_millis(300);
    let app = protected(
        jwt_over(&jwks, fast_policy(interval)),
        CredentialSources::new(),
    );
    let c = claims("https://issuer.test", "rotating");
    assert_eq!(
        send(&app, bearer(&sign(&old, &c))).await.status,
        StatusCode::OK
    );
    assert_eq!(jwks.fetches(), 1);

    // the issuer publishes the new key next to the old one
    jwks.keys.lock().unwrap().push(new.jwk.clone());
    tokio::time::sleep(interval + Duration::from_millis(50)).await;
    for _ in 0..20 {
        assert_eq!(
            send(&app, bearer(&sign(&new, &c))).await.status,
            StatusCode::OK
        );
    }
    assert_eq!(jwks.fetches(), 2, "the new kid is picked up with one fetch");
    assert_eq!(
        send(&app, bearer(&sign(&old, &c))).await.status,
        StatusCode::OK
    );
    assert_eq!(jwks.fetches(), 2, "the old kid still works from the cache");

    // the old key is removed; once the cached set expires (max-age=3) it stops working
    jwks.keys.lock().unwrap().remove(0);
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let a = send(&app, bearer(&sign(&old, &c))).await;
    assert_401(&a, "invalid_token", "unknown key");
    assert_eq!(
        send(&app, bearer(&sign(&new, &c))).await.status,
        StatusCode::OK
    );
    assert_eq!(jwks.fetches(), 3);
}

#[tokio::test]
async fn jwks_old_keys_are_served_while_a_refetch_fails() {
    let key = ec_key("k1");
    let jwks = Jwks::start(vec![key.jwk.clone()]);
    *jwks.max_age.lock().unwrap() = Some(1);
    let app = protected(
        jwt_over(&jwks, fast_policy(Duration::from_millis(1000))),
        CredentialSources::new(),
    );
    let c = claims("https://issuer.test", "u");
    assert_eq!(
        send(&app, bearer(&sign(&key, &c))).await.status,
        StatusCode::OK
    );
    jwks.failing.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    for _ in 0..5 {
        let a = send(&app, bearer(&sign(&key, &c))).await;
        assert_eq!(a.status, StatusCode::OK, "stale keys keep serving: {a:?}");
    }
    assert!(jwks.fetches() >= 2, "a refetch was tried");
    assert!(jwks.fetches() <= 3, "failing refetches are rate limited");
}

#[tokio::test]
async fn jwks_unreachable_before_any_fetch_answers_503_not_401() {
    let key = ec_key("k1");
    let jwks = Jwks::start(vec![key.jwk.clone()]);
    jwks.failing.store(true, Ordering::SeqCst);
    let app = protected(
        jwt_over(&jwks, JwksPolicy::default()),
        CredentialSources::new(),
    );
    let a = send(
        &app,
        bearer(&sign(&key, &claims("https://issuer.test", "u"))),
    )
    .await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{a:?}");
    assert!(a.challenge.is_none());
    assert_eq!(a.body["error"]["code"], -32603);
}

#[tokio::test]
async fn oidc_discovery_finds_the_key_set_and_the_issuer() {
    let key = rsa_key("oidc", Algorithm::PS256);
    let jwks = Jwks::start(vec![key.jwk.clone()]);
    let jwt = JwtAuthenticator::builder()
        .oidc_issuer(&jwks.base)
        .audience(AUD)
        .build()
        .unwrap();
    let app = protected(jwt, CredentialSources::new());
    let ok = send(&app, bearer(&sign(&key, &claims(&jwks.base, "oidc-user")))).await;
    assert_eq!(ok.status, StatusCode::OK, "{ok:?}");
    assert_eq!(ok.body["sub"], "oidc-user");
    // the discovered issuer is the required `iss`
    let bad = send(
        &app,
        bearer(&sign(&key, &claims("https://issuer.test", "x"))),
    )
    .await;
    assert_401(&bad, "invalid_token", "wrong issuer");
}
