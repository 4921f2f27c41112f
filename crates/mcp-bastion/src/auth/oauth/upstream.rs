//! The operator's identity provider, found by OIDC discovery: where users
//! are sent to log in (with mcp-bastion's own PKCE, `state` and `nonce`),
//! the code exchange, and the ID token check (signature through the
//! existing [`JwksCache`](crate::auth::JwksCache), `iss`, `aud`, `exp`,
//! `nonce`).

use std::{fmt, sync::Arc, time::Duration};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::OnceCell;

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

    /// The scopes asked of the provider (`openid` is always included).
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
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
}

/// Tokens from the upstream login, kept with the grant. Its `Debug`
/// redacts every token.
#[derive(Clone, Default, Serialize, Deserialize)]
pub(crate) struct UpstreamTokens {
    pub access_token: String,
    #[serde(default)]
    pub refresh_token: Option<String>,
    /// Seconds since the epoch.
    #[serde(default)]
    pub expires_at: Option<u64>,
}

impl fmt::Debug for UpstreamTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UpstreamTokens(..)")
    }
}

/// Who logged in, from a verified ID token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Identity {
    pub sub: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub name: Option<String>,
}

/// Why the upstream login failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UpstreamError {
    /// Discovery or the token endpoint could not be reached.
    Unavailable,
    /// The provider refused the code.
    Exchange,
    /// The ID token is missing or does not verify (signature, iss, aud, exp).
    IdToken,
    /// The ID token's nonce is not this login's.
    Nonce,
}

/// The provider, ready to use.
#[derive(Clone)]
pub(crate) struct Upstream {
    config: UpstreamOidc,
    http: reqwest::Client,
    discovery: Arc<OnceCell<Discovery>>,
    id_tokens: JwtAuthenticator,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    id_token: Option<String>,
}

impl Upstream {
    pub(crate) fn new(config: UpstreamOidc) -> Result<Self, super::OAuthConfigError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|_| super::OAuthConfigError::HttpClient)?;
        let id_tokens = JwtAuthenticator::builder()
            .oidc_issuer(config.issuer.clone())
            .audience(config.client_id.clone())
            .http_client(http.clone())
            .no_verified_cache()
            .build()
            .map_err(|_| super::OAuthConfigError::NoUpstream)?;
        Ok(Self {
            config,
            http,
            discovery: Arc::new(OnceCell::new()),
            id_tokens,
        })
    }

    async fn discovery(&self) -> Result<&Discovery, UpstreamError> {
        self.discovery
            .get_or_try_init(|| async {
                let url = format!("{}/.well-known/openid-configuration", self.config.issuer);
                let doc: Discovery = self
                    .http
                    .get(url)
                    .send()
                    .await
                    .and_then(reqwest::Response::error_for_status)
                    .map_err(|_| UpstreamError::Unavailable)?
                    .json()
                    .await
                    .map_err(|_| UpstreamError::Unavailable)?;
                if doc.issuer.trim_end_matches('/') != self.config.issuer {
                    return Err(UpstreamError::Unavailable);
                }
                Ok(doc)
            })
            .await
    }

    /// Where to send the browser to log in.
    pub(crate) async fn authorization_url(
        &self,
        redirect_uri: &str,
        state: &str,
        nonce: &str,
        code_challenge: &str,
    ) -> Result<String, UpstreamError> {
        let d = self.discovery().await?;
        let mut url =
            url::Url::parse(&d.authorization_endpoint).map_err(|_| UpstreamError::Unavailable)?;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.config.client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", &self.config.scopes.join(" "))
            .append_pair("state", state)
            .append_pair("nonce", nonce)
            .append_pair("code_challenge", code_challenge)
            .append_pair("code_challenge_method", "S256");
        Ok(url.into())
    }

    /// Exchanges the provider's code and verifies the ID token.
    pub(crate) async fn exchange(
        &self,
        code: &str,
        redirect_uri: &str,
        verifier: &str,
        nonce: &str,
    ) -> Result<(Identity, UpstreamTokens), UpstreamError> {
        let d = self.discovery().await?;
        let mut req = self.http.post(&d.token_endpoint).form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", verifier),
            ("client_id", &self.config.client_id),
        ]);
        if let Some(secret) = &self.config.client_secret {
            req = req.basic_auth(
                form_encode(&self.config.client_id),
                Some(form_encode(secret)),
            );
        }
        let res = req.send().await.map_err(|_| UpstreamError::Unavailable)?;
        if res.status().is_server_error() {
            return Err(UpstreamError::Unavailable);
        }
        if !res.status().is_success() {
            return Err(UpstreamError::Exchange);
        }
        let tokens: TokenResponse = res.json().await.map_err(|_| UpstreamError::Exchange)?;
        let id_token = tokens.id_token.as_deref().ok_or(UpstreamError::IdToken)?;
        let identity = self.verify_id_token(id_token, nonce).await?;
        let expires_at = tokens
            .expires_in
            .map(|s| super::unix_now().saturating_add(s));
        Ok((
            identity,
            UpstreamTokens {
                access_token: tokens.access_token,
                refresh_token: tokens.refresh_token,
                expires_at,
            },
        ))
    }

    /// The `refresh_token` grant at the provider (the token manager's only
    /// call): new tokens, keeping `refresh_token` when the provider does
    /// not rotate it. A 4xx answer is [`UpstreamError::Exchange`] (the
    /// provider refused), anything else unreachable is `Unavailable`.
    pub(crate) async fn refresh(
        &self,
        refresh_token: &str,
    ) -> Result<UpstreamTokens, UpstreamError> {
        let d = self.discovery().await?;
        let mut req = self.http.post(&d.token_endpoint).form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", &self.config.client_id),
        ]);
        if let Some(secret) = &self.config.client_secret {
            req = req.basic_auth(
                form_encode(&self.config.client_id),
                Some(form_encode(secret)),
            );
        }
        let res = req.send().await.map_err(|_| UpstreamError::Unavailable)?;
        if !res.status().is_client_error() && !res.status().is_success() {
            return Err(UpstreamError::Unavailable);
        }
        if !res.status().is_success() {
            return Err(UpstreamError::Exchange);
        }
        let tokens: TokenResponse = res.json().await.map_err(|_| UpstreamError::Exchange)?;
        Ok(UpstreamTokens {
            access_token: tokens.access_token,
            refresh_token: tokens
                .refresh_token
                .or_else(|| Some(refresh_token.to_owned())),
            expires_at: tokens
                .expires_in
                .map(|s| super::unix_now().saturating_add(s)),
        })
    }

    async fn verify_id_token(&self, token: &str, nonce: &str) -> Result<Identity, UpstreamError> {
        let principal = self.id_tokens.verify(token).await.map_err(|e| match e {
            AuthError::Unavailable(_) => UpstreamError::Unavailable,
            _ => UpstreamError::IdToken,
        })?;
        let claims = principal.claims();
        let got = claims.get("nonce").and_then(Value::as_str).unwrap_or("");
        if !super::constant_time_eq(got, nonce) {
            return Err(UpstreamError::Nonce);
        }
        Ok(Identity {
            sub: principal.subject().to_owned(),
            email: claims
                .get("email")
                .and_then(Value::as_str)
                .map(str::to_owned),
            email_verified: claims
                .get("email_verified")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            name: claims
                .get("name")
                .and_then(Value::as_str)
                .map(str::to_owned),
        })
    }
}

/// RFC 6749 §2.3.1: client credentials in Basic are form-encoded first.
fn form_encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
