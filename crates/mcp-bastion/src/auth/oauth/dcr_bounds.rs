//! Bounds on open dynamic client registration: a registered client that is
//! never used expires after a short lifetime, a used one after a long idle
//! lifetime (extended on use at most once a day), and registrations are
//! rate-limited per client IP.
//!
//! The extension happens at the token endpoint, when a code is exchanged
//! or a refresh token redeemed: that is where the client proves it holds
//! its secret or PKCE verifier. An `/authorize` request names a client id
//! that anyone may copy, and the code it issues may never be redeemed.

use std::{net::IpAddr, time::Duration};

use http::HeaderMap;

use crate::{
    net::TrustedProxies,
    ratelimit::{Decision, Limit, Limiter, RateKey, client_network},
};

/// Default lifetime of a registered client that was never used.
pub(crate) const DEFAULT_UNUSED_TTL: Duration = Duration::from_secs(24 * 3600);
/// Default lifetime of a used client since its last (recorded) use.
pub(crate) const DEFAULT_IDLE_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
/// A use is written to the store at most this often per client.
pub(crate) const TOUCH_EVERY: u64 = 24 * 3600;

/// The registration limit per client IP (default 20 per hour).
pub(crate) struct RegistrationLimit {
    limit: Limit,
    limiter: Limiter,
    epoch: tokio::time::Instant,
    proxies: TrustedProxies,
}

impl std::fmt::Debug for RegistrationLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistrationLimit")
            .field("limit", &self.limit)
            .finish()
    }
}

impl RegistrationLimit {
    pub(crate) fn new(limit: Limit, proxies: TrustedProxies) -> Self {
        let epoch = tokio::time::Instant::now();
        Self {
            limiter: Limiter::memory(&limit, epoch),
            limit,
            epoch,
            proxies,
        }
    }

    /// `Err(retry after)` when the client at `peer` registered too often.
    pub(crate) fn check(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Result<(), Duration> {
        let key = match self.proxies.client_ip(peer, headers) {
            Some(ip) => RateKey::Ip(client_network(ip)),
            None => RateKey::UnknownIp,
        };
        match self.limiter.check_now(&key, &self.limit, 1, self.epoch) {
            Some(Decision {
                allowed: false,
                retry_after,
                ..
            }) => Err(retry_after),
            _ => Ok(()),
        }
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
        assert!(rl.check(Some(a), &h).is_ok());
        assert!(rl.check(Some(a), &h).is_ok());
        let wait = rl.check(Some(a), &h).unwrap_err();
        assert!(wait > Duration::ZERO);
        assert!(rl.check(Some(b), &h).is_ok());
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
