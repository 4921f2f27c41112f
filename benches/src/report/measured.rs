//! What a run measured: each target's rounds ([`Row`], [`Measurement`]),
//! the idle test ([`IdleReport`]), the full stack's paired runs
//! ([`PairedRun`]) and the JWT bench's figures ([`JwtFigures`]).

use std::collections::BTreeMap;

use crate::{
    client::Transport,
    load::LoadResult,
    targets::{ObservedCounts, Target},
};

/// One target, one transport, one round.
#[derive(Debug, Clone)]
pub struct Measurement {
    /// The load result.
    pub load: LoadResult,
    /// Peak PSS of the target's process tree over the round, bytes.
    pub peak_pss: u64,
    /// Peak summed RSS of the tree over the round, bytes.
    pub peak_rss: u64,
    /// CPU seconds of the tree during the measured window.
    pub cpu_seconds: f64,
    /// Requests/s of this round's baseline.
    pub baseline_rps: Option<f64>,
    /// Which round (0-based).
    pub round: usize,
    /// The observed target's exports and audit records over the whole run
    /// (warm-up included); `None` for the other targets.
    pub observed: Option<ObservedCounts>,
}

/// Everything measured for one (target, transport).
#[derive(Debug, Clone, Default)]
pub struct Row {
    /// Each round's measurement.
    pub rounds: Vec<Measurement>,
    /// Why a round could not be measured (the last reason).
    pub failure: Option<String>,
}

impl Row {
    /// Mean requests/s over the rounds.
    pub fn rps(&self) -> Option<f64> {
        mean(self.rounds.iter().map(|m| m.load.rps()))
    }

    /// Mean over rounds of (this round's rps / this round's baseline rps).
    pub fn ratio(&self) -> Option<f64> {
        mean(self.rounds.iter().filter_map(|m| {
            m.baseline_rps
                .filter(|b| *b > 0.0)
                .map(|b| m.load.rps() / b)
        }))
    }

    /// All rounds' results merged (latencies over every round).
    pub fn merged(&self) -> Option<LoadResult> {
        let mut it = self.rounds.iter();
        let mut total = it.next()?.load.clone();
        for m in it {
            total.merge(&m.load);
        }
        Some(total)
    }

    /// p99 over every round, µs.
    pub fn p99_us(&self) -> Option<u64> {
        self.merged().map(|m| m.latency_us.value_at_quantile(0.99))
    }

    /// Highest peak RSS of any round, bytes.
    pub fn peak_rss(&self) -> Option<u64> {
        self.rounds.iter().map(|m| m.peak_rss).max()
    }

    /// The observed target's exports and audit records, summed over the
    /// rounds (`None` for the other targets).
    pub fn observed(&self) -> Option<ObservedCounts> {
        self.rounds
            .iter()
            .filter_map(|m| m.observed)
            .reduce(|a, b| ObservedCounts {
                exported: crate::otlp_sink::Received {
                    exports: a.exported.exports + b.exported.exports,
                    bytes: a.exported.bytes + b.exported.bytes,
                },
                audit_records: a.audit_records + b.audit_records,
            })
    }

    /// Highest peak PSS of any round, bytes.
    pub fn peak_pss(&self) -> Option<u64> {
        self.rounds.iter().map(|m| m.peak_pss).max()
    }

    /// Mean CPU seconds per round.
    pub fn cpu_seconds(&self) -> Option<f64> {
        mean(self.rounds.iter().map(|m| m.cpu_seconds))
    }
}

pub(super) fn mean(values: impl Iterator<Item = f64>) -> Option<f64> {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    (n > 0).then(|| sum / n as f64)
}

/// Result of the idle mode.
#[derive(Debug, Clone)]
pub struct IdleReport {
    /// What held the sessions.
    pub target: String,
    /// Transport of the streams.
    pub transport: Transport,
    /// Streams asked for.
    pub requested: usize,
    /// Streams open when memory was read.
    pub open: usize,
    /// Streams that failed to open.
    pub errors: u64,
    /// First failure.
    pub first_error: Option<String>,
    /// PSS of the tree before opening any stream, bytes.
    pub pss_before: u64,
    /// PSS of the tree with the streams open (peak), bytes.
    pub pss_open: u64,
    /// Summed RSS of the tree with the streams open (peak), bytes.
    pub rss_open: u64,
}

/// The full stack and the no-layer transport in pairs of short runs back to
/// back: saturated (throughput) and paced at one fixed rate (latency).
#[derive(Debug, Clone, Default)]
pub struct PairedRun {
    /// Requests/s offered by all clients together in the paced runs.
    pub rate: f64,
    /// Measured seconds of each run.
    pub seconds: f64,
    /// Each target's saturated runs; a run's `round` is its pair.
    pub saturated: BTreeMap<Target, Row>,
    /// Each target's paced runs.
    pub paced: BTreeMap<Target, Row>,
}

impl PairedRun {
    /// Full-stack requests/s over no-layer requests/s, pair by pair.
    pub fn ratios(&self) -> Vec<f64> {
        match (
            self.saturated.get(&Target::FullStack),
            self.saturated.get(&Target::Bastion),
        ) {
            (Some(full), Some(bare)) => round_ratios(full, bare).collect(),
            _ => Vec::new(),
        }
    }

    /// The median of [`ratios`](Self::ratios).
    pub fn median_ratio(&self) -> Option<f64> {
        median(self.ratios())
    }

    /// `a`'s saturated requests/s over `b`'s, pair by pair (empty when
    /// either did not run).
    fn pair_ratios(&self, a: Target, b: Target) -> Vec<f64> {
        match (self.saturated.get(&a), self.saturated.get(&b)) {
            (Some(a), Some(b)) => round_ratios(a, b).collect(),
            _ => Vec::new(),
        }
    }

    /// `a`'s p99 minus `b`'s at the fixed rate, ms.
    fn paced_p99_delta_ms(&self, a: Target, b: Target) -> Option<f64> {
        let a = self.paced.get(&a)?.p99_us()?;
        let b = self.paced.get(&b)?.p99_us()?;
        Some((a as f64 - b as f64) / 1000.0)
    }

    /// The full stack with mcp-bastion's own OAuth tokens over the same
    /// stack with JWKS-verified JWTs, requests/s pair by pair (empty when
    /// the OAuth case did not run).
    pub fn oauth_ratios(&self) -> Vec<f64> {
        self.pair_ratios(Target::FullStackOAuth, Target::FullStack)
    }

    /// The full stack with the audit log and OTLP export on over the same
    /// stack without them, requests/s pair by pair (empty when the observed
    /// case did not run).
    pub fn observed_ratios(&self) -> Vec<f64> {
        self.pair_ratios(Target::FullStackObserved, Target::FullStack)
    }

    /// The median of [`observed_ratios`](Self::observed_ratios).
    pub fn median_observed_ratio(&self) -> Option<f64> {
        median(self.observed_ratios())
    }

    /// The observed full stack's p99 minus the full stack's at the fixed
    /// rate, ms.
    pub fn observed_p99_delta_ms(&self) -> Option<f64> {
        self.paced_p99_delta_ms(Target::FullStackObserved, Target::FullStack)
    }

    /// The median of [`oauth_ratios`](Self::oauth_ratios).
    pub fn median_oauth_ratio(&self) -> Option<f64> {
        median(self.oauth_ratios())
    }

    /// The OAuth-token full stack's p99 minus the JWT full stack's at the
    /// fixed rate, ms.
    pub fn oauth_p99_delta_ms(&self) -> Option<f64> {
        self.paced_p99_delta_ms(Target::FullStackOAuth, Target::FullStack)
    }

    /// What the full stack adds to the no-layer transport's p99 at the fixed
    /// rate, ms.
    pub fn p99_added_ms(&self) -> Option<f64> {
        let full = self.paced.get(&Target::FullStack)?.p99_us()?;
        let bare = self.paced.get(&Target::Bastion)?.p99_us()?;
        Some((full as f64 - bare as f64) / 1000.0)
    }

    /// The lowest and highest p99 of the no-layer transport's paced runs,
    /// ms: how far the same target's p99 moves from run to run here.
    pub fn p99_spread_ms(&self) -> Option<(f64, f64)> {
        let row = self.paced.get(&Target::Bastion)?;
        let p99s = row
            .rounds
            .iter()
            .map(|m| m.load.latency_us.value_at_quantile(0.99) as f64 / 1000.0);
        p99s.fold(None, |acc, v| match acc {
            None => Some((v, v)),
            Some((lo, hi)) => Some((f64::min(lo, v), f64::max(hi, v))),
        })
    }
}

fn median(mut values: Vec<f64>) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(values[n / 2]),
        _ => Some((values[n / 2 - 1] + values[n / 2]) / 2.0),
    }
}

/// What `cargo bench -p benches --bench jwt` measured call by call,
/// alternately (`target/criterion/jwt/paired.json`).
#[derive(Debug, Clone, Copy, serde::Deserialize)]
pub struct JwtFigures {
    /// Median `jsonwebtoken::decode` with the key in hand, ns.
    pub raw_ns: u64,
    /// Median `JwtAuthenticator::verify` through a warm `JwksCache`, the
    /// signature checked every time (`no_verified_cache`), ns.
    pub cached_ns: u64,
    /// Median of the default `verify`, which reuses a verified token, ns.
    pub reused_ns: u64,
    /// `cached_ns / raw_ns`.
    pub ratio: f64,
}

impl JwtFigures {
    /// Reads the figures the bench wrote under `criterion_dir`.
    pub fn read(criterion_dir: &std::path::Path) -> Option<Self> {
        let text = std::fs::read_to_string(criterion_dir.join("jwt").join("paired.json")).ok()?;
        serde_json::from_str(&text).ok()
    }
}

/// `a`'s requests/s over `b`'s, round by round (rounds both have).
pub(super) fn round_ratios<'r>(a: &'r Row, b: &'r Row) -> impl Iterator<Item = f64> + 'r {
    a.rounds.iter().filter_map(|x| {
        let y = b.rounds.iter().find(|y| y.round == x.round)?;
        (y.load.rps() > 0.0).then(|| x.load.rps() / y.load.rps())
    })
}

pub(super) fn per_round_ratio(a: &Row, b: &Row) -> Option<f64> {
    mean(round_ratios(a, b))
}
