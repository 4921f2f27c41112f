//! A lean MCP client over raw hyper (HTTP/1.1, one keep-alive connection per
//! client, `TCP_NODELAY`), so that the load generator spends as little of the
//! shared CPU as possible.
//!
//! - [`StreamableSession`]: `initialize` (POST), `notifications/initialized`,
//!   then each request is a POST whose answer is JSON or an SSE stream.
//!   With [`Endpoint::sessionless`], revision 2026-07-28 instead: no
//!   handshake; every request carries `MCP-Protocol-Version`, `Mcp-Method`,
//!   `Mcp-Name` and its `_meta` (protocol version, client info and
//!   capabilities).
//! - [`SseSession`]: legacy 2024-11-05: `GET /sse`, the `endpoint` event, then
//!   each request is a POST (202) whose answer arrives on the stream.
//!
//! Request ids are unique across all clients of a run (some peers broadcast
//! one shared child's answers to every session).

use std::{
    net::SocketAddr,
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::{
    body::Incoming,
    client::conn::http1::{self, SendRequest},
};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use sse_stream::{Sse, SseStream};
use tokio::{net::TcpStream, sync::mpsc, task::JoinHandle};

/// Errors are messages: the harness only counts and shows them.
pub type ClientResult<T> = Result<T, String>;

/// Which MCP HTTP transport a client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Transport {
    /// Streamable HTTP (2025-03-26 and later).
    Streamable,
    /// Legacy HTTP+SSE (2024-11-05).
    Sse,
}

impl Transport {
    /// `streamable` or `sse`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Streamable => "streamable",
            Self::Sse => "sse",
        }
    }
}

/// Where a client connects and what it sends with every request.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// The server's address.
    pub addr: SocketAddr,
    /// `/mcp` for Streamable HTTP, `/sse` for legacy SSE.
    pub path: String,
    /// The transport to speak.
    pub transport: Transport,
    /// Revision 2026-07-28 over Streamable HTTP: no handshake, no session.
    pub sessionless: bool,
    /// Extra headers on every request (API keys).
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

/// How long a session waits for the `endpoint` event or an answer on a stream.
const STREAM_WAIT: Duration = Duration::from_secs(30);
/// The protocol revision asked for over Streamable HTTP.
const STREAMABLE_VERSION: &str = "2025-06-18";
/// The legacy SSE revision.
const SSE_VERSION: &str = "2024-11-05";
/// The sessionless revision.
const SESSIONLESS_VERSION: &str = "2026-07-28";

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn next_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// One HTTP/1.1 connection.
struct HttpConn {
    sender: SendRequest<Full<Bytes>>,
    host: HeaderValue,
}

impl HttpConn {
    async fn connect(addr: SocketAddr) -> ClientResult<Self> {
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect {addr}: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let (sender, conn) = http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let host = HeaderValue::from_str(&addr.to_string()).map_err(|e| e.to_string())?;
        Ok(Self { sender, host })
    }

    fn request(&self, method: Method, path: &str, ep: &Endpoint) -> http::request::Builder {
        let mut builder = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, self.host.clone());
        for (name, value) in &ep.headers {
            builder = builder.header(name, value);
        }
        builder
    }

    async fn send(&mut self, request: Request<Full<Bytes>>) -> ClientResult<Response<Incoming>> {
        self.sender
            .ready()
            .await
            .map_err(|e| format!("connection: {e}"))?;
        self.sender
            .send_request(request)
            .await
            .map_err(|e| format!("request: {e}"))
    }
}

fn json_request(method: &str, params: Value) -> (u64, Value) {
    let id = next_id();
    let body = json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params });
    (id, body)
}

fn initialize_params(version: &str) -> Value {
    json!({
        "protocolVersion": version,
        "capabilities": {},
        "clientInfo": { "name": "mcp-bastion-bench", "version": "0" },
    })
}

fn echo_params() -> Value {
    json!({ "name": "echo", "arguments": { "message": "hello" } })
}

/// `echo_params` with the `_meta` every 2026-07-28 request carries.
fn sessionless_echo_params() -> Value {
    json!({
        "name": "echo",
        "arguments": { "message": "hello" },
        "_meta": {
            "io.modelcontextprotocol/protocolVersion": SESSIONLESS_VERSION,
            "io.modelcontextprotocol/clientInfo": { "name": "mcp-bastion-bench", "version": "0" },
            "io.modelcontextprotocol/clientCapabilities": {},
        },
    })
}

const INITIALIZED: &str = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;

/// Checks that `message` answers `id` with a result (not an error, not a
/// tool error).
fn check_answer(message: &Value, id: u64) -> ClientResult<()> {
    if let Some(error) = message.get("error") {
        return Err(format!("JSON-RPC error for id {id}: {error}"));
    }
    match message.get("result") {
        Some(result) if result.get("isError") == Some(&Value::Bool(true)) => {
            Err(format!("tool error for id {id}: {result}"))
        }
        Some(_) => Ok(()),
        None => Err(format!("answer to id {id} has no result: {message}")),
    }
}

fn is_answer_to(message: &Value, id: u64) -> bool {
    message.get("id").and_then(Value::as_u64) == Some(id)
        && (message.get("result").is_some() || message.get("error").is_some())
}

async fn body_text(body: Incoming) -> String {
    match body.collect().await {
        Ok(b) => {
            let bytes = b.to_bytes();
            String::from_utf8_lossy(&bytes[..bytes.len().min(300)]).into_owned()
        }
        Err(e) => format!("<body error: {e}>"),
    }
}

/// A Streamable HTTP session.
pub struct StreamableSession {
    conn: HttpConn,
    ep: Endpoint,
    session_id: Option<HeaderValue>,
    version: HeaderValue,
    /// The last SSE answer did not end in time: reconnect before the next.
    broken: bool,
}

impl StreamableSession {
    /// Connects, initializes, and sends `notifications/initialized`; for a
    /// [sessionless](Endpoint::sessionless) endpoint, only connects.
    pub async fn open(ep: &Endpoint) -> ClientResult<Self> {
        let mut session = Self {
            conn: HttpConn::connect(ep.addr).await?,
            ep: ep.clone(),
            session_id: None,
            version: HeaderValue::from_static(if ep.sessionless {
                SESSIONLESS_VERSION
            } else {
                STREAMABLE_VERSION
            }),
            broken: false,
        };
        if ep.sessionless {
            return Ok(session);
        }
        let (id, body) = json_request("initialize", initialize_params(STREAMABLE_VERSION));
        let (headers, answer) = session.post(&body.to_string(), Some(id)).await?;
        let answer = answer.ok_or("initialize: no answer")?;
        check_answer(&answer, id).map_err(|e| format!("initialize: {e}"))?;
        session.session_id = headers.get("mcp-session-id").cloned();
        if let Some(v) = answer
            .pointer("/result/protocolVersion")
            .and_then(Value::as_str)
            .and_then(|v| HeaderValue::from_str(v).ok())
        {
            session.version = v;
        }
        session.post(INITIALIZED, None).await?;
        Ok(session)
    }

    /// Calls the `echo` tool once.
    pub async fn call_echo(&mut self) -> ClientResult<()> {
        let params = if self.ep.sessionless {
            sessionless_echo_params()
        } else {
            echo_params()
        };
        let (id, body) = json_request("tools/call", params);
        let (_, answer) = self.post(&body.to_string(), Some(id)).await?;
        check_answer(&answer.ok_or("no answer")?, id)
    }

    /// Opens the GET stream of this session on a second connection and
    /// returns it once the server has answered 200.
    pub async fn open_get_stream(&self) -> ClientResult<HeldStream> {
        let mut conn = HttpConn::connect(self.ep.addr).await?;
        let mut req = conn
            .request(Method::GET, &self.ep.path, &self.ep)
            .header(header::ACCEPT, "text/event-stream")
            .header("mcp-protocol-version", self.version.clone());
        if let Some(sid) = &self.session_id {
            req = req.header("mcp-session-id", sid.clone());
        }
        let req = req.body(Full::default()).map_err(|e| e.to_string())?;
        let resp = conn.send(req).await?;
        if resp.status() != StatusCode::OK {
            let status = resp.status();
            return Err(format!(
                "GET stream: HTTP {status}: {}",
                body_text(resp.into_body()).await
            ));
        }
        Ok(HeldStream {
            _conn: conn,
            _body: resp.into_body(),
        })
    }

    async fn post(
        &mut self,
        body: &str,
        answer_to: Option<u64>,
    ) -> ClientResult<(HeaderMap, Option<Value>)> {
        if self.broken || self.conn.sender.is_closed() {
            self.conn = HttpConn::connect(self.ep.addr).await?;
            self.broken = false;
        }
        let mut req = self
            .conn
            .request(Method::POST, &self.ep.path, &self.ep)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json, text/event-stream");
        if let Some(sid) = &self.session_id {
            req = req
                .header("mcp-session-id", sid.clone())
                .header("mcp-protocol-version", self.version.clone());
        } else if self.ep.sessionless {
            // the benchmark sends tools/call of `echo` only
            req = req
                .header("mcp-protocol-version", self.version.clone())
                .header("mcp-method", "tools/call")
                .header("mcp-name", "echo");
        }
        let req = req
            .body(Full::new(Bytes::copy_from_slice(body.as_bytes())))
            .map_err(|e| e.to_string())?;
        let resp = self.conn.send(req).await?;
        let status = resp.status();
        if !status.is_success() {
            return Err(format!(
                "HTTP {status}: {}",
                body_text(resp.into_body()).await
            ));
        }
        let (parts, body) = resp.into_parts();
        let Some(id) = answer_to else {
            let _ = body.collect().await;
            return Ok((parts.headers, None));
        };
        let is_sse = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        if !is_sse {
            let bytes = body
                .collect()
                .await
                .map_err(|e| format!("body: {e}"))?
                .to_bytes();
            let answer: Value =
                serde_json::from_slice(&bytes).map_err(|e| format!("answer is not JSON: {e}"))?;
            return Ok((parts.headers, Some(answer)));
        }
        let mut events = SseStream::new(body);
        loop {
            let event = match events.next().await {
                Some(Ok(event)) => event,
                Some(Err(e)) => return Err(format!("SSE answer: {e}")),
                None => return Err(format!("SSE answer ended without the answer to {id}")),
            };
            let Some(message) = event
                .data
                .as_deref()
                .and_then(|data| serde_json::from_str::<Value>(data).ok())
            else {
                continue;
            };
            if is_answer_to(&message, id) {
                // The stream should end right after its answer; a server
                // that keeps it open costs this connection.
                let rest = async {
                    while let Some(event) = events.next().await {
                        event?;
                    }
                    Ok::<(), sse_stream::Error>(())
                };
                let drained = tokio::time::timeout(Duration::from_secs(2), rest);
                if !matches!(drained.await, Ok(Ok(()))) {
                    self.broken = true;
                }
                return Ok((parts.headers, Some(message)));
            }
        }
    }
}

/// A stream held open (idle mode): the connection and the unread body.
pub struct HeldStream {
    _conn: HttpConn,
    _body: Incoming,
}

/// A legacy HTTP+SSE session.
pub struct SseSession {
    post_conn: HttpConn,
    ep: Endpoint,
    post_path: String,
    events: mpsc::UnboundedReceiver<Sse>,
    reader: JoinHandle<()>,
}

impl Drop for SseSession {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// Opens `GET ep.path`, checks for 200, and forwards its events that carry
/// data to a channel from a reader task.
async fn open_event_stream(
    ep: &Endpoint,
) -> ClientResult<(mpsc::UnboundedReceiver<Sse>, JoinHandle<()>)> {
    let mut conn = HttpConn::connect(ep.addr).await?;
    let req = conn
        .request(Method::GET, &ep.path, ep)
        .header(header::ACCEPT, "text/event-stream")
        .body(Full::default())
        .map_err(|e| e.to_string())?;
    let resp = conn.send(req).await?;
    if resp.status() != StatusCode::OK {
        let status = resp.status();
        return Err(format!(
            "GET {}: HTTP {status}: {}",
            ep.path,
            body_text(resp.into_body()).await
        ));
    }
    let mut events = SseStream::new(resp.into_body());
    let (tx, rx) = mpsc::unbounded_channel();
    let reader = tokio::spawn(async move {
        let _conn = conn; // the connection lives as long as the stream is read
        while let Some(Ok(event)) = events.next().await {
            if event.data.is_some() && tx.send(event).is_err() {
                return;
            }
        }
    });
    Ok((rx, reader))
}

/// Resolves the `endpoint` event's URI against the SSE path.
fn resolve_endpoint(sse_path: &str, uri: &str) -> String {
    if let Some(rest) = uri
        .strip_prefix("http://")
        .or_else(|| uri.strip_prefix("https://"))
    {
        return rest
            .find('/')
            .map_or_else(|| "/".to_owned(), |i| rest[i..].to_owned());
    }
    if uri.starts_with('/') {
        return uri.to_owned();
    }
    let path = sse_path.split('?').next().unwrap_or(sse_path);
    let dir = path.rsplit_once('/').map_or("", |(d, _)| d);
    format!("{dir}/{uri}")
}

/// Whether `event` is the legacy transport's `endpoint` event.
fn is_endpoint(event: &Sse) -> bool {
    event.event.as_deref() == Some("endpoint")
}

async fn wait_event(
    events: &mut mpsc::UnboundedReceiver<Sse>,
    mut matches: impl FnMut(&Sse) -> bool,
) -> ClientResult<Sse> {
    let wait = async {
        while let Some(event) = events.recv().await {
            if matches(&event) {
                return Ok(event);
            }
        }
        Err("the SSE stream ended".to_owned())
    };
    tokio::time::timeout(STREAM_WAIT, wait)
        .await
        .map_err(|_| "no event in time on the SSE stream".to_owned())?
}

impl SseSession {
    /// Opens the stream, reads `endpoint`, initializes.
    pub async fn open(ep: &Endpoint) -> ClientResult<Self> {
        let (mut events, reader) = open_event_stream(ep).await?;
        let endpoint = wait_event(&mut events, is_endpoint).await;
        let endpoint = match endpoint {
            Ok(e) => e,
            Err(e) => {
                reader.abort();
                return Err(format!("endpoint event: {e}"));
            }
        };
        let mut session = Self {
            post_conn: HttpConn::connect(ep.addr).await?,
            ep: ep.clone(),
            post_path: resolve_endpoint(&ep.path, endpoint.data.as_deref().unwrap_or("").trim()),
            events,
            reader,
        };
        let (id, body) = json_request("initialize", initialize_params(SSE_VERSION));
        let answer = session.request(&body.to_string(), id).await?;
        check_answer(&answer, id).map_err(|e| format!("initialize: {e}"))?;
        session.post(INITIALIZED).await?;
        Ok(session)
    }

    /// Opens the stream and waits for `endpoint`, nothing more (idle mode).
    pub async fn open_idle(ep: &Endpoint) -> ClientResult<IdleSse> {
        let (mut events, reader) = open_event_stream(ep).await?;
        match wait_event(&mut events, is_endpoint).await {
            Ok(_) => Ok(IdleSse { reader }),
            Err(e) => {
                reader.abort();
                Err(format!("endpoint event: {e}"))
            }
        }
    }

    /// Calls the `echo` tool once.
    pub async fn call_echo(&mut self) -> ClientResult<()> {
        let (id, body) = json_request("tools/call", echo_params());
        let answer = self.request(&body.to_string(), id).await?;
        check_answer(&answer, id)
    }

    async fn request(&mut self, body: &str, id: u64) -> ClientResult<Value> {
        self.post(body).await?;
        let mut found = None;
        wait_event(&mut self.events, |e| {
            if e.event
                .as_deref()
                .is_none_or(|n| n.is_empty() || n == "message")
                && let Some(data) = e.data.as_deref()
                && let Ok(message) = serde_json::from_str::<Value>(data)
                && is_answer_to(&message, id)
            {
                found = Some(message);
                return true;
            }
            false
        })
        .await?;
        found.ok_or_else(|| "no answer".to_owned())
    }

    async fn post(&mut self, body: &str) -> ClientResult<()> {
        if self.post_conn.sender.is_closed() {
            self.post_conn = HttpConn::connect(self.ep.addr).await?;
        }
        let req = self
            .post_conn
            .request(Method::POST, &self.post_path, &self.ep)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::copy_from_slice(body.as_bytes())))
            .map_err(|e| e.to_string())?;
        let resp = self.post_conn.send(req).await?;
        let status = resp.status();
        let text = body_text(resp.into_body()).await;
        if !status.is_success() {
            return Err(format!("POST {}: HTTP {status}: {text}", self.post_path));
        }
        Ok(())
    }
}

/// An idle legacy SSE stream; closed when dropped.
pub struct IdleSse {
    reader: JoinHandle<()>,
}

impl Drop for IdleSse {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// A session of either transport.
pub enum Session {
    /// Streamable HTTP.
    Streamable(StreamableSession),
    /// Legacy SSE.
    Sse(SseSession),
}

impl Session {
    /// Opens a session on `ep` in its transport.
    pub async fn open(ep: &Endpoint) -> ClientResult<Self> {
        match ep.transport {
            Transport::Streamable => StreamableSession::open(ep).await.map(Self::Streamable),
            Transport::Sse => SseSession::open(ep).await.map(Self::Sse),
        }
    }

    /// Calls the `echo` tool once.
    pub async fn call_echo(&mut self) -> ClientResult<()> {
        match self {
            Self::Streamable(s) => s.call_echo().await,
            Self::Sse(s) => s.call_echo().await,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn endpoints_resolve_like_a_browser() {
        assert_eq!(
            resolve_endpoint("/sse", "messages?session_id=x"),
            "/messages?session_id=x"
        );
        assert_eq!(
            resolve_endpoint("/k/sse", "messages?a=1"),
            "/k/messages?a=1"
        );
        assert_eq!(
            resolve_endpoint("/sse", "/message?sessionId=1"),
            "/message?sessionId=1"
        );
        assert_eq!(
            resolve_endpoint("/sse", "http://127.0.0.1:9/m?x=1"),
            "/m?x=1"
        );
    }
}
