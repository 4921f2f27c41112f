//! Authentication and authorization flags, and the layers they build.
//!
//! Auth is on as soon as one credential source is configured (`--api-key`,
//! `--api-keys-file`, a JWT key source, `--auth-server-url` or
//! `--introspection-url`); several are tried in that order. The RFC 9728
//! metadata route, `/healthz` and `/readyz` stay outside authentication.

use std::time::Duration;

use axum::Router;
use clap::Args;
use mcp_bastion::{
    auth::{
        Algorithm, AnyOf, ApiKeys, CredentialSources, Introspection, JwksPolicy, JwtAuthenticator,
        McpAuthLayer, McpScopeLayer, ProtectedResourceMetadata, RemoteAuth, RemotePolicy,
        ScopePolicy, WELL_KNOWN_PATH,
    },
    principal::Principal,
};

/// Authentication and authorization.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Authentication")]
pub struct AuthArgs {
    /// An accepted API key (repeatable; prefer --api-keys-file or the
    /// environment: command lines are visible to other local users).
    #[arg(
        long = "api-key",
        value_name = "KEY",
        env = "MCP_BASTION_API_KEYS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub api_keys: Vec<String>,

    /// A JSON file of API keys: `[{"key" | "sha256", "subject", "scopes", "env"}]`.
    #[arg(long, value_name = "FILE")]
    pub api_keys_file: Option<std::path::PathBuf>,

    /// The header carrying API keys (besides `Authorization: Bearer`).
    #[arg(long, value_name = "NAME", default_value = "x-api-key")]
    pub api_key_header: String,

    /// Accept credentials in this query parameter (repeatable; e.g. `auth`,
    /// `apiKey`), for clients that cannot send headers. Off by default.
    #[arg(long = "api-key-query-param", value_name = "NAME")]
    pub api_key_query_params: Vec<String>,

    /// Verify HS256/384/512 JWTs with the secret in this environment variable.
    #[arg(long, value_name = "VAR")]
    pub jwt_secret_env: Option<String>,

    /// Verify JWTs with this PEM public key (RSA, EC or Ed25519).
    #[arg(long, value_name = "FILE")]
    pub jwt_public_key_file: Option<std::path::PathBuf>,

    /// Verify JWTs with the keys of this JWKS URL.
    #[arg(long, value_name = "URL")]
    pub jwt_jwks_url: Option<String>,

    /// Verify JWTs with the keys found by OIDC discovery from this issuer.
    #[arg(long, value_name = "URL")]
    pub jwt_oidc_issuer: Option<String>,

    /// Accepted `iss` (repeatable; default: the OIDC issuer, if any).
    #[arg(long = "jwt-issuer", value_name = "ISS")]
    pub jwt_issuers: Vec<String>,

    /// Accepted `aud` (repeatable; default: --resource-url).
    #[arg(long = "jwt-audience", value_name = "AUD")]
    pub jwt_audiences: Vec<String>,

    /// Allowed JWT algorithms (repeatable; default: those of the key type).
    #[arg(long = "jwt-algorithm", value_name = "ALG")]
    pub jwt_algorithms: Vec<String>,

    /// Clock-skew allowance for `exp`/`nbf`, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub jwt_leeway_secs: u64,

    /// Read scopes from this claim instead of `scope`/`scp`.
    #[arg(long, value_name = "CLAIM")]
    pub jwt_scope_claim: Option<String>,

    /// Least seconds between two JWKS fetches (unknown `kid`s, failures).
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub jwks_refetch_interval_secs: u64,

    /// Seconds a JWKS stays fresh when it has no `Cache-Control: max-age`.
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    pub jwks_fallback_ttl_secs: u64,

    /// Check credentials with `GET URL?apiKey=<key>` → `{valid, userId, permissions, env}`.
    #[arg(long, value_name = "URL")]
    pub auth_server_url: Option<String>,

    /// Check tokens with RFC 7662 introspection at this URL.
    #[arg(long, value_name = "URL")]
    pub introspection_url: Option<String>,

    /// Client id for the introspection endpoint (HTTP Basic).
    #[arg(long, value_name = "ID", requires = "introspection_client_secret_env")]
    pub introspection_client_id: Option<String>,

    /// Environment variable holding the introspection client secret.
    #[arg(long, value_name = "VAR", requires = "introspection_client_id")]
    pub introspection_client_secret_env: Option<String>,

    /// Time limit of a remote auth or introspection call, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 5)]
    pub auth_timeout_secs: u64,

    /// Seconds an accepted remote/introspected credential is cached (never past its `exp`).
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub auth_cache_secs: u64,

    /// This server's MCP endpoint URL: the RFC 8707 resource, the JWT
    /// audience by default, and the base of the RFC 9728 metadata.
    #[arg(long, value_name = "URL")]
    pub resource_url: Option<String>,

    /// An authorization server for the RFC 9728 metadata (repeatable).
    #[arg(long = "authorization-server", value_name = "URL")]
    pub authorization_servers: Vec<String>,

    /// Scopes a tool needs, `TOOL=SCOPE[,SCOPE]`; also `method:NAME=…`,
    /// `resource:PATTERN=…`, `prompt:NAME=…` (repeatable).
    #[arg(long = "tool-scope", value_name = "RULE")]
    pub tool_scopes: Vec<String>,

    /// Put a principal field into a per-session child's environment,
    /// `VAR=subject|claim:<name>|env:<name>` (repeatable).
    #[arg(long = "principal-env", value_name = "VAR=FIELD")]
    pub principal_env: Vec<String>,
}

/// The layers built from [`AuthArgs`]; empty when auth is off.
#[derive(Debug, Clone, Default)]
pub struct AuthLayers {
    auth: Option<McpAuthLayer>,
    scopes: Option<McpScopeLayer>,
    metadata: Option<ProtectedResourceMetadata>,
}

impl AuthLayers {
    /// Authentication, when auth is on (mount outside `McpInspectLayer`).
    pub fn authentication(&self) -> Option<McpAuthLayer> {
        self.auth.clone()
    }

    /// Per-tool authorization, when scopes are configured (mount inside
    /// `McpInspectLayer`).
    pub fn authorization(&self) -> Option<McpScopeLayer> {
        self.scopes.clone()
    }

    /// Adds authentication around `router`, and nothing else (for operator
    /// routes such as `/metrics` on the main listener).
    pub fn protect(&self, router: Router) -> Router {
        match &self.auth {
            Some(layer) => router.layer(layer.clone()),
            None => router,
        }
    }

    /// Adds the protected-resource metadata routes beside `router` (outside
    /// authentication: they must be readable without a credential).
    pub fn with_metadata(&self, router: Router) -> Router {
        match &self.metadata {
            Some(md) => router.merge(md.clone().router("/mcp")),
            None => router,
        }
    }
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

impl AuthArgs {
    /// Whether any way of authenticating callers is configured.
    pub fn authenticates(&self) -> bool {
        !self.api_keys.is_empty()
            || self.api_keys_file.is_some()
            || self.jwt_secret_env.is_some()
            || self.jwt_public_key_file.is_some()
            || self.jwt_jwks_url.is_some()
            || self.jwt_oidc_issuer.is_some()
            || self.auth_server_url.is_some()
            || self.introspection_url.is_some()
    }

    /// Builds the layers. `prefix` is the `--path-prefix`.
    ///
    /// # Errors
    ///
    /// A message for an inconsistent or unreadable configuration. Never
    /// quotes a secret.
    pub fn build(&self, prefix: &str) -> Result<AuthLayers, String> {
        let mut chain = AnyOf::new();
        let mut keys = ApiKeys::new();
        for (i, key) in self.api_keys.iter().filter(|k| !k.is_empty()).enumerate() {
            keys = keys.key(key, Principal::new(format!("api-key-{}", i + 1)));
        }
        if let Some(file) = &self.api_keys_file {
            keys = keys.from_file(file).map_err(|e| e.to_string())?;
        }
        if !keys.is_empty() {
            chain = chain.with(keys);
        }

        let mut audiences = self.jwt_audiences.clone();
        if audiences.is_empty()
            && let Some(r) = &self.resource_url
        {
            audiences.push(r.clone());
        }
        let jwt_sources = usize::from(self.jwt_secret_env.is_some())
            + usize::from(self.jwt_public_key_file.is_some())
            + usize::from(self.jwt_jwks_url.is_some())
            + usize::from(self.jwt_oidc_issuer.is_some());
        if jwt_sources > 1 {
            return Err("configure one JWT key source: --jwt-secret-env, --jwt-public-key-file, --jwt-jwks-url or --jwt-oidc-issuer".into());
        }
        if jwt_sources == 1 {
            let mut b = JwtAuthenticator::builder()
                .leeway(secs(self.jwt_leeway_secs))
                .jwks_policy(JwksPolicy {
                    fallback_ttl: secs(self.jwks_fallback_ttl_secs),
                    min_refetch_interval: secs(self.jwks_refetch_interval_secs),
                    ..JwksPolicy::default()
                });
            if let Some(var) = &self.jwt_secret_env {
                let secret = std::env::var(var).map_err(|_| {
                    format!("--jwt-secret-env: environment variable {var} is not set")
                })?;
                b = b.secret(secret.as_bytes());
            }
            if let Some(file) = &self.jwt_public_key_file {
                let pem = std::fs::read(file)
                    .map_err(|e| format!("--jwt-public-key-file {}: {e}", file.display()))?;
                b = b.public_key_pem(&pem);
            }
            if let Some(url) = &self.jwt_jwks_url {
                b = b.jwks_url(url);
            }
            if let Some(issuer) = &self.jwt_oidc_issuer {
                b = b.oidc_issuer(issuer);
            }
            for iss in &self.jwt_issuers {
                b = b.issuer(iss);
            }
            for aud in &audiences {
                b = b.audience(aud);
            }
            if !self.jwt_algorithms.is_empty() {
                let algs = self
                    .jwt_algorithms
                    .iter()
                    .map(|a| {
                        a.parse::<Algorithm>()
                            .map_err(|_| format!("--jwt-algorithm: unknown algorithm `{a}`"))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                b = b.algorithms(algs);
            }
            if let Some(claim) = &self.jwt_scope_claim {
                b = b.scope_claim(claim);
            }
            let jwt = b.build().map_err(|e| match e {
                mcp_bastion::auth::JwtConfigError::NoAudience => {
                    "JWT: --jwt-audience or --resource-url is required (tokens for other resources must be refused)".to_owned()
                }
                e => e.to_string(),
            })?;
            chain = chain.with(jwt);
        }

        let policy = RemotePolicy {
            timeout: secs(self.auth_timeout_secs),
            cache_ttl: secs(self.auth_cache_secs),
            ..RemotePolicy::default()
        };
        if let Some(url) = &self.auth_server_url {
            chain = chain.with(RemoteAuth::new(url, policy));
        }
        if let Some(url) = &self.introspection_url {
            let mut i = Introspection::new(url, policy);
            if let (Some(id), Some(var)) = (
                &self.introspection_client_id,
                &self.introspection_client_secret_env,
            ) {
                let secret = std::env::var(var).map_err(|_| {
                    format!(
                        "--introspection-client-secret-env: environment variable {var} is not set"
                    )
                })?;
                i = i.client_credentials(id, secret);
            }
            for aud in &audiences {
                i = i.audience(aud);
            }
            chain = chain.with(i);
        }

        let mut scopes = ScopePolicy::new();
        for rule in &self.tool_scopes {
            scopes = scopes.parse_rule(rule)?;
        }
        // The stdio backend maps principal fields to its child's environment
        // (`servers::session_env`); here only: they need authentication.
        if chain.is_empty() {
            if !scopes.is_empty() || !self.principal_env.is_empty() || self.resource_url.is_some() {
                return Err("--tool-scope, --principal-env and --resource-url need authentication: add --api-key, --api-keys-file, a --jwt-* key source, --auth-server-url or --introspection-url".into());
            }
            return Ok(AuthLayers::default());
        }

        let mut md = ProtectedResourceMetadata::new().scopes(scopes.all_scopes());
        for a in &self.authorization_servers {
            md = md.authorization_server(a);
        }
        if !self.api_key_query_params.is_empty() {
            md = md.bearer_method("query");
        }
        if let Some(r) = &self.resource_url {
            md = md.resource(r);
        }
        let header =
            http::HeaderName::from_bytes(self.api_key_header.as_bytes()).map_err(|_| {
                format!(
                    "--api-key-header: `{}` is not a header name",
                    self.api_key_header
                )
            })?;
        let sources = CredentialSources::new()
            .headers([header])
            .query_params(self.api_key_query_params.iter().cloned());
        let mut auth = McpAuthLayer::new(chain).credentials(sources);
        let mut scope_layer = McpScopeLayer::new(scopes.clone());
        match md.metadata_url() {
            Some(url) => {
                auth = auth.resource_metadata(&url);
                scope_layer = scope_layer.resource_metadata(url);
            }
            None => {
                let path = format!("{prefix}{WELL_KNOWN_PATH}/mcp");
                auth = auth.resource_metadata_path(&path);
                scope_layer = scope_layer.resource_metadata_path(path);
            }
        }
        Ok(AuthLayers {
            auth: Some(auth),
            scopes: (!scopes.is_empty()).then_some(scope_layer),
            metadata: Some(md),
        })
    }
}
