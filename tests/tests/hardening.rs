//! Clients that vanish mid-stream leak nothing: after 1,000 responses dropped half-read, the open
//! SSE stream, session and child counts the proxy reports on `/metrics` return to where they were.
//!
//! Slow and hostile clients (module `hostile`), over raw TCP while a real SDK client is served:
//! slowloris headers and silent connections cut by `--header-read-timeout`, bodies that never
//! finish answered `408` by `--body-read-timeout`, oversized heads answered `431`, and 10,000
//! idle connections that neither stop a real client nor outlive the header timeout.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::time::{Duration, Instant};

use serde_json::json;
use tests::{Server, everything_stdio};

const ACCEPT_BOTH: &str = "application/json, text/event-stream";

/// The value of the sample of exactly this series (labels included); panics if it is absent, so
/// that a missing metric cannot pass for a zero.
fn gauge(text: &str, series: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {series} sample in:\n{text}"))
}

async fn metrics(http: &reqwest::Client, server: &Server) -> String {
    http.get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[test]
fn a_thousand_clients_hanging_up_mid_stream_leave_no_stream_session_or_child_behind() {
    let server = Server::bastion(&["--session-mode", "shared"], &everything_stdio());
    let url = server.url("/mcp");
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let http = reqwest::Client::new();
            let init = json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
                "protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"leak","version":"0"}}});
            let res = http
                .post(&url)
                .header("content-type", "application/json")
                .header("accept", ACCEPT_BOTH)
                .body(init.to_string())
                .send()
                .await
                .unwrap();
            let sid = res.headers()["mcp-session-id"].to_str().unwrap().to_owned();
            let _ = res.text().await;
            let before = metrics(&http, &server).await;
            let streams_before = gauge(&before, "mcp_sse_streams_open");
            let children_before = gauge(&before, "mcp_backend_children");
            assert_eq!(children_before, 1.0, "{before}");

            // 1,000 slow calls, each response dropped after its first bytes, 50 at a time
            for batch in 0..20 {
                let mut tasks = Vec::new();
                for i in 0..50 {
                    let (http, url, sid) = (http.clone(), url.clone(), sid.clone());
                    tasks.push(tokio::spawn(async move {
                        let call = json!({"jsonrpc":"2.0","id": batch * 50 + i,"method":"tools/call",
                            "params":{"name":"trigger-long-running-operation",
                            "arguments":{"duration":1,"steps":2},"_meta":{"progressToken": batch * 50 + i}}});
                        let mut res = http
                            .post(&url)
                            .header("content-type", "application/json")
                            .header("accept", ACCEPT_BOTH)
                            .header("mcp-session-id", &sid)
                            .header("mcp-protocol-version", "2025-11-25")
                            .body(call.to_string())
                            .send()
                            .await
                            .unwrap();
                        assert_eq!(res.status(), 200);
                        let _ = res.chunk().await;
                        // hang up mid-stream
                    }));
                }
                for t in tasks {
                    t.await.unwrap();
                }
            }

            // the proxy notices every hang-up; the session itself stays open and working
            let deadline = Instant::now() + Duration::from_secs(30);
            let after = loop {
                let text = metrics(&http, &server).await;
                if gauge(&text, "mcp_sse_streams_open") <= streams_before || Instant::now() > deadline {
                    break text;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            };
            assert_eq!(
                gauge(&after, "mcp_sse_streams_open"),
                streams_before,
                "open SSE streams after 1,000 hang-ups:\n{after}"
            );
            assert_eq!(gauge(&after, "mcp_backend_children"), children_before, "{after}");
            assert_eq!(
                gauge(&after, "mcp_sessions_open{transport=\"streamable-http\"}"),
                1.0,
                "{after}"
            );
            let ping = http
                .post(&url)
                .header("content-type", "application/json")
                .header("accept", ACCEPT_BOTH)
                .header("mcp-session-id", &sid)
                .header("mcp-protocol-version", "2025-11-25")
                .body(json!({"jsonrpc":"2.0","id":"last","method":"ping"}).to_string())
                .send()
                .await
                .unwrap();
            assert_eq!(ping.status(), 200);
            let body = ping.text().await.unwrap();
            assert!(body.contains("\"result\""), "{body}");
        });
}

// ---------------------------------------------------------------------------------------------
// slow and hostile clients: each is cut by its limit while a real SDK client is served

mod hostile {
    use std::{
        io::Write,
        net::{SocketAddr, TcpStream},
        sync::{
            Arc,
            atomic::{AtomicBool, Ordering},
        },
        thread,
        time::{Duration, Instant},
    };

    use tests::{
        ClientRun, Sdk, Server, Transport, assert_full_summary, everything_stdio,
        raw::{
            Peer, affordable_connections, closed_now, poll_closed, raise_nofile_limit,
            read_until_closed, socket_addr,
        },
    };

    /// Slack on top of a configured timeout before a test calls a connection "not cut".
    const SLACK: Duration = Duration::from_secs(5);

    fn python_echo(server: &Server) {
        let summary = ClientRun::new(Sdk::Python, Transport::Streamable, server.url("/mcp"))
            .scenario("echo")
            .run_ok(server);
        assert_eq!(summary["ok"], true, "{summary}");
    }

    /// One slowloris connection: a header that never ends, a byte every 100 ms. Returns how long
    /// the server took to close it, or `None` if it was still open after `give_up`.
    fn slowloris(addr: SocketAddr, give_up: Duration) -> Option<Duration> {
        let started = Instant::now();
        let mut tcp = TcpStream::connect(addr).unwrap();
        let _ = tcp.write_all(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ");
        while started.elapsed() < give_up {
            if tcp.write_all(b"a").is_err() {
                return Some(started.elapsed());
            }
            if poll_closed(&mut tcp, Duration::from_millis(100)) == Peer::Closed {
                return Some(started.elapsed());
            }
        }
        None
    }

    #[test]
    fn slowloris_and_silent_connections_are_cut_after_the_header_read_timeout() {
        let timeout = Duration::from_secs(2);
        let server = Server::bastion(
            &["--session-mode", "shared", "--header-read-timeout", "2"],
            &everything_stdio(),
        );
        let addr = socket_addr(server.base_url());
        let silent_opened = Instant::now();
        let mut silent: Vec<TcpStream> =
            (0..20).map(|_| TcpStream::connect(addr).unwrap()).collect();
        // slowloris connections, one after another on 4 threads, until the SDK client is done
        let stop = Arc::new(AtomicBool::new(false));
        let attackers: Vec<_> = (0..4)
            .map(|_| {
                let stop = stop.clone();
                thread::spawn(move || {
                    let mut cut = Vec::new();
                    while !stop.load(Ordering::Acquire) || cut.is_empty() {
                        cut.push(slowloris(addr, timeout + SLACK));
                    }
                    cut
                })
            })
            .collect();
        python_echo(&server);
        stop.store(true, Ordering::Release);
        let cut: Vec<Option<Duration>> = attackers
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        assert!(
            cut.iter().all(Option::is_some),
            "a slowloris connection outlived the header read timeout ({timeout:?}) by {SLACK:?}: {cut:?}\n{}",
            server.logs()
        );
        eprintln!("{} slowloris connections, cut after {cut:?}", cut.len());
        // the silent ones too
        for tcp in &mut silent {
            let left = (silent_opened + timeout + SLACK).saturating_duration_since(Instant::now());
            assert_eq!(
                poll_closed(tcp, left),
                Peer::Closed,
                "a connection that sent nothing is still open {:?} after it connected",
                silent_opened.elapsed()
            );
        }
        // and the server still answers
        python_echo(&server);
    }

    /// Headers of an `initialize` POST declaring a 1 MB body, and the first bytes of that body.
    fn stalled_post(addr: SocketAddr) -> TcpStream {
        let mut tcp = TcpStream::connect(addr).unwrap();
        tcp.write_all(
            b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
              Accept: application/json, text/event-stream\r\nContent-Length: 1048576\r\n\r\n\
              {\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",",
        )
        .unwrap();
        tcp
    }

    #[test]
    fn a_body_that_never_finishes_gets_408_and_holds_no_session_or_child() {
        let server = Server::bastion(
            &["--session-mode", "per-session", "--body-read-timeout", "2"],
            &everything_stdio(),
        );
        let addr = socket_addr(server.base_url());
        let sent = Instant::now();
        let stalled: Vec<TcpStream> = (0..5).map(|_| stalled_post(addr)).collect();
        thread::sleep(Duration::from_millis(500));
        assert!(
            server.children().is_empty(),
            "a half-sent initialize started a child: {:?}",
            server.children()
        );
        let readers: Vec<_> = stalled
            .into_iter()
            .map(|mut tcp| {
                thread::spawn(move || {
                    let left = (sent + Duration::from_secs(2) + SLACK)
                        .saturating_duration_since(Instant::now());
                    read_until_closed(&mut tcp, left)
                })
            })
            .collect();
        // a real client meanwhile (its session's child comes and goes)
        python_echo(&server);
        for reader in readers {
            let (answer, closed) = reader.join().unwrap();
            assert!(
                answer.starts_with("HTTP/1.1 408"),
                "a stalled body got: {answer:?}\n{}",
                server.logs()
            );
            assert!(
                answer.contains("request body not received within 2 s"),
                "{answer}"
            );
            assert!(answer.contains("\"jsonrpc\":\"2.0\""), "{answer}");
            assert!(
                closed,
                "the connection of a stalled body stayed open: {answer}"
            );
        }
        server.wait_for_children(0, Duration::from_secs(10));
    }

    /// `GET /healthz` with one header of `pad` bytes; the server's whole answer.
    fn healthz_with_header(addr: SocketAddr, pad: usize) -> String {
        let mut tcp = TcpStream::connect(addr).unwrap();
        let request = format!(
            "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: {}\r\nConnection: close\r\n\r\n",
            "p".repeat(pad)
        );
        // the server may answer 431 and close before it has read everything
        let _ = tcp.write_all(request.as_bytes());
        read_until_closed(&mut tcp, Duration::from_secs(10)).0
    }

    #[test]
    fn oversized_headers_get_431_and_the_limit_is_configurable() {
        let default = Server::bastion(&["--session-mode", "shared"], &everything_stdio());
        let addr = socket_addr(default.base_url());
        let answer = healthz_with_header(addr, 32 * 1024);
        assert!(
            answer.starts_with("HTTP/1.1 200"),
            "32 KiB of headers: {answer}"
        );
        let answer = healthz_with_header(addr, 1024 * 1024);
        assert!(
            answer.starts_with("HTTP/1.1 431"),
            "1 MiB of headers: {answer}"
        );
        let answer = healthz_with_header(addr, 80 * 1024);
        assert!(
            answer.starts_with("HTTP/1.1 431"),
            "80 KiB of headers: {answer}"
        );
        python_echo(&default);

        let small = Server::bastion(
            &["--session-mode", "shared", "--max-header-bytes", "16384"],
            &everything_stdio(),
        );
        let addr = socket_addr(small.base_url());
        let answer = healthz_with_header(addr, 8 * 1024);
        assert!(
            answer.starts_with("HTTP/1.1 200"),
            "8 KiB of headers: {answer}"
        );
        let answer = healthz_with_header(addr, 20 * 1024);
        assert!(
            answer.starts_with("HTTP/1.1 431"),
            "20 KiB of headers: {answer}"
        );
        python_echo(&small);
    }

    fn open_fds(pid: u32) -> usize {
        std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count)
    }

    #[test]
    fn ten_thousand_idle_connections_do_not_stop_a_real_client_and_are_closed_after_the_header_timeout()
     {
        let limit = raise_nofile_limit();
        let count = affordable_connections(10_000, limit);
        if count < 10_000 {
            eprintln!(
                "RLIMIT_NOFILE hard limit is {limit}: holding {count} idle connections instead of 10,000"
            );
        }
        // long enough to outlast opening them all and the SDK client's scenario on a loaded
        // machine; the opening is paced so that the listen queue never overflows (an overflow
        // costs the connecting side a 1 s SYN retry).
        let timeout = Duration::from_secs(40);
        let server = Server::bastion(
            &["--session-mode", "shared", "--header-read-timeout", "40"],
            &everything_stdio(),
        );
        let addr = socket_addr(server.base_url());
        let base_fds = open_fds(server.pid());
        let opened = Instant::now();
        let mut idle: Vec<TcpStream> = Vec::with_capacity(count);
        while idle.len() < count {
            for _ in 0..100.min(count - idle.len()) {
                match TcpStream::connect(addr) {
                    Ok(tcp) => idle.push(tcp),
                    Err(e) => panic!(
                        "connection {} of {count} failed: {e}\n{}",
                        idle.len(),
                        server.logs()
                    ),
                }
            }
            // wait until the server has accepted them (it holds one descriptor for each)
            let deadline = Instant::now() + Duration::from_secs(10);
            while open_fds(server.pid()) < base_fds + idle.len() && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(5));
            }
        }
        let held = open_fds(server.pid()).saturating_sub(base_fds);
        eprintln!(
            "{count} idle connections opened in {:?}; the server holds {held} more descriptors",
            opened.elapsed()
        );
        assert!(
            held >= count,
            "the server holds {held} connection descriptors, not {count}\n{}",
            server.logs()
        );

        let summary =
            ClientRun::against(Sdk::Python, Transport::Streamable, &server, "").run_ok(&server);
        assert_full_summary(&summary);
        let still_open = idle.iter().filter(|t| !closed_now(t)).count();
        eprintln!(
            "Python SDK full scenario done {:?} after the connections opened, with {still_open} of them still open",
            opened.elapsed()
        );
        assert_eq!(
            still_open, count,
            "the idle connections must still be open while the client runs (raise the timeout if \
             this machine is that slow)"
        );

        let deadline = opened + timeout + SLACK + Duration::from_secs(10);
        loop {
            let open = idle.iter().filter(|t| !closed_now(t)).count();
            if open == 0 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{open} of {count} idle connections still open {:?} after they connected (header read timeout {timeout:?})",
                opened.elapsed()
            );
            thread::sleep(Duration::from_millis(500));
        }
        eprintln!("all closed {:?} after they opened", opened.elapsed());
        drop(idle);
        python_echo(&server);
    }
}
