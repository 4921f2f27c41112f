//! What is measured, and how each target is started and stopped.
//!
//! Every target runs as its own process tree (its own process group), on a
//! free loopback port, with its output in `target/bench-logs/<name>.log`;
//! readiness is the port accepting connections. The `full-stack-observed`
//! target also gets an [`OtlpSink`] started beside it (in this process) and
//! an audit log file next to its log, both read when it has stopped.

use std::{
    fs,
    net::{SocketAddr, TcpListener, TcpStream},
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use http::{HeaderName, HeaderValue};
use nix::{sys::signal::Signal, unistd::Pid};

use crate::{
    client::{Endpoint, Transport},
    otlp_sink::{OtlpSink, Received},
    peers::{Peer, PeerInstalls},
    servers::ServerKind,
};

/// The API key given to peers that have one, and sent by the clients.
pub const API_KEY: &str = "bench-key-0123456789";

/// How long a target may take to listen.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// One thing that is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    /// 1. bare axum JSON echo: the limit.
    Baseline,
    /// 2. our `StreamableHttp`/`Sse`, no layers, rmcp backend in process.
    Bastion,
    /// 2, resumption off (no event store).
    BastionNoEvents,
    /// 3. the full stack in front of 2.
    FullStack,
    /// 3, with mcp-bastion's own OAuth access tokens (ES256 + grant lookup)
    /// instead of JWKS-verified RS256 JWTs.
    FullStackOAuth,
    /// 3, with the audit log (to a file) and OpenTelemetry export (OTLP/HTTP
    /// to an [`OtlpSink`] of the harness) on: issue 21's cost of observing.
    FullStackObserved,
    /// 4. rmcp's own `StreamableHttpService`.
    Rmcp,
    /// 5. the `mcp-bastion` binary, one stdio child per session.
    ProxyPerSession,
    /// 5. the `mcp-bastion` binary, one shared stdio child.
    ProxyShared,
    /// 5. the `mcp-bastion` binary, per-session mode, 2026-07-28 clients.
    ProxyPerSession2026,
    /// 5. the `mcp-bastion` binary, one shared child, 2026-07-28 clients.
    ProxyShared2026,
    /// 5. the `mcp-bastion` binary in front of `bench-server bastion`.
    ProxyUpstream,
    /// 5. the `mcp-bastion` binary passing 2026-07-28 requests through.
    ///
    /// The upstream is `bench-server echo-2026`, which speaks only that
    /// revision; compared with [`Target::ProxyUpstream`] (2025 clients, a
    /// 2025 upstream).
    ProxyUpstream2026,
    /// 6. a peer proxy.
    Peer(Peer),
}

impl Target {
    /// Every target, in table order.
    pub const ALL: [Target; 17] = [
        Target::Baseline,
        Target::Bastion,
        Target::BastionNoEvents,
        Target::FullStack,
        Target::FullStackOAuth,
        Target::FullStackObserved,
        Target::Rmcp,
        Target::ProxyPerSession,
        Target::ProxyShared,
        Target::ProxyPerSession2026,
        Target::ProxyShared2026,
        Target::ProxyUpstream,
        Target::ProxyUpstream2026,
        Target::Peer(Peer::Supergateway),
        Target::Peer(Peer::McpProxyNpm),
        Target::Peer(Peer::McpProxyAuth),
        Target::Peer(Peer::McpProxyPy),
    ];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Baseline => "baseline",
            Self::Bastion => "bastion-inproc",
            Self::BastionNoEvents => "bastion-inproc-no-events",
            Self::FullStack => "full-stack",
            Self::FullStackOAuth => "full-stack-oauth",
            Self::FullStackObserved => "full-stack-observed",
            Self::Rmcp => "rmcp",
            Self::ProxyPerSession => "bastion-per-session",
            Self::ProxyShared => "bastion-shared",
            Self::ProxyPerSession2026 => "bastion-per-session-2026",
            Self::ProxyShared2026 => "bastion-shared-2026",
            Self::ProxyUpstream => "bastion-upstream",
            Self::ProxyUpstream2026 => "bastion-upstream-2026",
            Self::Peer(p) => p.name(),
        }
    }

    /// The target number (1–6).
    pub fn number(self) -> u8 {
        match self {
            Self::Baseline => 1,
            Self::Bastion | Self::BastionNoEvents => 2,
            Self::FullStack | Self::FullStackOAuth | Self::FullStackObserved => 3,
            Self::Rmcp => 4,
            Self::ProxyPerSession
            | Self::ProxyShared
            | Self::ProxyPerSession2026
            | Self::ProxyShared2026
            | Self::ProxyUpstream
            | Self::ProxyUpstream2026 => 5,
            Self::Peer(_) => 6,
        }
    }

    /// What it is, for the table.
    pub fn label(self, peers: &PeerInstalls) -> String {
        match self {
            Self::Baseline => "axum JSON echo (the limit)".into(),
            Self::Bastion => "mcp-bastion transport, no layers, rmcp in process".into(),
            Self::BastionNoEvents => "the same, resumption off (`without_event_store`)".into(),
            Self::FullStack => {
                "mcp-bastion full stack (JWT, limits, CORS, Origin, sessions)".into()
            }
            Self::FullStackOAuth => {
                "the same with mcp-bastion's own OAuth tokens (ES256 + grant lookup)".into()
            }
            Self::FullStackObserved => {
                "the JWT full stack with the audit log (file) and OTLP trace export on".into()
            }
            Self::Rmcp => "rmcp `StreamableHttpService`, no layers".into(),
            Self::ProxyPerSession => "`mcp-bastion` proxy, per-session child".into(),
            Self::ProxyShared => "`mcp-bastion` proxy, shared child".into(),
            Self::ProxyPerSession2026 => {
                "the same per-session proxy, 2026-07-28 clients (bridge, per principal)".into()
            }
            Self::ProxyShared2026 => {
                "the same shared-child proxy, 2026-07-28 clients (bridge)".into()
            }
            Self::ProxyUpstream => {
                "`mcp-bastion` proxy in front of an upstream Streamable HTTP server".into()
            }
            Self::ProxyUpstream2026 => {
                "the same, 2026-07-28 clients passed through to a 2026-07-28 upstream".into()
            }
            Self::Peer(p) => p.label(peers),
        }
    }

    /// Parses a command-line name.
    pub fn from_name(name: &str) -> Option<Target> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The transports this target serves.
    pub fn transports(self) -> &'static [Transport] {
        match self {
            // The limit is transport-agnostic: one JSON POST per call.
            Self::Baseline => &[Transport::Streamable],
            Self::Rmcp | Self::BastionNoEvents => &[Transport::Streamable],
            // 2026-07-28 has no legacy SSE form
            Self::ProxyPerSession2026 | Self::ProxyShared2026 => &[Transport::Streamable],
            Self::ProxyUpstream | Self::ProxyUpstream2026 => &[Transport::Streamable],
            Self::Peer(p) => p.transports(),
            _ => &[Transport::Streamable, Transport::Sse],
        }
    }

    /// The path clients use for `transport`.
    pub fn path(self, transport: Transport) -> &'static str {
        match (self, transport) {
            (Self::Baseline, _) => "/mcp",
            // session capture has a parameter to capture
            (
                Self::FullStack | Self::FullStackOAuth | Self::FullStackObserved,
                Transport::Streamable,
            ) => "/mcp?service=bench",
            (Self::FullStack | Self::FullStackOAuth | Self::FullStackObserved, Transport::Sse) => {
                "/sse?service=bench"
            }
            (_, Transport::Streamable) => "/mcp",
            (_, Transport::Sse) => "/sse",
        }
    }

    /// Whether its clients speak revision 2026-07-28 (no `initialize`, no
    /// session: every request carries its `_meta`).
    pub fn sessionless(self) -> bool {
        matches!(
            self,
            Self::ProxyPerSession2026 | Self::ProxyShared2026 | Self::ProxyUpstream2026
        )
    }

    /// Headers every client request carries (API keys).
    pub fn auth_headers(self) -> Vec<(HeaderName, HeaderValue)> {
        match self {
            Self::Peer(p) if p.api_key_header().is_some() => {
                let name = p.api_key_header().unwrap_or("x-api-key");
                match (
                    HeaderName::from_bytes(name.as_bytes()),
                    HeaderValue::from_str(API_KEY),
                ) {
                    (Ok(n), Ok(v)) => vec![(n, v)],
                    _ => Vec::new(),
                }
            }
            // the proxy with its API key on, like the peers that have one
            Self::ProxyPerSession
            | Self::ProxyShared
            | Self::ProxyPerSession2026
            | Self::ProxyShared2026
            | Self::ProxyUpstream
            | Self::ProxyUpstream2026 => {
                match HeaderValue::from_str(&format!("Bearer {API_KEY}")) {
                    Ok(v) => vec![(http::header::AUTHORIZATION, v)],
                    Err(_) => Vec::new(),
                }
            }
            // the full stack: an RS256 token its JWKS verifies (or, in the
            // OAuth case, an ES256 token of its own authorization server),
            // and an allowed browser Origin (so the Origin guard checks one)
            Self::FullStack | Self::FullStackOAuth | Self::FullStackObserved => {
                let token = if self == Self::FullStackOAuth {
                    crate::oauth::token("bench-client")
                } else {
                    crate::jwt::token("bench-client")
                };
                let Ok(token) = token else {
                    return Vec::new();
                };
                let mut headers = Vec::new();
                if let Ok(v) = HeaderValue::from_str(&format!("Bearer {token}")) {
                    headers.push((http::header::AUTHORIZATION, v));
                }
                headers.push((
                    http::header::ORIGIN,
                    HeaderValue::from_static(crate::servers::FULL_STACK_ORIGIN),
                ));
                headers
            }
            _ => Vec::new(),
        }
    }

    /// Why this target cannot be measured now, if it cannot.
    pub fn unavailable(self, tools: &Tools) -> Option<String> {
        match self {
            Self::Peer(p) => tools.peers.problem(p),
            _ => None,
        }
    }

    /// Whether it runs with [`Observers`] (an OTLP sink and an audit log).
    pub fn observed(self) -> bool {
        self == Self::FullStackObserved
    }

    /// The command that serves this target on `port` (reporting to
    /// `observers`, for the observed target).
    fn command(
        self,
        tools: &Tools,
        port: u16,
        transport: Transport,
        observers: Option<&Observers>,
    ) -> Result<Command, String> {
        let listen = format!("127.0.0.1:{port}");
        let server = |kind: ServerKind| {
            let mut c = Command::new(&tools.bench_server);
            c.arg(kind.as_str()).args(["--listen", &listen]);
            c
        };
        let proxy = |mode: &str| {
            let mut c = Command::new(&tools.bastion);
            c.args(["--listen", &listen, "--session-mode", mode])
                .args(["--api-key", API_KEY, "--"])
                .arg(&tools.echo_server)
                .env("MCP_BASTION_LOG", "warn");
            c
        };
        // the proxy and its upstream in one process group (one tree to
        // measure and to stop): the upstream on a port of its own, the proxy
        // once the upstream listens
        let upstream = |kind: ServerKind| -> Result<Command, String> {
            let upstream_port = free_port()?;
            let script = format!(
                "\"$1\" {kind} --listen 127.0.0.1:{upstream_port} &\n\
                 until (exec 3<>/dev/tcp/127.0.0.1/{upstream_port}) 2>/dev/null; do sleep 0.05; done\n\
                 exec \"$2\" --listen {listen} --api-key {API_KEY} --upstream http://127.0.0.1:{upstream_port}/mcp"
            );
            let mut c = Command::new("bash");
            c.arg("-c")
                .arg(script)
                .arg("bench-upstream")
                .arg(&tools.bench_server)
                .arg(&tools.bastion)
                .env("MCP_BASTION_LOG", "warn");
            Ok(c)
        };
        Ok(match self {
            Self::Baseline => server(ServerKind::AxumEcho),
            Self::Bastion => server(ServerKind::Bastion),
            Self::BastionNoEvents => server(ServerKind::BastionNoEvents),
            Self::FullStack => server(ServerKind::FullStack),
            Self::FullStackOAuth => server(ServerKind::FullStackOAuth),
            Self::FullStackObserved => {
                let observers =
                    observers.ok_or("full-stack-observed is started with its observers")?;
                let mut c = server(ServerKind::FullStackObserved);
                c.arg("--otlp")
                    .arg(observers.sink.url())
                    .arg("--audit-log")
                    .arg(&observers.audit_log);
                c
            }
            Self::Rmcp => server(ServerKind::Rmcp),
            Self::ProxyPerSession => proxy("per-session"),
            Self::ProxyShared => proxy("shared"),
            Self::ProxyPerSession2026 => proxy("per-session"),
            Self::ProxyShared2026 => proxy("shared"),
            Self::ProxyUpstream => upstream(ServerKind::Bastion)?,
            Self::ProxyUpstream2026 => upstream(ServerKind::Echo2026)?,
            Self::Peer(p) => tools
                .peers
                .command(p, port, transport, &tools.echo_server)?,
        })
    }
}

/// The binaries and installs the targets run.
#[derive(Debug, Clone)]
pub struct Tools {
    /// `bench-server`.
    pub bench_server: PathBuf,
    /// `bench-echo-server`, the stdio backend of every proxy.
    pub echo_server: PathBuf,
    /// `mcp-bastion`.
    pub bastion: PathBuf,
    /// The peer proxies.
    pub peers: PeerInstalls,
    /// Where target logs go.
    pub log_dir: PathBuf,
}

/// What the observed target reports to.
#[derive(Debug)]
pub struct Observers {
    /// The OTLP/HTTP receiver its spans are exported to.
    pub sink: OtlpSink,
    /// Its audit log file (removed before the start).
    pub audit_log: PathBuf,
}

/// What the observed target's observers got over one run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ObservedCounts {
    /// What the OTLP sink received.
    pub exported: Received,
    /// Lines in the audit log (one per record).
    pub audit_records: u64,
}

/// A started target; stopped (its whole process group) when dropped.
#[derive(Debug)]
pub struct Running {
    child: Child,
    stopped: bool,
    /// Its address.
    pub addr: SocketAddr,
    /// Its log file.
    pub log: PathBuf,
    /// The observed target's sink and audit log (dropped after the child
    /// is stopped: the fields drop after [`Drop::drop`]).
    observers: Option<Observers>,
}

fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| e.to_string())
}

/// The last lines of a log file.
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

impl Running {
    /// Starts `target` for `transport` and waits until it accepts connections.
    pub fn start(target: Target, transport: Transport, tools: &Tools) -> Result<Running, String> {
        let port = free_port()?;
        fs::create_dir_all(&tools.log_dir).map_err(|e| e.to_string())?;
        let observers = if target.observed() {
            let audit_log = tools.log_dir.join(format!(
                "{}-{}-audit.jsonl",
                target.name(),
                transport.as_str()
            ));
            match fs::remove_file(&audit_log) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(format!("{}: {e}", audit_log.display()));
                }
                _ => {}
            }
            Some(Observers {
                sink: OtlpSink::start()?,
                audit_log,
            })
        } else {
            None
        };
        let mut cmd = target.command(tools, port, transport, observers.as_ref())?;
        let log = tools
            .log_dir
            .join(format!("{}-{}.log", target.name(), transport.as_str()));
        let out = fs::File::create(&log).map_err(|e| e.to_string())?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        cmd.stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", target.name()))?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut running = Running {
            child,
            stopped: false,
            addr,
            log,
            observers,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(running);
            }
            if let Ok(Some(status)) = running.child.try_wait() {
                return Err(format!(
                    "{} exited ({status}) before listening:\n{}",
                    target.name(),
                    log_tail(&running.log, 15)
                ));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{} did not listen within {START_TIMEOUT:?}:\n{}",
                    target.name(),
                    log_tail(&running.log, 15)
                ));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// What the observed target's observers got (`None` for the other
    /// targets). Read after [`stop`](Self::stop): the server exports the
    /// spans it still holds when stopped.
    pub fn observed(&self) -> Option<ObservedCounts> {
        let observers = self.observers.as_ref()?;
        let audit_records = fs::File::open(&observers.audit_log)
            .map(|f| {
                use std::io::BufRead as _;
                std::io::BufReader::new(f).lines().count() as u64
            })
            .unwrap_or(0);
        Some(ObservedCounts {
            exported: observers.sink.received(),
            audit_records,
        })
    }

    /// The root process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The endpoint clients use for `target` over `transport`.
    pub fn endpoint(&self, target: Target, transport: Transport) -> Endpoint {
        Endpoint {
            addr: self.addr,
            path: target.path(transport).to_owned(),
            transport,
            sessionless: target.sessionless(),
            headers: target.auth_headers(),
        }
    }

    /// SIGTERM to the group, up to 3 s, then SIGKILL to the group.
    pub fn stop(&mut self) {
        // Once reaped, the group id may be reused: signal it only once.
        if std::mem::replace(&mut self.stopped, true) {
            return;
        }
        let Ok(raw) = i32::try_from(self.child.id()) else {
            return;
        };
        let group = Pid::from_raw(raw);
        let _ = nix::sys::signal::killpg(group, Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            thread::sleep(Duration::from_millis(25));
        }
        let _ = nix::sys::signal::killpg(group, Signal::SIGKILL);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop();
    }
}
