use std::sync::{Arc, OnceLock};

use tower::Layer;

use super::{
    FailurePolicy, KeyBy, McpRateLimit, RateLimitPolicy, TierMatch,
    engine::{Config, Engine},
};
use crate::net::TrustedProxies;

/// Applies [`McpRateLimit`] to a service. See the [module docs](super).
///
/// Every service this layer makes (axum calls `layer` once per route) shares
/// one set of counters.
#[derive(Clone)]
pub struct McpRateLimitLayer {
    config: Config,
    engine: Arc<OnceLock<Arc<Engine>>>,
}

impl std::fmt::Debug for McpRateLimitLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpRateLimitLayer")
            .field("policy", &self.config.policy)
            .field("tiers", &self.config.tiers.len())
            .field("proxies", &self.config.proxies)
            .finish_non_exhaustive()
    }
}

impl McpRateLimitLayer {
    /// A layer enforcing `policy`, counting in memory, with `RateLimit`
    /// headers on every answer.
    pub fn new(policy: RateLimitPolicy) -> Self {
        Self {
            config: Config {
                policy,
                headers: true,
                ..Config::default()
            },
            engine: Arc::default(),
        }
    }

    fn edit(mut self, f: impl FnOnce(&mut Config)) -> Self {
        f(&mut self.config);
        self.engine = Arc::default();
        self
    }

    /// Principals matching `tier` get `policy` instead of the base policy
    /// (first matching tier wins).
    pub fn tier(self, tier: TierMatch, policy: RateLimitPolicy) -> Self {
        self.edit(|c| c.tiers.push((tier, policy)))
    }

    /// Adds every `#[rate_limit]` declared in the binary to the base policy's
    /// tool limits (a limit configured for the same tool wins).
    pub fn with_declared_tool_limits(self) -> Self {
        self.edit(|c| c.declared = true)
    }

    /// Whose forwarding headers are believed for the client IP (default:
    /// nobody's).
    pub fn trusted_proxies(self, proxies: TrustedProxies) -> Self {
        self.edit(|c| c.proxies = proxies)
    }

    /// Whether allowed answers carry `RateLimit-Policy` and `RateLimit`
    /// (default: yes). Refusals always do.
    pub fn headers(self, enabled: bool) -> Self {
        self.edit(|c| c.headers = enabled)
    }

    /// At most `n` requests in flight per key (a request stays in flight until
    /// its response body ends).
    pub fn max_concurrent(self, n: u32) -> Self {
        self.edit(|c| c.max_concurrent = Some(n))
    }

    /// At most `n` open `GET` streams per key.
    pub fn max_streams(self, n: u32) -> Self {
        self.edit(|c| c.max_streams = Some(n))
    }

    /// The key of the concurrency caps (default: the policy's key).
    pub fn concurrency_key(self, key: KeyBy) -> Self {
        self.edit(|c| c.concurrency_key = Some(key))
    }

    /// What happens when the shared store cannot be reached (default: open).
    pub fn failure_policy(self, policy: FailurePolicy) -> Self {
        self.edit(|c| c.failure = policy)
    }

    /// Counts in Redis, shared with every process using the same store and
    /// prefix.
    #[cfg(feature = "redis")]
    pub fn redis(self, store: super::RedisStore) -> Self {
        self.edit(|c| c.store = super::engine::StoreConfig::Redis(store))
    }

    pub(crate) fn engine(&self) -> Arc<Engine> {
        self.engine
            .get_or_init(|| Arc::new(Engine::new(&self.config)))
            .clone()
    }

    /// Live numbers of this layer's counters.
    pub fn stats(&self) -> RateLimitStats {
        RateLimitStats(self.engine())
    }
}

impl<S> Layer<S> for McpRateLimitLayer {
    type Service = McpRateLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        McpRateLimit {
            inner,
            engine: self.engine(),
        }
    }
}

/// Live numbers of a [`McpRateLimitLayer`]'s counters.
#[derive(Clone)]
pub struct RateLimitStats(Arc<Engine>);

impl std::fmt::Debug for RateLimitStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimitStats")
            .field("store_failures", &self.store_failures())
            .field("keys_in_memory", &self.keys_in_memory())
            .finish()
    }
}

impl RateLimitStats {
    /// Requests decided without the shared store because it was unreachable
    /// (also the `mcp_bastion_ratelimit_store_failures_total` counter).
    pub fn store_failures(&self) -> u64 {
        self.0.health.failures()
    }

    /// Keys held by the in-memory counters.
    pub fn keys_in_memory(&self) -> usize {
        self.0.keys_in_memory()
    }

    /// Requests and streams holding a concurrency slot now.
    pub fn concurrent(&self) -> usize {
        self.0.concurrency.as_ref().map_or(0, |c| c.in_use())
    }
}
