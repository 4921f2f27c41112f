//! Fixtures for tests of `mcp-bastion --upstream`: `@modelcontextprotocol/server-everything`
//! served over HTTP as a real process ([`Everything`]), and a recording reverse proxy
//! ([`RecordingProxy`]) that keeps the headers of every request it forwards, so a test can see
//! exactly what reached the upstream.
#![allow(
    clippy::unwrap_used,
    reason = "test fixtures: a failure is a test failure"
)]

use std::{
    io::{BufRead, BufReader, Read},
    net::{SocketAddr, TcpListener, TcpStream},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    thread,
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::Body,
    extract::{Request, State},
    response::Response,
};

use crate::{Server, clients_dir, node_modules_dir, python};

/// The HTTP modes of server-everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `streamableHttp`: Streamable HTTP at `/mcp`.
    Streamable,
    /// `sse`: legacy HTTP+SSE, stream at `/sse`, messages at `/message`.
    LegacySse,
}

impl Mode {
    /// The argument of `dist/index.js` that selects this mode.
    pub fn arg(self) -> &'static str {
        match self {
            Mode::Streamable => "streamableHttp",
            Mode::LegacySse => "sse",
        }
    }

    /// The URL path the proxy is pointed at.
    pub fn path(self) -> &'static str {
        match self {
            Mode::Streamable => "/mcp",
            Mode::LegacySse => "/sse",
        }
    }
}

/// server-everything listening on `127.0.0.1:port`; its process group is killed on drop.
pub struct Everything {
    child: Child,
    port: u16,
    log: Arc<Mutex<String>>,
}

impl Everything {
    /// Starts it on a free port (it takes the port from `PORT`; port 0 would hide the real one).
    pub fn start(mode: Mode) -> Everything {
        for _ in 0..3 {
            if let Some(server) = Everything::start_on(mode, free_port()) {
                return server;
            }
        }
        panic!("server-everything ({}) did not start", mode.arg());
    }

    /// Starts it on `port`; `None` when it does not come up (port taken).
    pub fn start_on(mode: Mode, port: u16) -> Option<Everything> {
        use std::os::unix::process::CommandExt;

        let entry =
            node_modules_dir().join("@modelcontextprotocol/server-everything/dist/index.js");
        assert!(
            entry.is_file(),
            "{} is missing: run `npm ci --prefix tests/node`",
            entry.display()
        );
        let node = std::env::var("NODE").unwrap_or_else(|_| "node".to_owned());
        let mut child = Command::new(node)
            .arg(entry)
            .arg(mode.arg())
            .env("PORT", port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .expect("start node");
        let log = Arc::new(Mutex::new(String::new()));
        drain(child.stdout.take().unwrap(), Arc::clone(&log));
        drain(child.stderr.take().unwrap(), Arc::clone(&log));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(Everything { child, port, log });
            }
            if child.try_wait().ok().flatten().is_some() || Instant::now() > deadline {
                eprintln!(
                    "server-everything failed on port {port}:\n{}",
                    log.lock().unwrap()
                );
                kill_group(&mut child);
                return None;
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// What it printed so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Everything {
    fn drop(&mut self) {
        kill_group(&mut self.child);
    }
}

fn kill_group(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .stderr(Stdio::null())
        .status();
    let _ = child.kill();
    let _ = child.wait();
}

fn drain(reader: impl Read + Send + 'static, log: Arc<Mutex<String>>) {
    thread::spawn(move || {
        for line in BufReader::new(reader).lines().map_while(Result::ok) {
            let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
            log.push_str(&line);
            log.push('\n');
        }
    });
}

/// The official Python SDK's 2026-07-28 server (`tests/clients/py_2026_server.py`, which also
/// speaks the handshake revisions) on a free loopback port.
pub fn py_2026_server() -> Server {
    py_2026_server_with(&[])
}

/// [`py_2026_server`] with more arguments (`--tls-cert PEM --tls-key PEM [--client-ca PEM]`
/// serve HTTPS, with mutual TLS when a client CA is given).
pub fn py_2026_server_with(args: &[&str]) -> Server {
    let script = clients_dir().join("py_2026_server.py");
    let mut all = vec![script.to_string_lossy().into_owned()];
    all.extend(args.iter().map(|a| (*a).to_owned()));
    Server::spawn("py-2026-upstream", std::path::Path::new(&python()), &all)
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

// ---------------------------------------------------------------------------------------------
// the recording reverse proxy

/// One request as the upstream saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// `GET`, `POST`…
    pub method: String,
    /// The URL path, without the query.
    pub path: String,
    /// Every header, names in lower case, values as (lossy) text.
    pub headers: Vec<(String, String)>,
}

impl Seen {
    /// The first value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Clone)]
struct ProxyState {
    target: String,
    client: reqwest::Client,
    seen: Arc<Mutex<Vec<Seen>>>,
}

/// A reverse proxy on `127.0.0.1:0` that records every request's headers and forwards it,
/// streaming the answer back (SSE included).
pub struct RecordingProxy {
    _runtime: tokio::runtime::Runtime,
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl RecordingProxy {
    /// Starts forwarding to `target` (`http://host:port`, no trailing slash).
    pub fn start(target: String) -> RecordingProxy {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let state = ProxyState {
            target,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            seen: Arc::clone(&seen),
        };
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().fallback(forward).with_state(state);
        runtime.spawn(async move { axum::serve(listener, app).await });
        RecordingProxy {
            _runtime: runtime,
            addr,
            seen,
        }
    }

    /// `http://127.0.0.1:PORT<path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Every request seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Waits until a request matching `what` has been seen.
    pub fn wait_for(&self, timeout: Duration, what: impl Fn(&Seen) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.seen().iter().any(&what) {
                return true;
            }
            thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

const HOP_BY_HOP: [&str; 5] = [
    "host",
    "connection",
    "content-length",
    "transfer-encoding",
    "keep-alive",
];

async fn forward(State(state): State<ProxyState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    state.seen.lock().unwrap().push(Seen {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
    });
    let body = axum::body::to_bytes(body, 16 << 20)
        .await
        .unwrap_or_default();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut out = state
        .client
        .request(parts.method, format!("{}{path}", state.target))
        .body(body);
    for (name, value) in &parts.headers {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            out = out.header(name, value);
        }
    }
    let upstream = match out.send().await {
        Ok(upstream) => upstream,
        Err(_) => {
            let mut res = Response::new(Body::from("upstream unreachable"));
            *res.status_mut() = http_status(502);
            return res;
        }
    };
    let mut res = Response::builder().status(upstream.status().as_u16());
    for (name, value) in upstream.headers() {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            res = res.header(name.as_str(), value.as_bytes());
        }
    }
    res.body(Body::from_stream(upstream.bytes_stream()))
        .unwrap_or_default()
}

fn http_status(code: u16) -> axum::http::StatusCode {
    axum::http::StatusCode::from_u16(code).unwrap()
}
