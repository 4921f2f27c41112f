//! Two `mcp-bastion` processes as one authorization server (`--oauth-store redis`, one
//! `--oauth-issuer`, one `--oauth-signing-key-file`): a client registered on B logs in on A, the
//! code from A is redeemed on B, the token of B passes on A, a refresh on B, a revocation on A
//! ends access on B; at TRACE, none of the flow's secrets in either replica's logs.

use serde_json::Value;
use tests::{
    Server, bastion_bin, everything_stdio,
    oauth::{
        Browser, Idp, REDIRECT, UPSTREAM_CLIENT, UPSTREAM_SECRET, UPSTREAM_SECRET_ENV, free_port,
        pkce,
    },
    redis::Redis,
};

/// The variable of the key the replicas seal the users' upstream tokens with (one for all).
const SECRETS_KEY_ENV: &str = "OAUTH_SECRETS_KEY";
/// That key: 32 bytes, hex.
const SECRETS_KEY: &str = "7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e";

/// A replica listening on `port`, with the shared issuer, store and key, and `extra` flags.
pub(crate) fn replica(
    port: u16,
    issuer: &str,
    idp: &Idp,
    redis: &Redis,
    key: &str,
    extra: &[&str],
) -> Server {
    let mut args: Vec<String> = [
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--oauth-issuer",
        issuer,
        "--oauth-upstream-issuer",
        idp.server.base_url(),
        "--oauth-upstream-client-id",
        UPSTREAM_CLIENT,
        "--oauth-upstream-client-secret-env",
        UPSTREAM_SECRET_ENV,
        "--oauth-allow-email-domain",
        "example.com",
        "--oauth-dcr",
        "open",
        "--oauth-scope",
        "mcp",
        "--oauth-store",
        "redis",
        "--redis-url",
        &redis.url(),
        "--oauth-signing-key-file",
        key,
        "--oauth-secrets-key-env",
        SECRETS_KEY_ENV,
    ]
    .iter()
    .chain(extra)
    .map(|s| (*s).to_owned())
    .collect();
    args.push("--".to_owned());
    args.extend(everything_stdio());
    // every line kept, at TRACE: the secrets of the flow must not be in any (Redis commands
    // carry codes' and tokens' records)
    Server::spawn_recorded(
        "mcp-bastion",
        &bastion_bin(),
        &args,
        &[
            (UPSTREAM_SECRET_ENV, UPSTREAM_SECRET),
            (SECRETS_KEY_ENV, SECRETS_KEY),
            ("MCP_BASTION_LOG", "trace"),
        ],
    )
}

pub(crate) async fn initialize(replica: &Server, token: &str) -> u16 {
    reqwest::Client::new()
        .post(replica.url("/mcp"))
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .json(&serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

pub(crate) async fn token(replica: &Server, form: &[(&str, &str)]) -> (u16, Value) {
    let res = reqwest::Client::new()
        .post(replica.url("/oauth/token"))
        .form(form)
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

/// Registers a public client on `register_on`, logs alice in on `login_on`: the client id, a
/// code and its verifier.
pub(crate) async fn register_and_log_in(
    register_on: &Server,
    login_on: &Server,
) -> (String, String, String) {
    let res = reqwest::Client::new()
        .post(register_on.url("/oauth/register"))
        .json(
            &serde_json::json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let client: Value = res.json().await.unwrap();
    let client = client["client_id"].as_str().unwrap().to_owned();

    let (verifier, challenge) = pkce();
    let mut authorize = reqwest::Url::parse(&login_on.url("/oauth/authorize")).unwrap();
    authorize
        .query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &client)
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("state", "replicas")
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    let back = Browser::new()
        .authorize(authorize.as_str(), "alice", REDIRECT)
        .await
        .unwrap_or_else(|(status, page)| panic!("the login ended on {status}: {page}"));
    let code = back
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("a code");

    (client, code, verifier)
}

#[tokio::test(flavor = "multi_thread")]
async fn two_binaries_sharing_redis_are_one_authorization_server() {
    let redis = Redis::start();
    let (port_a, port_b) = (free_port(), free_port());
    let issuer = format!("http://127.0.0.1:{port_a}");
    let idp = Idp::start(&format!("{issuer}/oauth/callback"));
    let dir = std::env::temp_dir().join(format!("oauth-binary-replicas-{port_a}"));
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("signing.pem");
    let key = key.to_str().unwrap();
    // A creates the key file, B reads it
    let a = replica(port_a, &issuer, &idp, &redis, key, &[]);
    let b = replica(port_b, &issuer, &idp, &redis, key, &[]);

    let (client, code, verifier) = register_and_log_in(&b, &a).await;
    let (status, tokens) = token(
        &b,
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
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(initialize(&a, access).await, 200);

    let (status, refreshed) = token(
        &b,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", &client),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
        ],
    )
    .await;
    assert_eq!(status, 200, "{refreshed}");
    let access = refreshed["access_token"].as_str().unwrap();
    assert_eq!(initialize(&b, access).await, 200);

    let res = reqwest::Client::new()
        .post(a.url("/oauth/revoke"))
        .form(&[("client_id", client.as_str()), ("token", access)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(initialize(&b, access).await, 401);

    let mut secrets = vec![code, verifier, UPSTREAM_SECRET.to_owned()];
    for t in [&tokens, &refreshed] {
        for field in ["access_token", "refresh_token"] {
            secrets.push(t[field].as_str().unwrap().to_owned());
        }
    }
    secrets.extend(idp.secrets());
    let logs = a.transcript() + &b.transcript();
    assert!(logs.contains("TRACE"), "the replicas log at TRACE");
    for secret in &secrets {
        assert!(
            !logs.contains(secret.as_str()),
            "a secret ({}…) appears in a replica's logs",
            &secret[..secret.len().min(6)]
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}
