//! Where counts live: in memory (one store per rule) or in Redis (shared by
//! every process that uses the same prefix), and what happens when Redis is
//! unreachable.

use std::{
    str::FromStr,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use super::{Algorithm, Limit, gcra::GcraStore, key::RateKey, window::SlidingWindowStore};

/// The outcome of one limit for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request fits.
    pub allowed: bool,
    /// The limit's count (its burst for GCRA).
    pub limit: u32,
    /// Requests left right now (after this one, when allowed).
    pub remaining: u32,
    /// Until the quota is whole again (`t` of the `RateLimit` header).
    pub reset: Duration,
    /// When refused: how long until the request would fit.
    pub retry_after: Duration,
}

impl Decision {
    pub(crate) fn allowed(limit: &Limit, remaining: u32, reset: Duration) -> Self {
        Self {
            allowed: true,
            limit: quota_of(limit),
            remaining,
            reset,
            retry_after: Duration::ZERO,
        }
    }

    pub(crate) fn refused(limit: &Limit, retry_after: Duration, reset: Duration) -> Self {
        Self {
            allowed: false,
            limit: quota_of(limit),
            remaining: 0,
            reset,
            retry_after,
        }
    }
}

pub(crate) fn quota_of(limit: &Limit) -> u32 {
    match limit.algorithm() {
        Algorithm::SlidingWindow => limit.count(),
        Algorithm::Gcra => limit.burst(),
    }
}

/// What to do with a request when the shared store (Redis) cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailurePolicy {
    /// Let it through, unlimited (availability first). The default.
    #[default]
    Open,
    /// Refuse it with 503 and `Retry-After` (protection first).
    Closed,
}

impl FromStr for FailurePolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "open" => Ok(FailurePolicy::Open),
            "closed" => Ok(FailurePolicy::Closed),
            other => Err(format!("`{other}`: expected open or closed")),
        }
    }
}

/// How long an unreachable store is left alone before one request probes it
/// again: during an outage requests are decided at once instead of each
/// waiting for a connection timeout.
pub(crate) const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// Tracks outages of the shared store: logs once when one starts and once when
/// it ends, counts every request decided without the store, and keeps
/// requests off a store that is down (one probe per [`PROBE_INTERVAL`]).
#[derive(Debug)]
pub(crate) struct StoreHealth {
    /// What counts in the store, for the log lines (`rate-limit`).
    what: &'static str,
    down: AtomicBool,
    failures: AtomicU64,
    epoch: std::time::Instant,
    /// Milliseconds since `epoch` before which nobody tries the store.
    retry_at: AtomicU64,
}

impl Default for StoreHealth {
    fn default() -> Self {
        Self::named("rate-limit")
    }
}

impl StoreHealth {
    /// The health of the store `what` counts in: the log lines say
    /// `{what} store unreachable` and `{what} store reachable again`.
    pub(crate) fn named(what: &'static str) -> Self {
        Self {
            what,
            down: AtomicBool::new(false),
            failures: AtomicU64::new(0),
            epoch: std::time::Instant::now(),
            retry_at: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Whether this request should use the store: always while it is up; while
    /// it is down, one request per probe interval (the one that wins the race).
    pub(crate) fn should_try(&self) -> bool {
        if !self.down.load(Ordering::Relaxed) {
            return true;
        }
        let now = self.now_ms();
        let at = self.retry_at.load(Ordering::Relaxed);
        now >= at
            && self
                .retry_at
                .compare_exchange(
                    at,
                    now + PROBE_INTERVAL.as_millis() as u64,
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                )
                .is_ok()
    }

    /// A request decided without the store because it is known to be down.
    pub(crate) fn skipped(&self) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("mcp_bastion_ratelimit_store_failures_total").increment(1);
    }

    /// A request that tried the store and failed.
    pub(crate) fn failed(&self, error: &dyn std::fmt::Display, policy: FailurePolicy) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        self.retry_at.fetch_max(
            self.now_ms() + PROBE_INTERVAL.as_millis() as u64,
            Ordering::AcqRel,
        );
        metrics::counter!("mcp_bastion_ratelimit_store_failures_total").increment(1);
        tracing::debug!(target: "mcp_bastion::ratelimit", %error, "{} store failed", self.what);
        if !self.down.swap(true, Ordering::AcqRel) {
            tracing::error!(
                target: "mcp_bastion::ratelimit",
                %error,
                policy = ?policy,
                "{} store unreachable: failing {} until it is back",
                self.what,
                match policy { FailurePolicy::Open => "open", FailurePolicy::Closed => "closed" },
            );
        }
    }

    pub(crate) fn succeeded(&self) {
        if self.down.load(Ordering::Relaxed) && self.down.swap(false, Ordering::AcqRel) {
            tracing::warn!(target: "mcp_bastion::ratelimit", "{} store reachable again", self.what);
        }
    }

    pub(crate) fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }
}

/// One rule's counter.
pub(crate) enum Limiter {
    Window(SlidingWindowStore),
    Gcra(GcraStore),
    #[cfg(feature = "redis")]
    Redis(super::redis::RedisLimiter),
}

impl Limiter {
    pub(crate) fn memory(limit: &Limit, epoch: tokio::time::Instant) -> Self {
        match limit.algorithm() {
            Algorithm::SlidingWindow => Limiter::Window(SlidingWindowStore::new(limit)),
            Algorithm::Gcra => Limiter::Gcra(GcraStore::new(limit, epoch)),
        }
    }

    /// Decides at once when the counts are in memory; `None` for a shared
    /// store, which only [`Limiter::check_shared`] can answer.
    pub(crate) fn check_now(
        &self,
        key: &RateKey,
        limit: &Limit,
        cost: u32,
        epoch: tokio::time::Instant,
    ) -> Option<Decision> {
        match self {
            Limiter::Window(s) => Some(s.check(key, limit, cost, || {
                let since = tokio::time::Instant::now().saturating_duration_since(epoch);
                u64::try_from(since.as_nanos()).unwrap_or(u64::MAX)
            })),
            Limiter::Gcra(s) => Some(s.check(key, limit, cost)),
            #[cfg(feature = "redis")]
            Limiter::Redis(_) => None,
        }
    }

    /// Asks the shared store: `Err` when it could not be reached. A memory
    /// store has nothing to ask ([`Limiter::check_now`] decides it), so it
    /// answers `Err` too.
    #[cfg_attr(not(feature = "redis"), allow(unused_variables))]
    pub(crate) async fn check_shared(
        &self,
        key: &RateKey,
        limit: &Limit,
        cost: u32,
    ) -> Result<Decision, StoreError> {
        match self {
            #[cfg(feature = "redis")]
            Limiter::Redis(r) => r.check(key, limit, cost).await,
            Limiter::Window(_) | Limiter::Gcra(_) => Err(StoreError("not a shared store".into())),
        }
    }

    /// Whether the counts live in a shared store that can be unreachable.
    pub(crate) fn is_shared(&self) -> bool {
        match self {
            Limiter::Window(_) | Limiter::Gcra(_) => false,
            #[cfg(feature = "redis")]
            Limiter::Redis(_) => true,
        }
    }

    /// Keys held in memory (0 for Redis).
    pub(crate) fn len(&self) -> usize {
        match self {
            Limiter::Window(s) => s.len(),
            Limiter::Gcra(s) => s.len(),
            #[cfg(feature = "redis")]
            Limiter::Redis(_) => 0,
        }
    }
}

/// The shared store failed (connection refused, timeout…).
#[derive(Debug, Clone, thiserror::Error)]
#[error("rate-limit store error: {0}")]
pub(crate) struct StoreError(pub(crate) Arc<str>);
