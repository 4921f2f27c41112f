//! `mcp-bastion`: put a stdio MCP server on the network.
//!
//! ```text
//! mcp-bastion [--listen 127.0.0.1:8080] [--session-mode per-session|shared] -- <command> [args…]
//! mcp-bastion [--listen 127.0.0.1:8080] --upstream URL [--upstream-header "Name: value"] [--upstream-bearer-env VAR]
//! mcp-bastion check-config FILE [FLAGS…] [-- COMMAND…]
//! ```
//!
//! Serves Streamable HTTP at `/mcp`, the legacy SSE transport at `/sse`
//! (messages at `/messages`), each named server of the configuration file at
//! `/servers/<name>/mcp` and `/servers/<name>/sse`, and `/healthz`, `/readyz`.
//!
//! This file holds the flags and the start; the configuration they feed is
//! [`mcp_bastion_cli::config`], the router [`app`], the accept loop
//! [`serve`], graceful shutdown [`drain`], the subcommand [`check`].

mod app;
mod auth;
mod check;
mod drain;
mod metrics;
mod oauth;
mod outbound;
mod pem;
mod ratelimit;
mod serve;
mod servers;
mod session;
mod telemetry;
mod tls;
mod upstream;

use std::{
    collections::BTreeMap, ffi::OsString, net::SocketAddr, path::PathBuf, process::ExitCode,
    time::Duration,
};

use clap::Parser;
use figment::value::{Dict, Value};
use mcp_bastion::{
    audit::{AuditWriter, DEFAULT_QUEUE_CAPACITY, McpAuditLayer},
    backend::DynBackend,
};
use mcp_bastion_cli::config::{
    Config, ConfigError, ConfigFile, Inputs, Loaded, load,
    options::{LogFormat, SessionMode},
};
use serde::Serialize;
use tracing_subscriber::EnvFilter;

/// Put a stdio MCP server on the network: Streamable HTTP at /mcp, legacy SSE at /sse.
///
/// Every option can also be set in the --config file (under its long name)
/// and in a variable MCP_BASTION_<NAME>; a flag wins over the variable, the
/// variable over the file. `mcp-bastion check-config FILE` shows the result.
#[derive(Debug, Parser, Serialize)]
#[command(name = "mcp-bastion", version, about)]
#[serde(rename_all = "kebab-case")]
struct Cli {
    /// A TOML file with any of these options under their long names (and the
    /// server as `command = [..]`); `MCP_BASTION_<NAME>` variables override
    /// it, flags override both. `mcp-bastion check-config FILE` validates one.
    #[arg(long, value_name = "FILE")]
    config: Option<String>,

    /// Address to listen on (port 0 picks a free port) [default: 127.0.0.1:8080].
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,

    /// One child process per session (per-session), or one shared by all
    /// sessions (shared) [default: per-session].
    #[arg(long, value_name = "MODE")]
    session_mode: Option<String>,

    /// The revision 2026-07-28 requests are spoken to the stdio child at:
    /// `2026-07-28` sends them as they are without asking (per-session
    /// mode), `2025-11-25` bridges them onto 2025-11-25 sessions even if the
    /// child speaks 2026-07-28 [default: what the child's `server/discover`
    /// says].
    #[arg(long, value_name = "VERSION")]
    stdio_protocol_version: Option<String>,

    /// Serve everything under this path prefix (e.g. `/k/abc`).
    #[arg(long, value_name = "PREFIX")]
    path_prefix: Option<String>,

    /// Answer Streamable HTTP requests with JSON instead of SSE streams.
    #[arg(long)]
    json_response: bool,

    /// Deprecated, no effect: revision 2026-07-28 (sessionless) requests are
    /// served by default (`--no-2026` turns them off). Still accepted so
    /// that existing command lines and configurations work.
    #[arg(long)]
    sessionless: bool,

    /// Do not serve revision 2026-07-28 (sessionless) requests: they get 400
    /// with -32022, and negotiating clients fall back to `initialize`.
    #[arg(long = "no-2026")]
    no_2026: bool,

    /// This replica's route key, `[A-Za-z0-9_-]{1,32}`: session ids start with
    /// `KEY.` so that a load balancer can send each session to its replica
    /// (see docs/deployment.md). A replica also closes its listener at the
    /// shutdown signal, so that the load balancer tries another one.
    #[arg(long, alias = "replica-id", value_name = "KEY")]
    route_key: Option<String>,

    /// Seconds between SSE keepalive comments (0 turns them off) [default: 30].
    #[arg(long, value_name = "SECS")]
    keepalive_secs: Option<String>,

    /// Largest accepted POST body in bytes [default: 4194304].
    #[arg(long, value_name = "BYTES")]
    max_body_bytes: Option<String>,

    /// Environment variables passed to the child from this process's own
    /// environment (repeatable). Default: PATH, HOME, USER, LANG, TMPDIR.
    #[arg(long, value_name = "NAME")]
    pass_env: Vec<String>,

    /// Fixed environment variables for the child, `NAME=VALUE` (repeatable).
    #[arg(long, value_name = "NAME=VALUE")]
    env: Vec<String>,

    /// Only the backend's tools matching this glob (`*`, `?`) are listed and
    /// callable (repeatable). Default: every tool.
    #[arg(long, value_name = "GLOB")]
    tools_allow: Vec<String>,

    /// The backend's tools matching this glob are removed: not listed, and a
    /// call gets the error of an unknown tool before the backend sees it
    /// (repeatable; wins over --tools-allow).
    #[arg(long, value_name = "GLOB")]
    tools_deny: Vec<String>,

    /// Log format: text or json [default: text].
    #[arg(long, value_name = "FORMAT")]
    log_format: Option<String>,

    /// Serve HTTPS with this PEM certificate chain (with `--tls-key`), for
    /// deployments without a TLS-terminating proxy in front.
    #[arg(long, value_name = "FILE")]
    tls_cert: Option<String>,

    /// The PEM private key of `--tls-cert`.
    #[arg(long, value_name = "FILE")]
    tls_key: Option<String>,

    /// Also trust the CA certificates in this PEM file, beside the Mozilla
    /// roots built in, for every outbound HTTPS connection the operator
    /// configures: the OAuth identity provider, JWKS and OIDC discovery,
    /// remote authentication and introspection, upstream MCP servers (a
    /// private CA). The OTLP exporter has its own variables.
    #[arg(long, value_name = "FILE")]
    outbound_ca: Option<String>,

    /// Write one JSON audit record per request to this file (appended to;
    /// reopened on SIGHUP, for logrotate), or to `stdout` or `stderr`.
    #[arg(long, value_name = "PATH|stdout|stderr")]
    audit_log: Option<String>,

    /// Add the SHA-256 of each tool call's canonical arguments to its audit
    /// record (the arguments themselves are never logged).
    #[arg(long)]
    audit_hash_arguments: bool,

    /// Export trace spans over OTLP to this collector (e.g.
    /// `http://127.0.0.1:4318` for HTTP/protobuf, `/v1/traces` is added;
    /// `http://127.0.0.1:4317` for gRPC). Default: `OTEL_EXPORTER_OTLP_ENDPOINT`
    /// (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`); without any, nothing is
    /// exported.
    #[arg(long, value_name = "URL")]
    otlp_endpoint: Option<String>,

    /// The OTLP protocol: grpc or http-protobuf [default:
    /// `OTEL_EXPORTER_OTLP_PROTOCOL`, else http-protobuf].
    #[arg(long, value_name = "PROTOCOL")]
    otlp_protocol: Option<String>,

    /// Serve Prometheus metrics at `/metrics` on this address only (for
    /// example a loopback port for the scraper), instead of on the main
    /// listener.
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<String>,

    /// Serve without authentication when none is configured. Without this
    /// flag the proxy then generates an API key at start (printed once to
    /// stderr) and requires it, and refuses to listen on a non-loopback
    /// address.
    #[arg(long)]
    allow_unauthenticated: bool,

    /// Seconds to wait for in-flight work on shutdown [default: 10].
    #[arg(long, value_name = "SECS")]
    shutdown_timeout: Option<String>,

    #[command(flatten)]
    #[serde(flatten)]
    serve: serve::ServeFlags,

    #[command(flatten)]
    #[serde(flatten)]
    rate_limit: ratelimit::RateLimitFlags,

    #[command(flatten)]
    #[serde(flatten)]
    auth: auth::AuthFlags,

    #[command(flatten)]
    #[serde(flatten)]
    session: session::SessionFlags,

    #[command(flatten)]
    #[serde(flatten)]
    oauth: oauth::OAuthFlags,

    /// The remote MCP server to proxy to, instead of a command.
    #[command(flatten)]
    #[serde(flatten)]
    upstream: upstream::UpstreamFlags,

    /// The stdio MCP server to run, after `--` (or `--upstream URL` instead).
    #[arg(last = true, num_args = 1.., conflicts_with = "upstream")]
    command: Vec<String>,
}

impl Cli {
    /// The flags given on the command line, under their option keys: the
    /// highest layer of the configuration. Flags not given are left out (a
    /// switch can only be turned on).
    fn given(&self) -> Dict {
        let Ok(Value::Dict(_, all)) = Value::serialize(self) else {
            return Dict::new();
        };
        all.into_iter()
            .filter(|(_, value)| match value {
                Value::Empty(..) => false,
                Value::Bool(_, on) => *on,
                Value::Array(_, items) => !items.is_empty(),
                _ => true,
            })
            .collect()
    }
}

/// The configuration of `cli` with the environment and the file (`file`, or
/// else the one `--config` or `MCP_BASTION_CONFIG` names).
fn load_config(
    cli: &Cli,
    env: &BTreeMap<String, String>,
    file: Option<PathBuf>,
) -> Result<Loaded, ConfigError> {
    let flags = cli.given();
    let file = file
        .or_else(|| Inputs::file_path(&flags, env))
        .map(|path| ConfigFile::read(&path))
        .transpose()?;
    load(Inputs { flags, env, file })
}

/// The default server's backend (`None` when only named servers are
/// configured) and each named server's.
fn backends(
    config: &Config,
    trust: &outbound::OutboundTrust,
) -> Result<(Option<DynBackend>, Vec<DynBackend>), String> {
    let principal_env = config.auth.principal_env.to_vec();
    let default = servers::backend(
        &config.server,
        None,
        &principal_env,
        &config.session.param_env.to_vec(),
        trust,
    )?;
    if default.is_none() && config.servers.is_empty() {
        return Err(
            "give the MCP server to run after `--`, or `--upstream URL`, or \
             `[servers.<name>]` tables in the --config file"
                .into(),
        );
    }
    let mut named = Vec::new();
    for (name, server) in &config.servers {
        named.push(
            servers::backend(
                server,
                Some(name),
                &principal_env,
                &server
                    .param_env
                    .as_ref()
                    .map(|p| p.to_vec())
                    .unwrap_or_default(),
                trust,
            )?
            .ok_or_else(|| format!("[servers.{name}]: no command or upstream"))?,
        );
    }
    Ok((default, named))
}

fn init_tracing(format: LogFormat, export: Option<telemetry::ExportLayer>) {
    use tracing_subscriber::{
        Layer, filter::FilterExt, layer::SubscriberExt, util::SubscriberInitExt,
    };
    let filter =
        EnvFilter::try_from_env("MCP_BASTION_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    // The export-only spans (a request's SERVER span, the backend calls'
    // CLIENT spans) repeat for the exporter what the log span says: formatting
    // their fields for the logs would be work per request for nothing.
    let filter = filter.and(tracing_subscriber::filter::filter_fn(|meta| {
        !(meta.is_span() && meta.target() == mcp_bastion::otel::EXPORT_ONLY_TARGET)
    }));
    // colours for a terminal; a file, a pipe or journald gets plain text
    let logs = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let logs = match format {
        LogFormat::Text => logs.with_filter(filter).boxed(),
        LogFormat::Json => logs.json().with_filter(filter).boxed(),
    };
    // the export has its own level (info), whatever MCP_BASTION_LOG says
    tracing_subscriber::registry()
        .with(export)
        .with(logs)
        .init();
}

/// The safe default when no authentication is configured: on a loopback
/// address, a random API key generated now, printed once to stderr (not to
/// the logs) with a ready client URL and header, and required; on any other
/// address, a refusal. `--allow-unauthenticated` serves without
/// authentication instead (with a warning off loopback).
fn embedded_default_auth(config: &Config) -> Result<Option<String>, String> {
    if auth::authenticates(&config.auth) || config.oauth.enabled() {
        return Ok(None);
    }
    let listen = *config.general.listen.get();
    let loopback = listen.ip().is_loopback();
    if config.general.allow_unauthenticated {
        if !loopback {
            tracing::warn!(%listen, "serving WITHOUT authentication on a non-loopback address (--allow-unauthenticated)");
        }
        return Ok(None);
    }
    if !loopback {
        return Err(format!(
            "refusing to listen on {listen} without authentication: configure --api-key, \
             --api-keys-file, a --jwt-* key source, --auth-server-url, --introspection-url \
             or --oauth-issuer (or pass --allow-unauthenticated)"
        ));
    }
    let mut bytes = [0u8; 24];
    rand::fill(&mut bytes);
    let key: String = std::iter::once("mcpb_".to_owned())
        .chain(bytes.iter().map(|b| format!("{b:02x}")))
        .collect();
    Ok(Some(key))
}

/// Tells the operator, once, the key [`embedded_default_auth`] generated.
fn print_generated_key(key: &str, scheme: &str, addr: SocketAddr, prefix: &str) {
    eprintln!(
        "mcp-bastion: no authentication configured; generated an API key for this run \
         (shown once, never logged):\n\n    {key}\n\n  \
         connect to   {scheme}://{addr}{prefix}/mcp   (legacy SSE: {scheme}://{addr}{prefix}/sse)\n  \
         with header  Authorization: Bearer {key}\n"
    );
}

/// mimalloc rather than glibc's malloc, for the reason in
/// `docs/deployment.md` ("The allocator of a loaded server").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Prints `error` and gives the exit code of a configuration error.
fn refuse(error: impl std::fmt::Display) -> ExitCode {
    eprintln!("mcp-bastion: {error}");
    ExitCode::from(2)
}

#[tokio::main]
async fn main() -> ExitCode {
    let argv: Vec<OsString> = std::env::args_os().collect();
    // variables that are not Unicode configure nothing here
    let env: BTreeMap<String, String> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    if argv.get(1).is_some_and(|a| a == "check-config") {
        return check::run(&argv, &env);
    }
    let cli = Cli::parse();
    let config = match load_config(&cli, &env, None) {
        Ok(loaded) => loaded.config,
        Err(e) => return refuse(e),
    };
    start(config).await
}

/// Builds everything `config` describes, serves until a shutdown signal,
/// then drains.
async fn start(config: Config) -> ExitCode {
    let exporting = telemetry::settings(&config.general, |name| std::env::var(name).ok())
        .and_then(telemetry::Telemetry::start);
    let (telemetry, export) = match exporting {
        Ok(started) => started,
        Err(e) => return refuse(e),
    };
    init_tracing(*config.general.log_format.get(), export);
    if let Some(flush) = telemetry.flusher() {
        drain::before_forced_exit(flush);
    }
    let code = serve_until_shutdown(config).await;
    telemetry.shutdown().await;
    code
}

/// Everything `start` does once logging (and trace export) is set up.
async fn serve_until_shutdown(mut config: Config) -> ExitCode {
    if let Err(e) = outbound::apply_redis_ca(&mut config.rate_limit) {
        return refuse(e);
    }
    let trust = match outbound::OutboundTrust::load(&config.general) {
        Ok(trust) => trust,
        Err(e) => return refuse(e),
    };
    let (backend, named) = match backends(&config, &trust) {
        Ok(b) => b,
        Err(e) => return refuse(e),
    };
    let tls = match (&config.general.tls_cert, &config.general.tls_key) {
        (Some(cert), Some(key)) => match tls::server_config(cert.get(), key.get()) {
            Ok(config) => Some(config),
            Err(e) => return refuse(e),
        },
        _ => None,
    };
    let generated_key = match embedded_default_auth(&config) {
        Ok(key) => key,
        Err(e) => return refuse(e),
    };
    let prefix = config.general.prefix();
    for warning in config.oauth.warnings() {
        tracing::warn!("{warning}");
    }
    let oauth = match auth::tool_scopes(&config.auth)
        .and_then(|offered| oauth::server(&config, &offered, &trust))
    {
        Ok(o) => o,
        Err(e) => return refuse(e),
    };
    let auth = match auth::layers(
        &config.auth,
        prefix,
        generated_key.as_deref(),
        oauth.as_ref(),
        &trust,
    ) {
        Ok(a) => a,
        Err(e) => return refuse(e),
    };
    if !config.session.param_env.is_empty()
        && backend.is_some()
        && config.server.upstream.is_none()
        && config.server.session_mode() == SessionMode::Shared
    {
        return refuse(
            "--param-env sets a per-session child's environment: it needs --session-mode per-session",
        );
    }
    let redis = config.rate_limit.redis_url.as_ref().map(|r| r.get());
    let top_param_env: Vec<String> = config.session.param_env.to_vec();
    let servers = backend
        .map(|b| (None, b, top_param_env.clone()))
        .into_iter()
        .chain(config.servers.iter().zip(named).map(|((name, server), b)| {
            let param_env = server.param_env.as_ref().map(|p| p.to_vec());
            (Some(name.clone()), b, param_env.unwrap_or_default())
        }));
    let mut parts = Vec::new();
    for (name, backend, param_env) in servers {
        let sessions =
            match session::session_layer(&config.session, &param_env, redis, name.as_deref()).await
            {
                Ok(layer) => layer,
                Err(e) => {
                    let on = name.map(|n| format!("[servers.{n}]: ")).unwrap_or_default();
                    return refuse(format!("{on}{e}"));
                }
            };
        parts.push(app::ServerParts {
            name,
            backend,
            sessions,
        });
    }
    let audit_writer = match &config.general.audit_log {
        Some(sink) => match AuditWriter::open(sink.get().clone(), DEFAULT_QUEUE_CAPACITY) {
            Ok(writer) => Some(writer),
            Err(e) => return refuse(format!("--audit-log {}: {e}", sink.get())),
        },
        None => None,
    };
    let audit = audit_writer.clone().map(|writer| {
        drain::reopen_on_sighup(writer.clone());
        McpAuditLayer::new(writer).hash_arguments(config.general.audit_hash_arguments)
    });
    let (router, mounted) = match app::app(&config, parts, &auth, oauth.as_ref(), audit) {
        Ok(app) => app,
        Err(e) => return refuse(e),
    };
    let scrape = match metrics::Scrape::install(mounted.clone()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("mcp-bastion: {e}");
            return ExitCode::from(1);
        }
    };
    // the writer was opened before the recorder existed: /metrics shows the
    // drop counter at 0 from the start
    if let Some(writer) = &audit_writer {
        writer.register_drop_counter();
    }
    let router = match &config.general.metrics_listen {
        Some(addr) => match scrape.serve_alone(*addr.get()).await {
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
    let listen = *config.general.listen.get();
    let listener = match tokio::net::TcpListener::bind(listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("mcp-bastion: cannot listen on {listen}: {e}");
            return ExitCode::from(1);
        }
    };
    let addr = listener.local_addr().unwrap_or(listen);
    let scheme = if tls.is_some() { "https" } else { "http" };
    if let Some(key) = &generated_key {
        print_generated_key(key, scheme, addr, prefix);
    }
    eprintln!("mcp-bastion listening on {scheme}://{addr}");
    if let Some(oauth) = &oauth {
        tracing::info!(issuer = oauth.issuer(), resource = oauth.resource(), callback = %oauth.callback_url(), "OAuth authorization server on (register the callback URL at the identity provider)");
    }
    if !config.server.is_configured() && config.default_alias.is_none() {
        tracing::info!(%addr, prefix, tls = tls.is_some(), "serving named servers only (no default server at /mcp, /sse)");
    } else {
        tracing::info!(%addr, prefix, tls = tls.is_some(), "serving /mcp (Streamable HTTP) and /sse (legacy SSE)");
    }
    for name in config.servers.keys() {
        tracing::info!(server = %name, "serving /servers/{0}/mcp and /servers/{0}/sse", name);
    }

    let timeout = Duration::from_secs(*config.general.shutdown_timeout.get());
    let (signalled, on_signal) = tokio::sync::oneshot::channel::<()>();
    let for_signal = mounted.clone();
    let stop_accepting = async move {
        drain::shutdown_signal().await;
        // before the listener closes: a request on a connection already open
        // that would open a session gets 503, which a load balancer retries
        for_signal.start_draining();
        let _ = signalled.send(());
    };
    let for_drain = mounted.clone();
    let drained = async move {
        if on_signal.await.is_ok() {
            drain::drain(for_drain, timeout).await;
        }
    };
    // a replica (route key) closes its listener at the signal, so that a load
    // balancer tries another one; a lone server accepts until the drain ends
    let close = match config.general.route_key {
        Some(_) => serve::ListenerClose::AtSignal,
        None => serve::ListenerClose::AfterDrain,
    };
    serve::serve(
        listener,
        router,
        tls,
        &config.serve,
        (stop_accepting, close),
        drained,
    )
    .await;
    mounted.shutdown().await;
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests;
