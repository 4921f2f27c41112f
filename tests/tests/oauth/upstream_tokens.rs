//! The user's upstream token, black-box: the `mcp-bastion` binary as the authorization server
//! (`--oauth-*`) in front of stdio server-everything, one child per session, with
//! `--principal-env UPSTREAM_TOKEN=upstream:access_token`; `oidc-provider` issuing refresh tokens
//! and access tokens that live 66 s (so that, with the 60 s refresh margin, a token is fresh for
//! 6 s and then refreshed). A browser played here logs alice in; raw MCP requests call `get-env`.
//! The token the child sees is checked at the provider's userinfo endpoint: it is the provider's
//! own token for alice; a session opened after the refresh margin sees a new one. And with
//! `--upstream URL --upstream-header-from Authorization=upstream:access_token` (server-everything
//! over HTTP behind a recording proxy), every upstream request carries alice's provider token and
//! none carries mcp-bastion's.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tests::{
    Server, bastion_bin, everything_stdio,
    sse::json_messages,
    upstream::{Everything, Mode, RecordingProxy},
};

use super::{
    UPSTREAM_CLIENT, UPSTREAM_SECRET,
    browser::{Browser, authorize_url, param, pkce, register, token},
    free_port, identity_provider,
};
use crate::REDIRECT;

/// The provider's access-token lifetime: 6 s beyond mcp-bastion's 60 s refresh margin.
const IDP_TOKEN_TTL: u64 = 66;

/// One POST to `/mcp`: the session id the answer names (or the one given) and the JSON-RPC
/// message answering `body` (JSON or SSE).
async fn mcp(
    bastion: &Server,
    access: &str,
    session: Option<&str>,
    body: Value,
) -> (Option<String>, Option<Value>) {
    let mut req = reqwest::Client::new()
        .post(bastion.url("/mcp"))
        .bearer_auth(access)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-06-18")
        .json(&body);
    if let Some(id) = session {
        req = req.header("mcp-session-id", id);
    }
    let res = req.send().await.expect("the MCP endpoint answers");
    let status = res.status().as_u16();
    let session = res
        .headers()
        .get("mcp-session-id")
        .map(|v| v.to_str().expect("ascii").to_owned())
        .or_else(|| session.map(str::to_owned));
    let text = res.text().await.expect("a body");
    assert!(status < 300, "{status}: {text}\n{}", bastion.logs());
    let answer = json_messages(&text)
        .await
        .into_iter()
        .find(|m| m.get("id").is_some() && m["id"] == body["id"]);
    (session, answer)
}

/// A new session's child environment, through server-everything's `get-env`.
async fn child_env(bastion: &Server, access: &str) -> serde_json::Map<String, Value> {
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "upstream-token-test", "version": "1"}}});
    let (session, answer) = mcp(bastion, access, None, init).await;
    assert!(
        answer.is_some_and(|a| a.get("result").is_some()),
        "initialize: {}",
        bastion.logs()
    );
    let session = session.expect("a session id");
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    mcp(bastion, access, Some(&session), initialized).await;
    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "get-env", "arguments": {}}});
    let (_, answer) = mcp(bastion, access, Some(&session), call).await;
    let answer = answer.expect("the get-env answer");
    let text = answer["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("a text result: {answer}"));
    serde_json::from_str(text).expect("get-env answers the environment as JSON")
}

/// The subject the provider's userinfo endpoint names for `token` (`None`: refused).
async fn userinfo_subject(idp: &Server, token: &str) -> Option<String> {
    let discovery: Value = reqwest::get(idp.url("/.well-known/openid-configuration"))
        .await
        .expect("discovery answers")
        .json()
        .await
        .expect("json");
    let endpoint = discovery["userinfo_endpoint"]
        .as_str()
        .expect("a userinfo endpoint");
    let res = reqwest::Client::new()
        .get(endpoint)
        .bearer_auth(token)
        .send()
        .await
        .expect("userinfo answers");
    if !res.status().is_success() {
        return None;
    }
    let body: Value = res.json().await.expect("json");
    body["sub"].as_str().map(str::to_owned)
}

/// `mcp-bastion` on `port` as the authorization server of its endpoints, users logging in at
/// `idp`, with `args` (and `command` after them) added.
fn bastion_with(port: u16, idp: &Server, args: &[&str], command: &[String]) -> Server {
    let issuer = format!("http://127.0.0.1:{port}");
    let mut all: Vec<String> = [
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--oauth-issuer",
        &issuer,
        "--oauth-upstream-issuer",
        idp.base_url(),
        "--oauth-upstream-client-id",
        UPSTREAM_CLIENT,
        "--oauth-upstream-client-secret-env",
        "UPSTREAM_CLIENT_SECRET",
        "--oauth-allow-email-domain",
        "example.com",
        "--oauth-dcr",
        "open",
        "--oauth-secrets-key-env",
        "OAUTH_SECRETS_KEY",
    ]
    .iter()
    .chain(args)
    .map(|s| (*s).to_owned())
    .collect();
    all.extend(command.iter().cloned());
    Server::spawn_with_env(
        "mcp-bastion",
        &bastion_bin(),
        &all,
        &[
            ("UPSTREAM_CLIENT_SECRET", UPSTREAM_SECRET),
            ("OAUTH_SECRETS_KEY", &"5a".repeat(32)),
        ],
    )
}

/// Registers a client, logs alice in through the provider (she consents), redeems the code:
/// mcp-bastion's access token.
async fn log_alice_in(bastion: &Server) -> String {
    let client = register(bastion).await;
    let (verifier, challenge) = pkce();
    let back = Browser::new()
        .authorize(
            &authorize_url(bastion, &client, &challenge, "S256"),
            "alice",
        )
        .await
        .unwrap_or_else(|(status, page)| panic!("the login completes: {status} {page}"));
    let code = param(&back, "code").expect("a code");
    let (status, tokens) = token(
        bastion,
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
    tokens["access_token"]
        .as_str()
        .expect("an access token")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_per_session_child_gets_the_users_idp_token_and_a_later_session_the_refreshed_one() {
    let port = free_port();
    let idp = identity_provider(
        format!("http://127.0.0.1:{port}/oauth/callback"),
        &[
            "--refresh-tokens",
            "--access-token-ttl",
            &IDP_TOKEN_TTL.to_string(),
        ],
    );
    let bastion = bastion_with(
        port,
        &idp,
        &[
            "--session-mode",
            "per-session",
            "--principal-env",
            "UPSTREAM_TOKEN=upstream:access_token",
            "--",
        ],
        &everything_stdio(),
    );
    let access = &log_alice_in(&bastion).await;
    let logged_in = Instant::now();

    // the first session's child has alice's token at the provider, not mcp-bastion's
    let env = child_env(&bastion, access).await;
    let first = env["UPSTREAM_TOKEN"]
        .as_str()
        .unwrap_or_else(|| panic!("UPSTREAM_TOKEN in the child: {:?}", env.keys()))
        .to_owned();
    assert_ne!(&first, access);
    assert!(
        env.values().all(|v| v.as_str() != Some(access.as_str())),
        "mcp-bastion's own token is passed to no child"
    );
    assert_eq!(
        userinfo_subject(&idp, &first).await.as_deref(),
        Some("alice"),
        "the child's token is the provider's, for alice"
    );

    // past the provider token's fresh window, a new session gets a refreshed one
    let fresh_for = Duration::from_secs(IDP_TOKEN_TTL - 60 + 1);
    if let Some(wait) = fresh_for.checked_sub(logged_in.elapsed()) {
        tokio::time::sleep(wait).await;
    }
    let env = child_env(&bastion, access).await;
    let second = env["UPSTREAM_TOKEN"].as_str().expect("UPSTREAM_TOKEN");
    assert_ne!(second, first, "a new session sees the refreshed token");
    assert_eq!(
        userinfo_subject(&idp, second).await.as_deref(),
        Some("alice")
    );
    // and the one after it the same (fresh again for 6 s: one refresh, not one per session)
    let env = child_env(&bastion, access).await;
    assert_eq!(env["UPSTREAM_TOKEN"].as_str(), Some(second));

    let logs = bastion.logs();
    for secret in [first.as_str(), second, access.as_str()] {
        assert!(!logs.contains(secret), "a token in the logs:\n{logs}");
    }
}

/// The upstream backend sends the user's provider token in `Authorization`, and nothing of the
/// client's request (mcp-bastion's own token above all) reaches the upstream. A plain test (not
/// `tokio::test`): the recording proxy runs its own runtime.
#[test]
fn the_upstream_backend_sends_the_users_idp_token_and_never_mcp_bastions() {
    let everything = Everything::start(Mode::Streamable);
    let recorder = RecordingProxy::start(everything.base_url());
    let port = free_port();
    let idp = identity_provider(format!("http://127.0.0.1:{port}/oauth/callback"), &[]);
    let upstream = recorder.url("/mcp");
    let bastion = bastion_with(
        port,
        &idp,
        &[
            "--upstream",
            &upstream,
            "--upstream-header-from",
            "Authorization=upstream:access_token",
        ],
        &[],
    );
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime.block_on(async {
        let access = log_alice_in(&bastion).await;
        let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "upstream-header-test", "version": "1"}}});
        let (session, answer) = mcp(&bastion, &access, None, init).await;
        assert!(answer.is_some_and(|a| a.get("result").is_some()));
        let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
        let (_, answer) = mcp(&bastion, &access, session.as_deref(), list).await;
        assert!(answer.is_some_and(|a| a["result"]["tools"].is_array()));

        let seen = recorder.seen();
        let posts: Vec<_> = seen.iter().filter(|s| s.method == "POST").collect();
        assert!(posts.len() >= 2, "{seen:#?}");
        let bearer = posts[0]
            .header("authorization")
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_else(|| panic!("the user's token upstream: {seen:#?}"))
            .to_owned();
        assert_eq!(
            userinfo_subject(&idp, &bearer).await.as_deref(),
            Some("alice"),
            "the provider's token for alice"
        );
        for s in &seen {
            assert!(
                s.headers.iter().all(|(_, v)| !v.contains(&access)),
                "mcp-bastion's token reached the upstream: {s:?}"
            );
            if s.method == "POST" {
                assert_eq!(
                    s.header("authorization"),
                    Some(format!("Bearer {bearer}").as_str())
                );
            }
        }
        assert!(!bastion.logs().contains(&bearer));
    });
}

/// A session that outlives the user's provider token goes on with the refreshed one: the
/// upstream backend asks for the token again before a request once it has been used for 15 s,
/// and the provider's tokens here are fresh for 6 s beyond the 60 s refresh margin. The same
/// upstream session (one `initialize`) sees the first token, then a new one, both alice's.
#[test]
fn a_long_upstream_session_goes_on_with_the_refreshed_token() {
    let everything = Everything::start(Mode::Streamable);
    let recorder = RecordingProxy::start(everything.base_url());
    let port = free_port();
    let idp = identity_provider(
        format!("http://127.0.0.1:{port}/oauth/callback"),
        &[
            "--refresh-tokens",
            "--access-token-ttl",
            &IDP_TOKEN_TTL.to_string(),
        ],
    );
    let upstream = recorder.url("/mcp");
    let bastion = bastion_with(
        port,
        &idp,
        &[
            "--upstream",
            &upstream,
            "--upstream-header-from",
            "Authorization=upstream:access_token",
        ],
        &[],
    );
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime.block_on(async {
        let access = log_alice_in(&bastion).await;
        let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "long-session-test", "version": "1"}}});
        let (session, answer) = mcp(&bastion, &access, None, init).await;
        assert!(answer.is_some_and(|a| a.get("result").is_some()));
        let opened = Instant::now();
        let bearer_of_posts = || -> Vec<String> {
            recorder
                .seen()
                .iter()
                .filter(|s| s.method == "POST")
                .map(|s| {
                    s.header("authorization")
                        .and_then(|v| v.strip_prefix("Bearer "))
                        .unwrap_or_else(|| panic!("no user token upstream: {s:?}"))
                        .to_owned()
                })
                .collect()
        };
        let first = bearer_of_posts()[0].clone();

        // past the token's fresh window and the session's recheck time
        let due = Duration::from_secs(16).max(Duration::from_secs(IDP_TOKEN_TTL - 60 + 1));
        if let Some(wait) = due.checked_sub(opened.elapsed()) {
            tokio::time::sleep(wait).await;
        }
        let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
        let (_, answer) = mcp(&bastion, &access, session.as_deref(), list).await;
        assert!(answer.is_some_and(|a| a["result"]["tools"].is_array()));

        let bearers = bearer_of_posts();
        let last = bearers.last().expect("a POST").clone();
        assert_ne!(last, first, "the same session sends the refreshed token");
        assert_eq!(
            userinfo_subject(&idp, &last).await.as_deref(),
            Some("alice"),
            "the refreshed token is the provider's, for alice"
        );
        // one upstream session throughout: every POST after `initialize` names the same one
        let seen = recorder.seen();
        let sessions: std::collections::BTreeSet<_> = seen
            .iter()
            .filter(|s| s.method == "POST")
            .skip(1)
            .map(|s| s.header("mcp-session-id").map(str::to_owned))
            .collect();
        assert_eq!(sessions.len(), 1, "{seen:#?}");
        assert!(sessions.iter().all(Option::is_some), "{seen:#?}");
        let logs = bastion.logs();
        for secret in [first.as_str(), last.as_str(), access.as_str()] {
            assert!(!logs.contains(secret), "a token in the logs:\n{logs}");
        }
    });
}
