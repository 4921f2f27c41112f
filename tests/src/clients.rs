//! The official SDK clients the tests drive: [`ClientRun`] runs one of the client scripts in
//! `tests/clients/` (Python or TypeScript SDK) against a URL, with a timeout;
//! [`ClientOutcome::assert_ok`] turns a failure into a panic with the client's output and the
//! server's log; [`assert_summary`] checks what a full scenario did; [`CallInFlight`] holds a
//! slow tool call open for the shutdown tests.

use std::{
    io::Read,
    path::PathBuf,
    process::{Command, ExitStatus, Stdio},
    thread,
    time::{Duration, Instant},
};

use crate::{
    Server,
    binaries::{clients_dir, node, python, workspace_dir},
};

/// Default time limit for one client script run.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(90);

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
            name = server.name(),
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

/// The elicitation round trip of a 2026-07-28 SDK client script (`tests/clients/_mcp2026.py`,
/// `--elicit`): one `elicitation/create` input request reached the client in an
/// `InputRequiredResult` with a non-empty `requestState` (returned, for checks of its form), and
/// the SDK's own loop asked once more.
pub fn assert_input_round_trip(summary: &serde_json::Value) -> &str {
    let requests = summary["inputRequests"]
        .as_object()
        .unwrap_or_else(|| panic!("no inputRequests: {summary}"));
    assert_eq!(requests.len(), 1, "{summary}");
    assert!(
        requests.values().all(|m| m == "elicitation/create"),
        "{summary}"
    );
    assert_eq!(
        summary["elicitations"],
        serde_json::json!(["What is your name?"]),
        "{summary}"
    );
    match summary["requestState"].as_str() {
        Some(state) if !state.is_empty() => state,
        _ => panic!("no requestState: {summary}"),
    }
}

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

/// Runs the client script `script` of `tests/clients/` (`.py` with [`python`], `.mjs` with
/// [`node`]) with `args`, and returns the JSON of its last line of output;
/// panics with everything it printed when there is none.
pub fn script_report(script: &str, args: &[&str]) -> serde_json::Value {
    let program = if script.ends_with(".py") {
        python()
    } else {
        node()
    };
    let out = Command::new(program)
        .arg(clients_dir().join(script))
        .args(args)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {script}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| {
            panic!(
                "{script} {args:?} printed no report ({})\n{stdout}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            )
        })
}
