//! `mcp-bastion`: put a stdio MCP server on the network.
//!
//! ```text
//! mcp-bastion [--listen 127.0.0.1:8080] [--session-mode per-session|shared] -- <command> [args…]
//! mcp-bastion [--listen 127.0.0.1:8080] --upstream URL [--upstream-header "Name: value"] [--upstream-bearer-env VAR]
//! ```
//!
//! Serves Streamable HTTP at `/mcp`, the legacy SSE transport at `/sse`
//! (messages at `/messages`), each named server of the configuration file at
//! `/servers/<name>/mcp` and `/servers/<name>/sse`, and `/healthz`, `/readyz`.

mod config;
mod metrics;
mod ratelimit;
mod serve;
mod servers;
mod tls;
mod upstream;

use std::{
    collections::BTreeMap, ffi::OsString, net::SocketAddr, path::PathBuf, process::ExitCode,
    time::Duration,
};

use axum::{Router, http::StatusCode, routing::get};
use clap::{Parser, ValueEnum};
use mcp_bastion::{
    backend::DynBackend,
    inspect::McpInspectLayer,
    linger::{LingerLimits, LingeringCloseLayer},
    metrics::McpMetricsLayer,
    session::SessionLayer,
    trace::McpTraceLayer,
    transport::{Sse, StreamableHttp},
};
use tower::ServiceBuilder;
use tracing_subscriber::EnvFilter;

mod auth;
mod session;

/// Put a stdio MCP server on the network: Streamable HTTP at /mcp, legacy SSE at /sse.
#[derive(Debug, Parser)]
#[command(name = "mcp-bastion", version, about)]
struct Cli {
    /// A TOML file with any of these options under their long names (and the
    /// server as `command = [..]`); flags override it, `MCP_BASTION_<NAME>`
    /// variables override both. `mcp-bastion check-config FILE` validates one.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,

    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "MCP_BASTION_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,

    /// One child process per session, or one shared by all sessions.
    #[arg(long, value_enum, env = "MCP_BASTION_SESSION_MODE", default_value_t = SessionMode::PerSession)]
    session_mode: SessionMode,

    /// Serve everything under this path prefix (e.g. `/k/abc`).
    #[arg(long, env = "MCP_BASTION_PATH_PREFIX", default_value = "")]
    path_prefix: String,

    /// Answer Streamable HTTP requests with JSON instead of SSE streams.
    #[arg(long)]
    json_response: bool,

    /// Also serve revision 2026-07-28 (sessionless) requests, each over a
    /// short backend connection. Best with `--session-mode shared`: in
    /// per-session mode every such request starts a child.
    #[arg(long, env = "MCP_BASTION_SESSIONLESS")]
    sessionless: bool,

    /// This replica's route key, `[A-Za-z0-9_-]{1,32}`: session ids start with
    /// `KEY.` so that a load balancer can send each session to its replica
    /// (see docs/deployment.md). A replica also closes its listener at the
    /// shutdown signal, so that the load balancer tries another one.
    #[arg(long, alias = "replica-id", env = "MCP_BASTION_ROUTE_KEY", value_parser = parse_route_key)]
    route_key: Option<String>,

    /// Seconds between SSE keepalive comments (0 turns them off).
    #[arg(long, default_value_t = 30)]
    keepalive_secs: u64,

    /// Largest accepted POST body in bytes.
    #[arg(long, default_value_t = 4 * 1024 * 1024)]
    max_body_bytes: usize,

    /// Environment variables passed to the child from this process's own
    /// environment (repeatable). Default: PATH, HOME, USER, LANG, TMPDIR.
    #[arg(long = "pass-env", value_name = "NAME")]
    pass_env: Vec<String>,

    /// Fixed environment variables for the child, `NAME=VALUE` (repeatable).
    #[arg(long = "env", value_name = "NAME=VALUE")]
    env: Vec<String>,

    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,

    /// Serve HTTPS with this PEM certificate chain (with `--tls-key`), for
    /// deployments without a TLS-terminating proxy in front.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,

    /// The PEM private key of `--tls-cert`.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,

    /// Serve Prometheus metrics at `/metrics` on this address only (for
    /// example a loopback port for the scraper), instead of on the main
    /// listener.
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<SocketAddr>,

    /// Serve without authentication when none is configured. Without this
    /// flag the proxy then generates an API key at start (printed once to
    /// stderr) and requires it, and refuses to listen on a non-loopback
    /// address.
    #[arg(long)]
    allow_unauthenticated: bool,

    /// Seconds to wait for in-flight work on shutdown.
    #[arg(long, default_value_t = 10)]
    shutdown_timeout: u64,

    #[command(flatten)]
    serve: serve::ServeArgs,

    #[command(flatten)]
    rate_limit: ratelimit::RateLimitArgs,

    #[command(flatten)]
    auth: auth::AuthArgs,

    #[command(flatten)]
    session: session::SessionArgs,

    /// The remote MCP server to proxy to, instead of a command.
    #[command(flatten)]
    upstream: upstream::UpstreamArgs,

    /// The stdio MCP server to run, after `--` (or `--upstream URL` instead).
    #[arg(last = true, num_args = 1.., conflicts_with = "upstream")]
    command: Vec<String>,

    /// The named servers of the configuration file (`[servers.<name>]`) and
    /// of `MCP_SERVER_CONFIG`.
    #[arg(skip)]
    servers: Vec<servers::NamedServer>,

    /// The named server also served as the default one (`MCP_SERVER_CONFIG`
    /// with one server).
    #[arg(skip)]
    default_alias: Option<String>,
}

/// `--session-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum SessionMode {
    /// A child process per session.
    PerSession,
    /// One child process for all sessions.
    Shared,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn init_tracing(format: LogFormat) {
    let filter =
        EnvFilter::try_from_env("MCP_BASTION_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// The default server's backend (`-- COMMAND` or `--upstream`), if any.
fn build_backend(cli: &Cli) -> Result<Option<DynBackend>, String> {
    if let Some(backend) = cli.upstream.build()? {
        return Ok(Some(backend));
    }
    if cli.command.is_empty() {
        if cli.servers.is_empty() {
            return Err(
                "give the MCP server to run after `--`, or `--upstream URL`, or \
                 `[servers.<name>]` tables in the --config file"
                    .into(),
            );
        }
        return Ok(None);
    }
    let session_env = servers::session_env(&cli.auth.principal_env, &cli.session.param_env)?;
    servers::stdio_backend(
        &cli.command,
        cli.session_mode,
        &cli.pass_env,
        &cli.env,
        session_env,
    )
    .map(Some)
}

/// One server to mount: its name (`None` for the default) and backend, and
/// its session layer.
struct ServerParts {
    name: Option<String>,
    backend: DynBackend,
    sessions: SessionLayer,
}

fn parse_route_key(key: &str) -> Result<String, String> {
    mcp_bastion::session::check_route_key(key)
        .map(|()| key.to_owned())
        .map_err(|e| e.to_string())
}

/// The router, in the layer order of ARCHITECTURE.md (each `.layer` wraps
/// the ones before it): CORS (preflights answered before anything else), the
/// Origin guard, authentication, the body parsed once, tracing and metrics
/// (which see the parsed request and the principal, and count refusals by
/// the layers inside), per-tool scopes, rate limits, then each server's
/// session layer and transports: the default server at `/mcp` and `/sse`,
/// each named one under `/servers/<name>/`.
fn app(
    cli: &Cli,
    parts: Vec<ServerParts>,
    auth: &auth::AuthLayers,
) -> Result<(Router, servers::Servers), String> {
    let keepalive = (cli.keepalive_secs > 0).then(|| Duration::from_secs(cli.keepalive_secs));
    let mut mounted = servers::Servers::default();
    let mut mcp = Router::new();
    for ServerParts {
        name,
        backend,
        sessions,
    } in parts
    {
        let mut streamable = StreamableHttp::new(backend.clone())
            .json_response(cli.json_response)
            .sessionless(cli.sessionless)
            .keepalive(keepalive)
            .session_idle_timeout(cli.session.session_idle_timeout.0);
        let mut sse = Sse::new(backend.clone()).keepalive(keepalive);
        let mut sessions = sessions;
        if let Some(key) = &cli.route_key {
            streamable = streamable.route_key(key.clone());
            sse = sse.route_key(key.clone());
            sessions = sessions.replica_id(key.clone());
        }
        let sessions = sessions.closer(streamable.clone()).closer(sse.clone());
        let server: Router = Router::new()
            .route_service("/mcp", streamable.clone())
            .merge(sse.clone().into_router())
            .layer(sessions);
        mcp = match &name {
            None => mcp.merge(server),
            Some(name) => {
                if cli.default_alias.as_deref() == Some(name.as_str()) {
                    mcp = mcp.merge(server.clone());
                }
                mcp.nest(&format!("/servers/{name}"), server)
            }
        };
        mounted.0.push(servers::Mounted {
            name,
            streamable,
            sse,
            backend,
        });
    }
    let (cors, origin_guard) = cli.session.browser_layers(cli.session.origins(cli.listen)?);
    let ready = mounted.clone();
    // Each stack is applied with one `Router::layer`: that call boxes what it
    // is given into a route of its own, so layering one layer at a time
    // would add a boxed clone and a route future per layer to every request.
    let mcp = mcp.layer(
        ServiceBuilder::new()
            .option_layer(auth.authentication())
            .layer(McpInspectLayer::new().max_body_bytes(cli.max_body_bytes))
            .layer(McpTraceLayer::new())
            .layer(McpMetricsLayer::new())
            .option_layer(auth.authorization())
            .layer(cli.rate_limit.layer()),
    );
    let mcp = auth
        .with_metadata(mcp)
        .layer(
            ServiceBuilder::new()
                .layer(LingeringCloseLayer::new(LingerLimits::default()))
                .layer(cors)
                .layer(origin_guard),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || {
                let ready = ready.clone();
                async move {
                    match ready.readiness().await {
                        Ok(()) => (StatusCode::OK, "ready".to_owned()),
                        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {e}")),
                    }
                }
            }),
        );
    let prefix = cli.path_prefix.trim_end_matches('/');
    let router = if prefix.is_empty() {
        mcp
    } else {
        Router::new().nest(prefix, mcp)
    };
    Ok((router, mounted))
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// How long a graceful shutdown leaves the last answers to reach their
/// clients before it ends the sessions.
const SETTLE: Duration = Duration::from_millis(300);

/// Graceful shutdown, after the signal: no new sessions (503,
/// and `/readyz` not ready) while requests in flight finish (up to
/// `timeout`; their sessions are still served on the connections already
/// open, so clients can answer a server's request or cancel), then sessions
/// close (their SSE streams end) and children are ended. When this returns,
/// the open connections close once idle; a second `timeout` bounds them.
async fn drain(servers: servers::Servers, timeout: Duration) {
    let in_flight = || servers.in_flight_requests();
    tracing::info!(
        in_flight = in_flight(),
        "shutting down: no new sessions; waiting for requests in flight"
    );
    let deadline = tokio::time::Instant::now() + timeout;
    let quiet = || async {
        while in_flight() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    quiet().await;
    if in_flight() == 0 {
        // The last answers are routed but may still be on their way out: let
        // clients read them before their other streams (GET) end, which some
        // SDKs treat as a failure of the whole session. Requests that came in
        // meanwhile (on connections still open) are waited for again.
        let left_time = deadline.saturating_duration_since(tokio::time::Instant::now());
        tokio::time::sleep(SETTLE.min(left_time)).await;
        quiet().await;
    }
    let left = in_flight();
    if left > 0 {
        tracing::warn!(
            left,
            "shutdown timeout reached with requests in flight; ending them"
        );
    }
    tracing::info!("closing sessions and ending children");
    servers.close_sessions_when_idle(deadline).await;
    let _ = tokio::time::timeout(timeout, servers.shutdown()).await;
    tokio::spawn(async move {
        tokio::time::sleep(timeout).await;
        tracing::warn!("connections still open after the shutdown timeout; exiting");
        std::process::exit(0);
    });
}

/// The safe default when no authentication is configured: on a loopback
/// address, a random API key generated now, printed once to stderr (not to
/// the logs) with a ready client URL and header, and required; on any other
/// address, a refusal. `--allow-unauthenticated` serves without
/// authentication instead (with a warning off loopback).
fn embedded_default_auth(cli: &mut Cli) -> Result<Option<String>, String> {
    if cli.auth.authenticates() {
        return Ok(None);
    }
    let loopback = cli.listen.ip().is_loopback();
    if cli.allow_unauthenticated {
        if !loopback {
            tracing::warn!(listen = %cli.listen, "serving WITHOUT authentication on a non-loopback address (--allow-unauthenticated)");
        }
        return Ok(None);
    }
    if !loopback {
        return Err(format!(
            "refusing to listen on {} without authentication: configure --api-key, \
             --api-keys-file, a --jwt-* key source, --auth-server-url or --introspection-url \
             (or pass --allow-unauthenticated)",
            cli.listen
        ));
    }
    let mut bytes = [0u8; 24];
    rand::fill(&mut bytes);
    let key: String = std::iter::once("mcpb_".to_owned())
        .chain(bytes.iter().map(|b| format!("{b:02x}")))
        .collect();
    cli.auth.api_keys.push(key.clone());
    Ok(Some(key))
}

/// Tells the operator, once, the key [`embedded_default_auth`] generated.
fn print_generated_key(key: &str, scheme: &str, addr: SocketAddr, prefix: &str) {
    let prefix = prefix.trim_end_matches('/');
    eprintln!(
        "mcp-bastion: no authentication configured; generated an API key for this run \
         (shown once, never logged):\n\n    {key}\n\n  \
         connect to   {scheme}://{addr}{prefix}/mcp   (legacy SSE: {scheme}://{addr}{prefix}/sse)\n  \
         with header  Authorization: Bearer {key}\n"
    );
}

/// `cli` with the named servers of `layered`.
fn with_servers(mut cli: Cli, layered: &config::Layered) -> Result<Cli, String> {
    for (name, table) in &layered.servers {
        let parsed = servers::ServerCli::try_parse_from(table.to_args())
            .map_err(|e| format!("[servers.{name}]: {}", e.kind()))?;
        cli.servers.push(servers::NamedServer {
            name: name.clone(),
            cli: parsed,
        });
    }
    cli.default_alias = layered.default_alias.clone();
    Ok(cli)
}

/// The command line merged with the configuration file and the environment
/// (see [`config`]); `check-config FILE [FLAGS…]` validates and prints
/// instead.
fn parse_cli() -> Result<Cli, ExitCode> {
    let argv: Vec<OsString> = std::env::args_os().collect();
    let env: BTreeMap<String, String> = std::env::vars().collect();
    if argv.get(1).is_some_and(|a| a == "check-config") {
        let Some(file) = argv.get(2) else {
            eprintln!("usage: mcp-bastion check-config FILE [FLAGS…] [-- COMMAND…]");
            return Err(ExitCode::from(2));
        };
        // the file, and the flags of the command line it is checked with
        let args: Vec<OsString> = [argv[0].clone(), "--config".into(), file.clone()]
            .into_iter()
            .chain(argv.iter().skip(3).cloned())
            .collect();
        let layered = match config::layer::<Cli>(&args, &env) {
            Ok(l) => l,
            Err(e) if config::is_unparsed(&e) => {
                let token = e.message.trim_start_matches("UNPARSED ");
                eprintln!(
                    "mcp-bastion: check-config: unknown flag, or a flag without its value: `{token}`"
                );
                return Err(ExitCode::from(2));
            }
            Err(e) => {
                eprintln!("mcp-bastion: {e}");
                return Err(ExitCode::from(2));
            }
        };
        let cli = match Cli::try_parse_from(layered.to_args()) {
            Ok(cli) => cli,
            Err(e) => {
                eprintln!("mcp-bastion: {}: {}", file.to_string_lossy(), e.kind());
                let _ = e.print();
                return Err(ExitCode::from(2));
            }
        };
        if let Err(e) = with_servers(cli, &layered).and_then(|cli| {
            build_backend(&cli)?;
            cli.servers.iter().try_for_each(|s| {
                s.backend(&cli.auth.principal_env, &cli.session.param_env)
                    .map(drop)
            })
        }) {
            eprintln!("mcp-bastion: {}: {e}", file.to_string_lossy());
            return Err(ExitCode::from(2));
        }
        print!("{}", config::render(&layered));
        return Err(ExitCode::SUCCESS);
    }
    match config::layer::<Cli>(&argv, &env) {
        Ok(layered) => {
            let cli = Cli::try_parse_from(layered.to_args()).map_err(|e| {
                let _ = e.print();
                ExitCode::from(2)
            })?;
            with_servers(cli, &layered).map_err(|e| {
                eprintln!("mcp-bastion: {e}");
                ExitCode::from(2)
            })
        }
        // help, version or a mistyped flag: clap explains
        Err(e) if config::is_unparsed(&e) => Ok(Cli::parse_from(argv)),
        Err(e) => {
            eprintln!("mcp-bastion: {e}");
            Err(ExitCode::from(2))
        }
    }
}

/// mimalloc rather than glibc's malloc, for the reason in
/// `docs/deployment.md` ("The allocator of a loaded server").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let mut cli = match parse_cli() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    init_tracing(cli.log_format);
    if !cli.path_prefix.is_empty() && !cli.path_prefix.starts_with('/') {
        eprintln!("mcp-bastion: --path-prefix must start with `/`");
        return ExitCode::from(2);
    }
    let backend = match build_backend(&cli) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("mcp-bastion: {e}");
            return ExitCode::from(2);
        }
    };
    let mut named = Vec::new();
    for server in &cli.servers {
        match server.backend(&cli.auth.principal_env, &cli.session.param_env) {
            Ok(b) => named.push(b),
            Err(e) => {
                eprintln!("mcp-bastion: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let tls = match (&cli.tls_cert, &cli.tls_key) {
        (Some(cert), Some(key)) => match tls::server_config(cert, key) {
            Ok(config) => Some(config),
            Err(e) => {
                eprintln!("mcp-bastion: {e}");
                return ExitCode::from(2);
            }
        },
        _ => None,
    };
    let generated_key = match embedded_default_auth(&mut cli) {
        Ok(key) => key,
        Err(e) => {
            eprintln!("mcp-bastion: {e}");
            return ExitCode::from(2);
        }
    };
    let auth = match cli.auth.build(cli.path_prefix.trim_end_matches('/')) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("mcp-bastion: {e}");
            return ExitCode::from(2);
        }
    };
    if !cli.session.param_env.is_empty()
        && backend.is_some()
        && cli.upstream.upstream.is_none()
        && cli.session_mode == SessionMode::Shared
    {
        eprintln!(
            "mcp-bastion: --param-env sets a per-session child's environment: it needs --session-mode per-session"
        );
        return ExitCode::from(2);
    }
    let mut parts = Vec::new();
    let servers =
        backend
            .map(|b| (None, b, None))
            .into_iter()
            .chain(cli.servers.iter().zip(named).map(|(server, b)| {
                let param_env =
                    (!server.cli.param_env.is_empty()).then(|| server.cli.param_env.clone());
                (Some(server.name.clone()), b, param_env)
            }));
    for (name, backend, param_env) in servers {
        let mut session_args = cli.session.clone();
        if let Some(param_env) = param_env {
            session_args.param_env = param_env;
        }
        let sessions = match session_args
            .session_layer(cli.rate_limit.redis_url.as_ref(), name.as_deref())
            .await
        {
            Ok(layer) => layer,
            Err(e) => {
                let on = name.map(|n| format!("[servers.{n}]: ")).unwrap_or_default();
                eprintln!("mcp-bastion: {on}{e}");
                return ExitCode::from(2);
            }
        };
        parts.push(ServerParts {
            name,
            backend,
            sessions,
        });
    }
    let (router, mounted) = match app(&cli, parts, &auth) {
        Ok(app) => app,
        Err(e) => {
            eprintln!("mcp-bastion: {e}");
            return ExitCode::from(2);
        }
    };
    let scrape = match metrics::Scrape::install(mounted.clone()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("mcp-bastion: {e}");
            return ExitCode::from(1);
        }
    };
    let router = match cli.metrics_listen {
        Some(addr) => match scrape.serve_alone(addr).await {
            Ok(local) => {
                eprintln!("mcp-bastion metrics on http://{local}/metrics");
                router
            }
            Err(e) => {
                eprintln!("mcp-bastion: {e}");
                return ExitCode::from(1);
            }
        },
        // on the main listener, /metrics needs the same credentials as MCP
        None => router.merge(auth.protect(scrape.router())),
    };
    let listener = match tokio::net::TcpListener::bind(cli.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("mcp-bastion: cannot listen on {}: {e}", cli.listen);
            return ExitCode::from(1);
        }
    };
    let addr = listener.local_addr().unwrap_or(cli.listen);
    let scheme = if tls.is_some() { "https" } else { "http" };
    if let Some(key) = &generated_key {
        print_generated_key(key, scheme, addr, &cli.path_prefix);
    }
    eprintln!("mcp-bastion listening on {scheme}://{addr}");
    if cli.command.is_empty() && cli.upstream.upstream.is_none() && cli.default_alias.is_none() {
        tracing::info!(%addr, prefix = %cli.path_prefix, tls = tls.is_some(), "serving named servers only (no default server at /mcp, /sse)");
    } else {
        tracing::info!(%addr, prefix = %cli.path_prefix, tls = tls.is_some(), "serving /mcp (Streamable HTTP) and /sse (legacy SSE)");
    }
    for server in &cli.servers {
        tracing::info!(server = %server.name, "serving /servers/{0}/mcp and /servers/{0}/sse", server.name);
    }

    let timeout = Duration::from_secs(cli.shutdown_timeout);
    let (signalled, on_signal) = tokio::sync::oneshot::channel::<()>();
    let for_signal = mounted.clone();
    let stop_accepting = async move {
        shutdown_signal().await;
        // before the listener closes: a request on a connection already open
        // that would open a session gets 503, which a load balancer retries
        for_signal.start_draining();
        let _ = signalled.send(());
    };
    let for_drain = mounted.clone();
    let drained = async move {
        if on_signal.await.is_ok() {
            drain(for_drain, timeout).await;
        }
    };
    // a replica (route key) closes its listener at the signal, so that a load
    // balancer tries another one; a lone server accepts until the drain ends
    let close = match cli.route_key {
        Some(_) => serve::ListenerClose::AtSignal,
        None => serve::ListenerClose::AfterDrain,
    };
    serve::serve(
        listener,
        router,
        tls,
        &cli.serve,
        (stop_accepting, close),
        drained,
    )
    .await;
    mounted.shutdown().await;
    ExitCode::SUCCESS
}
