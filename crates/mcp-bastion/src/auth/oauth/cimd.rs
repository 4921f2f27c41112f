//! Client ID Metadata Documents: a `client_id` that is an `https` URL names
//! a JSON document describing the client, fetched here with every guard a
//! server-side fetch of a client-chosen URL needs.
//!
//! | guard | how |
//! |---|---|
//! | no internal targets | every resolved address (and an IP-literal host) is checked; loopback, private, link-local (cloud metadata), shared, multicast, reserved and NAT64 ranges are refused; loopback only with `allow_loopback` (tests) |
//! | no redirects | none is followed (a redirect is an error) |
//! | bounded | 5 s for the whole fetch, 16 KiB of body |
//! | the document is the client's | its `client_id` must equal the URL; `redirect_uris` required |
//! | cached | 5 minutes per URL, successes only |

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use futures_util::StreamExt as _;
use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use serde::Deserialize;

use super::clients::{Client, ClientKind};

/// Largest document accepted.
const MAX_BYTES: usize = 16 * 1024;
/// Time for the whole fetch.
const TIMEOUT: Duration = Duration::from_secs(5);
/// How long a fetched document is reused.
const CACHE_TTL: Duration = Duration::from_secs(300);

/// Why a metadata document could not be used (shown on the error page).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CimdError {
    /// The URL is not an acceptable client id URL.
    BadUrl,
    /// The host resolves only to refused addresses.
    ForbiddenAddress,
    /// Unreachable, redirected, too slow, too large, not 200.
    Fetch,
    /// Not JSON, `client_id` differs from the URL, no `redirect_uris`.
    BadDocument,
}

impl CimdError {
    pub(crate) fn detail(self) -> &'static str {
        match self {
            Self::BadUrl => "The client_id is not an acceptable client metadata URL.",
            Self::ForbiddenAddress => {
                "The client metadata URL points at an address this server does not fetch."
            }
            Self::Fetch => "The client metadata document could not be fetched.",
            Self::BadDocument => {
                "The client metadata document is invalid (its client_id must equal its URL)."
            }
        }
    }
}

/// Fetches and caches metadata documents.
#[derive(Clone)]
pub(crate) struct CimdFetcher {
    http: reqwest::Client,
    allow_loopback: bool,
    cache: moka::future::Cache<String, Arc<Client>>,
}

impl CimdFetcher {
    /// A fetcher; `roots` are extra trusted certificates (PEM), for tests.
    pub(crate) fn new(allow_loopback: bool, roots: &[Vec<u8>]) -> Result<Self, reqwest::Error> {
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(TIMEOUT)
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver { allow_loopback }));
        for pem in roots {
            builder = builder.add_root_certificate(reqwest::Certificate::from_pem(pem)?);
        }
        let http = builder.build()?;
        Ok(Self {
            http,
            allow_loopback,
            cache: moka::future::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(CACHE_TTL)
                .build(),
        })
    }

    /// Whether a client id is meant as a metadata document URL.
    pub(crate) fn is_document_url(client_id: &str) -> bool {
        client_id.starts_with("https://") || client_id.starts_with("http://")
    }

    /// The client a metadata document URL describes.
    pub(crate) async fn client(&self, client_id: &str) -> Result<Arc<Client>, CimdError> {
        if let Some(hit) = self.cache.get(client_id).await {
            return Ok(hit);
        }
        let client = Arc::new(self.fetch(client_id).await?);
        self.cache
            .insert(client_id.to_owned(), client.clone())
            .await;
        Ok(client)
    }

    async fn fetch(&self, client_id: &str) -> Result<Client, CimdError> {
        let url = self.check_url(client_id)?;
        let res = self
            .http
            .get(url)
            .header(http::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| {
                if is_forbidden(&e) {
                    CimdError::ForbiddenAddress
                } else {
                    CimdError::Fetch
                }
            })?;
        if res.status() != reqwest::StatusCode::OK {
            return Err(CimdError::Fetch);
        }
        if res.content_length().is_some_and(|l| l > MAX_BYTES as u64) {
            return Err(CimdError::Fetch);
        }
        let mut body = Vec::new();
        let mut stream = res.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|_| CimdError::Fetch)?;
            if body.len() + chunk.len() > MAX_BYTES {
                return Err(CimdError::Fetch);
            }
            body.extend_from_slice(&chunk);
        }
        parse_document(client_id, &body)
    }

    fn check_url(&self, client_id: &str) -> Result<url::Url, CimdError> {
        let url = url::Url::parse(client_id).map_err(|_| CimdError::BadUrl)?;
        // the id is compared as a string: it must already be in normal form
        if url.as_str() != client_id
            || !url.username().is_empty()
            || url.password().is_some()
            || url.fragment().is_some()
            || url.path() == "/"
            || url.path().split('/').any(|s| s == "." || s == "..")
        {
            return Err(CimdError::BadUrl);
        }
        let loopback_host = match url.host() {
            Some(url::Host::Ipv4(ip)) => {
                check_ip(IpAddr::V4(ip), self.allow_loopback)?;
                ip.is_loopback()
            }
            Some(url::Host::Ipv6(ip)) => {
                check_ip(IpAddr::V6(ip), self.allow_loopback)?;
                ip.is_loopback()
            }
            Some(url::Host::Domain(d)) => d == "localhost",
            None => return Err(CimdError::BadUrl),
        };
        match url.scheme() {
            "https" => Ok(url),
            // plain http only to loopback, and only when loopback is allowed (tests)
            "http" if self.allow_loopback && loopback_host => Ok(url),
            _ => Err(CimdError::BadUrl),
        }
    }
}

#[derive(Deserialize)]
struct Document {
    client_id: String,
    #[serde(default)]
    client_name: Option<String>,
    redirect_uris: Vec<String>,
    #[serde(default)]
    token_endpoint_auth_method: Option<String>,
}

fn parse_document(client_id: &str, body: &[u8]) -> Result<Client, CimdError> {
    let doc: Document = serde_json::from_slice(body).map_err(|_| CimdError::BadDocument)?;
    if doc.client_id != client_id || doc.redirect_uris.is_empty() {
        return Err(CimdError::BadDocument);
    }
    // a document cannot carry a secret: public clients only
    if doc
        .token_endpoint_auth_method
        .as_deref()
        .is_some_and(|m| m != "none")
    {
        return Err(CimdError::BadDocument);
    }
    if doc
        .redirect_uris
        .iter()
        .any(|u| url::Url::parse(u).is_err())
    {
        return Err(CimdError::BadDocument);
    }
    Ok(Client {
        id: doc.client_id,
        name: doc.client_name,
        redirect_uris: doc.redirect_uris,
        secret_sha256: None,
        kind: ClientKind::MetadataDocument,
    })
}

/// The marker error of a resolution that found only refused addresses.
#[derive(Debug)]
struct Forbidden;

impl std::fmt::Display for Forbidden {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("every address of the host is refused")
    }
}

impl std::error::Error for Forbidden {}

fn is_forbidden(e: &reqwest::Error) -> bool {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if s.is::<Forbidden>() {
            return true;
        }
        source = s.source();
    }
    false
}

/// Resolves names and keeps only addresses a fetch may reach.
struct GuardedResolver {
    allow_loopback: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_loopback = self.allow_loopback;
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0))
                .await?
                .filter(|a| check_ip(a.ip(), allow_loopback).is_ok())
                .collect();
            if addrs.is_empty() {
                return Err(Box::new(Forbidden) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// Ranges a fetch never reaches (beyond what `std` classifies).
const REFUSED: &[&str] = &[
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "::/128",
    "64:ff9b::/96",
    "64:ff9b:1::/48",
    "100::/64",
    "2001:db8::/32",
    "fc00::/7",
    "fe80::/10",
    "ff00::/8",
];

/// `Ok` when a fetch may reach `ip`.
pub(crate) fn check_ip(ip: IpAddr, allow_loopback: bool) -> Result<(), CimdError> {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    if ip.is_loopback() {
        return if allow_loopback {
            Ok(())
        } else {
            Err(CimdError::ForbiddenAddress)
        };
    }
    let refused = REFUSED
        .iter()
        .filter_map(|n| n.parse::<IpNet>().ok())
        .any(|net| net.contains(&ip));
    if refused || ip.is_unspecified() || ip.is_multicast() {
        Err(CimdError::ForbiddenAddress)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_refused() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.20.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.100.100.200",
            "0.0.0.0",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "fd00:ec2::254",
            "fe80::1",
            "64:ff9b::a9fe:a9fe",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(
                check_ip(ip, false),
                Err(CimdError::ForbiddenAddress),
                "{ip}"
            );
        }
        assert!(check_ip("127.0.0.1".parse().unwrap(), true).is_ok());
        assert!(check_ip("10.1.2.3".parse().unwrap(), true).is_err());
        assert!(check_ip("93.184.215.14".parse().unwrap(), false).is_ok());
        assert!(check_ip("2606:4700::1111".parse().unwrap(), false).is_ok());
    }

    #[test]
    fn client_id_urls_must_be_https_and_normal() {
        let f = CimdFetcher::new(false, &[]).unwrap();
        assert!(f.check_url("https://app.example/client.json").is_ok());
        for bad in [
            "http://app.example/client.json",
            "https://app.example/",
            "https://user@app.example/c.json",
            "https://app.example/a/../c.json",
            "https://app.example/c.json#x",
            "https://127.0.0.1/c.json",
            "https://169.254.169.254/latest/meta-data",
            "https://[::1]/c.json",
            "https://APP.example/c.json",
        ] {
            assert!(f.check_url(bad).is_err(), "{bad}");
        }
        let tests = CimdFetcher::new(true, &[]).unwrap();
        assert!(tests.check_url("http://127.0.0.1:8080/c.json").is_ok());
        assert!(tests.check_url("http://app.example/c.json").is_err());
    }

    #[test]
    fn the_document_must_name_its_own_url() {
        let id = "https://app.example/c.json";
        let ok = br#"{"client_id":"https://app.example/c.json","redirect_uris":["http://127.0.0.1/cb"],"client_name":"App"}"#;
        assert_eq!(parse_document(id, ok).unwrap().name.as_deref(), Some("App"));
        let other = br#"{"client_id":"https://evil.example/c.json","redirect_uris":["http://127.0.0.1/cb"]}"#;
        assert_eq!(
            parse_document(id, other).err(),
            Some(CimdError::BadDocument)
        );
        let none = br#"{"client_id":"https://app.example/c.json","redirect_uris":[]}"#;
        assert_eq!(parse_document(id, none).err(), Some(CimdError::BadDocument));
        let secret = br#"{"client_id":"https://app.example/c.json","redirect_uris":["http://127.0.0.1/cb"],"token_endpoint_auth_method":"client_secret_basic"}"#;
        assert_eq!(
            parse_document(id, secret).err(),
            Some(CimdError::BadDocument)
        );
    }
}
