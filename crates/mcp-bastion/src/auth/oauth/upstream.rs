//! The operator's identity provider: where users are sent to log in (with
//! mcp-bastion's own PKCE and `state`), the code exchange, and who came
//! back. Two kinds of provider, one enum:
//!
//! | kind | configured by | identity from |
//! |---|---|---|
//! | OpenID Connect ([`UpstreamOidc`], `oidc`) | the issuer (discovery) | the ID token: signature through the JWKS cache, `iss`, `aud`, `exp`, `nonce`; the groups claim |
//! | plain OAuth 2 ([`UpstreamOAuth2`], `user_api`) | its endpoints, or the GitHub preset | the user endpoint (`GET /user`); for GitHub also its verified emails and the organisation and team memberships the login policy names |
//!
//! What both share sits here: the token request ([`TokenClient`], which
//! reads JSON or form-encoded answers), the tokens kept with a grant
//! ([`UpstreamTokens`]) and the [`Identity`] the login policy judges.

mod oidc;
mod user_api;

use std::{fmt, time::Duration};

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use oidc::UpstreamOidc;
pub use user_api::UpstreamOAuth2;

/// The identity provider users log in with: what
/// [`OAuthServerBuilder::upstream`](super::OAuthServerBuilder::upstream)
/// takes (an [`UpstreamOidc`] or an [`UpstreamOAuth2`] converts into it).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum UpstreamProvider {
    /// An OpenID Connect provider, by discovery.
    Oidc(UpstreamOidc),
    /// A plain OAuth 2 provider with a user endpoint (GitHub).
    OAuth2(UpstreamOAuth2),
}

impl From<UpstreamOidc> for UpstreamProvider {
    fn from(p: UpstreamOidc) -> Self {
        Self::Oidc(p)
    }
}

impl From<UpstreamOAuth2> for UpstreamProvider {
    fn from(p: UpstreamOAuth2) -> Self {
        Self::OAuth2(p)
    }
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

/// Who logged in, from a verified ID token or the user endpoint.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Identity {
    pub sub: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub name: Option<String>,
    /// The provider's user name (`preferred_username`, GitHub's `login`).
    #[serde(default)]
    pub login: Option<String>,
    /// The groups claim (OIDC, or the user endpoint's field of that name).
    #[serde(default)]
    pub groups: Vec<String>,
    /// The GitHub organisations of the login policy this user is an
    /// active member of.
    #[serde(default)]
    pub github_orgs: Vec<String>,
    /// The GitHub teams (`org/team`) of the login policy this user is an
    /// active member of.
    #[serde(default)]
    pub github_teams: Vec<String>,
}

/// Why the upstream login failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UpstreamError {
    /// Discovery, the token endpoint or the user API could not be reached.
    Unavailable,
    /// The provider refused the code.
    Exchange,
    /// The ID token is missing or does not verify (signature, iss, aud, exp).
    IdToken,
    /// The ID token's nonce is not this login's.
    Nonce,
    /// The user endpoint refused the token or named nobody.
    UserEndpoint,
}

impl UpstreamError {
    /// [`UpstreamError::Unavailable`] for a request to the provider that
    /// failed (`what`: which one), logged as a warning with its whole cause:
    /// users only see "temporarily unavailable", and the operator must learn
    /// why (a certificate from a CA that is not trusted, a name that does not
    /// resolve, a refused connection). The cause names the URL, which holds
    /// no credential; request bodies are never part of it.
    pub(crate) fn unreachable(what: &'static str, error: &reqwest::Error) -> Self {
        let mut cause = error.to_string();
        let mut source = std::error::Error::source(error);
        while let Some(next) = source {
            cause.push_str(": ");
            cause.push_str(&next.to_string());
            source = next.source();
        }
        tracing::warn!(what, cause, "identity provider request failed");
        Self::Unavailable
    }
}

/// What the login policy asks the provider about beyond who the user is.
#[derive(Debug, Clone, Default)]
pub(crate) struct Lookups {
    /// The claim (or user-endpoint field) that lists the user's groups.
    pub groups_claim: String,
    /// GitHub organisations to check membership of.
    pub github_orgs: Vec<String>,
    /// GitHub teams (`org/team`) to check membership of.
    pub github_teams: Vec<String>,
}

/// The provider, ready to use.
#[derive(Clone)]
pub(crate) enum Upstream {
    Oidc(oidc::OidcLogin),
    UserApi(user_api::UserApiLogin),
}

impl Upstream {
    pub(crate) fn new(
        config: UpstreamProvider,
        lookups: Lookups,
        roots: &[Vec<u8>],
    ) -> Result<Self, super::OAuthConfigError> {
        let mut http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("mcp-bastion/", env!("CARGO_PKG_VERSION")));
        for pem in roots {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|_| super::OAuthConfigError::HttpClient)?;
            if certs.is_empty() {
                return Err(super::OAuthConfigError::HttpClient);
            }
            for cert in certs {
                http = http.add_root_certificate(cert);
            }
        }
        let http = http
            .build()
            .map_err(|_| super::OAuthConfigError::HttpClient)?;
        match config {
            UpstreamProvider::Oidc(c) => {
                if !lookups.github_orgs.is_empty() || !lookups.github_teams.is_empty() {
                    return Err(super::OAuthConfigError::GitHubOnly);
                }
                Ok(Self::Oidc(oidc::OidcLogin::new(
                    c,
                    http,
                    lookups.groups_claim,
                )?))
            }
            UpstreamProvider::OAuth2(c) => Ok(Self::UserApi(user_api::UserApiLogin::new(
                c, http, lookups,
            )?)),
        }
    }

    /// Where to send the browser to log in (`nonce` only goes to OIDC
    /// providers: a plain OAuth 2 provider issues no ID token).
    pub(crate) async fn authorization_url(
        &self,
        redirect_uri: &str,
        state: &str,
        nonce: &str,
        code_challenge: &str,
    ) -> Result<String, UpstreamError> {
        match self {
            Self::Oidc(p) => {
                p.authorization_url(redirect_uri, state, nonce, code_challenge)
                    .await
            }
            Self::UserApi(p) => p.authorization_url(redirect_uri, state, code_challenge),
        }
    }

    /// Exchanges the provider's code and learns who logged in.
    pub(crate) async fn exchange(
        &self,
        code: &str,
        redirect_uri: &str,
        verifier: &str,
        nonce: &str,
    ) -> Result<(Identity, UpstreamTokens), UpstreamError> {
        match self {
            Self::Oidc(p) => p.exchange(code, redirect_uri, verifier, nonce).await,
            Self::UserApi(p) => p.exchange(code, redirect_uri, verifier).await,
        }
    }
}

impl Upstream {
    /// The `refresh_token` grant at the provider: new tokens, keeping
    /// `refresh_token` when the provider does not rotate it. A refusal
    /// (4xx, or GitHub's 200 with `error`) is [`UpstreamError::Exchange`];
    /// an unreachable provider or a 5xx is `Unavailable`.
    pub(crate) async fn refresh(
        &self,
        refresh_token: &str,
    ) -> Result<UpstreamTokens, UpstreamError> {
        let answer = match self {
            Self::Oidc(p) => p.refresh(refresh_token).await?,
            Self::UserApi(p) => p.refresh(refresh_token).await?,
        };
        let mut tokens = answer.upstream_tokens();
        if tokens.refresh_token.is_none() {
            tokens.refresh_token = Some(refresh_token.to_owned());
        }
        Ok(tokens)
    }
}

/// The provider's authorization endpoint with the parameters every kind
/// sends: `code`, the client, the redirect URI, scopes, `state`, PKCE S256.
fn authorization_url(
    endpoint: &str,
    client_id: &str,
    redirect_uri: &str,
    scopes: &[String],
    state: &str,
    code_challenge: &str,
) -> Result<url::Url, UpstreamError> {
    let mut url = url::Url::parse(endpoint).map_err(|_| UpstreamError::Unavailable)?;
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("scope", &scopes.join(" "))
        .append_pair("state", state)
        .append_pair("code_challenge", code_challenge)
        .append_pair("code_challenge_method", "S256");
    Ok(url)
}

/// How mcp-bastion authenticates at a provider's token endpoint.
#[derive(Clone)]
pub(crate) struct TokenClient {
    client_id: String,
    client_secret: Option<String>,
    /// `client_secret_post` (GitHub's way) instead of `client_secret_basic`.
    secret_in_body: bool,
}

impl fmt::Debug for TokenClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenClient")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// A token endpoint's answer: JSON, or form-encoded (GitHub's answer when
/// `Accept` does not ask for JSON).
#[derive(Deserialize)]
pub(crate) struct TokenResponse {
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default, deserialize_with = "number_or_string")]
    expires_in: Option<u64>,
    #[serde(default)]
    pub(crate) id_token: Option<String>,
    /// The scopes granted (space- or, at GitHub, comma-separated).
    #[serde(default)]
    pub(crate) scope: Option<String>,
    /// GitHub answers a refused code with 200 and an `error`.
    #[serde(default)]
    error: Option<String>,
}

impl TokenResponse {
    pub(crate) fn upstream_tokens(&self) -> UpstreamTokens {
        UpstreamTokens {
            access_token: self.access_token.clone().unwrap_or_default(),
            refresh_token: self.refresh_token.clone(),
            expires_at: self.expires_in.map(|s| super::unix_now().saturating_add(s)),
        }
    }

    /// Whether the provider granted `scope` (when it says what it granted;
    /// an answer without `scope` granted what was asked).
    pub(crate) fn granted(&self, scope: &str) -> bool {
        self.scope.as_deref().is_none_or(|s| {
            s.split([' ', ','])
                .any(|g| g.trim().eq_ignore_ascii_case(scope))
        })
    }

    /// Reads a token endpoint's body by its content type.
    pub(crate) fn parse(content_type: &str, body: &[u8]) -> Option<Self> {
        let parsed: Self = if content_type.starts_with("application/x-www-form-urlencoded")
            || content_type.starts_with("text/plain")
        {
            serde_urlencoded::from_bytes(body).ok()?
        } else {
            serde_json::from_slice(body).ok()?
        };
        if parsed.error.is_some() || parsed.access_token.as_deref().is_none_or(str::is_empty) {
            return None;
        }
        Some(parsed)
    }
}

fn number_or_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.parse().ok(),
        _ => None,
    })
}

impl TokenClient {
    /// Credentials in `Authorization: Basic` (`client_secret_basic`).
    pub(crate) fn basic(client_id: String, client_secret: Option<String>) -> Self {
        Self {
            client_id,
            client_secret,
            secret_in_body: false,
        }
    }

    /// Credentials in the form (`client_secret_post`).
    pub(crate) fn post(client_id: String, client_secret: Option<String>) -> Self {
        Self {
            client_id,
            client_secret,
            secret_in_body: true,
        }
    }

    /// A token request: `params` plus the client's credentials, JSON asked
    /// for, the answer read as JSON or form.
    pub(crate) async fn request(
        &self,
        http: &reqwest::Client,
        endpoint: &str,
        params: &[(&str, &str)],
    ) -> Result<TokenResponse, UpstreamError> {
        let mut form: Vec<(&str, &str)> = params.to_vec();
        form.push(("client_id", &self.client_id));
        let mut req = http
            .post(endpoint)
            .header(http::header::ACCEPT, "application/json");
        match &self.client_secret {
            Some(secret) if self.secret_in_body => form.push(("client_secret", secret)),
            Some(secret) => {
                req = req.basic_auth(form_encode(&self.client_id), Some(form_encode(secret)));
            }
            None => {}
        }
        let res = req
            .form(&form)
            .send()
            .await
            .map_err(|e| UpstreamError::unreachable("token endpoint", &e))?;
        if res.status().is_server_error() {
            return Err(UpstreamError::Unavailable);
        }
        if !res.status().is_success() {
            return Err(UpstreamError::Exchange);
        }
        let content_type = res
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/json")
            .to_ascii_lowercase();
        let body = res.bytes().await.map_err(|_| UpstreamError::Unavailable)?;
        TokenResponse::parse(&content_type, &body).ok_or(UpstreamError::Exchange)
    }

    /// The `refresh_token` grant.
    pub(crate) async fn refresh(
        &self,
        http: &reqwest::Client,
        endpoint: &str,
        refresh_token: &str,
    ) -> Result<TokenResponse, UpstreamError> {
        self.request(
            http,
            endpoint,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
            ],
        )
        .await
    }

    /// The `authorization_code` grant with mcp-bastion's PKCE verifier.
    pub(crate) async fn exchange_code(
        &self,
        http: &reqwest::Client,
        endpoint: &str,
        code: &str,
        redirect_uri: &str,
        verifier: &str,
    ) -> Result<TokenResponse, UpstreamError> {
        self.request(
            http,
            endpoint,
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", redirect_uri),
                ("code_verifier", verifier),
            ],
        )
        .await
    }
}

/// A claim that is a list of strings or one string.
fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        Some(Value::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    }
}

/// RFC 6749 §2.3.1: client credentials in Basic are form-encoded first.
fn form_encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_answers_are_read_as_json_or_form_and_errors_in_a_200_are_refusals() {
        let form = TokenResponse::parse(
            "application/x-www-form-urlencoded; charset=utf-8",
            b"access_token=gho_abc&scope=read%3Auser%2Cuser%3Aemail&token_type=bearer",
        )
        .unwrap();
        assert_eq!(form.access_token.as_deref(), Some("gho_abc"));
        assert!(form.granted("user:email") && form.granted("read:user"));
        assert!(!form.granted("read:org"));
        let json = TokenResponse::parse(
            "application/json",
            br#"{"access_token":"t","expires_in":"28800","refresh_token":"r","scope":"a b"}"#,
        )
        .unwrap();
        assert_eq!(json.expires_in, Some(28800));
        assert!(json.granted("b"));
        // GitHub's refusal of a code: 200, form or JSON, with `error`
        assert!(
            TokenResponse::parse(
                "application/x-www-form-urlencoded",
                b"error=bad_verification_code&error_description=The+code+passed+is+incorrect+or+expired."
            )
            .is_none()
        );
        assert!(
            TokenResponse::parse("application/json", br#"{"error":"bad_verification_code"}"#)
                .is_none()
        );
        assert!(TokenResponse::parse("application/json", b"{}").is_none());
    }
}
