//! The legacy HTTP+SSE transport (2024-11-05).

use std::{
    collections::{HashMap, VecDeque},
    convert::Infallible,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::Duration,
};

use axum::{
    Router,
    extract::OriginalUri,
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use http::{HeaderValue, Method, Request, StatusCode, header, request::Parts};
use http_body::Body as HttpBody;
use tokio::sync::{mpsc, oneshot};
use tower::Service;

use super::{
    config::{reject, session_not_found},
    session_table::TransportSessions,
    sse_codec::{SseBody, encode_event},
    stream_routing::{STREAM_BUFFER, TransportSession},
};
use crate::{
    backend::{Backend, SessionContext},
    boxed::BoxFuture,
    inspect::{McpRequest, read_and_parse},
    jsonrpc::{ErrorObject, codes, http_error},
    protocol::{EndpointQuery, HEADER_SESSION_ID, ProtocolVersion},
    session::{new_session_id, validate_session_id},
};

#[derive(Debug, Clone)]
struct SseConfig {
    keepalive: Option<Duration>,
    message_path: String,
    route_key: Option<String>,
    max_body_bytes: usize,
}

/// The legacy HTTP+SSE transport (protocol 2024-11-05) as a tower service.
///
/// `GET` opens the event stream: its first event is `endpoint`, whose data is
/// the URI to POST messages to, relative to the URL the client used (so it
/// resolves under any path prefix, including one that a reverse proxy strips).
/// `POST` to that URI (`?session_id=` or `?sessionId=`) answers 202 and the
/// reply arrives on the stream as a `message` event. The session ends when the
/// stream closes.
///
/// The backend session opens on the stream's first POST, so a stream that
/// never posts costs no backend session; a backend that cannot open one
/// answers that POST `500` (JSON-RPC `-32603`) and ends the stream.
///
/// ```no_run
/// use axum::serve::ListenerExt;
/// use mcp_bastion::{backend::stdio::StdioBackend, transport::Sse};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let backend = StdioBackend::builder("my-mcp-server").build()?;
/// // GET /sse and POST /messages
/// let app = Sse::new(backend).into_router();
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?
///     .tap_io(|tcp| { let _ = tcp.set_nodelay(true); });
/// axum::serve(listener, app).await?;
/// # Ok(()) }
/// ```
pub struct Sse<B> {
    backend: Arc<B>,
    sessions: Arc<TransportSessions>,
    /// Streams whose backend session opens on their first POST.
    waiting: Arc<WaitingTable>,
    config: Arc<SseConfig>,
}

impl<B> Clone for Sse<B> {
    fn clone(&self) -> Self {
        Self {
            backend: Arc::clone(&self.backend),
            sessions: Arc::clone(&self.sessions),
            waiting: Arc::clone(&self.waiting),
            config: Arc::clone(&self.config),
        }
    }
}

impl<B> std::fmt::Debug for Sse<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sse")
            .field("config", &self.config)
            .field("sessions", &(self.sessions.len() + self.waiting.len()))
            .finish()
    }
}

impl<B: Backend> Sse<B> {
    /// A transport over `backend`: keepalive every 30 s, messages POSTed to
    /// `messages` beside the SSE endpoint.
    pub fn new(backend: B) -> Self {
        Self {
            backend: Arc::new(backend),
            sessions: Arc::new(TransportSessions::new(None)),
            waiting: Arc::default(),
            config: Arc::new(SseConfig {
                keepalive: Some(super::stream_routing::DEFAULT_KEEPALIVE),
                message_path: "messages".into(),
                route_key: None,
                max_body_bytes: crate::inspect::DEFAULT_MAX_BODY_BYTES,
            }),
        }
    }

    /// SSE keepalive comment period; `None` turns keepalives off.
    pub fn keepalive(mut self, every: Option<Duration>) -> Self {
        Arc::make_mut(&mut self.config).keepalive = every;
        self
    }

    /// The message endpoint, relative to the SSE endpoint's directory
    /// (default `messages`: `/x/sse` posts to `/x/messages`).
    pub fn message_path(mut self, path: impl Into<String>) -> Self {
        Arc::make_mut(&mut self.config).message_path =
            path.into().trim_start_matches('/').to_owned();
        self
    }

    /// Prefixes new session ids with this replica's route key.
    pub fn route_key(mut self, key: impl Into<String>) -> Self {
        Arc::make_mut(&mut self.config).route_key = Some(key.into());
        self
    }

    /// Body limit used when no `McpInspectLayer` ran before this service.
    pub fn max_body_bytes(mut self, limit: usize) -> Self {
        Arc::make_mut(&mut self.config).max_body_bytes = limit;
        self
    }

    /// Number of open sessions (streams whose backend session has not
    /// opened yet included).
    pub fn session_count(&self) -> usize {
        self.sessions.len() + self.waiting.len()
    }

    /// Starts a graceful shutdown: from now on no session opens (`503` with
    /// `Retry-After`), while existing sessions are still served so that
    /// their requests in flight can finish (a client may still need to
    /// answer a server's request, or cancel). Then wait for
    /// [`in_flight_requests`](Self::in_flight_requests) to reach 0 and
    /// [`close_all_sessions`](Self::close_all_sessions).
    pub fn start_draining(&self) {
        self.sessions.start_draining();
    }

    /// Whether [`start_draining`](Self::start_draining) was called: a
    /// readiness check reports not ready from then on.
    pub fn is_draining(&self) -> bool {
        self.sessions.is_draining()
    }

    /// Client requests waiting for their response. A graceful shutdown
    /// waits for this to reach 0 (bounded) before
    /// [`close_all_sessions`](Self::close_all_sessions).
    pub fn in_flight_requests(&self) -> usize {
        self.sessions.in_flight()
    }

    /// Ends every session.
    pub fn close_all_sessions(&self) {
        self.waiting.end_all();
        self.sessions.end_all();
    }

    /// Ends every session once the messages posted into them are delivered
    /// (or at `deadline`): from now on a POST gets 404, and no session ends
    /// under a POST that is already in it. See
    /// [`StreamableHttp::close_sessions_when_idle`](super::StreamableHttp::close_sessions_when_idle).
    pub async fn close_sessions_when_idle(&self, deadline: tokio::time::Instant) {
        self.sessions.close_when_idle(deadline).await;
        self.waiting.end_all();
    }

    /// Ends one session (its backend connection closes); `false` when no
    /// live session has this id. [`SessionLayer`](crate::session::SessionLayer)
    /// uses it, through [`SessionCloser`](crate::session::SessionCloser), to
    /// end idle, expired and evicted sessions.
    pub fn close_session(&self, id: &str) -> bool {
        self.waiting.end_one(id) | self.sessions.end_one(id)
    }

    /// A router serving `GET /sse` and `POST /<message_path>`; nest it
    /// anywhere.
    pub fn into_router<S: Clone + Send + Sync + 'static>(self) -> Router<S> {
        let messages = format!("/{}", self.config.message_path);
        Router::new()
            .route_service("/sse", self.clone())
            .route_service(&messages, self)
    }

    async fn open(&self, parts: Parts) -> Response {
        let id = match new_session_id(self.config.route_key.as_deref()) {
            Ok(id) => id,
            Err(_) => {
                return reject(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    codes::INTERNAL_ERROR,
                    "Internal error",
                );
            }
        };
        let mut extensions = parts.extensions;
        // The credential of a client that authenticated in the query goes
        // into the endpoint URI, and no further (not to the backend).
        let carried = extensions.remove::<EndpointQuery>();
        let endpoint = endpoint_uri(
            &parts.uri,
            &extensions,
            &self.config.message_path,
            &id,
            carried.as_ref(),
        );
        // The backend session opens on the first POST, not here: a stream
        // that never posts costs no backend session (channels, tasks, or a
        // child process per session).
        // So does the stream's channel of frames: the body gets it with the
        // first POST.
        let (deliver, later) = oneshot::channel();
        // The request's URI shares hyper's read buffer (8 KB): a copy kept
        // for the stream's life would keep that buffer too, beside the one
        // hyper reserves for the next read.
        if let Some(OriginalUri(uri)) = extensions.get::<OriginalUri>()
            && let Ok(owned) = http::Uri::try_from(uri.to_string())
        {
            extensions.insert(OriginalUri(owned));
        }
        let waiting = Arc::new(Waiting {
            id: id.clone(),
            state: Mutex::new(State::Waiting {
                deliver,
                extensions,
            }),
            connecting: tokio::sync::Mutex::new(()),
        });
        self.waiting.insert(Arc::clone(&waiting));
        // The session lives as long as its stream: a client that goes away
        // ends it, and with it the backend connection.
        let guard = StreamGuard {
            waiting,
            table: Arc::clone(&self.waiting),
        };
        let body = SseBody::channel_later(
            VecDeque::from([encode_event(Some("endpoint"), None, &endpoint)]),
            later,
            self.config.keepalive,
        )
        .holding(guard);
        let mut res = body.into_response();
        if let Ok(v) = HeaderValue::from_str(&id) {
            res.headers_mut().insert(HEADER_SESSION_ID, v);
        }
        res
    }

    /// The session of a stream, its backend session opened on the stream's
    /// first POST; `Err` is the answer to give instead.
    async fn session(&self, id: &str) -> Result<Arc<TransportSession>, Response> {
        if let Some(session) = self.sessions.get(id) {
            return Ok(session);
        }
        let Some(waiting) = self.waiting.get(id) else {
            return Err(session_not_found());
        };
        // Held while connecting: concurrent first POSTs wait for one backend
        // session.
        let _turn = waiting.connecting.lock().await;
        let (tx, extensions) = {
            let mut state = waiting.lock();
            match std::mem::replace(&mut *state, State::Connecting) {
                State::Open(session) => {
                    *state = State::Open(Arc::clone(&session));
                    session.touch();
                    return Ok(session);
                }
                State::Waiting {
                    deliver,
                    extensions,
                } => {
                    // If the body is gone, the stream has ended and the
                    // state check below sees it.
                    let (tx, rx) = mpsc::channel(STREAM_BUFFER);
                    let _ = deliver.send(rx);
                    (tx, extensions)
                }
                State::Connecting | State::Ended => {
                    *state = State::Ended;
                    return Err(session_not_found());
                }
            }
        };
        let ctx = SessionContext {
            session_id: Some(waiting.id.clone()),
            protocol_version: Some(ProtocolVersion::V2024_11_05.as_str().to_owned()),
            extensions,
        };
        let conn = match self.backend.connect(ctx).await {
            Ok(conn) => conn,
            Err(e) => {
                tracing::error!(target: "mcp_bastion::transport", error = %e, "backend failed to open a session");
                // The stream ends (its sender is dropped with `tx`), and so
                // does the session: the client reconnects.
                *waiting.lock() = State::Ended;
                self.waiting.remove(&waiting.id);
                return Err(backend_unavailable());
            }
        };
        let session = TransportSession::start(
            waiting.id.clone(),
            conn,
            None,
            true,
            Arc::clone(&self.sessions),
        );
        session.adopt_standalone(tx);
        {
            let mut state = waiting.lock();
            if !matches!(*state, State::Connecting) {
                // The stream ended while the backend session was opening.
                drop(state);
                session.end();
                return Err(session_not_found());
            }
            *state = State::Open(Arc::clone(&session));
        }
        self.sessions.insert(Arc::clone(&session));
        self.waiting.remove(&waiting.id);
        Ok(session)
    }

    async fn message(&self, parts: &Parts, mcp: McpRequest) -> Response {
        let Some(id) = mcp.session_id() else {
            return reject(
                StatusCode::BAD_REQUEST,
                codes::BAD_REQUEST,
                "Bad Request: session_id query parameter is required",
            );
        };
        if validate_session_id(id).is_err() {
            return reject(
                StatusCode::BAD_REQUEST,
                codes::BAD_REQUEST,
                "Bad Request: malformed session_id",
            );
        }
        let Some(_admission) = self.sessions.admit() else {
            return session_not_found();
        };
        let session = match self.session(id).await {
            Ok(session) => session,
            Err(res) => return res,
        };
        let _ = parts;
        let messages = match mcp.into_payload() {
            crate::inspect::Payload::Single(m) => vec![m],
            crate::inspect::Payload::Batch(v) => v,
        };
        if session.forward(messages).await.is_err() {
            return session_not_found();
        }
        (StatusCode::ACCEPTED, "Accepted").into_response()
    }
}

#[cfg(feature = "session-layer")]
impl<B: Backend> crate::session::SessionCloser for Sse<B> {
    fn close_session(&self, id: &str) -> bool {
        Sse::close_session(self, id)
    }
}

/// `500`: the backend could not open a session.
fn backend_unavailable() -> Response {
    http_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        None,
        ErrorObject::new(codes::INTERNAL_ERROR, "MCP backend unavailable"),
    )
}

/// A legacy stream and, once its first POST has come, its session.
struct Waiting {
    id: String,
    state: Mutex<State>,
    /// Held by the POST that opens the backend session.
    connecting: tokio::sync::Mutex<()>,
}

enum State {
    /// No POST yet: where to hand the stream its channel of frames, and
    /// the opening request's extensions, for the backend session.
    Waiting {
        deliver: oneshot::Sender<mpsc::Receiver<Bytes>>,
        extensions: http::Extensions,
    },
    /// A POST is opening the backend session.
    Connecting,
    /// The backend session is open.
    Open(Arc<TransportSession>),
    /// The stream ended, or its backend failed to open.
    Ended,
}

impl Waiting {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Ends the stream (its sender is dropped), and its session if one
    /// opened. A session still opening sees `Ended` once it has opened, and
    /// ends itself.
    fn end(&self) {
        let old = std::mem::replace(&mut *self.lock(), State::Ended);
        if let State::Open(session) = old {
            session.end();
        }
    }
}

/// Streams without a backend session yet, by session id.
#[derive(Default)]
struct WaitingTable(Mutex<HashMap<String, Arc<Waiting>>>);

impl WaitingTable {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Waiting>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn insert(&self, waiting: Arc<Waiting>) {
        self.lock().insert(waiting.id.clone(), waiting);
    }

    fn get(&self, id: &str) -> Option<Arc<Waiting>> {
        self.lock().get(id).cloned()
    }

    fn remove(&self, id: &str) -> Option<Arc<Waiting>> {
        self.lock().remove(id)
    }

    fn len(&self) -> usize {
        self.lock().len()
    }

    /// Ends one stream (its sender is dropped); `false` when none waits
    /// under this id.
    fn end_one(&self, id: &str) -> bool {
        match self.remove(id) {
            Some(w) => {
                w.end();
                true
            }
            None => false,
        }
    }

    fn end_all(&self) {
        let ids: Vec<String> = self.lock().keys().cloned().collect();
        for id in ids {
            self.end_one(&id);
        }
    }
}

/// Held by a legacy stream's body: when the body is dropped (the client
/// went away, or the stream ended), the session ends.
struct StreamGuard {
    waiting: Arc<Waiting>,
    table: Arc<WaitingTable>,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.table.remove(&self.waiting.id);
        self.waiting.end();
    }
}

/// The message endpoint as a reference relative to the SSE URL the client
/// used: it resolves correctly wherever the app is mounted, even behind a
/// proxy that strips a path prefix the app never sees. It carries the
/// session id, then the [`EndpointQuery`] parameters, percent-encoded.
fn endpoint_uri(
    uri: &http::Uri,
    extensions: &http::Extensions,
    message_path: &str,
    session_id: &str,
    carried: Option<&EndpointQuery>,
) -> String {
    let path = extensions
        .get::<OriginalUri>()
        .map(|u| u.0.path().to_owned())
        .unwrap_or_else(|| uri.path().to_owned());
    // A URL ending in `/` resolves relative references inside itself; step out.
    let up = if path.ends_with('/') && path.len() > 1 {
        "../"
    } else {
        ""
    };
    let mut uri = format!("{up}{message_path}?session_id={session_id}");
    if let Some(carried) = carried {
        let mut query = form_urlencoded::Serializer::new(String::new());
        query.extend_pairs(carried.pairs());
        uri.push('&');
        uri.push_str(&query.finish());
    }
    uri
}

impl<B, ReqBody> Service<Request<ReqBody>> for Sse<B>
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
                Method::GET if this.sessions.is_draining() => super::config::draining(),
                Method::GET => this.open(parts).await,
                Method::POST => {
                    let mcp = match parts.extensions.remove::<McpRequest>() {
                        Some(mcp) => Ok(mcp),
                        None => read_and_parse(&parts, body, this.config.max_body_bytes).await,
                    };
                    match mcp {
                        Ok(mcp) => this.message(&parts, mcp).await,
                        Err(rejection) => rejection.into_response(),
                    }
                }
                _ => {
                    let mut res = reject(
                        StatusCode::METHOD_NOT_ALLOWED,
                        codes::BAD_REQUEST,
                        "Method not allowed",
                    );
                    res.headers_mut()
                        .insert(header::ALLOW, HeaderValue::from_static("GET, POST"));
                    res
                }
            };
            Ok(res)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(uri: &str, original: Option<&str>) -> Parts {
        let mut req = Request::get(uri).body(()).unwrap();
        if let Some(o) = original {
            req.extensions_mut().insert(OriginalUri(o.parse().unwrap()));
        }
        req.into_parts().0
    }

    fn endpoint(parts: &Parts, message_path: &str, id: &str) -> String {
        endpoint_uri(&parts.uri, &parts.extensions, message_path, id, None)
    }

    #[test]
    fn endpoint_is_relative_to_the_sse_url() {
        assert_eq!(
            endpoint(&parts("/sse", None), "messages", "abc"),
            "messages?session_id=abc"
        );
        assert_eq!(
            endpoint(&parts("/sse", Some("/k/abc/sse")), "messages", "abc"),
            "messages?session_id=abc"
        );
        assert_eq!(
            endpoint(&parts("/sse/", None), "messages", "x"),
            "../messages?session_id=x"
        );
    }

    #[test]
    fn endpoint_carries_the_query_credential_percent_encoded() {
        let p = parts("/sse", None);
        let carried = EndpointQuery::default().with("api_key", "k&1=2 x");
        assert_eq!(
            endpoint_uri(&p.uri, &p.extensions, "messages", "abc", Some(&carried)),
            "messages?session_id=abc&api_key=k%261%3D2+x"
        );
    }
}
