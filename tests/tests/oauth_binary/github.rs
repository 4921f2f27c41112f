//! GitHub as the identity provider of the binary (`--oauth-upstream github`, with
//! `--oauth-upstream-github-url` pointing at the GitHub stand-in, tests/clients/github_api.mjs,
//! laid out like GitHub Enterprise Server) and an organisation-and-team allowlist
//! (`--oauth-allow-github-org`): the Python SDK logs a team member in, and someone of the
//! organisation outside the team gets the refusal page. No secret of the flow is in the trace
//! logs or in the audit log.

use std::path::Path;

use tests::{
    Sdk, Server, bastion_bin,
    binaries::node,
    clients_dir, everything_stdio,
    oauth::{
        Browser, REDIRECT, UPSTREAM_CLIENT, UPSTREAM_SECRET, UPSTREAM_SECRET_ENV, USER_VAR,
        free_port, pkce, sdk_oauth,
    },
};

/// The stand-in (acme: alice and bob; acme/platform: alice) and the binary in front of
/// server-everything, allowing the team `acme/platform` only, writing its audit log to `audit`.
fn start(audit: &Path) -> (Server, Server) {
    let port = free_port();
    let audit = audit.display().to_string();
    let issuer = format!("http://127.0.0.1:{port}");
    let github = Server::spawn_recorded(
        "github stand-in",
        Path::new(&node()),
        &[
            clients_dir().join("github_api.mjs").display().to_string(),
            "--client-id".into(),
            UPSTREAM_CLIENT.into(),
            "--client-secret".into(),
            UPSTREAM_SECRET.into(),
            "--redirect-uri".into(),
            format!("{issuer}/oauth/callback"),
            "--org".into(),
            "acme=alice,bob".into(),
            "--team".into(),
            "acme/platform=alice".into(),
            "--print-secrets".into(),
        ],
        &[],
    );
    let mut args: Vec<String> = [
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--oauth-issuer",
        &issuer,
        "--oauth-upstream",
        "github",
        "--oauth-upstream-github-url",
        github.base_url(),
        "--oauth-upstream-client-id",
        UPSTREAM_CLIENT,
        "--oauth-upstream-client-secret-env",
        UPSTREAM_SECRET_ENV,
        "--oauth-allow-github-org",
        "acme/platform",
        "--oauth-dcr",
        "open",
        "--oauth-scope",
        "mcp",
        "--principal-env",
        &format!("{USER_VAR}=subject"),
        "--audit-log",
        &audit,
        "--",
    ]
    .map(str::to_owned)
    .to_vec();
    args.extend(everything_stdio());
    let bastion = Server::spawn_recorded(
        "mcp-bastion",
        &bastion_bin(),
        &args,
        &[
            (UPSTREAM_SECRET_ENV, UPSTREAM_SECRET),
            ("MCP_BASTION_LOG", "trace"),
        ],
    );
    (github, bastion)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_github_team_member_logs_in_with_the_python_sdk_and_others_are_refused() {
    let dir = std::env::temp_dir().join(format!("mcp-bastion-gh-audit-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let audit = dir.join("audit.jsonl");
    let (github, bastion) = start(&audit);
    // the subject is GitHub's numeric user id: the stand-in's first user is 1000
    let url = bastion.url("/mcp");
    let report = tokio::task::spawn_blocking(move || {
        sdk_oauth(Sdk::Python, &url, &url, &["--expect-subject", "1000"])
    })
    .await
    .unwrap()
    .unwrap_or_else(|e| panic!("{e}\n--- mcp-bastion ---\n{}", bastion.logs()));
    assert_eq!(report["whoami"], "1000", "{report}");
    assert_eq!(report["refreshed"], true, "{report}");
    assert_eq!(report["revoked_status"], 401, "{report}");
    let pages = report["pages"].to_string();
    assert!(pages.contains("POST /login/oauth/authorize"), "{pages}");
    // no secret of the flow reaches the logs, even at trace: GitHub's codes and user tokens
    // (gho_…), mcp-bastion's state and verifier towards GitHub, the client's code and tokens, the
    // upstream client secret; nor do they reach the audit log, whose records name the subject
    let audit_log = std::fs::read_to_string(&audit).unwrap_or_default();
    assert!(
        audit_log.contains("\"subject\":\"1000\""),
        "the audit log has the member's records:\n{audit_log}"
    );
    let logs = bastion.transcript() + &audit_log;
    assert!(!logs.contains("gho_"));
    assert!(!logs.contains(UPSTREAM_SECRET));
    let upstream_secrets: Vec<String> = github
        .transcript()
        .lines()
        .filter_map(|l| {
            l.split_once("secret-of-the-flow ")
                .map(|(_, s)| s.trim().to_owned())
        })
        .collect();
    assert!(upstream_secrets.len() >= 4, "{upstream_secrets:?}");
    let client_secrets = report["secrets"].as_array().expect("the client's secrets");
    assert!(client_secrets.len() >= 5, "{report}");
    for secret in upstream_secrets
        .iter()
        .map(String::as_str)
        .chain(client_secrets.iter().filter_map(serde_json::Value::as_str))
    {
        assert!(
            !logs.contains(secret),
            "a secret of the flow is in the logs"
        );
    }

    // bob is in the organisation, not in the team
    let client: serde_json::Value = reqwest::Client::new()
        .post(bastion.url("/oauth/register"))
        .json(
            &serde_json::json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (_, challenge) = pkce();
    let mut url = reqwest::Url::parse(&bastion.url("/oauth/authorize")).unwrap();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client["client_id"].as_str().unwrap())
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    let (status, page) = Browser::new()
        .authorize(url.as_str(), "bob", REDIRECT)
        .await
        .expect_err("bob is refused");
    assert_eq!(status, 403, "{page}");
    assert!(page.contains("Access refused"), "{page}");
}
