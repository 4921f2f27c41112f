//! The stdio backend: an MCP server run as a child process, speaking
//! newline-delimited JSON-RPC on its stdin and stdout.
//!
//! ```no_run
//! use std::time::Duration;
//! use mcp_bastion::backend::{Backend, SessionContext};
//! use mcp_bastion::backend::stdio::{EnvSource, SessionEnv, StdioBackend, StdioMode};
//! use mcp_bastion::jsonrpc::{Message, Request};
//! use mcp_bastion::principal::Principal;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let backend = StdioBackend::builder("npx")
//!     .args(["-y", "@modelcontextprotocol/server-everything", "stdio"])
//!     .mode(StdioMode::PerSession)
//!     .inherit_env(["HOME", "PATH"])
//!     .session_env(SessionEnv::new().map("MCP_USER", EnvSource::Subject)?)
//!     .request_timeout(Duration::from_secs(60))
//!     .build()?;
//!
//! // Outer layers put the principal (and captured params) in the request
//! // extensions; the transport hands them over when a session opens.
//! let mut ctx = SessionContext::default();
//! ctx.extensions.insert(Principal::new("alice"));
//!
//! let mut conn = backend.connect(ctx).await?; // spawns the child
//! conn.outgoing
//!     .send(Message::Request(Request { id: 1.into(), method: "ping".into(), params: None }))
//!     .await?;
//! let pong = conn.incoming.recv().await;
//! conn.closed.cancel(); // stdin closed, then killed after the grace period
//! # Ok(()) }
//! ```
//!
//! # Modes
//!
//! | [`StdioMode`] | children | per-session [`SessionEnv`] variables | ids on the child side |
//! |---|---|---|---|
//! | `PerSession` (default) | one per connection, ended with it | applied | rewritten, restored on the way back |
//! | `Shared` | one for all, started on first connect, restarted after it dies | ignored | rewritten so every answer finds its session |
//!
//! In shared mode the first session's `initialize` reaches the child and its
//! result is reused for every later session (which therefore share its
//! protocol version and capabilities). A request from the child (sampling,
//! elicitation, `roots/list`, `ping`) goes to the session with the most
//! recently started request in flight, which is exactly right for sampling
//! during a tool call; when no session is busy, to the most recently active
//! one. Progress notifications go only to the session that set the token;
//! other notifications go to every session.
//!
//! # Environment
//!
//! The child's environment is cleared, then built from, in order (later
//! wins):
//! 1. the names in [`StdioBackendBuilder::inherit_env`] (default
//!    [`DEFAULT_INHERIT_ENV`]: `PATH`, `HOME`, `USER`, `LANG`, `TMPDIR`,
//!    `SYSTEMROOT`) with the proxy's own values;
//! 2. the operator's fixed [`StdioBackendBuilder::env`] entries;
//! 3. the session's variables (per-session mode only): what the
//!    [`StdioBackendBuilder::session_env`] mapping picks from the
//!    [`Principal`] and
//!    [`SessionParams`](crate::session::SessionParams) of the request that
//!    opened the session. The mapping cannot name what [`check_env_name`]
//!    refuses (`PATH`, `HOME`, `LD_*`, `DYLD_*`, `NODE_OPTIONS`, `PYTHON*`…).
//!
//! Nothing else of the proxy's environment reaches the child. Logs name
//! variables, never their values.
//!
//! # Failure and lifecycle
//!
//! - Stdout lines that are not JSON-RPC are logged by a short prefix and
//!   skipped; lines over [`StdioBackendBuilder::max_line_bytes`] are skipped
//!   without being held in memory. Stderr goes to `tracing` (target
//!   `mcp_bastion::stdio`, with the child's pid).
//! - When the child exits or closes stdout, every request in flight is
//!   answered at once with `INTERNAL_ERROR` ("backend process exited (exit
//!   status: 1)"), then `incoming` ends for every session of that child.
//! - With a [`request_timeout`](StdioBackendBuilder::request_timeout), a late
//!   request is answered with `REQUEST_TIMEOUT` and the child receives
//!   `notifications/cancelled` with `reason: "timeout"`.
//! - A child is ended by closing its stdin, waiting the
//!   [`grace_period`](StdioBackendBuilder::grace_period), then killing it;
//!   it is always reaped. [`Backend::shutdown`] does this for every child,
//!   per-session ones included, and refuses new connections afterwards.
//!   The child leads a process group of its own, and the group is signalled
//!   when it ends, so what it started (the server a package runner such as
//!   `npx` starts as a grandchild) ends with it.
//! - A session that stops reading `incoming` (over a thousand messages
//!   queued) is closed, so that it cannot stall a shared child's other
//!   sessions.
//!
//! # Revision 2026-07-28
//!
//! A child built on an SDK that speaks 2026-07-28 (no `initialize`, a
//! `_meta` envelope on every request) can take 2026-07-28 requests as they
//! are. [`Backend::connection_versions`] learns whether it does, in
//! per-session mode: the first 2026-07-28 request spawns a child of its own
//! (no session variables), sends it `server/discover` at 2026-07-28 and ends
//! it. Its `supportedVersions` are cached; a child that refuses the method
//! (method not found, not initialized…), or stays silent for ten seconds,
//! speaks the handshake revisions (also cached); a probe that fails (the
//! child cannot start, or exits first) is not cached, that request is
//! bridged, and the next one asks again.
//! [`StdioBackendBuilder::protocol_version`] pins the answer instead (no
//! probe). A shared child always speaks the handshake revisions: one stdio
//! connection serves one protocol era, and its handshake sessions share it.
//!
//! When the child speaks 2026-07-28, the transport sends each 2026-07-28
//! request over a per-session connection that never saw `initialize` (a
//! child with the principal's environment, as for a session), pooled per
//! principal; see [`StreamableHttp`](crate::transport::StreamableHttp).

mod builder;
mod engine;
mod env;
mod lines;
mod probe;
mod process;
mod router;
mod session_env;
#[cfg(test)]
mod tests;

use std::{
    collections::BTreeMap,
    ffi::{OsStr, OsString},
    fmt,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

pub use builder::{
    DEFAULT_GRACE_PERIOD, DEFAULT_INHERIT_ENV, DEFAULT_MAX_LINE_BYTES, StdioBackendBuilder,
    StdioMode,
};
pub use env::{EnvNameError, RESERVED_ENV_NAMES, RESERVED_ENV_PREFIXES, check_env_name};
pub use session_env::{EnvSource, SessionEnv};

use self::{
    engine::EngineHandle,
    env::child_environment,
    process::{ChildRegistry, ProcessSpec},
};
use crate::{
    backend::{Backend, BackendError, Connection, SessionContext},
    boxed::BoxFuture,
    principal::Principal,
    protocol::ProtocolVersion,
    upstream_token::UpstreamToken,
};

/// The `tracing` target of everything this backend logs, the child's stderr
/// included.
const TARGET: &str = "mcp_bastion::stdio";

/// Serves MCP sessions from a child process; see the [module docs](self).
///
/// Cheap to clone: clones share the children.
#[derive(Clone)]
pub struct StdioBackend {
    inner: Arc<Inner>,
}

struct Inner {
    spec: ProcessSpec,
    mode: StdioMode,
    env: BTreeMap<String, String>,
    inherit: Vec<String>,
    session_env: SessionEnv,
    request_timeout: Option<Duration>,
    registry: ChildRegistry,
    shared: Mutex<Option<EngineHandle>>,
    next_session: AtomicU64,
    warned_shared_env: AtomicBool,
    /// The revision pinned for 2026-07-28 requests, if any.
    pinned: Option<ProtocolVersion>,
    /// The probe's answer (see [`probe`]); `None` until a probe succeeds.
    revisions: tokio::sync::Mutex<Option<Vec<String>>>,
}

impl fmt::Debug for StdioBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &*self.inner;
        f.debug_struct("StdioBackend")
            .field("program", &inner.spec.program)
            .field("mode", &inner.mode)
            .field("env", &inner.env.keys().collect::<Vec<_>>())
            .field("inherit", &inner.inherit)
            .field("session_env", &inner.session_env)
            .field("live_children", &inner.registry.len())
            .finish_non_exhaustive()
    }
}

impl StdioBackend {
    /// Starts configuring a backend that runs `program`.
    pub fn builder(program: impl Into<OsString>) -> StdioBackendBuilder {
        StdioBackendBuilder::new(program.into())
    }

    fn from_parts(
        spec: ProcessSpec,
        mode: StdioMode,
        env: BTreeMap<String, String>,
        inherit: Vec<String>,
        session_env: SessionEnv,
        request_timeout: Option<Duration>,
        pinned: Option<ProtocolVersion>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                spec,
                mode,
                env,
                inherit,
                session_env,
                request_timeout,
                registry: ChildRegistry::default(),
                shared: Mutex::new(None),
                next_session: AtomicU64::new(0),
                warned_shared_env: AtomicBool::new(false),
                pinned,
                revisions: tokio::sync::Mutex::new(None),
            }),
        }
    }

    /// The configured mode.
    pub fn mode(&self) -> StdioMode {
        self.inner.mode
    }

    /// How many children are running (or not yet reaped), for metrics.
    pub fn live_children(&self) -> usize {
        self.inner.registry.len()
    }
}

impl Inner {
    fn session_key(&self) -> u64 {
        self.next_session.fetch_add(1, Ordering::Relaxed)
    }

    fn shared_slot(&self) -> std::sync::MutexGuard<'_, Option<EngineHandle>> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The user's upstream token, when the mapping wants it and the
    /// session's principal has one; a token that cannot be had refuses the
    /// session (a child started without it, or with a stale one, would fail
    /// later and less clearly).
    async fn upstream_token(
        &self,
        ctx: &SessionContext,
    ) -> Result<Option<UpstreamToken>, BackendError> {
        if !self.session_env.wants_upstream_token() {
            return Ok(None);
        }
        let Some(access) = ctx
            .extensions
            .get::<Principal>()
            .and_then(Principal::upstream_access)
        else {
            return Ok(None);
        };
        match access.access_token().await {
            Ok(token) => Ok(Some(token)),
            Err(e) => Err(BackendError::Unavailable(e.to_string())),
        }
    }

    fn connect_per_session(
        &self,
        ctx: &SessionContext,
        upstream: Option<&UpstreamToken>,
    ) -> Result<Connection, BackendError> {
        let session = self.session_env.resolve(&ctx.extensions, upstream);
        let env = child_environment(&self.inherit, &self.env, &session);
        let child = process::spawn(&self.spec, &env, &self.registry)?;
        engine::start(child, true, self.request_timeout)
            .open_session(self.session_key())
            .ok_or_else(|| BackendError::Unavailable("the backend process ended at once".into()))
    }

    /// A per-session child with no session variables, for the protocol probe.
    fn connect_probe(&self) -> Result<Connection, BackendError> {
        let env = child_environment(&self.inherit, &self.env, &BTreeMap::new());
        let child = process::spawn_probe(&self.spec, &env, &self.registry)?;
        engine::start(child, true, self.request_timeout)
            .open_session(self.session_key())
            .ok_or_else(|| BackendError::Unavailable("the backend process ended at once".into()))
    }

    fn connect_shared(&self, ctx: &SessionContext) -> Result<Connection, BackendError> {
        if !self.session_env.is_empty()
            && !self.session_env.resolve(&ctx.extensions, None).is_empty()
            && !self.warned_shared_env.swap(true, Ordering::Relaxed)
        {
            tracing::warn!(target: TARGET, "StdioMode::Shared ignores the per-session environment mapping");
        }
        // A child that died between the check and the attach gets one retry.
        for _ in 0..2 {
            let handle = self.shared_handle()?;
            if let Some(conn) = handle.open_session(self.session_key()) {
                return Ok(conn);
            }
        }
        Err(BackendError::Unavailable(
            "the shared backend process ended at once".into(),
        ))
    }

    /// The running shared child, spawned if there is none.
    fn shared_handle(&self) -> Result<EngineHandle, BackendError> {
        let mut slot = self.shared_slot();
        if let Some(handle) = slot.as_ref().filter(|h| h.is_alive()) {
            return Ok(handle.clone());
        }
        let env = child_environment(&self.inherit, &self.env, &BTreeMap::new());
        let child = process::spawn(&self.spec, &env, &self.registry)?;
        let handle = engine::start(child, false, self.request_timeout);
        *slot = Some(handle.clone());
        Ok(handle)
    }

    fn ready(&self) -> Result<(), BackendError> {
        if self.registry.is_closed() {
            return Err(BackendError::Unavailable("the backend is shut down".into()));
        }
        if self.mode == StdioMode::Shared
            && self
                .shared_slot()
                .as_ref()
                .is_some_and(EngineHandle::is_alive)
        {
            return Ok(());
        }
        let env = child_environment(&self.inherit, &self.env, &BTreeMap::new());
        let path = env.get(OsStr::new("PATH")).map(OsString::as_os_str);
        match process::resolve_program(&self.spec, path) {
            Some(_) => Ok(()),
            None => Err(BackendError::Unavailable(format!(
                "program `{}` not found or not executable",
                self.spec.program_name()
            ))),
        }
    }
}

impl Backend for StdioBackend {
    /// Per session: spawns a child for this connection. Shared: attaches to
    /// the shared child, spawning it if none is running.
    fn connect(&self, ctx: SessionContext) -> BoxFuture<'static, Result<Connection, BackendError>> {
        let inner = Arc::clone(&self.inner);
        Box::pin(async move {
            match inner.mode {
                StdioMode::PerSession => {
                    let upstream = inner.upstream_token(&ctx).await?;
                    inner.connect_per_session(&ctx, upstream.as_ref())
                }
                StdioMode::Shared => inner.connect_shared(&ctx),
            }
        })
    }

    /// The revisions the child speaks on a connection: pinned, or asked
    /// once with `server/discover` (per-session mode; see the
    /// [module docs](self#revision-2026-07-28)).
    fn connection_versions(&self) -> BoxFuture<'static, Result<Vec<String>, BackendError>> {
        Box::pin(probe::connection_versions(Arc::clone(&self.inner)))
    }

    /// Ready when the program resolves (an existing executable path, or found
    /// on the child's `PATH`), or, in shared mode, while the child runs.
    fn ready(&self) -> BoxFuture<'static, Result<(), BackendError>> {
        let inner = Arc::clone(&self.inner);
        Box::pin(async move { inner.ready() })
    }

    /// Terminates every child (stdin closed, killed after the grace period)
    /// and waits until all are reaped; later connections are refused.
    fn shutdown(&self) -> BoxFuture<'static, ()> {
        let inner = Arc::clone(&self.inner);
        Box::pin(async move {
            inner.registry.shutdown().await;
            inner.shared_slot().take();
        })
    }
}
