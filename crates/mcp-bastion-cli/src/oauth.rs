//! mcp-bastion as its own OAuth 2.1 authorization server: the `--oauth-*`
//! flags, and the [`OAuthServer`] their configuration builds.
//!
//! `--oauth-issuer URL` turns it on. The issuer is the public base URL of
//! this server (its path is the `--path-prefix`); the resource its tokens
//! are for is that same URL (or `--resource-url`), so that one token serves
//! `/mcp`, `/sse` and every `/servers/<name>/…` below it: a client checks
//! that the resource is a prefix of the URL it connects to. Its endpoints
//! (`/oauth/*`, the RFC 8414 metadata) are mounted beside the MCP endpoints,
//! outside authentication and inside CORS and the Origin guard (the issuer's
//! own origin is allowed: the consent page posts from it).

use clap::Args;
use mcp_bastion::net::TrustedProxies;
use std::sync::Arc;

use mcp_bastion::auth::oauth::{
    DcrPolicy, OAuthServer, RedisOAuthStore, SecretsKey, SigningKey, StaticClient, UpstreamOAuth2,
    UpstreamOidc, UpstreamProvider,
};
use mcp_bastion_cli::config::{
    Config,
    oauth::{DcrMode, OAuthConfig, OnOff, UpstreamKind},
    options::StoreKind,
};
use serde::Serialize;

use crate::{
    outbound::OutboundTrust,
    pem::{CaBundle, PemFile},
};

/// The OAuth authorization server's flags, as given (values are read and
/// checked with the other sources in [`mcp_bastion_cli::config`]).
#[derive(Debug, Clone, Default, Args, Serialize)]
#[command(next_help_heading = "OAuth authorization server")]
#[serde(rename_all = "kebab-case")]
pub struct OAuthFlags {
    /// Be the OAuth authorization server of these MCP endpoints, with this
    /// issuer: the public base URL (its path is --path-prefix).
    #[arg(long, value_name = "URL")]
    pub oauth_issuer: Option<String>,

    /// The kind of identity provider users log in with: oidc (by
    /// --oauth-upstream-issuer) or github [default: oidc].
    #[arg(long, value_name = "KIND")]
    pub oauth_upstream: Option<String>,

    /// The OIDC provider users log in with (discovery at
    /// `URL/.well-known/openid-configuration`).
    #[arg(long, value_name = "URL")]
    pub oauth_upstream_issuer: Option<String>,

    /// GitHub Enterprise Server's base URL, with `--oauth-upstream github`
    /// (its API at `URL/api/v3`) [default: github.com].
    #[arg(long, value_name = "URL")]
    pub oauth_upstream_github_url: Option<String>,

    /// mcp-bastion's client id at the provider (register
    /// `<issuer>/oauth/callback` there as its redirect URI).
    #[arg(long, value_name = "ID")]
    pub oauth_upstream_client_id: Option<String>,

    /// Environment variable holding mcp-bastion's client secret at the provider.
    #[arg(long, value_name = "VAR")]
    pub oauth_upstream_client_secret_env: Option<String>,

    /// A scope asked of the provider (repeatable) [default: openid email
    /// profile; GitHub: read:user user:email, and read:org with
    /// --oauth-allow-github-org].
    #[arg(long, value_name = "SCOPE")]
    pub oauth_upstream_scope: Vec<String>,

    /// An upstream subject allowed to log in (repeatable).
    #[arg(long, value_name = "SUB")]
    pub oauth_allow_subject: Vec<String>,

    /// An email domain allowed to log in, verified emails only (repeatable).
    #[arg(long, value_name = "DOMAIN")]
    pub oauth_allow_email_domain: Vec<String>,

    /// A group allowed to log in, from the groups claim (repeatable).
    #[arg(long, value_name = "GROUP")]
    pub oauth_allow_group: Vec<String>,

    /// The claim (or GitHub-less user endpoint field) that lists a user's
    /// groups [default: groups].
    #[arg(long, value_name = "CLAIM")]
    pub oauth_groups_claim: Option<String>,

    /// A GitHub organisation (`acme`) or team (`acme/platform`) whose
    /// active members may log in (repeatable; needs --oauth-upstream github).
    #[arg(long, value_name = "ORG[/TEAM]")]
    pub oauth_allow_github_org: Vec<String>,

    /// Let everyone who can log in at the provider in.
    #[arg(long)]
    pub oauth_allow_any_user: bool,

    /// A redirect URI registered clients may name exactly (repeatable);
    /// loopback redirects (RFC 8252) are always allowed, on any port.
    #[arg(long, value_name = "URL")]
    pub oauth_redirect_allow: Vec<String>,

    /// Dynamic client registration: open, off, or token (needs
    /// --oauth-dcr-token-env) [default: off].
    #[arg(long, value_name = "MODE")]
    pub oauth_dcr: Option<String>,

    /// Environment variable holding the initial access token of `--oauth-dcr token`.
    #[arg(long, value_name = "VAR")]
    pub oauth_dcr_token_env: Option<String>,

    /// Client ID Metadata Documents: on or off [default: on].
    #[arg(long, value_name = "MODE")]
    pub oauth_cimd: Option<String>,

    /// Let metadata-document fetches reach loopback addresses. For tests only.
    #[arg(long)]
    pub oauth_cimd_allow_loopback: bool,

    /// A PEM certificate trusted for metadata-document fetches (private CAs, tests).
    #[arg(long, value_name = "FILE")]
    pub oauth_cimd_ca_file: Option<String>,

    /// The ES256 signing key (PEM): loaded, or generated and written there
    /// when the file does not exist [default: a key for this run only].
    #[arg(long, value_name = "FILE")]
    pub oauth_signing_key_file: Option<String>,

    /// A previous signing key (PEM) after a rotation (repeatable): it signs
    /// nothing, its tokens still verify and it is published at the JWKS
    /// endpoint; remove it once they have expired (--oauth-token-ttl after
    /// the rotation).
    #[arg(long, value_name = "FILE")]
    pub oauth_signing_key_previous_file: Vec<String>,

    /// Where the authorization server keeps its records: memory (one
    /// process) or redis (--redis-url; replicas) [default: memory].
    #[arg(long, value_name = "STORE")]
    pub oauth_store: Option<String>,

    /// Access-token lifetime (`15m`, `1h`) [default: 1h].
    #[arg(long, value_name = "DURATION")]
    pub oauth_token_ttl: Option<String>,

    /// How long a registered client lives if it never completes a login
    /// (`2s`, `1h`) [default: 1d].
    #[arg(long, value_name = "DURATION")]
    pub oauth_dcr_unused_ttl: Option<String>,

    /// How long a used registered client lives after its last use
    /// (recorded at most once a day) [default: 30d].
    #[arg(long, value_name = "DURATION")]
    pub oauth_dcr_idle_ttl: Option<String>,

    /// Open registrations allowed per client IP (`20/h`), or off; shared by
    /// the replicas of one --redis-url [default: 20/h].
    #[arg(long, value_name = "LIMIT")]
    pub oauth_dcr_rate_limit: Option<String>,

    /// A scope offered to clients (repeatable).
    #[arg(long, value_name = "SCOPE")]
    pub oauth_scope: Vec<String>,

    /// A static client, `ID=REDIRECT_URI` (repeatable; a confidential
    /// client's secret only in the file, as `secret-sha256`).
    #[arg(long, value_name = "ID=REDIRECT_URI")]
    pub oauth_client: Vec<String>,

    /// Environment variable holding the 32-byte key (64 hex digits or
    /// base64) that encrypts the users' upstream tokens at rest [default: a
    /// key for this run only].
    #[arg(long, value_name = "VAR")]
    pub oauth_secrets_key_env: Option<String>,
}

/// The resource the tokens are for: `--resource-url`, else the issuer.
pub fn resource(config: &Config) -> Option<String> {
    let issuer = config.oauth.oauth_issuer.as_ref()?;
    Some(config.auth.resource_url.as_ref().map_or_else(
        || issuer.get().trim_end_matches('/').to_owned(),
        |r| r.get().clone(),
    ))
}

/// The value of the variable `var` names, for the option `option`.
fn secret_from_env(option: &str, var: &str) -> Result<String, String> {
    std::env::var(var)
        .ok()
        .filter(|v| !v.is_empty())
        .ok_or_else(|| format!("--{option}: environment variable {var} is not set"))
}

/// The identity provider of `o`: an OIDC provider, or GitHub.
fn upstream(o: &OAuthConfig) -> Result<UpstreamProvider, String> {
    let client_id = o
        .oauth_upstream_client_id
        .as_ref()
        .ok_or("--oauth-issuer needs --oauth-upstream-client-id")?;
    let secret = o
        .oauth_upstream_client_secret_env
        .as_ref()
        .map(|var| secret_from_env("oauth-upstream-client-secret-env", var.get()))
        .transpose()?;
    let scopes = (!o.oauth_upstream_scope.is_empty()).then(|| o.oauth_upstream_scope.to_vec());
    Ok(match o.oauth_upstream.get() {
        UpstreamKind::Oidc => {
            let issuer = o
                .oauth_upstream_issuer
                .as_ref()
                .ok_or("--oauth-issuer needs --oauth-upstream-issuer or --oauth-upstream github")?;
            let mut p = UpstreamOidc::new(issuer.get(), client_id.get());
            if let Some(secret) = secret {
                p = p.client_secret(secret);
            }
            if let Some(scopes) = scopes {
                p = p.scopes(scopes);
            }
            p.into()
        }
        UpstreamKind::Github => {
            let mut p = match &o.oauth_upstream_github_url {
                Some(base) => UpstreamOAuth2::github_enterprise(base.get(), client_id.get()),
                None => UpstreamOAuth2::github(client_id.get()),
            };
            if let Some(secret) = secret {
                p = p.client_secret(secret);
            }
            if let Some(scopes) = scopes {
                p = p.scopes(scopes);
            }
            p.into()
        }
    })
}

/// The authorization server of `config`, `None` when `--oauth-issuer` is
/// not set. `offered` are scopes offered besides `--oauth-scope` (those the
/// `--tool-scope` rules need).
///
/// # Errors
///
/// An unset secret variable, an unreadable key or CA file, or what the
/// library refuses. Never quotes a secret.
pub fn server(
    config: &Config,
    offered: &[String],
    trust: &OutboundTrust,
) -> Result<Option<OAuthServer>, String> {
    let o: &OAuthConfig = &config.oauth;
    let (Some(issuer), Some(resource)) = (&o.oauth_issuer, resource(config)) else {
        return Ok(None);
    };
    let upstream = upstream(o)?;
    let mut scopes: Vec<String> = o.oauth_scope.to_vec();
    for scope in offered {
        if !scopes.contains(scope) {
            scopes.push(scope.clone());
        }
    }
    let dcr = match o.oauth_dcr.get() {
        DcrMode::Open => DcrPolicy::Open,
        DcrMode::Off => DcrPolicy::Off,
        DcrMode::Token => {
            let var = o
                .oauth_dcr_token_env
                .as_ref()
                .ok_or("--oauth-dcr token needs --oauth-dcr-token-env")?;
            DcrPolicy::initial_token(&secret_from_env("oauth-dcr-token-env", var.get())?)
        }
    };
    let mut b = OAuthServer::builder()
        .issuer(issuer.get())
        .resource(resource)
        .scopes(scopes)
        .token_ttl(o.oauth_token_ttl.get().0)
        .upstream(upstream)
        .dcr(dcr)
        .dcr_unused_ttl(o.oauth_dcr_unused_ttl.get().0)
        .dcr_idle_ttl(o.oauth_dcr_idle_ttl.get().0)
        .dcr_rate_limit(o.oauth_dcr_rate_limit.get().0)
        .dcr_trusted_proxies(TrustedProxies::new(
            config.rate_limit.trusted_proxy.iter().copied(),
        ))
        .redirect_allow_loopback(true)
        .cimd(*o.oauth_cimd.get() == OnOff::On)
        .cimd_allow_loopback(o.oauth_cimd_allow_loopback);
    if let Some(store) = &config.rate_limit.redis_url {
        // the rate limits' Redis, under the registration limit's own keys
        b = b
            .dcr_rate_limit_store(store.get().clone())
            .dcr_rate_limit_failure(*config.rate_limit.redis_failure.get());
    }
    for uri in o.oauth_redirect_allow.iter() {
        b = b.redirect_allow(uri);
    }
    for sub in o.oauth_allow_subject.iter() {
        b = b.allow_subject(sub);
    }
    for domain in o.oauth_allow_email_domain.iter() {
        b = b.allow_email_domain(domain);
    }
    for group in o.oauth_allow_group.iter() {
        b = b.allow_group(group);
    }
    if let Some(claim) = &o.oauth_groups_claim {
        b = b.groups_claim(claim.get());
    }
    for entry in o.oauth_allow_github_org.iter() {
        b = if entry.contains('/') {
            b.allow_github_team(entry)
        } else {
            b.allow_github_org(entry)
        };
    }
    if o.oauth_allow_any_user {
        b = b.allow_any_user();
    }
    if let Some(path) = &o.oauth_cimd_ca_file {
        let bundle = CaBundle::load(&PemFile::flag("--oauth-cimd-ca-file", path.get()))?;
        b = b.cimd_root_certificate(bundle.pem);
    }
    if let Some(pem) = trust.ca_pem() {
        b = b.upstream_root_certificates(pem);
    }
    if let Some(path) = &o.oauth_signing_key_file {
        let path = path.get();
        let key = SigningKey::load_or_generate(path)
            .map_err(|e| format!("--oauth-signing-key-file {}: {e}", path.display()))?;
        b = b.signing_key(key);
    }
    for path in o.oauth_signing_key_previous_file.iter() {
        // a previous key is never generated: it must be the one that signed
        let key = std::fs::read(path)
            .map_err(|e| e.to_string())
            .and_then(|pem| SigningKey::from_pem(&pem).map_err(|e| e.to_string()))
            .map_err(|e| format!("--oauth-signing-key-previous-file {}: {e}", path.display()))?;
        b = b.previous_signing_key(key);
    }
    if *o.oauth_store.get() == StoreKind::Redis {
        let redis = config
            .rate_limit
            .redis_url
            .as_ref()
            .ok_or("--oauth-store redis needs --redis-url")?;
        let store = RedisOAuthStore::new(redis.get().client().clone())
            .map_err(|e| format!("--oauth-store redis: {e}"))?;
        b = b.store(Arc::new(store));
    }
    if let Some(var) = &o.oauth_secrets_key_env {
        let text = secret_from_env("oauth-secrets-key-env", var.get())?;
        let key = SecretsKey::parse(&text)
            .map_err(|e| format!("--oauth-secrets-key-env: the value of {}: {e}", var.get()))?;
        b = b.secrets_key(key);
    }
    for client in o.oauth_client.clients()? {
        let mut c = StaticClient::new(client.id);
        if let Some(name) = client.name {
            c = c.name(name);
        }
        for uri in client.redirect_uris {
            c = c.redirect_uri(uri);
        }
        if let Some(digest) = client.secret_sha256 {
            c = c.secret_sha256(digest);
        }
        b = b.client(c);
    }
    b.build().map(Some).map_err(|e| format!("OAuth: {e}"))
}
