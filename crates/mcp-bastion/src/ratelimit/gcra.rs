//! GCRA in memory, through `governor`'s keyed limiter, on tokio's clock (so a
//! paused test clock drives it like the sliding window).

use std::{
    num::NonZeroU32,
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use governor::{
    Quota, RateLimiter, clock::Clock, middleware::StateInformationMiddleware, nanos::Nanos,
    state::keyed::DashMapStateStore,
};

use super::{Decision, Limit, key::RateKey};

/// `governor`'s clock, read from `tokio::time::Instant` (which a paused test
/// runtime controls).
#[derive(Debug, Clone)]
pub(crate) struct TokioClock {
    epoch: tokio::time::Instant,
}

impl TokioClock {
    pub(crate) fn new(epoch: tokio::time::Instant) -> Self {
        Self { epoch }
    }
}

impl Clock for TokioClock {
    type Instant = Nanos;

    fn now(&self) -> Nanos {
        Nanos::from(tokio::time::Instant::now().saturating_duration_since(self.epoch))
    }
}

type Keyed =
    RateLimiter<RateKey, DashMapStateStore<RateKey>, TokioClock, StateInformationMiddleware>;

/// One GCRA limit for many keys. Keys whose bucket is full again are evicted
/// (at most once per period, by whichever request notices first).
pub(crate) struct GcraStore {
    limiter: Keyed,
    clock: TokioClock,
    last_sweep: AtomicU64,
}

impl std::fmt::Debug for GcraStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GcraStore")
            .field("keys", &self.limiter.len())
            .finish()
    }
}

/// The `governor` quota of a limit: one cell per `period / count`, `burst` at once.
pub(crate) fn quota(limit: &Limit) -> Quota {
    let burst = NonZeroU32::new(limit.burst()).unwrap_or(NonZeroU32::MIN);
    let interval = limit.emission_interval().max(Duration::from_nanos(1));
    Quota::with_period(interval)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(burst)
}

impl GcraStore {
    pub(crate) fn new(limit: &Limit, epoch: tokio::time::Instant) -> Self {
        let clock = TokioClock::new(epoch);
        let limiter = RateLimiter::dashmap_with_clock(quota(limit), clock.clone())
            .with_middleware::<StateInformationMiddleware>();
        Self {
            limiter,
            clock,
            last_sweep: AtomicU64::new(0),
        }
    }

    pub(crate) fn check(&self, key: &RateKey, limit: &Limit, cost: u32) -> Decision {
        self.maybe_sweep(limit);
        let t = limit.emission_interval();
        let Some(n) = NonZeroU32::new(cost) else {
            return Decision::allowed(limit, limit.burst(), Duration::ZERO);
        };
        match self.limiter.check_key_n(key, n) {
            Ok(Ok(snapshot)) => {
                let remaining = snapshot.remaining_burst_capacity();
                let reset = t * limit.burst().saturating_sub(remaining);
                Decision::allowed(limit, remaining, reset)
            }
            Ok(Err(not_until)) => {
                let wait = not_until.wait_time_from(self.clock.now());
                Decision::refused(limit, wait, wait)
            }
            // more than the burst at once: never fits
            Err(_) => Decision::refused(limit, limit.period(), limit.period()),
        }
    }

    fn maybe_sweep(&self, limit: &Limit) {
        let now: u64 = self.clock.now().into();
        let last = self.last_sweep.load(Ordering::Relaxed);
        if now.saturating_sub(last) < limit.period().as_nanos() as u64
            || self
                .last_sweep
                .compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }

    pub(crate) fn len(&self) -> usize {
        self.limiter.len()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn nth_passes_n_plus_first_is_refused_then_one_per_interval() {
        let l: Limit = "3/s gcra".parse().unwrap();
        let store = GcraStore::new(&l, tokio::time::Instant::now());
        let k = RateKey::Global;
        for i in 0..3 {
            let d = store.check(&k, &l, 1);
            assert!(d.allowed, "call {i}");
            assert_eq!(d.remaining, 2 - i);
        }
        let d = store.check(&k, &l, 1);
        assert!(!d.allowed);
        assert_eq!(d.retry_after, Duration::from_nanos(333_333_333));
        tokio::time::advance(Duration::from_nanos(333_333_332)).await;
        assert!(!store.check(&k, &l, 1).allowed);
        tokio::time::advance(Duration::from_nanos(1)).await;
        assert!(store.check(&k, &l, 1).allowed);
        assert!(!store.check(&k, &l, 1).allowed);
        // other keys are untouched
        assert!(store.check(&RateKey::Subject("bob".into()), &l, 1).allowed);
    }

    #[tokio::test(start_paused = true)]
    async fn burst_above_the_count_and_batches_over_the_burst() {
        let l: Limit = "1/s gcra burst=3".parse().unwrap();
        let store = GcraStore::new(&l, tokio::time::Instant::now());
        let k = RateKey::Global;
        assert!(store.check(&k, &l, 3).allowed);
        assert!(!store.check(&k, &l, 1).allowed);
        assert!(!store.check(&k, &l, 4).allowed);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(store.check(&k, &l, 1).allowed);
    }

    #[tokio::test(start_paused = true)]
    async fn full_buckets_are_evicted() {
        let l: Limit = "10/s gcra".parse().unwrap();
        let store = GcraStore::new(&l, tokio::time::Instant::now());
        tokio::time::advance(Duration::from_secs(2)).await;
        for i in 0..50u8 {
            store.check(&RateKey::Ip([10, 0, 0, i].into()), &l, 1);
        }
        assert_eq!(store.len(), 50);
        tokio::time::advance(Duration::from_secs(3)).await;
        store.check(&RateKey::Global, &l, 1);
        assert_eq!(store.len(), 1);
    }
}
