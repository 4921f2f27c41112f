//! Authentication and authorization, shown with real parts: keys generated at test time (RSA,
//! P-256, Ed25519, HMAC), real JWKS, OIDC discovery, remote-auth and RFC 7662 introspection
//! servers on loopback HTTP, `McpAuthLayer` in process for the attack suite, and the
//! `mcp-bastion` binary driven by the official Python and TypeScript SDKs for the real-client
//! tests.
//!
//! Needs what `tests/tests/clients.rs` needs (`bash .ci/test` installs it).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::BTreeMap,
    io::Write as _,
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use axum::{
    Json, Router,
    body::Body,
    extract::{Query, State},
    response::IntoResponse,
    routing::{get, post},
};
use base64::Engine as _;
use http::{Request, StatusCode};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use mcp_bastion::{
    auth::{
        AnyOf, ApiKeys, Authenticator, CredentialSources, Introspection, JwksPolicy,
        JwtAuthenticator, McpAuthLayer, RemoteAuth, RemotePolicy,
    },
    principal::Principal,
};
use serde_json::{Value, json};
use tests::{ClientRun, Sdk, Server, Transport, everything_stdio};
use tower::ServiceExt;

const AUD: &str = "https://mcp.test/mcp";
const MD_URL: &str = "https://mcp.test/.well-known/oauth-protected-resource/mcp";
const HMAC_SECRET: &str = "hmac-secret-0123456789-abcdefghijklmnop";

// ---------------------------------------------------------------------------------------------
// keys generated at test time

struct TestKey {
    kid: String,
    alg: Algorithm,
    enc: EncodingKey,
    jwk: Value,
    /// SPKI PEM of the public key.
    public_pem: String,
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn rsa_private() -> &'static rsa::RsaPrivateKey {
    static KEY: OnceLock<rsa::RsaPrivateKey> = OnceLock::new();
    KEY.get_or_init(|| rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 2048).unwrap())
}

fn rsa_key(kid: &str, alg: Algorithm) -> TestKey {
    use rsa::{
        pkcs1::EncodeRsaPrivateKey,
        pkcs8::{EncodePublicKey, LineEnding},
        traits::PublicKeyParts,
    };
    let key = rsa_private();
    let public = key.to_public_key();
    TestKey {
        kid: kid.into(),
        alg,
        enc: EncodingKey::from_rsa_der(key.to_pkcs1_der().unwrap().as_bytes()),
        jwk: json!({"kty": "RSA", "kid": kid, "use": "sig", "alg": format!("{alg:?}"),
            "n": b64(&public.n().to_bytes_be()), "e": b64(&public.e().to_bytes_be())}),
        public_pem: public.to_public_key_pem(LineEnding::LF).unwrap(),
    }
}

fn ec_key(kid: &str) -> TestKey {
    use p256::{
        elliptic_curve::sec1::ToEncodedPoint,
        pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding},
    };
    let secret = p256::SecretKey::random(&mut rand_core::OsRng);
    let point = secret.public_key().to_encoded_point(false);
    TestKey {
        kid: kid.into(),
        alg: Algorithm::ES256,
        enc: EncodingKey::from_ec_der(secret.to_pkcs8_der().unwrap().as_bytes()),
        jwk: json!({"kty": "EC", "kid": kid, "use": "sig", "alg": "ES256", "crv": "P-256",
            "x": b64(point.x().unwrap()), "y": b64(point.y().unwrap())}),
        public_pem: secret
            .public_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap(),
    }
}

fn ed_key(kid: &str) -> TestKey {
    use ed25519_dalek::pkcs8::{EncodePublicKey, spki::der::pem::LineEnding};
    let signing = ed25519_dalek::SigningKey::generate(&mut rand_core::OsRng);
    // PKCS#8 v1 (RFC 8410): the 16-byte prefix and the 32-byte seed
    let mut der = vec![
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    der.extend_from_slice(&signing.to_bytes());
    TestKey {
        kid: kid.into(),
        alg: Algorithm::EdDSA,
        enc: EncodingKey::from_ed_der(&der),
        jwk: json!({"kty": "OKP", "kid": kid, "use": "sig", "alg": "EdDSA", "crv": "Ed25519",
            "x": b64(signing.verifying_key().as_bytes())}),
        public_pem: signing
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap(),
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn claims(iss: &str, sub: &str) -> Value {
    json!({"iss": iss, "sub": sub, "aud": AUD, "exp": now() + 600, "iat": now(),
        "scope": "tools:read tools:call", "jti": format!("jti-{sub}")})
}

fn sign(key: &TestKey, claims: &Value) -> String {
    let mut header = Header::new(key.alg);
    header.kid = Some(key.kid.clone());
    jsonwebtoken::encode(&header, claims, &key.enc).unwrap()
}

fn hs256(claims: &Value, secret: &[u8]) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .unwrap()
}

/// A token with a hand-made header and signature (for `alg: none` and friends).
fn raw_token(header: &Value, claims: &Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes()),
        b64(signature)
    )
}

// ---------------------------------------------------------------------------------------------
// real HTTP servers on loopback, each on its own thread and runtime

fn spawn_http(router: Router) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            axum::serve(listener, router).await.unwrap();
        });
    });
    format!("http://{}", rx.recv().unwrap())
}

/// A JWKS server (with an OIDC discovery document) whose keys and availability the test
/// changes, counting fetches.
#[derive(Clone)]
struct Jwks {
    base: String,
    keys: Arc<Mutex<Vec<Value>>>,
    fetches: Arc<AtomicUsize>,
    failing: Arc<AtomicBool>,
    max_age: Arc<Mutex<Option<u64>>>,
}

impl Jwks {
    fn start(keys: Vec<Value>) -> Jwks {
        let keys = Arc::new(Mutex::new(keys));
        let fetches = Arc::new(AtomicUsize::new(0));
        let failing = Arc::new(AtomicBool::new(false));
        let max_age = Arc::new(Mutex::new(None));
        let base = Arc::new(OnceLock::<String>::new());
        let router = {
            let (keys, fetches, failing, max_age, base) = (
                keys.clone(),
                fetches.clone(),
                failing.clone(),
                max_age.clone(),
                base.clone(),
            );
            let base2 = base.clone();
            Router::new()
                .route(
                    "/jwks.json",
                    get(move || {
                        let (keys, fetches, failing, max_age) = (
                            keys.clone(),
                            fetches.clone(),
                            failing.clone(),
                            max_age.clone(),
                        );
                        async move {
                            fetches.fetch_add(1, Ordering::SeqCst);
                            if failing.load(Ordering::SeqCst) {
                                return StatusCode::INTERNAL_SERVER_ERROR.into_response();
                            }
                            let mut res =
                                Json(json!({"keys": *keys.lock().unwrap()})).into_response();
                            if let Some(age) = *max_age.lock().unwrap() {
                                res.headers_mut().insert(
                                    "cache-control",
                                    format!("public, max-age={age}").parse().unwrap(),
                                );
                            }
                            res
                        }
                    }),
                )
                .route(
                    "/.well-known/openid-configuration",
                    get(move || {
                        let base = base2.get().cloned().unwrap_or_default();
                        async move {
                            Json(
                                json!({"issuer": base, "jwks_uri": format!("{base}/jwks.json"),
                                "authorization_endpoint": format!("{base}/authorize")}),
                            )
                        }
                    }),
                )
        };
        let url = spawn_http(router);
        base.set(url.clone()).unwrap();
        Jwks {
            base: url,
            keys,
            fetches,
            failing,
            max_age,
        }
    }

    fn url(&self) -> String {
        format!("{}/jwks.json", self.base)
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

// ---------------------------------------------------------------------------------------------
// McpAuthLayer in process

#[derive(Debug)]
struct Answer {
    status: StatusCode,
    challenge: Option<String>,
    body: Value,
}

impl Answer {
    fn error(&self) -> Option<String> {
        challenge_param(self.challenge.as_deref()?, "error")
    }
    fn description(&self) -> String {
        self.challenge
            .as_deref()
            .and_then(|c| challenge_param(c, "error_description"))
            .unwrap_or_default()
    }
}

/// A quoted parameter of a challenge (no escapes are used by the values tested here).
fn challenge_param(challenge: &str, name: &str) -> Option<String> {
    let at = challenge.find(&format!("{name}=\""))? + name.len() + 2;
    let end = challenge[at..].find('"')?;
    Some(challenge[at..at + end].to_owned())
}

fn protected(auth: impl Authenticator, sources: CredentialSources) -> Router {
    Router::new()
        .route(
            "/mcp",
            post(|p: Principal| async move {
                Json(json!({"sub": p.subject(), "scopes": p.scopes(), "env": p.env()}))
            }),
        )
        .layer(
            McpAuthLayer::new(auth)
                .credentials(sources)
                .resource_metadata(MD_URL),
        )
}

async fn send(app: &Router, req: Request<Body>) -> Answer {
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let challenge = res
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .unwrap();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Answer {
        status,
        challenge,
        body,
    }
}

fn bearer(token: &str) -> Request<Body> {
    Request::post("/mcp")
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap()
}

fn jwt_over(jwks: &Jwks, policy: JwksPolicy) -> JwtAuthenticator {
    JwtAuthenticator::builder()
        .jwks_url(jwks.url())
        .issuer("https://issuer.test")
        .audience(AUD)
        .leeway(Duration::from_secs(5))
        .jwks_policy(policy)
        .build()
        .unwrap()
}

fn fast_policy(interval: Duration) -> JwksPolicy {
    JwksPolicy {
        min_refetch_interval: interval,
        ..JwksPolicy::default()
    }
}

fn assert_401(a: &Answer, error: &str, description: &str) {
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{a:?}");
    let c = a
        .challenge
        .as_deref()
        .expect("a WWW-Authenticate challenge");
    assert!(c.starts_with("Bearer "), "{c}");
    assert_eq!(
        challenge_param(c, "resource_metadata").as_deref(),
        Some(MD_URL),
        "{c}"
    );
    assert_eq!(a.error().as_deref(), Some(error), "{c}");
    assert!(
        a.description().contains(description),
        "want {description:?} in {c}"
    );
    assert_eq!(a.body["error"]["code"], -32001, "{:?}", a.body);
    assert_eq!(a.body["jsonrpc"], "2.0");
}

// ---------------------------------------------------------------------------------------------
// JWT: every algorithm, keys from PEM, a secret and a JWKS URL

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

// ---------------------------------------------------------------------------------------------
// the attack suite: each answered 401 with the right error, and the server still serving

struct Suite {
    app: Router,
    rsa: TestKey,
    jwks: Jwks,
}

impl Suite {
    fn new() -> Suite {
        let rsa = rsa_key("rsa-1", Algorithm::RS256);
        let jwks = Jwks::start(vec![rsa.jwk.clone()]);
        let auth = AnyOf::new()
            .with(ApiKeys::new().key("sk-suite-key", Principal::new("suite")))
            .with(jwt_over(&jwks, fast_policy(Duration::from_secs(60))));
        let app = protected(auth, CredentialSources::new());
        Suite { app, rsa, jwks }
    }

    fn valid(&self) -> String {
        sign(&self.rsa, &claims("https://issuer.test", "alice"))
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
    let truncated = &token[..token.len() / 2];
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

// ---------------------------------------------------------------------------------------------
// JWKS caching, rotation, stale-on-error, OIDC discovery

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
        jwt_over(&jwks, fast_policy(Duration::from_millis(200))),
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

// ---------------------------------------------------------------------------------------------
// API keys, query parameters

#[tokio::test]
async fn api_keys_from_bearer_header_and_enabled_query_params() {
    let keys = ApiKeys::new().key(
        "sk-alice-123",
        Principal::new("alice")
            .with_scopes(["tools:read"])
            .with_env([("TENANT", "acme")]),
    );
    let app = protected(
        keys,
        CredentialSources::new().query_params(["auth", "apiKey"]),
    );
    let a = send(&app, bearer("sk-alice-123")).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body["sub"], "alice");
    assert_eq!(a.body["env"]["TENANT"], "acme");
    let req = Request::post("/mcp")
        .header("x-api-key", "sk-alice-123")
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&app, req).await.status, StatusCode::OK);
    for q in [
        "auth=sk-alice-123",
        "apiKey=sk-alice-123",
        "session_id=x&auth=sk-alice-123",
    ] {
        let req = Request::post(format!("/mcp?{q}"))
            .body(Body::empty())
            .unwrap();
        assert_eq!(send(&app, req).await.status, StatusCode::OK, "{q}");
    }
    let req = Request::post("/mcp?auth=sk-wrong")
        .body(Body::empty())
        .unwrap();
    let a = send(&app, req).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.error().as_deref(), Some("invalid_token"));
    // a disabled name is still refused rather than ignored
    let req = Request::post("/mcp?api_key=sk-alice-123")
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        send(&app, req).await.error().as_deref(),
        Some("invalid_request")
    );
}

#[tokio::test]
async fn api_keys_file_holds_digests_subjects_scopes_and_env() {
    let dir = std::env::temp_dir().join(format!("bastion-keys-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("keys.json");
    let digest: String = {
        use sha2_hex::hex_sha256;
        hex_sha256("sk-by-digest")
    };
    std::fs::write(
        &path,
        json!([
            {"key": "sk-file-1", "subject": "one", "scopes": ["tools:admin"]},
            {"sha256": digest, "subject": "two", "env": {"GH_TOKEN": "t"}}
        ])
        .to_string(),
    )
    .unwrap();
    let keys = ApiKeys::new().from_file(&path).unwrap();
    let app = protected(keys, CredentialSources::new());
    let a = send(&app, bearer("sk-file-1")).await;
    assert_eq!(
        (a.body["sub"].clone(), a.body["scopes"].clone()),
        (json!("one"), json!(["tools:admin"]))
    );
    let a = send(&app, bearer("sk-by-digest")).await;
    assert_eq!(a.body["sub"], "two");
    assert_eq!(a.body["env"]["GH_TOKEN"], "t");
    std::fs::write(&path, r#"[{"subject": "no key"}]"#).unwrap();
    let err = ApiKeys::new().from_file(&path).unwrap_err().to_string();
    assert!(err.contains("entry 0"), "{err}");
}

mod sha2_hex {
    pub fn hex_sha256(s: &str) -> String {
        use sha2::{Digest, Sha256};
        Sha256::digest(s.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// remote auth and introspection

#[derive(Clone, Default)]
struct Calls(Arc<AtomicUsize>);

fn remote_auth_server(calls: Calls) -> String {
    spawn_http(Router::new().route(
        "/check",
        get(
            |State(calls): State<Calls>, Query(q): Query<BTreeMap<String, String>>| async move {
                calls.0.fetch_add(1, Ordering::SeqCst);
                match q.get("apiKey").map(String::as_str) {
                    Some("rk-valid") => Json(json!({"valid": true, "userId": "remote-user",
                        "permissions": ["tools:read", "tools:admin"], "env": {"GITHUB_TOKEN": "ghp_remote"}})),
                    _ => Json(json!({"valid": false})),
                }
            },
        ),
    )
    .with_state(calls))
}

fn introspection_server(calls: Calls) -> String {
    spawn_http(
        Router::new()
            .route(
                "/introspect",
                post(
                    |State(calls): State<Calls>, body: String| async move {
                        calls.0.fetch_add(1, Ordering::SeqCst);
                        let form: BTreeMap<String, String> =
                            url_form(&body);
                        let token = form.get("token").cloned().unwrap_or_default();
                        let exp = now() + 3600;
                        Json(match token.as_str() {
                            "at-active" => json!({"active": true, "sub": "intro-user", "scope": "tools:read", "aud": AUD, "exp": exp}),
                            "at-short" => {
                                static SHORT_EXP: OnceLock<u64> = OnceLock::new();
                                let exp = *SHORT_EXP.get_or_init(|| now() + 1);
                                json!({"active": true, "sub": "short", "aud": [AUD], "exp": exp})
                            }
                            "at-other-aud" => json!({"active": true, "sub": "x", "aud": "https://elsewhere.test", "exp": exp}),
                            _ => json!({"active": false}),
                        })
                    },
                ),
            )
            .with_state(calls),
    )
}

fn url_form(body: &str) -> BTreeMap<String, String> {
    body.split('&')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.replace("%2F", "/").replace("%3A", ":")))
        .collect()
}

fn closed_port_url(path: &str) -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    format!("http://{addr}{path}")
}

#[tokio::test]
async fn remote_auth_contract_gives_principal_scopes_env_and_is_cached() {
    let calls = Calls::default();
    let url = format!("{}/check", remote_auth_server(calls.clone()));
    let app = protected(
        RemoteAuth::new(url, RemotePolicy::default()),
        CredentialSources::new(),
    );
    for _ in 0..5 {
        let a = send(&app, bearer("rk-valid")).await;
        assert_eq!(a.status, StatusCode::OK, "{a:?}");
        assert_eq!(a.body["sub"], "remote-user");
        assert_eq!(a.body["scopes"], json!(["tools:admin", "tools:read"]));
        assert_eq!(a.body["env"]["GITHUB_TOKEN"], "ghp_remote");
    }
    assert_eq!(
        calls.0.load(Ordering::SeqCst),
        1,
        "accepted keys are cached"
    );
    let a = send(&app, bearer("rk-invalid")).await;
    assert_401(&a, "invalid_token", "rejected by the authorization server");
}

#[tokio::test]
async fn remote_auth_down_answers_503_never_401_never_a_pass() {
    let app = protected(
        RemoteAuth::new(
            closed_port_url("/check"),
            RemotePolicy {
                timeout: Duration::from_secs(2),
                ..RemotePolicy::default()
            },
        ),
        CredentialSources::new(),
    );
    let a = send(&app, bearer("rk-valid")).await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{a:?}");
    assert!(a.challenge.is_none());
    assert!(
        a.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unavailable"),
        "{:?}",
        a.body
    );
}

#[tokio::test]
async fn introspection_checks_active_audience_and_caches_within_exp() {
    let calls = Calls::default();
    let url = format!("{}/introspect", introspection_server(calls.clone()));
    let app = protected(
        Introspection::new(url, RemotePolicy::default()).audience(AUD),
        CredentialSources::new(),
    );
    for _ in 0..3 {
        let a = send(&app, bearer("at-active")).await;
        assert_eq!(a.status, StatusCode::OK, "{a:?}");
        assert_eq!(a.body["sub"], "intro-user");
        assert_eq!(a.body["scopes"], json!(["tools:read"]));
    }
    assert_eq!(calls.0.load(Ordering::SeqCst), 1);
    assert_401(
        &send(&app, bearer("at-revoked")).await,
        "invalid_token",
        "rejected",
    );
    assert_401(
        &send(&app, bearer("at-other-aud")).await,
        "invalid_token",
        "another audience",
    );
    // cached no longer than the token's own expiry
    assert_eq!(send(&app, bearer("at-short")).await.status, StatusCode::OK);
    let before = calls.0.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let a = send(&app, bearer("at-short")).await;
    assert_eq!(
        calls.0.load(Ordering::SeqCst),
        before + 1,
        "re-introspected after exp"
    );
    assert_401(&a, "invalid_token", "expired");
}

#[tokio::test]
async fn introspection_down_answers_503() {
    let app = protected(
        Introspection::new(closed_port_url("/introspect"), RemotePolicy::default()),
        CredentialSources::new(),
    );
    let a = send(&app, bearer("at-active")).await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{a:?}");
}

// ---------------------------------------------------------------------------------------------
// secrets never logged (in process, TRACE level)

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn secrets_never_appear_in_trace_output_of_the_auth_suite() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut secrets: Vec<String> = vec![HMAC_SECRET.into(), "sk-log-key".into(), "rk-valid".into()];
    rt.block_on(async {
        let rsa = rsa_key("log-rsa", Algorithm::RS256);
        let jwks = Jwks::start(vec![rsa.jwk.clone()]);
        let remote = format!("{}/check", remote_auth_server(Calls::default()));
        let intro = format!("{}/introspect", introspection_server(Calls::default()));
        let auth = AnyOf::new()
            .with(ApiKeys::new().key("sk-log-key", Principal::new("k")))
            .with(jwt_over(&jwks, JwksPolicy::default()))
            .with(RemoteAuth::new(remote, RemotePolicy::default()))
            .with(Introspection::new(intro, RemotePolicy::default()));
        let app = protected(auth, CredentialSources::new().query_params(["auth"]));
        let good = sign(&rsa, &claims("https://issuer.test", "alice"));
        let mut expired = claims("https://issuer.test", "alice");
        expired["exp"] = json!(now() - 1000);
        let expired = sign(&rsa, &expired);
        let hmac = hs256(&claims("https://issuer.test", "x"), HMAC_SECRET.as_bytes());
        let tokens = [
            good.clone(),
            expired.clone(),
            hmac.clone(),
            "at-active".into(),
        ];
        for t in &tokens {
            send(&app, bearer(t)).await;
            secrets.push(t.clone());
            secrets.push(t.rsplit('.').next().unwrap().to_owned());
        }
        send(&app, bearer("sk-log-key")).await;
        send(&app, bearer("rk-valid")).await;
        let req = Request::post("/mcp?auth=sk-log-key")
            .body(Body::empty())
            .unwrap();
        assert_eq!(send(&app, req).await.status, StatusCode::OK);
        let req = Request::post(format!("/mcp?api_key={good}"))
            .body(Body::empty())
            .unwrap();
        send(&app, req).await;
        // unavailable remote, with the key in its URL
        let down = protected(
            RemoteAuth::new(closed_port_url("/check"), RemotePolicy::default()),
            CredentialSources::new(),
        );
        assert_eq!(
            send(&down, bearer("rk-valid")).await.status,
            StatusCode::SERVICE_UNAVAILABLE
        );
        // Debug output of the configured types
        let dbg = format!(
            "{:?} {:?}",
            ApiKeys::new().key("sk-log-key", Principal::new("k")),
            JwtAuthenticator::builder().secret(HMAC_SECRET.as_bytes())
        );
        tracing::info!("{dbg}");
    });
    drop(_guard);
    let log = String::from_utf8_lossy(&captured.0.lock().unwrap()).into_owned();
    assert!(
        log.contains("authenticated"),
        "the capture saw the auth suite: {log}"
    );
    for secret in &secrets {
        assert!(
            !log.contains(secret.as_str()),
            "a secret ({}…) appears in the TRACE output",
            &secret[..secret.len().min(6)]
        );
    }
    let _ = std::io::stderr().flush();
}

// ---------------------------------------------------------------------------------------------
// through the binary, with the real Python and TypeScript SDKs

fn bastion(extra: &[&str]) -> Server {
    let mut args = vec!["--session-mode", "per-session"];
    args.extend_from_slice(extra);
    Server::bastion(&args, &everything_stdio())
}

fn assert_full(summary: &Value) {
    for step in [
        "initialize",
        "tools/list",
        "echo",
        "progress",
        "resource",
        "prompt",
    ] {
        assert!(
            summary["steps"][step].is_object() || summary["steps"][step] == "ok",
            "step {step} not done: {summary}"
        );
        assert!(
            summary["steps"][step]["skipped"].is_null(),
            "{step} skipped: {summary}"
        );
    }
    assert_eq!(
        summary["steps"]["session_end"]["after_end_status"], 404,
        "{summary}"
    );
}

/// The short scenario: initialize, three concurrent echo calls, session end (checked 404 after).
fn assert_echo(summary: &Value) {
    assert_eq!(summary["steps"]["echo"]["calls"], 3, "{summary}");
    assert_eq!(
        summary["steps"]["session_end"]["after_end_status"], 404,
        "{summary}"
    );
}

fn echo_with_headers(sdk: Sdk, transport: Transport, server: &Server, headers: &[&str]) -> Value {
    let mut run = ClientRun::against(sdk, transport, server, "").scenario("echo");
    for h in headers {
        run = run.arg("--header").arg(*h);
    }
    run.run_ok(server)
}

fn client_with_headers(sdk: Sdk, transport: Transport, server: &Server, headers: &[&str]) -> Value {
    let mut run = ClientRun::against(sdk, transport, server, "");
    for h in headers {
        run = run.arg("--header").arg(*h);
    }
    run.run_ok(server)
}

const KEY: &str = "sk-client-0f1e2d3c4b5a";

#[test]
fn python_streamable_with_authorization_header_full_scenario() {
    let server = bastion(&["--api-key", KEY]);
    let s = client_with_headers(
        Sdk::Python,
        Transport::Streamable,
        &server,
        &[&format!("Authorization: Bearer {KEY}")],
    );
    assert_full(&s);
}

#[test]
fn python_sse_with_api_key_header_echo_scenario() {
    let server = bastion(&["--api-key", KEY]);
    let s = echo_with_headers(
        Sdk::Python,
        Transport::Sse,
        &server,
        &[&format!("X-API-Key: {KEY}")],
    );
    assert_echo(&s);
}

#[test]
fn typescript_streamable_with_authorization_header_full_scenario() {
    let server = bastion(&["--api-key", KEY]);
    let s = client_with_headers(
        Sdk::TypeScript,
        Transport::Streamable,
        &server,
        &[&format!("Authorization: Bearer {KEY}")],
    );
    assert_full(&s);
}

#[test]
fn typescript_sse_with_authorization_header_echo_scenario() {
    let server = bastion(&["--api-key", KEY]);
    let s = echo_with_headers(
        Sdk::TypeScript,
        Transport::Sse,
        &server,
        &[&format!("Authorization: Bearer {KEY}")],
    );
    assert_echo(&s);
}

fn sse_url_with_auth_query(sdk: Sdk) {
    let server = bastion(&["--api-key", KEY, "--api-key-query-param", "auth"]);
    let url = server.url(&format!("/sse?auth={KEY}"));
    let s = ClientRun::new(sdk, Transport::Sse, url)
        .strict_session_end(true)
        .scenario("echo")
        .run_ok(&server);
    assert_echo(&s);
    assert!(!server.logs().contains(KEY), "the key must not be logged");
}

#[test]
fn python_sse_url_with_auth_query_parameter_echo_scenario() {
    sse_url_with_auth_query(Sdk::Python);
}

#[test]
fn typescript_sse_url_with_auth_query_parameter_echo_scenario() {
    sse_url_with_auth_query(Sdk::TypeScript);
}

#[test]
fn clients_without_credentials_fail_and_the_binary_challenges() {
    let server = bastion(&["--api-key", KEY]);
    for sdk in [Sdk::Python, Sdk::TypeScript] {
        let out = ClientRun::against(sdk, Transport::Streamable, &server, "").run();
        assert!(
            !out.success(),
            "{sdk:?} without a key must fail: {}",
            out.stdout
        );
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let http = reqwest::Client::new();
        let res = http.post(server.url("/mcp")).send().await.unwrap();
        assert_eq!(res.status(), 401);
        let host = server.base_url().trim_start_matches("http://");
        assert_eq!(
            res.headers()["www-authenticate"],
            format!(r#"Bearer resource_metadata="http://{host}/.well-known/oauth-protected-resource/mcp""#).as_str()
        );
        // never behind auth: health, readiness, metadata
        for path in ["/healthz", "/readyz", "/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp"] {
            let res = http.get(server.url(path)).send().await.unwrap();
            assert_eq!(res.status(), 200, "{path}");
        }
        let md: Value = http
            .get(server.url("/.well-known/oauth-protected-resource/mcp"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(md["resource"], format!("http://{host}/mcp"));
        assert_eq!(md["bearer_methods_supported"], json!(["header"]));
    });
}

#[test]
fn jwt_from_jwks_through_the_binary_python_streamable_and_typescript_sse() {
    let key = rsa_key("bin-rsa", Algorithm::RS256);
    let jwks = Jwks::start(vec![key.jwk.clone()]);
    let server = bastion(&[
        "--jwt-jwks-url",
        &jwks.url(),
        "--jwt-issuer",
        "https://issuer.test",
        "--jwt-audience",
        AUD,
        "--resource-url",
        AUD,
        "--authorization-server",
        "https://issuer.test",
    ]);
    let token = sign(&key, &claims("https://issuer.test", "jwt-user"));
    let header = format!("Authorization: Bearer {token}");
    assert_full(&client_with_headers(
        Sdk::Python,
        Transport::Streamable,
        &server,
        &[&header],
    ));
    assert_full(&client_with_headers(
        Sdk::TypeScript,
        Transport::Sse,
        &server,
        &[&header],
    ));
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let http = reqwest::Client::new();
        let mut expired = claims("https://issuer.test", "jwt-user");
        expired["exp"] = json!(now() - 1000);
        let res = http
            .post(server.url("/mcp"))
            .bearer_auth(sign(&key, &expired))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401);
        let c = res.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            c.contains(r#"error="invalid_token""#) && c.contains("expired"),
            "{c}"
        );
        assert!(
            c.contains(&format!(r#"resource_metadata="{MD_URL}""#)),
            "{c}"
        );
        let md: Value = http
            .get(server.url("/.well-known/oauth-protected-resource/mcp"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(md["resource"], AUD);
        assert_eq!(md["authorization_servers"], json!(["https://issuer.test"]));
    });
    assert!(!server.logs().contains(&token));
}

// ---------------------------------------------------------------------------------------------
// per-tool scopes and the principal's environment, through the binary with the Python SDK

fn py_tool(server: &Server, transport: Transport, key: &str, call: Option<(&str, Value)>) -> Value {
    let path = match transport {
        Transport::Streamable => "/mcp",
        Transport::Sse => "/sse",
    };
    let mut cmd =
        std::process::Command::new(std::env::var("PYTHON").unwrap_or_else(|_| "python3".into()));
    cmd.arg(tests::clients_dir().join("py_tool.py"))
        .args([
            "--url",
            &server.url(path),
            "--transport",
            transport.as_arg(),
        ])
        .args(["--header", &format!("X-API-Key: {key}")]);
    if let Some((tool, args)) = call {
        cmd.args(["--call", tool, "--arguments", &args.to_string()]);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "py_tool failed: {}\n{stdout}\n--- server ---\n{}",
        String::from_utf8_lossy(&out.stderr),
        server.logs()
    );
    serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap()
}

fn keys_file(name: &str, entries: Value) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("bastion-auth-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("keys.json");
    std::fs::write(&path, entries.to_string()).unwrap();
    path
}

fn scope_server(json_response: bool) -> Server {
    let file = keys_file(
        &format!("scopes-{json_response}"),
        json!([
            {"key": "sk-user", "subject": "user", "scopes": ["tools:read"]},
            {"key": "sk-admin", "subject": "admin", "scopes": ["tools:read", "tools:admin"]}
        ]),
    );
    let mut args = vec![
        "--api-keys-file".to_owned(),
        file.display().to_string(),
        "--tool-scope".into(),
        "get-sum=tools:admin".into(),
    ];
    if json_response {
        args.push("--json-response".into());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    bastion(&args)
}

fn admin_tool_needs_tools_admin(json_response: bool, transport: Transport) {
    let server = scope_server(json_response);
    let sum = Some(("get-sum", json!({"a": 1, "b": 2})));
    let user = py_tool(&server, transport, "sk-user", sum.clone());
    let tools: Vec<&str> = user["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(tools.contains(&"echo"), "{user}");
    assert!(
        !tools.contains(&"get-sum"),
        "a caller without tools:admin must not see it: {user}"
    );
    assert!(
        user["call"]["error"].is_string(),
        "the call must be refused: {user}"
    );
    let admin = py_tool(&server, transport, "sk-admin", sum);
    let tools: Vec<&str> = admin["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(tools.contains(&"get-sum"), "{admin}");
    assert_eq!(admin["call"]["is_error"], false, "{admin}");
    assert!(
        admin["call"]["text"].as_str().unwrap().contains('3'),
        "{admin}"
    );
}

#[test]
fn scope_admin_tool_python_streamable_sse_responses() {
    admin_tool_needs_tools_admin(false, Transport::Streamable);
}

#[test]
fn scope_admin_tool_python_streamable_json_responses() {
    admin_tool_needs_tools_admin(true, Transport::Streamable);
}

#[test]
fn scope_admin_tool_python_legacy_sse() {
    admin_tool_needs_tools_admin(false, Transport::Sse);
}

#[test]
fn scope_refusal_is_an_http_403_insufficient_scope_challenge_through_the_binary() {
    let server = scope_server(true);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let http = reqwest::Client::new();
        let post = |body: Value, sid: Option<String>| {
            let mut req = http
                .post(server.url("/mcp"))
                .header("x-api-key", "sk-user")
                .header("accept", "application/json, text/event-stream")
                .json(&body);
            if let Some(sid) = sid {
                req = req
                    .header("mcp-session-id", sid)
                    .header("mcp-protocol-version", "2025-06-18");
            }
            req.send()
        };
        let init = post(
            json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": "2025-06-18", "capabilities": {},
                "clientInfo": {"name": "raw", "version": "0"}}}),
            None,
        )
        .await
        .unwrap();
        assert_eq!(init.status(), 200);
        let sid = init.headers()["mcp-session-id"].to_str().unwrap().to_owned();
        let res = post(
            json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "get-sum", "arguments": {"a": 1, "b": 2}}}),
            Some(sid.clone()),
        )
        .await
        .unwrap();
        assert_eq!(res.status(), 403);
        let c = res.headers()["www-authenticate"].to_str().unwrap().to_owned();
        assert!(c.starts_with("Bearer "), "{c}");
        assert!(c.contains(r#"error="insufficient_scope""#), "{c}");
        assert!(c.contains(r#"scope="tools:admin""#), "{c}");
        assert!(c.contains("resource_metadata="), "{c}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["id"], 7, "the JSON-RPC error echoes the request id: {body}");
        assert_eq!(body["error"]["code"], -32001);
        // the session still works for what the caller may do
        let res = post(
            json!({"jsonrpc": "2.0", "id": 8, "method": "tools/call", "params": {"name": "echo", "arguments": {"message": "still here"}}}),
            Some(sid),
        )
        .await
        .unwrap();
        assert_eq!(res.status(), 200);
        assert!(res.text().await.unwrap().contains("still here"));
    });
}

#[test]
fn principal_env_reaches_each_users_per_session_child() {
    let file = keys_file(
        "env",
        json!([
            {"key": "sk-alice", "subject": "alice", "env": {"GITHUB_TOKEN": "ghp_alice_token"}},
            {"key": "sk-bob", "subject": "bob", "env": {"GITHUB_TOKEN": "ghp_bob_token"}}
        ]),
    );
    let file = file.display().to_string();
    let server = bastion(&[
        "--api-keys-file",
        &file,
        "--principal-env",
        "MCP_USER=subject",
        "--principal-env",
        "GITHUB_TOKEN=env:GITHUB_TOKEN",
    ]);
    for (key, user, token, other, transport) in [
        (
            "sk-alice",
            "alice",
            "ghp_alice_token",
            "ghp_bob_token",
            Transport::Streamable,
        ),
        (
            "sk-bob",
            "bob",
            "ghp_bob_token",
            "ghp_alice_token",
            Transport::Sse,
        ),
    ] {
        {
            let out = py_tool(&server, transport, key, Some(("get-env", json!({}))));
            let text = out["call"]["text"].as_str().unwrap_or_default();
            let env: Value = serde_json::from_str(text).unwrap_or(Value::Null);
            assert_eq!(env["MCP_USER"], user, "{transport:?}: {out}");
            assert_eq!(env["GITHUB_TOKEN"], token, "{transport:?}: {out}");
            assert!(!text.contains(other));
        }
    }
}

#[test]
fn principal_env_refuses_reserved_names_at_startup() {
    let out = std::process::Command::new(tests::bastion_bin())
        .args([
            "--api-key",
            KEY,
            "--principal-env",
            "LD_PRELOAD=subject",
            "--",
            "true",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("LD_PRELOAD"), "{stderr}");
}

#[test]
fn binary_trace_logs_never_show_keys_or_tokens() {
    let key = ec_key("trace");
    let jwks = Jwks::start(vec![key.jwk.clone()]);
    let token = sign(&key, &claims("https://issuer.test", "tracer"));
    let mut expired = claims("https://issuer.test", "tracer");
    expired["exp"] = json!(now() - 1000);
    let expired = sign(&key, &expired);
    let server = Server::bastion_with_env(
        &[
            "--session-mode",
            "per-session",
            "--api-key",
            KEY,
            "--api-key-query-param",
            "auth",
            "--jwt-jwks-url",
            &jwks.url(),
            "--jwt-audience",
            AUD,
        ],
        &everything_stdio(),
        &[("MCP_BASTION_LOG", "trace")],
    );
    let s = ClientRun::new(
        Sdk::Python,
        Transport::Sse,
        server.url(&format!("/sse?auth={KEY}")),
    )
    .scenario("echo")
    .run_ok(&server);
    assert_eq!(s["ok"], true);
    let s = echo_with_headers(
        Sdk::TypeScript,
        Transport::Streamable,
        &server,
        &[&format!("Authorization: Bearer {token}")],
    );
    assert_echo(&s);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let http = reqwest::Client::new();
        for bad in [expired.as_str(), "sk-wrong-key", &token[..40]] {
            let res = http
                .post(server.url("/mcp"))
                .bearer_auth(bad)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 401);
        }
        let res = http
            .post(server.url(&format!("/mcp?apiKey={token}")))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401);
    });
    let logs = server.logs();
    assert!(
        logs.lines().count() < 2000,
        "the log was truncated: cannot check it all"
    );
    assert!(
        logs.contains("TRACE") || logs.contains("DEBUG"),
        "logs at TRACE level: {logs}"
    );
    for secret in [
        KEY,
        token.as_str(),
        expired.as_str(),
        token.rsplit('.').next().unwrap(),
    ] {
        assert!(
            !logs.contains(secret),
            "a secret ({}…) appears in the log",
            &secret[..6]
        );
    }
}

// ---------------------------------------------------------------------------------------------
// the example: an rmcp tool greets the authenticated subject

#[test]
fn example_auth_rmcp_tool_greets_the_authenticated_subject() {
    let bin = tests::example_bin("auth_rmcp");
    let server = Server::spawn_with_env(
        "auth_rmcp",
        &bin,
        &["--listen".into(), "127.0.0.1:0".into()],
        &[
            ("MCP_API_KEYS", "sk-example-user"),
            ("MCP_ADMIN_KEY", "sk-example-admin"),
        ],
    );
    let user = py_tool(
        &server,
        Transport::Sse,
        "sk-example-user",
        Some(("whoami", json!({}))),
    );
    assert_eq!(user["call"]["text"], "Hello, user-1!", "{user}");
    assert_eq!(user["tools"], json!(["whoami"]), "{user}");
    let admin = py_tool(
        &server,
        Transport::Streamable,
        "sk-example-admin",
        Some(("whoami", json!({}))),
    );
    assert_eq!(admin["call"]["text"], "Hello, admin!", "{admin}");
    let mut tools: Vec<&str> = admin["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    tools.sort_unstable();
    assert_eq!(tools, ["shutdown_all", "whoami"], "{admin}");
}
