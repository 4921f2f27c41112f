//! The load harness (issue 8): `cargo run -p benches --release -- all`.
//!
//! ```text
//! benches <all|idle|TARGET[,TARGET…]> [--duration S] [--clients N] [--rounds R]
//!         [--transport streamable|sse|both] [--idle-sessions N] [--quick]
//! ```
//!
//! Builds the binaries it runs, installs the peers into `target/bench-peers/`,
//! measures every target alternately (round 1: A B C …, round 2: A B C …),
//! prints the table, and with `all` rewrites the generated part of
//! `docs/benchmarks.md` and `docs/benchmarks.svg`.

use std::{
    collections::BTreeMap,
    process::{Command, ExitCode},
    time::Duration,
};

use benches::{
    build,
    client::Transport,
    load::{self, LoadSpec},
    peers::{Peer, PeerInstalls},
    process_tree::{self, PeakSampler},
    report::{IdleReport, JwtFigures, Measurement, PairedRun, Report, Row},
    targets::{ObservedCounts, Running, Target, Tools},
};
use clap::{Parser, ValueEnum};
use tests::binaries::{self, CargoOutput};

/// Load benchmarks of mcp-bastion against rmcp and the peer proxies.
#[derive(Debug, Parser)]
#[command(name = "benches")]
struct Cli {
    /// `all`, `idle`, or targets separated by commas: baseline,
    /// bastion-inproc, bastion-inproc-no-events, full-stack,
    /// full-stack-oauth, full-stack-observed, rmcp,
    /// bastion-per-session, bastion-shared, supergateway, mcp-proxy-npm,
    /// mcp-proxy-auth, mcp-proxy-py (the baseline always runs).
    target: String,
    /// Measured seconds per target per round.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds of load before measuring (sessions open, caches warm).
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Concurrent clients.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Rounds (each round runs every target once).
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// Transport(s) to load.
    #[arg(long, value_enum, default_value_t = TransportArg::Both)]
    transport: TransportArg,
    /// Idle streams held open on `mcp-bastion` (target 7).
    #[arg(long, default_value_t = 10_000)]
    idle_sessions: usize,
    /// A short run to check that everything works: 2 s, 1 round, 8 clients,
    /// 500 idle streams.
    #[arg(long)]
    quick: bool,
    /// Write docs/benchmarks.md and docs/benchmarks.svg even for one target
    /// (default: only for `all`).
    #[arg(long)]
    write: bool,
    /// Never write the docs.
    #[arg(long, conflicts_with = "write")]
    no_write: bool,
    /// Requests/s offered in the fixed-rate latency runs (default: a
    /// quarter of the no-layer transport's measured throughput).
    #[arg(long)]
    paced_rate: Option<f64>,
    /// A note printed with the machine (e.g. "other builds were running").
    #[arg(long)]
    note: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum TransportArg {
    Streamable,
    Sse,
    Both,
}

impl TransportArg {
    fn list(self) -> Vec<Transport> {
        match self {
            Self::Streamable => vec![Transport::Streamable],
            Self::Sse => vec![Transport::Sse],
            Self::Both => vec![Transport::Streamable, Transport::Sse],
        }
    }
}

/// Runs the JWT criterion bench (`benches/benches/jwt.rs`) and reads the
/// figures it writes; `None` (with the reason on stderr) when it cannot.
fn jwt_bench(release: bool) -> Option<JwtFigures> {
    if !release {
        eprintln!("bench: jwt: skipped in a debug build");
        return None;
    }
    let cmd = binaries::cargo(&["bench", "-p", "benches", "--bench", "jwt"]);
    if let Err(e) = binaries::run_cargo(cmd, CargoOutput::Shown) {
        eprintln!("bench: jwt: {e}");
        return None;
    }
    let figures = JwtFigures::read(&binaries::target_dir().join("criterion"));
    if figures.is_none() {
        eprintln!("bench: jwt: no target/criterion/jwt/paired.json after the bench");
    }
    figures
}

/// Raises the open-file limit to its hard limit (10,000 streams need 10,000
/// sockets here and as many in the server, which inherits the limit).
fn raise_nofile() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .trim()
        .to_owned()
}

fn command_output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program)
        .args(args)
        .current_dir(binaries::workspace_dir())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn machine_context() -> Vec<(String, String)> {
    let cpuinfo = read_trimmed("/proc/cpuinfo");
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_else(|| "unknown".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mut commit = command_output("git", &["rev-parse", "--short", "HEAD"])
        .unwrap_or_else(|| "unknown".into());
    if command_output("git", &["status", "--porcelain", "--untracked-files=no"])
        .is_some_and(|s| !s.is_empty())
    {
        commit.push_str(" (with uncommitted changes)");
    }
    let date = command_output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]).unwrap_or_default();
    let load = read_trimmed("/proc/loadavg");
    let load = load
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ");
    vec![
        ("Date".into(), date),
        ("Commit".into(), format!("`{commit}`")),
        ("CPU".into(), format!("{cpu}, {cores} cores available")),
        (
            "Kernel".into(),
            format!("Linux {}", read_trimmed("/proc/sys/kernel/osrelease")),
        ),
        (
            "Load average (1, 5, 15 min) when the run started".into(),
            load,
        ),
    ]
}

/// Starts `target`, loads it, stops it.
fn measure(
    rt: &tokio::runtime::Runtime,
    cli: &Cli,
    tools: &Tools,
    target: Target,
    transport: Transport,
    rate: Option<f64>,
    seconds: f64,
) -> Result<Measured, String> {
    let mut running = Running::start(target, transport, tools)?;
    let pid = running.pid();
    let sampler = PeakSampler::start(pid);
    let spec = LoadSpec {
        endpoint: running.endpoint(target, transport),
        clients: cli.clients,
        warmup: Duration::from_secs_f64(cli.warmup),
        duration: Duration::from_secs_f64(seconds),
        timeout: Duration::from_secs(10),
        rate,
    };
    let (result, cpu) = rt.block_on(async {
        let load = tokio::spawn({
            let spec = spec.clone();
            async move { load::run(&spec).await }
        });
        tokio::time::sleep(spec.warmup).await;
        let before = process_tree::usage(pid).cpu_seconds;
        let result = load.await.map_err(|e| e.to_string());
        let after = process_tree::usage(pid).cpu_seconds;
        (result, after - before)
    });
    let peak = sampler.stop();
    running.stop();
    let observed = running.observed();
    if let Some(o) = observed {
        eprint!(
            "[OTLP sink: {} exports, {} bytes; {} audit records] ",
            o.exported.exports, o.exported.bytes, o.audit_records
        );
    }
    Ok((result?, peak, cpu, observed))
}

/// One run: the load, the peak memory, the CPU seconds, and what the
/// observed target's observers got.
type Measured = (
    benches::load::LoadResult,
    process_tree::PeakMemory,
    f64,
    Option<ObservedCounts>,
);

/// Files one measurement in `row` as `round` and returns it; a target that
/// could not be measured is printed and recorded as the row's failure.
fn file(
    row: &mut Row,
    outcome: Result<Measured, String>,
    round: usize,
    baseline_rps: Option<f64>,
) -> Option<&mut Measurement> {
    match outcome {
        Ok((load, peak, cpu_seconds, observed)) => {
            row.rounds.push(Measurement {
                load,
                peak_rss: peak.rss_bytes,
                peak_pss: peak.pss_bytes,
                cpu_seconds,
                baseline_rps,
                round,
                observed,
            });
            row.rounds.last_mut()
        }
        Err(e) => {
            eprintln!("failed: {e}");
            row.failure = Some(format!("failed to start: {e}"));
            None
        }
    }
}

/// The share of the no-layer transport's saturated throughput that the
/// paced latency runs offer: well below the capacity of both targets, so
/// latency is the requests' own cost, not queueing.
const PACED_SHARE: f64 = 0.25;

/// Pairs of short runs of the no-layer transport and the full stack (and
/// the full stack with mcp-bastion's own OAuth tokens, and with the audit
/// log and OTLP export on, when measured).
const PAIRS: usize = 5;

/// Measured seconds of each run of a pair.
const PAIR_SECONDS: f64 = 3.0;

/// The full stack against the no-layer transport, measured in [`PAIRS`]
/// pairs of short runs back to back (which goes first alternates), for each
/// transport both were measured on: saturated, for the throughput ratio of
/// each pair, then paced at one fixed rate ([`PACED_SHARE`] of the no-layer
/// throughput the rounds measured), for latency. On a machine whose speed
/// drifts, two runs seconds apart see the same machine; the median of
/// several pairs is not moved by one disturbed run.
fn paired_runs(
    rt: &tokio::runtime::Runtime,
    cli: &Cli,
    tools: &Tools,
    rows: &BTreeMap<(Target, Transport), Row>,
) -> BTreeMap<Transport, PairedRun> {
    let mut runs = BTreeMap::new();
    for tr in cli.transport.list() {
        let measured = |t: Target| rows.get(&(t, tr)).and_then(Row::rps);
        let (Some(bare), Some(_)) = (measured(Target::Bastion), measured(Target::FullStack)) else {
            continue;
        };
        // A round figure, so runs can be compared.
        let rate = cli
            .paced_rate
            .unwrap_or_else(|| ((bare * PACED_SHARE / 100.0).round() * 100.0).max(100.0));
        let mut run = PairedRun {
            rate,
            seconds: PAIR_SECONDS,
            ..PairedRun::default()
        };
        for (kind, offered) in [("saturated", None), ("paced", Some(rate))] {
            for pair in 0..PAIRS {
                // the OAuth-token and the observed full stacks, when
                // measured, run in each pair too: their ratios to the JWT
                // full stack are read from runs seconds apart
                let mut order = vec![Target::Bastion, Target::FullStack];
                for extra in [Target::FullStackOAuth, Target::FullStackObserved] {
                    if measured(extra).is_some() {
                        order.push(extra);
                    }
                }
                if pair % 2 == 1 {
                    order.reverse();
                }
                for t in order {
                    eprint!(
                        "bench: pair {}/{PAIRS}, {kind}: {} ({}) … ",
                        pair + 1,
                        t.name(),
                        tr.as_str()
                    );
                    let rows = if offered.is_some() {
                        &mut run.paced
                    } else {
                        &mut run.saturated
                    };
                    let row = rows.entry(t).or_default();
                    let outcome = measure(rt, cli, tools, t, tr, offered, PAIR_SECONDS);
                    if let Some(m) = file(row, outcome, pair, None) {
                        eprintln!(
                            "{:.0} req/s, p50 {:.3} ms, p99 {:.3} ms, {} errors",
                            m.load.rps(),
                            m.load.latency_us.value_at_quantile(0.5) as f64 / 1000.0,
                            m.load.latency_us.value_at_quantile(0.99) as f64 / 1000.0,
                            m.load.errors
                        );
                    }
                }
            }
        }
        runs.insert(tr, run);
    }
    runs
}

fn idle(rt: &tokio::runtime::Runtime, tools: &Tools, n: usize) -> Result<IdleReport, String> {
    let target = Target::ProxyShared;
    let transport = Transport::Sse;
    let mut running = Running::start(target, transport, tools)?;
    let pid = running.pid();
    std::thread::sleep(Duration::from_secs(1));
    let pss_before = process_tree::usage(pid).pss_bytes;
    let sampler = PeakSampler::start(pid);
    let ep = running.endpoint(target, transport);
    eprintln!("bench: idle: opening {n} SSE streams on {}", target.name());
    let (open, errors, first_error) = rt.block_on(async {
        let held = load::hold_idle(&ep, n, 64).await;
        // let the server settle with every stream open
        tokio::time::sleep(Duration::from_secs(3)).await;
        let open = held.len();
        let out = (open, held.errors, held.first_error.clone());
        drop(held);
        out
    });
    let peak = sampler.stop();
    running.stop();
    Ok(IdleReport {
        target: "`mcp-bastion --session-mode shared`".into(),
        transport,
        requested: n,
        open,
        errors,
        first_error,
        pss_before,
        pss_open: peak.pss_bytes,
        rss_open: peak.rss_bytes,
    })
}

/// `arg` as a POSIX shell word.
fn shell_quote(arg: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./=:,@+".contains(c);
    if !arg.is_empty() && arg.chars().all(plain) {
        arg.to_owned()
    } else {
        format!("'{}'", arg.replace('\'', "'\\''"))
    }
}

fn main() -> ExitCode {
    let mut cli = Cli::parse();
    if cli.quick {
        cli.duration = 2.0;
        cli.warmup = 1.0;
        cli.rounds = 1;
        cli.clients = 8;
        cli.idle_sessions = 500;
    }
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> Result<(), String> {
    let release = binaries::release_build();
    if !release {
        eprintln!("bench: warning: a debug build measures nothing useful; use --release");
    }
    let profile = binaries::profile_dir();
    let target_dir = binaries::target_dir();
    let echo_server = build::build_echo_server(&target_dir)?;
    build::build_binaries()?;
    raise_nofile();

    let (targets, run_idle) = match cli.target.as_str() {
        "all" => (Target::ALL.to_vec(), true),
        "idle" => (Vec::new(), true),
        names => {
            let mut v = vec![Target::Baseline];
            for name in names.split(',') {
                let t =
                    Target::from_name(name).ok_or_else(|| format!("unknown target `{name}`"))?;
                if !v.contains(&t) {
                    v.push(t);
                }
            }
            (v, false)
        }
    };
    let peers: Vec<Peer> = targets
        .iter()
        .filter_map(|t| match t {
            Target::Peer(p) => Some(*p),
            _ => None,
        })
        .collect();
    let mut context = machine_context();
    context.push(echo_server.context());
    let tools = Tools {
        bench_server: profile.join("bench-server"),
        echo_server: echo_server.path,
        bastion: profile.join("mcp-bastion"),
        peers: PeerInstalls::ensure(&target_dir.join("bench-peers"), &peers),
        log_dir: target_dir.join("bench-logs"),
    };
    let rt = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    let transports = cli.transport.list();

    let mut rows: BTreeMap<(Target, Transport), Row> = BTreeMap::new();
    let mut skipped: BTreeMap<(Target, Transport), String> = BTreeMap::new();
    for round in 0..cli.rounds {
        let mut baseline = None;
        let mut plan = Vec::new();
        if targets.contains(&Target::Baseline) {
            plan.push((Target::Baseline, Transport::Streamable));
        }
        for &tr in &transports {
            for &t in targets.iter().filter(|t| **t != Target::Baseline) {
                if !t.transports().contains(&tr) {
                    if matches!(t, Target::Peer(_)) {
                        skipped.insert((t, tr), format!("serves no {} endpoint", tr.as_str()));
                    }
                    continue;
                }
                if let Some(why) = t.unavailable(&tools) {
                    skipped.insert((t, tr), why);
                    continue;
                }
                plan.push((t, tr));
            }
        }
        for (t, tr) in plan {
            eprint!(
                "bench: round {}/{}: {} ({}) … ",
                round + 1,
                cli.rounds,
                t.name(),
                tr.as_str()
            );
            let row = rows.entry((t, tr)).or_default();
            let outcome = measure(&rt, cli, &tools, t, tr, None, cli.duration);
            if let Some(m) = file(row, outcome, round, baseline) {
                if t == Target::Baseline {
                    baseline = Some(m.load.rps());
                    m.baseline_rps = baseline;
                }
                eprintln!(
                    "{:.0} req/s, {} errors, p99 {:.2} ms, PSS {:.1} MB (summed RSS {:.1}), {:.1} CPU s",
                    m.load.rps(),
                    m.load.errors,
                    m.load.latency_us.value_at_quantile(0.99) as f64 / 1000.0,
                    m.peak_pss as f64 / 1_048_576.0,
                    m.peak_rss as f64 / 1_048_576.0,
                    m.cpu_seconds
                );
                if let Some(e) = &m.load.first_error {
                    eprintln!("bench:   first failure: {e}");
                }
            }
        }
    }

    let paired = paired_runs(&rt, cli, &tools, &rows);

    let idle_report = if run_idle {
        match idle(&rt, &tools, cli.idle_sessions) {
            Ok(r) => {
                eprintln!(
                    "bench: idle: {} of {} streams open, PSS {:.1} MB",
                    r.open,
                    r.requested,
                    r.pss_open as f64 / 1_048_576.0
                );
                Some(r)
            }
            Err(e) => {
                eprintln!("bench: idle failed: {e}");
                None
            }
        }
    } else {
        None
    };

    let jwt = if cli.target == "all" {
        jwt_bench(release)
    } else {
        None
    };

    let args: Vec<String> = std::env::args().skip(1).map(|a| shell_quote(&a)).collect();
    let report = Report {
        command: format!("cargo run -p benches --release -- {}", args.join(" ")),
        context,
        clients: cli.clients,
        rounds: cli.rounds,
        duration_s: cli.duration,
        rows,
        skipped,
        idle: idle_report,
        paired,
        jwt,
        peers: tools.peers.clone(),
        note: cli.note.clone(),
    };
    println!("{}", report.table());
    println!("{}", report.checks());
    let write = !cli.no_write && (cli.write || cli.target == "all");
    if write {
        let docs = binaries::workspace_dir().join("docs");
        report
            .write_markdown(&docs.join("benchmarks.md"))
            .map_err(|e| format!("writing docs/benchmarks.md: {e}"))?;
        report.write_chart(&docs.join("benchmarks.svg"))?;
        eprintln!("bench: wrote docs/benchmarks.md and docs/benchmarks.svg");
    }
    Ok(())
}
