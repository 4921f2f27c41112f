//! Server processes under test: [`Server`] spawns one (the `mcp-bastion` binary, an example,
//! any program that prints `… listening on http://…`), waits for its listening line, keeps its
//! output for failure messages, and stops its whole process group when dropped.

use std::{
    collections::VecDeque,
    fmt,
    io::{BufRead, BufReader, Read},
    path::Path,
    process::{Child, Command, ExitStatus, Stdio},
    sync::{Arc, Mutex, mpsc},
    thread,
    time::{Duration, Instant},
};

use crate::{binaries::bastion_bin, everything_stdio, processes::child_processes};

/// How long a server may take to print its listening line (the first start of a debug build and
/// of node can be slow on a loaded 2-core machine).
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a stopped server gets to exit after SIGTERM before its process group is killed.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Lines of server log kept for failure messages.
const LOG_LINES: usize = 2000;

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

    /// [`Server::spawn_with_env`], keeping every line the server writes for
    /// [`Server::transcript`] (as [`Server::bastion_recorded`] does for the binary).
    pub fn spawn_recorded(
        name: &str,
        program: &Path,
        args: &[String],
        env: &[(&str, &str)],
    ) -> Server {
        Server::spawn_inner(name, program, args, env, true)
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

    /// The name it was started under (`mcp-bastion`, an example's name), for messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// `GET path` over a new connection (`Connection: close`), the whole answer as text (status
    /// line, headers, body); `None` when the connection is refused or fails. For operator routes
    /// such as `/readyz`, where a test must see a refused connection as such.
    pub fn get(&self, path: &str) -> Option<String> {
        use std::io::{Read, Write};
        let addr = self.base_url.trim_start_matches("http://");
        let mut tcp = std::net::TcpStream::connect(addr).ok()?;
        tcp.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(
            tcp,
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut answer = String::new();
        tcp.read_to_string(&mut answer).ok()?;
        Some(answer)
    }

    /// Whether `GET /readyz` answers 200.
    pub fn is_ready(&self) -> bool {
        self.get("/readyz")
            .is_some_and(|a| a.starts_with("HTTP/1.1 200"))
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
}
