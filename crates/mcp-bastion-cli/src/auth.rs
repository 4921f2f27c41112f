//! Authentication and authorization: the flags, and the layers their
//! configuration builds.
//!
//! Auth is on as soon as one credential source is configured (`--api-key`,
//! `--api-keys-file`, a JWT key source, `--auth-server-url` or
//! `--introspection-url`, or mcp-bastion's own authorization server with
//! `--oauth-issuer`); several are tried in that order, the OAuth server's
//! tokens after API keys. The RFC 9728 metadata route, `/healthz` and
//! `/readyz` stay outside authentication.

use std::time::Duration;

use axum::Router;
use clap::Args;
use mcp_bastion::{
    auth::{
        Algorithm, AnyOf, ApiKeys, CredentialSources, Introspection, JwksPolicy, JwtAuthenticator,
        McpAuthLayer, McpScopeLayer, ProtectedResourceMetadata, RemoteAuth, RemotePolicy,
        ScopePolicy, WELL_KNOWN_PATH, oauth::OAuthServer,
    },
    principal::Principal,
    stack::McpStack,
};
use mcp_bastion_cli::config::AuthConfig;
use serde::Serialize;

use crate::outbound::OutboundTrust;

/// The authentication and authorization flags, as given (values are read
/// and checked with the other sources in [`mcp_bastion_cli::config`]).
#[derive(Debug, Clone, Default, Args, Serialize)]
#[command(next_help_heading = "Authentication")]
#[serde(rename_all = "kebab-case")]
pub struct AuthFlags {
    /// An accepted API key (repeatable, or comma-separated; prefer
    /// --api-keys-file or the environment: command lines are visible to
    /// other local users).
    #[arg(long, value_name = "KEY", value_delimiter = ',')]
    pub api_key: Vec<String>,

    /// A JSON file of API keys: `[{"key" | "sha256", "subject", "scopes", "env"}]`.
    #[arg(long, value_name = "FILE")]
    pub api_keys_file: Option<String>,

    /// The header carrying API keys (besides `Authorization: Bearer`) [default: x-api-key].
    #[arg(long, value_name = "NAME")]
    pub api_key_header: Option<String>,

    /// Accept credentials in this query parameter (repeatable; e.g. `auth`,
    /// `apiKey`), for clients that cannot send headers. Off by default.
    #[arg(long, value_name = "NAME")]
    pub api_key_query_param: Vec<String>,

    /// Verify HS256/384/512 JWTs with the secret in this environment variable.
    #[arg(long, value_name = "VAR")]
    pub jwt_secret_env: Option<String>,

    /// Verify JWTs with this PEM public key (RSA, EC or Ed25519).
    #[arg(long, value_name = "FILE")]
    pub jwt_public_key_file: Option<String>,

    /// Verify JWTs with the keys of this JWKS URL.
    #[arg(long, value_name = "URL")]
    pub jwt_jwks_url: Option<String>,

    /// Verify JWTs with the keys found by OIDC discovery from this issuer.
    #[arg(long, value_name = "URL")]
    pub jwt_oidc_issuer: Option<String>,

    /// Accepted `iss` (repeatable; default: the OIDC issuer, if any).
    #[arg(long, value_name = "ISS")]
    pub jwt_issuer: Vec<String>,

    /// Accepted `aud` (repeatable; default: --resource-url).
    #[arg(long, value_name = "AUD")]
    pub jwt_audience: Vec<String>,

    /// Allowed JWT algorithms (repeatable; default: those of the key type).
    #[arg(long, value_name = "ALG")]
    pub jwt_algorithm: Vec<String>,

    /// Clock-skew allowance for `exp`/`nbf`, in seconds [default: 60].
    #[arg(long, value_name = "SECS")]
    pub jwt_leeway_secs: Option<String>,

    /// Read scopes from this claim instead of `scope`/`scp`.
    #[arg(long, value_name = "CLAIM")]
    pub jwt_scope_claim: Option<String>,

    /// Least seconds between two JWKS fetches (unknown `kid`s, failures) [default: 30].
    #[arg(long, value_name = "SECS")]
    pub jwks_refetch_interval_secs: Option<String>,

    /// Seconds a JWKS stays fresh when it has no `Cache-Control: max-age` [default: 300].
    #[arg(long, value_name = "SECS")]
    pub jwks_fallback_ttl_secs: Option<String>,

    /// Check credentials with `GET URL?apiKey=<key>` → `{valid, userId, permissions, env}`.
    #[arg(long, value_name = "URL")]
    pub auth_server_url: Option<String>,

    /// Check tokens with RFC 7662 introspection at this URL.
    #[arg(long, value_name = "URL")]
    pub introspection_url: Option<String>,

    /// Client id for the introspection endpoint (HTTP Basic; with
    /// --introspection-client-secret-env).
    #[arg(long, value_name = "ID")]
    pub introspection_client_id: Option<String>,

    /// Environment variable holding the introspection client secret.
    #[arg(long, value_name = "VAR")]
    pub introspection_client_secret_env: Option<String>,

    /// Time limit of a remote auth or introspection call, in seconds [default: 5].
    #[arg(long, value_name = "SECS")]
    pub auth_timeout_secs: Option<String>,

    /// Seconds an accepted remote/introspected credential is cached (never past its `exp`) [default: 60].
    #[arg(long, value_name = "SECS")]
    pub auth_cache_secs: Option<String>,

    /// This server's MCP endpoint URL: the RFC 8707 resource, the JWT
    /// audience by default, and the base of the RFC 9728 metadata.
    #[arg(long, value_name = "URL")]
    pub resource_url: Option<String>,

    /// An authorization server for the RFC 9728 metadata (repeatable).
    #[arg(long, value_name = "URL")]
    pub authorization_server: Vec<String>,

    /// Scopes a tool needs, `TOOL=SCOPE[,SCOPE]`; also `method:NAME=…`,
    /// `resource:PATTERN=…`, `prompt:NAME=…` (repeatable).
    #[arg(long, value_name = "RULE")]
    pub tool_scope: Vec<String>,

    /// Put a principal field into a per-session child's environment,
    /// `VAR=subject|claim:<name>|env:<name>` (repeatable).
    #[arg(long, value_name = "VAR=FIELD")]
    pub principal_env: Vec<String>,
}

/// The layers built from [`AuthConfig`]; empty when auth is off.
#[derive(Debug, Clone, Default)]
pub struct AuthLayers {
    auth: Option<McpAuthLayer>,
    scopes: Option<McpScopeLayer>,
    metadata: Option<ProtectedResourceMetadata>,
}

impl AuthLayers {
    /// The RFC 9728 document, when authentication is on.
    pub fn metadata(&self) -> Option<&ProtectedResourceMetadata> {
        self.metadata.as_ref()
    }

    /// Adds authentication around `router`, and nothing else (for operator
    /// routes such as `/metrics` on the main listener).
    pub fn protect(&self, router: Router) -> Router {
        match &self.auth {
            Some(layer) => router.layer(layer.clone()),
            None => router,
        }
    }

    /// `stack` with authentication (told that `session_params`, what the
    /// session layers capture, are session data and not credentials),
    /// per-tool scopes and the protected-resource metadata, where
    /// configured.
    pub fn onto(
        &self,
        mut stack: McpStack,
        session_params: impl IntoIterator<Item = String>,
    ) -> McpStack {
        if let Some(auth) = &self.auth {
            stack = stack.auth(auth.clone().session_params(session_params));
        }
        if let Some(scopes) = &self.scopes {
            stack = stack.scopes(scopes.clone());
        }
        if let Some(md) = &self.metadata {
            stack = stack.resource_metadata(md.clone());
        }
        stack
    }
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Whether any way of authenticating callers is configured.
pub fn authenticates(config: &AuthConfig) -> bool {
    let this = config;
    !this.api_key.is_empty()
        || this.api_keys_file.is_some()
        || this.jwt_secret_env.is_some()
        || this.jwt_public_key_file.is_some()
        || this.jwt_jwks_url.is_some()
        || this.jwt_oidc_issuer.is_some()
        || this.auth_server_url.is_some()
        || this.introspection_url.is_some()
}

/// The scopes the `--tool-scope` rules name (offered by the OAuth server).
///
/// # Errors
///
/// A rule that does not parse.
pub fn tool_scopes(config: &AuthConfig) -> Result<Vec<String>, String> {
    let mut scopes = ScopePolicy::new();
    for rule in config.tool_scope.iter() {
        scopes = scopes.parse_rule(rule)?;
    }
    Ok(scopes.all_scopes().into_iter().collect())
}

/// Builds the layers of `config`, accepting `generated_key` too (the key
/// generated at start when no authentication is configured) and the tokens
/// of `oauth` (mcp-bastion's own authorization server, whose RFC 9728
/// document then names it). `prefix` is the `--path-prefix`.
///
/// # Errors
///
/// A message for an inconsistent or unreadable configuration. Never quotes a
/// secret.
pub fn layers(
    config: &AuthConfig,
    prefix: &str,
    generated_key: Option<&str>,
    oauth: Option<&OAuthServer>,
    trust: &OutboundTrust,
) -> Result<AuthLayers, String> {
    // the one client of the key sources, remote authentication and
    // introspection, when a private CA is to be trusted
    let http = trust.http_client()?;
    let this = config;
    let mut chain = AnyOf::new();
    let mut keys = ApiKeys::new();
    let configured = this.api_key.iter().map(String::as_str);
    for (i, key) in configured
        .chain(generated_key)
        .filter(|k| !k.is_empty())
        .enumerate()
    {
        keys = keys.key(key, Principal::new(format!("api-key-{}", i + 1)));
    }
    if let Some(file) = &this.api_keys_file {
        keys = keys.from_file(file.get()).map_err(|e| e.to_string())?;
    }
    if !keys.is_empty() {
        chain = chain.with(keys);
    }
    if let Some(oauth) = oauth {
        // the token's signature, issuer and audience locally, then its grant
        chain = chain.with(oauth.authenticator());
    }

    let mut audiences = this.jwt_audience.to_vec();
    if audiences.is_empty()
        && let Some(r) = &this.resource_url
    {
        audiences.push(r.get().clone());
    }
    let jwt_sources = usize::from(this.jwt_secret_env.is_some())
        + usize::from(this.jwt_public_key_file.is_some())
        + usize::from(this.jwt_jwks_url.is_some())
        + usize::from(this.jwt_oidc_issuer.is_some());
    if jwt_sources > 1 {
        return Err("configure one JWT key source: --jwt-secret-env, --jwt-public-key-file, --jwt-jwks-url or --jwt-oidc-issuer".into());
    }
    if jwt_sources == 1 {
        let mut b = JwtAuthenticator::builder()
            .leeway(secs(*this.jwt_leeway_secs.get()))
            .jwks_policy(JwksPolicy {
                fallback_ttl: secs(*this.jwks_fallback_ttl_secs.get()),
                min_refetch_interval: secs(*this.jwks_refetch_interval_secs.get()),
                ..JwksPolicy::default()
            });
        if let Some(var) = &this.jwt_secret_env {
            let var = var.get();
            let secret = std::env::var(var)
                .map_err(|_| format!("--jwt-secret-env: environment variable {var} is not set"))?;
            b = b.secret(secret.as_bytes());
        }
        if let Some(file) = &this.jwt_public_key_file {
            let file = file.get();
            let pem = std::fs::read(file)
                .map_err(|e| format!("--jwt-public-key-file {}: {e}", file.display()))?;
            b = b.public_key_pem(&pem);
        }
        if let Some(url) = &this.jwt_jwks_url {
            b = b.jwks_url(url.get());
        }
        if let Some(issuer) = &this.jwt_oidc_issuer {
            b = b.oidc_issuer(issuer.get());
        }
        for iss in this.jwt_issuer.iter() {
            b = b.issuer(iss);
        }
        for aud in &audiences {
            b = b.audience(aud);
        }
        if !this.jwt_algorithm.is_empty() {
            let algs = this
                .jwt_algorithm
                .iter()
                .map(|a| {
                    a.parse::<Algorithm>()
                        .map_err(|_| format!("--jwt-algorithm: unknown algorithm `{a}`"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            b = b.algorithms(algs);
        }
        if let Some(claim) = &this.jwt_scope_claim {
            b = b.scope_claim(claim.get());
        }
        if let Some(client) = &http {
            b = b.http_client(client.clone());
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
        timeout: secs(*this.auth_timeout_secs.get()),
        cache_ttl: secs(*this.auth_cache_secs.get()),
        ..RemotePolicy::default()
    };
    if let Some(url) = &this.auth_server_url {
        let mut remote = RemoteAuth::new(url.get(), policy);
        if let Some(client) = &http {
            remote = remote.http_client(client.clone());
        }
        chain = chain.with(remote);
    }
    if let Some(url) = &this.introspection_url {
        let mut i = Introspection::new(url.get(), policy);
        if let Some(client) = &http {
            i = i.http_client(client.clone());
        }
        if let (Some(id), Some(var)) = (
            &this.introspection_client_id,
            &this.introspection_client_secret_env,
        ) {
            let var = var.get();
            let secret = std::env::var(var).map_err(|_| {
                format!("--introspection-client-secret-env: environment variable {var} is not set")
            })?;
            i = i.client_credentials(id.get(), secret);
        }
        for aud in &audiences {
            i = i.audience(aud);
        }
        chain = chain.with(i);
    }

    let mut scopes = ScopePolicy::new();
    for rule in this.tool_scope.iter() {
        scopes = scopes.parse_rule(rule)?;
    }
    // The stdio backend maps principal fields to its child's environment
    // (`servers::session_env`); here only: they need authentication.
    if chain.is_empty() {
        if !scopes.is_empty() || !this.principal_env.is_empty() || this.resource_url.is_some() {
            return Err("--tool-scope, --principal-env and --resource-url need authentication: add --api-key, --api-keys-file, a --jwt-* key source, --auth-server-url or --introspection-url".into());
        }
        return Ok(AuthLayers::default());
    }

    // the OAuth server's document names it and offers its scopes (which
    // include those of the tool rules)
    let mut md = match oauth {
        Some(oauth) => oauth.protected_resource_metadata(),
        None => ProtectedResourceMetadata::new().scopes(scopes.all_scopes()),
    };
    for a in this.authorization_server.iter() {
        md = md.authorization_server(a);
    }
    if !this.api_key_query_param.is_empty() {
        md = md.bearer_method("query");
    }
    if let Some(r) = this.resource_url.as_ref().filter(|_| oauth.is_none()) {
        md = md.resource(r.get());
    }
    let header_name = this.api_key_header.get();
    let header = http::HeaderName::from_bytes(header_name.as_bytes())
        .map_err(|_| format!("--api-key-header: `{header_name}` is not a header name"))?;
    let sources = CredentialSources::new()
        .headers([header])
        .query_params(this.api_key_query_param.iter().cloned());
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
