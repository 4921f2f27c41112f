//! The attack suite: each attack answered 401 with the right `error`, and the server still serving.

use crate::support::*;

struct Suite {
    app: Router,
    rsa: TestKey,
    jwks: Jwks,
    valid: String,
}

impl Suite {
    fn new() -> Suite {
        let rsa = rsa_key("rsa-1", Algorithm::RS256);
        let jwks = Jwks::start(vec![rsa.jwk.clone()]);
        let auth = AnyOf::new()
            .with(ApiKeys::new().key("sk-suite-key", Principal::new("suite")))
            .with(jwt_over(&jwks, fast_policy(Duration::from_secs(60))));
        let app = protected(auth, CredentialSources::new());
        let valid = sign(&rsa, &claims("https://issuer.test", "alice"));
        Suite {
            app,
            rsa,
            jwks,
            valid,
        }
    }

    fn valid(&self) -> String {
        self.valid.clone()
    }

    async fn attack(&self, req: Request<Body>, error: &str, description: &str) {
        let a = send(&self.app, req).await;
        assert_401(&a, error, description);
        let ok = send(&self.app, bearer(&self.valid())).await;
        assert_eq!(ok.status, StatusCode::OK, "still serving: {ok:?}");
        assert_eq!(ok.body["sub"], "alice");
    }
}

#[tokio::test]
async fn attack_alg_none_is_refused() {
    let s = Suite::new();
    let c = claims("https://issuer.test", "mallory");
    for alg in ["none", "None", "NONE"] {
        let token = raw_token(&json!({"alg": alg, "typ": "JWT"}), &c, b"");
        s.attack(bearer(&token), "invalid_token", "algorithm is not allowed")
            .await;
        let token = format!("{}.", token.trim_end_matches('.'));
        s.attack(bearer(&token), "invalid_token", "algorithm is not allowed")
            .await;
    }
}

#[tokio::test]
async fn attack_hs256_signed_with_the_rsa_public_key_is_refused() {
    let s = Suite::new();
    let c = claims("https://issuer.test", "mallory");
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(s.rsa.kid.clone());
    for secret in [
        s.rsa.public_pem.as_bytes().to_vec(),
        s.rsa.jwk.to_string().into_bytes(),
    ] {
        let token = jsonwebtoken::encode(&header, &c, &EncodingKey::from_secret(&secret)).unwrap();
        s.attack(bearer(&token), "invalid_token", "algorithm is not allowed")
            .await;
    }
}

#[tokio::test]
async fn attack_expired_token_is_refused() {
    let s = Suite::new();
    let mut c = claims("https://issuer.test", "mallory");
    c["exp"] = json!(now() - 120);
    s.attack(bearer(&sign(&s.rsa, &c)), "invalid_token", "expired")
        .await;
}

#[tokio::test]
async fn attack_nbf_in_the_future_is_refused() {
    let s = Suite::new();
    let mut c = claims("https://issuer.test", "mallory");
    c["nbf"] = json!(now() + 300);
    s.attack(bearer(&sign(&s.rsa, &c)), "invalid_token", "not valid yet")
        .await;
}

#[tokio::test]
async fn attack_wrong_issuer_is_refused() {
    let s = Suite::new();
    let c = claims("https://evil.test", "mallory");
    s.attack(bearer(&sign(&s.rsa, &c)), "invalid_token", "wrong issuer")
        .await;
}

#[tokio::test]
async fn attack_wrong_audience_is_refused() {
    let s = Suite::new();
    let mut c = claims("https://issuer.test", "mallory");
    c["aud"] = json!("https://other-resource.test/mcp");
    s.attack(
        bearer(&sign(&s.rsa, &c)),
        "invalid_token",
        "another audience",
    )
    .await;
    c.as_object_mut().unwrap().remove("aud");
    s.attack(
        bearer(&sign(&s.rsa, &c)),
        "invalid_token",
        "lacks a required claim",
    )
    .await;
}

#[tokio::test]
async fn attack_unknown_kid_is_refused_and_a_storm_fetches_at_most_once_per_interval() {
    let s = Suite::new();
    let stranger = ec_key("k-stranger");
    let first = send(&s.app, bearer(&s.valid())).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(s.jwks.fetches(), 1);
    // 1,000 tokens with unknown kids, concurrently (the kid is checked before any signature)
    let mut tasks = Vec::new();
    for i in 0..1000 {
        let app = s.app.clone();
        let alg = if i % 2 == 0 { "RS256" } else { "ES256" };
        let token = raw_token(
            &json!({"alg": alg, "typ": "JWT", "kid": format!("unknown-{i}")}),
            &claims("https://issuer.test", "mallory"),
            &[7u8; 64],
        );
        tasks.push(tokio::spawn(
            async move { send(&app, bearer(&token)).await },
        ));
    }
    for t in tasks {
        assert_401(&t.await.unwrap(), "invalid_token", "unknown key");
    }
    assert!(
        s.jwks.fetches() <= 2,
        "1,000 unknown kids caused {} JWKS fetches",
        s.jwks.fetches()
    );
    s.attack(
        bearer(&sign(&stranger, &claims("https://issuer.test", "m"))),
        "invalid_token",
        "unknown key",
    )
    .await;
    assert!(s.jwks.fetches() <= 2);
}

#[tokio::test]
async fn attack_bad_signature_is_refused() {
    let s = Suite::new();
    let token = s.valid();
    let (head, sig) = token.rsplit_once('.').unwrap();
    let mut bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(sig)
        .unwrap();
    bytes[10] ^= 0x55;
    s.attack(
        bearer(&format!("{head}.{}", b64(&bytes))),
        "invalid_token",
        "signature is invalid",
    )
    .await;
    // a valid signature over other claims
    let (h, _, sig) = {
        let mut p = token.split('.');
        (p.next().unwrap(), p.next().unwrap(), p.next().unwrap())
    };
    let forged = format!(
        "{h}.{}.{sig}",
        b64(claims("https://issuer.test", "root").to_string().as_bytes())
    );
    s.attack(bearer(&forged), "invalid_token", "signature is invalid")
        .await;
}

#[tokio::test]
async fn attack_truncated_and_non_base64_tokens_are_refused() {
    let s = Suite::new();
    let token = s.valid();
    // cut inside the payload (two segments), and inside the signature where the base64 length
    // (4n + 1) cannot be valid
    let truncated = &token[..token.find('.').unwrap() + 12];
    s.attack(bearer(truncated), "invalid_token", "malformed")
        .await;
    let sig_at = token.rfind('.').unwrap() + 1;
    let truncated = &token[..sig_at + 41];
    s.attack(bearer(truncated), "invalid_token", "malformed")
        .await;
    let two_parts = token.rsplit_once('.').unwrap().0;
    s.attack(bearer(two_parts), "invalid_token", "malformed")
        .await;
    s.attack(bearer("eyJ!!!.@@@.###"), "invalid_token", "malformed")
        .await;
    s.attack(bearer("a.b.c.d"), "invalid_token", "malformed")
        .await;
    let not_json = format!("{}.{}.{}", b64(b"not json"), b64(b"{}"), b64(b"sig"));
    s.attack(bearer(&not_json), "invalid_token", "malformed")
        .await;
    // an unknown opaque credential
    s.attack(bearer("sk-not-a-key"), "invalid_token", "not recognized")
        .await;
}

#[tokio::test]
async fn attack_64_kib_header_is_refused() {
    let s = Suite::new();
    let huge = format!("eyJ{}", "A".repeat(64 * 1024));
    s.attack(bearer(&huge), "invalid_token", "malformed").await;
    let huge_key = "k".repeat(64 * 1024);
    let req = Request::post("/mcp")
        .header("x-api-key", huge_key)
        .body(Body::empty())
        .unwrap();
    s.attack(req, "invalid_token", "malformed").await;
}

#[tokio::test]
async fn attack_query_token_when_query_tokens_are_off_is_refused() {
    let s = Suite::new();
    for param in ["auth", "apiKey", "api_key", "auth_key", "access_token"] {
        let req = Request::post(format!("/mcp?{param}=sk-suite-key"))
            .body(Body::empty())
            .unwrap();
        s.attack(req, "invalid_request", "query string").await;
        let req = Request::post(format!("/mcp?{param}={}", s.valid()))
            .body(Body::empty())
            .unwrap();
        s.attack(req, "invalid_request", "query string").await;
    }
}

#[tokio::test]
async fn no_credential_gets_a_bare_challenge_and_two_credentials_are_refused() {
    let s = Suite::new();
    let a = send(&s.app, Request::post("/mcp").body(Body::empty()).unwrap()).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        a.challenge.as_deref(),
        Some(format!(r#"Bearer resource_metadata="{MD_URL}""#).as_str())
    );
    let req = Request::post("/mcp")
        .header("authorization", format!("Bearer {}", s.valid()))
        .header("x-api-key", "sk-suite-key")
        .body(Body::empty())
        .unwrap();
    s.attack(req, "invalid_request", "more than one credential")
        .await;
    // a CORS preflight is never challenged
    let preflight = Request::options("/mcp")
        .header("origin", "https://app.test")
        .header("access-control-request-method", "POST")
        .body(Body::empty())
        .unwrap();
    let res = s.app.clone().oneshot(preflight).await.unwrap();
    assert_ne!(res.status(), StatusCode::UNAUTHORIZED);
}
