//! [`JwtAuthenticator`]: signed JWTs (RFC 7519) verified with a secret, PEM
//! keys, a JWKS URL or OIDC discovery; `iss`, `aud` (RFC 8707), `exp` and
//! `nbf` validated; an algorithm allowlist that never admits `none` and
//! never lets an HMAC algorithm verify with an asymmetric key.

use std::{sync::Arc, time::Duration};

use base64::Engine as _;
use http::request::Parts;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, errors::ErrorKind};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::{
    AuthError, AuthResult, Authenticator, Credential, InvalidToken, JwksCache, JwksPolicy,
};
use crate::{boxed::BoxFuture, principal::Principal};

/// Every algorithm jsonwebtoken verifies. `none` is not an algorithm here.
pub const ALL_ALGORITHMS: &[Algorithm] = &[
    Algorithm::HS256,
    Algorithm::HS384,
    Algorithm::HS512,
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

#[derive(Clone)]
enum Keys {
    Static(Vec<(Option<String>, DecodingKey)>),
    Jwks(Arc<JwksCache>),
}

/// Verifies JWT bearer tokens. Build it with [`JwtAuthenticator::builder`].
///
/// A token (any credential with a `.` or starting with `eyJ`) is refused
/// with a precise [`InvalidToken`] cause; other credentials are left to the
/// next authenticator. The principal's subject is `sub`, its scopes come
/// from `scope` (space-separated), `scp` (array or string) or a configured
/// claim, its claims are the payload, its key id the `jti`.
///
/// ```
/// use mcp_bastion::auth::JwtAuthenticator;
///
/// let jwt = JwtAuthenticator::builder()
///     .secret(b"a-long-random-shared-secret-of-32-bytes!")
///     .issuer("https://auth.example.com")
///     .audience("https://mcp.example.com/mcp")
///     .build()
///     .unwrap();
/// # let _ = jwt;
/// ```
#[derive(Clone)]
pub struct JwtAuthenticator {
    keys: Keys,
    algorithms: Vec<Algorithm>,
    issuers: Vec<String>,
    audiences: Vec<String>,
    leeway: Duration,
    scope_claim: Option<String>,
    verified: Option<VerifiedTokens>,
}

/// Tokens verified recently, by the SHA-256 of the whole token: a client
/// sends the same token with every request, and an RS256 signature check
/// costs far more (about 0.2 ms) than the rest of a request through the
/// stack. An entry is used only while the token is unexpired (`exp` plus
/// leeway), within the cache's time to live, and (for a key set) while the
/// key set is fresh and unchanged since the token was verified; otherwise
/// the token is verified again from scratch.
#[derive(Clone)]
struct VerifiedTokens {
    cache: moka::sync::Cache<[u8; 32], Arc<Verified>>,
}

struct Verified {
    principal: Principal,
    /// `exp`, seconds since the epoch.
    exp: u64,
    /// [`JwksCache::generation`] when verified (0 for static keys).
    generation: u64,
}

/// Default bound of the verified-token cache (entries).
const VERIFIED_CAPACITY: u64 = 10_000;
/// Default time to live of a verified token in the cache.
const VERIFIED_TTL: Duration = Duration::from_secs(60);

/// Seconds since the epoch.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl std::fmt::Debug for JwtAuthenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys = match &self.keys {
            Keys::Static(k) => format!("{} static key(s)", k.len()),
            Keys::Jwks(c) => format!("{c:?}"),
        };
        f.debug_struct("JwtAuthenticator")
            .field("keys", &keys)
            .field("algorithms", &self.algorithms)
            .field("issuers", &self.issuers)
            .field("audiences", &self.audiences)
            .field("leeway", &self.leeway)
            .field("verified_cache", &self.verified.is_some())
            .finish()
    }
}

/// Why a [`JwtAuthenticator`] could not be built. Never contains key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtConfigError {
    /// No key source was given.
    #[error("JWT: no key configured (a secret, a PEM key, a JWKS URL or an OIDC issuer)")]
    NoKeys,
    /// Several kinds of key source were given.
    #[error("JWT: configure one key source (static keys, a JWKS URL, or an OIDC issuer)")]
    ConflictingKeys,
    /// No audience: a token meant for another resource would be accepted.
    #[error("JWT: an audience is required (the resource URL, RFC 8707)")]
    NoAudience,
    /// A PEM key could not be read.
    #[error("JWT: the {0} PEM key is invalid")]
    BadPem(&'static str),
    /// The secret is too short to be safe.
    #[error("JWT: the HMAC secret must be at least 32 bytes")]
    ShortSecret,
    /// The algorithm allowlist is empty.
    #[error("JWT: the algorithm allowlist is empty")]
    NoAlgorithms,
}

/// Builds a [`JwtAuthenticator`]. `Debug` never prints key material.
#[derive(Default)]
pub struct JwtBuilder {
    statics: Vec<(Option<String>, DecodingKey)>,
    jwks_url: Option<String>,
    oidc_issuer: Option<String>,
    policy: JwksPolicy,
    client: Option<reqwest::Client>,
    algorithms: Option<Vec<Algorithm>>,
    issuers: Vec<String>,
    audiences: Vec<String>,
    leeway: Option<Duration>,
    scope_claim: Option<String>,
    verified_cache: Option<(u64, Duration)>,
    no_verified_cache: bool,
    error: Option<JwtConfigError>,
}

impl std::fmt::Debug for JwtBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtBuilder")
            .field("static_keys", &self.statics.len())
            .field("jwks_url", &self.jwks_url)
            .field("oidc_issuer", &self.oidc_issuer)
            .field("issuers", &self.issuers)
            .field("audiences", &self.audiences)
            .finish_non_exhaustive()
    }
}

impl JwtAuthenticator {
    /// A builder.
    pub fn builder() -> JwtBuilder {
        JwtBuilder::default()
    }

    /// The JWKS cache, when keys come from a key set.
    pub fn jwks(&self) -> Option<&Arc<JwksCache>> {
        match &self.keys {
            Keys::Jwks(c) => Some(c),
            Keys::Static(_) => None,
        }
    }

    /// Verifies a token and returns its principal.
    ///
    /// # Errors
    ///
    /// `InvalidToken` with the cause; `Unavailable` when the key set cannot
    /// be fetched.
    pub async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let Some(verified) = &self.verified else {
            return self.verify_uncached(token).await;
        };
        let digest = token_digest(token);
        if let Some(principal) = self.reuse(verified, &digest) {
            return Ok(principal);
        }
        let generation = match &self.keys {
            Keys::Static(_) => 0,
            Keys::Jwks(c) => c.generation(),
        };
        let principal = self.verify_uncached(token).await?;
        // `exp` is a required claim: every verified token has one
        if let Some(exp) = principal.claims().get("exp").and_then(Value::as_u64) {
            let entry = Verified {
                principal: principal.clone(),
                exp,
                generation,
            };
            verified.cache.insert(digest, Arc::new(entry));
        }
        Ok(principal)
    }

    /// The principal of a token verified earlier, while that verdict still
    /// holds (the token unexpired, the key set fresh and unchanged); a stale
    /// entry is dropped.
    fn reuse(&self, verified: &VerifiedTokens, digest: &[u8; 32]) -> Option<Principal> {
        let hit = verified.cache.get(digest)?;
        let unexpired = unix_now() < hit.exp.saturating_add(self.leeway.as_secs());
        let keys_unchanged = match &self.keys {
            Keys::Static(_) => true,
            Keys::Jwks(c) => c.is_fresh() && c.generation() == hit.generation,
        };
        if unexpired && keys_unchanged {
            return Some(hit.principal.clone());
        }
        verified.cache.invalidate(digest);
        None
    }

    /// [`verify`](Self::verify) without the verified-token cache.
    async fn verify_uncached(&self, token: &str) -> Result<Principal, AuthError> {
        let alg = self.check_header(token)?;
        let header = jsonwebtoken::decode_header(token).map_err(|_| InvalidToken::Malformed)?;
        let key = match &self.keys {
            Keys::Static(keys) => keys
                .iter()
                .filter(|(_, k)| k.family() == alg.family())
                .find(|(kid, _)| match (&header.kid, kid) {
                    (Some(want), Some(have)) => want == have,
                    _ => true,
                })
                .map(|(_, k)| k.clone())
                .ok_or(InvalidToken::UnknownKey)?,
            Keys::Jwks(cache) => cache.key_for(header.kid.as_deref(), alg).await?,
        };
        // The key decides the family: an HS256 header never meets an RSA key.
        if key.family() != alg.family() {
            return Err(InvalidToken::AlgorithmNotAllowed.into());
        }
        let mut v = Validation::new(alg);
        v.leeway = self.leeway.as_secs();
        v.validate_nbf = true;
        v.validate_exp = true;
        v.validate_aud = true;
        v.set_audience(&self.audiences);
        let mut required = vec!["exp", "aud", "sub"];
        if !self.issuers.is_empty() {
            v.set_issuer(&self.issuers);
            required.push("iss");
        }
        v.set_required_spec_claims(&required);
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &v)
            .map_err(|e| classify(e.kind()))?;
        Ok(self.principal(data.claims)?)
    }

    /// Checks the shape and `alg` by hand first, so that `alg: none` (which
    /// jsonwebtoken cannot even represent) is refused as such.
    fn check_header(&self, token: &str) -> Result<Algorithm, InvalidToken> {
        let mut segments = token.split('.');
        let (Some(h), Some(p), Some(s), None) = (
            segments.next(),
            segments.next(),
            segments.next(),
            segments.next(),
        ) else {
            return Err(InvalidToken::Malformed);
        };
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        if p.is_empty() || b64.decode(p).is_err() || b64.decode(s).is_err() {
            return Err(InvalidToken::Malformed);
        }
        let header: Map<String, Value> = b64
            .decode(h)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or(InvalidToken::Malformed)?;
        let Some(Value::String(name)) = header.get("alg") else {
            return Err(InvalidToken::Malformed);
        };
        let alg = self
            .algorithms
            .iter()
            .copied()
            .find(|a| format!("{a:?}") == *name)
            .ok_or(InvalidToken::AlgorithmNotAllowed)?;
        if s.is_empty() {
            return Err(InvalidToken::BadSignature);
        }
        Ok(alg)
    }

    fn principal(&self, claims: Map<String, Value>) -> Result<Principal, InvalidToken> {
        let Some(Value::String(sub)) = claims.get("sub") else {
            return Err(InvalidToken::MissingClaim);
        };
        let scopes = scopes_of(&claims, self.scope_claim.as_deref());
        let mut p = Principal::new(sub.clone()).with_scopes(scopes);
        if let Some(Value::String(jti)) = claims.get("jti") {
            p = p.with_key_id(jti.clone());
        }
        Ok(p.with_claims(claims))
    }
}

/// Scopes from a configured claim, else `scope` (space-separated), else `scp`.
pub(crate) fn scopes_of(claims: &Map<String, Value>, claim: Option<&str>) -> Vec<String> {
    let names: &[&str] = match claim {
        Some(c) => &[c][..],
        None => &["scope", "scp"],
    };
    for name in names {
        match claims.get(*name) {
            Some(Value::String(s)) => return s.split_whitespace().map(str::to_owned).collect(),
            Some(Value::Array(items)) => {
                return items
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect();
            }
            _ => {}
        }
    }
    Vec::new()
}

fn classify(kind: &ErrorKind) -> InvalidToken {
    match kind {
        ErrorKind::ExpiredSignature => InvalidToken::Expired,
        ErrorKind::ImmatureSignature => InvalidToken::NotYetValid,
        ErrorKind::InvalidAudience => InvalidToken::WrongAudience,
        ErrorKind::InvalidIssuer => InvalidToken::WrongIssuer,
        ErrorKind::InvalidSignature => InvalidToken::BadSignature,
        ErrorKind::MissingRequiredClaim(_) => InvalidToken::MissingClaim,
        ErrorKind::InvalidAlgorithm
        | ErrorKind::MissingAlgorithm
        | ErrorKind::InvalidAlgorithmName => InvalidToken::AlgorithmNotAllowed,
        _ => InvalidToken::Malformed,
    }
}

impl Authenticator for JwtAuthenticator {
    fn authenticate<'a>(
        &'a self,
        _parts: &'a Parts,
        credential: Option<&'a Credential>,
    ) -> BoxFuture<'a, AuthResult> {
        Box::pin(async move {
            match credential {
                Some(c) if c.looks_like_jwt() => self.verify(c.secret()).await.map(Some),
                _ => Ok(None),
            }
        })
    }

    /// Answers for a credential that is not a JWT, and for a token in the
    /// verified-token cache; anything else needs `authenticate`.
    fn authenticate_now(
        &self,
        _parts: &Parts,
        credential: Option<&Credential>,
    ) -> Option<AuthResult> {
        match credential {
            Some(c) if c.looks_like_jwt() => {
                let verified = self.verified.as_ref()?;
                self.reuse(verified, &token_digest(c.secret()))
                    .map(|p| Ok(Some(p)))
            }
            _ => Some(Ok(None)),
        }
    }
}

fn token_digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl JwtBuilder {
    fn fail(mut self, e: JwtConfigError) -> Self {
        self.error.get_or_insert(e);
        self
    }

    /// An HMAC secret (HS256/384/512), at least 32 bytes.
    pub fn secret(mut self, secret: &[u8]) -> Self {
        if secret.len() < 32 {
            return self.fail(JwtConfigError::ShortSecret);
        }
        self.statics.push((None, DecodingKey::from_secret(secret)));
        self
    }

    /// An RSA public key (RS*, PS*) in PEM.
    pub fn rsa_pem(self, pem: &[u8]) -> Self {
        self.pem(pem, DecodingKey::from_rsa_pem, "RSA")
    }

    /// An EC public key (ES256/384) in PEM.
    pub fn ec_pem(self, pem: &[u8]) -> Self {
        self.pem(pem, DecodingKey::from_ec_pem, "EC")
    }

    /// An Ed25519 public key (EdDSA) in PEM.
    pub fn ed_pem(self, pem: &[u8]) -> Self {
        self.pem(pem, DecodingKey::from_ed_pem, "Ed25519")
    }

    /// A PEM public key of any supported type (RSA, EC or Ed25519).
    pub fn public_key_pem(self, pem: &[u8]) -> Self {
        if let Ok(k) = DecodingKey::from_rsa_pem(pem) {
            return self.key(None, k);
        }
        if let Ok(k) = DecodingKey::from_ec_pem(pem) {
            return self.key(None, k);
        }
        self.ed_pem(pem)
    }

    fn pem(
        self,
        pem: &[u8],
        f: fn(&[u8]) -> jsonwebtoken::errors::Result<DecodingKey>,
        kind: &'static str,
    ) -> Self {
        match f(pem) {
            Ok(k) => self.key(None, k),
            Err(_) => self.fail(JwtConfigError::BadPem(kind)),
        }
    }

    /// A decoding key, optionally bound to a `kid`.
    pub fn key(mut self, kid: Option<String>, key: DecodingKey) -> Self {
        self.statics.push((kid, key));
        self
    }

    /// Keys from a JWKS URL.
    pub fn jwks_url(mut self, url: impl Into<String>) -> Self {
        self.jwks_url = Some(url.into());
        self
    }

    /// Keys through OIDC discovery from `issuer`; also sets the expected
    /// issuer unless one is set.
    pub fn oidc_issuer(mut self, issuer: impl Into<String>) -> Self {
        self.oidc_issuer = Some(issuer.into());
        self
    }

    /// The key-set refresh policy.
    pub fn jwks_policy(mut self, policy: JwksPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The HTTP client for JWKS and discovery (default: a rustls client).
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.client = Some(client);
        self
    }

    /// The algorithm allowlist (default: every algorithm of the configured
    /// keys' families). `none` cannot be listed.
    pub fn algorithms(mut self, algs: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = Some(algs.into_iter().collect());
        self
    }

    /// An accepted issuer (`iss`); repeatable.
    pub fn issuer(mut self, iss: impl Into<String>) -> Self {
        self.issuers.push(iss.into());
        self
    }

    /// An accepted audience (`aud`), normally this resource's URL; repeatable.
    pub fn audience(mut self, aud: impl Into<String>) -> Self {
        self.audiences.push(aud.into());
        self
    }

    /// Clock-skew allowance for `exp` and `nbf` (default 60 s).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = Some(leeway);
        self
    }

    /// Reads scopes from this claim instead of `scope`/`scp`.
    pub fn scope_claim(mut self, claim: impl Into<String>) -> Self {
        self.scope_claim = Some(claim.into());
        self
    }

    /// Bounds the cache of recently verified tokens: at most `capacity`
    /// tokens, each reused for at most `ttl` (default 10,000 and 60 s). A
    /// token is reused only while unexpired and, with a key set, while the
    /// set is fresh and unchanged; a key removed from the set stops its
    /// tokens at the next fetch of the set.
    pub fn verified_cache(mut self, capacity: u64, ttl: Duration) -> Self {
        self.verified_cache = Some((capacity, ttl));
        self.no_verified_cache = false;
        self
    }

    /// Verifies every token's signature on every request (no cache of
    /// verified tokens).
    pub fn no_verified_cache(mut self) -> Self {
        self.no_verified_cache = true;
        self
    }

    /// Builds the authenticator.
    ///
    /// # Errors
    ///
    /// A [`JwtConfigError`] for a missing or conflicting key source, a bad
    /// PEM key, a short secret, or no audience.
    pub fn build(mut self) -> Result<JwtAuthenticator, JwtConfigError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let sources = usize::from(!self.statics.is_empty())
            + usize::from(self.jwks_url.is_some())
            + usize::from(self.oidc_issuer.is_some());
        if sources == 0 {
            return Err(JwtConfigError::NoKeys);
        }
        if sources > 1 {
            return Err(JwtConfigError::ConflictingKeys);
        }
        if self.audiences.is_empty() {
            return Err(JwtConfigError::NoAudience);
        }
        let client = self.client.take().unwrap_or_default();
        let keys = if let Some(url) = self.jwks_url {
            Keys::Jwks(Arc::new(JwksCache::from_url(url, client, self.policy)))
        } else if let Some(issuer) = self.oidc_issuer {
            if self.issuers.is_empty() {
                self.issuers.push(issuer.clone());
            }
            Keys::Jwks(Arc::new(JwksCache::from_oidc_issuer(
                issuer,
                client,
                self.policy,
            )))
        } else {
            Keys::Static(self.statics)
        };
        let algorithms = match self.algorithms {
            Some(a) => a,
            None => match &keys {
                Keys::Static(k) => ALL_ALGORITHMS
                    .iter()
                    .copied()
                    .filter(|a| k.iter().any(|(_, key)| key.family() == a.family()))
                    .collect(),
                // a key set holds public keys: never HMAC
                Keys::Jwks(_) => ALL_ALGORITHMS
                    .iter()
                    .copied()
                    .filter(|a| a.family() != jsonwebtoken::AlgorithmFamily::Hmac)
                    .collect(),
            },
        };
        if algorithms.is_empty() {
            return Err(JwtConfigError::NoAlgorithms);
        }
        let verified = (!self.no_verified_cache).then(|| {
            let (capacity, ttl) = self
                .verified_cache
                .unwrap_or((VERIFIED_CAPACITY, VERIFIED_TTL));
            VerifiedTokens {
                cache: moka::sync::Cache::builder()
                    .max_capacity(capacity)
                    .time_to_live(ttl)
                    .build(),
            }
        });
        Ok(JwtAuthenticator {
            keys,
            algorithms,
            issuers: self.issuers,
            audiences: self.audiences,
            leeway: self.leeway.unwrap_or(Duration::from_secs(60)),
            scope_claim: self.scope_claim,
            verified,
        })
    }
}
