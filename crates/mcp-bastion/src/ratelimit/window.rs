//! The sliding-window counter: the arithmetic (shared with the Redis script)
//! and the in-memory store.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use dashmap::DashMap;

use super::{Decision, Limit, key::RateKey};

/// The state of one key: the index of the current window and two counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct WindowState {
    pub(crate) window: u64,
    pub(crate) prev: u32,
    pub(crate) cur: u32,
}

impl WindowState {
    /// Moves the state to the window that contains `now`.
    fn roll(&mut self, window: u64) {
        if self.window == window {
            return;
        }
        self.prev = if window == self.window + 1 {
            self.cur
        } else {
            0
        };
        self.cur = 0;
        self.window = window;
    }
}

fn nanos(d: Duration) -> u128 {
    d.as_nanos().max(1)
}

/// Decides whether `cost` more requests fit at `now`, updating `state` when
/// they do. The estimate is `prev × (unexpired share of the previous window) +
/// cur`, computed exactly in integers: admitted iff
/// `prev·(W−e) + (cur+cost)·W ≤ N·W`.
pub(crate) fn check(state: &mut WindowState, limit: &Limit, now: Duration, cost: u32) -> Decision {
    let w = nanos(limit.period());
    let now = now.as_nanos();
    state.roll((now / w) as u64);
    let d = decide(limit, state.prev, state.cur, now % w, cost);
    if d.allowed {
        state.cur = state.cur.saturating_add(cost);
    }
    d
}

/// The decision for `cost` more requests, `elapsed` nanoseconds into a window
/// whose count is `cur` and whose predecessor's is `prev`. The Redis script
/// makes the same comparison.
pub(crate) fn decide(limit: &Limit, prev: u32, cur: u32, elapsed: u128, cost: u32) -> Decision {
    let w = nanos(limit.period());
    let elapsed = elapsed.min(w - 1);
    let n = u128::from(limit.count());
    let prev = u128::from(prev);
    let cur = u128::from(cur);
    let cost_ = u128::from(cost);
    let weighted_prev = prev * (w - elapsed);
    let reset = Duration::from_nanos((w - elapsed) as u64);
    if weighted_prev + (cur + cost_) * w <= n * w {
        let used = weighted_prev + (cur + cost_) * w;
        let remaining = (n * w).saturating_sub(used) / w;
        return Decision::allowed(limit, remaining as u32, reset);
    }
    // When would `cost` fit, if nobody else came?
    let wait = if cost_ > n {
        limit.period()
    } else if cur + cost_ <= n {
        // in this window, once enough of the previous one has slid out
        let room = (n - cur - cost_) * w; // prev·(W−e') ≤ room
        let e_needed = w - (room / prev.max(1)).min(w);
        Duration::from_nanos(e_needed.saturating_sub(elapsed) as u64)
    } else {
        // in the next window, where this window's count becomes `prev`
        let room = (n - cost_) * w;
        let e_needed = w - (room / cur.max(1)).min(w);
        Duration::from_nanos((w - elapsed + e_needed) as u64)
    };
    Decision::refused(limit, wait, reset)
}

/// Sliding-window counters for many keys, in memory. Keys idle for two
/// windows are indistinguishable from new ones and are evicted (at most once
/// per period, by whichever request notices first).
#[derive(Debug)]
pub(crate) struct SlidingWindowStore {
    map: DashMap<RateKey, WindowState>,
    last_sweep: AtomicU64,
}

impl SlidingWindowStore {
    pub(crate) fn new() -> Self {
        Self {
            map: DashMap::new(),
            last_sweep: AtomicU64::new(0),
        }
    }

    pub(crate) fn check(&self, key: &RateKey, limit: &Limit, now: Duration, cost: u32) -> Decision {
        self.maybe_sweep(limit, now);
        let mut entry = self.map.entry(key.clone()).or_default();
        check(&mut entry, limit, now, cost)
    }

    fn maybe_sweep(&self, limit: &Limit, now: Duration) {
        let now_ns = now.as_nanos() as u64;
        let last = self.last_sweep.load(Ordering::Relaxed);
        if now_ns.saturating_sub(last) < limit.period().as_nanos() as u64
            || self
                .last_sweep
                .compare_exchange(last, now_ns, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let window = (now.as_nanos() / nanos(limit.period())) as u64;
        self.map.retain(|_, s| s.window + 1 >= window);
        self.map.shrink_to_fit();
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use proptest::prelude::*;

    use super::*;

    fn limit(s: &str) -> Limit {
        s.parse().unwrap()
    }

    #[test]
    fn nth_passes_n_plus_first_is_refused_and_the_window_slides() {
        let l = limit("4/10s");
        let mut st = WindowState::default();
        let t = |ms| Duration::from_millis(ms);
        for i in 0..4 {
            let d = check(&mut st, &l, t(1000 + i), 1);
            assert!(d.allowed, "call {i}");
            assert_eq!(d.remaining, 3 - i as u32);
        }
        let d = check(&mut st, &l, t(1004), 1);
        assert!(!d.allowed);
        // all 4 are in this window: the 5th fits once the next window has
        // slid 1/4 past them: at 10 s + 2.5 s
        assert_eq!(d.retry_after, t(12_500) - t(1004));
        // refused only by the previous window's weight: 1 ms more
        let d = check(&mut st, &l, t(12_499), 1);
        assert!(!d.allowed);
        assert_eq!(d.retry_after, t(1));
        assert!(check(&mut st, &l, t(12_500), 1).allowed);
        assert!(!check(&mut st, &l, t(12_500), 1).allowed);
        // two windows later, nothing of the past is left
        let d = check(&mut st, &l, t(30_000), 4);
        assert!(d.allowed);
        assert_eq!(d.remaining, 0);
    }

    #[test]
    fn a_cost_above_the_limit_never_fits() {
        let mut st = WindowState::default();
        let d = check(&mut st, &limit("2/s"), Duration::ZERO, 3);
        assert!(!d.allowed);
        assert_eq!(d.retry_after, Duration::from_secs(1));
    }

    #[test]
    fn idle_keys_are_evicted() {
        let store = SlidingWindowStore::new();
        let l = limit("1/s");
        for i in 0..100u8 {
            store.check(
                &RateKey::Ip([10, 0, 0, i].into()),
                &l,
                Duration::from_millis(1500),
                1,
            );
        }
        assert_eq!(store.len(), 100);
        store.check(&RateKey::Global, &l, Duration::from_millis(3600), 1);
        assert_eq!(store.len(), 1);
    }

    proptest! {
        /// Whatever the arrival times and costs: no aligned window admits more
        /// than the limit, and no sliding window of one period admits more than
        /// twice the limit (the weighted previous window assumes its requests
        /// were spread evenly; that is the price of O(1) state).
        #[test]
        fn never_admits_more_than_the_limit_in_a_window(
            n in 1u32..20,
            period_ms in 1u64..2_000,
            gaps in proptest::collection::vec((0u64..500, 1u32..4), 1..300),
        ) {
            let l = Limit::new(n, Duration::from_millis(period_ms)).unwrap();
            let mut st = WindowState::default();
            let mut t = 0u64;
            let mut admitted: Vec<(u64, u32)> = Vec::new();
            for (gap, cost) in gaps {
                t += gap;
                if check(&mut st, &l, Duration::from_millis(t), cost).allowed {
                    admitted.push((t, cost));
                }
            }
            for &(start, _) in &admitted {
                let in_window: u32 = admitted.iter()
                    .filter(|(at, _)| *at >= start && *at < start + period_ms)
                    .map(|(_, c)| c).sum();
                prop_assert!(in_window <= 2 * n, "{in_window} in [{start}, +{period_ms}) for {n}");
                let aligned = start / period_ms;
                let in_aligned: u32 = admitted.iter()
                    .filter(|(at, _)| at / period_ms == aligned)
                    .map(|(_, c)| c).sum();
                prop_assert!(in_aligned <= n, "{in_aligned} in aligned window {aligned} for {n}");
            }
        }
    }
}
