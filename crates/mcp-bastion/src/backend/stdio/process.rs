//! One child process: spawning it, its three pipes, and its end.
//!
//! Four tasks serve a child: a writer (messages → stdin), a reader (stdout →
//! messages, bounded lines), an stderr forwarder (→ `tracing`) and a
//! supervisor that owns the process. Termination is the supervisor's alone:
//! close stdin, wait for the grace period, kill, and always `wait()` so no
//! zombie remains. Every live child is in a [`ChildRegistry`], so shutdown
//! can reach the per-session ones too.

use std::{
    collections::{BTreeMap, HashMap},
    ffi::{OsStr, OsString},
    fmt, io,
    path::{Path, PathBuf},
    process::{ExitStatus, Stdio},
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use serde_json::Value;
use tokio::{
    io::{AsyncRead, AsyncWriteExt},
    process::{Child, ChildStdin, Command},
    sync::{mpsc, watch},
};
use tokio_util::sync::CancellationToken;

use super::{
    TARGET,
    lines::{Line, LineReader},
};
use crate::{
    backend::BackendError,
    jsonrpc::{Message, MessageError},
};

/// Messages queued for the child's stdin.
pub(crate) const STDIN_QUEUE: usize = 256;
/// Parsed stdout messages waiting for the engine.
const STDOUT_QUEUE: usize = 64;
/// Longest stderr line forwarded to the log.
const MAX_STDERR_LINE: usize = 16 * 1024;
/// How much of a rejected stdout line the log shows.
const LOGGED_PREFIX: usize = 32;

/// What to run; fixed at build time.
#[derive(Debug, Clone)]
pub(crate) struct ProcessSpec {
    pub(crate) program: OsString,
    pub(crate) args: Vec<OsString>,
    pub(crate) current_dir: Option<PathBuf>,
    pub(crate) grace_period: Duration,
    pub(crate) max_line_bytes: usize,
}

impl ProcessSpec {
    /// The program, for messages.
    pub(crate) fn program_name(&self) -> String {
        self.program.to_string_lossy().into_owned()
    }
}

/// Where `program` resolves to, searching `path` (the child's `PATH`, else
/// the proxy's) when it names no directory. Used by readiness checks; the
/// operating system's own lookup at spawn time is the final word.
pub(crate) fn resolve_program(spec: &ProcessSpec, path: Option<&OsStr>) -> Option<PathBuf> {
    let program = Path::new(&spec.program);
    if program.components().count() > 1 {
        let full = match &spec.current_dir {
            Some(dir) if program.is_relative() => dir.join(program),
            _ => program.to_path_buf(),
        };
        return is_executable(&full).then_some(full);
    }
    let path = path
        .map(OsStr::to_os_string)
        .or_else(|| std::env::var_os("PATH"))?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(path: &Path) -> bool {
    path.is_file()
        || ["exe", "cmd", "bat"]
            .iter()
            .any(|ext| path.with_extension(ext).is_file())
}

/// How a child ended.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ExitReport(Option<ExitStatus>);

impl ExitReport {
    /// The child is gone, but its status could not be read.
    pub(crate) const UNKNOWN: ExitReport = ExitReport(None);
}

impl fmt::Display for ExitReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(status) => write!(f, "{status}"),
            None => f.write_str("status unknown"),
        }
    }
}

/// The engine's side of a running child.
pub(crate) struct ChildIo {
    pub(crate) pid: Option<u32>,
    /// Messages for stdin.
    pub(crate) stdin: mpsc::Sender<Message>,
    /// Messages from stdout; ends when stdout closes.
    pub(crate) stdout: mpsc::Receiver<Message>,
    /// `Some` once the child has exited and been reaped.
    pub(crate) exit: watch::Receiver<Option<ExitReport>>,
    /// Cancel to terminate the child (close stdin, grace period, kill).
    pub(crate) terminate: CancellationToken,
}

/// Spawns `spec` with exactly `env` and starts its tasks.
pub(crate) fn spawn(
    spec: &ProcessSpec,
    env: &BTreeMap<OsString, OsString>,
    registry: &ChildRegistry,
) -> Result<ChildIo, BackendError> {
    spawn_for(spec, env, registry, false)
}

/// [`spawn`], for the protocol probe of `probe.rs` (logged as such: it
/// serves no session).
pub(crate) fn spawn_probe(
    spec: &ProcessSpec,
    env: &BTreeMap<OsString, OsString>,
    registry: &ChildRegistry,
) -> Result<ChildIo, BackendError> {
    spawn_for(spec, env, registry, true)
}

fn spawn_for(
    spec: &ProcessSpec,
    env: &BTreeMap<OsString, OsString>,
    registry: &ChildRegistry,
    probe: bool,
) -> Result<ChildIo, BackendError> {
    if registry.is_closed() {
        return Err(BackendError::Unavailable("the backend is shut down".into()));
    }
    let mut cmd = Command::new(&spec.program);
    cmd.args(&spec.args)
        .env_clear()
        .envs(env)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // Its own process group, so that ending it also ends what it started
    // (`npx` runs the real server as a grandchild).
    #[cfg(unix)]
    cmd.process_group(0);
    if let Some(dir) = &spec.current_dir {
        cmd.current_dir(dir);
    }
    let spawn_error = |source| BackendError::Spawn {
        program: spec.program_name(),
        source,
    };
    let mut child = cmd.spawn().map_err(spawn_error)?;
    let pid = child.id();
    let (Some(stdin), Some(stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err(spawn_error(io::Error::other(
            "a standard stream was not captured",
        )));
    };
    if probe {
        tracing::info!(
            target: TARGET,
            pid,
            program = %spec.program.to_string_lossy(),
            env = ?super::env::names(env),
            "spawned a probe of the backend's protocol revisions"
        );
    } else {
        tracing::info!(
            target: TARGET,
            pid,
            program = %spec.program.to_string_lossy(),
            env = ?super::env::names(env),
            "spawned backend process"
        );
    }

    let terminate = CancellationToken::new();
    let (stdin_tx, stdin_rx) = mpsc::channel(STDIN_QUEUE);
    let (stdout_tx, stdout_rx) = mpsc::channel(STDOUT_QUEUE);
    let (exit_tx, exit_rx) = watch::channel(None);
    tokio::spawn(write_stdin(stdin, stdin_rx, terminate.clone(), pid));
    tokio::spawn(read_stdout(stdout, stdout_tx, spec.max_line_bytes, pid));
    tokio::spawn(forward_stderr(stderr, pid));
    let id = registry.insert(LiveChild {
        terminate: terminate.clone(),
        exit: exit_rx.clone(),
    });
    tokio::spawn(supervise(
        child,
        terminate.clone(),
        spec.grace_period,
        exit_tx,
        registry.clone(),
        id,
    ));
    Ok(ChildIo {
        pid,
        stdin: stdin_tx,
        stdout: stdout_rx,
        exit: exit_rx,
        terminate,
    })
}

/// Most bytes gathered into one `write` to the child's stdin.
const WRITE_BATCH: usize = 64 * 1024;

/// Writes queued messages to the child's stdin. Everything already queued
/// when the writer wakes (up to [`WRITE_BATCH`] bytes) goes out in one
/// `write`, instead of one system call per message.
async fn write_stdin(
    mut stdin: ChildStdin,
    mut rx: mpsc::Receiver<Message>,
    terminate: CancellationToken,
    pid: Option<u32>,
) {
    let mut batch = Vec::new();
    loop {
        let msg = tokio::select! {
            biased;
            () = terminate.cancelled() => break,
            msg = rx.recv() => match msg {
                Some(msg) => msg,
                None => break,
            },
        };
        batch.clear();
        append_line(&mut batch, &msg);
        while batch.len() < WRITE_BATCH {
            match rx.try_recv() {
                Ok(msg) => append_line(&mut batch, &msg),
                Err(_) => break,
            }
        }
        let written = tokio::select! {
            () = terminate.cancelled() => break,
            r = async {
                stdin.write_all(&batch).await?;
                stdin.flush().await
            } => r,
        };
        if let Err(e) = written {
            tracing::debug!(target: TARGET, pid, "backend stdin closed: {e}");
            break;
        }
        if batch.capacity() > WRITE_BATCH {
            // One huge message should not pin its buffer for the child's life.
            batch = Vec::new();
        }
    }
    // Dropping stdin closes the pipe: the child sees end of input.
}

/// Appends `msg` as one line of JSON, serialized in place (the same bytes
/// as [`Message::to_json`]).
fn append_line(batch: &mut Vec<u8>, msg: &Message) {
    let start = batch.len();
    if serde_json::to_writer(&mut *batch, msg).is_err() {
        batch.truncate(start);
        batch.extend_from_slice(msg.to_json().as_bytes());
    }
    batch.push(b'\n');
}

async fn read_stdout(
    stdout: impl AsyncRead + Unpin,
    tx: mpsc::Sender<Message>,
    max_line_bytes: usize,
    pid: Option<u32>,
) {
    let mut lines = LineReader::new(stdout, max_line_bytes);
    loop {
        let line = match lines.next_line().await {
            Ok(Some(Line::Text(line))) => line,
            Ok(Some(Line::TooLong { bytes })) => {
                tracing::warn!(target: TARGET, pid, bytes, max_line_bytes, "skipping a backend stdout line longer than max_line_bytes");
                continue;
            }
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(target: TARGET, pid, "reading backend stdout failed: {e}");
                return;
            }
        };
        for msg in parse_line(&line, pid) {
            if tx.send(msg).await.is_err() {
                return;
            }
        }
    }
}

/// The messages on one stdout line: one object, or a batch array. What is
/// not JSON-RPC is logged by a short prefix and skipped.
fn parse_line(line: &[u8], pid: Option<u32>) -> Vec<Message> {
    let text = line.trim_ascii();
    if text.is_empty() {
        return Vec::new();
    }
    let values = match serde_json::from_slice::<Value>(text) {
        Ok(Value::Array(items)) => items,
        Ok(value) => vec![value],
        Err(e) => {
            skipped(text, &MessageError::Parse(e.to_string()), pid);
            return Vec::new();
        }
    };
    values
        .into_iter()
        .filter_map(|value| match Message::from_value(value) {
            Ok(msg) => Some(msg),
            Err(e) => {
                skipped(text, &e, pid);
                None
            }
        })
        .collect()
}

fn skipped(line: &[u8], why: &MessageError, pid: Option<u32>) {
    let prefix = String::from_utf8_lossy(&line[..line.len().min(LOGGED_PREFIX)]);
    let why = match why {
        MessageError::Parse(_) => "not JSON",
        MessageError::Invalid(why) => why,
    };
    tracing::warn!(target: TARGET, pid, bytes = line.len(), prefix = ?prefix, "skipping a backend stdout line that is not JSON-RPC: {why}");
}

async fn forward_stderr(stderr: impl AsyncRead + Unpin, pid: Option<u32>) {
    let mut lines = LineReader::new(stderr, MAX_STDERR_LINE);
    loop {
        match lines.next_line().await {
            Ok(Some(Line::Text(line))) => {
                let line = String::from_utf8_lossy(&line);
                let line = line.trim_end();
                if !line.is_empty() {
                    tracing::info!(target: TARGET, pid, "{line}");
                }
            }
            Ok(Some(Line::TooLong { bytes })) => {
                tracing::warn!(target: TARGET, pid, bytes, "skipping an over-long backend stderr line");
            }
            Ok(None) | Err(_) => return,
        }
    }
}

/// Owns the process until it is reaped.
async fn supervise(
    mut child: Child,
    terminate: CancellationToken,
    grace: Duration,
    exit: watch::Sender<Option<ExitReport>>,
    registry: ChildRegistry,
    id: u64,
) {
    let pid = child.id();
    let status = tokio::select! {
        status = child.wait() => status,
        () = terminate.cancelled() => {
            // The writer has closed stdin on the same signal.
            match tokio::time::timeout(grace, child.wait()).await {
                Ok(status) => status,
                Err(_) => {
                    tracing::warn!(target: TARGET, pid, ?grace, "backend process did not exit after stdin closed; killing it");
                    signal_group(pid, GroupSignal::Kill);
                    if let Err(e) = child.start_kill() {
                        tracing::warn!(target: TARGET, pid, "killing the backend process failed: {e}");
                    }
                    child.wait().await
                }
            }
        }
    };
    // Whatever the child started and left behind in its group goes too. The
    // group id stays reserved while any member lives, so this reaches only
    // our own leftovers (or, with the group empty, nothing).
    signal_group(pid, GroupSignal::Terminate);
    let report = ExitReport(status.ok());
    tracing::info!(target: TARGET, pid, status = %report, "backend process exited");
    terminate.cancel();
    registry.remove(id);
    exit.send_replace(Some(report));
}

#[derive(Clone, Copy, Debug)]
enum GroupSignal {
    Terminate,
    Kill,
}

/// Signals the process group a child leads (see `process_group(0)` at spawn).
#[cfg(unix)]
fn signal_group(pid: Option<u32>, signal: GroupSignal) {
    use nix::{
        errno::Errno,
        sys::signal::{Signal, killpg},
        unistd::Pid,
    };
    let Some(pgid) = pid.and_then(|p| i32::try_from(p).ok()).filter(|p| *p > 1) else {
        return;
    };
    let sig = match signal {
        GroupSignal::Terminate => Signal::SIGTERM,
        GroupSignal::Kill => Signal::SIGKILL,
    };
    match killpg(Pid::from_raw(pgid), sig) {
        Ok(()) => {
            tracing::debug!(target: TARGET, pgid, ?signal, "signalled the backend's process group")
        }
        Err(Errno::ESRCH) => {}
        Err(e) => {
            tracing::warn!(target: TARGET, pgid, ?signal, "signalling the backend's process group failed: {e}")
        }
    }
}

#[cfg(not(unix))]
fn signal_group(_pid: Option<u32>, _signal: GroupSignal) {}

/// A registered child.
struct LiveChild {
    terminate: CancellationToken,
    exit: watch::Receiver<Option<ExitReport>>,
}

#[derive(Default)]
struct RegistryState {
    closed: bool,
    next: u64,
    children: HashMap<u64, LiveChild>,
}

/// Every live child of one backend, for shutdown.
#[derive(Clone, Default)]
pub(crate) struct ChildRegistry {
    state: Arc<Mutex<RegistryState>>,
}

impl ChildRegistry {
    fn lock(&self) -> MutexGuard<'_, RegistryState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// True once [`ChildRegistry::shutdown`] has begun.
    pub(crate) fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// The number of children not yet reaped.
    pub(crate) fn len(&self) -> usize {
        self.lock().children.len()
    }

    fn insert(&self, child: LiveChild) -> u64 {
        let mut state = self.lock();
        if state.closed {
            // Shutdown began while this child was being spawned.
            child.terminate.cancel();
        }
        state.next += 1;
        let id = state.next;
        state.children.insert(id, child);
        #[cfg(feature = "metrics")]
        metrics::gauge!(crate::metrics::BACKEND_CHILDREN).increment(1.0);
        id
    }

    fn remove(&self, id: u64) {
        if self.lock().children.remove(&id).is_some() {
            #[cfg(feature = "metrics")]
            metrics::gauge!(crate::metrics::BACKEND_CHILDREN).decrement(1.0);
        }
    }

    /// Terminates every child and waits until all are reaped. No child can be
    /// spawned afterwards.
    pub(crate) async fn shutdown(&self) {
        let exits: Vec<_> = {
            let mut state = self.lock();
            state.closed = true;
            state
                .children
                .values()
                .map(|c| {
                    c.terminate.cancel();
                    c.exit.clone()
                })
                .collect()
        };
        for mut exit in exits {
            // An error means the supervisor is gone, and with it the child.
            let _ = exit.wait_for(Option::is_some).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn queued_messages_reach_stdin_in_order_as_lines() {
        let (tx, rx) = mpsc::channel(STDIN_QUEUE);
        for i in 0..5 {
            tx.send(Message::Notification(crate::jsonrpc::Notification {
                method: format!("m{i}"),
                params: None,
            }))
            .await
            .expect("queued");
        }
        drop(tx);
        let mut batch = Vec::new();
        let mut rx = rx;
        while let Ok(msg) = rx.try_recv() {
            append_line(&mut batch, &msg);
        }
        let lines: Vec<Message> = batch
            .split(|&b| b == b'\n')
            .flat_map(|line| parse_line(line, None))
            .collect();
        assert_eq!(lines.len(), 5);
        for (i, msg) in lines.iter().enumerate() {
            let Message::Notification(n) = msg else {
                panic!("not a notification: {msg:?}");
            };
            assert_eq!(n.method, format!("m{i}"));
        }
    }

    #[test]
    fn parse_line_accepts_objects_and_batches_and_skips_the_rest() {
        assert_eq!(parse_line(b"  \r", None), vec![]);
        assert_eq!(parse_line(b"hello", None), vec![]);
        assert_eq!(parse_line(br#"{"jsonrpc":"1.0","id":1}"#, None), vec![]);
        assert_eq!(
            parse_line(br#"{"jsonrpc":"2.0","method":"a"}"#, None).len(),
            1
        );
        assert_eq!(
            parse_line(
                br#"[{"jsonrpc":"2.0","method":"a"},7,{"jsonrpc":"2.0","id":1,"result":{}}]"#,
                None
            )
            .len(),
            2
        );
    }
}
