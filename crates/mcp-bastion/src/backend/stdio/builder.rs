//! [`StdioBackendBuilder`]: what to run and how.

use std::{
    collections::BTreeMap,
    ffi::{OsStr, OsString},
    fmt,
    path::PathBuf,
    time::Duration,
};

use super::{SessionEnv, StdioBackend, env::check_name_syntax, process::ProcessSpec};
use crate::{backend::BackendError, protocol::ProtocolVersion};

/// Names copied from the proxy's environment when
/// [`StdioBackendBuilder::inherit_env`] is not called: enough for most
/// interpreters and package runners (`npx`, `uvx`) to start. `SYSTEMROOT` is
/// needed on Windows and absent elsewhere.
pub const DEFAULT_INHERIT_ENV: &[&str] = &["PATH", "HOME", "USER", "LANG", "TMPDIR", "SYSTEMROOT"];

/// The default [`StdioBackendBuilder::max_line_bytes`]: 16 MiB.
pub const DEFAULT_MAX_LINE_BYTES: usize = 16 * 1024 * 1024;

/// The default [`StdioBackendBuilder::grace_period`]: 2 seconds.
pub const DEFAULT_GRACE_PERIOD: Duration = Duration::from_secs(2);

/// How sessions map to child processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StdioMode {
    /// One child per connection, with that session's variables from the
    /// [`session_env`](StdioBackendBuilder::session_env) mapping; it is
    /// terminated when the connection closes. Isolation between sessions is
    /// the operating system's.
    #[default]
    PerSession,
    /// One child for every connection, started on the first and restarted on
    /// the next connection after it dies. Request ids and progress tokens are
    /// rewritten so answers reach their session; the first `initialize` result
    /// is reused for later sessions. The
    /// [`session_env`](StdioBackendBuilder::session_env) mapping is ignored
    /// (with a warning): the child serves every session.
    Shared,
}

/// Configures a [`StdioBackend`]; made by [`StdioBackend::builder`].
///
/// ```
/// use std::time::Duration;
/// use mcp_bastion::backend::stdio::{StdioBackend, StdioMode};
///
/// let backend = StdioBackend::builder("uvx")
///     .args(["mcp-server-time"])
///     .mode(StdioMode::Shared)
///     .env("TZ", "UTC")
///     .inherit_env(["PATH", "HOME"])
///     .request_timeout(Duration::from_secs(30))
///     .build()
///     .unwrap();
/// assert_eq!(backend.mode(), StdioMode::Shared);
///
/// // Configuration that cannot work is refused up front.
/// assert!(StdioBackend::builder("uvx").env("A=B", "x").build().is_err());
/// ```
#[derive(Clone)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct StdioBackendBuilder {
    program: OsString,
    args: Vec<OsString>,
    current_dir: Option<PathBuf>,
    mode: StdioMode,
    env: BTreeMap<String, String>,
    inherit: Vec<String>,
    session_env: SessionEnv,
    request_timeout: Option<Duration>,
    max_line_bytes: usize,
    grace_period: Duration,
    protocol_version: Option<ProtocolVersion>,
}

impl fmt::Debug for StdioBackendBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Arguments and values may hold credentials: names only.
        f.debug_struct("StdioBackendBuilder")
            .field("program", &self.program)
            .field("args", &self.args.len())
            .field("mode", &self.mode)
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .field("inherit", &self.inherit)
            .field("session_env", &self.session_env)
            .field("request_timeout", &self.request_timeout)
            .field("max_line_bytes", &self.max_line_bytes)
            .field("grace_period", &self.grace_period)
            .field("protocol_version", &self.protocol_version)
            .finish_non_exhaustive()
    }
}

impl StdioBackendBuilder {
    pub(super) fn new(program: OsString) -> Self {
        Self {
            program,
            args: Vec::new(),
            current_dir: None,
            mode: StdioMode::default(),
            env: BTreeMap::new(),
            inherit: DEFAULT_INHERIT_ENV.iter().map(|&n| n.to_owned()).collect(),
            session_env: SessionEnv::new(),
            request_timeout: None,
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
            grace_period: DEFAULT_GRACE_PERIOD,
            protocol_version: None,
        }
    }

    /// Adds one argument.
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Adds arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// The child's working directory. Default: the proxy's.
    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.current_dir = Some(dir.into());
        self
    }

    /// One child per session (the default) or one shared child.
    pub fn mode(mut self, mode: StdioMode) -> Self {
        self.mode = mode;
        self
    }

    /// Sets a fixed environment variable for the child. It overrides an
    /// inherited value, and is overridden by a session's
    /// [`session_env`](Self::session_env) variable of the same name (which
    /// [`check_env_name`] allows).
    ///
    /// [`check_env_name`]: super::check_env_name
    pub fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.insert(name.into(), value.into());
        self
    }

    /// Sets several fixed environment variables, as [`env`](Self::env).
    pub fn envs<I, K, V>(mut self, vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        self.env
            .extend(vars.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }

    /// The names whose values are copied from the proxy's own environment;
    /// replaces [`DEFAULT_INHERIT_ENV`]. Nothing else of the proxy's
    /// environment reaches the child. Pass an empty list to inherit nothing.
    pub fn inherit_env<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.inherit = names.into_iter().map(Into::into).collect();
        self
    }

    /// Which parts of a session's [`Principal`](crate::principal::Principal)
    /// and captured [`SessionParams`](crate::session::SessionParams) become
    /// variables of its child (per-session mode). The transport hands the
    /// opening request's extensions to [`Backend::connect`]; this mapping
    /// alone decides what of them reaches the environment.
    ///
    /// [`Backend::connect`]: crate::backend::Backend::connect
    pub fn session_env(mut self, env: SessionEnv) -> Self {
        self.session_env = env;
        self
    }

    /// Fails a request the child has not answered after `timeout` with
    /// `REQUEST_TIMEOUT`, and sends the child `notifications/cancelled`.
    /// Default: no timeout.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = Some(timeout);
        self
    }

    /// The longest stdout line accepted, in bytes; longer lines are skipped
    /// (and logged) without being held in memory. Default:
    /// [`DEFAULT_MAX_LINE_BYTES`].
    pub fn max_line_bytes(mut self, max: usize) -> Self {
        self.max_line_bytes = max;
        self
    }

    /// How long a child may take to exit after its stdin is closed before it
    /// is killed. Default: [`DEFAULT_GRACE_PERIOD`].
    pub fn grace_period(mut self, grace: Duration) -> Self {
        self.grace_period = grace;
        self
    }

    /// Pins the revision the child is spoken to for 2026-07-28 requests,
    /// instead of asking it with `server/discover` (see the
    /// [module docs](super#revision-2026-07-28)):
    /// [`V2026_07_28`](ProtocolVersion::V2026_07_28) sends them to the child
    /// as they are without a probe; a handshake revision such as
    /// [`V2025_11_25`](ProtocolVersion::V2025_11_25) forces the bridge
    /// (children initialized at 2025-11-25) even if the child speaks
    /// 2026-07-28. Clients of the handshake revisions negotiate their own
    /// version either way. A [`StdioMode::Shared`] child is always bridged
    /// (one stdio connection speaks one era), so pinning it to 2026-07-28 is
    /// refused by [`build`](Self::build).
    ///
    /// ```
    /// use mcp_bastion::{backend::stdio::{StdioBackend, StdioMode}, protocol::ProtocolVersion};
    ///
    /// let direct = StdioBackend::builder("my-2026-server")
    ///     .protocol_version(ProtocolVersion::V2026_07_28)
    ///     .build();
    /// assert!(direct.is_ok());
    /// let shared = StdioBackend::builder("my-2026-server")
    ///     .mode(StdioMode::Shared)
    ///     .protocol_version(ProtocolVersion::V2026_07_28)
    ///     .build();
    /// assert!(shared.is_err());
    /// ```
    pub fn protocol_version(mut self, version: ProtocolVersion) -> Self {
        self.protocol_version = Some(version);
        self
    }

    /// Checks the configuration and builds the backend. Nothing is spawned
    /// yet.
    ///
    /// # Errors
    ///
    /// [`BackendError::Config`] for an empty program, a NUL in the program or
    /// an argument, an invalid environment variable name, a NUL in a value, a
    /// zero `max_line_bytes`, a zero `request_timeout`, or a shared child
    /// pinned to 2026-07-28.
    pub fn build(self) -> Result<StdioBackend, BackendError> {
        let config = |msg: String| Err(BackendError::Config(msg));
        if self.program.is_empty() {
            return config("the stdio program is empty".into());
        }
        if has_nul(&self.program) || self.args.iter().any(|a| has_nul(a)) {
            return config("the stdio program or an argument contains NUL".into());
        }
        for name in self.env.keys().chain(&self.inherit) {
            if let Err(e) = check_name_syntax(name) {
                return config(e.to_string());
            }
        }
        if let Some((name, _)) = self.env.iter().find(|(_, v)| v.contains('\0')) {
            return config(format!(
                "the value of environment variable {name:?} contains NUL"
            ));
        }
        if self.max_line_bytes == 0 {
            return config("max_line_bytes must be at least 1".into());
        }
        if self.request_timeout == Some(Duration::ZERO) {
            return config("request_timeout must be longer than zero".into());
        }
        if self.mode == StdioMode::Shared
            && self.protocol_version == Some(ProtocolVersion::V2026_07_28)
        {
            return config(
                "a shared stdio child speaks the handshake revisions to every session: \
                 it cannot be pinned to 2026-07-28 (use per-session mode)"
                    .into(),
            );
        }
        Ok(StdioBackend::from_parts(
            ProcessSpec {
                program: self.program,
                args: self.args,
                current_dir: self.current_dir,
                grace_period: self.grace_period,
                max_line_bytes: self.max_line_bytes,
            },
            self.mode,
            self.env,
            self.inherit,
            self.session_env,
            self.request_timeout,
            self.protocol_version,
        ))
    }
}

fn has_nul(s: &OsStr) -> bool {
    s.as_encoded_bytes().contains(&0)
}
