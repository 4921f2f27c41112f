//! How long a fetched document is reused: its HTTP caching headers
//! (RFC 9111), within bounds.

use std::time::{Duration, SystemTime};

/// How long a fetched document is reused when its answer says nothing.
pub(super) const DEFAULT_FRESH: Duration = Duration::from_secs(300);
/// The shortest reuse of a cacheable document: a `max-age` of a few seconds
/// would make every authorization and token request a fetch.
pub(super) const MIN_FRESH: Duration = Duration::from_secs(60);
/// The longest reuse, whatever the document says: a client's changed
/// redirect URIs are seen within a day.
pub(super) const MAX_FRESH: Duration = Duration::from_secs(24 * 3600);

/// How long an answer may be reused, from its caching headers (RFC 9111),
/// bounded to [`MIN_FRESH`] .. [`MAX_FRESH`]; `None`: not at all.
///
/// `no-store` and `no-cache` are not cached (this cache never revalidates);
/// `max-age` wins over `Expires` (measured from `Date` when the answer has
/// one); a `max-age` of 0, a repeated or malformed `max-age`, an invalid
/// `Expires` or one already past make the answer stale: not cached.
pub(super) fn freshness(headers: &http::HeaderMap, now: SystemTime) -> Option<Duration> {
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// Header names and values.
    type Headers = Vec<(&'static str, String)>;

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
        let cases: Vec<(Headers, Option<Duration>)> = vec![
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
}
