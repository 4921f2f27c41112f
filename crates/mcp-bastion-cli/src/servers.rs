//! Named backends: `[servers.<name>]` in the configuration file (or the
//! entries of `MCP_SERVER_CONFIG`), each served under `/servers/<name>/…`
//! beside the default server at `/mcp` and `/sse`.
//!
//! Each server has its own backend (a stdio command or an upstream), its own
//! transports and its own session layer, so that a session id of one server
//! is unknown (404) to every other. The outer layers (CORS, Origin guard,
//! authentication, inspection, tracing, metrics, scopes, rate limits) wrap
//! them all once.

use std::sync::Arc;

use crate::outbound::OutboundTrust;
use mcp_bastion::{
    backend::{
        Backend, DynBackend,
        stdio::{SessionEnv, StdioBackend, StdioBackendBuilder, StdioMode},
    },
    protocol::ProtocolVersion,
    transport::{Sse, StreamableHttp},
};
use mcp_bastion_cli::config::{
    ServerConfig,
    options::{SessionMode, StdioProtocolVersion},
};

/// The backend of `server` (an upstream, or a stdio command), or `None`
/// when it names neither (the default server may be left out). `name` is
/// the named server's, for errors; a stdio child's environment maps
/// `principal_env` and `param_env` (see [`session_env`]).
pub(crate) fn backend(
    server: &ServerConfig,
    name: Option<&str>,
    principal_env: &[String],
    param_env: &[String],
    trust: &OutboundTrust,
) -> Result<Option<DynBackend>, String> {
    let on = |e: String| match name {
        Some(name) => format!("[servers.{name}]: {e}"),
        None => e,
    };
    let backend = bare_backend(server, principal_env, param_env, trust).map_err(on)?;
    // the operator's trim of the backend's tools, whatever the backend
    Ok(backend.map(|backend| match server.tool_filter() {
        Some(filter) => Arc::new(filter.wrap(backend)) as DynBackend,
        None => backend,
    }))
}

/// [`backend`] before its tool filter.
fn bare_backend(
    server: &ServerConfig,
    principal_env: &[String],
    param_env: &[String],
    trust: &OutboundTrust,
) -> Result<Option<DynBackend>, String> {
    if server.stdio_protocol_version.is_some() && server.upstream.is_some() {
        return Err(
            "--stdio-protocol-version needs a command (`-- COMMAND`), not --upstream \
                    (see --upstream-protocol-version)"
                .into(),
        );
    }
    if let Some(backend) = crate::upstream::backend(server, trust)? {
        return Ok(Some(backend));
    }
    if server.command.is_empty() {
        return Ok(None);
    }
    let pass_env = server
        .pass_env
        .as_ref()
        .map(|l| l.to_vec())
        .unwrap_or_default();
    session_env(principal_env, param_env)
        .and_then(|session_env| {
            stdio_backend(
                &server.command,
                server.session_mode(),
                &pass_env,
                &server.env.to_vec(),
                session_env,
            )
            .and_then(|builder| {
                let builder = match server.stdio_protocol_version.as_deref() {
                    Some(StdioProtocolVersion::V2025_11_25) => {
                        builder.protocol_version(ProtocolVersion::V2025_11_25)
                    }
                    Some(StdioProtocolVersion::V2026_07_28) => {
                        builder.protocol_version(ProtocolVersion::V2026_07_28)
                    }
                    None => builder,
                };
                let backend = builder.build().map_err(|e| e.to_string())?;
                Ok(Arc::new(backend) as DynBackend)
            })
        })
        .map(Some)
}

/// A per-session child's environment from `--principal-env VAR=FIELD` and
/// `--param-env PARAM=VAR` (the session layer captures each such `PARAM`).
/// Reserved names (`PATH`, `LD_*`, `NODE_OPTIONS`…) are refused here, at
/// startup.
pub(crate) fn session_env(
    principal_env: &[String],
    param_env: &[String],
) -> Result<SessionEnv, String> {
    let mut env = SessionEnv::new();
    for pair in principal_env {
        env = env.parse_principal_pair(pair)?;
    }
    for spec in param_env {
        let (param, var) = spec
            .split_once('=')
            .filter(|(a, b)| !a.is_empty() && !b.is_empty())
            .ok_or("--param-env expects A=B")?;
        env = env
            .param(param, var)
            .map_err(|e| format!("--param-env {param}={var}: {e}"))?;
    }
    Ok(env)
}

/// The builder of a stdio backend running `command` (program first).
fn stdio_backend(
    command: &[String],
    mode: SessionMode,
    pass_env: &[String],
    env: &[String],
    session_env: SessionEnv,
) -> Result<StdioBackendBuilder, String> {
    let (program, args) = command
        .split_first()
        .ok_or("give the MCP server to run after `--`, or `--upstream URL`")?;
    let mut builder = StdioBackend::builder(program)
        .args(args.iter().cloned())
        .mode(match mode {
            SessionMode::PerSession => StdioMode::PerSession,
            SessionMode::Shared => StdioMode::Shared,
        })
        .session_env(session_env);
    if !pass_env.is_empty() {
        builder = builder.inherit_env(pass_env.iter().cloned());
    }
    for pair in env {
        let (name, value) = pair.split_once('=').ok_or_else(|| {
            format!(
                "--env expects NAME=VALUE, got `{}`",
                pair.split('=').next().unwrap_or("")
            )
        })?;
        builder = builder.env(name, value);
    }
    Ok(builder)
}

/// One server as mounted: its transports and backend.
#[derive(Clone)]
pub(crate) struct Mounted {
    /// `None` for the default server.
    pub(crate) name: Option<String>,
    /// Its Streamable HTTP transport (`…/mcp`).
    pub(crate) streamable: StreamableHttp<DynBackend>,
    /// Its legacy SSE transport (`…/sse`, `…/messages`).
    pub(crate) sse: Sse<DynBackend>,
    /// Its backend.
    pub(crate) backend: DynBackend,
}

/// Every mounted server: what shutdown, `/readyz` and `/metrics` go over.
#[derive(Clone, Default)]
pub(crate) struct Servers(pub(crate) Vec<Mounted>);

impl Servers {
    /// New sessions are refused (503) on every server.
    pub(crate) fn start_draining(&self) {
        for m in &self.0 {
            m.streamable.start_draining();
            m.sse.start_draining();
        }
    }

    /// Requests in flight on every server.
    pub(crate) fn in_flight_requests(&self) -> usize {
        self.0
            .iter()
            .map(|m| m.streamable.in_flight_requests() + m.sse.in_flight_requests())
            .sum()
    }

    /// Ends every session once the requests inside it are answered (or at
    /// `deadline`); meanwhile a request of a session gets 404, and its
    /// client opens a new session (on another replica).
    pub(crate) async fn close_sessions_when_idle(&self, deadline: tokio::time::Instant) {
        for m in &self.0 {
            m.streamable.close_sessions_when_idle(deadline).await;
            m.sse.close_sessions_when_idle(deadline).await;
        }
    }

    /// Ends every backend's children (or upstream connections), all at once.
    pub(crate) async fn shutdown(&self) {
        let mut all = tokio::task::JoinSet::new();
        for m in &self.0 {
            all.spawn(m.backend.shutdown());
        }
        while all.join_next().await.is_some() {}
    }

    /// Open sessions of every server: (Streamable HTTP, legacy SSE).
    pub(crate) fn session_counts(&self) -> (usize, usize) {
        self.0.iter().fold((0, 0), |(s, e), m| {
            (s + m.streamable.session_count(), e + m.sse.session_count())
        })
    }

    /// `Ok` when every backend is ready, else one line per backend that is
    /// not, naming it.
    pub(crate) async fn readiness(&self) -> Result<(), String> {
        // a draining replica takes no new sessions: a load balancer that
        // reads /readyz sends them elsewhere
        if self.0.iter().any(|m| m.streamable.is_draining()) {
            return Err("draining: shutting down".into());
        }
        let mut checks = tokio::task::JoinSet::new();
        for (i, m) in self.0.iter().enumerate() {
            let ready = m.backend.ready();
            checks.spawn(async move { (i, ready.await) });
        }
        let mut failed: Vec<(usize, String)> = Vec::new();
        while let Some(done) = checks.join_next().await {
            let (i, result) = match done {
                Ok(done) => done,
                Err(e) => {
                    failed.push((usize::MAX, format!("a readiness check failed: {e}")));
                    continue;
                }
            };
            if let Err(e) = result {
                let what = match self.0.get(i).and_then(|m| m.name.as_deref()) {
                    Some(name) => format!("server `{name}`: {e}"),
                    None => format!("default server: {e}"),
                };
                failed.push((i, what));
            }
        }
        failed.sort();
        let failed: Vec<String> = failed.into_iter().map(|(_, what)| what).collect();
        if failed.is_empty() {
            Ok(())
        } else {
            Err(failed.join("; "))
        }
    }
}
