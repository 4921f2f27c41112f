//! Who may log in: the policy itself, the groups claim of an OIDC login, and
//! the GitHub preset against a GitHub-shaped API on loopback (token answer
//! form-encoded, `/user`, `/user/emails`, membership endpoints).
#![allow(clippy::unwrap_used)]

use axum::{
    Form, Json, Router,
    body::Body,
    extract::{Path, State},
    routing::{get, post},
};
use http::{HeaderMap, Request, StatusCode, header};
use serde_json::json;

use super::*;
use crate::auth::oauth::{server::LoginPolicy, upstream::Identity};

fn someone() -> Identity {
    Identity {
        sub: "42".into(),
        email: Some("dev@corp.example".into()),
        email_verified: true,
        ..Identity::default()
    }
}

#[test]
fn the_policy_admits_on_any_one_rule() {
    let nobody = LoginPolicy::default();
    assert!(!nobody.admits_someone());
    assert!(!nobody.admits(&someone()));

    let groups = LoginPolicy {
        groups: vec!["mcp-users".into(), "admins".into()],
        ..LoginPolicy::default()
    };
    assert!(groups.admits_someone());
    let mut member = someone();
    member.groups = vec!["staff".into(), "admins".into()];
    assert!(groups.admits(&member), "one group of the list is enough");
    let mut other = someone();
    other.groups = vec!["staff".into(), "Admins".into()];
    assert!(!groups.admits(&other), "group names are exact");
    assert_eq!(groups.groups_claim(), "groups");

    let github = LoginPolicy {
        github_orgs: vec!["Acme".into()],
        github_teams: vec!["acme/platform".into()],
        ..LoginPolicy::default()
    };
    let mut in_org = someone();
    in_org.github_orgs = vec!["acme".into()];
    assert!(github.admits(&in_org), "organisation names ignore case");
    let mut in_team = someone();
    in_team.github_teams = vec!["ACME/Platform".into()];
    assert!(github.admits(&in_team));
    let mut elsewhere = someone();
    elsewhere.github_orgs = vec!["other".into()];
    elsewhere.github_teams = vec!["acme/sales".into()];
    assert!(!github.admits(&elsewhere));

    let domains = LoginPolicy {
        email_domains: vec!["corp.example".into()],
        ..LoginPolicy::default()
    };
    assert!(domains.admits(&someone()));
    let mut unverified = someone();
    unverified.email_verified = false;
    assert!(
        !domains.admits(&unverified),
        "an unverified email proves nothing"
    );
}

#[test]
fn github_allowlists_need_the_github_upstream_and_teams_name_their_org() {
    let oidc = OAuthServer::builder()
        .issuer(ISSUER)
        .resource(RESOURCE)
        .upstream(UpstreamOidc::new("https://idp.example.com", "bastion"))
        .allow_github_org("acme")
        .build();
    assert!(
        matches!(oidc, Err(OAuthConfigError::GitHubOnly)),
        "{oidc:?}"
    );
    let team = OAuthServer::builder()
        .issuer(ISSUER)
        .resource(RESOURCE)
        .upstream(UpstreamOAuth2::github("gh-client"))
        .allow_github_team("platform")
        .build();
    assert!(
        matches!(&team, Err(OAuthConfigError::GitHubTeam(t)) if t == "platform"),
        "{team:?}"
    );
    let ok = OAuthServer::builder()
        .issuer(ISSUER)
        .resource(RESOURCE)
        .upstream(UpstreamOAuth2::github("gh-client"))
        .allow_github_team("acme/platform")
        .build();
    assert!(ok.is_ok(), "{ok:?}");
}

#[tokio::test]
async fn an_oidc_login_is_admitted_by_its_groups_claim() {
    let idp = idp().await;
    let server = |claim: Option<&str>| {
        let mut b = OAuthServer::builder()
            .issuer(ISSUER)
            .resource(RESOURCE)
            .upstream(UpstreamOidc::new(&idp.url, "bastion"))
            .allow_group("mcp-users")
            .client(StaticClient::new("app").redirect_uri(REDIRECT));
        if let Some(claim) = claim {
            b = b.groups_claim(claim);
        }
        b.build().unwrap().router()
    };
    let (_, challenge) = pkce();
    let uri = authorize_uri("app", &challenge, "");
    idp.overrides
        .lock()
        .unwrap()
        .insert("groups".into(), json!(["staff", "mcp-users"]));
    let res = login(&server(None), &idp, &uri, "alice", None).await;
    // through the consent page (approved) back to the client with a code
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(param(&location(&res), "code").is_some());
    // the same groups under another claim than the one configured
    let res = login(&server(Some("roles")), &idp, &uri, "alice", None).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(text(res).await.contains("Access refused"));
    // a user outside the group
    idp.overrides
        .lock()
        .unwrap()
        .insert("groups".into(), json!("staff"));
    let res = login(&server(None), &idp, &uri, "alice", None).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
}

/// What the GitHub-shaped API on loopback saw and says.
#[derive(Clone)]
struct GitHubState {
    /// The user's organisations (active) and teams (`org/team`).
    orgs: Vec<&'static str>,
    teams: Vec<&'static str>,
}

fn user_token(headers: &HeaderMap) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .is_some_and(|v| v == "Bearer gho_user_token")
}

/// GitHub Enterprise's layout on loopback: the web flow at the root, the
/// REST API below `/api/v3`.
async fn github(orgs: Vec<&'static str>, teams: Vec<&'static str>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let membership = |active: bool| {
        if active {
            (
                StatusCode::OK,
                Json(json!({"state": "active", "role": "member"})),
            )
        } else {
            (StatusCode::NOT_FOUND, Json(json!({"message": "Not Found"})))
        }
    };
    let app = Router::new()
        .route(
            "/login/oauth/access_token",
            post(|Form(f): Form<std::collections::HashMap<String, String>>| async move {
                // GitHub's way: 200 either way, form-encoded here
                let body = if f.get("grant_type").map(String::as_str) == Some("refresh_token") {
                    if f.get("refresh_token").map(String::as_str) == Some("ghr_old")
                        && f.get("client_secret").map(String::as_str) == Some("gh-secret")
                    {
                        "access_token=ghu_new&expires_in=28800&refresh_token=ghr_new&token_type=bearer"
                    } else {
                        "error=bad_refresh_token&error_description=The+refresh+token+passed+is+incorrect+or+expired."
                    }
                } else if f.get("code").map(String::as_str) == Some("gh-code")
                    && f.get("client_secret").map(String::as_str) == Some("gh-secret")
                    && f.get("code_verifier").is_some_and(|v| v.len() == 43)
                {
                    "access_token=gho_user_token&scope=read%3Aorg%2Cread%3Auser%2Cuser%3Aemail&token_type=bearer"
                } else {
                    "error=bad_verification_code"
                };
                ([(header::CONTENT_TYPE, "application/x-www-form-urlencoded")], body)
            }),
        )
        .route(
            "/api/v3/user",
            get(|headers: HeaderMap| async move {
                if !user_token(&headers) {
                    return (StatusCode::UNAUTHORIZED, Json(json!({"message": "Bad credentials"})));
                }
                (
                    StatusCode::OK,
                    Json(json!({"login": "octocat", "id": 583_231, "name": "The Octocat", "email": "public@elsewhere.example"})),
                )
            }),
        )
        .route(
            "/api/v3/user/emails",
            get(|| async {
                Json(json!([
                    {"email": "octo@unverified.example", "primary": false, "verified": false, "visibility": null},
                    {"email": "octocat@corp.example", "primary": true, "verified": true, "visibility": "private"},
                ]))
            }),
        )
        .route(
            "/api/v3/user/memberships/orgs/{org}",
            get(
                move |State(s): State<GitHubState>, Path(org): Path<String>| async move {
                    use axum::response::IntoResponse as _;
                    if org == "rate-limited" {
                        // GitHub's primary rate limit: 403 with no requests left
                        return (
                            StatusCode::FORBIDDEN,
                            [("x-ratelimit-remaining", "0")],
                            Json(json!({"message": "API rate limit exceeded"})),
                        )
                            .into_response();
                    }
                    membership(s.orgs.contains(&org.as_str())).into_response()
                },
            ),
        )
        .route(
            "/api/v3/orgs/{org}/teams/{team}/memberships/{login}",
            get(
                move |State(s): State<GitHubState>,
                      Path((org, team, login)): Path<(String, String, String)>| async move {
                    membership(login == "octocat" && s.teams.contains(&format!("{org}/{team}").as_str()))
                },
            ),
        )
        .with_state(GitHubState { orgs, teams });
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// Logs in through the GitHub-shaped API: the final response of the
/// callback (consent page or refusal) and the upstream authorization URL.
async fn github_login(app: &Router) -> (axum::response::Response, url::Url) {
    let (_, challenge) = pkce();
    let res = send(
        app,
        Request::get(authorize_uri("app", &challenge, ""))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let upstream = location(&res);
    let cookie = browser_cookie(&res);
    let state = param(&upstream, "state").unwrap();
    let res = send(
        app,
        Request::get(format!("/oauth/callback?code=gh-code&state={state}"))
            .header(header::COOKIE, &cookie)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    (res, upstream)
}

fn github_server(base: &str, f: impl FnOnce(OAuthServerBuilder) -> OAuthServerBuilder) -> Router {
    f(OAuthServer::builder()
        .issuer(ISSUER)
        .resource(RESOURCE)
        .upstream(UpstreamOAuth2::github_enterprise(base, "gh-client").client_secret("gh-secret"))
        .client(StaticClient::new("app").redirect_uri(REDIRECT)))
    .build()
    .unwrap()
    .router()
}

#[tokio::test]
async fn github_logins_use_the_user_api_and_its_verified_email() {
    let base = github(vec![], vec![]).await;
    let app = github_server(&base, |b| b.allow_email_domain("corp.example"));
    let (res, upstream) = github_login(&app).await;
    assert!(
        upstream
            .as_str()
            .starts_with(&format!("{base}/login/oauth/authorize?"))
    );
    assert_eq!(param(&upstream, "client_id").as_deref(), Some("gh-client"));
    assert_eq!(
        param(&upstream, "scope").as_deref(),
        Some("read:user user:email")
    );
    assert_eq!(
        param(&upstream, "code_challenge_method").as_deref(),
        Some("S256")
    );
    assert_eq!(param(&upstream, "nonce"), None, "no ID token, no nonce");
    assert_eq!(res.status(), StatusCode::OK);
    let page = text(res).await;
    assert!(page.contains("octocat@corp.example"), "{page}");
    // the subject is the numeric id
    let app = github_server(&base, |b| b.allow_subject("583231"));
    assert_eq!(github_login(&app).await.0.status(), StatusCode::OK);
    // the public email of /user is not a verified one
    let app = github_server(&base, |b| b.allow_email_domain("elsewhere.example"));
    assert_eq!(github_login(&app).await.0.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn github_organisation_and_team_members_are_admitted_and_others_refused() {
    let base = github(vec!["acme"], vec!["acme/platform"]).await;
    let org = github_server(&base, |b| b.allow_github_org("acme"));
    let (res, upstream) = github_login(&org).await;
    assert_eq!(
        param(&upstream, "scope").as_deref(),
        Some("read:user user:email read:org")
    );
    assert_eq!(res.status(), StatusCode::OK);
    let team = github_server(&base, |b| b.allow_github_team("acme/platform"));
    assert_eq!(github_login(&team).await.0.status(), StatusCode::OK);

    // a rate limit is not a refusal: the user may try again
    let limited = github_server(&base, |b| b.allow_github_org("rate-limited"));
    let (res, _) = github_login(&limited).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);

    for refused in [
        github_server(&base, |b| b.allow_github_org("globex")),
        github_server(&base, |b| b.allow_github_team("acme/sales")),
    ] {
        let (res, _) = github_login(&refused).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        assert!(text(res).await.contains("Access refused"));
    }
}

#[tokio::test]
async fn a_code_github_refuses_with_a_200_is_a_failed_login() {
    let base = github(vec![], vec![]).await;
    let app = OAuthServer::builder()
        .issuer(ISSUER)
        .resource(RESOURCE)
        .upstream(UpstreamOAuth2::github_enterprise(&base, "gh-client").client_secret("wrong"))
        .client(StaticClient::new("app").redirect_uri(REDIRECT))
        .allow_any_user()
        .build()
        .unwrap()
        .router();
    let (res, _) = github_login(&app).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let page = text(res).await;
    assert!(page.contains("Login failed"), "{page}");
}

#[tokio::test]
async fn github_app_user_tokens_refresh_at_the_token_endpoint() {
    let base = github(vec![], vec![]).await;
    let server = OAuthServer::builder()
        .issuer(ISSUER)
        .resource(RESOURCE)
        .upstream(UpstreamOAuth2::github_enterprise(&base, "gh-client").client_secret("gh-secret"))
        .allow_any_user()
        .build()
        .unwrap();
    let tokens = server.inner.upstream.refresh("ghr_old").await.unwrap();
    assert_eq!(tokens.access_token, "ghu_new");
    assert_eq!(tokens.refresh_token.as_deref(), Some("ghr_new"));
    assert!(tokens.expires_at.is_some_and(|t| t > unix_now() + 28_000));
    // GitHub refuses with a 200 and an `error`
    let refused = server.inner.upstream.refresh("ghr_spent").await;
    assert_eq!(refused.unwrap_err(), upstream::UpstreamError::Exchange);
}
