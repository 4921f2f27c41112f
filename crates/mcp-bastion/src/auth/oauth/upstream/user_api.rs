//! Plain OAuth 2 providers that issue no ID token: who logged in comes from
//! a user endpoint called with the provider's access token. The GitHub
//! preset knows GitHub's endpoints (and GitHub Enterprise Server's), reads
//! the user's verified emails (`GET /user/emails`, with the `user:email`
//! scope) and checks the organisation and team memberships the login policy
//! names (`GET /user/memberships/orgs/{org}`,
//! `GET /orgs/{org}/teams/{team}/memberships/{login}`, with `read:org`).

use std::fmt;

use serde::Deserialize;
use serde_json::Value;

use super::{Identity, Lookups, TokenClient, UpstreamError, UpstreamTokens, strings};
use crate::auth::oauth::OAuthConfigError;

/// A plain OAuth 2 identity provider with a user endpoint, or the GitHub
/// preset.
///
/// ```
/// use mcp_bastion::auth::oauth::UpstreamOAuth2;
///
/// // github.com: an OAuth app's client id and secret
/// let github = UpstreamOAuth2::github("Iv1.0123456789abcdef").client_secret("from-the-environment");
/// assert!(!format!("{github:?}").contains("from-the-environment"));
/// // GitHub Enterprise Server: the API is below /api/v3
/// let ghes = UpstreamOAuth2::github_enterprise("https://github.example.com", "Iv1.0123");
/// // any other provider: its endpoints; the subject is the user's `sub` or `id`
/// let other = UpstreamOAuth2::new(
///     "https://idp.example.com/oauth/authorize",
///     "https://idp.example.com/oauth/token",
///     "https://idp.example.com/api/me",
///     "mcp-bastion",
/// )
/// .scopes(["profile"]);
/// # let _ = (ghes, other);
/// ```
#[derive(Clone)]
pub struct UpstreamOAuth2 {
    pub(crate) authorization_endpoint: String,
    pub(crate) token_endpoint: String,
    pub(crate) user_endpoint: String,
    pub(crate) client_id: String,
    pub(crate) client_secret: Option<String>,
    pub(crate) scopes: Vec<String>,
    /// GitHub's REST API base (`https://api.github.com`), for the preset.
    pub(crate) github_api: Option<String>,
}

impl fmt::Debug for UpstreamOAuth2 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamOAuth2")
            .field("authorization_endpoint", &self.authorization_endpoint)
            .field("token_endpoint", &self.token_endpoint)
            .field("user_endpoint", &self.user_endpoint)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "…"))
            .field("scopes", &self.scopes)
            .field("github_api", &self.github_api)
            .finish()
    }
}

impl UpstreamOAuth2 {
    /// A provider by its endpoints and mcp-bastion's client id there. No
    /// scope is asked for unless [`scopes`](Self::scopes) says so. The user
    /// endpoint answers a JSON object: `sub` (or `id`, a string or a
    /// number) is the subject; `email`, `email_verified`, `name`,
    /// `preferred_username` (or `login`) and the groups field are read when
    /// present.
    pub fn new(
        authorization_endpoint: impl Into<String>,
        token_endpoint: impl Into<String>,
        user_endpoint: impl Into<String>,
        client_id: impl Into<String>,
    ) -> Self {
        Self {
            authorization_endpoint: authorization_endpoint.into(),
            token_endpoint: token_endpoint.into(),
            user_endpoint: user_endpoint.into(),
            client_id: client_id.into(),
            client_secret: None,
            scopes: Vec::new(),
            github_api: None,
        }
    }

    /// GitHub (github.com): an OAuth app (or a GitHub App's user
    /// authorization) whose callback URL is mcp-bastion's
    /// (`<issuer>/oauth/callback`). Scopes: `read:user user:email`, plus
    /// `read:org` when logins are allowed by organisation or team. The
    /// subject is the user's numeric id, as a string (a login can be
    /// renamed; the id cannot).
    pub fn github(client_id: impl Into<String>) -> Self {
        Self::github_at("https://github.com", "https://api.github.com", client_id)
    }

    /// GitHub Enterprise Server at `base` (`https://github.example.com`):
    /// the web flow there, the REST API at `<base>/api/v3`.
    pub fn github_enterprise(base: impl Into<String>, client_id: impl Into<String>) -> Self {
        let base = base.into().trim_end_matches('/').to_owned();
        let api = format!("{base}/api/v3");
        Self::github_at(&base, &api, client_id)
    }

    fn github_at(web: &str, api: &str, client_id: impl Into<String>) -> Self {
        Self {
            authorization_endpoint: format!("{web}/login/oauth/authorize"),
            token_endpoint: format!("{web}/login/oauth/access_token"),
            user_endpoint: format!("{api}/user"),
            client_id: client_id.into(),
            client_secret: None,
            scopes: vec!["read:user".into(), "user:email".into()],
            github_api: Some(api.to_owned()),
        }
    }

    /// mcp-bastion's client secret at the provider (sent in the form,
    /// `client_secret_post`, as GitHub wants; `client_secret_basic` for
    /// other providers).
    pub fn client_secret(mut self, secret: impl Into<String>) -> Self {
        self.client_secret = Some(secret.into());
        self
    }

    /// The scopes asked of the provider (replacing the defaults).
    pub fn scopes<I: IntoIterator<Item = S>, S: Into<String>>(mut self, scopes: I) -> Self {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }
}

/// A plain OAuth 2 provider, ready to use.
#[derive(Clone)]
pub(crate) struct UserApiLogin {
    config: UpstreamOAuth2,
    pub(crate) client: TokenClient,
    http: reqwest::Client,
    lookups: Lookups,
}

/// One of GitHub's `/user/emails` entries.
#[derive(Deserialize)]
struct GitHubEmail {
    email: String,
    #[serde(default)]
    primary: bool,
    #[serde(default)]
    verified: bool,
}

impl UserApiLogin {
    pub(crate) fn new(
        mut config: UpstreamOAuth2,
        http: reqwest::Client,
        lookups: Lookups,
    ) -> Result<Self, OAuthConfigError> {
        let wants_memberships = !lookups.github_orgs.is_empty() || !lookups.github_teams.is_empty();
        if wants_memberships {
            if config.github_api.is_none() {
                return Err(OAuthConfigError::GitHubOnly);
            }
            if !config.scopes.iter().any(|s| s == "read:org") {
                config.scopes.push("read:org".into());
            }
        }
        for url in [
            &config.authorization_endpoint,
            &config.token_endpoint,
            &config.user_endpoint,
        ] {
            if !url::Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "https" | "http")) {
                return Err(OAuthConfigError::NoUpstream);
            }
        }
        let client = if config.github_api.is_some() {
            TokenClient::post(config.client_id.clone(), config.client_secret.clone())
        } else {
            TokenClient::basic(config.client_id.clone(), config.client_secret.clone())
        };
        Ok(Self {
            config,
            client,
            http,
            lookups,
        })
    }

    pub(crate) fn authorization_url(
        &self,
        redirect_uri: &str,
        state: &str,
        code_challenge: &str,
    ) -> Result<String, UpstreamError> {
        super::authorization_url(
            &self.config.authorization_endpoint,
            &self.config.client_id,
            redirect_uri,
            &self.config.scopes,
            state,
            code_challenge,
        )
        .map(Into::into)
    }

    pub(crate) async fn exchange(
        &self,
        code: &str,
        redirect_uri: &str,
        verifier: &str,
    ) -> Result<(Identity, UpstreamTokens), UpstreamError> {
        let tokens = self
            .client
            .exchange_code(
                &self.http,
                &self.config.token_endpoint,
                code,
                redirect_uri,
                verifier,
            )
            .await?;
        let upstream = tokens.upstream_tokens();
        let user = self
            .get(&self.config.user_endpoint, &upstream.access_token)
            .await?
            .ok_or(UpstreamError::UserEndpoint)?;
        let mut identity = self.identity(&user)?;
        if let Some(api) = &self.config.github_api {
            // an email from /user is the public one, verified or not: only
            // /user/emails says which are verified
            identity.email_verified = false;
            if tokens.granted("user:email") || tokens.granted("user") {
                self.github_emails(api, &upstream.access_token, &mut identity)
                    .await?;
            }
            self.github_memberships(api, &upstream.access_token, &mut identity)
                .await?;
        }
        Ok((identity, upstream))
    }

    /// The `refresh_token` grant (GitHub Apps' user tokens expire and
    /// refresh; OAuth apps' do not).
    pub(crate) async fn refresh(
        &self,
        refresh_token: &str,
    ) -> Result<super::TokenResponse, UpstreamError> {
        self.client
            .refresh(&self.http, &self.config.token_endpoint, refresh_token)
            .await
    }

    /// The identity in a user endpoint's answer.
    fn identity(&self, user: &Value) -> Result<Identity, UpstreamError> {
        let text = |name: &str| user.get(name).and_then(Value::as_str).map(str::to_owned);
        let sub = match user.get("sub").or_else(|| user.get("id")) {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => return Err(UpstreamError::UserEndpoint),
        };
        Ok(Identity {
            sub,
            email: text("email"),
            email_verified: user
                .get("email_verified")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            name: text("name"),
            login: text("preferred_username").or_else(|| text("login")),
            groups: strings(user.get(&self.lookups.groups_claim)),
            github_orgs: Vec::new(),
            github_teams: Vec::new(),
        })
    }

    /// The primary verified email, else the first verified one.
    async fn github_emails(
        &self,
        api: &str,
        token: &str,
        identity: &mut Identity,
    ) -> Result<(), UpstreamError> {
        let Some(emails) = self.get(&format!("{api}/user/emails"), token).await? else {
            return Ok(());
        };
        let emails: Vec<GitHubEmail> = serde_json::from_value(emails).unwrap_or_default();
        let chosen = emails
            .iter()
            .filter(|e| e.verified)
            .max_by_key(|e| e.primary);
        if let Some(e) = chosen {
            identity.email = Some(e.email.clone());
            identity.email_verified = true;
        }
        Ok(())
    }

    /// The organisations and teams of the login policy this user is an
    /// active member of (a pending invitation is not membership).
    async fn github_memberships(
        &self,
        api: &str,
        token: &str,
        identity: &mut Identity,
    ) -> Result<(), UpstreamError> {
        for org in &self.lookups.github_orgs {
            let url = api_url(api, &["user", "memberships", "orgs", org])?;
            if is_active(self.get(&url, token).await?.as_ref()) {
                identity.github_orgs.push(org.clone());
            }
        }
        let Some(login) = identity.login.clone() else {
            return Ok(());
        };
        for team in &self.lookups.github_teams {
            let Some((org, slug)) = team.split_once('/') else {
                continue;
            };
            let url = api_url(api, &["orgs", org, "teams", slug, "memberships", &login])?;
            if is_active(self.get(&url, token).await?.as_ref()) {
                identity.github_teams.push(team.clone());
            }
        }
        Ok(())
    }

    /// A GET with the user's token: the JSON of a 2xx, `None` for another
    /// 4xx (not a member, a scope not granted), unavailable otherwise.
    async fn get(&self, url: &str, token: &str) -> Result<Option<Value>, UpstreamError> {
        let mut req = self.http.get(url).bearer_auth(token);
        req = if self.config.github_api.is_some() {
            req.header(http::header::ACCEPT, "application/vnd.github+json")
                .header("X-GitHub-Api-Version", "2022-11-28")
        } else {
            req.header(http::header::ACCEPT, "application/json")
        };
        let res = req
            .send()
            .await
            .map_err(|e| UpstreamError::unreachable("user API", &e))?;
        let status = res.status();
        if status == http::StatusCode::UNAUTHORIZED {
            return Err(UpstreamError::UserEndpoint);
        }
        // a rate limit (GitHub: 429, or 403 with no requests left) says
        // nothing about membership: try again later rather than refuse
        let exhausted = res
            .headers()
            .get("x-ratelimit-remaining")
            .is_some_and(|v| v == "0");
        if status == http::StatusCode::TOO_MANY_REQUESTS
            || (status == http::StatusCode::FORBIDDEN && exhausted)
        {
            return Err(UpstreamError::Unavailable);
        }
        if status.is_client_error() {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(UpstreamError::Unavailable);
        }
        res.json()
            .await
            .map(Some)
            .map_err(|_| UpstreamError::UserEndpoint)
    }
}

/// `<api>/<segments…>`, each segment percent-encoded.
fn api_url(api: &str, segments: &[&str]) -> Result<String, UpstreamError> {
    let mut url = url::Url::parse(api).map_err(|_| UpstreamError::Unavailable)?;
    url.path_segments_mut()
        .map_err(|()| UpstreamError::Unavailable)?
        .pop_if_empty()
        .extend(segments);
    Ok(url.into())
}

/// Whether a membership answer says `"state": "active"`.
fn is_active(membership: Option<&Value>) -> bool {
    membership
        .and_then(|m| m.get("state"))
        .and_then(Value::as_str)
        == Some("active")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn membership_urls_encode_their_segments() {
        assert_eq!(
            api_url(
                "https://gh.example.com/api/v3",
                &["orgs", "a b", "teams", "x/y"]
            )
            .unwrap(),
            "https://gh.example.com/api/v3/orgs/a%20b/teams/x%2Fy"
        );
        assert!(is_active(Some(&serde_json::json!({"state": "active"}))));
        assert!(!is_active(Some(&serde_json::json!({"state": "pending"}))));
        assert!(!is_active(None));
    }
}
