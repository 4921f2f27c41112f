//! [`OAuthServerBuilder`]: everything the authorization server needs, with
//! safe defaults (memory store, a generated key, 1 h tokens, CIMD on, DCR
//! off, nobody allowed to log in until said otherwise).

use std::{collections::HashMap, sync::Arc, time::Duration};

use crate::{net::TrustedProxies, ratelimit::Limit};

use super::{
    DcrPolicy, MemoryStore, OAuthConfigError, OAuthServer, OAuthStore, RedirectAllowlist,
    SecretsKey, SigningKey, StaticClient, UpstreamProvider,
    cimd::CimdFetcher,
    clients::Client,
    records::Records,
    server::{Inner, LoginPolicy},
    upstream::{Lookups, Upstream},
};

/// Builds an [`OAuthServer`]; see the [module docs](super) for an example.
#[derive(Debug, Default)]
pub struct OAuthServerBuilder {
    issuer: Option<String>,
    resource: Option<String>,
    scopes: Vec<String>,
    token_ttl: Option<Duration>,
    key: Option<SigningKey>,
    previous_keys: Vec<SigningKey>,
    clients: Vec<StaticClient>,
    cimd_off: bool,
    cimd_allow_loopback: bool,
    cimd_roots: Vec<Vec<u8>>,
    dcr: DcrPolicy,
    dcr_unused_ttl: Option<Duration>,
    dcr_idle_ttl: Option<Duration>,
    dcr_limit: Option<Option<Limit>>,
    dcr_proxies: TrustedProxies,
    #[cfg(feature = "redis")]
    dcr_store: Option<crate::ratelimit::RedisStore>,
    #[cfg(feature = "redis")]
    dcr_failure: crate::ratelimit::FailurePolicy,
    redirects: RedirectAllowlist,
    upstream: Option<UpstreamProvider>,
    upstream_roots: Vec<Vec<u8>>,
    login: LoginPolicy,
    store: Option<Arc<dyn OAuthStore>>,
    secrets: Option<SecretsKey>,
    refresh_margin: Option<Duration>,
}

impl std::fmt::Debug for dyn OAuthStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OAuthStore")
    }
}

impl OAuthServerBuilder {
    /// The issuer: this server's public base URL (`https://mcp.example.com`,
    /// or with a path). Required.
    pub fn issuer(mut self, url: impl Into<String>) -> Self {
        self.issuer = Some(url.into().trim_end_matches('/').to_owned());
        self
    }

    /// The resource tokens are for: the MCP endpoint URL
    /// (`https://mcp.example.com/mcp`). Required.
    pub fn resource(mut self, url: impl Into<String>) -> Self {
        self.resource = Some(url.into());
        self
    }

    /// The scopes offered (and granted when a client asks for none).
    pub fn scopes<I: IntoIterator<Item = S>, S: Into<String>>(mut self, scopes: I) -> Self {
        self.scopes.extend(scopes.into_iter().map(Into::into));
        self
    }

    /// Access-token lifetime (default 1 h).
    pub fn token_ttl(mut self, ttl: Duration) -> Self {
        self.token_ttl = Some(ttl);
        self
    }

    /// The signing key (default: generated at build, lost at exit).
    pub fn signing_key(mut self, key: SigningKey) -> Self {
        self.key = Some(key);
        self
    }

    /// A previous signing key, kept through a rotation; repeatable. It signs
    /// nothing, but the tokens it signed still verify and it is published
    /// at the JWKS endpoint. Keep it for the token TTL after the rotation
    /// (the life of the last token it signed), then remove it: its tokens
    /// are refused from then on.
    ///
    /// ```
    /// use mcp_bastion::auth::oauth::{OAuthServer, SigningKey, UpstreamOidc};
    ///
    /// let (old, new) = (SigningKey::generate(), SigningKey::generate());
    /// let server = OAuthServer::builder()
    ///     .issuer("https://mcp.example.com")
    ///     .resource("https://mcp.example.com/mcp")
    ///     .upstream(UpstreamOidc::new("https://accounts.example.com", "mcp-bastion"))
    ///     .allow_any_user()
    ///     .signing_key(new.clone())
    ///     .previous_signing_key(old.clone())
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(server.signing_key().kid(), new.kid());
    /// assert_eq!(server.previous_signing_keys()[0].kid(), old.kid());
    /// ```
    pub fn previous_signing_key(mut self, key: SigningKey) -> Self {
        self.previous_keys.push(key);
        self
    }

    /// How long a registered client lives if it is never used (no code
    /// exchanged at the token endpoint; default 24 h).
    pub fn dcr_unused_ttl(mut self, ttl: Duration) -> Self {
        self.dcr_unused_ttl = Some(ttl);
        self
    }

    /// How long a used registered client lives after its last recorded use
    /// (default 30 days). Uses are recorded at most once a day.
    pub fn dcr_idle_ttl(mut self, ttl: Duration) -> Self {
        self.dcr_idle_ttl = Some(ttl);
        self
    }

    /// Open registrations allowed per client IP (default 20 per hour; `None`:
    /// no limit). Counted in this process's memory, where each replica counts
    /// its own, unless [`dcr_rate_limit_store`](Self::dcr_rate_limit_store)
    /// shares the count.
    ///
    /// ```
    /// use std::num::NonZeroU32;
    /// use mcp_bastion::{auth::oauth::OAuthServer, ratelimit::Limit};
    ///
    /// let builder = OAuthServer::builder()
    ///     .dcr_rate_limit(Some(Limit::per_hour(NonZeroU32::new(5).unwrap())));
    /// # let _ = builder;
    /// ```
    pub fn dcr_rate_limit(mut self, limit: Option<Limit>) -> Self {
        self.dcr_limit = Some(limit);
        self
    }

    /// Counts [`dcr_rate_limit`](Self::dcr_rate_limit) in Redis, shared by
    /// every replica that uses the same Redis and key prefix: N replicas
    /// admit the limit, not N times it. Give it the rate-limit layer's
    /// [`RedisStore`](crate::ratelimit::RedisStore) if you like: the
    /// registration counts live under their own rule name (`oauth.dcr`) and
    /// never meet the layer's.
    ///
    /// While Redis is unreachable,
    /// [`dcr_rate_limit_failure`](Self::dcr_rate_limit_failure) decides
    /// (default: count in this process until it is back).
    ///
    /// ```
    /// use std::num::NonZeroU32;
    /// use mcp_bastion::{
    ///     auth::oauth::{DcrPolicy, OAuthServer, UpstreamOidc},
    ///     ratelimit::{FailurePolicy, Limit, RedisStore},
    /// };
    ///
    /// // the URL is checked here; the connection is made on the first registration
    /// let store = RedisStore::open("redis://127.0.0.1:6379")?;
    /// let server = OAuthServer::builder()
    ///     .issuer("https://mcp.example.com")
    ///     .resource("https://mcp.example.com/mcp")
    ///     .upstream(UpstreamOidc::new("https://accounts.example.com", "mcp-bastion"))
    ///     .allow_any_user()
    ///     .dcr(DcrPolicy::Open)
    ///     .dcr_rate_limit(Some(Limit::per_hour(NonZeroU32::new(5).unwrap())))
    ///     .dcr_rate_limit_store(store)
    ///     .dcr_rate_limit_failure(FailurePolicy::Closed)
    ///     .build()?;
    /// # let _ = server;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "redis")]
    pub fn dcr_rate_limit_store(mut self, store: crate::ratelimit::RedisStore) -> Self {
        self.dcr_store = Some(store);
        self
    }

    /// What the registration limit does while the Redis of
    /// [`dcr_rate_limit_store`](Self::dcr_rate_limit_store) is unreachable,
    /// as the rate-limit layer's [`FailurePolicy`](crate::ratelimit::FailurePolicy)
    /// (pass the one the layer has; the binary passes `--redis-failure`):
    ///
    /// - [`Open`](crate::ratelimit::FailurePolicy::Open), the default: each
    ///   replica counts registrations in its own memory until Redis is back
    ///   (N replicas admit up to N times the limit meanwhile, never an
    ///   unlimited number);
    /// - [`Closed`](crate::ratelimit::FailurePolicy::Closed): registrations
    ///   are refused with `503`, `temporarily_unavailable` and `Retry-After`.
    ///
    /// Either way the outage is logged once when it starts and once when it
    /// ends (`registration-limit store unreachable…`; the error's kind, never
    /// the URL, which may hold a password), counted in
    /// `mcp_bastion_ratelimit_store_failures_total`, and one registration a
    /// second probes Redis meanwhile.
    #[cfg(feature = "redis")]
    pub fn dcr_rate_limit_failure(mut self, policy: crate::ratelimit::FailurePolicy) -> Self {
        self.dcr_failure = policy;
        self
    }

    /// The proxies whose forwarding headers name the client IP that
    /// [`dcr_rate_limit`](Self::dcr_rate_limit) counts (default none).
    pub fn dcr_trusted_proxies(mut self, proxies: TrustedProxies) -> Self {
        self.dcr_proxies = proxies;
        self
    }

    /// A static client; repeatable.
    pub fn client(mut self, client: StaticClient) -> Self {
        self.clients.push(client);
        self
    }

    /// Whether `https` client ids are fetched as Client ID Metadata
    /// Documents (default on).
    pub fn cimd(mut self, on: bool) -> Self {
        self.cimd_off = !on;
        self
    }

    /// Lets metadata-document fetches reach loopback addresses (plain
    /// `http` too). For tests only: in production it would let a client
    /// make this server fetch its own local services.
    pub fn cimd_allow_loopback(mut self, allow: bool) -> Self {
        self.cimd_allow_loopback = allow;
        self
    }

    /// Trusts this certificate (PEM) for metadata-document fetches, beside
    /// the public roots: for tests and private CAs.
    pub fn cimd_root_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.cimd_roots.push(pem.into());
        self
    }

    /// The dynamic-registration policy (default off).
    pub fn dcr(mut self, policy: DcrPolicy) -> Self {
        self.dcr = policy;
        self
    }

    /// A redirect URI registrations may name exactly; repeatable.
    pub fn redirect_allow(mut self, url: impl Into<String>) -> Self {
        self.redirects.exact.push(url.into());
        self
    }

    /// Whether registrations may name loopback `http` redirect URIs on any
    /// port (RFC 8252 §7.3; what desktop and CLI clients use).
    pub fn redirect_allow_loopback(mut self, allow: bool) -> Self {
        self.redirects.loopback = allow;
        self
    }

    /// The identity provider users log in with: an
    /// [`UpstreamOidc`](super::UpstreamOidc) or an
    /// [`UpstreamOAuth2`](super::UpstreamOAuth2) (GitHub). Required.
    pub fn upstream(mut self, upstream: impl Into<UpstreamProvider>) -> Self {
        self.upstream = Some(upstream.into());
        self
    }

    /// Trusts the CA certificates of this PEM bundle, beside the public
    /// roots, for every call to the identity provider (discovery, token,
    /// keys, user info): an identity provider behind a private CA.
    /// Repeatable; a bundle without a certificate fails the build.
    ///
    /// ```
    /// use mcp_bastion::auth::oauth::{OAuthConfigError, OAuthServer, UpstreamOidc};
    ///
    /// let with_ca = |pem: &str| {
    ///     OAuthServer::builder()
    ///         .issuer("https://mcp.example.com")
    ///         .resource("https://mcp.example.com/mcp")
    ///         .upstream(UpstreamOidc::new("https://idp.internal", "mcp-bastion"))
    ///         .allow_any_user()
    ///         .upstream_root_certificates(pem)
    ///         .build()
    /// };
    /// // a file that holds no certificate is refused when the server is built
    /// assert!(matches!(with_ca("no certificate"), Err(OAuthConfigError::HttpClient)));
    /// ```
    pub fn upstream_root_certificates(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.upstream_roots.push(pem.into());
        self
    }

    /// Lets this upstream subject log in; repeatable.
    pub fn allow_subject(mut self, sub: impl Into<String>) -> Self {
        self.login.subjects.push(sub.into());
        self
    }

    /// Lets users with a verified email in this domain log in; repeatable.
    pub fn allow_email_domain(mut self, domain: impl Into<String>) -> Self {
        self.login.email_domains.push(domain.into());
        self
    }

    /// Lets members of this group log in; repeatable. The groups are read
    /// from the ID token's (or user endpoint's) groups claim, see
    /// [`groups_claim`](Self::groups_claim); one match is enough.
    pub fn allow_group(mut self, group: impl Into<String>) -> Self {
        self.login.groups.push(group.into());
        self
    }

    /// The claim that lists a user's groups (default `groups`; Keycloak's
    /// and Okta's default too; Entra ID's is `groups` or `roles`).
    pub fn groups_claim(mut self, claim: impl Into<String>) -> Self {
        self.login.groups_claim = Some(claim.into());
        self
    }

    /// Lets active members of this GitHub organisation log in; repeatable.
    /// Needs the GitHub upstream, which then asks for `read:org`.
    pub fn allow_github_org(mut self, org: impl Into<String>) -> Self {
        self.login.github_orgs.push(org.into());
        self
    }

    /// Lets active members of this GitHub team (`org/team-slug`) log in;
    /// repeatable. Needs the GitHub upstream, which then asks for
    /// `read:org`.
    pub fn allow_github_team(mut self, team: impl Into<String>) -> Self {
        self.login.github_teams.push(team.into());
        self
    }

    /// Lets everyone who can log in at the provider in.
    pub fn allow_any_user(mut self) -> Self {
        self.login.any = true;
        self
    }

    /// Where records live (default: [`MemoryStore`]).
    pub fn store(mut self, store: Arc<dyn OAuthStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// The key that seals the users' upstream tokens at rest (see
    /// [`SecretsKey`]). Default: generated at build, which only a store that
    /// is not shared accepts.
    pub fn secrets_key(mut self, key: SecretsKey) -> Self {
        self.secrets = Some(key);
        self
    }

    /// How long before the user's upstream access token expires it is
    /// refreshed, when a backend asks for it (default 60 s).
    pub fn upstream_refresh_margin(mut self, margin: Duration) -> Self {
        self.refresh_margin = Some(margin);
        self
    }

    /// Builds the server.
    ///
    /// # Errors
    ///
    /// An [`OAuthConfigError`] for a missing or malformed issuer or
    /// resource, no upstream, nobody allowed to log in, GitHub organisations
    /// or teams without the GitHub upstream, a team that is not
    /// `org/team`, a static client with a redirect URI that is not a URL,
    /// or a shared store without a [`secrets_key`](Self::secrets_key).
    pub fn build(self) -> Result<OAuthServer, OAuthConfigError> {
        let issuer = self.issuer.ok_or(OAuthConfigError::Issuer)?;
        let parsed = url::Url::parse(&issuer).map_err(|_| OAuthConfigError::Issuer)?;
        if !matches!(parsed.scheme(), "https" | "http")
            || parsed.query().is_some()
            || parsed.fragment().is_some()
        {
            return Err(OAuthConfigError::Issuer);
        }
        let issuer_path = parsed.path().trim_end_matches('/').to_owned();
        let resource = self.resource.ok_or(OAuthConfigError::Resource)?;
        if !url::Url::parse(&resource).is_ok_and(|u| matches!(u.scheme(), "https" | "http")) {
            return Err(OAuthConfigError::Resource);
        }
        let login = self.login;
        if !login.admits_someone() {
            return Err(OAuthConfigError::NoUsersAllowed);
        }
        if let Some(bad) = login.github_teams.iter().find(|t| {
            !t.split_once('/').is_some_and(|(org, team)| {
                !org.is_empty() && !team.is_empty() && !team.contains('/')
            })
        }) {
            return Err(OAuthConfigError::GitHubTeam(bad.clone()));
        }
        let lookups = Lookups {
            groups_claim: login.groups_claim().to_owned(),
            github_orgs: login.github_orgs.clone(),
            github_teams: login.github_teams.clone(),
        };
        let upstream = Upstream::new(
            self.upstream.ok_or(OAuthConfigError::NoUpstream)?,
            lookups,
            &self.upstream_roots,
        )?;
        let mut statics = HashMap::new();
        for c in &self.clients {
            if let Some(bad) = c.redirect_uris.iter().find(|u| url::Url::parse(u).is_err()) {
                return Err(OAuthConfigError::RedirectUri(bad.clone()));
            }
            statics.insert(c.id.clone(), Client::from_static(c));
        }
        for u in &self.redirects.exact {
            if url::Url::parse(u).is_err() {
                return Err(OAuthConfigError::RedirectUri(u.clone()));
            }
        }
        let cimd = if self.cimd_off {
            None
        } else {
            Some(
                CimdFetcher::new(self.cimd_allow_loopback, &self.cimd_roots)
                    .map_err(|_| OAuthConfigError::HttpClient)?,
            )
        };
        let store = self.store.unwrap_or_else(|| Arc::new(MemoryStore::new()));
        let secrets = match self.secrets {
            Some(key) => key,
            None if store.is_shared() => return Err(OAuthConfigError::SecretsKeyRequired),
            None => SecretsKey::generate(),
        };
        let secure_cookies = parsed.scheme() == "https";
        let key = self.key.unwrap_or_else(SigningKey::generate);
        Ok(OAuthServer {
            inner: Arc::new(Inner {
                issuer,
                issuer_path,
                resource,
                scopes: self.scopes,
                token_ttl: self.token_ttl.unwrap_or(Duration::from_secs(3600)),
                previous_keys: previous_keys(&key, self.previous_keys),
                key,
                statics,
                cimd,
                dcr: self.dcr,
                dcr_unused_ttl: self
                    .dcr_unused_ttl
                    .unwrap_or(super::dcr_bounds::DEFAULT_UNUSED_TTL),
                dcr_idle_ttl: self
                    .dcr_idle_ttl
                    .unwrap_or(super::dcr_bounds::DEFAULT_IDLE_TTL),
                dcr_limit: self
                    .dcr_limit
                    .unwrap_or(Some(super::dcr_bounds::default_limit()))
                    .map(|l| {
                        let limit = super::dcr_bounds::RegistrationLimit::new(l, self.dcr_proxies);
                        #[cfg(feature = "redis")]
                        let limit = match &self.dcr_store {
                            Some(store) => limit.shared(store, self.dcr_failure),
                            None => limit,
                        };
                        limit
                    }),
                redirects: self.redirects,
                upstream,
                login,
                records: Records(store),
                secrets,
                token_manager: super::token_manager::TokenManager::new(
                    self.refresh_margin.unwrap_or(Duration::from_secs(60)),
                ),
                secure_cookies,
            }),
        })
    }
}

/// The previous keys without the current one and without repeats.
fn previous_keys(current: &SigningKey, keys: Vec<SigningKey>) -> Vec<SigningKey> {
    let mut kept: Vec<SigningKey> = Vec::with_capacity(keys.len());
    for key in keys {
        if key.kid() != current.kid() && !kept.iter().any(|k| k.kid() == key.kid()) {
            kept.push(key);
        }
    }
    kept
}
