//! Turning measurements into `docs/benchmarks.md` (between two markers, so
//! the hand-written part of the page stays) and `docs/benchmarks.svg`.
//!
//! | module | what it holds |
//! |---|---|
//! | [`measured`] | what a run measured: rounds, idle test, paired runs, JWT figures |
//! | `checks` | the targets of issue 8, met or not ([`Report::checks`]) |
//! | `chart` | the SVG chart ([`Report::write_chart`]) |

mod chart;
mod checks;
pub mod measured;

use std::{collections::BTreeMap, fmt::Write as _, fs, path::Path};

pub use measured::{IdleReport, JwtFigures, Measurement, PairedRun, Row};

use crate::{client::Transport, peers::PeerInstalls, targets::Target};

/// Start of the generated part of `docs/benchmarks.md`.
pub const BEGIN: &str = "<!-- benchmarks:generated:begin (written by `cargo run -p benches --release -- all`; edits here are lost) -->";
/// End of the generated part.
pub const END: &str = "<!-- benchmarks:generated:end -->";

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
            "| # | target | transport | clients | req/s | × baseline | p50 ms | p99 ms | p99.9 ms | errors | peak PSS MB | summed RSS MB | CPU s |\n|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
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
                        row.peak_pss().map_or("–".into(), mb),
                        row.peak_rss().map_or("–".into(), mb),
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

    /// The idle section.
    fn idle_section(&self) -> String {
        let Some(idle) = &self.idle else {
            return "Not run.\n".into();
        };
        let mut s = format!(
            "{} held {} of {} {} streams open ({} failed): process tree PSS {} MB before, {} MB with the streams open",
            idle.target,
            idle.open,
            idle.requested,
            idle.transport.as_str(),
            idle.errors,
            mb(idle.pss_before),
            mb(idle.pss_open),
        );
        if idle.open > 0 {
            let per =
                idle.pss_open.saturating_sub(idle.pss_before) as f64 / idle.open as f64 / 1024.0;
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
            if let Some(median) = run.median_oauth_ratio() {
                let _ = write!(
                    s,
                    "- {}: own OAuth tokens / JWT, pair by pair: {} (median {median:.3})",
                    tr.as_str(),
                    run.oauth_ratios()
                        .iter()
                        .map(|r| format!("{r:.3}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                if let Some(d) = run.oauth_p99_delta_ms() {
                    let _ = write!(s, "; p99 difference at {:.0} req/s: {d:+.3} ms", run.rate);
                }
                s.push_str(".\n");
            }
            if let Some(median) = run.median_observed_ratio() {
                let _ = write!(
                    s,
                    "- {}: audit log and OTLP export on / off, pair by pair: {} (median {median:.3})",
                    tr.as_str(),
                    run.observed_ratios()
                        .iter()
                        .map(|r| format!("{r:.3}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                if let Some(d) = run.observed_p99_delta_ms() {
                    let _ = write!(s, "; p99 difference at {:.0} req/s: {d:+.3} ms", run.rate);
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
        s.push_str("Requests/s is the mean over rounds; `× baseline` is the mean over rounds of each round's ratio to that round's axum echo; latencies are over all rounds; peak PSS (the sum of `Pss` over the target's process tree: a page shared by several processes counts once in total) is the memory figure the targets compare, and summed RSS (the sum of `VmRSS`, which counts every shared page once per process) is shown beside it, both the highest of the rounds; CPU s is the target process tree's user+system time in one measured window (mean over rounds).\n\n");
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
        let _ = writeln!(s, "\n### Targets of issues 8 and 21\n");
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
}
