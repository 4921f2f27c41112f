//! [`OAuthServer`]: the built authorization server, its routes, and what
//! its endpoints share (client lookup, token issuance).

use std::{collections::HashMap, sync::Arc, time::Duration};

use axum::{
    Json, Router,
    response::IntoResponse,
    routing::{get, post},
};
use http::{HeaderValue, header};

use super::{
    DcrPolicy, OAuthServerBuilder, RecordKind, RedirectAllowlist, SigningKey, authorize,
    cimd::CimdFetcher,
    clients::Client,
    consent,
    keys::AccessClaims,
    login, metadata,
    records::{GRANT_TTL, Grant, Records, RefreshSlot},
    registration, token,
    upstream::Upstream,
};
use crate::auth::{JwtAuthenticator, ProtectedResourceMetadata};

/// Where the endpoints live, below the issuer.
pub(crate) const AUTHORIZE_PATH: &str = "/oauth/authorize";
pub(crate) const CALLBACK_PATH: &str = "/oauth/callback";
pub(crate) const CONSENT_PATH: &str = "/oauth/consent";
pub(crate) const TOKEN_PATH: &str = "/oauth/token";
pub(crate) const REGISTER_PATH: &str = "/oauth/register";
pub(crate) const REVOKE_PATH: &str = "/oauth/revoke";
pub(crate) const JWKS_PATH: &str = "/oauth/jwks.json";

/// The browser-binding cookie of a login in progress.
pub(crate) const BROWSER_COOKIE: &str = "mcp_bastion_oauth";

/// Who may log in: anyone who matches one rule (a subject, a verified
/// email's domain, a group of the groups claim, an active membership of a
/// GitHub organisation or team), or everyone with `any`.
#[derive(Debug, Clone, Default)]
pub(crate) struct LoginPolicy {
    pub any: bool,
    pub subjects: Vec<String>,
    pub email_domains: Vec<String>,
    pub groups: Vec<String>,
    /// `None`: [`DEFAULT_GROUPS_CLAIM`].
    pub groups_claim: Option<String>,
    pub github_orgs: Vec<String>,
    /// `org/team-slug`.
    pub github_teams: Vec<String>,
}

/// The claim that lists a user's groups unless configured otherwise.
pub(crate) const DEFAULT_GROUPS_CLAIM: &str = "groups";

impl LoginPolicy {
    /// Whether any rule could admit anyone.
    pub(crate) fn admits_someone(&self) -> bool {
        self.any
            || !self.subjects.is_empty()
            || !self.email_domains.is_empty()
            || !self.groups.is_empty()
            || !self.github_orgs.is_empty()
            || !self.github_teams.is_empty()
    }

    pub(crate) fn groups_claim(&self) -> &str {
        self.groups_claim.as_deref().unwrap_or(DEFAULT_GROUPS_CLAIM)
    }

    pub(crate) fn admits(&self, identity: &super::upstream::Identity) -> bool {
        if self.any || self.subjects.contains(&identity.sub) {
            return true;
        }
        // an unverified email proves nothing
        let domain = identity
            .email
            .as_deref()
            .filter(|_| identity.email_verified)
            .and_then(|e| e.rsplit_once('@'))
            .map(|(_, d)| d.to_ascii_lowercase());
        if domain.is_some_and(|d| {
            self.email_domains
                .iter()
                .any(|a| a.eq_ignore_ascii_case(&d))
        }) {
            return true;
        }
        // group names are compared exactly: a provider's groups may differ
        // only in case (Keycloak paths, Entra object ids are exact)
        if identity.groups.iter().any(|g| self.groups.contains(g)) {
            return true;
        }
        // GitHub names are case-insensitive; the upstream recorded only the
        // policy's own entries the user is an active member of, and they are
        // checked again here so that a stale record cannot widen the policy
        let listed = |have: &[String], allowed: &[String]| {
            have.iter()
                .any(|h| allowed.iter().any(|a| a.eq_ignore_ascii_case(h)))
        };
        listed(&identity.github_orgs, &self.github_orgs)
            || listed(&identity.github_teams, &self.github_teams)
    }
}

pub(crate) struct Inner {
    pub issuer: String,
    pub issuer_path: String,
    pub resource: String,
    pub scopes: Vec<String>,
    pub token_ttl: Duration,
    pub key: SigningKey,
    /// Keys that no longer sign but still verify (rotation).
    pub previous_keys: Vec<SigningKey>,
    pub statics: HashMap<String, Client>,
    pub cimd: Option<CimdFetcher>,
    pub dcr: DcrPolicy,
    pub dcr_unused_ttl: Duration,
    pub dcr_idle_ttl: Duration,
    pub dcr_limit: Option<super::dcr_bounds::RegistrationLimit>,
    pub redirects: RedirectAllowlist,
    pub upstream: Upstream,
    pub login: LoginPolicy,
    pub records: Records,
    pub secrets: super::SecretsKey,
    pub token_manager: super::token_manager::TokenManager,
    pub secure_cookies: bool,
}

/// Why a client id could not be resolved (shown on the error page).
pub(crate) enum ClientLookup {
    Unknown,
    Document(super::cimd::CimdError),
    Unavailable,
}

impl Inner {
    /// The keys tokens are verified with: the current one first.
    pub(crate) fn live_keys(&self) -> impl Iterator<Item = &SigningKey> {
        std::iter::once(&self.key).chain(&self.previous_keys)
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    pub(crate) fn route(&self, path: &str) -> String {
        format!("{}{path}", self.issuer_path)
    }

    /// A client by id: static, registered, or a metadata document URL.
    pub(crate) async fn client(&self, id: &str) -> Result<Arc<Client>, ClientLookup> {
        if let Some(c) = self.statics.get(id) {
            return Ok(Arc::new(c.clone()));
        }
        if CimdFetcher::is_document_url(id) {
            let Some(cimd) = &self.cimd else {
                return Err(ClientLookup::Unknown);
            };
            return cimd.client(id).await.map_err(ClientLookup::Document);
        }
        match self.records.get::<Client>(RecordKind::Client, id).await {
            Ok(Some(c)) => Ok(Arc::new(c)),
            Ok(None) => Err(ClientLookup::Unknown),
            Err(_) => Err(ClientLookup::Unavailable),
        }
    }

    /// Records a use of a registered client (a code exchanged, a token
    /// refreshed): its record then lives the idle lifetime. Written at most
    /// once a day; a store failure only delays it.
    pub(crate) async fn touch_client(&self, client: &Client) {
        let now = super::unix_now();
        if client.kind != super::clients::ClientKind::Registered
            || !super::dcr_bounds::needs_touch(client.used_at, now, self.dcr_idle_ttl)
        {
            return;
        }
        let mut used = client.clone();
        used.used_at = Some(now);
        if self
            .records
            .put(RecordKind::Client, &used.id, &used, Some(self.dcr_idle_ttl))
            .await
            .is_err()
        {
            tracing::warn!("could not record the use of a registered client");
        }
    }

    /// An access token and a refresh token for a grant.
    pub(crate) async fn issue(
        &self,
        grant: &Grant,
    ) -> Result<serde_json::Value, super::error::EndpointError> {
        let now = super::unix_now();
        let claims = AccessClaims {
            iss: self.issuer.clone(),
            aud: grant.resource.clone(),
            sub: grant.sub.clone(),
            client_id: grant.client_id.clone(),
            scope: grant.scope.join(" "),
            exp: now.saturating_add(self.token_ttl.as_secs()),
            iat: now,
            jti: super::random_token(),
            grant_id: grant.id.clone(),
        };
        let access = self
            .key
            .sign(&claims)
            .ok_or_else(|| super::error::EndpointError::new("server_error", "signing failed"))?;
        let refresh = super::random_token();
        let slot = RefreshSlot::Live {
            grant_id: grant.id.clone(),
        };
        self.records
            .put(
                RecordKind::Refresh,
                &super::clients::digest(&refresh),
                &slot,
                Some(GRANT_TTL),
            )
            .await
            .map_err(|_| super::error::EndpointError::unavailable())?;
        Ok(serde_json::json!({
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": self.token_ttl.as_secs(),
            "refresh_token": refresh,
            "scope": claims.scope,
        }))
    }
}

/// The authorization server. Build it with [`OAuthServer::builder`], merge
/// [`router`](Self::router) beside the MCP routes (outside authentication),
/// and verify its tokens with [`jwt_authenticator`](Self::jwt_authenticator).
#[derive(Clone)]
pub struct OAuthServer {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for OAuthServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthServer")
            .field("issuer", &self.inner.issuer)
            .field("resource", &self.inner.resource)
            .field("key", &self.inner.key)
            .finish_non_exhaustive()
    }
}

impl OAuthServer {
    /// A builder.
    pub fn builder() -> OAuthServerBuilder {
        OAuthServerBuilder::default()
    }

    /// The issuer URL.
    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    /// The resource its tokens are for.
    pub fn resource(&self) -> &str {
        &self.inner.resource
    }

    /// The current signing key (its public half is at the JWKS endpoint).
    pub fn signing_key(&self) -> &SigningKey {
        &self.inner.key
    }

    /// The previous signing keys: they sign nothing, but tokens they signed
    /// still verify, and they are published at the JWKS endpoint.
    pub fn previous_signing_keys(&self) -> &[SigningKey] {
        &self.inner.previous_keys
    }

    /// The URL an upstream identity provider must accept as mcp-bastion's
    /// redirect URI.
    pub fn callback_url(&self) -> String {
        self.inner.url(CALLBACK_PATH)
    }

    /// A [`JwtAuthenticator`] that verifies this server's access tokens
    /// locally: ES256 with the published key their `kid` names (the current
    /// or a previous one), `iss` = the issuer, `aud` = the resource.
    ///
    /// # Panics
    ///
    /// Never: the key, issuer and audience are always set.
    #[allow(clippy::missing_panics_doc)]
    pub fn jwt_authenticator(&self) -> JwtAuthenticator {
        let mut builder = JwtAuthenticator::builder();
        for key in self.inner.live_keys() {
            builder = builder.key(Some(key.kid().to_owned()), key.decoding_key());
        }
        #[allow(clippy::expect_used)]
        builder
            .algorithms([jsonwebtoken::Algorithm::ES256])
            .issuer(self.inner.issuer.clone())
            .audience(self.inner.resource.clone())
            .build()
            .expect("a static key with an audience always builds")
    }

    /// An [`Authenticator`](crate::auth::Authenticator) that verifies this
    /// server's access tokens like [`jwt_authenticator`](Self::jwt_authenticator)
    /// and refuses those whose grant was revoked.
    pub fn authenticator(&self) -> super::OAuthTokens {
        super::OAuthTokens {
            jwt: self.jwt_authenticator(),
            inner: self.inner.clone(),
        }
    }

    /// The RFC 9728 document of the resource, naming this issuer.
    pub fn protected_resource_metadata(&self) -> ProtectedResourceMetadata {
        ProtectedResourceMetadata::new()
            .resource(self.inner.resource.clone())
            .authorization_server(self.inner.issuer.clone())
            .scopes(self.inner.scopes.clone())
    }

    /// The routes: metadata (RFC 8414 and OIDC discovery paths), JWKS,
    /// authorize, callback, consent, token, revoke and (unless off)
    /// register. Mount them outside any authentication layer.
    pub fn router<S: Clone + Send + Sync + 'static>(&self) -> Router<S> {
        let i = &self.inner;
        let mut router = Router::new();
        for path in metadata::paths(&i.issuer_path) {
            router = router.route(&path, get(metadata::serve));
        }
        router = router
            .route(&i.route(JWKS_PATH), get(jwks))
            .route(&i.route(AUTHORIZE_PATH), get(authorize::authorize))
            .route(&i.route(CALLBACK_PATH), get(login::callback))
            .route(&i.route(CONSENT_PATH), post(consent::decide))
            .route(&i.route(TOKEN_PATH), post(token::token))
            .route(&i.route(REVOKE_PATH), post(token::revoke));
        if !matches!(i.dcr, DcrPolicy::Off) {
            router = router.route(&i.route(REGISTER_PATH), post(registration::register));
        }
        router.with_state(self.inner.clone())
    }
}

async fn jwks(axum::extract::State(inner): axum::extract::State<Arc<Inner>>) -> impl IntoResponse {
    let mut res = Json(super::keys::jwks(inner.live_keys())).into_response();
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("max-age=300"),
    );
    res
}
