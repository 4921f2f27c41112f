//! Login allowlists beyond subjects and email domains: the GitHub preset against a stand-in for
//! GitHub (tests/clients/github_api.mjs: its OAuth web flow, its form-or-JSON token answer, its
//! REST API's user, emails and membership endpoints), and the groups claim of `oidc-provider`.

use tests::Sdk;

use crate::{
    Upstream,
    browser::{Browser, authorize_url, param, pkce, register},
    sdk::sdk_oauth_expecting,
    setup_upstream,
};

/// Logs `login` in through a fresh browser: `Ok` with the code when the login reached the
/// client's redirect, `Err` with the status and page otherwise.
async fn log_in(s: &crate::Setup, login: &str) -> Result<String, (u16, String)> {
    let client = register(&s.bastion).await;
    let (_, challenge) = pkce();
    let back = Browser::new()
        .authorize(
            &authorize_url(&s.bastion, &client, &challenge, "S256"),
            login,
        )
        .await?;
    Ok(param(&back, "code").expect("a code"))
}

fn assert_refused(outcome: Result<String, (u16, String)>, who: &str) {
    let (status, page) = outcome.expect_err(who);
    assert_eq!(status, 403, "{who}: {page}");
    assert!(page.contains("Access refused"), "{who}: {page}");
}

#[test]
fn python_sdk_logs_in_with_github_as_an_organisation_member() {
    let s = setup_upstream(
        &Upstream::GitHub {
            members: &["--org", "acme=alice"],
        },
        &["--allow-github-org", "acme"],
        &[],
        &[("RUST_LOG", "trace")],
    );
    // the subject is GitHub's numeric user id (the stand-in's first user is 1000)
    let report = sdk_oauth_expecting(
        Sdk::Python,
        &s,
        "/mcp",
        &[],
        "1000",
        "POST /login/oauth/authorize",
    );
    assert_eq!(report["metadata_document"], false, "{report}");
    // GitHub's user tokens (the stand-in's start with gho_, like GitHub's) never reach the logs
    assert!(!s.bastion.logs().contains("gho_"));
}

#[test]
fn typescript_sdk_logs_in_with_github_as_a_team_member() {
    let s = setup_upstream(
        &Upstream::GitHub {
            members: &["--org", "acme=alice", "--team", "acme/platform=alice"],
        },
        &["--allow-github-team", "acme/platform"],
        &[],
        &[],
    );
    sdk_oauth_expecting(
        Sdk::TypeScript,
        &s,
        "/mcp",
        &[],
        "1000",
        "/login/oauth/authorize",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn github_users_outside_the_organisation_are_refused_with_the_page() {
    let s = setup_upstream(
        &Upstream::GitHub {
            members: &["--org", "acme=alice", "--pending", "acme=carol"],
        },
        &["--allow-github-org", "acme"],
        &[],
        &[],
    );
    log_in(&s, "alice").await.expect("a member logs in");
    // an invitation not yet accepted is not membership
    assert_refused(log_in(&s, "carol").await, "carol (pending)");
    assert_refused(log_in(&s, "mallory").await, "mallory (not a member)");
}

#[tokio::test(flavor = "multi_thread")]
async fn github_organisation_members_outside_the_team_are_refused() {
    let s = setup_upstream(
        &Upstream::GitHub {
            members: &["--org", "acme=alice,bob", "--team", "acme/platform=alice"],
        },
        &["--allow-github-team", "acme/platform"],
        &[],
        &[],
    );
    log_in(&s, "alice").await.expect("a team member logs in");
    assert_refused(log_in(&s, "bob").await, "bob (in the org, not the team)");
}

#[tokio::test(flavor = "multi_thread")]
async fn github_logins_are_admitted_by_their_verified_email_domain() {
    // the stand-in's users have <login>@example.com verified, and no organisation
    let s = setup_upstream(
        &Upstream::GitHub { members: &[] },
        &["--allow-email-domain", "example.com"],
        &[],
        &[],
    );
    log_in(&s, "dana")
        .await
        .expect("a verified email in the domain");
    let s = setup_upstream(
        &Upstream::GitHub { members: &[] },
        &["--allow-email-domain", "unverified.example"],
        &[],
        &[],
    );
    assert_refused(
        log_in(&s, "dana").await,
        "dana (only an unverified email there)",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn oidc_logins_are_admitted_by_the_groups_claim() {
    let s = setup_upstream(
        &Upstream::Oidc {
            groups: &["mcp-users=alice", "staff=alice,bob"],
        },
        &["--allow-group", "mcp-users"],
        &[
            "--upstream-scope",
            "openid",
            "--upstream-scope",
            "email",
            "--upstream-scope",
            "groups",
        ],
        &[],
    );
    log_in(&s, "alice")
        .await
        .expect("a member of mcp-users logs in");
    assert_refused(log_in(&s, "bob").await, "bob (staff only)");
}
