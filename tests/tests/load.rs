//! Load: many SSE streams held at once, and many sessions one after another, against the binary
//! in shared mode (one server-everything child for every session).
//!
//! - 10,000 legacy SSE streams (`GET /sse`, each its own session) held for 60 s with keepalives
//!   every 5 s: every stream sees at least 10 keepalive comments and none ends early.
//! - Sessions opened and closed in sequence (`initialize`, `notifications/initialized`,
//!   `DELETE`), a few at a time: the server's resident memory at the end is within 10 % of what
//!   it was after a warm-up. 20,000 sessions by default; `BASTION_LOAD_FULL=1` runs 100,000.
//!
//! Both print what they measured (wall time, resident memory).
#![allow(clippy::unwrap_used, reason = "tests")]

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use serde_json::json;
use tests::{
    Server, everything_stdio,
    raw::{affordable_connections, raise_nofile_limit, rss_kib, socket_addr},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    sync::Semaphore,
};

const KEEPALIVE: &[u8] = b": keepalive\n\n";

/// How one SSE stream went.
#[derive(Debug)]
struct StreamRun {
    status_ok: bool,
    keepalives: usize,
    ended_early: bool,
}

/// Counts `KEEPALIVE` in a byte stream read in arbitrary pieces.
struct KeepaliveCounter {
    carry: Vec<u8>,
    count: usize,
}

impl KeepaliveCounter {
    fn feed(&mut self, chunk: &[u8]) {
        self.carry.extend_from_slice(chunk);
        self.count += self
            .carry
            .windows(KEEPALIVE.len())
            .filter(|w| *w == KEEPALIVE)
            .count();
        // keep less than one pattern, so that no match is counted twice
        let keep = self.carry.len().min(KEEPALIVE.len() - 1);
        self.carry.drain(..self.carry.len() - keep);
    }
}

/// Opens `GET /sse` and reads it until `until`; the stream must stay open that long.
async fn hold_stream(
    addr: std::net::SocketAddr,
    connecting: Arc<Semaphore>,
    until: Arc<tokio::sync::OnceCell<Instant>>,
    connected: Arc<AtomicUsize>,
) -> Result<StreamRun, String> {
    let permit = connecting.acquire().await.map_err(|e| e.to_string())?;
    let mut tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    tcp.write_all(b"GET /sse HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n")
        .await
        .map_err(|e| format!("write: {e}"))?;
    let mut buf = vec![0u8; 4096];
    let mut head = Vec::new();
    // the response head, and the start of the stream
    let status_ok = loop {
        let n = tcp.read(&mut buf).await.map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err("closed before the response head".into());
        }
        head.extend_from_slice(&buf[..n]);
        if head.windows(4).any(|w| w == b"\r\n\r\n") {
            break head.starts_with(b"HTTP/1.1 200");
        }
    };
    drop(permit);
    connected.fetch_add(1, Ordering::AcqRel);
    let mut counter = KeepaliveCounter {
        carry: Vec::new(),
        count: 0,
    };
    counter.feed(&head);
    // every stream is held until the same instant, set once all are open
    let deadline = loop {
        if let Some(at) = until.get() {
            break *at;
        }
        match tokio::time::timeout(Duration::from_millis(200), tcp.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                return Ok(StreamRun {
                    status_ok,
                    keepalives: counter.count,
                    ended_early: true,
                });
            }
            Ok(Ok(n)) => counter.feed(&buf[..n]),
            Err(_) => {}
        }
    };
    loop {
        let read = tokio::time::timeout_at(deadline.into(), tcp.read(&mut buf)).await;
        match read {
            Err(_) => {
                return Ok(StreamRun {
                    status_ok,
                    keepalives: counter.count,
                    ended_early: false,
                });
            }
            Ok(Ok(0)) | Ok(Err(_)) => {
                return Ok(StreamRun {
                    status_ok,
                    keepalives: counter.count,
                    ended_early: true,
                });
            }
            Ok(Ok(n)) => counter.feed(&buf[..n]),
        }
    }
}

#[test]
fn ten_thousand_sse_streams_held_for_a_minute_all_see_their_keepalives() {
    let limit = raise_nofile_limit();
    let count = affordable_connections(10_000, limit);
    if count < 10_000 {
        eprintln!("RLIMIT_NOFILE hard limit is {limit}: holding {count} streams instead of 10,000");
    }
    let hold = Duration::from_secs(60);
    let server = Server::bastion(
        &["--session-mode", "shared", "--keepalive-secs", "5"],
        &everything_stdio(),
    );
    let addr = socket_addr(server.base_url());
    let rss_before = rss_kib(server.pid()).unwrap_or(0);
    let started = Instant::now();
    let runs = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            // a few hundred connects in flight at once: the listen queue never overflows
            let connecting = Arc::new(Semaphore::new(200));
            let until = Arc::new(tokio::sync::OnceCell::new());
            let connected = Arc::new(AtomicUsize::new(0));
            let tasks: Vec<_> = (0..count)
                .map(|_| {
                    tokio::spawn(hold_stream(
                        addr,
                        connecting.clone(),
                        until.clone(),
                        connected.clone(),
                    ))
                })
                .collect();
            let deadline = Instant::now() + Duration::from_secs(120);
            while connected.load(Ordering::Acquire) < count && Instant::now() < deadline {
                if tasks.iter().any(|t| t.is_finished()) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let open = connected.load(Ordering::Acquire);
            eprintln!(
                "{open} of {count} SSE streams open after {:?}; server RSS {} KiB (was {rss_before} KiB before)",
                started.elapsed(),
                rss_kib(server.pid()).unwrap_or(0)
            );
            let _ = until.set(Instant::now() + hold);
            let mut runs = Vec::with_capacity(count);
            for task in tasks {
                runs.push(task.await.unwrap_or_else(|e| Err(e.to_string())));
            }
            runs
        });
    let rss_end = rss_kib(server.pid()).unwrap_or(0);
    let failed: Vec<&String> = runs.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        failed.is_empty(),
        "{} of {count} streams failed, first: {:?}\n{}",
        failed.len(),
        failed.first(),
        server.logs()
    );
    let runs: Vec<&StreamRun> = runs.iter().filter_map(|r| r.as_ref().ok()).collect();
    let refused = runs.iter().filter(|r| !r.status_ok).count();
    let ended = runs.iter().filter(|r| r.ended_early).count();
    let fewest = runs.iter().map(|r| r.keepalives).min().unwrap_or(0);
    eprintln!(
        "{count} streams held {hold:?} (wall {:?}): fewest keepalives {fewest}, ended early {ended}, \
         refused {refused}; server RSS {rss_end} KiB at the end, ~{} KiB per stream",
        started.elapsed(),
        rss_end.saturating_sub(rss_before) / count.max(1) as u64
    );
    assert_eq!(refused, 0, "streams answered other than 200");
    assert_eq!(
        ended,
        0,
        "streams ended before the minute was up\n{}",
        server.logs()
    );
    assert!(
        fewest >= 10,
        "a stream saw only {fewest} keepalive comments in {hold:?} (every 5 s)"
    );
}

const ACCEPT_BOTH: &str = "application/json, text/event-stream";

/// One whole session: `initialize`, `notifications/initialized`, `DELETE`.
async fn one_session(http: &reqwest::Client, url: &str, n: usize) -> Result<(), String> {
    let init = json!({"jsonrpc":"2.0","id":n,"method":"initialize","params":{
        "protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"load","version":"0"}}});
    let res = http
        .post(url)
        .header("content-type", "application/json")
        .header("accept", ACCEPT_BOTH)
        .body(init.to_string())
        .send()
        .await
        .map_err(|e| format!("initialize: {e}"))?;
    if res.status() != 200 {
        return Err(format!("initialize: {}", res.status()));
    }
    let sid = res
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .ok_or("initialize: no session id")?
        .to_owned();
    let body = res
        .text()
        .await
        .map_err(|e| format!("initialize body: {e}"))?;
    if !body.contains("\"result\"") {
        return Err(format!("initialize: {body}"));
    }
    let res = http
        .post(url)
        .header("content-type", "application/json")
        .header("accept", ACCEPT_BOTH)
        .header("mcp-session-id", &sid)
        .header("mcp-protocol-version", "2025-11-25")
        .body(json!({"jsonrpc":"2.0","method":"notifications/initialized"}).to_string())
        .send()
        .await
        .map_err(|e| format!("initialized: {e}"))?;
    if res.status() != 202 {
        return Err(format!("notifications/initialized: {}", res.status()));
    }
    let res = http
        .delete(url)
        .header("mcp-session-id", &sid)
        .header("mcp-protocol-version", "2025-11-25")
        .send()
        .await
        .map_err(|e| format!("delete: {e}"))?;
    if !res.status().is_success() {
        return Err(format!("DELETE: {}", res.status()));
    }
    Ok(())
}

/// Runs sessions `range` with `concurrency` workers; the first error, if any.
async fn sessions(
    http: &reqwest::Client,
    url: &str,
    range: std::ops::Range<usize>,
    concurrency: usize,
) -> Result<(), String> {
    let next = Arc::new(AtomicUsize::new(range.start));
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (http, url, next) = (http.clone(), url.to_owned(), next.clone());
            let end = range.end;
            tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, Ordering::AcqRel);
                    if n >= end {
                        return Ok::<(), String>(());
                    }
                    one_session(&http, &url, n)
                        .await
                        .map_err(|e| format!("session {n}: {e}"))?;
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.map_err(|e| e.to_string())??;
    }
    Ok(())
}

#[test]
fn sessions_opened_and_closed_in_sequence_leave_resident_memory_flat() {
    let full = std::env::var("BASTION_LOAD_FULL").is_ok_and(|v| v == "1");
    let (total, warm_up) = if full {
        (100_000, 10_000)
    } else {
        (20_000, 5_000)
    };
    let server = Server::bastion(&["--session-mode", "shared"], &everything_stdio());
    let url = server.url("/mcp");
    let started = Instant::now();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let http = reqwest::Client::new();
            sessions(&http, &url, 0..warm_up, 4)
                .await
                .unwrap_or_else(|e| panic!("{e}\n{}", server.logs()));
            let warm = rss_kib(server.pid()).unwrap();
            let warm_time = started.elapsed();
            sessions(&http, &url, warm_up..total, 4)
                .await
                .unwrap_or_else(|e| panic!("{e}\n{}", server.logs()));
            let end = rss_kib(server.pid()).unwrap();
            eprintln!(
                "{total} sessions in {:?} ({warm_up} warm-up in {warm_time:?}); server RSS {warm} KiB after the warm-up, {end} KiB at the end ({:+.1} %)",
                started.elapsed(),
                (end as f64 / warm as f64 - 1.0) * 100.0
            );
            let metrics = http
                .get(server.url("/metrics"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            let open = metrics
                .lines()
                .find(|l| l.starts_with("mcp_sessions_open{transport=\"streamable-http\"}"))
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|v| v.parse::<f64>().ok());
            assert_eq!(open, Some(0.0), "sessions left open:\n{metrics}");
            assert!(
                end * 100 <= warm * 110,
                "resident memory grew from {warm} KiB after {warm_up} sessions to {end} KiB after {total}"
            );
        });
}
