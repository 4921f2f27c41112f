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
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::{Duration, Instant, SystemTime},
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
/// How long a fetched document is reused when its answer says nothing.
const DEFAULT_FRESH: Duration = Duration::from_secs(300);
/// The shortest reuse of a cacheable document: a `max-age` of a few seconds
/// would make every authorization and token request a fetch.
const MIN_FRESH: Duration = Duration::from_secs(60);
/// The longest reuse, whatever the document says: a client's changed
/// redirect URIs are seen within a day.
const MAX_FRESH: Duration = Duration::from_secs(24 * 3600);
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
        Self::with_capacity(allow_loopback, roots, MAX_ENTRIES)
    }

    fn with_capacity(
        allow_loopback: bool,
        roots: &[Vec<u8>],
        max_entries: u64,
    ) -> Result<Self, reqwest::Error> {
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

/// How long an answer may be reused, from its caching headers (RFC 9111),
/// bounded to [`MIN_FRESH`] .. [`MAX_FRESH`]; `None`: not at all.
///
/// `no-store` and `no-cache` are not cached (this cache never revalidates);
/// `max-age` wins over `Expires` (measured from `Date` when the answer has
/// one); a `max-age` of 0, a repeated or malformed `max-age`, an invalid
/// `Expires` or one already past make the answer stale: not cached.
fn freshness(headers: &http::HeaderMap, now: SystemTime) -> Option<Duration> {
    let mut max_age = None;
    let mut max_ages = 0;
    for value in headers.get_all(http::header::CACHE_CONTROL) {
        let value = value.to_str().ok()?;
        for directive in value.split(',').map(str::trim) {
            let (name, arg) = directive
                .split_once('=')
                .map_or((directive, None), |(n, a)| (n.trim(), Some(a.trim())));
            if name.eq_ignore_ascii_case("no-store") || name.eq_ignore_ascii_case("no-cache") {
                return None;
            }
            if name.eq_ignore_ascii_case("max-age") {
                max_ages += 1;
                max_age = arg.and_then(|a| a.trim_matches('"').parse::<u64>().ok());
            }
        }
    }
    let fresh = if max_ages > 0 {
        if max_ages > 1 {
            return None;
        }
        Duration::from_secs(max_age?)
    } else if let Some(expires) = headers.get(http::header::EXPIRES) {
        let expires = httpdate::parse_http_date(expires.to_str().ok()?).ok()?;
        let date = headers
            .get(http::header::DATE)
            .and_then(|d| httpdate::parse_http_date(d.to_str().ok()?).ok())
            .unwrap_or(now);
        expires.duration_since(date).ok()?
    } else {
        DEFAULT_FRESH
    };
    (!fresh.is_zero()).then(|| fresh.clamp(MIN_FRESH, MAX_FRESH))
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
    #![allow(clippy::unwrap_used)]

    use std::{
        collections::HashMap,
        sync::{
            Mutex,
            atomic::{AtomicUsize, Ordering},
        },
    };

    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        for (name, value) in pairs {
            h.append(*name, value.parse().unwrap());
        }
        h
    }

    #[test]
    fn freshness_follows_the_caching_headers_within_bounds() {
        let now = SystemTime::now();
        let at = |d: Duration| httpdate::fmt_http_date(now + d);
        let hour = Duration::from_secs(3600);
        let cases: Vec<(Vec<(&'static str, String)>, Option<Duration>)> = vec![
            (vec![], Some(DEFAULT_FRESH)),
            (
                vec![("cache-control", "max-age=600".into())],
                Some(Duration::from_secs(600)),
            ),
            (
                vec![("cache-control", "public, max-age=\"600\"".into())],
                Some(Duration::from_secs(600)),
            ),
            (vec![("cache-control", "max-age=5".into())], Some(MIN_FRESH)),
            (
                vec![("cache-control", "max-age=999999999".into())],
                Some(MAX_FRESH),
            ),
            (vec![("cache-control", "max-age=0".into())], None),
            (vec![("cache-control", "no-store".into())], None),
            (
                vec![("cache-control", "max-age=600, No-Cache".into())],
                None,
            ),
            (
                vec![
                    ("cache-control", "max-age=600".into()),
                    ("cache-control", "no-store".into()),
                ],
                None,
            ),
            (
                vec![("cache-control", "max-age=60, max-age=600".into())],
                None,
            ),
            (vec![("cache-control", "max-age=ten".into())], None),
            // max-age wins over Expires
            (
                vec![
                    ("cache-control", "max-age=600".into()),
                    ("expires", at(2 * hour)),
                ],
                Some(Duration::from_secs(600)),
            ),
            (
                vec![
                    ("expires", at(2 * hour)),
                    ("date", httpdate::fmt_http_date(now)),
                ],
                Some(2 * hour),
            ),
            // measured from the answer's own Date
            (
                vec![("expires", at(2 * hour)), ("date", at(hour))],
                Some(hour),
            ),
            (
                vec![("expires", at(Duration::ZERO)), ("date", at(hour))],
                None,
            ),
            (vec![("expires", "0".into())], None),
            (vec![("expires", httpdate::fmt_http_date(now - hour))], None),
        ];
        for (pairs, want) in cases {
            let pairs: Vec<(&'static str, &str)> =
                pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let got = freshness(&headers(&pairs), now);
            // Expires has whole seconds
            let close = match (got, want) {
                (Some(g), Some(w)) => g.abs_diff(w) <= Duration::from_secs(1),
                (g, w) => g == w,
            };
            assert!(close, "{pairs:?}: {got:?}, want {want:?}");
        }
    }

    /// Documents served here; each path's body names the client, with the
    /// headers the test sets, and a count of fetches.
    #[derive(Clone, Default)]
    struct Served {
        docs: Arc<Mutex<HashMap<String, (String, Vec<(&'static str, String)>)>>>,
        fetches: Arc<AtomicUsize>,
    }

    async fn serve(served: Served) -> String {
        use axum::{extract::State, http::Uri, response::IntoResponse};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let id_base = base.clone();
        let app = axum::Router::new()
            .fallback(move |State(s): State<Served>, uri: Uri| {
                let id = format!("{id_base}{}", uri.path());
                async move {
                    s.fetches.fetch_add(1, Ordering::SeqCst);
                    let (name, headers) = s.docs.lock().unwrap()[uri.path()].clone();
                    let body = serde_json::json!({
                        "client_id": id, "client_name": name,
                        "redirect_uris": ["http://127.0.0.1/cb"],
                    });
                    let mut res = axum::Json(body).into_response();
                    for (k, v) in headers {
                        res.headers_mut().append(k, v.parse().unwrap());
                    }
                    res
                }
            })
            .with_state(served);
        tokio::spawn(async move { axum::serve(listener, app).await });
        base
    }

    #[tokio::test]
    async fn a_changed_document_is_seen_as_its_caching_headers_say() {
        let served = Served::default();
        let base = serve(served.clone()).await;
        let fetcher = CimdFetcher::new(true, &[]).unwrap();
        let set = |path: &str, name: &str, headers: Vec<(&'static str, String)>| {
            served
                .docs
                .lock()
                .unwrap()
                .insert(path.to_owned(), (name.to_owned(), headers));
        };
        let name = |path: &'static str| {
            let fetcher = fetcher.clone();
            let id = format!("{base}{path}");
            async move { fetcher.client(&id).await.unwrap().name.clone().unwrap() }
        };
        let in_an_hour = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(3600));
        let an_hour_ago = httpdate::fmt_http_date(SystemTime::now() - Duration::from_secs(3600));
        let cases: [(&'static str, Vec<(&'static str, String)>, bool); 5] = [
            (
                "/max-age.json",
                vec![("cache-control", "max-age=3600".into())],
                true,
            ),
            ("/expires.json", vec![("expires", in_an_hour)], true),
            (
                "/no-store.json",
                vec![("cache-control", "no-store".into())],
                false,
            ),
            (
                "/max-age-0.json",
                vec![("cache-control", "max-age=0".into())],
                false,
            ),
            ("/expired.json", vec![("expires", an_hour_ago)], false),
        ];
        for (path, headers, cached) in cases {
            set(path, "first", headers.clone());
            assert_eq!(name(path).await, "first");
            set(path, "second", headers);
            let before = served.fetches.load(Ordering::SeqCst);
            let want = if cached { "first" } else { "second" };
            assert_eq!(name(path).await, want, "{path}");
            let fetched = served.fetches.load(Ordering::SeqCst) - before;
            assert_eq!(fetched, usize::from(!cached), "{path}");
        }
    }

    #[tokio::test]
    async fn the_cache_holds_a_bounded_number_of_documents() {
        let served = Served::default();
        let base = serve(served.clone()).await;
        let fetcher = CimdFetcher::with_capacity(true, &[], 3).unwrap();
        for i in 0..20 {
            let path = format!("/c{i}.json");
            served.docs.lock().unwrap().insert(
                path.clone(),
                ("c".into(), vec![("cache-control", "max-age=3600".into())]),
            );
            fetcher.client(&format!("{base}{path}")).await.unwrap();
        }
        fetcher.cache.run_pending_tasks().await;
        assert!(
            fetcher.cache.entry_count() <= 3,
            "{}",
            fetcher.cache.entry_count()
        );
    }

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
