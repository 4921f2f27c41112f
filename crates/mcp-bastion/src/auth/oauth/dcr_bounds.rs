//! Bounds on open dynamic client registration: a registered client that is
//! never used expires after a short lifetime, a used one after a long idle
//! lifetime (extended on use at most once a day), and registrations are
//! rate-limited per client IP.
//!
//! The limit counts in this process, or with a shared
//! [`RedisStore`](crate::ratelimit::RedisStore) in Redis for every replica
//! together (rule `oauth.dcr`, apart from the rate-limit layer's rules), with
//! the rate-limit layer's [`FailurePolicy`] while Redis is unreachable: open
//! counts in this process meanwhile, closed refuses with `503`.
//!
//! The extension happens at the token endpoint, when a code is exchanged
//! or a refresh token redeemed: that is where the client proves it holds
//! its secret or PKCE verifier. An `/authorize` request names a client id
//! that anyone may copy, and the code it issues may never be redeemed.

use std::{net::IpAddr, time::Duration};

use axum::{
    Json,
    response::{IntoResponse, Response},
};
use http::{HeaderMap, StatusCode, header};
use serde_json::json;

use super::error::no_store;
use crate::{
    net::TrustedProxies,
    ratelimit::{
        Decision, FailurePolicy, Limit, Limiter, RateKey, StoreHealth, ceil_secs, client_network,
    },
};

/// Default lifetime of a registered client that was never used.
pub(crate) const DEFAULT_UNUSED_TTL: Duration = Duration::from_secs(24 * 3600);
/// Default lifetime of a used client since its last (recorded) use.
pub(crate) const DEFAULT_IDLE_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
/// A use is written to the store at most this often per client.
pub(crate) const TOUCH_EVERY: u64 = 24 * 3600;

/// The rule name of the registration limit in a shared
/// [`RedisStore`](crate::ratelimit::RedisStore): its keys are
/// `<prefix>oauth.dcr:<limit>:ip:<network>`. The rate-limit layer's rules
/// are named `default`, `method.…`, `tool.…` and `tier<N>.…`, so the two
/// never count in the same key.
#[cfg(feature = "redis")]
pub(crate) const SHARED_RULE: &str = "oauth.dcr";

/// How long a client is told to wait when the shared store is down and the
/// limit fails closed: one probe a second reaches the store.
const UNAVAILABLE_RETRY: Duration = Duration::from_secs(1);

/// The registration limit per client IP (default 20 per hour), counted in
/// this process, or in a shared store (Redis) for every replica together.
pub(crate) struct RegistrationLimit {
    limit: Limit,
    /// This process's count: the only one without a shared store; with one,
    /// the count while it is unreachable and the limit fails open.
    local: Limiter,
    /// The count shared by every replica.
    shared: Option<Limiter>,
    failure: FailurePolicy,
    health: StoreHealth,
    epoch: tokio::time::Instant,
    proxies: TrustedProxies,
}

impl std::fmt::Debug for RegistrationLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistrationLimit")
            .field("limit", &self.limit)
            .field("shared", &self.shared.is_some())
            .field("failure", &self.failure)
            .finish_non_exhaustive()
    }
}

/// Why a registration was refused before it was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Over the limit: retry after this long.
    Limited(Duration),
    /// The shared store is unreachable and the limit fails closed.
    Unavailable,
}

impl IntoResponse for Refused {
    /// `429` (over the limit) or `503` (store down, failing closed), each
    /// with an RFC 6749-shaped `temporarily_unavailable` (RFC 7591 has no
    /// code for it; clients know this one) and `Retry-After`.
    fn into_response(self) -> Response {
        let (status, description, wait) = match self {
            Refused::Limited(wait) => (
                StatusCode::TOO_MANY_REQUESTS,
                "too many registrations from this address; retry later",
                wait,
            ),
            Refused::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "registration is unavailable right now; retry later",
                UNAVAILABLE_RETRY,
            ),
        };
        let mut res = (
            status,
            Json(json!({
                "error": "temporarily_unavailable",
                "error_description": description,
            })),
        )
            .into_response();
        no_store(&mut res);
        let secs = ceil_secs(wait).max(1);
        res.headers_mut()
            .insert(header::RETRY_AFTER, http::HeaderValue::from(secs));
        res
    }
}

impl RegistrationLimit {
    /// A limit counted in this process.
    pub(crate) fn new(limit: Limit, proxies: TrustedProxies) -> Self {
        let epoch = tokio::time::Instant::now();
        Self {
            local: Limiter::memory(&limit, epoch),
            shared: None,
            failure: FailurePolicy::default(),
            health: StoreHealth::named("registration-limit"),
            limit,
            epoch,
            proxies,
        }
    }

    /// Counts in `store` (under [`SHARED_RULE`]) instead, shared with every
    /// process that uses the same Redis and prefix; while it is unreachable
    /// `failure` decides: open counts in this process, closed refuses.
    #[cfg(feature = "redis")]
    pub(crate) fn shared(
        mut self,
        store: &crate::ratelimit::RedisStore,
        failure: FailurePolicy,
    ) -> Self {
        self.shared = Some(Limiter::Redis(store.limiter(SHARED_RULE, &self.limit)));
        self.failure = failure;
        self
    }

    /// `Err` when the client at `peer` registered too often, or when the
    /// shared store is down and the limit fails closed.
    pub(crate) async fn check(
        &self,
        peer: Option<IpAddr>,
        headers: &HeaderMap,
    ) -> Result<(), Refused> {
        let key = match self.proxies.client_ip(peer, headers) {
            Some(ip) => RateKey::Ip(client_network(ip)),
            None => RateKey::UnknownIp,
        };
        let decision = match &self.shared {
            None => self.count_here(&key),
            Some(shared) => {
                // while the store is down, only one probe a second reaches it
                let result = if self.health.should_try() {
                    Some(shared.check_shared(&key, &self.limit, 1).await)
                } else {
                    None
                };
                match result {
                    Some(Ok(decision)) => {
                        self.health.succeeded();
                        Some(decision)
                    }
                    failed => {
                        // the error names the failure (refused, timed out,
                        // WRONGPASS), never the URL or its password
                        match failed {
                            Some(Err(e)) => self.health.failed(&e, self.failure),
                            _ => self.health.skipped(),
                        }
                        match self.failure {
                            FailurePolicy::Open => self.count_here(&key),
                            FailurePolicy::Closed => return Err(Refused::Unavailable),
                        }
                    }
                }
            }
        };
        match decision {
            Some(Decision {
                allowed: false,
                retry_after,
                ..
            }) => Err(Refused::Limited(retry_after)),
            _ => Ok(()),
        }
    }

    /// This process's decision (never `None`: the local limiter is in memory).
    fn count_here(&self, key: &RateKey) -> Option<Decision> {
        self.local.check_now(key, &self.limit, 1, self.epoch)
    }
}

/// 20 registrations per hour.
pub(crate) fn default_limit() -> Limit {
    Limit::per_hour(std::num::NonZeroU32::new(20).unwrap_or(std::num::NonZeroU32::MIN))
}

/// Whether a client last recorded as used at `used_at` (unix seconds)
/// should be written again at `now`.
pub(crate) fn needs_touch(used_at: Option<u64>, now: u64, idle: Duration) -> bool {
    let every = TOUCH_EVERY.min(idle.as_secs() / 2);
    used_at.is_none_or(|t| now.saturating_sub(t) >= every)
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;

    use super::*;

    #[test]
    fn a_use_is_written_once_a_day_at_most() {
        let idle = DEFAULT_IDLE_TTL;
        assert!(needs_touch(None, 1_000, idle));
        assert!(!needs_touch(Some(1_000), 1_000 + 3600, idle));
        assert!(needs_touch(Some(1_000), 1_000 + TOUCH_EVERY, idle));
        // a short idle lifetime is extended before it runs out
        assert!(needs_touch(Some(1_000), 1_006, Duration::from_secs(10)));
    }

    #[tokio::test]
    async fn registrations_are_limited_per_client_ip() {
        let limit = Limit::per_hour(NonZeroU32::new(2).unwrap());
        let rl = RegistrationLimit::new(limit, TrustedProxies::default());
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let h = HeaderMap::new();
        assert!(rl.check(Some(a), &h).await.is_ok());
        assert!(rl.check(Some(a), &h).await.is_ok());
        let Err(Refused::Limited(wait)) = rl.check(Some(a), &h).await else {
            panic!("the third registration must be refused by the limit");
        };
        assert!(wait > Duration::ZERO);
        assert!(rl.check(Some(b), &h).await.is_ok());
    }

    /// Two replicas' limits on one Redis: registrations alternate between
    /// them and the limit holds for both together, per client IP.
    #[cfg(feature = "redis")]
    #[tokio::test]
    async fn two_replicas_sharing_redis_reach_the_limit_together() {
        use crate::ratelimit::{RedisStore, redis_test_server};
        let (_server, url) = redis_test_server().await;
        let limit = Limit::per_hour(NonZeroU32::new(3).unwrap());
        let replica = || {
            // each replica opens its own connection, as two processes do
            RegistrationLimit::new(limit, TrustedProxies::default())
                .shared(&RedisStore::open(&url).unwrap(), FailurePolicy::Open)
        };
        let (one, two) = (replica(), replica());
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "2001:db8::1".parse().unwrap();
        let h = HeaderMap::new();
        assert_eq!(one.check(Some(a), &h).await, Ok(()));
        assert_eq!(two.check(Some(a), &h).await, Ok(()));
        assert_eq!(one.check(Some(a), &h).await, Ok(()));
        // each has counted at most two: only the shared count is at three
        for replica in [&two, &one] {
            let Err(Refused::Limited(wait)) = replica.check(Some(a), &h).await else {
                panic!("the fourth registration must be refused on either replica");
            };
            assert!(wait > Duration::ZERO && wait <= Duration::from_secs(3600));
        }
        // another client IP has its own count
        assert_eq!(two.check(Some(b), &h).await, Ok(()));
        // nothing was counted in memory: the store answered every time
        assert_eq!(one.local.len() + two.local.len(), 0);
    }

    /// The registration counts and the rate-limit layer's, in one store and
    /// for the same client IP and limit, are kept apart.
    #[cfg(feature = "redis")]
    #[tokio::test]
    async fn registration_counts_never_meet_the_rate_limit_layers() {
        use crate::ratelimit::{RedisStore, redis_test_server};
        let (_server, url) = redis_test_server().await;
        let store = RedisStore::open(&url).unwrap();
        let limit = Limit::per_hour(NonZeroU32::new(1).unwrap());
        let dcr = RegistrationLimit::new(limit, TrustedProxies::default())
            .shared(&store, FailurePolicy::Open);
        let ip: IpAddr = "192.0.2.9".parse().unwrap();
        assert_eq!(dcr.check(Some(ip), &HeaderMap::new()).await, Ok(()));
        assert!(matches!(
            dcr.check(Some(ip), &HeaderMap::new()).await,
            Err(Refused::Limited(_))
        ));
        // the layer's rules of every scope, counted per the same client IP
        let key = RateKey::Ip(client_network(ip));
        for rule in [
            "default",
            "method.tools/call",
            "tool.oauth",
            "tier0.default",
        ] {
            let d = store
                .limiter(rule, &limit)
                .check(&key, &limit, 1)
                .await
                .unwrap();
            assert!(d.allowed, "{rule} met the registration count");
        }
        assert!(SHARED_RULE.starts_with("oauth."));
    }

    /// Redis unreachable: failing open counts in this process (still a
    /// limit), failing closed refuses with 503 and `Retry-After`.
    #[cfg(feature = "redis")]
    #[tokio::test]
    async fn an_unreachable_redis_fails_open_to_this_replicas_count_or_closed() {
        use crate::ratelimit::RedisStore;
        // a loopback port nobody listens on
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let store = RedisStore::open(&format!("redis://:hunter2@127.0.0.1:{port}")).unwrap();
        let limit = Limit::per_hour(NonZeroU32::new(2).unwrap());
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let h = HeaderMap::new();

        let open = RegistrationLimit::new(limit, TrustedProxies::default())
            .shared(&store, FailurePolicy::Open);
        assert_eq!(open.check(Some(ip), &h).await, Ok(()));
        assert_eq!(open.check(Some(ip), &h).await, Ok(()));
        assert!(matches!(
            open.check(Some(ip), &h).await,
            Err(Refused::Limited(_))
        ));
        assert_eq!(open.local.len(), 1);
        assert!(open.health.failures() >= 3);

        let closed = RegistrationLimit::new(limit, TrustedProxies::default())
            .shared(&store, FailurePolicy::Closed);
        assert_eq!(closed.check(Some(ip), &h).await, Err(Refused::Unavailable));
        let res = Refused::Unavailable.into_response();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(res.headers()[header::RETRY_AFTER], "1");
        // the Debug form names neither the URL nor its password
        assert!(!format!("{closed:?}").contains("hunter2"));
    }

    #[tokio::test]
    async fn a_refusal_is_a_429_or_503_temporarily_unavailable_with_retry_after() {
        let res = Refused::Limited(Duration::from_millis(1500)).into_response();
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(res.headers()[header::RETRY_AFTER], "2");
        assert_eq!(res.headers()[header::CACHE_CONTROL], "no-store");
        let body = axum::body::to_bytes(res.into_body(), 4096).await.unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"], "temporarily_unavailable");
    }

    #[tokio::test]
    async fn a_use_extends_a_registered_client_once_then_not_again_the_same_day() {
        use super::super::{
            OAuthServer, RecordKind, UpstreamOidc,
            clients::{Client, ClientKind},
        };
        let server = OAuthServer::builder()
            .issuer("https://mcp.example.com")
            .resource("https://mcp.example.com/mcp")
            .upstream(UpstreamOidc::new(
                "https://accounts.example.com",
                "mcp-bastion",
            ))
            .allow_any_user()
            .build()
            .unwrap();
        let inner = &server.inner;
        assert_eq!(inner.dcr_unused_ttl, DEFAULT_UNUSED_TTL);
        assert_eq!(inner.dcr_idle_ttl, DEFAULT_IDLE_TTL);
        let client = Client {
            id: "reg".into(),
            name: Some("before".into()),
            redirect_uris: vec![],
            secret_sha256: None,
            kind: ClientKind::Registered,
            used_at: None,
        };
        inner
            .records
            .put(
                RecordKind::Client,
                "reg",
                &client,
                Some(inner.dcr_unused_ttl),
            )
            .await
            .unwrap();
        inner.touch_client(&client).await;
        let used: Client = inner
            .records
            .get(RecordKind::Client, "reg")
            .await
            .unwrap()
            .unwrap();
        assert!(used.used_at.is_some());
        // used moments ago: not written again
        let mut renamed = used.clone();
        renamed.name = Some("after".into());
        inner.touch_client(&renamed).await;
        let kept: Client = inner
            .records
            .get(RecordKind::Client, "reg")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(kept.name.as_deref(), Some("before"));
    }
}
