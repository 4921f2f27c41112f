//! Turning measurements into `docs/benchmarks.md` (between two markers, so
//! the hand-written part of the page stays) and `docs/benchmarks.svg`.

use std::{collections::BTreeMap, fmt::Write as _, fs, path::Path};

use plotters::prelude::*;

use crate::{client::Transport, load::LoadResult, peers::PeerInstalls, targets::Target};

/// Start of the generated part of `docs/benchmarks.md`.
pub const BEGIN: &str = "<!-- benchmarks:generated:begin (written by `cargo run -p benches --release -- all`; edits here are lost) -->";
/// End of the generated part.
pub const END: &str = "<!-- benchmarks:generated:end -->";

/// One target, one transport, one round.
#[derive(Debug, Clone)]
pub struct Measurement {
    /// The load result.
    pub load: LoadResult,
    /// Peak RSS of the target's process tree over the round, bytes.
    pub peak_rss: u64,
    /// Peak PSS of the tree over the round, bytes.
    pub peak_pss: u64,
    /// CPU seconds of the tree during the measured window.
    pub cpu_seconds: f64,
    /// Requests/s of this round's baseline.
    pub baseline_rps: Option<f64>,
    /// Which round (0-based).
    pub round: usize,
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

    /// Highest peak PSS of any round, bytes.
    pub fn peak_pss(&self) -> Option<u64> {
        self.rounds.iter().map(|m| m.peak_pss).max()
    }

    /// Mean CPU seconds per round.
    pub fn cpu_seconds(&self) -> Option<f64> {
        mean(self.rounds.iter().map(|m| m.cpu_seconds))
    }
}

fn mean(values: impl Iterator<Item = f64>) -> Option<f64> {
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
    /// Streams open when RSS was read.
    pub open: usize,
    /// Streams that failed to open.
    pub errors: u64,
    /// First failure.
    pub first_error: Option<String>,
    /// RSS of the tree before opening any stream, bytes.
    pub rss_before: u64,
    /// RSS of the tree with the streams open (peak), bytes.
    pub rss_open: u64,
    /// PSS of the tree with the streams open (peak), bytes.
    pub pss_open: u64,
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

/// A whole run.
#[derive(Debug, Clone)]
pub struct Report {
    /// The command line that produced it.
    pub command: String,
    /// Date and time (UTC), commit, machine.
    pub context: Vec<(String, String)>,
    /// Clients per target.
    pub clients: usize,
    /// Rounds.
    pub rounds: usize,
    /// Measured seconds per target per round.
    pub duration_s: f64,
    /// Rows by (target, transport).
    pub rows: BTreeMap<(Target, Transport), Row>,
    /// Targets that were not run, and why.
    pub skipped: BTreeMap<(Target, Transport), String>,
    /// Idle mode result.
    pub idle: Option<IdleReport>,
    /// The full stack against the no-layer transport in pairs, by transport.
    pub paired: BTreeMap<Transport, PairedRun>,
    /// The JWT criterion bench's paired figures, when it ran.
    pub jwt: Option<JwtFigures>,
    /// Peer versions and failures.
    pub peers: PeerInstalls,
    /// A free note (e.g. other work on the machine during the run).
    pub note: Option<String>,
}

fn ms(us: u64) -> String {
    format!("{:.2}", us as f64 / 1000.0)
}

fn mb(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / 1_048_576.0)
}

impl Report {
    fn row(&self, t: Target, tr: Transport) -> Option<&Row> {
        self.rows.get(&(t, tr)).filter(|r| !r.rounds.is_empty())
    }

    /// The markdown table of results.
    pub fn table(&self) -> String {
        let mut s = String::from(
            "| # | target | transport | clients | req/s | × baseline | p50 ms | p99 ms | p99.9 ms | errors | peak RSS MB | peak PSS MB | CPU s |\n|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        );
        let mut keys: Vec<(Target, Transport)> = self
            .rows
            .keys()
            .chain(self.skipped.keys())
            .copied()
            .collect();
        keys.sort();
        keys.dedup();
        for (t, tr) in keys {
            let label = t.label(&self.peers);
            let lead = format!("| {} | {label} | {} |", t.number(), tr.as_str());
            match (
                self.row(t, tr),
                self.rows.get(&(t, tr)),
                self.skipped.get(&(t, tr)),
            ) {
                (Some(row), _, _) => {
                    let m = row.merged();
                    let h = m.as_ref().map(|m| &m.latency_us);
                    let q = |p: f64| h.map_or("–".into(), |h| ms(h.value_at_quantile(p)));
                    let _ = writeln!(
                        s,
                        "{lead} {} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {:.1} |",
                        self.clients,
                        row.rps().unwrap_or(0.0),
                        row.ratio().map_or("–".into(), |r| format!("{r:.3}")),
                        q(0.5),
                        q(0.99),
                        q(0.999),
                        m.as_ref().map_or(0, |m| m.errors),
                        row.peak_rss().map_or("–".into(), mb),
                        row.peak_pss().map_or("–".into(), mb),
                        row.cpu_seconds().unwrap_or(0.0),
                    );
                }
                (None, row, skipped) => {
                    let why = skipped
                        .cloned()
                        .or_else(|| row.and_then(|r| r.failure.clone()))
                        .unwrap_or_else(|| "not run".into());
                    let why = why.lines().next().unwrap_or("").replace('|', "\\|");
                    let _ = writeln!(s, "{lead} {} | {why} | | | | | | | | |", self.clients);
                }
            }
        }
        s
    }

    /// The targets, met or not, with figures.
    pub fn checks(&self) -> String {
        let mut s = String::from("| target | figures | met? |\n|---|---|---|\n");
        let st = Transport::Streamable;
        // 1. full stack vs the no-layer transport
        match (
            self.row(Target::FullStack, st),
            self.row(Target::Bastion, st),
        ) {
            (Some(full), Some(bare)) => {
                let rounds = per_round_ratio(full, bare);
                let p99 = |row: &Row| row.p99_us().unwrap_or(0);
                let saturated = (p99(full) as f64 - p99(bare) as f64) / 1000.0;
                let paired = self.paired.get(&st);
                // The pairs' median when they ran: several runs seconds
                // apart, not two rounds minutes apart.
                let r = paired.and_then(PairedRun::median_ratio).or(rounds);
                // The latency the layers add is read at a fixed rate both
                // sustain; under saturation p99 is the queue of the other
                // clients' requests, a restatement of the throughput ratio.
                let paced = paired.and_then(|p| Some((p.rate, p.p99_added_ms()?)));
                let added = paced.map_or(saturated, |(_, a)| a);
                let met = r.is_some_and(|r| r >= 0.90) && added <= 0.2;
                let throughput = match (paired.map(PairedRun::ratios), rounds) {
                    (Some(ratios), Some(rounds)) if !ratios.is_empty() => format!(
                        "median of {} pairs {}× (pairs: {}; rounds: {rounds:.3}×)",
                        ratios.len(),
                        r.map_or("–".into(), |r| format!("{r:.3}")),
                        ratios
                            .iter()
                            .map(|r| format!("{r:.2}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    _ => format!("{}×", r.map_or("–".into(), |r| format!("{r:.3}"))),
                };
                let latency = match (paced, paired.and_then(PairedRun::p99_spread_ms)) {
                    (Some((rate, a)), Some((lo, hi))) => format!(
                        "p99 added {a:.3} ms at {rate:.0} req/s (the no-layer p99 alone ranged {lo:.2}–{hi:.2} ms over its runs; {saturated:.3} ms added saturated)"
                    ),
                    _ => format!("p99 added {saturated:.3} ms saturated (no paced run)"),
                };
                let _ = writeln!(
                    s,
                    "| full stack ≥ 0.90× no-layer throughput, p99 added ≤ 0.2 ms | {throughput}, {latency} | {} |",
                    yes(met)
                );
            }
            _ => {
                let _ = writeln!(
                    s,
                    "| full stack ≥ 0.90× no-layer throughput, p99 added ≤ 0.2 ms | not measured in this run | – |"
                );
            }
        }
        // 2. in-process transport vs rmcp's own service
        match (self.row(Target::Bastion, st), self.row(Target::Rmcp, st)) {
            (Some(ours), Some(rmcp)) => {
                let r = per_round_ratio(ours, rmcp);
                let _ = writeln!(
                    s,
                    "| in-process transport ≥ 1.0× rmcp's `StreamableHttpService` (Streamable HTTP) | {:.0} vs {:.0} req/s: {}× | {} |",
                    ours.rps().unwrap_or(0.0),
                    rmcp.rps().unwrap_or(0.0),
                    r.map_or("–".into(), |r| format!("{r:.3}")),
                    yes(r.is_some_and(|r| r >= 1.0))
                );
            }
            _ => {
                let _ = writeln!(
                    s,
                    "| in-process transport ≥ 1.0× rmcp's own service | not measured | – |"
                );
            }
        }
        // 3. the proxy (each session mode) vs the best peer, per transport
        for tr in [Transport::Streamable, Transport::Sse] {
            let peer = Target::ALL
                .into_iter()
                .filter(|t| matches!(t, Target::Peer(_)))
                .filter_map(|t| self.row(t, tr).map(|r| (t, r)))
                .max_by(|a, b| {
                    a.1.rps()
                        .unwrap_or(0.0)
                        .total_cmp(&b.1.rps().unwrap_or(0.0))
                });
            for ours in [Target::ProxyPerSession, Target::ProxyShared] {
                let what = format!(
                    "proxy ≥ 3× the best peer's req/s at ≤ 0.25× its peak RSS (`{}`, {})",
                    ours.name(),
                    tr.as_str()
                );
                match (self.row(ours, tr), peer) {
                    (Some(o), Some((pt, p))) => {
                        let rps = o.rps().unwrap_or(0.0) / p.rps().unwrap_or(f64::NAN);
                        let rss = o.peak_rss().unwrap_or(0) as f64
                            / p.peak_rss().unwrap_or(1).max(1) as f64;
                        let pss = o.peak_pss().unwrap_or(0) as f64
                            / p.peak_pss().unwrap_or(1).max(1) as f64;
                        let _ = writeln!(
                            s,
                            "| {what} | {:.0} req/s, RSS {} MB (PSS {}) vs best peer `{}` {:.0} req/s, RSS {} MB (PSS {}): {rps:.2}× req/s at {rss:.2}× RSS ({pss:.2}× PSS) | {} |",
                            o.rps().unwrap_or(0.0),
                            o.peak_rss().map_or("–".into(), mb),
                            o.peak_pss().map_or("–".into(), mb),
                            pt.name(),
                            p.rps().unwrap_or(0.0),
                            p.peak_rss().map_or("–".into(), mb),
                            p.peak_pss().map_or("–".into(), mb),
                            yes(rps >= 3.0 && rss <= 0.25)
                        );
                    }
                    _ => {
                        let _ = writeln!(s, "| {what} | not measured | – |");
                    }
                }
            }
        }
        // 4. idle sessions
        match &self.idle {
            Some(idle) if idle.open > 0 => {
                let _ = writeln!(
                    s,
                    "| {} idle SSE sessions ≤ 150 MB resident | {} streams open: RSS {} MB (PSS {} MB; {} MB RSS before) | {} |",
                    idle.requested,
                    idle.open,
                    mb(idle.rss_open),
                    mb(idle.pss_open),
                    mb(idle.rss_before),
                    yes(idle.open == idle.requested && idle.rss_open <= 150 * 1_048_576)
                );
            }
            _ => {
                let _ = writeln!(
                    s,
                    "| 10,000 idle SSE sessions ≤ 150 MB resident | not measured | – |"
                );
            }
        }
        // 5. JWT through the JWKS cache (criterion, `benches/benches/jwt.rs`)
        let what = "JWT verification through the JWKS cache ≤ 1.2× `jsonwebtoken`'s raw verify (criterion)";
        match self.jwt {
            Some(j) => {
                let _ = writeln!(
                    s,
                    "| {what} | RS256, medians of alternating calls: {:.1} µs through a warm `JwksCache` (signature checked) vs {:.1} µs raw: {:.3}×; a verified token reused (the default): {:.2} µs | {} |",
                    j.cached_ns as f64 / 1000.0,
                    j.raw_ns as f64 / 1000.0,
                    j.ratio,
                    j.reused_ns as f64 / 1000.0,
                    yes(j.ratio <= 1.2)
                );
            }
            None => {
                let _ = writeln!(
                    s,
                    "| {what} | not measured in this run (`cargo bench -p benches --bench jwt`) | – |"
                );
            }
        }
        s
    }

    /// The idle section.
    fn idle_section(&self) -> String {
        let Some(idle) = &self.idle else {
            return "Not run.\n".into();
        };
        let mut s = format!(
            "{} held {} of {} {} streams open ({} failed): process tree RSS {} MB before, {} MB with the streams open",
            idle.target,
            idle.open,
            idle.requested,
            idle.transport.as_str(),
            idle.errors,
            mb(idle.rss_before),
            mb(idle.rss_open),
        );
        if idle.open > 0 {
            let per =
                idle.rss_open.saturating_sub(idle.rss_before) as f64 / idle.open as f64 / 1024.0;
            let _ = write!(s, " (≈ {per:.1} KB per stream)");
        }
        s.push_str(".\n");
        if let Some(e) = &idle.first_error {
            let _ = writeln!(s, "\nFirst failure: `{}`", e.replace('`', "'"));
        }
        s
    }

    /// The paired runs' section.
    fn paired_section(&self) -> String {
        if self.paired.is_empty() {
            return "Not run (it needs the full stack and the no-layer transport in the run).\n"
                .into();
        }
        let mut s = String::from(
            "| target | transport | load | req/s (mean) | p50 ms | p99 ms | p99.9 ms | errors |\n|---|---|---|---:|---:|---:|---:|---:|\n",
        );
        for (tr, run) in &self.paired {
            for (load, rows) in [
                ("saturated".to_owned(), &run.saturated),
                (format!("{:.0} req/s offered", run.rate), &run.paced),
            ] {
                for (t, row) in rows {
                    let Some(m) = row.merged() else { continue };
                    let h = &m.latency_us;
                    let _ = writeln!(
                        s,
                        "| {} | {} | {load} | {:.0} | {:.3} | {:.3} | {:.3} | {} |",
                        t.label(&self.peers),
                        tr.as_str(),
                        row.rps().unwrap_or(0.0),
                        h.value_at_quantile(0.5) as f64 / 1000.0,
                        h.value_at_quantile(0.99) as f64 / 1000.0,
                        h.value_at_quantile(0.999) as f64 / 1000.0,
                        m.errors
                    );
                }
            }
        }
        s.push('\n');
        for (tr, run) in &self.paired {
            let ratios = run.ratios();
            if let Some(median) = run.median_ratio() {
                let _ = write!(
                    s,
                    "- {}: full stack / no layers, pair by pair: {} (median {median:.3})",
                    tr.as_str(),
                    ratios
                        .iter()
                        .map(|r| format!("{r:.3}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                if let Some(a) = run.p99_added_ms() {
                    let _ = write!(s, "; p99 added at {:.0} req/s: {a:.3} ms", run.rate);
                }
                s.push_str(".\n");
            }
        }
        s
    }

    /// The generated part of the page.
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "## Latest run\n");
        let _ = writeln!(s, "Command: `{}`\n", self.command);
        for (k, v) in &self.context {
            let _ = writeln!(s, "- {k}: {v}");
        }
        let _ = writeln!(
            s,
            "- Load: {} concurrent clients per target, {} round(s) of {:.0} s measured per target (after a warm-up), targets alternated within each round",
            self.clients, self.rounds, self.duration_s
        );
        if let Some(note) = &self.note {
            let _ = writeln!(s, "- Note: {note}");
        }
        let _ = writeln!(s, "\n### Results\n");
        s.push_str("Requests/s is the mean over rounds; `× baseline` is the mean over rounds of each round's ratio to that round's axum echo; latencies are over all rounds; peak RSS (sum of `VmRSS`, as the issue asks) and peak PSS (shared pages counted once: the fairer figure for trees with a child per session) are the highest of the rounds; CPU s is the target process tree's user+system time in one measured window (mean over rounds).\n\n");
        s.push_str(&self.table());
        s.push_str("\n![requests per second by target](benchmarks.svg)\n");
        let _ = writeln!(s, "\n### Full stack against no layers, in pairs\n");
        let _ = writeln!(
            s,
            "After the rounds, the no-layer transport and the full stack run in {} pairs of {:.0} s runs back to back (which goes first alternates), saturated and then paced: the same clients sending on a fixed schedule that offers a quarter of the no-layer transport's measured throughput, so both run below capacity and latency is what a request costs rather than the queue of a saturated server (a request delayed by a late answer counts from its scheduled time). The throughput target is read from the median pair.\n",
            self.paired.values().next().map_or(0, |r| r.ratios().len()),
            self.paired.values().next().map_or(0.0, |r| r.seconds),
        );
        s.push_str(&self.paired_section());
        let _ = writeln!(s, "\n### Idle sessions\n");
        s.push_str(&self.idle_section());
        let _ = writeln!(s, "\n### Targets of issue 8\n");
        s.push_str(&self.checks());
        let failures: Vec<String> = self
            .rows
            .iter()
            .filter_map(|((t, tr), row)| {
                let first = row
                    .merged()
                    .and_then(|m| m.first_error)
                    .or_else(|| row.failure.clone())?;
                Some(format!(
                    "- `{}` ({}): `{}`",
                    t.name(),
                    tr.as_str(),
                    first.lines().next().unwrap_or("").replace('`', "'")
                ))
            })
            .collect();
        if !failures.is_empty() {
            let _ = writeln!(s, "\n### First failure seen per target\n");
            s.push_str(
                "Failures during warm-up are shown here but not counted in the table's errors.\n\n",
            );
            s.push_str(&failures.join("\n"));
            s.push('\n');
        }
        s
    }

    /// Replaces the generated part of `path` (or appends it), keeping the rest.
    pub fn write_markdown(&self, path: &Path) -> std::io::Result<()> {
        let old = fs::read_to_string(path).unwrap_or_default();
        let generated = format!("{BEGIN}\n\n{}\n{END}", self.markdown());
        let new = match (old.find(BEGIN), old.find(END)) {
            (Some(b), Some(e)) if e > b => {
                format!("{}{generated}{}", &old[..b], &old[e + END.len()..])
            }
            _ => format!("{}\n\n{generated}\n", old.trim_end()),
        };
        fs::write(path, new)
    }

    /// Draws requests/s per measured row as horizontal bars (SVG).
    pub fn write_chart(&self, path: &Path) -> Result<(), String> {
        let bars: Vec<(String, Transport, f64, Option<u64>)> = self
            .rows
            .iter()
            .filter(|(_, r)| !r.rounds.is_empty())
            .map(|((t, tr), r)| {
                (
                    format!("{}. {} ({})", t.number(), t.name(), tr.as_str()),
                    *tr,
                    r.rps().unwrap_or(0.0),
                    r.peak_rss(),
                )
            })
            .collect();
        let (w, row_h, top, label_w) = (1000u32, 26i32, 50i32, 300i32);
        let h =
            u32::try_from(top + row_h * i32::try_from(bars.len()).unwrap_or(0) + 40).unwrap_or(400);
        let root = SVGBackend::new(path, (w, h)).into_drawing_area();
        let err = |e: DrawingAreaErrorKind<_>| e.to_string();
        root.fill(&WHITE).map_err(err)?;
        let title = format!(
            "MCP tools/call echo: requests/s, {} clients, mean of {} round(s); peak RSS after each bar",
            self.clients, self.rounds
        );
        root.draw(&Text::new(title, (10, 15), ("sans-serif", 17).into_font()))
            .map_err(err)?;
        let max = bars.iter().map(|b| b.2).fold(1.0, f64::max);
        let span = f64::from(i32::try_from(w).unwrap_or(1000) - label_w - 190);
        for (i, (label, tr, rps, rss)) in bars.iter().enumerate() {
            let y = top + row_h * i32::try_from(i).unwrap_or(0);
            let color = match tr {
                Transport::Streamable => RGBColor(52, 101, 164),
                Transport::Sse => RGBColor(204, 121, 32),
            };
            let len = (rps / max * span).round() as i32;
            root.draw(&Text::new(
                label.clone(),
                (10, y + 6),
                ("sans-serif", 13).into_font(),
            ))
            .map_err(err)?;
            root.draw(&Rectangle::new(
                [(label_w, y + 3), (label_w + len.max(1), y + row_h - 3)],
                color.filled(),
            ))
            .map_err(err)?;
            let value = format!("{rps:.0} req/s, {} MB", rss.map_or("–".into(), mb));
            root.draw(&Text::new(
                value,
                (label_w + len + 6, y + 6),
                ("sans-serif", 12).into_font(),
            ))
            .map_err(err)?;
        }
        let legend_y = top + row_h * i32::try_from(bars.len()).unwrap_or(0) + 12;
        for (j, (name, color)) in [
            ("Streamable HTTP", RGBColor(52, 101, 164)),
            ("legacy SSE", RGBColor(204, 121, 32)),
        ]
        .into_iter()
        .enumerate()
        {
            let x = label_w + 170 * i32::try_from(j).unwrap_or(0);
            root.draw(&Rectangle::new(
                [(x, legend_y), (x + 14, legend_y + 14)],
                color.filled(),
            ))
            .map_err(err)?;
            root.draw(&Text::new(
                name,
                (x + 20, legend_y + 1),
                ("sans-serif", 13).into_font(),
            ))
            .map_err(err)?;
        }
        root.present().map_err(err)?;
        Ok(())
    }
}

/// `a`'s requests/s over `b`'s, round by round (rounds both have).
fn round_ratios<'r>(a: &'r Row, b: &'r Row) -> impl Iterator<Item = f64> + 'r {
    a.rounds.iter().filter_map(|x| {
        let y = b.rounds.iter().find(|y| y.round == x.round)?;
        (y.load.rps() > 0.0).then(|| x.load.rps() / y.load.rps())
    })
}

fn per_round_ratio(a: &Row, b: &Row) -> Option<f64> {
    mean(round_ratios(a, b))
}

fn yes(met: bool) -> &'static str {
    if met { "**met**" } else { "**not met**" }
}
