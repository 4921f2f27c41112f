//! Bounds on open registration through the binary: `--oauth-dcr-rate-limit` answers `429` with
//! an RFC 6749-shaped error and `Retry-After` past the limit, per client IP, counted once for
//! every replica of one `--redis-url` (and `503` while that Redis is down with
//! `--redis-failure closed`); `--oauth-dcr-unused-ttl` drops a registered client that never
//! completed a login, while one that did keeps working.

use std::time::Duration;

use serde_json::Value;
use tests::{
    everything_stdio,
    oauth::{Idp, OAuthBastion, REDIRECT, free_port},
    redis::Redis,
};

use crate::replicas::{register_and_log_in, replica, token};

async fn register(url: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(url)
        .json(
            &serde_json::json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"}),
        )
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn registrations_over_the_limit_are_refused_with_429_and_retry_after() {
    let redis = Redis::start();
    let port = free_port();
    let issuer = format!("http://127.0.0.1:{port}");
    let idp = Idp::start(&format!("{issuer}/oauth/callback"));
    let key = std::env::temp_dir().join(format!("oauth-binary-dcr-limit-{port}.pem"));
    let server = replica(
        port,
        &issuer,
        &idp,
        &redis,
        key.to_str().unwrap(),
        &["--oauth-dcr-rate-limit", "3/h"],
    );
    let url = server.url("/oauth/register");
    for _ in 0..3 {
        assert_eq!(register(&url).await.status(), 201);
    }
    assert_refused(register(&url).await, 429).await;

    // counted per client IP: another address still registers
    let other = reqwest::Client::builder()
        .local_address("127.0.0.2".parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap()
        .post(&url)
        .json(
            &serde_json::json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 201);
}

/// Asserts a refusal of the registration limit: `status`, RFC 6749's `temporarily_unavailable`
/// and a `Retry-After` of at least a second.
async fn assert_refused(res: reqwest::Response, status: u16) -> u64 {
    assert_eq!(res.status(), status);
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable", "{body}");
    assert!(body["error_description"].is_string(), "{body}");
    retry
}

#[tokio::test(flavor = "multi_thread")]
async fn two_replicas_sharing_redis_count_registrations_together() {
    let redis = Redis::start();
    let (port_a, port_b) = (free_port(), free_port());
    let issuer = format!("http://127.0.0.1:{port_a}");
    let idp = Idp::start(&format!("{issuer}/oauth/callback"));
    let dir = std::env::temp_dir().join(format!("oauth-binary-dcr-replicas-{port_a}"));
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("signing.pem");
    let key = key.to_str().unwrap();
    let limit = ["--oauth-dcr-rate-limit", "2/h"];
    // A creates the key file, B reads it; both count in the Redis of --redis-url
    let a = replica(port_a, &issuer, &idp, &redis, key, &limit);
    let b = replica(port_b, &issuer, &idp, &redis, key, &limit);
    let (url_a, url_b) = (a.url("/oauth/register"), b.url("/oauth/register"));

    // alternating: each replica has seen one registration, the two together two
    assert_eq!(register(&url_a).await.status(), 201);
    assert_eq!(register(&url_b).await.status(), 201);
    let retry = assert_refused(register(&url_a).await, 429).await;
    assert!(retry <= 3600, "{retry}");
    assert_refused(register(&url_b).await, 429).await;

    // counted in Redis, not in each replica's memory as while it is down
    let logs = a.transcript() + &b.transcript();
    assert!(
        !logs.contains("store unreachable"),
        "Redis answered every registration"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn registrations_fail_closed_while_the_shared_redis_is_down() {
    const PASSWORD: &str = "dcr-redis-password-5d1e";
    let mut redis = Redis::start_with_password(PASSWORD);
    let url = redis.url_with_password(PASSWORD);
    let server = OAuthBastion::start(
        &[
            "--redis-url",
            &url,
            "--redis-failure",
            "closed",
            "--oauth-dcr-rate-limit",
            "5/h",
        ],
        &[("MCP_BASTION_LOG", "debug")],
        "",
        Some(&everything_stdio()),
    );
    let register_url = server.bastion.url("/oauth/register");
    assert_eq!(register(&register_url).await.status(), 201);

    redis.stop();
    assert_refused(register(&register_url).await, 503).await;

    let logs = server.bastion.transcript();
    assert!(
        logs.contains("registration-limit store unreachable: failing closed"),
        "{logs}"
    );
    assert!(!logs.contains(PASSWORD), "the Redis password was logged");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unused_registration_expires_and_a_used_one_stays() {
    let redis = Redis::start();
    let port = free_port();
    let issuer = format!("http://127.0.0.1:{port}");
    let idp = Idp::start(&format!("{issuer}/oauth/callback"));
    let key = std::env::temp_dir().join(format!("oauth-binary-dcr-ttl-{port}.pem"));
    let server = replica(
        port,
        &issuer,
        &idp,
        &redis,
        key.to_str().unwrap(),
        &["--oauth-dcr-unused-ttl", "8s"],
    );
    let unused: Value = register(&server.url("/oauth/register"))
        .await
        .json()
        .await
        .unwrap();
    let unused = unused["client_id"].as_str().unwrap().to_owned();

    let (used, code, verifier) = register_and_log_in(&server, &server).await;
    let (status, tokens) = token(
        &server,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", &used),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    assert_eq!(status, 200, "{tokens}");
    let mut refresh = tokens["refresh_token"].as_str().unwrap().to_owned();

    // the unused client is gone once its lifetime has passed: the token endpoint does not know it
    let mut gone = false;
    for _ in 0..240 {
        let (status, body) = token(
            &server,
            &[
                ("grant_type", "authorization_code"),
                ("client_id", &unused),
                ("code", "not-a-code"),
                ("redirect_uri", REDIRECT),
                ("code_verifier", &verifier),
            ],
        )
        .await;
        if status == 401 {
            assert_eq!(body["error"], "invalid_client", "{body}");
            gone = true;
            break;
        }
        assert_eq!(body["error"], "invalid_grant", "{body}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(gone, "the unused client never expired");

    // and /authorize does not redirect for it (RFC 6749 §4.1.2.1)
    let mut authorize = reqwest::Url::parse(&server.url("/oauth/authorize")).unwrap();
    authorize
        .query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &unused)
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("state", "s")
        .append_pair(
            "code_challenge",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        )
        .append_pair("code_challenge_method", "S256");
    let res = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(authorize)
        .send()
        .await
        .unwrap();
    assert!(res.status().is_client_error(), "{}", res.status());
    assert!(res.headers().get("location").is_none());

    // the used client, registered at the same time, still refreshes
    for _ in 0..2 {
        let (status, tokens) = token(
            &server,
            &[
                ("grant_type", "refresh_token"),
                ("client_id", &used),
                ("refresh_token", &refresh),
            ],
        )
        .await;
        assert_eq!(status, 200, "{tokens}");
        refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    }
}
