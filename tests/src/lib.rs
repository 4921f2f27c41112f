//! Black-box test harness for mcp-bastion: real processes, real clients.
//!
//! - [`Server::bastion`] builds (once per test process) and spawns the `mcp-bastion` binary on
//!   `127.0.0.1:0`, reads the `… listening on http://…` line from its stderr, keeps draining
//!   stderr into a log you can print on failure, and stops it (SIGTERM, then SIGKILL of its
//!   whole process group) when dropped.
//! - [`everything_stdio`] is the command line that runs `@modelcontextprotocol/server-everything`
//!   over stdio from `tests/node/node_modules`, without any network.
//! - [`upstream`] serves server-everything over HTTP as a process, and records what reaches it
//!   through a reverse proxy (tests of `mcp-bastion --upstream`).
//! - [`ClientRun`] runs one of the SDK client scripts in `tests/clients/` (official Python SDK or
//!   official TypeScript SDK) against a URL, with a timeout, and [`ClientOutcome::assert_ok`]
//!   turns a failure into a panic that shows the client's output and the server's log.
//!
//! Test dependencies are installed by `bash .ci/test` (`pip install -r tests/requirements.txt`,
//! `npm ci --prefix tests/node`).

pub mod certs;
pub mod nginx;
pub mod raw;
pub mod redis;
pub mod upstream;

use std::{
    collections::{BTreeMap, VecDeque},
    ffi::OsString,
    fmt,
    io::{BufRead, BufReader, Read},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{Arc, Mutex, mpsc},
    thread,
    time::{Duration, Instant},
};

/// How long a server may take to print its listening line (the first start of a debug build and
/// of node can be slow on a loaded 2-core machine).
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a stopped server gets to exit after SIGTERM before its process group is killed.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Default time limit for one client script run.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(90);

/// Lines of server log kept for failure messages.
const LOG_LINES: usize = 2000;

/// The `tests/` package directory.
pub fn tests_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The workspace root (parent of `tests/`).
pub fn workspace_dir() -> PathBuf {
    tests_dir()
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(tests_dir)
}

/// The client scripts directory, `tests/clients`.
pub fn clients_dir() -> PathBuf {
    tests_dir().join("clients")
}

/// The Node packages of the tests, `tests/node/node_modules`.
pub fn node_modules_dir() -> PathBuf {
    tests_dir().join("node").join("node_modules")
}

// ---------------------------------------------------------------------------------------------
// binaries

/// The cargo target profile directory the running test executable lives in
/// (`target/debug` for `target/debug/deps/clients-…`).
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    let deps = exe.parent().expect("the test executable's directory");
    let dir = if deps.file_name().is_some_and(|n| n == "deps") {
        deps.parent().unwrap_or(deps)
    } else {
        deps
    };
    dir.to_path_buf()
}

fn cargo() -> OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

/// Runs `cargo build <args>` in the workspace (profile matched to this test build); on failure
/// the error carries cargo's output.
fn cargo_build(args: &[&str]) -> Result<(), String> {
    let mut cmd = Command::new(cargo());
    cmd.arg("build").args(args).current_dir(workspace_dir());
    // The variables cargo sets for this test crate (`CARGO_PKG_NAME`, `CARGO_MANIFEST_DIR`,
    // `OUT_DIR`…) would reach the build scripts' `rerun-if-env-changed` checks (ring's has
    // them), making this build and `cargo test` rebuild the TLS stack for each other.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if [
            "CARGO_PKG_",
            "CARGO_MANIFEST_",
            "CARGO_CRATE_",
            "CARGO_BIN_",
            "CARGO_PRIMARY_",
        ]
        .iter()
        .any(|prefix| name.starts_with(prefix))
            || name == "OUT_DIR"
            || name == "CARGO_TARGET_TMPDIR"
        {
            cmd.env_remove(name.as_ref());
        }
    }
    if profile_dir().file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    let shown = format!("cargo build {}", args.join(" "));
    let output = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("could not run `{shown}`: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`{shown}` failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// Builds (once per test process and key) and returns a binary; `$env` overrides it.
fn built_binary(key: &str, env: &str, build_args: &[&str], path: PathBuf) -> PathBuf {
    static BUILT: Mutex<BTreeMap<String, Result<PathBuf, String>>> = Mutex::new(BTreeMap::new());
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    let result = built
        .entry(key.to_owned())
        .or_insert_with(|| {
            if let Some(bin) = std::env::var_os(env) {
                let bin = PathBuf::from(bin);
                return if bin.is_file() {
                    Ok(bin)
                } else {
                    Err(format!("{env}={} is not a file", bin.display()))
                };
            }
            // Always (re)build: a no-op when fresh, and `cargo test` does not rebuild another
            // package's binary, so a stale one would otherwise be tested.
            cargo_build(build_args)?;
            if path.is_file() {
                Ok(path.clone())
            } else {
                Err(format!(
                    "`cargo build {}` succeeded but {} does not exist",
                    build_args.join(" "),
                    path.display()
                ))
            }
        })
        .clone();
    drop(built);
    match result {
        Ok(path) => path,
        Err(e) => panic!("cannot get the binary under test: {e}"),
    }
}

/// The `mcp-bastion` binary: `$MCP_BASTION_BIN` if set, else `target/<profile>/mcp-bastion`,
/// built with `cargo build -p mcp-bastion-cli` first (once per test process).
pub fn bastion_bin() -> PathBuf {
    built_binary(
        "mcp-bastion",
        "MCP_BASTION_BIN",
        &["-p", "mcp-bastion-cli", "--bin", "mcp-bastion"],
        profile_dir().join("mcp-bastion"),
    )
}

/// An example of the `examples` package, `target/<profile>/examples/NAME`, built with
/// `cargo build -p examples --example NAME` first; `$MCP_BASTION_EXAMPLE_<NAME>` overrides it.
pub fn example_bin(name: &str) -> PathBuf {
    let env = format!("MCP_BASTION_EXAMPLE_{}", name.to_uppercase());
    built_binary(
        &format!("example {name}"),
        &env,
        &["-p", "examples", "--example", name],
        profile_dir().join("examples").join(name),
    )
}

/// The command that runs `@modelcontextprotocol/server-everything` over stdio from
/// `tests/node/node_modules` (no network, no `npx`): `node …/dist/index.js stdio`.
pub fn everything_stdio() -> Vec<String> {
    let entry = node_modules_dir().join("@modelcontextprotocol/server-everything/dist/index.js");
    assert!(
        entry.is_file(),
        "{} is missing: install the test dependencies with `npm ci --prefix tests/node` (or run `bash .ci/test`)",
        entry.display()
    );
    vec![node(), entry.display().to_string(), "stdio".to_owned()]
}

fn node() -> String {
    std::env::var("NODE").unwrap_or_else(|_| "node".to_owned())
}

/// The Python interpreter the client scripts run with: `$PYTHON`, else `python3`.
pub fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

// ---------------------------------------------------------------------------------------------
// servers

/// A server process under test; stopped when dropped.
pub struct Server {
    name: String,
    child: Child,
    base_url: String,
    log: Arc<Mutex<VecDeque<String>>>,
    /// Every line, when the server was started with [`Server::bastion_recorded`].
    transcript: Option<Arc<Mutex<String>>>,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("name", &self.name)
            .field("pid", &self.child.id())
            .field("base_url", &self.base_url)
            .finish()
    }
}

/// The session mode of the stdio backend (`--session-mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionMode {
    /// One child process per session.
    PerSession,
    /// One child process shared by all sessions.
    Shared,
}

impl SessionMode {
    /// The flag value.
    pub fn as_arg(self) -> &'static str {
        match self {
            Self::PerSession => "per-session",
            Self::Shared => "shared",
        }
    }
}

/// `--listen 127.0.0.1:0 --allow-unauthenticated <args…> [-- <command…>]`: tests opt out of the
/// generated API key (tests/tests/defaults.rs covers it) unless they configure auth themselves.
fn bastion_args(args: &[&str], command: Option<&[String]>) -> Vec<String> {
    let mut all: Vec<String> = ["--listen", "127.0.0.1:0", "--allow-unauthenticated"]
        .into_iter()
        .chain(args.iter().copied())
        .map(str::to_owned)
        .collect();
    if let Some(command) = command {
        all.push("--".into());
        all.extend(command.iter().cloned());
    }
    all
}

impl Server {
    /// Spawns `mcp-bastion --listen 127.0.0.1:0 <args…> -- <command…>` and waits for it to listen.
    pub fn bastion(args: &[&str], command: &[String]) -> Server {
        Server::bastion_with_env(args, command, &[])
    }

    /// `mcp-bastion` in front of stdio server-everything, in the given session mode, optionally
    /// under a path prefix.
    pub fn bastion_everything(mode: SessionMode, path_prefix: Option<&str>) -> Server {
        let mut args = vec!["--session-mode", mode.as_arg()];
        if let Some(prefix) = path_prefix {
            args.extend(["--path-prefix", prefix]);
        }
        Server::bastion(&args, &everything_stdio())
    }

    /// Spawns `mcp-bastion --listen 127.0.0.1:0 <args…>` with no `-- command` (e.g. with
    /// `--upstream URL`), with extra environment variables, and waits for it to listen.
    pub fn bastion_args_with_env(args: &[&str], env: &[(&str, &str)]) -> Server {
        Server::spawn_with_env(
            "mcp-bastion",
            &bastion_bin(),
            &bastion_args(args, None),
            env,
        )
    }

    /// Spawns any server that prints `… listening on http://HOST:PORT` on stderr once it listens
    /// (the `mcp-bastion` binary, the `rmcp_server` example), and waits for that line.
    pub fn spawn(name: &str, program: &Path, args: &[String]) -> Server {
        Server::spawn_with_env(name, program, args, &[])
    }

    /// `mcp-bastion --listen 127.0.0.1:0 <args…> -- <command…>` with extra environment variables
    /// (e.g. `MCP_BASTION_LOG=trace`, or a secret read by `--jwt-secret-env`).
    pub fn bastion_with_env(args: &[&str], command: &[String], env: &[(&str, &str)]) -> Server {
        let all = bastion_args(args, Some(command));
        Server::spawn_with_env("mcp-bastion", &bastion_bin(), &all, env)
    }

    /// [`Server::spawn`] with extra environment variables for the server process.
    pub fn spawn_with_env(
        name: &str,
        program: &Path,
        args: &[String],
        env: &[(&str, &str)],
    ) -> Server {
        Server::spawn_inner(name, program, args, env, false)
    }

    /// [`Server::bastion_with_env`], keeping every line the server writes (not only the last
    /// ones) for [`Server::transcript`]: for tests that must search all of a verbose log.
    pub fn bastion_recorded(args: &[&str], command: &[String], env: &[(&str, &str)]) -> Server {
        let all = bastion_args(args, Some(command));
        Server::spawn_inner("mcp-bastion", &bastion_bin(), &all, env, true)
    }

    /// [`Server::bastion_args_with_env`] (no `-- command`), keeping every line as
    /// [`Server::bastion_recorded`] does.
    pub fn bastion_args_recorded(args: &[&str], env: &[(&str, &str)]) -> Server {
        Server::spawn_inner(
            "mcp-bastion",
            &bastion_bin(),
            &bastion_args(args, None),
            env,
            true,
        )
    }

    fn spawn_inner(
        name: &str,
        program: &Path,
        args: &[String],
        env: &[(&str, &str)],
        record: bool,
    ) -> Server {
        use std::os::unix::process::CommandExt;

        let mut cmd = Command::new(program);
        cmd.args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // its own process group, so that drop can kill every process it leaves behind
            .process_group(0);
        if std::env::var_os("MCP_BASTION_LOG").is_none()
            && !env.iter().any(|(k, _)| *k == "MCP_BASTION_LOG")
        {
            cmd.env("MCP_BASTION_LOG", "info");
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({}): {e}", program.display()));
        let log = Arc::new(Mutex::new(VecDeque::new()));
        let transcript = record.then(|| Arc::new(Mutex::new(String::new())));
        let (tx, rx) = mpsc::channel::<String>();
        let stderr = child.stderr.take().expect("piped stderr");
        drain(stderr, "", log.clone(), transcript.clone(), Some(tx));
        let stdout = child.stdout.take().expect("piped stdout");
        drain(stdout, "[stdout] ", log.clone(), transcript.clone(), None);

        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let base_url = loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(url) => break url,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = child.wait().ok();
                    panic!(
                        "{name} exited before printing its listening line (status {status:?}); command: {} {}\n--- its output ---\n{}",
                        program.display(),
                        args.join(" "),
                        snapshot(&log)
                    );
                }
            }
            if let Ok(Some(status)) = child.try_wait() {
                // the reader may still hold the line: give it a moment
                if let Ok(url) = rx.recv_timeout(Duration::from_millis(500)) {
                    break url;
                }
                panic!(
                    "{name} exited ({status}) before listening; command: {} {}\n--- its output ---\n{}",
                    program.display(),
                    args.join(" "),
                    snapshot(&log)
                );
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "{name} printed no `listening on http://…` line within {STARTUP_TIMEOUT:?}\n--- its output ---\n{}",
                    snapshot(&log)
                );
            }
        };
        Server {
            name: name.to_owned(),
            child,
            base_url,
            log,
            transcript,
        }
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The base URL followed by `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// The process id of the server.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the server wrote so far (the last lines of it).
    pub fn logs(&self) -> String {
        snapshot(&self.log)
    }

    /// Every line the server wrote so far; panics unless it was started with
    /// [`Server::bastion_recorded`].
    pub fn transcript(&self) -> String {
        let Some(all) = &self.transcript else {
            panic!(
                "{} was not started with Server::bastion_recorded",
                self.name
            );
        };
        all.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Direct child processes of the server (Linux `/proc`), as `(pid, state, command)`.
    /// State `Z` is a zombie: exited but not reaped.
    pub fn children(&self) -> Vec<(u32, char, String)> {
        child_processes(self.pid())
    }

    /// Waits until the server has exactly `n` direct child processes; panics with the process
    /// list and the server log if that does not happen within `timeout`.
    pub fn wait_for_children(&self, n: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let children = self.children();
            if children.len() == n {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "{} (pid {}) has {} child process(es) after {timeout:?}, want {n}: {children:?}\n--- server log ---\n{}",
                    self.name,
                    self.pid(),
                    children.len(),
                    self.logs()
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server: SIGTERM, up to [`SHUTDOWN_GRACE`] to exit, then SIGKILL to its process
    /// group. Returns its exit status if it exited by itself.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        if let Ok(Some(status)) = self.child.try_wait() {
            kill_group(self.child.id());
            return Some(status);
        }
        let pid = self.child.id();
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(25)),
                _ => break None,
            }
        };
        // whatever is left of the group (children the server failed to reap) goes too
        kill_group(pid);
        if status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        status
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

fn kill_group(pgid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pgid}")])
        .stderr(Stdio::null())
        .status();
}

/// Reads lines from `reader` into `log` (and `transcript`, if kept) on a thread; the first line that contains
/// `listening on http://` sends the URL on `tx`.
fn drain(
    reader: impl Read + Send + 'static,
    prefix: &'static str,
    log: Arc<Mutex<VecDeque<String>>>,
    transcript: Option<Arc<Mutex<String>>>,
    tx: Option<mpsc::Sender<String>>,
) {
    thread::spawn(move || {
        let mut tx = tx;
        let mut reader = BufReader::new(reader);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let line = String::from_utf8_lossy(&buf).trim_end().to_owned();
            if let Some(sender) = &tx
                && let Some(url) = listening_url(&line)
            {
                let _ = sender.send(url);
                tx = None;
            }
            if let Some(all) = &transcript {
                let mut all = all.lock().unwrap_or_else(|e| e.into_inner());
                all.push_str(prefix);
                all.push_str(&line);
                all.push('\n');
            }
            let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
            if log.len() == LOG_LINES {
                log.pop_front();
            }
            log.push_back(format!("{prefix}{line}"));
        }
    });
}

/// `http://…` (or `https://…`) from a line such as
/// `mcp-bastion listening on http://127.0.0.1:41234`.
fn listening_url(line: &str) -> Option<String> {
    let at = line
        .find("listening on http://")
        .or_else(|| line.find("listening on https://"))?;
    let url = line[at + "listening on ".len()..]
        .split_whitespace()
        .next()?;
    Some(url.trim_end_matches('/').to_owned())
}

fn snapshot(log: &Mutex<VecDeque<String>>) -> String {
    let log = log.lock().unwrap_or_else(|e| e.into_inner());
    log.iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Direct children of `parent` from `/proc/*/stat`: `(pid, state, comm)`.
pub fn child_processes(parent: u32) -> Vec<(u32, char, String)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid …"; comm may contain spaces and parentheses
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = stat[open + 1..close].to_owned();
        let mut rest = stat[close + 1..].split_whitespace();
        let state = rest.next().and_then(|s| s.chars().next()).unwrap_or('?');
        let ppid = rest.next().and_then(|s| s.parse::<u32>().ok());
        if ppid == Some(parent) {
            found.push((pid, state, comm));
        }
    }
    found.sort();
    found
}

// ---------------------------------------------------------------------------------------------
// clients

/// Which official SDK drives the scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sdk {
    /// `mcp` on PyPI: `tests/clients/py_client.py`.
    Python,
    /// `@modelcontextprotocol/sdk`: `tests/clients/ts_client.mjs`.
    TypeScript,
}

/// Which MCP HTTP transport the client uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Streamable HTTP (2025-03-26 and later), endpoint `…/mcp`.
    Streamable,
    /// Legacy HTTP+SSE (2024-11-05), stream at `…/sse`.
    Sse,
}

impl Transport {
    /// The `--transport` value of the client scripts.
    pub fn as_arg(self) -> &'static str {
        match self {
            Self::Streamable => "streamable",
            Self::Sse => "sse",
        }
    }

    /// The path the client connects to, relative to the app's prefix.
    pub fn endpoint(self) -> &'static str {
        match self {
            Self::Streamable => "/mcp",
            Self::Sse => "/sse",
        }
    }
}

/// One run of a client script: build it, then [`ClientRun::run`].
#[derive(Debug, Clone)]
pub struct ClientRun {
    sdk: Sdk,
    transport: Transport,
    url: String,
    profile: String,
    scenario: Option<&'static str>,
    concurrency: usize,
    calls: usize,
    timeout: Duration,
    strict_session_end: bool,
    extra: Vec<String>,
    env: Vec<(String, String)>,
}

impl ClientRun {
    /// A full-scenario run with the `everything` profile against `url`.
    pub fn new(sdk: Sdk, transport: Transport, url: impl Into<String>) -> Self {
        ClientRun {
            sdk,
            transport,
            url: url.into(),
            profile: "everything".to_owned(),
            scenario: None,
            concurrency: 1,
            calls: 3,
            timeout: CLIENT_TIMEOUT,
            strict_session_end: false,
            extra: Vec::new(),
            env: Vec::new(),
        }
    }

    /// A run against `server` at `<prefix><transport endpoint>`, checking that ended sessions
    /// are answered with 404 (`--strict-session-end`).
    pub fn against(sdk: Sdk, transport: Transport, server: &Server, prefix: &str) -> Self {
        let url = server.url(&format!(
            "{}{}",
            prefix.trim_end_matches('/'),
            transport.endpoint()
        ));
        Self::new(sdk, transport, url).strict_session_end(true)
    }

    /// Profile name (in `tests/clients/profiles.json`), JSON file path, or inline JSON.
    pub fn profile(mut self, profile: impl Into<String>) -> Self {
        self.profile = profile.into();
        self
    }

    /// `full` or `echo` (the default is `full` for one client, `echo` for several).
    pub fn scenario(mut self, scenario: &'static str) -> Self {
        self.scenario = Some(scenario);
        self
    }

    /// Number of clients run in parallel, each with its own session.
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n;
        self
    }

    /// Scenario `echo`: concurrent echo calls per client.
    pub fn calls(mut self, n: usize) -> Self {
        self.calls = n;
        self
    }

    /// Time limit for the script (it is killed 15 s after that).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Require 404 for a request on the session after the client ended it.
    pub fn strict_session_end(mut self, strict: bool) -> Self {
        self.strict_session_end = strict;
        self
    }

    /// An environment variable for the script.
    pub fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((name.into(), value.into()));
        self
    }

    /// More arguments for the script.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.extra.push(arg.into());
        self
    }

    fn command(&self) -> Command {
        let (program, script) = match self.sdk {
            Sdk::Python => (python(), clients_dir().join("py_client.py")),
            Sdk::TypeScript => (node(), clients_dir().join("ts_client.mjs")),
        };
        let mut cmd = Command::new(program);
        cmd.arg(script)
            .args([
                "--url",
                &self.url,
                "--transport",
                self.transport.as_arg(),
                "--profile",
                &self.profile,
            ])
            .args([
                "--concurrency",
                &self.concurrency.to_string(),
                "--calls",
                &self.calls.to_string(),
            ])
            .args(["--timeout", &self.timeout.as_secs_f64().to_string()]);
        if let Some(scenario) = self.scenario {
            cmd.args(["--scenario", scenario]);
        }
        if self.strict_session_end {
            cmd.arg("--strict-session-end");
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd.arg("--verbose")
            .args(&self.extra)
            .current_dir(workspace_dir())
            .stdin(Stdio::null());
        if self.sdk == Sdk::Python {
            cmd.env("PYTHONUNBUFFERED", "1")
                .env("PYTHONDONTWRITEBYTECODE", "1");
        }
        cmd
    }

    /// Runs the script to completion (or kills it 15 s past its own timeout).
    pub fn run(&self) -> ClientOutcome {
        let mut cmd = self.command();
        let shown = format!("{cmd:?}");
        let started = Instant::now();
        let mut child = match cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn() {
            Ok(child) => child,
            Err(e) => {
                return ClientOutcome {
                    run: self.clone(),
                    command: shown,
                    status: None,
                    timed_out: false,
                    stdout: String::new(),
                    stderr: format!("cannot start the client: {e}"),
                    elapsed: started.elapsed(),
                };
            }
        };
        let stdout = collect(child.stdout.take().expect("piped stdout"));
        let stderr = collect(child.stderr.take().expect("piped stderr"));
        let limit = self.timeout + Duration::from_secs(15);
        let mut timed_out = false;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if started.elapsed() < limit => thread::sleep(Duration::from_millis(20)),
                Ok(None) => {
                    timed_out = true;
                    let _ = child.kill();
                    break child.wait().ok();
                }
                Err(_) => break None,
            }
        };
        ClientOutcome {
            run: self.clone(),
            command: shown,
            status,
            timed_out,
            stdout: stdout.join().unwrap_or_default(),
            stderr: stderr.join().unwrap_or_default(),
            elapsed: started.elapsed(),
        }
    }

    /// Runs the script and asserts that it succeeded (see [`ClientOutcome::assert_ok`]).
    pub fn run_ok(&self, server: &Server) -> serde_json::Value {
        self.run().assert_ok(server)
    }
}

fn collect(reader: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let mut reader = reader;
        let _ = reader.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// What a client script run did.
#[derive(Debug)]
pub struct ClientOutcome {
    /// The run's settings.
    pub run: ClientRun,
    /// The command line, for messages.
    pub command: String,
    /// Exit status; `None` if it could not be started or waited for.
    pub status: Option<ExitStatus>,
    /// Killed for running past its time limit.
    pub timed_out: bool,
    /// Its stdout (the JSON summary on success).
    pub stdout: String,
    /// Its stderr (the failure message).
    pub stderr: String,
    /// Wall time.
    pub elapsed: Duration,
}

impl ClientOutcome {
    /// Did the script exit 0?
    pub fn success(&self) -> bool {
        !self.timed_out && self.status.is_some_and(|s| s.success())
    }

    /// The JSON summary line the script printed on success.
    pub fn summary(&self) -> Option<serde_json::Value> {
        let line = self
            .stdout
            .lines()
            .rev()
            .find(|l| l.trim_start().starts_with('{'))?;
        serde_json::from_str(line).ok()
    }

    /// Panics with the client's output and the server's log unless the script succeeded and
    /// printed `"ok": true`; returns the summary.
    pub fn assert_ok(self, server: &Server) -> serde_json::Value {
        let summary = self.summary();
        if self.success()
            && summary
                .as_ref()
                .is_some_and(|s| s["ok"] == serde_json::Value::Bool(true))
        {
            return summary.unwrap_or_default();
        }
        let hint = if self.stderr.contains("No module named") {
            "\nhint: install the Python SDK with `pip install -r tests/requirements.txt` (or run `bash .ci/test`)"
        } else if self.stderr.contains("npm ci --prefix tests/node")
            || self.stderr.contains("Cannot find")
        {
            "\nhint: install the Node packages with `npm ci --prefix tests/node` (or run `bash .ci/test`)"
        } else {
            ""
        };
        panic!(
            "{sdk:?} client over {transport} against {name} at {url} failed ({why}, {elapsed:.1?}){hint}\n\
             command: {command}\n\
             --- client stderr ---\n{stderr}\n--- client stdout ---\n{stdout}\n\
             --- {name} log (pid {pid}) ---\n{log}\n--- end ---",
            sdk = self.run.sdk,
            transport = self.run.transport.as_arg(),
            name = server.name,
            url = self.run.url,
            why = if self.timed_out {
                "killed after its time limit".to_owned()
            } else {
                match self.status {
                    Some(s) => format!("exit {s}"),
                    None => "could not run".to_owned(),
                }
            },
            elapsed = self.elapsed,
            command = self.command,
            stderr = self.stderr.trim_end(),
            stdout = self.stdout.trim_end(),
            pid = server.pid(),
            log = server.logs(),
        );
    }
}

// ---------------------------------------------------------------------------------------------
// client summaries

/// The steps a full scenario with the `everything` profile must have done (none skipped).
pub const FULL_STEPS: [&str; 9] = [
    "initialize",
    "tools/list",
    "echo",
    "progress",
    "sampling",
    "elicitation",
    "resource",
    "prompt",
    "session_end",
];

/// Every step of [`FULL_STEPS`] done, none skipped; progress seen; 404 after the session ended.
pub fn assert_full_summary(summary: &serde_json::Value) {
    assert_summary(summary, &[]);
}

/// Every step of [`FULL_STEPS`] done, none skipped but `skipped`.
pub fn assert_summary(summary: &serde_json::Value, skipped: &[&str]) {
    for step in FULL_STEPS {
        let done = &summary["steps"][step];
        assert!(
            !done.is_null(),
            "step {step} missing from the client summary: {summary}"
        );
        if skipped.contains(&step) {
            assert_eq!(
                done["skipped"], true,
                "step {step} should have been skipped: {summary}"
            );
        } else {
            assert!(
                done["skipped"].is_null(),
                "step {step} was skipped: {summary}"
            );
        }
    }
    let progress = summary["steps"]["progress"]["notifications"]
        .as_u64()
        .unwrap_or(0);
    assert!(
        progress >= 2,
        "fewer than 2 progress notifications: {summary}"
    );
    assert_eq!(
        summary["steps"]["session_end"]["after_end_status"], 404,
        "{summary}"
    );
}

/// Whether process `pid` is gone (no `/proc/<pid>`): a child that must not outlive the proxy.
pub fn process_gone(pid: u32) -> bool {
    std::fs::metadata(format!("/proc/{pid}")).is_err()
}

/// A slow tool call in flight, for the shutdown tests: server-everything's
/// `trigger-long-running-operation` (2 s, 4 progress steps) through `py_call.py` over Streamable
/// HTTP, in a thread.
pub struct CallInFlight {
    started: PathBuf,
    call: thread::JoinHandle<std::process::Output>,
}

impl CallInFlight {
    /// Starts the call at `url` (an MCP endpoint); `label` names its marker file.
    pub fn start(url: String, label: &str) -> CallInFlight {
        let started =
            std::env::temp_dir().join(format!("mcp-bastion-{label}-{}", std::process::id()));
        let _ = std::fs::remove_file(&started);
        let started_arg = started.display().to_string();
        let call = thread::spawn(move || {
            Command::new(python())
                .arg(clients_dir().join("py_call.py"))
                .args(["--url", &url, "--transport", "streamable"])
                .args(["--tool", "trigger-long-running-operation"])
                .args(["--arguments", r#"{"duration": 2, "steps": 4}"#])
                .args(["--timeout", "20", "--started-file", &started_arg])
                .current_dir(clients_dir())
                .output()
                .expect("python runs py_call.py")
        });
        CallInFlight { started, call }
    }

    /// Blocks until the client has made its call (at most 20 s), then half a second more, so
    /// that the 2 s call is under way.
    pub fn wait_until_under_way(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.started.exists() {
            assert!(Instant::now() < deadline, "the client never made its call");
            thread::sleep(Duration::from_millis(10));
        }
        thread::sleep(Duration::from_millis(500));
        let _ = std::fs::remove_file(&self.started);
    }

    /// Waits for the client and returns its report (its last line of output), asserting that the
    /// call completed (`"outcome": "ok"`).
    pub fn assert_completed(self, server: &Server) -> serde_json::Value {
        let out = self.call.join().expect("the client thread does not panic");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let report: serde_json::Value =
            serde_json::from_str(stdout.lines().last().unwrap_or("null")).unwrap_or_default();
        assert_eq!(
            report["outcome"],
            "ok",
            "the call in flight did not complete: {stdout}\n{}\n--- server log ---\n{}",
            String::from_utf8_lossy(&out.stderr),
            server.logs()
        );
        report
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn finds_the_listening_url_in_a_log_line() {
        assert_eq!(
            listening_url("mcp-bastion listening on http://127.0.0.1:41234").as_deref(),
            Some("http://127.0.0.1:41234")
        );
        assert_eq!(
            listening_url(
                "2026-01-01T00:00:00Z  INFO rmcp_server listening on http://127.0.0.1:5/ extra"
            )
            .as_deref(),
            Some("http://127.0.0.1:5")
        );
        assert_eq!(
            listening_url("mcp-bastion: cannot listen on 127.0.0.1:80"),
            None
        );
    }

    #[test]
    fn lists_child_processes_from_proc() {
        let mut child = Command::new("sleep").arg("5").spawn().expect("spawn sleep");
        let children = child_processes(std::process::id());
        let _ = child.kill();
        let _ = child.wait();
        assert!(
            children
                .iter()
                .any(|(pid, _, comm)| *pid == child.id() && comm == "sleep"),
            "{children:?}"
        );
    }
}
