//! The fetcher against documents served on loopback, and the checks of
//! client id URLs and documents.
#![allow(clippy::unwrap_used)]

use std::{
    collections::HashMap,
    sync::{
        Mutex,
        atomic::{AtomicUsize, Ordering},
    },
};

use super::*;

/// Header names and values.
type Headers = Vec<(&'static str, String)>;

/// Documents served here; each path's body names the client, with the
/// headers the test sets, and a count of fetches.
#[derive(Clone, Default)]
struct Served {
    docs: Arc<Mutex<HashMap<String, (String, Headers)>>>,
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
    let set = |path: &str, name: &str, headers: Headers| {
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
    let cases: [(&'static str, Headers, bool); 5] = [
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
    let fetcher = CimdFetcher::with_limits(true, &[], 3, TIMEOUT).unwrap();
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
    let other =
        br#"{"client_id":"https://evil.example/c.json","redirect_uris":["http://127.0.0.1/cb"]}"#;
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

/// The check is on the addresses a name resolves to, not on the name: `localhost` passes the URL
/// check (an `https` URL with a domain) and is refused once resolved, though a server listens.
#[tokio::test]
async fn a_name_resolving_to_loopback_is_refused_after_resolution() {
    let served = Served::default();
    served
        .docs
        .lock()
        .unwrap()
        .insert("/c.json".into(), ("App".into(), Vec::new()));
    let base = serve(served.clone()).await;
    let port = base.rsplit(':').next().unwrap();
    let fetcher = CimdFetcher::new(false, &[]).unwrap();
    let id = format!("https://localhost:{port}/c.json");
    assert!(
        fetcher.check_url(&id).is_ok(),
        "the URL alone is acceptable"
    );
    assert_eq!(
        fetcher.client(&id).await.err(),
        Some(CimdError::ForbiddenAddress)
    );
    assert_eq!(served.fetches.load(Ordering::SeqCst), 0, "never connected");
}

/// A document that does not arrive within the fetch's time is not used.
#[tokio::test]
async fn a_slow_document_is_not_used() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new().fallback(|| async {
        tokio::time::sleep(Duration::from_secs(30)).await;
        "late"
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    let fetcher = CimdFetcher::with_limits(true, &[], 8, Duration::from_millis(300)).unwrap();
    assert_eq!(
        fetcher.client(&format!("{base}/slow.json")).await.err(),
        Some(CimdError::Fetch)
    );
}
