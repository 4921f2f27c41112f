//! [`TransportSession`]: one session of our transports (Streamable HTTP or
//! legacy SSE) as the transport sees it: the backend connection, the streams
//! the client has open, and the rule that decides which stream each server
//! message takes. The table of them is `session_table`'s
//! [`TransportSessions`].
//!
//! Not to be confused with the session layer's records
//! ([`crate::session`]: capture, principal binding, lifetimes) nor with an
//! upstream backend's session at a remote server
//! (`backend::upstream`'s `remote_session`).
//!
//! Routing rules (in one place):
//! - a response goes to the stream of the request it answers;
//! - `notifications/progress` goes to the stream of the request that carried
//!   its `progressToken`;
//! - any other server message (a sampling or elicitation request, a log
//!   notification) goes to the most recently opened request stream that is
//!   still connected (the tool call that caused it), else to the GET stream,
//!   else it is stored on the newest request stream for replay;
//! - in the legacy SSE transport every message goes to the one stream.

use std::{
    collections::{HashMap, VecDeque},
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{
    event_store::{EventStore, StreamId, event_id, parse_event_id},
    session_table::TransportSessions,
    sse_codec::encode_event,
};
use crate::{
    backend::Connection,
    jsonrpc::{ErrorObject, Message, RequestId, Response, codes},
    protocol::ProtocolVersion,
};

/// Frames buffered per stream before the backend pump waits for the client.
pub(crate) const STREAM_BUFFER: usize = 64;

/// How a stream's messages are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoding {
    /// SSE events (with ids when an event store is configured).
    Sse,
    /// Bare JSON messages, collected into one `application/json` reply.
    Json,
}

struct StreamEntry {
    tx: mpsc::Sender<Bytes>,
    encoding: Encoding,
    /// Responses still owed on this stream (request streams only).
    waiting: usize,
}

#[derive(Default)]
struct Routes {
    next_stream: StreamId,
    next_seq: u64,
    streams: HashMap<StreamId, StreamEntry>,
    /// Client request id → the stream that waits for its response.
    pending: HashMap<RequestId, StreamId>,
    /// Progress token (as JSON text) → the stream of the request that set it.
    progress: HashMap<String, StreamId>,
    /// Request streams still owed responses, oldest first.
    open_requests: Vec<StreamId>,
    /// The GET stream (Streamable HTTP) or the `/sse` stream (legacy).
    standalone: Option<StreamId>,
    /// The id of the `initialize` request whose result is still awaited.
    initialize: Option<RequestId>,
}

impl Routes {
    /// Makes `stream`, sending on `tx`, the standalone stream; a previous
    /// one ends (its sender is dropped).
    fn set_standalone(&mut self, stream: StreamId, tx: mpsc::Sender<Bytes>) {
        if let Some(old) = self.standalone.replace(stream) {
            self.streams.remove(&old);
        }
        self.streams.insert(
            stream,
            StreamEntry {
                tx,
                encoding: Encoding::Sse,
                waiting: 0,
            },
        );
    }
}

/// A new stream's first frames and its channel.
pub(crate) struct OpenedStream {
    pub(crate) prelude: VecDeque<Bytes>,
    pub(crate) rx: mpsc::Receiver<Bytes>,
}

/// A live session of either transport.
pub(crate) struct TransportSession {
    pub(crate) id: String,
    outgoing: mpsc::Sender<Message>,
    closed: CancellationToken,
    routes: Mutex<Routes>,
    events: Option<Arc<dyn EventStore>>,
    legacy: bool,
    priming: AtomicBool,
    /// The revision the backend's `InitializeResult` chose, read from the
    /// message itself as it is delivered.
    negotiated: OnceLock<ProtocolVersion>,
    /// When the client last did anything, in ms since `CLOCK_EPOCH`.
    last_active: AtomicU64,
    /// The OpenTelemetry spans of requests awaiting the backend's answer.
    calls: crate::otel::BackendCalls,
}

static CLOCK_EPOCH: std::sync::LazyLock<Instant> = std::sync::LazyLock::new(Instant::now);

pub(super) fn now_ms() -> u64 {
    u64::try_from(CLOCK_EPOCH.elapsed().as_millis()).unwrap_or(u64::MAX)
}

impl TransportSession {
    /// Starts a session over `conn` and the task that routes its messages.
    /// The session removes itself from `table` when the backend goes away.
    pub(crate) fn start(
        id: String,
        conn: Connection,
        events: Option<Arc<dyn EventStore>>,
        legacy: bool,
        table: Arc<TransportSessions>,
    ) -> Arc<TransportSession> {
        let Connection {
            outgoing,
            mut incoming,
            closed,
        } = conn;
        let session = Arc::new(TransportSession {
            id,
            outgoing,
            closed: closed.clone(),
            routes: Mutex::new(Routes::default()),
            events,
            legacy,
            priming: AtomicBool::new(false),
            negotiated: OnceLock::new(),
            last_active: AtomicU64::new(now_ms()),
            calls: crate::otel::BackendCalls::default(),
        });
        let pump = Arc::clone(&session);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = closed.cancelled() => break,
                    msg = incoming.recv() => match msg {
                        Some(msg) => pump.route(msg).await,
                        None => break,
                    },
                }
            }
            table.remove(&pump.id);
            pump.fail_pending().await;
            pump.end();
            tracing::debug!(target: "mcp_bastion::transport", "session ended");
        });
        session
    }

    /// Whether new streams start with a priming event (2025-11-25 and later).
    /// Marks `id` as the session's `initialize` request: the successful
    /// result answering it says which revision the session speaks
    /// ([`negotiated`](Self::negotiated)).
    pub(crate) fn expect_initialize(&self, id: RequestId) {
        self.lock().initialize = Some(id);
    }

    /// The revision of the backend's successful `InitializeResult` (its
    /// `protocolVersion`, or the Streamable HTTP default when it names none
    /// we speak); `None` until one was delivered (an error answer leaves it
    /// unset).
    pub(crate) fn negotiated(&self) -> Option<ProtocolVersion> {
        self.negotiated.get().copied()
    }

    pub(crate) fn set_priming(&self, on: bool) {
        self.priming
            .store(on && self.events.is_some(), Ordering::Relaxed);
    }

    /// Ends the session: the backend connection is closed and every stream
    /// ends.
    pub(crate) fn end(&self) {
        self.closed.cancel();
        let mut routes = self.lock();
        routes.streams.clear();
        routes.standalone = None;
        drop(routes);
        if let Some(store) = &self.events {
            store.forget(&self.id);
        }
    }

    /// Records client activity (every request of the session calls this).
    /// Requests of this session still waiting for their response.
    pub(crate) fn in_flight(&self) -> usize {
        self.lock().pending.len()
    }

    pub(crate) fn touch(&self) {
        self.last_active.store(now_ms(), Ordering::Relaxed);
    }

    /// Idle: no client activity for `idle` and no stream connected.
    pub(super) fn is_idle(&self, idle: Duration, now: u64) -> bool {
        let quiet =
            now.saturating_sub(self.last_active.load(Ordering::Relaxed)) >= idle.as_millis() as u64;
        quiet && self.lock().streams.values().all(|e| e.tx.is_closed())
    }

    /// True once the session has ended.
    pub(crate) fn is_ended(&self) -> bool {
        self.closed.is_cancelled()
    }

    /// Sends client messages to the backend. Fails when the backend is gone.
    pub(crate) async fn forward(
        &self,
        messages: impl IntoIterator<Item = Message>,
    ) -> Result<(), ()> {
        for mut msg in messages {
            self.calls.start(&mut msg);
            self.outgoing.send(msg).await.map_err(|_| ())?;
        }
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Routes> {
        self.routes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Opens the stream that will carry the responses to `requests`.
    pub(crate) fn open_request_stream(
        &self,
        requests: &[&Message],
        encoding: Encoding,
    ) -> OpenedStream {
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let mut routes = self.lock();
        let stream = routes.next_stream;
        routes.next_stream += 1;
        let prelude = self.priming_frame(&mut routes, stream, encoding);
        for req in requests {
            if let Message::Request(r) = req {
                routes.pending.insert(r.id.clone(), stream);
                if let Some(token) = progress_token(r.params.as_ref()) {
                    routes.progress.insert(token, stream);
                }
            }
        }
        routes.open_requests.push(stream);
        routes.streams.insert(
            stream,
            StreamEntry {
                tx,
                encoding,
                waiting: requests.len(),
            },
        );
        OpenedStream { prelude, rx }
    }

    /// Opens the standalone stream (GET, or the legacy `/sse` stream). A new
    /// one replaces the old, which ends.
    pub(crate) fn open_standalone(&self) -> OpenedStream {
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let mut routes = self.lock();
        let stream = routes.next_stream;
        routes.next_stream += 1;
        let prelude = self.priming_frame(&mut routes, stream, Encoding::Sse);
        routes.set_standalone(stream, tx);
        OpenedStream { prelude, rx }
    }

    /// Makes an already open stream, whose receiver the client holds, the
    /// standalone stream (the legacy `/sse` stream, opened before its
    /// backend session). A previous standalone stream ends.
    pub(crate) fn adopt_standalone(&self, tx: mpsc::Sender<Bytes>) {
        let mut routes = self.lock();
        let stream = routes.next_stream;
        routes.next_stream += 1;
        routes.set_standalone(stream, tx);
    }

    /// Resumes a stream after `last_event_id`: its stored later events first,
    /// then its live events if it is still open. `None` when the id is not
    /// one of ours.
    pub(crate) fn resume(&self, last_event_id: &str) -> Option<OpenedStream> {
        let store = self.events.as_ref()?;
        let (stream, seq) = parse_event_id(last_event_id)?;
        let mut routes = self.lock();
        if stream >= routes.next_stream {
            return None;
        }
        let prelude = store
            .replay_encoded_after(&self.id, stream, seq)
            .into_iter()
            .map(|(seq, json)| {
                encode_event(
                    None,
                    Some(&event_id(stream, seq)),
                    &String::from_utf8_lossy(&json),
                )
            })
            .collect();
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        // Replay and attach happen under one lock: every event is either in
        // the replay or sent live on the new channel, never both, never none.
        if let Some(entry) = routes.streams.get_mut(&stream) {
            entry.tx = tx;
        }
        Some(OpenedStream { prelude, rx })
    }

    fn priming_frame(
        &self,
        routes: &mut Routes,
        stream: StreamId,
        encoding: Encoding,
    ) -> VecDeque<Bytes> {
        let mut prelude = VecDeque::new();
        if encoding == Encoding::Sse && self.priming.load(Ordering::Relaxed) {
            let seq = routes.next_seq;
            routes.next_seq += 1;
            prelude.push_back(encode_event(None, Some(&event_id(stream, seq)), ""));
        }
        prelude
    }

    /// Routes one server message to its stream.
    async fn route(&self, msg: Message) {
        self.calls.finish(&msg);
        let target = {
            let mut routes = self.lock();
            self.target(&mut routes, &msg)
        };
        match target {
            Some(stream) => self.deliver(stream, &msg).await,
            None => tracing::debug!(
                target: "mcp_bastion::transport",
                method = msg.method().unwrap_or("-"),
                "no stream open for a server message; dropped"
            ),
        }
    }

    fn target(&self, routes: &mut Routes, msg: &Message) -> Option<StreamId> {
        if self.legacy {
            return routes.standalone;
        }
        match msg {
            Message::Response(Response { id: Some(id), .. }) => routes.pending.remove(id),
            Message::Response(_) => None,
            Message::Notification(n) if n.method == "notifications/progress" => {
                progress_token(n.params.as_ref())
                    .and_then(|t| routes.progress.get(&t).copied())
                    .filter(|s| routes.streams.contains_key(s))
                    .or_else(|| Self::default_target(routes))
            }
            _ => Self::default_target(routes),
        }
    }

    /// The stream for a server message that answers no particular request.
    fn default_target(routes: &Routes) -> Option<StreamId> {
        let live = |s: &StreamId| {
            routes
                .streams
                .get(s)
                .is_some_and(|e| e.encoding == Encoding::Sse && !e.tx.is_closed())
        };
        routes
            .open_requests
            .iter()
            .rev()
            .find(|s| live(s))
            .copied()
            .or(routes.standalone.filter(live))
            .or_else(|| {
                routes
                    .open_requests
                    .iter()
                    .rev()
                    .find(|s| {
                        routes
                            .streams
                            .get(s)
                            .is_some_and(|e| e.encoding == Encoding::Sse)
                    })
                    .copied()
            })
    }

    /// Stores and sends one message on `stream`; a request stream that has
    /// received all its responses is closed after this one.
    async fn deliver(&self, stream: StreamId, msg: &Message) {
        let (tx, frame) = {
            let mut routes = self.lock();
            let seq = routes.next_seq;
            routes.next_seq += 1;
            if let Message::Response(Response {
                id: Some(id),
                outcome: Ok(result),
            }) = msg
                && routes.initialize.as_ref() == Some(id)
            {
                let version = result
                    .get("protocolVersion")
                    .and_then(Value::as_str)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(ProtocolVersion::DEFAULT_STREAMABLE);
                let _ = self.negotiated.set(version);
                routes.initialize = None;
            }
            let Some(entry) = routes.streams.get_mut(&stream) else {
                return;
            };
            let encoding = entry.encoding;
            if let Message::Response(_) = msg {
                entry.waiting = entry.waiting.saturating_sub(1);
            }
            let done = entry.waiting == 0
                && routes.standalone != Some(stream)
                && matches!(msg, Message::Response(_));
            let tx = if done {
                routes.open_requests.retain(|s| *s != stream);
                routes.progress.retain(|_, s| *s != stream);
                routes.streams.remove(&stream).map(|e| e.tx)
            } else {
                routes.streams.get(&stream).map(|e| e.tx.clone())
            };
            let json = msg.to_json();
            let frame = match encoding {
                Encoding::Json => Bytes::from(json),
                Encoding::Sse => {
                    let event = if self.legacy { Some("message") } else { None };
                    match &self.events {
                        Some(store) => {
                            let frame = encode_event(event, Some(&event_id(stream, seq)), &json);
                            // The store keeps the JSON text itself (moved, not copied).
                            store.append_encoded(&self.id, stream, seq, msg, &Bytes::from(json));
                            frame
                        }
                        None => encode_event(event, None, &json),
                    }
                }
            };
            (tx, frame)
        };
        if let Some(tx) = tx {
            // A client that went away just misses the live copy; the event
            // store keeps it for a resumed stream.
            let _ = tx.send(frame).await;
        }
    }

    /// The backend is gone: every request still waiting gets an error.
    async fn fail_pending(&self) {
        let pending: Vec<(RequestId, StreamId)> = self.lock().pending.drain().collect();
        for (id, stream) in pending {
            let err = ErrorObject::new(codes::INTERNAL_ERROR, "MCP backend connection closed");
            self.deliver(stream, &Message::Response(Response::error(Some(id), err)))
                .await;
        }
    }
}

fn progress_token(params: Option<&Value>) -> Option<String> {
    let params = params?;
    let token = params
        .get("progressToken")
        .or_else(|| params.get("_meta")?.get("progressToken"))?;
    Some(token.to_string())
}

/// Keepalive default for SSE streams.
pub(crate) const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(30);
