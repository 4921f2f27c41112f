//! An OpenID Connect provider found by discovery: mcp-bastion's PKCE,
//! `state` and `nonce` on the way out; on the way back the code exchange and
//! the ID token check (signature through the existing
//! [`JwksCache`](crate::auth::JwksCache), `iss`, `aud`, `exp`, `nonce`).

use std::{fmt, sync::Arc};

use serde::Deserialize;
use serde_json::Value;
use tokio::sync::OnceCell;

use super::{Identity, TokenClient, UpstreamError, UpstreamTokens, strings};
use crate::auth::{AuthError, JwtAuthenticator};

/// An OIDC identity provider that users log in with.
///
/// ```
/// use mcp_bastion::auth::oauth::UpstreamOidc;
///
/// let idp = UpstreamOidc::new("https://accounts.example.com", "mcp-bastion")
///     .client_secret("from-the-environment")
///     .scopes(["openid", "email"]);
/// assert!(!format!("{idp:?}").contains("from-the-environment"));
/// ```
#[derive(Clone)]
pub struct UpstreamOidc {
    pub(crate) issuer: String,
    pub(crate) client_id: String,
    pub(crate) client_secret: Option<String>,
    pub(crate) scopes: Vec<String>,
}

impl fmt::Debug for UpstreamOidc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamOidc")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "…"))
            .field("scopes", &self.scopes)
            .finish()
    }
}

impl UpstreamOidc {
    /// A provider by its issuer (discovery at
    /// `<issuer>/.well-known/openid-configuration`) and mcp-bastion's client
    /// id there. Scopes default to `openid email profile`.
    pub fn new(issuer: impl Into<String>, client_id: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into().trim_end_matches('/').to_owned(),
            client_id: client_id.into(),
            client_secret: None,
            scopes: vec!["openid".into(), "email".into(), "profile".into()],
        }
    }

    /// mcp-bastion's client secret at the provider (sent with
    /// `client_secret_basic`).
    pub fn client_secret(mut self, secret: impl Into<String>) -> Self {
        self.client_secret = Some(secret.into());
        self
    }

    /// The scopes asked of the provider (`openid` is always included; add
    /// the one that releases the groups claim, e.g. `groups`, when logins
    /// are allowed by group).
    pub fn scopes<I: IntoIterator<Item = S>, S: Into<String>>(mut self, scopes: I) -> Self {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        if !self.scopes.iter().any(|s| s == "openid") {
            self.scopes.insert(0, "openid".into());
        }
        self
    }
}

/// The provider's endpoints from discovery.
#[derive(Debug, Deserialize)]
pub(crate) struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    pub(crate) token_endpoint: String,
}

/// An OIDC provider, ready to use.
#[derive(Clone)]
pub(crate) struct OidcLogin {
    config: UpstreamOidc,
    pub(crate) client: TokenClient,
    http: reqwest::Client,
    discovery: Arc<OnceCell<Discovery>>,
    id_tokens: JwtAuthenticator,
    groups_claim: String,
}

impl OidcLogin {
    pub(crate) fn new(
        config: UpstreamOidc,
        http: reqwest::Client,
        groups_claim: String,
    ) -> Result<Self, crate::auth::oauth::OAuthConfigError> {
        let id_tokens = JwtAuthenticator::builder()
            .oidc_issuer(config.issuer.clone())
            .audience(config.client_id.clone())
            .http_client(http.clone())
            .no_verified_cache()
            .build()
            .map_err(|_| crate::auth::oauth::OAuthConfigError::NoUpstream)?;
        let client = TokenClient::basic(config.client_id.clone(), config.client_secret.clone());
        Ok(Self {
            config,
            client,
            http,
            discovery: Arc::new(OnceCell::new()),
            id_tokens,
            groups_claim,
        })
    }

    pub(crate) async fn discovery(&self) -> Result<&Discovery, UpstreamError> {
        self.discovery
            .get_or_try_init(|| async {
                let url = format!("{}/.well-known/openid-configuration", self.config.issuer);
                let doc: Discovery = self
                    .http
                    .get(url)
                    .send()
                    .await
                    .and_then(reqwest::Response::error_for_status)
                    .map_err(|e| UpstreamError::unreachable("discovery", &e))?
                    .json()
                    .await
                    .map_err(|e| UpstreamError::unreachable("discovery", &e))?;
                if doc.issuer.trim_end_matches('/') != self.config.issuer {
                    return Err(UpstreamError::Unavailable);
                }
                Ok(doc)
            })
            .await
    }

    pub(crate) async fn authorization_url(
        &self,
        redirect_uri: &str,
        state: &str,
        nonce: &str,
        code_challenge: &str,
    ) -> Result<String, UpstreamError> {
        let d = self.discovery().await?;
        let mut url = super::authorization_url(
            &d.authorization_endpoint,
            &self.config.client_id,
            redirect_uri,
            &self.config.scopes,
            state,
            code_challenge,
        )?;
        url.query_pairs_mut().append_pair("nonce", nonce);
        Ok(url.into())
    }

    pub(crate) async fn exchange(
        &self,
        code: &str,
        redirect_uri: &str,
        verifier: &str,
        nonce: &str,
    ) -> Result<(Identity, UpstreamTokens), UpstreamError> {
        let d = self.discovery().await?;
        let tokens = self
            .client
            .exchange_code(&self.http, &d.token_endpoint, code, redirect_uri, verifier)
            .await?;
        let id_token = tokens.id_token.as_deref().ok_or(UpstreamError::IdToken)?;
        let identity = self.verify_id_token(id_token, nonce).await?;
        Ok((identity, tokens.upstream_tokens()))
    }

    /// The `refresh_token` grant at the discovered token endpoint.
    pub(crate) async fn refresh(
        &self,
        refresh_token: &str,
    ) -> Result<super::TokenResponse, UpstreamError> {
        let d = self.discovery().await?;
        self.client
            .refresh(&self.http, &d.token_endpoint, refresh_token)
            .await
    }

    async fn verify_id_token(&self, token: &str, nonce: &str) -> Result<Identity, UpstreamError> {
        let principal = self.id_tokens.verify(token).await.map_err(|e| match e {
            AuthError::Unavailable(_) => UpstreamError::Unavailable,
            _ => UpstreamError::IdToken,
        })?;
        let claims = principal.claims();
        let got = claims.get("nonce").and_then(Value::as_str).unwrap_or("");
        if !crate::auth::oauth::constant_time_eq(got, nonce) {
            return Err(UpstreamError::Nonce);
        }
        let text = |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_owned);
        Ok(Identity {
            sub: principal.subject().to_owned(),
            email: text("email"),
            email_verified: claims
                .get("email_verified")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            name: text("name"),
            login: text("preferred_username"),
            groups: strings(claims.get(&self.groups_claim)),
            github_orgs: Vec::new(),
            github_teams: Vec::new(),
        })
    }
}
