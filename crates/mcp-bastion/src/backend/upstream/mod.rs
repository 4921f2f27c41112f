//! The upstream backend: each session is forwarded to a remote MCP server
//! over Streamable HTTP, or over the legacy HTTP+SSE transport (2024-11-05)
//! when the remote only speaks that, with the proxy's own credentials.
//!
//! ```no_run
//! use std::time::Duration;
//! use mcp_bastion::backend::upstream::UpstreamBackend;
//! use mcp_bastion::transport::StreamableHttp;
//!
//! # fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let backend = UpstreamBackend::builder("https://mcp.internal.example/mcp")
//!     .header("X-Tenant", "acme")
//!     .bearer_from_env("UPSTREAM_TOKEN") // read once, at build
//!     .request_timeout(Some(Duration::from_secs(120)))
//!     .build()?;
//! let service = StreamableHttp::new(std::sync::Arc::new(backend));
//! // or both transports behind every layer: `McpStack::new().serve(backend)`
//! # Ok(()) }
//! ```
//!
//! # Credentials: what crosses to the upstream
//!
//! The MCP authorization spec forbids passing the client's token through, and
//! this backend goes further: **nothing of the client's HTTP request reaches
//! the upstream except the JSON-RPC messages themselves.** Every upstream
//! request carries only
//!
//! | header | from |
//! |---|---|
//! | the operator's [`header`](UpstreamBackendBuilder::header)s and [`bearer`](UpstreamBackendBuilder::bearer) `Authorization` | configuration |
//! | the user's own token at their identity provider, in the header [`header_from_upstream_token`](UpstreamBackendBuilder::header_from_upstream_token) names | the OAuth authorization server's grant of the session's principal (never mcp-bastion's token) |
//! | `Mcp-Session-Id`, `MCP-Protocol-Version` | the *upstream* session's own `initialize` exchange |
//! | `MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name`, `Mcp-Param-*` of a passed-through 2026-07-28 request | the client's request, where they describe its JSON-RPC message (checked against the body by the inspect layer) |
//! | `Last-Event-ID` | the upstream's own event ids (GET stream resumption) |
//! | `Accept`, `Content-Type` | fixed by the transport |
//!
//! The client's `Authorization`, `Cookie`, API-key headers and
//! `Mcp-Session-Id` are never copied (nor its `MCP-Protocol-Version`, except
//! on a passed-through 2026-07-28 request), and of the [`SessionContext`]
//! extensions only the principal's upstream token handle is used, when
//! mapped. Credential values are marked
//! sensitive and appear in no log line and no `Debug` output; logs show the
//! URL without its query string. Redirects are not followed (they could carry
//! the credentials elsewhere), and a legacy server's `endpoint` on another
//! origin is refused for the same reason.
//!
//! # Lifecycle of a connection
//!
//! - [`Backend::connect`] sends nothing: the upstream is contacted when the
//!   client's first message (normally `initialize`) arrives.
//! - **Streamable HTTP**: `initialize` is POSTed and its answer read before
//!   the next client message is taken, so the upstream's `Mcp-Session-Id`
//!   and negotiated protocol version go on every later request. Then the GET
//!   stream is opened for server-initiated messages (405: none; a stream that
//!   ends is reopened with `Last-Event-ID`). Requests run concurrently, one
//!   POST each, answered by JSON or an SSE stream whose progress
//!   notifications and server requests (sampling, elicitation) are relayed
//!   as they come. Notifications and responses are POSTed in order. Closing
//!   the connection sends DELETE for the upstream session.
//! - **Legacy SSE**: the first message opens `GET <url>`; its `endpoint`
//!   event names where to POST; every answer comes as a `message` event.
//! - [`UpstreamTransport::Auto`] (the default) follows the spec's
//!   backwards-compatibility rule: a 4xx to the `initialize` POST (other than
//!   401, 403, 429) makes the connection try the legacy transport on the same
//!   URL.
//!
//! # Revision 2026-07-28
//!
//! [`Backend::protocol_versions`] asks the upstream once: a `server/discover`
//! POST at 2026-07-28 with the operator's credentials. Its
//! `supportedVersions` are cached; an upstream that refuses it (a 4xx, a
//! JSON-RPC error) speaks the handshake revisions, also cached; a probe that
//! fails (no connection, a 5xx, 401/403/429) is not cached, and that request
//! is bridged. [`UpstreamBackendBuilder::protocol_version`] pins the answer
//! instead; a legacy SSE upstream speaks the handshake revisions.
//!
//! When the upstream speaks 2026-07-28, the transport hands each 2026-07-28
//! request to [`Backend::forward`]: one POST with the client's body byte for
//! byte, the client's MCP message headers (table above) and the operator's
//! credentials (the user's upstream token too, when mapped); the answer's
//! status, `Content-Type`, `Cache-Control` and body (JSON or an SSE stream)
//! go back as they are. The [request timeout](UpstreamBackendBuilder::request_timeout)
//! bounds the wait for the answer to start, not a stream's length (a
//! `subscriptions/listen` stream lasts as long as the client keeps it). The
//! client closing its stream drops the upstream answer, which closes that
//! upstream connection: the 2026-07-28 cancel. A failure to reach the
//! upstream, a 5xx, or a `-32022` answer forgets the cached revisions, so
//! the next 2026-07-28 request asks again. No [`Connection`] is used: its
//! message channels carry no HTTP status, which 2026-07-28 gives meaning.
//!
//! # Failures
//!
//! Every client request gets exactly one answer. When the upstream cannot be
//! reached, answers with an HTTP error, breaks the stream, or takes longer
//! than the [request timeout](UpstreamBackendBuilder::request_timeout), the
//! request is answered with a JSON-RPC error whose `data.upstream` names the
//! cause (`connect`, `status` with `data.status`, `timeout`, `broken`,
//! `protocol`, `session_gone`); an upstream JSON-RPC error body is passed on
//! as is. A late request is also cancelled upstream. A request the client
//! cancels (`notifications/cancelled`, forwarded) is no longer waited for and
//! gets no answer, as the spec asks. When the upstream
//! session is gone (404 on a session, or the legacy stream ends), the
//! connection ends, so the client's session ends too (404 on its next
//! request) and the client re-initializes. A failed `initialize` leaves the
//! connection unopened: the next message tries again.
//!
//! [`Backend::ready`] sends `OPTIONS` to the URL (no credentials, no MCP
//! effect): any answer below 500 means ready.
//!
//! # Limits
//!
//! - Outbound HTTP honours `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY`; HTTPS is
//!   verified against the Mozilla roots (`webpki-roots`) and the CAs given to
//!   [`root_certificates_pem`](UpstreamBackendBuilder::root_certificates_pem);
//!   [`client_identity_pem`](UpstreamBackendBuilder::client_identity_pem)
//!   presents a client certificate (mutual TLS).
//! - `application/json` answers are capped at 16 MiB; SSE events are not
//!   (the upstream is the operator's choice, and trusted that far).
//! - A server that answers an unknown session with 400 rather than the
//!   spec's 404 (some SDK examples do) is not recognised as "session gone":
//!   each request gets that 400's JSON-RPC error until the client starts a
//!   new session.

mod builder;
mod events;
mod failure;
mod legacy_sse;
mod modern;
mod outbound;
mod remote_session;
mod streamable;
#[cfg(test)]
mod tests;

use std::{
    fmt,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use tokio::{
    sync::{Notify, mpsc},
    task::JoinSet,
};
use tokio_util::sync::CancellationToken;

pub use builder::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_REQUEST_TIMEOUT, UpstreamBackendBuilder, UpstreamTransport,
};

use self::{
    failure::UpstreamFailure,
    legacy_sse::LegacySession,
    outbound::{Outbound, redacted},
    remote_session::RemoteSession,
    streamable::{Sent, StreamableSession},
};
use crate::{
    backend::{Backend, BackendError, Connection, PassThrough, SessionContext},
    boxed::BoxFuture,
    jsonrpc::Message,
    protocol::ProtocolVersion,
};

/// The `tracing` target of everything this backend logs.
const TARGET: &str = "mcp_bastion::upstream";

/// Forwards MCP sessions to a remote server; see the [module docs](self).
///
/// Cheap to clone: clones share the HTTP connection pool.
#[derive(Clone)]
pub struct UpstreamBackend {
    inner: Arc<Inner>,
}

struct Inner {
    outbound: Arc<Outbound>,
    /// Where the session's user's upstream token goes, if anywhere.
    token_header: Option<http::HeaderName>,
    transport: UpstreamTransport,
    request_timeout: Option<Duration>,
    channel_capacity: usize,
    /// The revision the upstream is spoken to at for 2026-07-28 requests,
    /// when the operator pinned one.
    pinned: Option<ProtocolVersion>,
    /// What `server/discover` said, cached.
    revisions: modern::Revisions,
    shutdown: CancellationToken,
    /// Connections whose task still runs, and a wake-up when one ends.
    live: AtomicUsize,
    ended: Notify,
}

/// Counts a connection as live until its task ends.
struct LiveGuard(Arc<Inner>);

impl LiveGuard {
    fn new(inner: Arc<Inner>) -> Self {
        inner.live.fetch_add(1, Ordering::AcqRel);
        Self(inner)
    }
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, Ordering::AcqRel);
        self.0.ended.notify_waiters();
    }
}

impl fmt::Debug for UpstreamBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &*self.inner;
        f.debug_struct("UpstreamBackend")
            .field("url", &redacted(inner.outbound.url()))
            .field("headers", &inner.outbound.header_names())
            .field("transport", &inner.transport)
            .field("request_timeout", &inner.request_timeout)
            .finish_non_exhaustive()
    }
}

impl UpstreamBackend {
    /// Starts configuring a backend for the MCP endpoint at `url` (the
    /// Streamable HTTP endpoint, or a legacy server's SSE URL).
    pub fn builder(url: impl Into<String>) -> UpstreamBackendBuilder {
        UpstreamBackendBuilder::new(url.into())
    }

    fn from_parts(
        outbound: Outbound,
        token_header: Option<http::HeaderName>,
        transport: UpstreamTransport,
        request_timeout: Option<Duration>,
        channel_capacity: usize,
        pinned: Option<ProtocolVersion>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                outbound: Arc::new(outbound),
                token_header,
                transport,
                request_timeout,
                channel_capacity,
                pinned,
                revisions: modern::Revisions::default(),
                shutdown: CancellationToken::new(),
                live: AtomicUsize::new(0),
                ended: Notify::new(),
            }),
        }
    }

    /// The configured transport.
    pub fn transport(&self) -> UpstreamTransport {
        self.inner.transport
    }
}

impl Backend for UpstreamBackend {
    /// Opens the channels and starts the connection's task; nothing is sent
    /// upstream until the client's first message.
    fn connect(&self, ctx: SessionContext) -> BoxFuture<'static, Result<Connection, BackendError>> {
        // Of `ctx`, only the principal's upstream token is used, and only
        // when the operator mapped it to a header: nothing of the client's
        // request is forwarded (see "Credentials" in the module docs).
        let inner = Arc::clone(&self.inner);
        Box::pin(async move {
            if inner.shutdown.is_cancelled() {
                return Err(BackendError::Unavailable(
                    "the upstream backend is shut down".into(),
                ));
            }
            let outbound = session_outbound(&inner, &ctx).await?;
            let (outgoing, from_client) = mpsc::channel(inner.channel_capacity);
            let (to_client, incoming) = mpsc::channel(inner.channel_capacity);
            let closed = inner.shutdown.child_token();
            let live = LiveGuard::new(Arc::clone(&inner));
            tokio::spawn(run(live, outbound, from_client, to_client, closed.clone()));
            Ok(Connection::new(outgoing, incoming, closed))
        })
    }

    /// The revisions the upstream speaks: its `server/discover`
    /// `supportedVersions` (probed once, cached, probed again after a
    /// pass-through fails), or what the operator
    /// [pinned](UpstreamBackendBuilder::protocol_version). A legacy SSE
    /// upstream, and one that refuses `server/discover`, speaks the
    /// handshake revisions.
    fn protocol_versions(&self) -> BoxFuture<'static, Result<Vec<String>, BackendError>> {
        Box::pin(modern::protocol_versions(Arc::clone(&self.inner)))
    }

    /// Passes a 2026-07-28 request through: one POST with the client's body
    /// and MCP protocol headers and the operator's credentials; the answer
    /// comes back as it is (see "Revision 2026-07-28" in the module docs).
    fn forward(
        &self,
        request: PassThrough,
    ) -> BoxFuture<'static, Result<http::Response<axum::body::Body>, BackendError>> {
        Box::pin(modern::forward(Arc::clone(&self.inner), request))
    }

    /// Ready when the upstream answers an `OPTIONS` request with a status
    /// below 500 within the connect timeout.
    fn ready(&self) -> BoxFuture<'static, Result<(), BackendError>> {
        let inner = Arc::clone(&self.inner);
        Box::pin(async move {
            if inner.shutdown.is_cancelled() {
                return Err(BackendError::Unavailable(
                    "the upstream backend is shut down".into(),
                ));
            }
            match inner.outbound.probe().send().await {
                Ok(response) if !response.status().is_server_error() => Ok(()),
                Ok(response) => Err(BackendError::Unavailable(format!(
                    "upstream answered HTTP {}",
                    response.status().as_u16()
                ))),
                Err(error) => Err(BackendError::Unavailable(
                    UpstreamFailure::from_reqwest(&error).to_string(),
                )),
            }
        })
    }

    /// Ends every connection and refuses new ones; completes once every
    /// connection has ended (each DELETEs its upstream session first, within
    /// 30 s: bound the wait with a timeout of your own).
    fn shutdown(&self) -> BoxFuture<'static, ()> {
        self.inner.shutdown.cancel();
        let inner = Arc::clone(&self.inner);
        Box::pin(async move {
            loop {
                let ended = inner.ended.notified();
                tokio::pin!(ended);
                ended.as_mut().enable();
                if inner.live.load(Ordering::Acquire) == 0 {
                    return;
                }
                ended.await;
            }
        })
    }
}

/// The requests of one session: the backend's, plus the user's upstream
/// token in the configured header when the session's principal has one.
async fn session_outbound(
    inner: &Inner,
    ctx: &SessionContext,
) -> Result<Arc<Outbound>, BackendError> {
    let access = inner.token_header.as_ref().and_then(|name| {
        let principal = ctx.extensions.get::<crate::principal::Principal>()?;
        Some((name, principal.upstream_access()?))
    });
    let Some((name, access)) = access else {
        return Ok(Arc::clone(&inner.outbound));
    };
    let token = outbound::SessionToken::open(name.clone(), access.clone()).await?;
    Ok(Arc::new(inner.outbound.with_session_token(token)))
}

/// The transport a connection speaks with the upstream.
enum Engine {
    Streamable(StreamableSession),
    Legacy(LegacySession),
}

/// One connection, from its first message to its end.
async fn run(
    live: LiveGuard,
    outbound: Arc<Outbound>,
    mut from_client: mpsc::Receiver<Message>,
    to_client: mpsc::Sender<Message>,
    closed: CancellationToken,
) {
    let inner = Arc::clone(&live.0);
    let shared = Arc::new(RemoteSession::new(
        outbound,
        inner.request_timeout,
        to_client,
    ));
    let mut engine = match inner.transport {
        UpstreamTransport::LegacySse => Engine::Legacy(LegacySession::new(Arc::clone(&shared))),
        transport => Engine::Streamable(StreamableSession::new(
            Arc::clone(&shared),
            transport == UpstreamTransport::Auto,
        )),
    };
    let mut tasks = JoinSet::new();
    loop {
        let message = tokio::select! {
            biased;
            () = closed.cancelled() => break,
            () = shared.gone.cancelled() => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            message = from_client.recv() => match message {
                Some(message) => message,
                None => break,
            },
        };
        if let Some(id) = remote_session::cancelled_request(&message) {
            // Forwarded below; locally, stop waiting for that answer.
            shared.cancel(&id);
        }
        // Inline steps (initialize, notifications) stop when the connection
        // closes, rather than holding it open until their timeout.
        let step = async {
            match &mut engine {
                Engine::Streamable(session) => match session.send(message, &mut tasks).await {
                    Sent::Done => None,
                    Sent::Fallback { message, failure } => {
                        tracing::debug!(target: TARGET, %failure, "initialize refused; trying the legacy SSE transport");
                        let mut legacy = LegacySession::new(Arc::clone(&shared));
                        legacy.send(message, &mut tasks, Some(failure)).await;
                        // Stay with Streamable HTTP unless the legacy stream opened.
                        legacy.is_open().then_some(legacy)
                    }
                },
                Engine::Legacy(session) => {
                    session.send(message, &mut tasks, None).await;
                    None
                }
            }
        };
        let switched = tokio::select! {
            () = closed.cancelled() => break,
            switched = step => switched,
        };
        if let Some(legacy) = switched {
            engine = Engine::Legacy(legacy);
        }
    }
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    if let Engine::Streamable(session) = engine {
        session.close().await;
    }
    // The transport learns of the end from `closed` and from `incoming`
    // ending once the last `RemoteSession` (and its sender) is dropped here.
    closed.cancel();
    drop(shared);
    drop(live);
}
