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
//! | cached | successes only, as long as the document's HTTP caching headers say (`Cache-Control: max-age`, else `Expires`, else 5 minutes), bounded to 1 min .. 24 h; never with `no-store`, `no-cache` or an already stale answer; at most 10,000 documents |

use std::{
    net::IpAddr,
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use futures_util::StreamExt as _;
use serde::Deserialize;

use self::{
    address::{GuardedResolver, check_ip, is_forbidden},
    freshness::freshness,
};
use super::clients::{Client, ClientKind};

mod address;
mod freshness;
#[cfg(test)]
mod tests;

/// Largest document accepted.
const MAX_BYTES: usize = 16 * 1024;
/// Time for the whole fetch.
const TIMEOUT: Duration = Duration::from_secs(5);
/// Documents kept at most.
const MAX_ENTRIES: u64 = 10_000;

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
    cache: moka::future::Cache<String, Cached>,
}

/// A document in the cache, with how long it stays fresh.
#[derive(Clone)]
struct Cached {
    client: Arc<Client>,
    fresh_for: Duration,
}

/// Each entry expires when its own answer said.
struct ByFreshness;

impl moka::Expiry<String, Cached> for ByFreshness {
    fn expire_after_create(&self, _: &String, value: &Cached, _: Instant) -> Option<Duration> {
        Some(value.fresh_for)
    }
}

impl CimdFetcher {
    /// A fetcher; `roots` are extra trusted certificates (PEM), for tests.
    pub(crate) fn new(allow_loopback: bool, roots: &[Vec<u8>]) -> Result<Self, reqwest::Error> {
        Self::with_limits(allow_loopback, roots, MAX_ENTRIES, TIMEOUT)
    }

    fn with_limits(
        allow_loopback: bool,
        roots: &[Vec<u8>],
        max_entries: u64,
        timeout: Duration,
    ) -> Result<Self, reqwest::Error> {
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
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
                .max_capacity(max_entries)
                .expire_after(ByFreshness)
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
            return Ok(hit.client);
        }
        let (client, fresh_for) = self.fetch(client_id).await?;
        let client = Arc::new(client);
        if let Some(fresh_for) = fresh_for {
            let cached = Cached {
                client: client.clone(),
                fresh_for,
            };
            self.cache.insert(client_id.to_owned(), cached).await;
        }
        Ok(client)
    }

    /// The client a document describes, and how long it may be reused.
    async fn fetch(&self, client_id: &str) -> Result<(Client, Option<Duration>), CimdError> {
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
        let fresh_for = freshness(res.headers(), SystemTime::now());
        let mut body = Vec::new();
        let mut stream = res.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|_| CimdError::Fetch)?;
            if body.len() + chunk.len() > MAX_BYTES {
                return Err(CimdError::Fetch);
            }
            body.extend_from_slice(&chunk);
        }
        Ok((parse_document(client_id, &body)?, fresh_for))
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
        used_at: None,
    })
}
