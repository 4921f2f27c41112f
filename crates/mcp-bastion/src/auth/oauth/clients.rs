//! Clients: static clients from the configuration, the policy of dynamic
//! registration, the redirect-URI allowlist, and exact redirect matching
//! (with RFC 8252 §7.3's any-port rule for loopback redirects).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq as _;

/// A client known from the configuration.
///
/// ```
/// use mcp_bastion::auth::oauth::StaticClient;
///
/// let client = StaticClient::new("inspector")
///     .redirect_uri("http://localhost:6274/oauth/callback")
///     .secret("s3cret");
/// assert!(format!("{client:?}").contains("inspector"));
/// assert!(!format!("{client:?}").contains("s3cret"));
/// ```
#[derive(Clone)]
pub struct StaticClient {
    pub(crate) id: String,
    pub(crate) name: Option<String>,
    pub(crate) redirect_uris: Vec<String>,
    pub(crate) secret_sha256: Option<[u8; 32]>,
}

impl std::fmt::Debug for StaticClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticClient")
            .field("id", &self.id)
            .field("redirect_uris", &self.redirect_uris)
            .field("confidential", &self.secret_sha256.is_some())
            .finish()
    }
}

impl StaticClient {
    /// A public client (no secret) with this id.
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            name: None,
            redirect_uris: Vec::new(),
            secret_sha256: None,
        }
    }

    /// A name shown on the consent page.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// A redirect URI; repeatable.
    pub fn redirect_uri(mut self, uri: impl Into<String>) -> Self {
        self.redirect_uris.push(uri.into());
        self
    }

    /// Makes it a confidential client with this secret (only its SHA-256 is
    /// kept).
    pub fn secret(mut self, secret: &str) -> Self {
        self.secret_sha256 = Some(Sha256::digest(secret.as_bytes()).into());
        self
    }

    /// Makes it a confidential client whose secret has this SHA-256.
    pub fn secret_sha256(mut self, digest: [u8; 32]) -> Self {
        self.secret_sha256 = Some(digest);
        self
    }
}

/// Whether and how clients may register themselves (RFC 7591).
#[derive(Clone, Default)]
#[non_exhaustive]
pub enum DcrPolicy {
    /// Anyone may register (redirect URIs still limited by the allowlist).
    Open,
    /// No registration endpoint.
    #[default]
    Off,
    /// Registration needs `Authorization: Bearer <initial access token>`;
    /// the token's SHA-256.
    InitialToken([u8; 32]),
}

impl DcrPolicy {
    /// Registration with this initial access token.
    pub fn initial_token(token: &str) -> Self {
        Self::InitialToken(Sha256::digest(token.as_bytes()).into())
    }
}

impl std::fmt::Debug for DcrPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Open => "Open",
            Self::Off => "Off",
            Self::InitialToken(_) => "InitialToken(..)",
        })
    }
}

/// Redirect URIs a registered client may use: exact URLs, plus (when
/// enabled) loopback `http` redirects on any port (RFC 8252 §7.3).
#[derive(Debug, Clone, Default)]
pub struct RedirectAllowlist {
    pub(crate) exact: Vec<String>,
    pub(crate) loopback: bool,
}

impl RedirectAllowlist {
    /// Whether a registration may name this redirect URI.
    pub fn allows(&self, uri: &str) -> bool {
        self.exact.iter().any(|e| e == uri) || (self.loopback && loopback_redirect(uri).is_some())
    }
}

/// Which kind of client this is (what the consent page and the token
/// endpoint need to know).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ClientKind {
    Static,
    MetadataDocument,
    Registered,
}

/// A client, however it became known.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct Client {
    pub id: String,
    pub name: Option<String>,
    pub redirect_uris: Vec<String>,
    /// Hex SHA-256 of the secret of a confidential client.
    pub secret_sha256: Option<String>,
    pub kind: ClientKind,
    /// A registered client: when a use was last recorded (unix seconds;
    /// `None`: never used, so it lives only the unused lifetime).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used_at: Option<u64>,
}

impl Client {
    pub(crate) fn from_static(c: &StaticClient) -> Self {
        Self {
            id: c.id.clone(),
            name: c.name.clone(),
            redirect_uris: c.redirect_uris.clone(),
            secret_sha256: c.secret_sha256.map(hex),
            kind: ClientKind::Static,
            used_at: None,
        }
    }

    /// The registered redirect URI that `requested` names: the same string,
    /// or for a loopback redirect the same but for the port. `None` without
    /// `requested` unless exactly one is registered.
    pub(crate) fn redirect_uri(&self, requested: Option<&str>) -> Option<String> {
        let Some(requested) = requested else {
            return match self.redirect_uris.as_slice() {
                [only] => Some(only.clone()),
                _ => None,
            };
        };
        let matches = |registered: &String| {
            registered == requested
                || matches!(
                    (loopback_redirect(registered), loopback_redirect(requested)),
                    (Some(a), Some(b)) if a == b
                )
        };
        self.redirect_uris
            .iter()
            .any(matches)
            .then(|| requested.to_owned())
    }

    /// Whether `secret` is this client's secret (constant time).
    pub(crate) fn secret_matches(&self, secret: &str) -> bool {
        let Some(want) = &self.secret_sha256 else {
            return false;
        };
        let got = hex(Sha256::digest(secret.as_bytes()).into());
        bool::from(got.as_bytes().ct_eq(want.as_bytes()))
    }
}

/// A loopback `http` redirect URI without its port, for comparison:
/// `(host, path and query)`; `None` for any other URI.
fn loopback_redirect(uri: &str) -> Option<(String, String)> {
    let url = url::Url::parse(uri).ok()?;
    if url.scheme() != "http" || url.fragment().is_some() || !url.username().is_empty() {
        return None;
    }
    let host = match url.host()? {
        url::Host::Ipv4(ip) if ip.is_loopback() => ip.to_string(),
        url::Host::Ipv6(ip) if ip.is_loopback() => ip.to_string(),
        url::Host::Domain("localhost") => "localhost".to_owned(),
        _ => return None,
    };
    let rest = format!("{}?{}", url.path(), url.query().unwrap_or(""));
    Some((host, rest))
}

/// Lower-case hex.
pub(crate) fn hex(bytes: [u8; 32]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The SHA-256 of a secret, in hex: how codes, refresh tokens and client
/// secrets are stored and looked up.
pub(crate) fn digest(secret: &str) -> String {
    hex(Sha256::digest(secret.as_bytes()).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(uris: &[&str]) -> Client {
        Client {
            id: "c".into(),
            name: None,
            redirect_uris: uris.iter().map(|s| (*s).to_owned()).collect(),
            secret_sha256: None,
            kind: ClientKind::Static,
            used_at: None,
        }
    }

    #[test]
    fn redirect_uri_is_matched_exactly() {
        let c = client(&["https://app.example/cb"]);
        assert!(c.redirect_uri(Some("https://app.example/cb")).is_some());
        assert!(c.redirect_uri(Some("https://app.example/cb/")).is_none());
        assert!(c.redirect_uri(Some("https://app.example/cb?x=1")).is_none());
        assert!(c.redirect_uri(Some("https://evil.example/cb")).is_none());
        assert_eq!(
            c.redirect_uri(None).as_deref(),
            Some("https://app.example/cb")
        );
    }

    #[test]
    fn loopback_redirect_matches_on_any_port_only() {
        let c = client(&["http://127.0.0.1/callback"]);
        assert!(
            c.redirect_uri(Some("http://127.0.0.1:49152/callback"))
                .is_some()
        );
        assert!(
            c.redirect_uri(Some("http://127.0.0.1:49152/other"))
                .is_none()
        );
        assert!(
            c.redirect_uri(Some("http://localhost:49152/callback"))
                .is_none()
        );
        let https = client(&["https://127.0.0.1/callback"]);
        assert!(
            https
                .redirect_uri(Some("https://127.0.0.1:8443/callback"))
                .is_none()
        );
    }

    #[test]
    fn allowlist_takes_exact_urls_and_loopback_when_enabled() {
        let list = RedirectAllowlist {
            exact: vec!["https://claude.ai/api/mcp/auth_callback".into()],
            loopback: true,
        };
        assert!(list.allows("https://claude.ai/api/mcp/auth_callback"));
        assert!(list.allows("http://localhost:3000/cb"));
        assert!(list.allows("http://[::1]:3000/cb"));
        assert!(!list.allows("https://claude.ai/api/mcp/auth_callback/x"));
        assert!(!list.allows("http://10.0.0.1:3000/cb"));
        let strict = RedirectAllowlist {
            loopback: false,
            ..list
        };
        assert!(!strict.allows("http://localhost:3000/cb"));
    }
}
