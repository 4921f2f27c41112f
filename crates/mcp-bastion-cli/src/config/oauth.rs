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

use std::{fmt, path::PathBuf, time::Duration};

use serde::{
    Deserialize, Deserializer, Serialize, Serializer,
    de::{self, MapAccess, SeqAccess, Visitor},
};

use super::{
    Config, ConfigError,
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

from_text_by_value_enum!(DcrMode, OnOff);

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

/// A static client: its id, redirect URIs, a name for the consent page, and
/// (confidential clients) the SHA-256 of its secret.
#[derive(Clone, PartialEq, Eq)]
pub struct OAuthClient {
    /// The `client_id`.
    pub id: String,
    /// A name shown on the consent page.
    pub name: Option<String>,
    /// Its redirect URIs.
    pub redirect_uris: Vec<String>,
    /// The SHA-256 of its secret (a confidential client); file only.
    pub secret_sha256: Option<[u8; 32]>,
}

impl fmt::Debug for OAuthClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthClient")
            .field("id", &self.id)
            .field("redirect_uris", &self.redirect_uris)
            .field("confidential", &self.secret_sha256.is_some())
            .finish()
    }
}

impl FromText for OAuthClient {
    fn from_text(text: &str) -> Result<Self, String> {
        let (id, uri) = text
            .split_once('=')
            .map(|(i, u)| (i.trim(), u.trim()))
            .filter(|(i, u)| !i.is_empty() && !u.is_empty())
            .ok_or(
                "expected ID=REDIRECT_URI, e.g. `inspector=http://localhost:6274/oauth/callback`",
            )?;
        Ok(Self {
            id: id.to_owned(),
            name: None,
            redirect_uris: vec![uri.to_owned()],
            secret_sha256: None,
        })
    }
}

/// 64 hex digits as 32 bytes.
fn sha256_hex(text: &str) -> Option<[u8; 32]> {
    let text = text.trim();
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// `--oauth-client`: the static clients, `ID=REDIRECT_URI` texts or (in the
/// file) tables. Several entries with one id are one client with all their
/// redirect URIs ([`clients`](Self::clients)).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OAuthClients(Vec<Parsed<OAuthClient>>);

impl OAuthClients {
    /// Whether none is configured.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The clients, entries with the same id merged (in first-seen order).
    ///
    /// # Errors
    ///
    /// Two entries of one id that give different secrets or names.
    pub fn clients(&self) -> Result<Vec<OAuthClient>, String> {
        let mut out: Vec<OAuthClient> = Vec::new();
        for entry in self.0.iter().map(Parsed::get) {
            let Some(seen) = out.iter_mut().find(|c| c.id == entry.id) else {
                out.push(entry.clone());
                continue;
            };
            for (mine, theirs) in [
                (
                    seen.secret_sha256.map(|s| s.to_vec()),
                    entry.secret_sha256.map(|s| s.to_vec()),
                ),
                (
                    seen.name.as_ref().map(|n| n.as_bytes().to_vec()),
                    entry.name.as_ref().map(|n| n.as_bytes().to_vec()),
                ),
            ] {
                if mine.is_some() && theirs.is_some() && mine != theirs {
                    return Err(format!(
                        "client `{}` is given twice with a different name or secret",
                        entry.id
                    ));
                }
            }
            seen.secret_sha256 = seen.secret_sha256.or(entry.secret_sha256);
            if seen.name.is_none() {
                seen.name.clone_from(&entry.name);
            }
            for uri in &entry.redirect_uris {
                if !seen.redirect_uris.contains(uri) {
                    seen.redirect_uris.push(uri.clone());
                }
            }
        }
        Ok(out)
    }
}

impl Serialize for OAuthClients {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter())
    }
}

/// One `[[oauth-client]]` table (keys with `-` or `_`).
fn client_table<'de, A: MapAccess<'de>>(mut map: A) -> Result<Parsed<OAuthClient>, A::Error> {
    let mut client = OAuthClient {
        id: String::new(),
        name: None,
        redirect_uris: Vec::new(),
        secret_sha256: None,
    };
    while let Some(key) = map.next_key::<String>()? {
        match key.replace('_', "-").as_str() {
            "id" => client.id = map.next_value::<Parsed<String>>()?.get().clone(),
            "name" => client.name = Some(map.next_value::<Parsed<String>>()?.get().clone()),
            "redirect-uris" | "redirect-uri" => {
                client.redirect_uris = map.next_value::<List<String>>()?.to_vec();
            }
            "secret-sha256" => {
                let hex = map.next_value::<Parsed<String>>()?;
                client.secret_sha256 = Some(sha256_hex(hex.get()).ok_or_else(|| {
                    de::Error::custom(
                        "`secret-sha256` must be 64 hex digits (the SHA-256 of the secret)",
                    )
                })?);
            }
            "secret" => {
                return Err(de::Error::custom(
                    "a client secret is never written in the configuration: give its SHA-256 as `secret-sha256` (e.g. `printf %s SECRET | sha256sum`)",
                ));
            }
            other => {
                return Err(de::Error::custom(format!(
                    "unknown key `{other}` in a client table; expected id, name, redirect-uris, secret-sha256"
                )));
            }
        }
    }
    if client.id.is_empty() || client.redirect_uris.is_empty() {
        return Err(de::Error::custom(
            "a client table needs `id` and `redirect-uris`",
        ));
    }
    let mut text = format!("{}={}", client.id, client.redirect_uris.join(","));
    if client.secret_sha256.is_some() {
        text.push_str(" (confidential)");
    }
    Ok(Parsed::known(text, client))
}

struct ClientsVisitor;

impl<'de> Visitor<'de> for ClientsVisitor {
    type Value = OAuthClients;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ID=REDIRECT_URI, a client table, or an array of them")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<OAuthClients, E> {
        Parsed::parse(v)
            .map(|p| OAuthClients(vec![p]))
            .map_err(E::custom)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<OAuthClients, A::Error> {
        client_table(map).map(|c| OAuthClients(vec![c]))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<OAuthClients, A::Error> {
        let mut out = Vec::new();
        while let Some(OAuthClients(mut one)) = seq.next_element::<OAuthClients>()? {
            out.append(&mut one);
        }
        Ok(OAuthClients(out))
    }
}

impl<'de> Deserialize<'de> for OAuthClients {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ClientsVisitor)
    }
}

/// mcp-bastion's own OAuth authorization server (`oauth-*`); off unless
/// `oauth-issuer` is set.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", default)]
pub struct OAuthConfig {
    /// The issuer: the public base URL of this server (turns OAuth on).
    pub oauth_issuer: Option<Parsed<String>>,
    /// The operator's OIDC provider users log in with.
    pub oauth_upstream_issuer: Option<Parsed<String>>,
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
    /// Access-token lifetime.
    pub oauth_token_ttl: Parsed<Lifetime>,
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
            oauth_upstream_issuer: None,
            oauth_upstream_client_id: None,
            oauth_upstream_client_secret_env: None,
            oauth_upstream_scope: List::default(),
            oauth_allow_subject: List::default(),
            oauth_allow_email_domain: List::default(),
            oauth_allow_any_user: false,
            oauth_redirect_allow: List::default(),
            oauth_dcr: Parsed::known("off", DcrMode::Off),
            oauth_dcr_token_env: None,
            oauth_cimd: Parsed::known("on", OnOff::On),
            oauth_cimd_allow_loopback: false,
            oauth_cimd_ca_file: None,
            oauth_signing_key_file: None,
            oauth_token_ttl: Parsed::known("1h", Lifetime(Duration::from_secs(3600))),
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
            self.oauth_upstream_issuer.is_some(),
            "oauth-upstream-issuer",
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
            self.oauth_token_ttl.get() != defaults.oauth_token_ttl.get(),
            "oauth-token-ttl",
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

/// The authentication options that name another authorization server's
/// tokens, which `oauth-issuer` excludes.
const OTHER_TOKEN_SOURCES: [&str; 7] = [
    "jwt-secret-env",
    "jwt-public-key-file",
    "jwt-jwks-url",
    "jwt-oidc-issuer",
    "auth-server-url",
    "introspection-url",
    "authorization-server",
];

/// `(scheme, host, path)` of an absolute http(s) URL without query or
/// fragment, or why not.
fn http_url(text: &str) -> Result<(String, String, String), &'static str> {
    let (scheme, rest) = text
        .split_once("://")
        .filter(|(s, _)| matches!(s.to_ascii_lowercase().as_str(), "http" | "https"))
        .ok_or("must be an absolute http(s) URL")?;
    if rest.contains(['?', '#']) {
        return Err("must not have a query or fragment");
    }
    let (authority, path) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
    if authority.is_empty() || authority.contains('@') {
        return Err("must name a host (and no user information)");
    }
    let host = if authority.starts_with('[') {
        authority
            .split_inclusive(']')
            .next()
            .unwrap_or(authority)
            .trim_matches(['[', ']'])
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    Ok((
        scheme.to_ascii_lowercase(),
        host.to_ascii_lowercase(),
        path.trim_end_matches('/').to_owned(),
    ))
}

fn is_loopback_host(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The rules across the `oauth-*` options and the others. `err(key,
/// message)` makes an error naming where `key` was set.
pub(super) fn check(
    config: &Config,
    err: &dyn Fn(&str, &str) -> ConfigError,
) -> Result<(), ConfigError> {
    let oauth = &config.oauth;
    let Some(issuer) = &oauth.oauth_issuer else {
        if let Some(key) = oauth.set_keys().first() {
            return Err(err(
                key,
                "needs `oauth-issuer` (which turns the authorization server on)",
            ));
        }
        return Ok(());
    };
    let (scheme, host, path) = http_url(issuer.text()).map_err(|m| err("oauth-issuer", m))?;
    if scheme != "https" && !is_loopback_host(&host) {
        return Err(err(
            "oauth-issuer",
            "must be an https URL (plain http only on a loopback host, for tests): tokens and \
             codes travel through it",
        ));
    }
    let prefix = config.general.prefix();
    if path != prefix {
        return Err(err(
            "oauth-issuer",
            &format!(
                "its path (`{path}`) must be the `path-prefix` (`{prefix}`): the issuer is the \
                 public base URL the MCP endpoints are served under"
            ),
        ));
    }
    match (
        &oauth.oauth_upstream_issuer,
        &oauth.oauth_upstream_client_id,
    ) {
        (None, _) => {
            return Err(err(
                "oauth-issuer",
                "needs `oauth-upstream-issuer`: the identity provider users log in with",
            ));
        }
        (Some(_), None) => {
            return Err(err(
                "oauth-upstream-issuer",
                "needs `oauth-upstream-client-id`: mcp-bastion's client id at the provider",
            ));
        }
        (Some(upstream), Some(_)) => {
            http_url(upstream.text()).map_err(|m| err("oauth-upstream-issuer", m))?;
        }
    }
    if oauth.oauth_allow_subject.is_empty()
        && oauth.oauth_allow_email_domain.is_empty()
        && !oauth.oauth_allow_any_user
    {
        return Err(err(
            "oauth-issuer",
            "nobody may log in: add `oauth-allow-subject`, `oauth-allow-email-domain` or \
             `oauth-allow-any-user`",
        ));
    }
    match (*oauth.oauth_dcr.get(), &oauth.oauth_dcr_token_env) {
        (DcrMode::Token, None) => {
            return Err(err(
                "oauth-dcr",
                "`token` needs `oauth-dcr-token-env`: the variable holding the initial access token",
            ));
        }
        (DcrMode::Open | DcrMode::Off, Some(_)) => {
            return Err(err(
                "oauth-dcr-token-env",
                "is only used with `oauth-dcr = \"token\"`",
            ));
        }
        _ => {}
    }
    if *oauth.oauth_cimd.get() == OnOff::Off
        && (oauth.oauth_cimd_allow_loopback || oauth.oauth_cimd_ca_file.is_some())
    {
        let key = if oauth.oauth_cimd_allow_loopback {
            "oauth-cimd-allow-loopback"
        } else {
            "oauth-cimd-ca-file"
        };
        return Err(err(key, "has no effect with `oauth-cimd = \"off\"`"));
    }
    for uri in oauth.oauth_redirect_allow.iter() {
        http_url(uri).map_err(|m| err("oauth-redirect-allow", &format!("`{uri}` {m}")))?;
    }
    for scope in oauth.oauth_scope.iter() {
        if scope.is_empty()
            || !scope
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
        {
            return Err(err(
                "oauth-scope",
                &format!("`{scope}` is not a scope token (printable ASCII, no spaces or quotes)"),
            ));
        }
    }
    let clients = oauth
        .oauth_client
        .clients()
        .map_err(|m| err("oauth-client", &m))?;
    for client in &clients {
        for uri in &client.redirect_uris {
            if !uri.contains("://") {
                return Err(err(
                    "oauth-client",
                    &format!("client `{}`: `{uri}` is not an absolute URL", client.id),
                ));
            }
        }
    }
    let auth = &config.auth;
    let others = [
        auth.jwt_secret_env.is_some(),
        auth.jwt_public_key_file.is_some(),
        auth.jwt_jwks_url.is_some(),
        auth.jwt_oidc_issuer.is_some(),
        auth.auth_server_url.is_some(),
        auth.introspection_url.is_some(),
        !auth.authorization_server.is_empty(),
    ];
    if let Some((key, _)) = OTHER_TOKEN_SOURCES.iter().zip(others).find(|(_, set)| *set) {
        return Err(err(
            key,
            "cannot be used with `oauth-issuer`: with it mcp-bastion is the authorization server \
             of its endpoints and accepts its own tokens (and API keys), not another server's",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn issuer_urls_are_split_and_checked() {
        assert_eq!(
            http_url("https://mcp.example.com/k/abc/").unwrap(),
            ("https".into(), "mcp.example.com".into(), "/k/abc".into())
        );
        assert_eq!(http_url("http://[::1]:8080").unwrap().1, "::1".to_owned());
        assert!(http_url("mcp.example.com").is_err());
        assert!(http_url("https://mcp.example.com/?x=1").is_err());
        assert!(http_url("https://user@mcp.example.com").is_err());
        assert!(is_loopback_host("127.0.0.1") && is_loopback_host("::1"));
        assert!(!is_loopback_host("10.0.0.1"));
    }

    #[test]
    fn a_client_is_id_equals_uri_and_entries_of_one_id_merge() {
        let a = Parsed::<OAuthClient>::parse("app=https://app.example/cb").unwrap();
        let b = Parsed::<OAuthClient>::parse("app=https://app.example/cb2").unwrap();
        let clients = OAuthClients(vec![a, b]).clients().unwrap();
        assert_eq!(clients.len(), 1);
        assert_eq!(
            clients[0].redirect_uris,
            ["https://app.example/cb", "https://app.example/cb2"]
        );
        assert!(Parsed::<OAuthClient>::parse("app").is_err());
        assert!(Parsed::<OAuthClient>::parse("=https://x").is_err());
    }

    #[test]
    fn secret_digests_are_64_hex_digits() {
        let hex = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
        assert_eq!(sha256_hex(hex).unwrap()[0], 0x9f);
        assert!(sha256_hex(&hex[1..]).is_none());
        assert!(sha256_hex(&hex.replace('9', "g")).is_none());
    }

    #[test]
    fn token_lifetimes_cannot_be_off() {
        assert_eq!(
            Lifetime::from_text("15m").unwrap().0,
            Duration::from_secs(900)
        );
        assert!(Lifetime::from_text("off").is_err());
        assert!(Lifetime::from_text("0").is_err());
    }
}
