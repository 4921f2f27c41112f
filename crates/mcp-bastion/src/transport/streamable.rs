//! The Streamable HTTP transport (2025-03-26, 2025-06-18, 2025-11-25), and
//! sessionless 2026-07-28 requests on the same path (on by default).

use std::{
    convert::Infallible,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use axum::{
    body::Body,
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use http::{HeaderValue, Method, Request, StatusCode, header, request::Parts};
use http_body::Body as HttpBody;
use tower::Service;

use super::{
    config::{TransportConfig, accepts, reject, session_not_found},
    event_store::EventStore,
    session_table::TransportSessions,
    sse_codec::{SseBody, encode_event},
    stateless::{
        self,
        pool::{Pool, PoolLimits},
    },
    stream_routing::{Encoding, OpenedStream, TransportSession},
};
use crate::{
    backend::{Backend, SessionContext},
    boxed::BoxFuture,
    inspect::{McpRequest, Payload, read_and_parse},
    jsonrpc::{ErrorObject, Message, codes, http_error},
    protocol::{HEADER_LAST_EVENT_ID, HEADER_PROTOCOL_VERSION, HEADER_SESSION_ID, ProtocolVersion},
    session::{new_session_id, validate_session_id},
};

/// The Streamable HTTP transport as a tower service.
///
/// Mount it on one path for POST, GET and DELETE:
///
/// ```no_run
/// use axum::{Router, serve::ListenerExt};
/// use mcp_bastion::{backend::stdio::StdioBackend, transport::StreamableHttp};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let backend = StdioBackend::builder("npx")
///     .args(["-y", "@modelcontextprotocol/server-everything", "stdio"])
///     .build()?;
/// let app = Router::new().route_service("/mcp", StreamableHttp::new(backend));
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?
///     .tap_io(|tcp| { let _ = tcp.set_nodelay(true); });
/// axum::serve(listener, app).await?;
/// # Ok(()) }
/// ```
///
/// It answers the protocol's rules itself: `Accept` must list
/// `application/json` and `text/event-stream` on POST (406), the session id
/// is assigned on the `InitializeResult` response, a request without one is
/// 400 and one with an unknown or ended id is 404, notifications and
/// responses get 202, requests get an SSE stream (or JSON with
/// [`json_response`](Self::json_response)), GET opens the server-to-client
/// stream and resumes any stream after `Last-Event-ID`, DELETE ends the
/// session.
pub struct StreamableHttp<B> {
    backend: Arc<B>,
    sessions: Arc<TransportSessions>,
    config: Arc<TransportConfig>,
    /// Warm backend links of sessionless (2026-07-28) requests.
    pool: Arc<Pool>,
}

impl<B> Clone for StreamableHttp<B> {
    fn clone(&self) -> Self {
        Self {
            backend: Arc::clone(&self.backend),
            sessions: Arc::clone(&self.sessions),
            config: Arc::clone(&self.config),
            pool: Arc::clone(&self.pool),
        }
    }
}

impl<B> std::fmt::Debug for StreamableHttp<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamableHttp")
            .field("config", &self.config)
            .field("sessions", &self.sessions.len())
            .finish()
    }
}

impl<B: Backend> StreamableHttp<B> {
    /// A transport over `backend` with the defaults: SSE replies, keepalive
    /// every 30 s, a bounded in-memory event store for resumption.
    pub fn new(backend: B) -> Self {
        Self {
            backend: Arc::new(backend),
            sessions: Arc::new(TransportSessions::new(
                TransportConfig::default().idle_timeout,
            )),
            config: Arc::new(TransportConfig::default()),
            pool: Arc::new(Pool::new(PoolLimits::default())),
        }
    }

    fn map_pool(mut self, f: impl FnOnce(&mut PoolLimits)) -> Self {
        let mut limits = self.pool.limits();
        f(&mut limits);
        self.pool = Arc::new(Pool::new(limits));
        self
    }

    /// Closes a pooled backend link of sessionless (2026-07-28) requests
    /// once it has been idle this long (default 60 s; `None`: never). With
    /// a per-session stdio backend this is how long a principal's child
    /// outlives their last request. See
    /// [`stateless::pool`](super::stateless) for how links are pooled.
    pub fn sessionless_idle_timeout(self, idle: Option<Duration>) -> Self {
        self.map_pool(|l| l.idle_timeout = idle)
    }

    /// At most this many backend links of one principal (one pool key)
    /// serve sessionless requests at once (default 8, at least 1); a
    /// further concurrent request waits for one to finish. Also bounds the
    /// principal's open `subscriptions/listen` streams.
    pub fn sessionless_max_links_per_principal(self, n: usize) -> Self {
        self.map_pool(|l| l.max_per_key = n)
    }

    /// At most this many backend links are open for sessionless requests in
    /// all, busy and idle (default 128, at least 1): when full, the link
    /// idle the longest is closed for a new one, and with none idle a
    /// request waits. Also bounds the open `subscriptions/listen` streams.
    pub fn sessionless_max_links(self, n: usize) -> Self {
        self.map_pool(|l| l.max_total = n)
    }

    /// Backend links open for sessionless requests (busy and idle; listen
    /// streams not counted).
    pub fn sessionless_links(&self) -> usize {
        self.pool.open_links()
    }

    /// Ends sessions that have had no request and no open stream for this
    /// long (default 30 minutes; `None`: never). Their backend connections
    /// close (a per-session child exits).
    pub fn session_idle_timeout(mut self, idle: Option<Duration>) -> Self {
        self.sessions = Arc::new(TransportSessions::new(idle));
        self.map_config(|c| c.idle_timeout = idle)
    }

    fn map_config(mut self, f: impl FnOnce(&mut TransportConfig)) -> Self {
        f(Arc::make_mut(&mut self.config));
        self
    }

    /// Answer requests with one `application/json` body instead of an SSE
    /// stream. Server-to-client messages then travel on the GET stream only.
    pub fn json_response(self, on: bool) -> Self {
        self.map_config(|c| c.json_response = on)
    }

    /// Whether revision 2026-07-28 (sessionless) requests are served on
    /// this path. **On by default**: such a request is passed through
    /// unchanged to a backend that speaks 2026-07-28
    /// ([`Backend::protocol_versions`]), and otherwise bridged over backend
    /// connections initialized at 2025-11-25 and pooled per principal (see
    /// [`stateless`](super::stateless) for how, and what the bridge cannot
    /// relay). Requests of the handshake revisions never take that branch
    /// (it is chosen by the `MCP-Protocol-Version` header value), so this
    /// costs them nothing. `false` turns it off: 2026-07-28 requests then
    /// get `400` with `-32022` listing the handshake revisions, and
    /// negotiating clients fall back to `initialize`. With a per-session
    /// stdio backend each principal gets a child of their own, kept for
    /// [`sessionless_idle_timeout`](Self::sessionless_idle_timeout).
    pub fn sessionless(self, on: bool) -> Self {
        self.map_config(|c| c.sessionless = on)
    }

    /// How long a 2026-07-28 call whose backend asked for client input
    /// (elicitation, sampling, roots) waits for the client's retry with
    /// `inputResponses` (default [`DEFAULT_PENDING_INPUT_TTL`](super::stateless::DEFAULT_PENDING_INPUT_TTL),
    /// 5 minutes); its `requestState` expires with it, and its backend
    /// connection closes then. See [`stateless`](super::stateless#multi-round-trip-input).
    pub fn pending_input_ttl(self, ttl: Duration) -> Self {
        self.map_config(|c| c.inputs = Arc::new(c.inputs.with_ttl(ttl)))
    }

    /// How many 2026-07-28 calls may wait for their client's input at once
    /// (default [`DEFAULT_MAX_PENDING_INPUTS`](super::stateless::DEFAULT_MAX_PENDING_INPUTS));
    /// past it, a call whose backend asks for input fails with `-32603`.
    pub fn max_pending_inputs(self, max: usize) -> Self {
        self.map_config(|c| c.inputs = Arc::new(c.inputs.with_capacity(max)))
    }

    /// The HMAC-SHA256 key that protects `requestState` tokens (default: a
    /// random key of this process). Only the replica that holds a call can
    /// complete it, so one key per replica is enough; give replicas one
    /// shared key to have every replica recognise (and refuse clearly) any
    /// replica's tokens.
    pub fn request_state_key(self, key: [u8; 32]) -> Self {
        self.map_config(|c| c.inputs = Arc::new(c.inputs.with_key(key)))
    }

    /// SSE keepalive comment period; `None` turns keepalives off.
    pub fn keepalive(self, every: Option<Duration>) -> Self {
        self.map_config(|c| c.keepalive = every)
    }

    /// Where events are kept for `Last-Event-ID` resumption.
    pub fn event_store(self, store: impl EventStore) -> Self {
        self.map_config(|c| c.events = Some(Arc::new(store)))
    }

    /// Turns resumption off: events carry no ids and nothing is stored.
    pub fn without_event_store(self) -> Self {
        self.map_config(|c| c.events = None)
    }

    /// Prefixes new session ids with this replica's route key (see
    /// [`crate::session::new_session_id`]).
    pub fn route_key(self, key: impl Into<String>) -> Self {
        let key = key.into();
        self.map_config(|c| c.route_key = Some(key))
    }

    /// Body limit used when no [`McpInspectLayer`](crate::inspect::McpInspectLayer)
    /// ran before this service (default 4 MiB).
    pub fn max_body_bytes(self, limit: usize) -> Self {
        self.map_config(|c| c.max_body_bytes = limit)
    }

    /// Number of open sessions.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Starts a graceful shutdown: from now on no session opens (`503` with
    /// `Retry-After`), while existing sessions are still served so that
    /// their requests in flight can finish (a client may still need to
    /// answer a server's request, or cancel). Then wait for
    /// [`in_flight_requests`](Self::in_flight_requests) to reach 0 and
    /// [`close_all_sessions`](Self::close_all_sessions).
    pub fn start_draining(&self) {
        self.sessions.start_draining();
        // listen streams end gracefully, so their clients listen elsewhere
        self.pool.close();
    }

    /// Whether [`start_draining`](Self::start_draining) was called: a
    /// readiness check reports not ready from then on.
    pub fn is_draining(&self) -> bool {
        self.sessions.is_draining()
    }

    /// Work a graceful shutdown waits for: client requests waiting for
    /// their response (in sessions and sessionless), plus request streams
    /// whose answers are routed but still being written to the client (a
    /// stream counts once). It waits for this to reach 0 (bounded) before
    /// [`close_all_sessions`](Self::close_all_sessions), so no answer is cut
    /// off in transit.
    pub fn in_flight_requests(&self) -> usize {
        self.sessions.in_flight()
    }

    /// Ends every session (their backend connections close).
    pub fn close_all_sessions(&self) {
        self.sessions.end_all();
        self.pool.close();
    }

    /// Ends every session once the requests inside them are answered (or at
    /// `deadline`): from now on a request of a session gets 404 (its client
    /// opens a new session, elsewhere behind a load balancer), and no
    /// session ends under a request that is already in it. The last step of
    /// a graceful shutdown, after [`start_draining`](Self::start_draining).
    pub async fn close_sessions_when_idle(&self, deadline: tokio::time::Instant) {
        self.sessions.close_when_idle(deadline).await;
        self.pool.close();
    }

    /// Ends one session (its backend connection closes); `false` when no
    /// live session has this id. [`SessionLayer`](crate::session::SessionLayer)
    /// uses it, through [`SessionCloser`](crate::session::SessionCloser), to
    /// end idle, expired and evicted sessions.
    pub fn close_session(&self, id: &str) -> bool {
        self.sessions.end_one(id)
    }
}

impl<B, ReqBody> Service<Request<ReqBody>> for StreamableHttp<B>
where
    B: Backend,
    ReqBody: HttpBody<Data = Bytes> + Send + 'static,
    ReqBody::Error: Into<axum::BoxError>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let (mut parts, body) = req.into_parts();
            let res = match parts.method {
                Method::POST => {
                    let mcp = match parts.extensions.remove::<McpRequest>() {
                        Some(mcp) => Ok(mcp),
                        None => read_and_parse(&parts, body, this.config.max_body_bytes).await,
                    };
                    match mcp {
                        Ok(mcp) => this.post(parts, mcp).await,
                        Err(rejection) => rejection.into_response(),
                    }
                }
                Method::GET => this.get(&parts),
                Method::DELETE => this.delete(&parts),
                _ => method_not_allowed(),
            };
            Ok(res)
        })
    }
}

#[cfg(feature = "session-layer")]
impl<B: Backend> crate::session::SessionCloser for StreamableHttp<B> {
    fn close_session(&self, id: &str) -> bool {
        StreamableHttp::close_session(self, id)
    }
}

fn method_not_allowed() -> Response {
    let mut res = reject(
        StatusCode::METHOD_NOT_ALLOWED,
        codes::BAD_REQUEST,
        "Method not allowed",
    );
    res.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("GET, POST, DELETE"));
    res
}

/// The `MCP-Protocol-Version` header of a GET or DELETE. Missing means
/// 2025-03-26.
fn header_version(parts: &Parts) -> Result<ProtocolVersion, Box<Response>> {
    match parts.headers.get(HEADER_PROTOCOL_VERSION) {
        None => Ok(ProtocolVersion::DEFAULT_STREAMABLE),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| Box::new(unsupported_version(v))),
    }
}

pub(crate) fn unsupported_version(header: &HeaderValue) -> Response {
    crate::inspect::InspectRejection::UnsupportedProtocolVersion {
        requested: crate::inspect::echoed_version(header),
        sessionless: false,
        id: None,
    }
    .into_response()
}

impl<B: Backend> StreamableHttp<B> {
    fn lookup(
        &self,
        parts: &Parts,
        from_body: Option<&str>,
    ) -> Result<Arc<TransportSession>, Box<Response>> {
        let id = from_body.or_else(|| {
            parts
                .headers
                .get(HEADER_SESSION_ID)
                .and_then(|v| v.to_str().ok())
        });
        let Some(id) = id else {
            return Err(Box::new(reject(
                StatusCode::BAD_REQUEST,
                codes::BAD_REQUEST,
                "Bad Request: Mcp-Session-Id header is required",
            )));
        };
        if validate_session_id(id).is_err() {
            return Err(Box::new(reject(
                StatusCode::BAD_REQUEST,
                codes::BAD_REQUEST,
                "Bad Request: malformed Mcp-Session-Id",
            )));
        }
        self.sessions
            .get(id)
            .ok_or_else(|| Box::new(session_not_found()))
    }

    async fn post(&self, parts: Parts, mcp: McpRequest) -> Response {
        if !(accepts(&parts.headers, "application/json")
            && accepts(&parts.headers, "text/event-stream"))
        {
            return reject(
                StatusCode::NOT_ACCEPTABLE,
                codes::BAD_REQUEST,
                "Not Acceptable: Accept must list application/json and text/event-stream",
            );
        }
        if mcp
            .protocol_version()
            .is_some_and(ProtocolVersion::is_sessionless)
        {
            if self.sessions.is_draining() {
                return super::config::draining();
            }
            if self.config.sessionless {
                let in_flight = self.sessions.track_request();
                return stateless::serve(
                    &self.backend,
                    &self.pool,
                    &self.config,
                    parts,
                    mcp,
                    in_flight,
                )
                .await;
            }
            return stateless::version_not_served(mcp.id().cloned());
        }
        if mcp.is_initialize() {
            if self.sessions.is_draining() {
                return super::config::draining();
            }
            return self.initialize(parts, mcp).await;
        }
        let Some(_admission) = self.sessions.admit() else {
            return session_not_found();
        };
        let session = match self.lookup(&parts, mcp.session_id()) {
            Ok(s) => s,
            Err(res) => return *res,
        };
        let has_requests = mcp.has_requests();
        let batch = matches!(mcp.payload(), Payload::Batch(_));
        let messages = match mcp.into_payload() {
            Payload::Single(m) => vec![m],
            Payload::Batch(v) => v,
        };
        if !has_requests {
            if session.forward(messages).await.is_err() {
                return session_not_found();
            }
            return accepted();
        }
        let encoding = if self.config.json_response {
            Encoding::Json
        } else {
            Encoding::Sse
        };
        let requests: Vec<&Message> = messages.iter().filter(|m| m.is_request()).collect();
        let stream = session.open_request_stream(&requests, encoding);
        if session.forward(messages).await.is_err() {
            return session_not_found();
        }
        match encoding {
            // in flight until the whole stream is written (a shutdown waits)
            Encoding::Sse => {
                let delivering = self.sessions.track_request();
                let body = SseBody::settled(stream.prelude, stream.rx, self.config.keepalive).await;
                body.holding(delivering).into_response()
            }
            Encoding::Json => json_reply(stream, batch).await,
        }
    }

    async fn initialize(&self, parts: Parts, mcp: McpRequest) -> Response {
        let id = match new_session_id(self.config.route_key.as_deref()) {
            Ok(id) => id,
            Err(e) => {
                tracing::error!(target: "mcp_bastion::transport", error = %e, "cannot make a session id");
                return reject(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    codes::INTERNAL_ERROR,
                    "Internal error",
                );
            }
        };
        let requested = mcp
            .messages()
            .first()
            .and_then(Message::params)
            .and_then(|p| p.get("protocolVersion"))
            .and_then(|v| v.as_str())
            .map(str::to_owned);
        let ctx = SessionContext {
            session_id: Some(id.clone()),
            protocol_version: requested,
            extensions: parts.extensions,
        };
        let conn = match self.backend.connect(ctx).await {
            Ok(conn) => conn,
            Err(e) => {
                tracing::error!(target: "mcp_bastion::transport", error = %e, "backend failed to open a session");
                return http_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    mcp.id().cloned(),
                    ErrorObject::new(codes::INTERNAL_ERROR, "MCP backend unavailable"),
                );
            }
        };
        let session = TransportSession::start(
            id.clone(),
            conn,
            self.config.events.clone(),
            false,
            Arc::clone(&self.sessions),
        );
        let messages = match mcp.into_payload() {
            Payload::Single(m) => vec![m],
            Payload::Batch(v) => v,
        };
        if let Some(id) = messages.first().and_then(Message::id) {
            session.expect_initialize(id.clone());
        }
        let requests: Vec<&Message> = messages.iter().collect();
        let mut stream = session.open_request_stream(&requests, Encoding::Json);
        if session.forward(messages).await.is_err() {
            session.end();
            return reject(
                StatusCode::INTERNAL_SERVER_ERROR,
                codes::INTERNAL_ERROR,
                "MCP backend closed",
            );
        }
        // Wait for the InitializeResult: the session id goes on its response,
        // and only a successful initialize creates a session.
        let Some(reply) = stream.rx.recv().await else {
            session.end();
            return reject(
                StatusCode::INTERNAL_SERVER_ERROR,
                codes::INTERNAL_ERROR,
                "MCP backend closed",
            );
        };
        // The session read the result's `protocolVersion` from the message
        // as it delivered it; an error answer leaves it unset.
        let Some(negotiated) = session.negotiated() else {
            session.end();
            return json_body(StatusCode::OK, reply);
        };
        session.set_priming(negotiated.sends_priming_event());
        self.sessions.insert(Arc::clone(&session));
        tracing::debug!(target: "mcp_bastion::transport", version = %negotiated, "session opened");
        let mut res = if self.config.json_response {
            json_body(StatusCode::OK, reply)
        } else {
            let event = encode_event(None, None, &String::from_utf8_lossy(&reply));
            SseBody::complete([event].into()).into_response()
        };
        if let Ok(v) = HeaderValue::from_str(&id) {
            res.headers_mut().insert(HEADER_SESSION_ID, v);
        }
        res
    }

    fn get(&self, parts: &Parts) -> Response {
        let version = match header_version(parts) {
            Ok(v) => v,
            Err(res) => return *res,
        };
        if version.is_sessionless() {
            return method_not_allowed();
        }
        if !accepts(&parts.headers, "text/event-stream") {
            return reject(
                StatusCode::NOT_ACCEPTABLE,
                codes::BAD_REQUEST,
                "Not Acceptable: Accept must list text/event-stream",
            );
        }
        let session = match self.lookup(parts, None) {
            Ok(s) => s,
            Err(res) => return *res,
        };
        let resumed = parts
            .headers
            .get(HEADER_LAST_EVENT_ID)
            .and_then(|v| v.to_str().ok())
            .and_then(|id| session.resume(id));
        let stream = resumed.unwrap_or_else(|| session.open_standalone());
        SseBody::new(stream.prelude, stream.rx, self.config.keepalive, None).into_response()
    }

    fn delete(&self, parts: &Parts) -> Response {
        match header_version(parts) {
            Ok(v) if v.is_sessionless() => return method_not_allowed(),
            Ok(_) => {}
            Err(res) => return *res,
        }
        let session = match self.lookup(parts, None) {
            Ok(s) => s,
            Err(res) => return *res,
        };
        self.sessions.remove(&session.id);
        session.end();
        StatusCode::OK.into_response()
    }
}

fn accepted() -> Response {
    StatusCode::ACCEPTED.into_response()
}

fn json_body(status: StatusCode, body: Bytes) -> Response {
    let mut res = Response::new(Body::from(body));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

/// Collects the responses of a JSON-mode request stream into one body.
async fn json_reply(mut stream: OpenedStream, batch: bool) -> Response {
    let mut replies = Vec::new();
    while let Some(bytes) = stream.rx.recv().await {
        replies.push(bytes);
    }
    if !batch && replies.len() == 1 {
        return json_body(StatusCode::OK, replies.remove(0));
    }
    let mut out =
        Vec::with_capacity(replies.iter().map(Bytes::len).sum::<usize>() + replies.len() + 2);
    out.push(b'[');
    for (i, r) in replies.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(r);
    }
    out.push(b']');
    json_body(StatusCode::OK, Bytes::from(out))
}
