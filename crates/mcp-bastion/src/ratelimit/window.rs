//! The sliding window: the arithmetic (mirrored by the Redis script) and the
//! in-memory store.
//!
//! # Why slots, and why it is exact
//!
//! A window of length `W` is cut into [`SLOTS`] slots of `L = ⌈W / SLOTS⌉`;
//! each key holds one counter per slot for the `SLOTS + 1` slots that can
//! overlap `(now − W, now]` (the oldest only partly), plus the time of its
//! last admission. A request is admitted iff the sum of those counters plus
//! its cost is at most `N`: a slot that is partly inside the window counts in
//! full. Every request admitted in `(now − W, now]` sits in one of those
//! slots, so **no interval of length `W` ever holds more than `N` admitted
//! requests**; the price is that a request can wait up to one slot (`W /
//! SLOTS`) longer than a per-request log would make it wait. One refinement
//! keeps the boundary sharp: once `W` has passed since the last admission,
//! nothing admitted can be inside the window, so the full `N` is available
//! again exactly then (not one slot later).
//!
//! State per key: one `u64` and `SLOTS + 1` `u32` counters (48 bytes), O(1)
//! whatever the limit. A log of admission times would be exact to the
//! nanosecond but costs `N` timestamps per key; the weighted two-window
//! counter this replaces was O(1) too, but admitted up to `2N` in an unaligned
//! window.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use dashmap::DashMap;

use super::{Decision, Limit, key::RateKey};

/// How many slots a window is cut into. One slot is the most a request can be
/// refused for longer than strictly needed.
pub(crate) const SLOTS: u64 = 9;
/// Counters held per key: the slots that can overlap `(now − W, now]`.
pub(crate) const RING: usize = SLOTS as usize + 1;

/// A window and its slot length, in one time unit (nanoseconds in memory,
/// microseconds in Redis).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Geometry {
    pub(crate) window: u64,
    pub(crate) slot: u64,
}

impl Geometry {
    pub(crate) fn new(window: u64) -> Self {
        let window = window.max(1);
        Self {
            window,
            slot: window.div_ceil(SLOTS),
        }
    }

    /// The geometry of `limit` in nanoseconds.
    pub(crate) fn nanos(limit: &Limit) -> Self {
        Self::new(u64::try_from(limit.period().as_nanos()).unwrap_or(u64::MAX))
    }
}

/// The state of one key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct WindowState {
    /// When the last request was admitted: its slot is the newest counted.
    last: u64,
    /// Admitted per slot: slot `j` at `j % RING`, for the slots
    /// `slot(last) − SLOTS ..= slot(last)`.
    counts: [u32; RING],
}

impl WindowState {
    /// The counters at `now ≥ last`, in ring positions: the slots that have
    /// left `(now − W, now]` are zeroed, so the ring holds exactly the slots
    /// `slot(now) − SLOTS ..= slot(now)`.
    fn at(&self, g: Geometry, now: u64) -> [u32; RING] {
        if now - self.last >= g.window {
            return [0; RING]; // quiet for a whole window: nothing admitted is inside it
        }
        let mut counts = self.counts;
        let (head, k) = (self.last / g.slot, now / g.slot);
        // slots head+1..=k reuse the positions of slots that have left
        for j in head + 1..=k.min(head + RING as u64) {
            counts[(j % RING as u64) as usize] = 0;
        }
        counts
    }

    /// Whether the state is that of a key never seen (so it can be evicted).
    fn is_idle(&self, g: Geometry, now: u64) -> bool {
        now.saturating_sub(self.last) >= g.window
    }
}

/// A decision in the geometry's time unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Verdict {
    pub(crate) allowed: bool,
    /// Left after this request (0 when refused).
    pub(crate) remaining: u32,
    /// When refused: until enough slots have expired for `cost` to fit.
    pub(crate) retry_after: u64,
    /// Until everything admitted has left the window (the quota is whole).
    pub(crate) reset: u64,
}

/// Decides whether `cost` more requests fit at `now`, recording them when they
/// do. `now` earlier than the last admission counts as the last admission
/// (a clock that steps back never frees room). The Redis script is the same
/// arithmetic, line for line.
pub(crate) fn check(state: &mut WindowState, n: u32, g: Geometry, now: u64, cost: u32) -> Verdict {
    let now = now.max(state.last);
    let counts = state.at(g, now);
    let total: u64 = counts.iter().map(|&c| u64::from(c)).sum();
    let (n, cost) = (u64::from(n), u64::from(cost));
    let k = now / g.slot;
    if cost <= n && total + cost <= n {
        let mut counts = counts;
        let cur = &mut counts[(k % RING as u64) as usize];
        *cur = cur.saturating_add(cost as u32);
        *state = WindowState { last: now, counts };
        return Verdict {
            allowed: true,
            remaining: (n - total - cost) as u32,
            retry_after: 0,
            reset: g.window,
        };
    }
    let quiet_at = (state.last + g.window).saturating_sub(now);
    let retry_after = if cost > n {
        g.window // never fits; try again in a window, when it will not fit either
    } else {
        // the oldest slot leaves first: when slot k + j starts, slot k + j − RING
        // (the j-th oldest) has left
        let mut left = total;
        let mut at = quiet_at;
        for j in 1..=RING as u64 {
            left -= u64::from(counts[((k + j) % RING as u64) as usize]);
            if left + cost <= n {
                at = at.min((k + j).saturating_mul(g.slot).saturating_sub(now));
                break;
            }
        }
        at
    };
    Verdict {
        allowed: false,
        remaining: 0,
        retry_after,
        reset: quiet_at,
    }
}

impl Verdict {
    /// The public decision, from a verdict counted in the unit of `d`
    /// (`Duration::from_nanos` in memory, `Duration::from_micros` in Redis).
    pub(crate) fn decision(self, limit: &Limit, d: fn(u64) -> Duration) -> Decision {
        if self.allowed {
            Decision::allowed(limit, self.remaining, d(self.reset))
        } else {
            Decision::refused(limit, d(self.retry_after), d(self.reset))
        }
    }
}

/// Sliding-window counters for many keys, in memory. A key quiet for a whole
/// window is indistinguishable from a new one and is evicted (at most once per
/// period, by whichever request notices first).
#[derive(Debug)]
pub(crate) struct SlidingWindowStore {
    map: DashMap<RateKey, WindowState>,
    geometry: Geometry,
    last_sweep: AtomicU64,
}

impl SlidingWindowStore {
    pub(crate) fn new(limit: &Limit) -> Self {
        Self {
            map: DashMap::new(),
            geometry: Geometry::nanos(limit),
            last_sweep: AtomicU64::new(0),
        }
    }

    /// Decides for `key`, reading the time (nanoseconds) with `now` while the
    /// key is locked, so that concurrent requests of one key are counted in
    /// the order of their times.
    pub(crate) fn check(
        &self,
        key: &RateKey,
        limit: &Limit,
        cost: u32,
        now: impl FnOnce() -> u64,
    ) -> Decision {
        let g = self.geometry;
        let n = limit.count();
        let (verdict, now) = match self.map.get_mut(key) {
            Some(mut state) => {
                let now = now();
                (check(&mut state, n, g, now, cost), now)
            }
            None => {
                let mut state = self.map.entry(key.clone()).or_default();
                let now = now();
                (check(&mut state, n, g, now, cost), now)
            }
        };
        self.maybe_sweep(now);
        verdict.decision(limit, Duration::from_nanos)
    }

    fn maybe_sweep(&self, now: u64) {
        let g = self.geometry;
        let last = self.last_sweep.load(Ordering::Relaxed);
        if now.saturating_sub(last) < g.window
            || self
                .last_sweep
                .compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        self.map.retain(|_, s| !s.is_idle(g, now));
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

    const MS: u64 = 1_000_000;

    fn limit(s: &str) -> Limit {
        s.parse().unwrap()
    }

    #[test]
    fn nth_passes_n_plus_first_is_refused_and_the_window_slides() {
        // 4 per 10 s: nine slots of 1_111_111_112 ns
        let g = Geometry::new(10_000 * MS);
        assert_eq!(g.slot, 1_111_111_112);
        let mut st = WindowState::default();
        for (i, at) in [500, 500, 5_000, 5_000].into_iter().enumerate() {
            let v = check(&mut st, 4, g, at * MS, 1);
            assert!(v.allowed, "call {i}");
            assert_eq!(v.remaining, 3 - i as u32);
            assert_eq!(v.reset, 10_000 * MS);
        }
        let v = check(&mut st, 4, g, 6_000 * MS, 1);
        assert!(!v.allowed);
        // the two at 0.5 s sit in slot 0, which leaves the window when slot 10
        // starts (10 × 1.111… s): conservative by less than one slot against
        // the 10.5 s of a per-request log
        let slot_10 = 10 * g.slot;
        assert_eq!(v.retry_after, slot_10 - 6_000 * MS);
        assert_eq!(
            v.reset,
            9_000 * MS,
            "whole again 10 s after the last admission"
        );
        assert!(
            !check(&mut st, 4, g, slot_10 - 1, 1).allowed,
            "a hair too early"
        );
        assert!(check(&mut st, 4, g, slot_10, 1).allowed);
        assert!(check(&mut st, 4, g, slot_10, 1).allowed);
        let v = check(&mut st, 4, g, slot_10, 1);
        assert!(!v.allowed);
        // the two at 5 s leave with slot 4, at the start of slot 14
        assert_eq!(v.retry_after, 14 * g.slot - slot_10);
        // a whole window after the last admission, the whole limit is back at once
        let v = check(&mut st, 4, g, slot_10 + 10_000 * MS, 4);
        assert!(v.allowed);
        assert_eq!(v.remaining, 0);
        assert!(!check(&mut st, 4, g, slot_10 + 10_000 * MS, 1).allowed);
    }

    #[test]
    fn the_classic_edge_burst_is_refused() {
        // N at the very end of one aligned window, then N at the start of the
        // next: the weighted two-window counter admitted 2N within 2 ms
        let g = Geometry::new(1_000 * MS);
        let mut st = WindowState::default();
        for _ in 0..5 {
            assert!(check(&mut st, 5, g, 999 * MS, 1).allowed);
        }
        let v = check(&mut st, 5, g, 1_001 * MS, 1);
        assert!(!v.allowed);
        assert_eq!(v.retry_after, 998 * MS);
    }

    #[test]
    fn a_cost_above_the_limit_never_fits() {
        let mut st = WindowState::default();
        let v = check(&mut st, 2, Geometry::new(1_000 * MS), 0, 3);
        assert!(!v.allowed);
        assert_eq!(v.retry_after, 1_000 * MS);
    }

    #[test]
    fn a_clock_stepping_back_frees_nothing() {
        let g = Geometry::new(1_000 * MS);
        let mut st = WindowState::default();
        assert!(check(&mut st, 1, g, 5_000 * MS, 1).allowed);
        assert!(!check(&mut st, 1, g, 4_500 * MS, 1).allowed);
        assert!(!check(&mut st, 1, g, 5_999 * MS, 1).allowed);
        assert!(check(&mut st, 1, g, 6_000 * MS, 1).allowed);
    }

    #[test]
    fn idle_keys_are_evicted() {
        let l = limit("1/s");
        let store = SlidingWindowStore::new(&l);
        for i in 0..100u8 {
            store.check(&RateKey::Ip([10, 0, 0, i].into()), &l, 1, || 1_500 * MS);
        }
        assert_eq!(store.len(), 100);
        store.check(&RateKey::Global, &l, 1, || 2_499 * MS);
        assert_eq!(store.len(), 101, "not yet idle for a whole window");
        store.check(&RateKey::Global, &l, 1, || 3_500 * MS);
        assert_eq!(store.len(), 1);
    }

    /// Gaps between requests that hit window and slot edges often: 0 (bursts),
    /// a nanosecond, one slot ± 1, one window ± 1, or anything up to two windows.
    fn gap(kind: u8, x: u64, g: Geometry) -> u64 {
        match kind {
            0 => 0,
            1 => 1,
            2 => g.slot - 1,
            3 => g.slot,
            4 => g.window - 1,
            5 => g.window,
            6 => g.window + 1,
            _ => x % (2 * g.window),
        }
    }

    proptest! {
        /// Whatever the arrival times and costs, no interval of one window
        /// (`(t − W, t]`, hence also `[a, a + W)`) holds more than the limit; a
        /// refusal's `retry_after` is exact (the request fits then, and not a
        /// nanosecond before, if nobody else comes); and after a window with no
        /// admission the whole limit is available again.
        #[test]
        fn never_admits_more_than_the_limit_in_any_window(
            n in 1u32..20,
            window in 1u64..5_000_000_000,
            steps in proptest::collection::vec((0u8..12, any::<u64>(), 1u32..4), 1..300),
        ) {
            let g = Geometry::new(window);
            let mut st = WindowState::default();
            let mut t = 0u64;
            let mut admitted: Vec<(u64, u32)> = Vec::new();
            for (kind, x, cost) in steps {
                t += gap(kind, x, g);
                let before = st;
                let v = check(&mut st, n, g, t, cost);
                if v.allowed {
                    admitted.push((t, cost));
                    let in_window: u32 = admitted.iter()
                        .filter(|(at, _)| *at + window > t)
                        .map(|(_, c)| c).sum();
                    prop_assert!(in_window <= n, "{in_window} in (t - {window}, {t}] for {n}");
                } else if cost <= n {
                    prop_assert_eq!(st, before, "a refusal changes nothing");
                    prop_assert!(v.retry_after > 0);
                    prop_assert!(check(&mut st.clone(), n, g, t + v.retry_after, cost).allowed,
                        "not admitted after retry_after {}", v.retry_after);
                    prop_assert!(!check(&mut st.clone(), n, g, t + v.retry_after - 1, cost).allowed,
                        "admitted before retry_after {}", v.retry_after);
                }
            }
            // liveness: a window after the last admission, the whole limit fits at once
            let last = admitted.last().map_or(0, |(at, _)| *at);
            let v = check(&mut st, n, g, last + window, n);
            prop_assert!(v.allowed);
            prop_assert_eq!(v.remaining, 0);
        }
    }
}
