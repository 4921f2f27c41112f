//! Rolling restarts and lost replicas behind the shipped nginx configuration, under load: two
//! replicas (shared mode, server-everything) on fixed ports, and eight clients that loop
//! `tools/call echo` over Streamable HTTP and open a new session when theirs answers 404, as the
//! transport specifies.
//!
//! - A rolling restart (SIGTERM a replica, start it again, wait until it is ready, then the other)
//!   fails no request: the draining replica stops accepting connections at once (so nginx's next
//!   connection attempt fails and it tries the other replica), serves its sessions' requests on
//!   the connections it has, answers a request that would open a session with 503 (which nginx
//!   retries elsewhere), and its sessions end with 404s that the clients recover from.
//! - A replica killed with SIGKILL fails only the calls that were in flight on it, and no
//!   `initialize`: nginx sends new sessions to the live one at once, and a replica that is back
//!   is used at once (so killing the other one a few seconds later fails no `initialize` either).
//!
//! The counts are printed (run with `--nocapture` to see them) and quoted in docs/deployment.md.

use std::{
    path::PathBuf,
    process::{Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use tests::{
    Server, bastion_bin, clients_dir, everything_stdio,
    nginx::{Nginx, free_port},
};

use super::shipped_conf;

/// Concurrent clients.
const CLIENTS: usize = 8;

/// How long the load runs between two steps of a scenario.
const SETTLE: Duration = Duration::from_secs(2);

/// A replica on a fixed port (the nginx configuration names it), ready to serve.
fn replica(key: &str, port: u16) -> Server {
    let mut args: Vec<String> = [
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--allow-unauthenticated",
        "--session-mode",
        "shared",
        "--route-key",
        key,
        "--shutdown-timeout",
        "5",
        "--",
    ]
    .map(String::from)
    .to_vec();
    args.extend(everything_stdio());
    let server = Server::spawn(&format!("replica-{key}"), &bastion_bin(), &args);
    wait_ready(&server);
    server
}

/// Waits until `/readyz` answers 200 (the backend is up).
fn wait_ready(server: &Server) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !server.is_ready() {
        assert!(
            Instant::now() < deadline,
            "replica never ready:\n{}",
            server.logs()
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// SIGKILL to the replica's process group (its child too), as a crash or an OOM kill would.
fn kill_hard(server: &Server) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", server.pid())])
        .stderr(Stdio::null())
        .status();
}

/// What the clients saw.
#[derive(Debug, Default, Clone)]
struct Tally {
    /// `tools/call` answered with the echoed text.
    calls: u64,
    /// Requests answered 404 (session gone), after which the client opened a new session.
    reopened: u64,
    /// `initialize` requests that failed, each with what came back.
    init_failures: Vec<String>,
    /// Calls that failed other than with 404, each with what came back.
    call_failures: Vec<String>,
}

impl Tally {
    /// What happened since `before`.
    fn since(&self, before: &Tally) -> Tally {
        Tally {
            calls: self.calls - before.calls,
            reopened: self.reopened - before.reopened,
            init_failures: self.init_failures[before.init_failures.len()..].to_vec(),
            call_failures: self.call_failures[before.call_failures.len()..].to_vec(),
        }
    }
}

/// The answer of one POST.
enum Answer {
    /// 2xx, with the JSON-RPC messages of the body.
    Ok(Option<String>, Vec<Value>),
    /// 404: the session is gone.
    Gone,
    /// Anything else: a status, a transport error or a cut stream.
    Failed(String),
}

const ACCEPT_BOTH: &str = "application/json, text/event-stream";

async fn post(http: &reqwest::Client, url: &str, sid: Option<&str>, body: Value) -> Answer {
    let mut req = http
        .post(url)
        .header("content-type", "application/json")
        .header("accept", ACCEPT_BOTH)
        .body(body.to_string());
    if let Some(sid) = sid {
        req = req
            .header("mcp-session-id", sid)
            .header("mcp-protocol-version", "2025-11-25");
    }
    let res = match req.send().await {
        Ok(res) => res,
        Err(e) => return Answer::Failed(format!("send: {e}")),
    };
    let status = res.status();
    let new_sid = res
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let text = match res.text().await {
        Ok(text) => text,
        Err(e) => return Answer::Failed(format!("{status}, body cut: {e}")),
    };
    if status == 404 {
        return Answer::Gone;
    }
    if !status.is_success() {
        let text: String = text.chars().take(200).collect();
        return Answer::Failed(format!("{status}: {text}"));
    }
    Answer::Ok(new_sid, tests::sse::json_messages(&text).await)
}

/// `initialize` and `notifications/initialized`: a session id, `Ok(None)` when the new session
/// was already gone again (404), or what failed.
async fn open(http: &reqwest::Client, url: &str) -> Result<Option<String>, String> {
    let init = json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
        "protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"churn","version":"0"}}});
    let sid = match post(http, url, None, init).await {
        Answer::Ok(Some(sid), msgs) if msgs.iter().any(|m| m["result"].is_object()) => sid,
        Answer::Ok(sid, msgs) => return Err(format!("initialize: {sid:?} {msgs:?}")),
        Answer::Gone => return Err("initialize: 404".into()),
        Answer::Failed(e) => return Err(format!("initialize: {e}")),
    };
    let initialized = json!({"jsonrpc":"2.0","method":"notifications/initialized"});
    match post(http, url, Some(&sid), initialized).await {
        Answer::Ok(..) => Ok(Some(sid)),
        Answer::Gone => Ok(None),
        Answer::Failed(e) => Err(format!("notifications/initialized: {e}")),
    }
}

/// One client: calls `echo` in a loop, opening a new session whenever its own answers 404.
async fn client(n: usize, url: String, stop: Arc<AtomicBool>, tally: Arc<Mutex<Tally>>) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut sid: Option<String> = None;
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let Some(session) = sid.clone() else {
            match open(&http, &url).await {
                Ok(opened) => sid = opened,
                Err(e) => {
                    tally.lock().unwrap().init_failures.push(e);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            continue;
        };
        i += 1;
        let text = format!("client {n} call {i}");
        let call = json!({"jsonrpc":"2.0","id":i,"method":"tools/call",
            "params":{"name":"echo","arguments":{"message":text}}});
        let answer = post(&http, &url, Some(&session), call).await;
        let mut tally = tally.lock().unwrap();
        match answer {
            Answer::Ok(_, msgs)
                if msgs
                    .iter()
                    .any(|m| m["id"] == i && m["result"].to_string().contains(&text)) =>
            {
                tally.calls += 1;
            }
            Answer::Ok(_, msgs) => {
                tally
                    .call_failures
                    .push(format!("no answer to call {i}: {msgs:?}"));
                sid = None;
            }
            Answer::Gone => {
                tally.reopened += 1;
                sid = None;
            }
            Answer::Failed(e) => {
                tally.call_failures.push(e);
                sid = None;
            }
        }
    }
}

/// [`CLIENTS`] clients on a runtime of their own, until dropped.
struct Load {
    stop: Arc<AtomicBool>,
    tally: Arc<Mutex<Tally>>,
    runner: Option<thread::JoinHandle<()>>,
}

impl Load {
    fn start(url: String) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let tally = Arc::new(Mutex::new(Tally::default()));
        let (s, t) = (stop.clone(), tally.clone());
        let runner = thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let clients: Vec<_> = (0..CLIENTS)
                    .map(|n| tokio::spawn(client(n, url.clone(), s.clone(), t.clone())))
                    .collect();
                for c in clients {
                    let _ = c.await;
                }
            });
        });
        Load {
            stop,
            tally,
            runner: Some(runner),
        }
    }

    fn tally(&self) -> Tally {
        self.tally.lock().unwrap().clone()
    }

    fn finish(mut self) -> Tally {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(runner) = self.runner.take() {
            let _ = runner.join();
        }
        self.tally()
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Two replicas on fixed ports behind the shipped configuration.
struct Deployment {
    a: Server,
    b: Server,
    ports: (u16, u16),
    nginx: Nginx,
}

impl Deployment {
    fn start() -> Deployment {
        let ports = (free_port(), free_port());
        let a = replica("a", ports.0);
        let b = replica("b", ports.1);
        let nginx = Nginx::start(&shipped_conf(&a, &b));
        Deployment { a, b, ports, nginx }
    }

    /// SIGTERM, wait for the exit, start again, wait until ready.
    fn restart(&mut self, key: &str) {
        match key {
            "a" => {
                self.a.stop();
                self.a = replica("a", self.ports.0);
            }
            _ => {
                self.b.stop();
                self.b = replica("b", self.ports.1);
            }
        }
    }

    fn context(&self) -> String {
        format!(
            "--- nginx ---\n{}\n--- replica a ---\n{}\n--- replica b ---\n{}",
            self.nginx.error_log(),
            self.a.logs(),
            self.b.logs()
        )
    }
}

fn report(what: &str, t: &Tally) {
    eprintln!(
        "{what}: {} calls answered, {} sessions reopened after 404, {} failed initialize, {} failed calls",
        t.calls,
        t.reopened,
        t.init_failures.len(),
        t.call_failures.len()
    );
}

#[test]
fn a_rolling_restart_of_both_replicas_under_load_fails_no_request() {
    let mut d = Deployment::start();
    let load = Load::start(d.nginx.url("/mcp"));
    thread::sleep(SETTLE);
    d.restart("a");
    thread::sleep(SETTLE);
    d.restart("b");
    thread::sleep(SETTLE);
    let t = load.finish();
    report("rolling restart (raw HTTP clients)", &t);
    assert!(t.calls > 100, "the load ran: {t:?}");
    assert!(
        t.reopened > 0,
        "sessions of the restarted replicas ended: {t:?}"
    );
    assert!(
        t.init_failures.is_empty() && t.call_failures.is_empty(),
        "failed requests: {t:#?}\n{}",
        d.context()
    );
}

#[test]
fn a_replica_killed_fails_only_its_calls_in_flight_and_the_other_killed_after_it_returns_fails_no_initialize()
 {
    let mut d = Deployment::start();
    let load = Load::start(d.nginx.url("/mcp"));
    thread::sleep(SETTLE);

    let before = load.tally();
    kill_hard(&d.a);
    thread::sleep(SETTLE);
    let killed_a = load.tally().since(&before);
    report("replica a killed", &killed_a);
    assert!(
        killed_a.init_failures.is_empty(),
        "no initialize fails: {killed_a:#?}\n{}",
        d.context()
    );
    assert!(
        killed_a.call_failures.len() <= CLIENTS,
        "only calls in flight on a fail (at most one per client): {killed_a:#?}"
    );
    assert!(killed_a.calls > 0, "the load went on: {killed_a:?}");

    // a comes back; a few seconds later b dies
    d.a = replica("a", d.ports.0);
    thread::sleep(SETTLE);
    let before = load.tally();
    kill_hard(&d.b);
    thread::sleep(SETTLE);
    let t = load.finish();
    let killed_b = t.since(&before);
    report("replica b killed after a came back", &killed_b);
    assert!(
        killed_b.init_failures.is_empty(),
        "no initialize fails: {killed_b:#?}\n{}",
        d.context()
    );
    assert!(
        killed_b.call_failures.len() <= CLIENTS,
        "only calls in flight on b fail: {killed_b:#?}"
    );
    assert!(killed_b.calls > 0, "the load went on: {killed_b:?}");
}

/// The rolling restart with the official TypeScript SDK: `tests/clients/ts_churn.mjs` opens a
/// new session when the SDK reports 404 (`StreamableHTTPError` with code 404).
#[test]
fn a_rolling_restart_under_typescript_sdk_clients_fails_no_request() {
    let mut d = Deployment::start();
    let stop_file: PathBuf = std::env::temp_dir().join(format!(
        "mcp-bastion-churn-stop-{}-{}",
        std::process::id(),
        d.ports.0
    ));
    let _ = std::fs::remove_file(&stop_file);
    let node = std::env::var("NODE").unwrap_or_else(|_| "node".into());
    let churn = Command::new(node)
        .arg(clients_dir().join("ts_churn.mjs"))
        .args(["--url", &d.nginx.url("/mcp")])
        .args(["--clients", &CLIENTS.to_string()])
        .arg("--stop-file")
        .arg(&stop_file)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    thread::sleep(SETTLE);
    d.restart("a");
    thread::sleep(SETTLE);
    d.restart("b");
    thread::sleep(SETTLE);
    std::fs::write(&stop_file, b"stop").unwrap();
    let out = churn.wait_with_output().unwrap();
    let _ = std::fs::remove_file(&stop_file);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary: Value = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| {
            panic!(
                "ts_churn.mjs printed no summary:\n{stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    let t = Tally {
        calls: summary["calls"].as_u64().unwrap_or(0),
        reopened: summary["reopened"].as_u64().unwrap_or(0),
        init_failures: strings(&summary["initFailures"]),
        call_failures: strings(&summary["callFailures"]),
    };
    report("rolling restart (TypeScript SDK clients)", &t);
    assert!(t.calls > 50, "the load ran: {summary}");
    assert!(
        t.init_failures.is_empty() && t.call_failures.is_empty(),
        "failed requests: {t:#?}\n{}",
        d.context()
    );
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|s| s.as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}
