//! mcp-bastion as its own OAuth authorization server, in one axum app with
//! the MCP endpoint it protects: clients (claude.ai, Claude Code, VS Code,
//! the Python and TypeScript SDKs) discover it from the 401, register (a
//! Client ID Metadata Document, or dynamic registration), and log their
//! user in through the operator's OIDC provider or GitHub; the tokens they
//! get are verified locally by `McpAuthLayer`.
//!
//! ```text
//! UPSTREAM_CLIENT_SECRET=… cargo run -p examples --example oauth_server -- \
//!     --listen 127.0.0.1:8080 --issuer http://127.0.0.1:8080 \
//!     --upstream-issuer https://accounts.example.com --upstream-client-id mcp-bastion \
//!     --allow-email-domain example.com --dcr open
//!
//! UPSTREAM_CLIENT_SECRET=… cargo run -p examples --example oauth_server -- \
//!     --upstream github --upstream-client-id Ov23li… --allow-github-org my-org --dcr open
//! ```
//!
//! Register `<issuer>/oauth/callback` as a redirect URI of the client
//! `--upstream-client-id` at the provider (for GitHub: the OAuth app's
//! "Authorization callback URL"). The MCP endpoint is `/mcp`
//! (Streamable HTTP) and `/sse` (legacy); its `whoami` tool answers with the
//! subject of the token. Loopback redirect URIs (any port) are always
//! allowed for registration, as desktop and CLI clients use them.
//!
//! Replicas behind one public URL: give each the same `--issuer`,
//! `--signing-key-file` and `--store redis --redis-url …`; a login begun on
//! one may end on another, and a code issued by one is redeemed by another.

use std::{net::SocketAddr, path::PathBuf, sync::Arc};

use axum::routing::get;
use clap::{Parser, ValueEnum};
use mcp_bastion::{
    auth::{
        McpAuthLayer,
        oauth::{
            DcrPolicy, OAuthServer, RedisOAuthStore, SecretsKey, SigningKey, UpstreamOAuth2,
            UpstreamOidc, UpstreamProvider,
        },
    },
    backend::{Backend, rmcp::RmcpBackend},
    principal::Principal,
    stack::McpStack,
};
use rmcp::{
    ServerHandler,
    handler::server::{common::Extension, tool::ToolRouter},
    model::{Implementation, ServerCapabilities, ServerConfig},
    tool, tool_handler, tool_router,
};

/// Serve an MCP endpoint and the OAuth authorization server its clients log
/// in with.
#[derive(Debug, Parser)]
#[command(name = "oauth_server")]
struct Cli {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The public base URL (the issuer); default `http://<listen>`.
    #[arg(long)]
    issuer: Option<String>,
    /// The resource tokens are for; default the issuer itself, which covers
    /// both `/mcp` and `/sse` (a client checks that the resource is a prefix
    /// of the URL it connects to).
    #[arg(long)]
    resource: Option<String>,
    /// The kind of identity provider.
    #[arg(long, value_enum, default_value = "oidc")]
    upstream: UpstreamKind,
    /// The operator's OIDC provider (discovery at
    /// `<issuer>/.well-known/openid-configuration`); with `--upstream oidc`.
    #[arg(long, required_if_eq("upstream", "oidc"))]
    upstream_issuer: Option<String>,
    /// GitHub Enterprise Server's base URL (API at `<url>/api/v3`); with
    /// `--upstream github`, default github.com.
    #[arg(long)]
    upstream_github_url: Option<String>,
    /// mcp-bastion's client id at the provider.
    #[arg(long)]
    upstream_client_id: String,
    /// A scope asked of the provider; repeatable (default: `openid email
    /// profile` for OIDC, `read:user user:email` for GitHub).
    #[arg(long)]
    upstream_scope: Vec<String>,
    /// mcp-bastion's client secret at the provider.
    #[arg(long, env = "UPSTREAM_CLIENT_SECRET", hide_env_values = true)]
    upstream_client_secret: Option<String>,
    /// A subject allowed to log in; repeatable.
    #[arg(long)]
    allow_subject: Vec<String>,
    /// An email domain (verified emails only) allowed to log in; repeatable.
    #[arg(long)]
    allow_email_domain: Vec<String>,
    /// A group (of the groups claim) allowed to log in; repeatable.
    #[arg(long)]
    allow_group: Vec<String>,
    /// The claim that lists a user's groups (default `groups`).
    #[arg(long)]
    groups_claim: Option<String>,
    /// A GitHub organisation whose active members may log in; repeatable.
    #[arg(long)]
    allow_github_org: Vec<String>,
    /// A GitHub team (`org/team-slug`) whose members may log in; repeatable.
    #[arg(long)]
    allow_github_team: Vec<String>,
    /// Let everyone who can log in at the provider in.
    #[arg(long)]
    allow_any_user: bool,
    /// Dynamic client registration.
    #[arg(long, value_enum, default_value = "off")]
    dcr: Dcr,
    /// A redirect URI registrations may name exactly; repeatable.
    #[arg(long)]
    redirect_allow: Vec<String>,
    /// Let Client ID Metadata Document fetches reach loopback (tests only).
    #[arg(long)]
    cimd_allow_loopback: bool,
    /// A certificate (PEM) to trust for metadata-document fetches (tests).
    #[arg(long)]
    cimd_ca_file: Option<PathBuf>,
    /// The ES256 signing key (PEM): loaded, or generated and written there
    /// when the file does not exist; without it, a key for this run only.
    #[arg(long)]
    signing_key_file: Option<PathBuf>,
    /// A previous signing key (PEM) after a rotation: it signs nothing but
    /// its tokens still verify; remove it once they have expired (the token
    /// TTL after the rotation). Repeatable.
    #[arg(long)]
    previous_signing_key_file: Vec<PathBuf>,
    /// A scope offered; repeatable (default `mcp`).
    #[arg(long, default_value = "mcp")]
    scope: Vec<String>,
    /// Where the authorization server keeps its records: `memory` (one
    /// process) or `redis` (replicas sharing `--redis-url`; they must also
    /// share the issuer and the signing key file).
    #[arg(long, value_enum, default_value = "memory")]
    store: Store,
    /// The Redis of `--store redis`.
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    redis_url: String,
    /// The key the users' upstream tokens are sealed with (64 hex digits or
    /// base64 of 32 bytes); required with `--store redis`, where replicas
    /// open each other's records. Without it, a key for this run only.
    #[arg(long, env = "OAUTH_SECRETS_KEY", hide_env_values = true)]
    secrets_key: Option<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Store {
    Memory,
    Redis,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum UpstreamKind {
    /// Any OpenID Connect provider, by discovery.
    Oidc,
    /// GitHub (or GitHub Enterprise Server): the user API, organisations, teams.
    Github,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Dcr {
    Open,
    Off,
}

#[derive(Debug, Clone)]
struct Greeter {
    tools: ToolRouter<Self>,
}

#[tool_router]
impl Greeter {
    #[tool(description = "The subject of the caller's token")]
    async fn whoami(&self, Extension(parts): Extension<http::request::Parts>) -> String {
        parts
            .extensions
            .get::<Principal>()
            .map_or_else(|| "nobody".to_owned(), |p| p.subject().to_owned())
    }
}

#[tool_handler(router = self.tools)]
impl ServerHandler for Greeter {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build()).with_server_info(
            Implementation::new("mcp-bastion-oauth-demo", env!("CARGO_PKG_VERSION")),
        )
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    examples::init_tracing();
    let cli = Cli::parse();
    let issuer = cli
        .issuer
        .clone()
        .unwrap_or_else(|| format!("http://{}", cli.listen));
    let issuer = issuer.trim_end_matches('/').to_owned();
    let resource = cli.resource.clone().unwrap_or_else(|| issuer.clone());

    let upstream: UpstreamProvider = match cli.upstream {
        UpstreamKind::Oidc => {
            let issuer = cli.upstream_issuer.as_deref().unwrap_or_default();
            let mut p = UpstreamOidc::new(issuer, &cli.upstream_client_id);
            if let Some(secret) = &cli.upstream_client_secret {
                p = p.client_secret(secret);
            }
            if !cli.upstream_scope.is_empty() {
                p = p.scopes(cli.upstream_scope.iter().cloned());
            }
            p.into()
        }
        UpstreamKind::Github => {
            let mut p = match &cli.upstream_github_url {
                Some(base) => UpstreamOAuth2::github_enterprise(base, &cli.upstream_client_id),
                None => UpstreamOAuth2::github(&cli.upstream_client_id),
            };
            if let Some(secret) = &cli.upstream_client_secret {
                p = p.client_secret(secret);
            }
            if !cli.upstream_scope.is_empty() {
                p = p.scopes(cli.upstream_scope.iter().cloned());
            }
            p.into()
        }
    };
    let mut oauth = OAuthServer::builder()
        .issuer(&issuer)
        .resource(&resource)
        .scopes(cli.scope.iter().cloned())
        .upstream(upstream)
        .dcr(match cli.dcr {
            Dcr::Open => DcrPolicy::Open,
            Dcr::Off => DcrPolicy::Off,
        })
        .redirect_allow_loopback(true)
        .cimd_allow_loopback(cli.cimd_allow_loopback);
    if let Some(path) = &cli.signing_key_file {
        oauth = oauth.signing_key(SigningKey::load_or_generate(path)?);
    }
    for path in &cli.previous_signing_key_file {
        oauth = oauth.previous_signing_key(SigningKey::from_pem(&std::fs::read(path)?)?);
    }
    if matches!(cli.store, Store::Redis) {
        oauth = oauth.store(Arc::new(RedisOAuthStore::open(&cli.redis_url)?));
    }
    if let Some(key) = &cli.secrets_key {
        oauth = oauth.secrets_key(SecretsKey::parse(key)?);
    }
    if let Some(path) = &cli.cimd_ca_file {
        oauth = oauth.cimd_root_certificate(std::fs::read(path)?);
    }
    for uri in &cli.redirect_allow {
        oauth = oauth.redirect_allow(uri);
    }
    for sub in &cli.allow_subject {
        oauth = oauth.allow_subject(sub);
    }
    for domain in &cli.allow_email_domain {
        oauth = oauth.allow_email_domain(domain);
    }
    for group in &cli.allow_group {
        oauth = oauth.allow_group(group);
    }
    if let Some(claim) = &cli.groups_claim {
        oauth = oauth.groups_claim(claim);
    }
    for org in &cli.allow_github_org {
        oauth = oauth.allow_github_org(org);
    }
    for team in &cli.allow_github_team {
        oauth = oauth.allow_github_team(team);
    }
    if cli.allow_any_user {
        oauth = oauth.allow_any_user();
    }
    let oauth = oauth.build()?;
    eprintln!(
        "OAuth issuer {issuer}; register {} at the provider",
        oauth.callback_url()
    );

    let backend = RmcpBackend::new(|| Greeter {
        tools: Greeter::tool_router(),
    });
    let metadata = oauth.protected_resource_metadata();
    let metadata_url = metadata.metadata_url().unwrap_or_default();
    // the authenticator checks the token locally (ES256, iss, aud = the
    // resource) and that its grant was not revoked
    let stack = McpStack::new()
        .auth(McpAuthLayer::new(oauth.authenticator()).resource_metadata(metadata_url))
        .resource_metadata(metadata);
    let app = stack
        .serve(backend.clone())
        .merge(oauth.router())
        .route("/healthz", get(|| async { "ok" }));

    examples::serve(cli.listen, app).await?;
    backend.shutdown().await;
    Ok(())
}
