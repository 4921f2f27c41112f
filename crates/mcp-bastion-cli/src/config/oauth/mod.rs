//! The `oauth-*` options: mcp-bastion as the OAuth 2.1 authorization server
//! of its own MCP endpoints (`--oauth-issuer` turns it on), its static
//! clients, and the rules across these options that `check` enforces.
//!
//! A static client is `ID=REDIRECT_URI` in a flag, a variable or the file
//! (repeat the id for several redirect URIs); in the file it may also be a
//! table, the only place a confidential client's secret can be given, as
//! its SHA-256 (never the secret itself):
//!
//! ```toml
//! [[oauth-client]]
//! id = "inspector"
//! name = "MCP Inspector"
//! redirect-uris = ["http://localhost:6274/oauth/callback"]
//! secret-sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
//! ```

mod check;
mod clients;

use std::{path::PathBuf, time::Duration};

use serde::{Deserialize, Serialize};

pub(in crate::config) use check::check;
pub use clients::{OAuthClient, OAuthClients};

use super::{
    options::StoreKind,
    value::{FromText, List, Parsed, from_text_by_value_enum, parse_duration, switch},
};

/// `--oauth-dcr`: who may register a client (RFC 7591).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DcrMode {
    /// Anyone (redirect URIs still limited to the allowlist).
    Open,
    /// Nobody: no registration endpoint.
    Off,
    /// Whoever presents the initial access token of `--oauth-dcr-token-env`.
    Token,
}

/// `--oauth-cimd`: whether `https` client ids are fetched as Client ID
/// Metadata Documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnOff {
    /// Fetched.
    On,
    /// Not: such a client id is unknown.
    Off,
}

/// `--oauth-upstream`: the kind of identity provider users log in with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum UpstreamKind {
    /// An OpenID Connect provider, by discovery from `oauth-upstream-issuer`.
    Oidc,
    /// GitHub (or GitHub Enterprise Server at `oauth-upstream-github-url`):
    /// identity from its user API, organisation and team memberships.
    Github,
}

from_text_by_value_enum!(DcrMode, OnOff, UpstreamKind);

/// `--oauth-token-ttl`: a duration (`90s`, `30m`, `1h`, `1d`) that cannot be off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetime(pub Duration);

impl FromText for Lifetime {
    fn from_text(text: &str) -> Result<Self, String> {
        parse_duration(text)?
            .map(Lifetime)
            .ok_or_else(|| "must be a positive duration (e.g. 15m, 1h)".to_owned())
    }
}

/// `--oauth-dcr-rate-limit`: a limit (`20/h`) or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegistrationRate(pub Option<mcp_bastion::ratelimit::Limit>);

impl FromText for RegistrationRate {
    fn from_text(text: &str) -> Result<Self, String> {
        if text.trim() == "off" {
            return Ok(Self(None));
        }
        mcp_bastion::ratelimit::Limit::from_text(text).map(|l| Self(Some(l)))
    }
}

/// mcp-bastion's own OAuth authorization server (`oauth-*`); off unless
/// `oauth-issuer` is set.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", default)]
pub struct OAuthConfig {
    /// The issuer: the public base URL of this server (turns OAuth on).
    pub oauth_issuer: Option<Parsed<String>>,
    /// The kind of identity provider (`oidc`, or `github`).
    pub oauth_upstream: Parsed<UpstreamKind>,
    /// The operator's OIDC provider users log in with.
    pub oauth_upstream_issuer: Option<Parsed<String>>,
    /// GitHub Enterprise Server's base URL (with `oauth-upstream = github`).
    pub oauth_upstream_github_url: Option<Parsed<String>>,
    /// mcp-bastion's client id at that provider.
    pub oauth_upstream_client_id: Option<Parsed<String>>,
    /// The variable holding mcp-bastion's client secret at that provider.
    pub oauth_upstream_client_secret_env: Option<Parsed<String>>,
    /// Scopes asked of the provider (default `openid email profile`).
    pub oauth_upstream_scope: List<String>,
    /// Upstream subjects allowed to log in.
    pub oauth_allow_subject: List<String>,
    /// Email domains (verified emails) allowed to log in.
    pub oauth_allow_email_domain: List<String>,
    /// Groups (of the groups claim) allowed to log in.
    pub oauth_allow_group: List<String>,
    /// The claim that lists a user's groups (default `groups`).
    pub oauth_groups_claim: Option<Parsed<String>>,
    /// GitHub organisations (`org`) and teams (`org/team`) whose active
    /// members may log in.
    pub oauth_allow_github_org: List<String>,
    /// Everyone who can log in at the provider may.
    #[serde(deserialize_with = "switch")]
    pub oauth_allow_any_user: bool,
    /// Redirect URIs a registered client may name (exactly).
    pub oauth_redirect_allow: List<String>,
    /// Dynamic client registration.
    pub oauth_dcr: Parsed<DcrMode>,
    /// The variable holding the initial access token of `oauth-dcr = "token"`.
    pub oauth_dcr_token_env: Option<Parsed<String>>,
    /// Client ID Metadata Documents.
    pub oauth_cimd: Parsed<OnOff>,
    /// Lets metadata-document fetches reach loopback (tests only).
    #[serde(deserialize_with = "switch")]
    pub oauth_cimd_allow_loopback: bool,
    /// A PEM certificate trusted for metadata-document fetches.
    pub oauth_cimd_ca_file: Option<Parsed<PathBuf>>,
    /// The ES256 signing key (PEM): loaded, or generated and written.
    pub oauth_signing_key_file: Option<Parsed<PathBuf>>,
    /// Previous signing keys (PEM), kept through a rotation: they verify
    /// and are published, but sign nothing.
    pub oauth_signing_key_previous_file: List<PathBuf>,
    /// Where the records live: this process, or Redis (`redis-url`) for
    /// replicas.
    pub oauth_store: Parsed<StoreKind>,
    /// Access-token lifetime.
    pub oauth_token_ttl: Parsed<Lifetime>,
    /// Lifetime of a registered client never used.
    pub oauth_dcr_unused_ttl: Parsed<Lifetime>,
    /// Lifetime of a used registered client after its last use.
    pub oauth_dcr_idle_ttl: Parsed<Lifetime>,
    /// Open registrations per client IP.
    pub oauth_dcr_rate_limit: Parsed<RegistrationRate>,
    /// The scopes offered.
    pub oauth_scope: List<String>,
    /// Static clients.
    pub oauth_client: OAuthClients,
    /// The variable holding the key that encrypts upstream tokens at rest.
    pub oauth_secrets_key_env: Option<Parsed<String>>,
}

impl Default for OAuthConfig {
    fn default() -> Self {
        Self {
            oauth_issuer: None,
            oauth_upstream: Parsed::known("oidc", UpstreamKind::Oidc),
            oauth_upstream_issuer: None,
            oauth_upstream_github_url: None,
            oauth_upstream_client_id: None,
            oauth_upstream_client_secret_env: None,
            oauth_upstream_scope: List::default(),
            oauth_allow_subject: List::default(),
            oauth_allow_email_domain: List::default(),
            oauth_allow_group: List::default(),
            oauth_groups_claim: None,
            oauth_allow_github_org: List::default(),
            oauth_allow_any_user: false,
            oauth_redirect_allow: List::default(),
            oauth_dcr: Parsed::known("off", DcrMode::Off),
            oauth_dcr_token_env: None,
            oauth_cimd: Parsed::known("on", OnOff::On),
            oauth_cimd_allow_loopback: false,
            oauth_cimd_ca_file: None,
            oauth_signing_key_file: None,
            oauth_signing_key_previous_file: List::default(),
            oauth_store: Parsed::known("memory", StoreKind::Memory),
            oauth_token_ttl: Parsed::known("1h", Lifetime(Duration::from_secs(3600))),
            oauth_dcr_unused_ttl: Parsed::known("1d", Lifetime(Duration::from_secs(24 * 3600))),
            oauth_dcr_idle_ttl: Parsed::known("30d", Lifetime(Duration::from_secs(30 * 24 * 3600))),
            oauth_dcr_rate_limit: Parsed::known(
                "20/h",
                RegistrationRate(mcp_bastion::ratelimit::Limit::new(
                    20,
                    Duration::from_secs(3600),
                )),
            ),
            oauth_scope: List::default(),
            oauth_client: OAuthClients::default(),
            oauth_secrets_key_env: None,
        }
    }
}

impl OAuthConfig {
    /// Whether the authorization server is on.
    pub fn enabled(&self) -> bool {
        self.oauth_issuer.is_some()
    }

    /// The keys of the options set (other than `oauth-issuer`), to name one
    /// when the issuer is missing.
    fn set_keys(&self) -> Vec<&'static str> {
        let defaults = Self::default();
        let mut set = Vec::new();
        let mut note = |on: bool, key: &'static str| {
            if on {
                set.push(key);
            }
        };
        note(
            *self.oauth_upstream != *defaults.oauth_upstream,
            "oauth-upstream",
        );
        note(
            self.oauth_upstream_issuer.is_some(),
            "oauth-upstream-issuer",
        );
        note(
            self.oauth_upstream_github_url.is_some(),
            "oauth-upstream-github-url",
        );
        note(
            self.oauth_upstream_client_id.is_some(),
            "oauth-upstream-client-id",
        );
        note(
            self.oauth_upstream_client_secret_env.is_some(),
            "oauth-upstream-client-secret-env",
        );
        note(
            !self.oauth_upstream_scope.is_empty(),
            "oauth-upstream-scope",
        );
        note(!self.oauth_allow_subject.is_empty(), "oauth-allow-subject");
        note(
            !self.oauth_allow_email_domain.is_empty(),
            "oauth-allow-email-domain",
        );
        note(!self.oauth_allow_group.is_empty(), "oauth-allow-group");
        note(self.oauth_groups_claim.is_some(), "oauth-groups-claim");
        note(
            !self.oauth_allow_github_org.is_empty(),
            "oauth-allow-github-org",
        );
        note(self.oauth_allow_any_user, "oauth-allow-any-user");
        note(
            !self.oauth_redirect_allow.is_empty(),
            "oauth-redirect-allow",
        );
        note(*self.oauth_dcr != *defaults.oauth_dcr, "oauth-dcr");
        note(self.oauth_dcr_token_env.is_some(), "oauth-dcr-token-env");
        note(*self.oauth_cimd != *defaults.oauth_cimd, "oauth-cimd");
        note(self.oauth_cimd_allow_loopback, "oauth-cimd-allow-loopback");
        note(self.oauth_cimd_ca_file.is_some(), "oauth-cimd-ca-file");
        note(
            self.oauth_signing_key_file.is_some(),
            "oauth-signing-key-file",
        );
        note(
            !self.oauth_signing_key_previous_file.is_empty(),
            "oauth-signing-key-previous-file",
        );
        note(*self.oauth_store != *defaults.oauth_store, "oauth-store");
        note(
            self.oauth_token_ttl.get() != defaults.oauth_token_ttl.get(),
            "oauth-token-ttl",
        );
        note(
            self.oauth_dcr_unused_ttl.get() != defaults.oauth_dcr_unused_ttl.get(),
            "oauth-dcr-unused-ttl",
        );
        note(
            self.oauth_dcr_idle_ttl.get() != defaults.oauth_dcr_idle_ttl.get(),
            "oauth-dcr-idle-ttl",
        );
        note(
            self.oauth_dcr_rate_limit.get() != defaults.oauth_dcr_rate_limit.get(),
            "oauth-dcr-rate-limit",
        );
        note(!self.oauth_scope.is_empty(), "oauth-scope");
        note(!self.oauth_client.is_empty(), "oauth-client");
        note(
            self.oauth_secrets_key_env.is_some(),
            "oauth-secrets-key-env",
        );
        set
    }

    /// What `check-config` and the start warn about (not errors).
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.enabled() && self.oauth_cimd_allow_loopback {
            out.push(
                "`oauth-cimd-allow-loopback` is for tests only: it lets any client make this \
                 server fetch URLs on its own loopback interface"
                    .to_owned(),
            );
        }
        if self.enabled() && self.oauth_signing_key_file.is_none() {
            out.push(
                "no `oauth-signing-key-file`: the signing key is generated for this run, and \
                 every token it signed stops working at a restart"
                    .to_owned(),
            );
        }
        out
    }
}

#[cfg(test)]
mod tests;
