//! The load loop and the idle mode.
//!
//! Load: `clients` tasks, each opens a session (and re-opens it after a
//! failure) and calls `echo` back to back. Only calls that start after the
//! warm-up and finish before the end count, in requests and in the latency
//! histogram (microseconds, 3 significant digits); failures in that window
//! count as errors.
//!
//! Paced load ([`LoadSpec::rate`]): the same clients, but each sends on a
//! fixed schedule, so the clients together offer a constant rate below the
//! target's capacity. Latency then measures what a request costs, not the
//! queue in front of a saturated server (under saturation every request
//! waits for the other clients' requests, and latency is `clients /
//! throughput`). A request sent late because the previous answer came after
//! its scheduled time counts from the schedule (no coordinated omission); one
//! sent late only because the timer woke late counts from its send.

use std::{sync::Arc, time::Duration};

use hdrhistogram::Histogram;
use tokio::{task::JoinSet, time::Instant};

use crate::client::{Endpoint, Session, SseSession, StreamableSession, Transport};

/// What one load run does.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// Where the clients connect.
    pub endpoint: Endpoint,
    /// Concurrent clients (one session and one request in flight each).
    pub clients: usize,
    /// Time before measuring starts (sessions open, caches warm).
    pub warmup: Duration,
    /// Measured time.
    pub duration: Duration,
    /// A call or session open that takes longer fails.
    pub timeout: Duration,
    /// Requests/s offered by all clients together, on a fixed schedule;
    /// `None` sends back to back (saturating load).
    pub rate: Option<f64>,
}

/// What a load run measured.
#[derive(Debug, Clone)]
pub struct LoadResult {
    /// Successful calls in the measured window.
    pub requests: u64,
    /// Failed calls and session opens in the measured window.
    pub errors: u64,
    /// Latency of the successful calls, in microseconds.
    pub latency_us: Histogram<u64>,
    /// Length of the measured window.
    pub window: Duration,
    /// The first failure seen (also before the window), to show in reports.
    pub first_error: Option<String>,
}

impl LoadResult {
    fn empty(window: Duration) -> Self {
        Self {
            requests: 0,
            errors: 0,
            latency_us: new_histogram(),
            window,
            first_error: None,
        }
    }

    /// Requests per second over the window.
    pub fn rps(&self) -> f64 {
        self.requests as f64 / self.window.as_secs_f64().max(1e-9)
    }

    /// Adds another result (another client or round) into this one.
    pub fn merge(&mut self, other: &LoadResult) {
        self.requests += other.requests;
        self.errors += other.errors;
        let _ = self.latency_us.add(&other.latency_us);
        if self.first_error.is_none() {
            self.first_error.clone_from(&other.first_error);
        }
    }
}

/// A histogram for 1 µs .. 100 s at 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 100_000_000, 3).expect("valid histogram bounds")
}

/// Runs the load; returns when the window ends. The window starts at
/// `start + spec.warmup`, where `start` is the call time.
pub async fn run(spec: &LoadSpec) -> LoadResult {
    let start = Instant::now();
    let measure_at = start + spec.warmup;
    let end = measure_at + spec.duration;
    let spec = Arc::new(spec.clone());
    let mut tasks = JoinSet::new();
    for index in 0..spec.clients {
        let spec = spec.clone();
        let pacing = spec.rate.filter(|r| *r > 0.0).map(|rate| {
            // Client i starts i/clients of an interval in, so the clients
            // together send evenly, not in bursts.
            let interval = Duration::from_secs_f64(spec.clients as f64 / rate);
            Pacing {
                interval,
                next: start + interval.mul_f64(index as f64 / spec.clients as f64),
            }
        });
        tasks.spawn(async move { client(&spec, pacing, measure_at, end).await });
    }
    let mut total = LoadResult::empty(spec.duration);
    while let Some(done) = tasks.join_next().await {
        if let Ok(result) = done {
            total.merge(&result);
        }
    }
    total
}

/// One client's schedule in a paced run.
#[derive(Debug, Clone, Copy)]
struct Pacing {
    interval: Duration,
    /// When the next call is due.
    next: Instant,
}

impl Pacing {
    /// Waits for the next call's turn; returns the instant its latency counts
    /// from: the send when the client was on time, the scheduled time when
    /// the previous answer made it late.
    async fn wait_turn(&mut self) -> Instant {
        let due = self.next;
        self.next += self.interval;
        if Instant::now() < due {
            tokio::time::sleep_until(due).await;
            Instant::now()
        } else {
            due
        }
    }
}

async fn client(
    spec: &LoadSpec,
    mut pacing: Option<Pacing>,
    measure_at: Instant,
    end: Instant,
) -> LoadResult {
    let mut result = LoadResult::empty(spec.duration);
    let work = async {
        let mut session: Option<Session> = None;
        loop {
            let t0 = match (&mut pacing, &session) {
                (Some(p), Some(_)) => p.wait_turn().await,
                _ => Instant::now(),
            };
            let in_window = t0 >= measure_at;
            let outcome = match session.as_mut() {
                None => {
                    match tokio::time::timeout(spec.timeout, Session::open(&spec.endpoint)).await {
                        Ok(Ok(s)) => {
                            session = Some(s);
                            continue;
                        }
                        Ok(Err(e)) => Err(format!("open: {e}")),
                        Err(_) => Err("open: timed out".to_owned()),
                    }
                }
                Some(s) => match tokio::time::timeout(spec.timeout, s.call_echo()).await {
                    Ok(r) => r,
                    Err(_) => Err("call: timed out".to_owned()),
                },
            };
            let t1 = Instant::now();
            match outcome {
                Ok(()) => {
                    if in_window && t1 <= end {
                        result.requests += 1;
                        let us = u64::try_from((t1 - t0).as_micros()).unwrap_or(u64::MAX);
                        let _ = result.latency_us.record(us.max(1));
                    }
                }
                Err(e) => {
                    if in_window {
                        result.errors += 1;
                    }
                    if result.first_error.is_none() {
                        result.first_error = Some(e);
                    }
                    session = None;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    };
    let _ = tokio::time::timeout_at(end, work).await;
    result
}

/// Streams held open by [`hold_idle`]; closed when dropped.
pub struct IdleStreams {
    held: Vec<Box<dyn std::any::Any + Send>>,
    /// Streams that failed to open.
    pub errors: u64,
    /// The first failure.
    pub first_error: Option<String>,
}

impl IdleStreams {
    /// Streams open now.
    pub fn len(&self) -> usize {
        self.held.len()
    }

    /// True when no stream is open.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }
}

/// Opens `n` idle server-to-client streams on `ep`, `parallel` at a time:
/// `GET /sse` up to its `endpoint` event (legacy SSE), or `initialize` then
/// the session's `GET` stream (Streamable HTTP). Returns them open.
pub async fn hold_idle(ep: &Endpoint, n: usize, parallel: usize) -> IdleStreams {
    let ep = Arc::new(ep.clone());
    let mut idle = IdleStreams {
        held: Vec::with_capacity(n),
        errors: 0,
        first_error: None,
    };
    let mut tasks = JoinSet::new();
    let mut started = 0;
    while started < n || !tasks.is_empty() {
        while started < n && tasks.len() < parallel.max(1) {
            let ep = ep.clone();
            tasks.spawn(async move { open_idle(&ep).await });
            started += 1;
        }
        match tasks.join_next().await {
            Some(Ok(Ok(stream))) => idle.held.push(stream),
            Some(Ok(Err(e))) => {
                idle.errors += 1;
                idle.first_error.get_or_insert(e);
            }
            Some(Err(e)) => {
                idle.errors += 1;
                idle.first_error.get_or_insert(e.to_string());
            }
            None => break,
        }
    }
    idle
}

async fn open_idle(ep: &Endpoint) -> Result<Box<dyn std::any::Any + Send>, String> {
    let open = async {
        match ep.transport {
            Transport::Sse => SseSession::open_idle(ep)
                .await
                .map(|s| Box::new(s) as Box<dyn std::any::Any + Send>),
            Transport::Streamable => {
                let session = StreamableSession::open(ep).await?;
                let stream = session.open_get_stream().await?;
                Ok(Box::new((session, stream)) as Box<dyn std::any::Any + Send>)
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), open)
        .await
        .map_err(|_| "idle stream: timed out".to_owned())?
}
