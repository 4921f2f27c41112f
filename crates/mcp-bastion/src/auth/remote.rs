//! Authentication decided by a remote service: [`RemoteAuth`] (the
//! `GET <url>?apiKey=<key>` contract of existing MCP auth proxies) and
//! [`Introspection`] (RFC 7662 token introspection). Both have a timeout, a
//! cache bounded in size and by the token's own expiry, and answer
//! `Unavailable` (503) when the remote cannot be reached: never a pass,
//! never a silent 401.

use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use http::request::Parts;
use moka::{Expiry, future::Cache};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::{
    AuthError, AuthResult, Authenticator, Credential, InvalidToken, api_key::digest, jwt::scopes_of,
};
use crate::{boxed::BoxFuture, principal::Principal};

const TARGET: &str = "mcp_bastion::auth::remote";

/// Cache and timeout settings shared by [`RemoteAuth`] and [`Introspection`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemotePolicy {
    /// Time limit of one call (default 5 s).
    pub timeout: Duration,
    /// How long an accepted credential is remembered, at most (default 60 s;
    /// never past the token's `exp`).
    pub cache_ttl: Duration,
    /// How long a refused credential is remembered (default 5 s).
    pub negative_ttl: Duration,
    /// Most credentials remembered (default 10,000).
    pub max_entries: u64,
}

impl Default for RemotePolicy {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(5),
            cache_ttl: Duration::from_secs(60),
            negative_ttl: Duration::from_secs(5),
            max_entries: 10_000,
        }
    }
}

#[derive(Clone)]
struct Entry {
    outcome: Result<Principal, InvalidToken>,
    ttl: Duration,
}

struct EntryExpiry;

impl Expiry<[u8; 32], Entry> for EntryExpiry {
    fn expire_after_create(
        &self,
        _key: &[u8; 32],
        value: &Entry,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// Credentials are cached by their SHA-256 digest, never in clear.
#[derive(Clone)]
struct TokenCache {
    cache: Cache<[u8; 32], Entry>,
    policy: RemotePolicy,
}

impl TokenCache {
    fn new(policy: RemotePolicy) -> Self {
        Self {
            cache: Cache::builder()
                .max_capacity(policy.max_entries)
                .expire_after(EntryExpiry)
                .build(),
            policy,
        }
    }

    async fn get_or_check<F>(&self, secret: &str, check: F) -> AuthResult
    where
        F: Future<Output = Result<(Result<Principal, InvalidToken>, Option<u64>), AuthError>>
            + Send,
    {
        let policy = self.policy;
        let entry = self
            .cache
            .try_get_with(digest(secret), async move {
                let (outcome, exp) = check.await?;
                let ttl = match &outcome {
                    Ok(_) => {
                        let until_exp =
                            exp.map(|exp| Duration::from_secs(exp.saturating_sub(now())));
                        until_exp.map_or(policy.cache_ttl, |d| d.min(policy.cache_ttl))
                    }
                    Err(_) => policy.negative_ttl,
                };
                Ok::<_, AuthError>(Entry { outcome, ttl })
            })
            .await
            .map_err(|e: Arc<AuthError>| (*e).clone())?;
        entry.outcome.map(Some).map_err(AuthError::InvalidToken)
    }

    fn entry_count(&self) -> u64 {
        self.cache.entry_count()
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The answer of a remote auth endpoint.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RemoteAnswer {
    valid: bool,
    #[serde(default)]
    user_id: Option<String>,
    #[serde(default)]
    permissions: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
}

/// The contract existing MCP auth proxies use: `GET <url>?apiKey=<key>`
/// answers `{"valid": bool, "userId": "…", "permissions": [...], "env": {...}}`.
/// `permissions` become scopes, `env` the principal's env map (reaching a
/// stdio child only through the stdio backend's explicit `SessionEnv`
/// mapping).
///
/// ```
/// use mcp_bastion::auth::{RemoteAuth, RemotePolicy};
///
/// let remote = RemoteAuth::new("https://auth.internal/check", RemotePolicy::default());
/// # let _ = remote;
/// ```
#[derive(Clone)]
pub struct RemoteAuth {
    url: String,
    client: reqwest::Client,
    cache: TokenCache,
}

impl std::fmt::Debug for RemoteAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteAuth")
            .field("url", &self.url)
            .field("cached", &self.cache.entry_count())
            .finish()
    }
}

impl RemoteAuth {
    /// Checks credentials against `url`.
    pub fn new(url: impl Into<String>, policy: RemotePolicy) -> Self {
        Self {
            url: url.into(),
            client: reqwest::Client::new(),
            cache: TokenCache::new(policy),
        }
    }

    /// Uses this HTTP client.
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.client = client;
        self
    }

    async fn check(
        &self,
        key: &str,
    ) -> Result<(Result<Principal, InvalidToken>, Option<u64>), AuthError> {
        let unavailable = AuthError::Unavailable("the authentication service is unreachable");
        let res = self
            .client
            .get(&self.url)
            .query(&[("apiKey", key)])
            .timeout(self.cache.policy.timeout)
            .send()
            .await
            .map_err(|e| {
                // without_url: the URL now carries the key
                tracing::warn!(target: TARGET, error = %e.without_url(), "remote auth call failed");
                unavailable.clone()
            })?;
        let status = res.status();
        if status == http::StatusCode::UNAUTHORIZED || status == http::StatusCode::FORBIDDEN {
            return Ok((Err(InvalidToken::Rejected), None));
        }
        if !status.is_success() {
            tracing::warn!(target: TARGET, %status, "remote auth answered with an error");
            return Err(unavailable);
        }
        let answer: RemoteAnswer = res.json().await.map_err(|_| {
            tracing::warn!(target: TARGET, "remote auth answer is not {{valid, userId, permissions, env}}");
            AuthError::Unavailable("the authentication service answered nonsense")
        })?;
        if !answer.valid {
            return Ok((Err(InvalidToken::Rejected), None));
        }
        let Some(user) = answer.user_id.filter(|u| !u.is_empty()) else {
            return Ok((Err(InvalidToken::Rejected), None));
        };
        let p = Principal::new(user)
            .with_scopes(answer.permissions)
            .with_env(answer.env);
        Ok((Ok(p), None))
    }
}

impl Authenticator for RemoteAuth {
    fn authenticate<'a>(
        &'a self,
        _parts: &'a Parts,
        credential: Option<&'a Credential>,
    ) -> BoxFuture<'a, AuthResult> {
        Box::pin(async move {
            let Some(c) = credential else {
                return Ok(None);
            };
            self.cache
                .get_or_check(c.secret(), self.check(c.secret()))
                .await
        })
    }
}

/// RFC 7662 token introspection: `POST <url>` with `token=…` (and client
/// credentials by HTTP Basic, when configured); `active`, `sub`, `scope`,
/// `aud` and `exp` are checked.
#[derive(Clone)]
pub struct Introspection {
    url: String,
    client: reqwest::Client,
    client_auth: Option<(String, String)>,
    audiences: Vec<String>,
    cache: TokenCache,
}

impl std::fmt::Debug for Introspection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Introspection")
            .field("url", &self.url)
            .field("client_id", &self.client_auth.as_ref().map(|(id, _)| id))
            .field("audiences", &self.audiences)
            .finish()
    }
}

impl Introspection {
    /// Introspects tokens at `url`.
    pub fn new(url: impl Into<String>, policy: RemotePolicy) -> Self {
        Self {
            url: url.into(),
            client: reqwest::Client::new(),
            client_auth: None,
            audiences: Vec::new(),
            cache: TokenCache::new(policy),
        }
    }

    /// Authenticates to the introspection endpoint with HTTP Basic.
    pub fn client_credentials(mut self, id: impl Into<String>, secret: impl Into<String>) -> Self {
        self.client_auth = Some((id.into(), secret.into()));
        self
    }

    /// Requires `aud` to name one of these (RFC 8707); repeatable.
    pub fn audience(mut self, aud: impl Into<String>) -> Self {
        self.audiences.push(aud.into());
        self
    }

    /// Uses this HTTP client.
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.client = client;
        self
    }

    async fn check(
        &self,
        token: &str,
    ) -> Result<(Result<Principal, InvalidToken>, Option<u64>), AuthError> {
        let unavailable = AuthError::Unavailable("the introspection endpoint is unreachable");
        let mut req = self
            .client
            .post(&self.url)
            .form(&[("token", token), ("token_type_hint", "access_token")])
            .timeout(self.cache.policy.timeout);
        if let Some((id, secret)) = &self.client_auth {
            req = req.basic_auth(id, Some(secret));
        }
        let res = req.send().await.map_err(|e| {
            tracing::warn!(target: TARGET, error = %e.without_url(), "introspection call failed");
            unavailable.clone()
        })?;
        if !res.status().is_success() {
            tracing::warn!(target: TARGET, status = %res.status(), "introspection answered with an error");
            return Err(unavailable);
        }
        let claims: Map<String, Value> = res
            .json()
            .await
            .map_err(|_| AuthError::Unavailable("the introspection endpoint answered nonsense"))?;
        if claims.get("active") != Some(&Value::Bool(true)) {
            return Ok((Err(InvalidToken::Rejected), None));
        }
        let exp = claims.get("exp").and_then(Value::as_u64);
        if exp.is_some_and(|exp| exp <= now()) {
            return Ok((Err(InvalidToken::Expired), None));
        }
        if claims
            .get("nbf")
            .and_then(Value::as_u64)
            .is_some_and(|nbf| nbf > now() + 60)
        {
            return Ok((Err(InvalidToken::NotYetValid), None));
        }
        if !self.audiences.is_empty() {
            let ok = match claims.get("aud") {
                Some(Value::String(a)) => self.audiences.contains(a),
                Some(Value::Array(items)) => items
                    .iter()
                    .filter_map(Value::as_str)
                    .any(|a| self.audiences.iter().any(|w| w == a)),
                _ => false,
            };
            if !ok {
                return Ok((Err(InvalidToken::WrongAudience), None));
            }
        }
        let subject = ["sub", "username", "client_id"]
            .iter()
            .find_map(|k| claims.get(*k).and_then(Value::as_str))
            .map(str::to_owned);
        let Some(subject) = subject else {
            return Ok((Err(InvalidToken::MissingClaim), None));
        };
        let scopes = scopes_of(&claims, None);
        Ok((
            Ok(Principal::new(subject)
                .with_scopes(scopes)
                .with_claims(claims)),
            exp,
        ))
    }
}

impl Authenticator for Introspection {
    fn authenticate<'a>(
        &'a self,
        _parts: &'a Parts,
        credential: Option<&'a Credential>,
    ) -> BoxFuture<'a, AuthResult> {
        Box::pin(async move {
            let Some(c) = credential else {
                return Ok(None);
            };
            self.cache
                .get_or_check(c.secret(), self.check(c.secret()))
                .await
        })
    }
}
