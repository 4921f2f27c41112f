//! Two replicas of the authorization server behind one issuer URL, sharing one Redis
//! (`--store redis`) and one signing key file: the browser (played with a cookie jar) is sent to
//! either, as a load balancer would, and every step may land on the other replica.

use std::path::PathBuf;

use tests::{Server, example_bin, redis::Redis};

use crate::{
    UPSTREAM_CLIENT, UPSTREAM_SECRET,
    browser::{Browser, authorize_url, param, pkce, register, token},
    free_port, identity_provider,
};

/// The identity provider and two replicas, `a` listening on the issuer's own port.
struct Replicas {
    _idp: Server,
    _redis: Redis,
    a: Server,
    b: Server,
    key_dir: PathBuf,
}

impl Drop for Replicas {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.key_dir);
    }
}

fn replicas() -> Replicas {
    let redis = Redis::start();
    let (port_a, port_b) = (free_port(), free_port());
    let issuer = format!("http://127.0.0.1:{port_a}");
    let idp = identity_provider(format!("{issuer}/oauth/callback"), &[]);
    let key_dir = std::env::temp_dir().join(format!("oauth-replicas-{port_a}-{port_b}"));
    std::fs::create_dir_all(&key_dir).expect("a key directory");
    let key_file = key_dir.join("signing.pem");
    let replica = |port: u16| {
        let args: Vec<String> = [
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--issuer",
            &issuer,
            "--upstream-issuer",
            idp.base_url(),
            "--upstream-client-id",
            UPSTREAM_CLIENT,
            "--allow-email-domain",
            "example.com",
            "--dcr",
            "open",
            "--signing-key-file",
            key_file.to_str().expect("a UTF-8 path"),
            "--store",
            "redis",
            "--redis-url",
            &redis.url(),
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        Server::spawn_with_env(
            "oauth_server",
            &example_bin("oauth_server"),
            &args,
            &[
                ("UPSTREAM_CLIENT_SECRET", UPSTREAM_SECRET),
                // one key for both: each opens the upstream tokens the other sealed
                ("OAUTH_SECRETS_KEY", &"42".repeat(32)),
            ],
        )
    };
    // the first writes the generated key, the second reads it
    let a = replica(port_a);
    let b = replica(port_b);
    Replicas {
        _idp: idp,
        _redis: redis,
        a,
        b,
        key_dir,
    }
}

/// The status of an MCP `initialize` with `token` on `replica`.
async fn initialize(replica: &Server, token: &str) -> u16 {
    reqwest::Client::new()
        .post(replica.url("/mcp"))
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .json(&serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}))
        .send()
        .await
        .expect("the MCP endpoint answers")
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread")]
async fn replicas_sharing_redis_serve_one_login_across_both() {
    let r = replicas();
    let (a, b) = (&r.a, &r.b);
    // registered on B, used through the issuer (A)
    let client = register(b).await;
    // the provider returns to the issuer's callback: the balancer sends it to B; everything
    // else of the issuer goes to A
    let to_b = || vec![(a.url("/oauth/callback"), b.url("/oauth/callback"))];

    // login begun on A, returned to B (which shows the consent page), consent given on A
    let browser = Browser::routed(to_b());
    let (verifier, challenge) = pkce();
    let back = browser
        .authorize(&authorize_url(a, &client, &challenge, "S256"), "alice")
        .await
        .expect("the login completes");
    assert!(
        browser
            .visited()
            .iter()
            .any(|u| u.contains("/oauth/consent")),
        "a consent page the first time: {:?}",
        browser.visited()
    );
    assert_eq!(param(&back, "iss").as_deref(), Some(a.base_url()));
    let code = param(&back, "code").expect("a code");

    // the code, issued on A, is redeemed on B
    let redeem = [
        ("grant_type", "authorization_code"),
        ("client_id", client.as_str()),
        ("code", &code),
        ("redirect_uri", crate::REDIRECT),
        ("code_verifier", &verifier),
    ];
    let (status, tokens) = token(b, &redeem).await;
    assert_eq!(status, 200, "{tokens}");
    // and is spent for A
    let (_, again) = token(a, &redeem).await;
    assert_eq!(again["error_description"], "the code was already used");
    // (that reuse revoked the grant, as on one replica)
    let access = tokens["access_token"].as_str().expect("a token");
    assert_eq!(initialize(a, access).await, 401);

    // a fresh login, in a fresh browser: the consent remembered on A is seen on B's callback
    let browser = Browser::routed(to_b());
    let (verifier, challenge) = pkce();
    let back = browser
        .authorize(&authorize_url(a, &client, &challenge, "S256"), "alice")
        .await
        .expect("the login completes");
    assert!(
        !browser
            .visited()
            .iter()
            .any(|u| u.contains("/oauth/consent")),
        "consent remembered: no page: {:?}",
        browser.visited()
    );
    let code = param(&back, "code").expect("a code");
    let (status, tokens) = token(
        b,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", client.as_str()),
            ("code", &code),
            ("redirect_uri", crate::REDIRECT),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    assert_eq!(status, 200, "{tokens}");
    // B's token passes on A and B (one key)
    let access = tokens["access_token"].as_str().expect("a token");
    assert_eq!(initialize(a, access).await, 200);
    assert_eq!(initialize(b, access).await, 200);

    // refreshed on B
    let (status, refreshed) = token(
        b,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", client.as_str()),
            (
                "refresh_token",
                tokens["refresh_token"].as_str().expect("a refresh token"),
            ),
        ],
    )
    .await;
    assert_eq!(status, 200, "{refreshed}");
    let access = refreshed["access_token"].as_str().expect("a token");
    assert_eq!(initialize(b, access).await, 200);

    // revoked on A: access ends on B
    let res = reqwest::Client::new()
        .post(a.url("/oauth/revoke"))
        .form(&[("client_id", client.as_str()), ("token", access)])
        .send()
        .await
        .expect("the revocation endpoint answers");
    assert_eq!(res.status(), 200);
    assert_eq!(initialize(b, access).await, 401);
}
