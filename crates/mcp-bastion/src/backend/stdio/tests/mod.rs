//! Tests against a real child: `tests/fixtures/echo_server.py`, run by the
//! Python 3 found on the test's `PATH`.

mod logging;
mod per_session;
mod probe;
mod shared;

use std::{sync::OnceLock, time::Duration};

use serde_json::{Value, json};

use super::{StdioBackend, StdioBackendBuilder};
use crate::{
    backend::{Backend, Connection, SessionContext},
    jsonrpc::{Message, Notification, Request, RequestId, Response},
};

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/echo_server.py");

/// How long any single expected message may take.
const PATIENCE: Duration = Duration::from_secs(10);

/// The absolute path of the Python interpreter (not a shim that needs the
/// environment the child will not have).
fn python() -> &'static str {
    static PYTHON: OnceLock<String> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let out = std::process::Command::new("python3")
            .args(["-c", "import sys; print(sys.executable)"])
            .output()
            .expect("these tests need python3 on PATH");
        String::from_utf8(out.stdout)
            .expect("utf-8 path")
            .trim()
            .to_owned()
    })
}

/// A builder for the fixture server.
fn fixture() -> StdioBackendBuilder {
    StdioBackend::builder(python()).args(["-u", FIXTURE])
}

fn request(id: impl Into<RequestId>, method: &str, params: Value) -> Message {
    Message::Request(Request {
        id: id.into(),
        method: method.into(),
        params: Some(params),
    })
}

fn notification(method: &str, params: Value) -> Message {
    Message::Notification(Notification {
        method: method.into(),
        params: Some(params),
    })
}

/// One session, from the client's side.
struct Client {
    conn: Connection,
}

impl Client {
    async fn connect(backend: &StdioBackend, ctx: SessionContext) -> Client {
        let conn = backend.connect(ctx).await.expect("connect");
        Client { conn }
    }

    async fn send(&self, msg: Message) {
        self.conn
            .outgoing
            .send(msg)
            .await
            .expect("backend accepts messages");
    }

    /// The next message, or `None` when the stream has ended.
    async fn recv(&mut self) -> Option<Message> {
        tokio::time::timeout(PATIENCE, self.conn.incoming.recv())
            .await
            .expect("a message in time")
    }

    async fn response(&mut self) -> Response {
        match self.recv().await {
            Some(Message::Response(r)) => r,
            other => panic!("expected a response, got {other:?}"),
        }
    }

    /// Sends a request and returns the result of the next message, which
    /// must be its successful response.
    async fn call(&mut self, id: impl Into<RequestId>, method: &str, params: Value) -> Value {
        let id = id.into();
        self.send(request(id.clone(), method, params)).await;
        let resp = self.response().await;
        assert_eq!(resp.id, Some(id), "{resp:?}");
        resp.outcome.expect("a successful response")
    }

    async fn initialize(&mut self, id: impl Into<RequestId>) -> Value {
        let result = self
            .call(id, "initialize", json!({"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}))
            .await;
        self.send(notification("notifications/initialized", json!({})))
            .await;
        result
    }

    async fn pid(&mut self, id: i64) -> u32 {
        let result = self.call(id, "pid", json!({})).await;
        let pid = result["pid"].as_u64().expect("a pid");
        u32::try_from(pid).expect("a pid fits u32")
    }

    /// Asserts the stream has ended: no further message comes.
    async fn assert_ended(&mut self) {
        if let Some(msg) = self.recv().await {
            panic!("expected the stream to end, got {msg:?}");
        }
    }
}

/// Whether `pid` is gone and reaped (a zombie still counts as present).
fn process_gone(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        // A zombie keeps its /proc entry until it is waited for.
        std::fs::metadata(format!("/proc/{pid}")).is_err()
    } else {
        std::process::Command::new("ps")
            .args(["-o", "stat=", "-p", &pid.to_string()])
            .output()
            .map(|o| o.stdout.is_empty())
            .unwrap_or(false)
    }
}

/// Waits until `pid` is gone and reaped; false if it takes longer than `within`.
async fn reaped_within(pid: u32, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if process_gone(pid) {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until the backend has no live child; false after `within`.
async fn no_children_within(backend: &StdioBackend, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while backend.live_children() > 0 {
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    true
}

/// The state letter of `pid` (`Z` for a zombie), on Linux.
fn process_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit(')').next()?.trim().chars().next()
}
