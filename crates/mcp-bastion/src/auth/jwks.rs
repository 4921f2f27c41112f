//! [`JwksCache`]: a JSON Web Key Set fetched from a URL (or found through
//! OIDC discovery), cached per `Cache-Control`, refetched on an unknown `kid`
//! at most once per interval, and served stale while a refetch fails.

use std::{
    sync::{
        RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use jsonwebtoken::{Algorithm, DecodingKey, jwk::JwkSet};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::sync::{Mutex, OnceCell};

use super::{AuthError, InvalidToken};

const TARGET: &str = "mcp_bastion::auth::jwks";

/// When a [`JwksCache`] fetches its key set. An explicit value, shared by
/// every request, so that the refresh behaviour is visible in configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JwksPolicy {
    /// How long a key set stays fresh when the response has no usable
    /// `Cache-Control: max-age` (default 5 minutes).
    pub fallback_ttl: Duration,
    /// The longest a key set stays fresh whatever `max-age` says (default 24 h).
    pub max_ttl: Duration,
    /// The least time between two fetches (default 30 s): a storm of tokens
    /// with unknown `kid`s causes at most one fetch per interval, and a
    /// failing endpoint is retried no more often.
    pub min_refetch_interval: Duration,
    /// Time limit of one fetch (default 5 s).
    pub timeout: Duration,
}

impl Default for JwksPolicy {
    fn default() -> Self {
        Self {
            fallback_ttl: Duration::from_secs(300),
            max_ttl: Duration::from_secs(24 * 3600),
            min_refetch_interval: Duration::from_secs(30),
            timeout: Duration::from_secs(5),
        }
    }
}

#[derive(Clone)]
struct CachedKey {
    kid: Option<String>,
    alg: Option<Algorithm>,
    key: DecodingKey,
}

#[derive(Default)]
struct State {
    keys: Vec<CachedKey>,
    loaded: bool,
    expires_at: Option<Instant>,
    last_attempt: Option<Instant>,
}

#[derive(Debug)]
enum Source {
    Url(String),
    Oidc {
        issuer: String,
        jwks_uri: OnceCell<String>,
    },
}

/// A cached JSON Web Key Set: fetched from a URL or found through OIDC
/// discovery, cached per `Cache-Control`, refetched on an unknown `kid` at most
/// once per [`JwksPolicy::min_refetch_interval`], served stale while a refetch
/// fails.
pub struct JwksCache {
    source: Source,
    client: reqwest::Client,
    policy: JwksPolicy,
    state: RwLock<State>,
    refetch: Mutex<()>,
    fetches: AtomicU64,
    /// Bumped whenever a fetch brings a key set different from the last.
    generation: AtomicU64,
    /// SHA-256 of the last key set's body.
    last_body: std::sync::Mutex<[u8; 32]>,
}

impl std::fmt::Debug for JwksCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksCache")
            .field("source", &self.source)
            .field("policy", &self.policy)
            .field("fetches", &self.fetch_count())
            .finish()
    }
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

impl JwksCache {
    /// A key set fetched from `url`.
    pub fn from_url(url: impl Into<String>, client: reqwest::Client, policy: JwksPolicy) -> Self {
        Self::new(Source::Url(url.into()), client, policy)
    }

    /// A key set found through OIDC discovery: `jwks_uri` from
    /// `<issuer>/.well-known/openid-configuration`, whose `issuer` must equal
    /// `issuer`. Discovery happens on first use and is retried (per the
    /// policy's interval) until it succeeds.
    pub fn from_oidc_issuer(
        issuer: impl Into<String>,
        client: reqwest::Client,
        policy: JwksPolicy,
    ) -> Self {
        Self::new(
            Source::Oidc {
                issuer: issuer.into(),
                jwks_uri: OnceCell::new(),
            },
            client,
            policy,
        )
    }

    fn new(source: Source, client: reqwest::Client, policy: JwksPolicy) -> Self {
        Self {
            source,
            client,
            policy,
            state: RwLock::new(State::default()),
            refetch: Mutex::new(()),
            fetches: AtomicU64::new(0),
            generation: AtomicU64::new(0),
            last_body: std::sync::Mutex::new([0; 32]),
        }
    }

    /// Number of key-set fetches attempted so far (discovery not counted).
    pub fn fetch_count(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// Changes whenever a fetch brings a key set that differs from the one
    /// before (a key added, removed or replaced): what a token verified
    /// earlier was verified against is then no longer the current set.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Whether the key set is loaded and within its time to live.
    pub fn is_fresh(&self) -> bool {
        self.state
            .read()
            .map(|s| s.expires_at.is_some_and(|t| t > Instant::now()))
            .unwrap_or(false)
    }

    /// The key for a token's `kid` and `alg`, fetching the set when it is
    /// stale or does not know the `kid` (at most once per interval).
    ///
    /// # Errors
    ///
    /// `InvalidToken(UnknownKey)` when no key fits; `Unavailable` when no key
    /// set could ever be fetched.
    pub async fn key_for(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<DecodingKey, AuthError> {
        let requested = Instant::now();
        let (found, fresh, may_fetch) = self.lookup(kid, alg, requested);
        if let Some(key) = found.as_ref().filter(|_| fresh) {
            return Ok(key.clone());
        }
        if may_fetch {
            self.refresh(requested).await;
        } else if found.is_none() {
            // another task's fetch may be in flight (the very first one, when
            // many requests arrive together): wait for its keys rather than
            // answering 503 or `unknown key` before they land
            drop(self.refetch.lock().await);
        }
        let (found, _, _) = self.lookup(kid, alg, Instant::now());
        if let Some(key) = found {
            return Ok(key);
        }
        let loaded = self.state.read().map(|s| s.loaded).unwrap_or(false);
        if loaded {
            Err(InvalidToken::UnknownKey.into())
        } else {
            Err(AuthError::Unavailable(
                "the JSON Web Key Set could not be fetched",
            ))
        }
    }

    /// (key, whether the set is fresh, whether a fetch is allowed now).
    fn lookup(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
        now: Instant,
    ) -> (Option<DecodingKey>, bool, bool) {
        let Ok(state) = self.state.read() else {
            return (None, false, false);
        };
        let fresh = state.expires_at.is_some_and(|t| t > now);
        let may_fetch = state
            .last_attempt
            .is_none_or(|t| now.duration_since(t) >= self.policy.min_refetch_interval);
        let fits =
            |k: &&CachedKey| k.key.family() == alg.family() && k.alg.is_none_or(|a| a == alg);
        let found = match kid {
            Some(kid) => state
                .keys
                .iter()
                .filter(fits)
                .find(|k| k.kid.as_deref() == Some(kid)),
            None => {
                let mut candidates = state.keys.iter().filter(fits);
                match (candidates.next(), candidates.next()) {
                    (Some(only), None) => Some(only),
                    _ => None,
                }
            }
        };
        (found.map(|k| k.key.clone()), fresh, may_fetch)
    }

    /// Fetches the set unless another task fetched since `requested`.
    async fn refresh(&self, requested: Instant) {
        let _guard = self.refetch.lock().await;
        {
            let Ok(mut state) = self.state.write() else {
                return;
            };
            if state.last_attempt.is_some_and(|t| t >= requested) {
                return;
            }
            if state
                .last_attempt
                .is_some_and(|t| t.elapsed() < self.policy.min_refetch_interval)
            {
                return;
            }
            state.last_attempt = Some(Instant::now());
        }
        match self.fetch().await {
            Ok((keys, ttl)) => {
                tracing::debug!(target: TARGET, keys = keys.len(), ttl_secs = ttl.as_secs(), "fetched JSON Web Key Set");
                if let Ok(mut state) = self.state.write() {
                    state.keys = keys;
                    state.loaded = true;
                    state.expires_at = Some(Instant::now() + ttl);
                }
            }
            Err(why) => {
                tracing::warn!(target: TARGET, error = %why, "JSON Web Key Set fetch failed; keeping the keys already known");
            }
        }
    }

    async fn jwks_uri(&self) -> Result<String, String> {
        match &self.source {
            Source::Url(url) => Ok(url.clone()),
            Source::Oidc { issuer, jwks_uri } => jwks_uri
                .get_or_try_init(|| async {
                    let url = format!(
                        "{}/.well-known/openid-configuration",
                        issuer.trim_end_matches('/')
                    );
                    let doc: Discovery = self
                        .client
                        .get(&url)
                        .timeout(self.policy.timeout)
                        .send()
                        .await
                        .and_then(reqwest::Response::error_for_status)
                        .map_err(|e| {
                            format!("OIDC discovery at {url} failed: {}", e.without_url())
                        })?
                        .json()
                        .await
                        .map_err(|_| {
                            format!("OIDC discovery at {url}: not a discovery document")
                        })?;
                    if doc.issuer.trim_end_matches('/') != issuer.trim_end_matches('/') {
                        return Err(format!(
                            "OIDC discovery at {url}: issuer {:?} is not {issuer:?}",
                            doc.issuer
                        ));
                    }
                    Ok(doc.jwks_uri)
                })
                .await
                .cloned(),
        }
    }

    async fn fetch(&self) -> Result<(Vec<CachedKey>, Duration), String> {
        let url = self.jwks_uri().await?;
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let res = self
            .client
            .get(&url)
            .timeout(self.policy.timeout)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| format!("GET {url}: {}", e.without_url()))?;
        let ttl = res
            .headers()
            .get(http::header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .and_then(max_age)
            .map(|age| age.min(self.policy.max_ttl))
            .unwrap_or(self.policy.fallback_ttl);
        let body = res
            .bytes()
            .await
            .map_err(|e| format!("GET {url}: {}", e.without_url()))?;
        let set: JwkSet = serde_json::from_slice(&body)
            .map_err(|_| format!("GET {url}: not a JSON Web Key Set"))?;
        let digest: [u8; 32] = Sha256::digest(&body).into();
        if let Ok(mut last) = self.last_body.lock()
            && *last != digest
        {
            *last = digest;
            self.generation.fetch_add(1, Ordering::AcqRel);
        }
        let mut keys = Vec::with_capacity(set.keys.len());
        for jwk in &set.keys {
            let Ok(key) = DecodingKey::from_jwk(jwk) else {
                tracing::debug!(target: TARGET, kid = ?jwk.common.key_id, "skipping a key of an unsupported type");
                continue;
            };
            if matches!(
                jwk.common.public_key_use,
                Some(jsonwebtoken::jwk::PublicKeyUse::Encryption)
            ) {
                continue;
            }
            // `alg` of an encryption key (RSA-OAEP…) names no signature algorithm
            let alg = match jwk.common.key_algorithm {
                None => None,
                Some(a) => match format!("{a:?}").parse::<Algorithm>() {
                    Ok(a) => Some(a),
                    Err(_) => continue,
                },
            };
            keys.push(CachedKey {
                kid: jwk.common.key_id.clone(),
                alg,
                key,
            });
        }
        Ok((keys, ttl))
    }
}

/// `max-age` of a `Cache-Control` value; `no-store`/`no-cache` mean 0.
fn max_age(value: &str) -> Option<Duration> {
    let mut age = None;
    for directive in value.split(',') {
        let d = directive.trim().to_ascii_lowercase();
        if d == "no-store" || d == "no-cache" {
            return Some(Duration::ZERO);
        }
        if let Some(v) = d.strip_prefix("max-age=") {
            age = v
                .trim_matches('"')
                .parse::<u64>()
                .ok()
                .map(Duration::from_secs);
        }
    }
    age
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_max_age() {
        assert_eq!(max_age("public, max-age=60"), Some(Duration::from_secs(60)));
        assert_eq!(max_age("no-store"), Some(Duration::ZERO));
        assert_eq!(max_age("public"), None);
    }
}
