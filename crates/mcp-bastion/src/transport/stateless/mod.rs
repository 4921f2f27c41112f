//! Revision 2026-07-28 (sessionless requests) on the Streamable HTTP path.
//!
//! A 2026-07-28 client has no `initialize` handshake and no session: every
//! request carries its protocol version, client info and capabilities in
//! `_meta`, and `server/discover` replaces the handshake.
//! [`StreamableHttp`](super::StreamableHttp) serves such requests by default
//! ([`sessionless`](super::StreamableHttp::sessionless)`(false)` turns them
//! off). A backend that speaks 2026-07-28 itself
//! ([`Backend::protocol_versions`]: an upstream whose `server/discover` says
//! so) gets them as they are (`passthrough.rs`). A backend whose connections
//! speak it ([`Backend::connection_versions`]: a per-session stdio child
//! whose `server/discover` says so) gets them as they are over a pooled
//! connection that never saw `initialize` (`direct.rs`). Every other backend
//! speaks the handshake revisions (rmcp, older stdio servers, for now), so
//! each such request is bridged over a backend link taken from a pool of
//! warm ones (`pool.rs`):
//!
//! 1. check out a link for the request's key (its principal, captured
//!    parameters and declared client capabilities; see `pool.rs`): an idle
//!    one, or a new connection (the request's extensions, so the principal
//!    and captured parameters reach the backend as for a session),
//!    `initialize`d at 2025-11-25 with the client's `clientInfo` from
//!    `_meta`, then `notifications/initialized`;
//! 2. answer `server/discover` from the `InitializeResult` (capabilities,
//!    instructions, server info), or forward the request and relay what the
//!    backend sends for it on an SSE reply (progress notifications; log
//!    messages only when the request opts in with `_meta` logLevel, see
//!    `rules.rs`) until its response;
//! 3. hand the link back to the pool once the backend answered completely;
//!    keep it checked out while the call waits for the client's input (see
//!    below); close it instead when the client closes its response stream
//!    first (which, in 2026-07-28, cancels the request), when the backend
//!    closed, or when the request was refused half-way.
//!
//! The backend is initialized with the client capabilities the request
//! declares in `_meta`, restricted to those a backend's own requests need
//! (`elicitation`, `sampling`, `roots`), so that a backend offers what
//! depends on them. When the backend sends such a request while serving a
//! `tools/call`, `prompts/get` or `resources/read`, the client gets an
//! `InputRequiredResult` and the backend call waits for the client's retry
//! (see [`input`](self#multi-round-trip-input)); a request needing a
//! capability the client did not declare fails with `-32021`; the backend's
//! other requests are answered with a JSON-RPC error.
//!
//! # Multi-round-trip input
//!
//! The backend connection of a call waiting for its client's input stays
//! open, parked under a random handle that the `requestState` of the
//! `InputRequiredResult` names (integrity-protected, bound to the principal,
//! expiring, prefixed with the replica's route key). The client's retry with
//! `inputResponses` takes it out, answers the backend's pending request, and
//! is relayed like a fresh request. See
//! [`StreamableHttp::pending_input_ttl`](super::StreamableHttp::pending_input_ttl).
//!
//! # Traces
//!
//! With OpenTelemetry on ([`crate::otel`]), each request a link sends to the
//! backend (the call, the `initialize` of a new link, a listen's
//! `resources/subscribe`) has a CLIENT span, child of the client request's
//! span, its context in the message's `params._meta`, ended when the link
//! sees the answer; the link holds it (one request at a time). A parked call
//! ends its span when the backend asks for input, and the retry opens one of
//! its own, until the call's result: each HTTP request's trace holds its own
//! part of the call, and no span outlives its request while the call waits
//! (maybe until it expires). The answer to the backend's request carries no
//! trace context (a response has no `params`).
//!
//! `subscriptions/listen` gets a dedicated long-lived backend connection (see
//! `listen.rs`): the acknowledgement first, then the subscribed notifications
//! tagged with the subscription id. Before any of this, and while the backend
//! answers, the request rules of 2026-07-28 in `rules.rs` apply (`_meta`,
//! removed and unknown methods, undeclared client capabilities).
//!
//! With `sessionless(false)`, 2026-07-28 requests get `400` and
//! `-32022` listing the handshake revisions, and clients that negotiate (the
//! Python SDK probes `server/discover` first) fall back to `initialize` on
//! the same path. Either way old and new clients share one endpoint.

use std::sync::Arc;

use axum::{
    body::Body,
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use http::{HeaderValue, StatusCode, header, request::Parts};
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

use super::{
    config::TransportConfig,
    session_table::RequestInFlight,
    sse_codec::{SseBody, encode_event},
};
use crate::{
    backend::{Backend, SessionContext},
    inspect::{McpRequest, Payload},
    jsonrpc::{self, ErrorObject, Message, Notification, RequestId, codes, http_error},
    protocol::{ProtocolVersion, served_versions, unsupported_version_error},
};

use crate::protocol::META_CLIENT_CAPABILITIES;
pub use crate::protocol::{META_CLIENT_INFO, META_PROTOCOL_VERSION, META_SERVER_INFO};

mod direct;
mod input;
mod listen;
mod passthrough;
pub(crate) mod pool;
mod rules;

use pool::{Pool, PoolKey, Pooled};

pub(crate) use input::InputBridge;
use input::{Call, INPUT_REQUESTS};
pub use input::{DEFAULT_MAX_PENDING_INPUTS, DEFAULT_PENDING_INPUT_TTL};

/// The handshake revision backends are spoken to at.
const BACKEND_VERSION: ProtocolVersion = ProtocolVersion::V2025_11_25;
const TARGET: &str = "mcp_bastion::transport";

/// Methods whose 2026-07-28 results carry caching directives (`ttlMs`,
/// `cacheScope`); a handshake-era backend never sets them.
const CACHEABLE: &[&str] = &[
    "server/discover",
    "resources/read",
    "tools/list",
    "resources/list",
    "resources/templates/list",
    "prompts/list",
];

/// `400` + `-32022` naming the handshake revisions served here (2026-07-28
/// requests while the bridge is off), with the request's id.
pub(crate) fn version_not_served(id: Option<RequestId>) -> Response {
    http_error(
        StatusCode::BAD_REQUEST,
        id,
        unsupported_version_error(ProtocolVersion::V2026_07_28.as_str(), &served_versions()),
    )
}

/// Whether a backend's list of revisions (`what`, for the log) has
/// 2026-07-28; an unknown list counts as no (the request is bridged).
pub(crate) fn lists_2026(
    versions: Result<Vec<String>, crate::backend::BackendError>,
    what: &str,
) -> bool {
    match versions {
        Ok(versions) => versions
            .iter()
            .any(|v| v == ProtocolVersion::V2026_07_28.as_str()),
        Err(e) => {
            tracing::debug!(target: TARGET, error = %e, "{what} unknown; bridging this request");
            false
        }
    }
}

/// The one JSON-RPC request a 2026-07-28 POST carries, or the answer to
/// give instead: `202` for a notification (2026-07-28 has no
/// client-to-server notifications over HTTP; closing a stream is the cancel
/// signal, so they are accepted and dropped), `400` + `-32600` for anything
/// else.
pub(crate) fn one_request(mcp: McpRequest) -> Result<jsonrpc::Request, Box<Response>> {
    match mcp.into_payload() {
        Payload::Single(Message::Request(r)) => Ok(r),
        Payload::Single(Message::Notification(_)) => {
            Err(Box::new(StatusCode::ACCEPTED.into_response()))
        }
        _ => Err(Box::new(http_error(
            StatusCode::BAD_REQUEST,
            None,
            ErrorObject::new(
                codes::INVALID_REQUEST,
                "A 2026-07-28 POST carries exactly one JSON-RPC request",
            ),
        ))),
    }
}

/// Serves one 2026-07-28 POST (Accept and header checks already done).
pub(crate) async fn serve<B: Backend>(
    backend: &B,
    pool: &Arc<Pool>,
    config: &TransportConfig,
    parts: Parts,
    mcp: McpRequest,
    in_flight: RequestInFlight,
) -> Response {
    if passthrough::speaks_2026(backend).await {
        return passthrough::serve(backend, parts, mcp, in_flight).await;
    }
    if direct::speaks_2026(backend).await {
        return direct::serve(backend, pool, config, parts, mcp, in_flight).await;
    }
    let request = match one_request(mcp) {
        Ok(r) => r,
        Err(response) => return *response,
    };
    let id = request.id.clone();
    let meta = match rules::required_meta(request.params.as_ref()) {
        Ok(meta) => meta,
        Err(err) => return refuse(id, err),
    };
    if meta.get(META_PROTOCOL_VERSION).and_then(Value::as_str)
        != Some(ProtocolVersion::V2026_07_28.as_str())
    {
        return http_error(
            StatusCode::BAD_REQUEST,
            Some(id),
            ErrorObject::new(
                codes::HEADER_MISMATCH,
                "MCP-Protocol-Version header and _meta protocolVersion disagree",
            ),
        );
    }
    if let Some(err) = rules::removed_method(&request.method) {
        return refuse(id, err);
    }
    if request.method == "subscriptions/listen" {
        let meta = meta.clone();
        return listen::serve(backend, pool, config, parts, request, meta).await;
    }
    let declared = meta
        .get(META_CLIENT_CAPABILITIES)
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let log_threshold = match rules::log_threshold(meta) {
        Ok(threshold) => threshold,
        Err(err) => return refuse(id, err),
    };
    let principal = config
        .inputs
        .principal_digest(parts.extensions.get::<crate::principal::Principal>());
    if input::INPUT_METHODS.contains(&request.method.as_str())
        && let Some(params) = request
            .params
            .as_ref()
            .filter(|p| p.get("requestState").is_some_and(|s| !s.is_null()))
    {
        return match config
            .inputs
            .resume(&request.method, params, &principal, id.clone())
            .await
        {
            Ok(resumed) => {
                let mut link = resumed.link;
                link.resume(in_flight, declared, log_threshold);
                relay(config, link, resumed.call).await
            }
            // the backend went away while the call was parked
            Err(err) if err.code == codes::INTERNAL_ERROR => {
                http_error(StatusCode::INTERNAL_SERVER_ERROR, Some(id), err)
            }
            Err(err) => refuse(id, err),
        };
    }
    let client_info = meta
        .get(META_CLIENT_INFO)
        .filter(|v| v.is_object())
        .cloned()
        .unwrap_or_else(|| json!({ "name": "mcp-client", "version": "0" }));

    let key = PoolKey::of(&parts.extensions, &declared);
    let pooled = pool.checkout(key, || backend.connect(backend_context(parts.extensions)));
    let (mut link, init) = match Link::open(pooled.await, in_flight, declared, client_info).await {
        Ok(opened) => opened,
        Err(res) => return res.with_id(id),
    };
    link.log_threshold = log_threshold;
    if request.method == "server/discover" {
        link.release();
        let result = discover_result(init);
        return reply(
            config,
            &Message::Response(jsonrpc::Response::result(id, result)),
        );
    }
    let call = Call {
        backend_id: id.clone(),
        client_id: id.clone(),
        target: input::target_of(&request.method, request.params.as_ref()),
        method: request.method.clone(),
        principal,
    };
    let mut request = request;
    strip_envelope(&mut request);
    if link.send(Message::Request(request)).await.is_err() {
        return backend_unavailable(id);
    }
    relay(config, link, call).await
}

/// Removes the 2026-07-28 envelope (`_meta` protocol version, client info
/// and capabilities) from a request bridged onto a handshake session: it is
/// not part of the revision the backend is spoken to at, and a server that
/// speaks both eras refuses it on a handshake connection. The rest of
/// `_meta` (a progress token) stays.
fn strip_envelope(request: &mut jsonrpc::Request) {
    let Some(Value::Object(params)) = request.params.as_mut() else {
        return;
    };
    let Some(Value::Object(meta)) = params.get_mut("_meta") else {
        return;
    };
    for key in [
        META_PROTOCOL_VERSION,
        META_CLIENT_INFO,
        META_CLIENT_CAPABILITIES,
    ] {
        meta.remove(key);
    }
    if meta.is_empty() {
        params.remove("_meta");
    }
}

/// Relays what the backend sends for `call` until its end: the response,
/// or a request for client input (the link is then parked and the client
/// gets an `InputRequiredResult`).
async fn relay(config: &TransportConfig, mut link: Link, call: Call) -> Response {
    let id = call.client_id.clone();
    // Up to the first message the reply has not started: a response then
    // (an error included) can still choose its HTTP status.
    let first = match link.next(&call, None).await {
        Some(Next::Event(n)) if !config.json_response => n,
        Some(Next::Event(_)) => {
            let end = link.until_end(&call, None).await;
            let response =
                finish(&config.inputs, config.route_key.as_deref(), link, call, end).await;
            return whole_reply(config, response);
        }
        Some(Next::End(end)) => {
            let response = finish(
                &config.inputs,
                config.route_key.as_deref(),
                link,
                call,
                Some(end),
            )
            .await;
            return whole_reply(config, response);
        }
        None => return whole_reply(config, closed_response(&id)),
    };
    let (tx, rx) = mpsc::channel(16);
    let _ = tx.send(event(&Message::Notification(first))).await;
    let inputs = Arc::clone(&config.inputs);
    let route_key = config.route_key.clone();
    tokio::spawn(async move {
        // `None`: the backend went away, or the client did (then nobody reads this)
        let end = link.until_end(&call, Some(&tx)).await;
        let response = finish(&inputs, route_key.as_deref(), link, call, end).await;
        let _ = tx.send(event(&Message::Response(response))).await;
    });
    SseBody::settled(Default::default(), rx, config.keepalive)
        .await
        .into_response()
}

/// The client's answer for how a call ended: its response, or an
/// `InputRequiredResult` with the link parked.
async fn finish(
    inputs: &Arc<InputBridge>,
    route_key: Option<&str>,
    link: Link,
    call: Call,
    end: Option<End>,
) -> jsonrpc::Response {
    match end {
        Some(End::Response(response)) => {
            link.release();
            response
        }
        // the link stays checked out while the call waits for its client
        Some(End::Input(request)) => inputs.park(route_key, link, call, request).await,
        None => closed_response(&call.client_id),
    }
}

/// A refusal by one of the [`rules`], with its status and the request's id.
fn refuse(id: RequestId, err: ErrorObject) -> Response {
    http_error(rules::status_of(&err), Some(id), err)
}

/// The reply to a request whose response came before anything was sent:
/// an error the rules give a status to goes out as JSON with that status.
fn whole_reply(config: &TransportConfig, response: jsonrpc::Response) -> Response {
    if let Err(err) = &response.outcome {
        let status = rules::status_of_response_error(err);
        if status != StatusCode::OK {
            return json_message(status, &Message::Response(response));
        }
    }
    reply(config, &Message::Response(response))
}

/// The context a sessionless backend connection is opened with: the
/// request's extensions (principal, captured parameters), no session.
fn backend_context(extensions: http::Extensions) -> SessionContext {
    SessionContext {
        session_id: None,
        protocol_version: Some(BACKEND_VERSION.as_str().to_owned()),
        extensions,
    }
}

/// One backend connection serving one call: checked out of the [`Pool`],
/// and handed back with [`Link::release`] once the backend has answered;
/// dropped, it closes. The request counts as in flight while it lives,
/// except while it is parked waiting for the client's input.
pub(crate) struct Link {
    conn: Pooled,
    in_flight: Option<RequestInFlight>,
    /// The capabilities the client declared in `_meta`.
    declared: Map<String, Value>,
    /// The least severe log level the client's request opted in to
    /// (`_meta` logLevel); `None`: no log messages for it.
    log_threshold: Option<usize>,
    /// The backend answered the last request sent on this link: it is
    /// between requests, and may serve another.
    answered: bool,
    /// The CLIENT span of the request the backend is serving (OpenTelemetry;
    /// empty when off): one at a time, as the link serves one request.
    backend_call: crate::otel::BackendCall,
}

/// What the backend sent next for the client's request.
enum Next {
    /// A notification to relay (progress, log).
    Event(Notification),
    /// The request's last message.
    End(End),
}

/// How the backend ended its part of a client request.
enum End {
    /// The response.
    Response(jsonrpc::Response),
    /// A request of the backend for client input (elicitation, sampling,
    /// roots) that the client declared it can give.
    Input(jsonrpc::Request),
}

/// Why a link failed before the client's request was forwarded.
enum LinkError {
    Closed,
    Unavailable(crate::backend::BackendError),
    Refused(ErrorObject),
}

impl LinkError {
    fn with_id(self, id: RequestId) -> Response {
        match self {
            LinkError::Closed => backend_unavailable(id),
            LinkError::Unavailable(e) => {
                tracing::error!(target: TARGET, error = %e, "backend failed to open a sessionless connection");
                backend_unavailable(id)
            }
            LinkError::Refused(err) => {
                tracing::warn!(target: TARGET, code = err.code, "backend refused initialize");
                http_error(StatusCode::INTERNAL_SERVER_ERROR, Some(id), err)
            }
        }
    }
}

const INIT_ID: &str = "mcp-bastion/initialize";

impl Link {
    fn new(conn: Pooled, in_flight: Option<RequestInFlight>, declared: Map<String, Value>) -> Self {
        Self {
            conn,
            in_flight,
            declared,
            log_threshold: None,
            answered: true,
            backend_call: crate::otel::BackendCall::default(),
        }
    }

    /// The link of a checkout, initialized (with `client_info`) unless it
    /// was pooled already, and the backend's `InitializeResult`.
    async fn open(
        checkout: Result<Pooled, crate::backend::BackendError>,
        in_flight: RequestInFlight,
        declared: Map<String, Value>,
        client_info: Value,
    ) -> Result<(Link, Map<String, Value>), LinkError> {
        let pooled = checkout.map_err(LinkError::Unavailable)?;
        let mut link = Link::new(pooled, Some(in_flight), declared);
        let init = match link.conn.init.clone() {
            Some(init) => init,
            None => {
                let init = link.initialize(client_info).await?;
                link.conn.init = Some(init.clone());
                init
            }
        };
        Ok((link, init))
    }

    /// Hands the backend connection back to the pool when the backend
    /// answered the last request completely; closes it otherwise.
    fn release(self) {
        if self.answered {
            self.conn.release();
        }
    }

    /// Parked: no request of the client waits on it. The backend call's
    /// span ended when the backend asked for input (see `next`).
    fn suspend(&mut self) {
        self.in_flight = None;
    }

    /// Taken up again by the client's retry, with the capabilities it
    /// declares now and the log level it opts in to now.
    fn resume(
        &mut self,
        in_flight: RequestInFlight,
        declared: Map<String, Value>,
        log_threshold: Option<usize>,
    ) {
        self.in_flight = Some(in_flight);
        self.declared = declared;
        self.log_threshold = log_threshold;
    }

    /// Sends `message` to the backend; a request gets its CLIENT span
    /// (OpenTelemetry), ended when `next` sees its answer.
    async fn send(&mut self, mut message: Message) -> Result<(), ()> {
        if matches!(message, Message::Request(_)) {
            self.answered = false;
            self.backend_call = crate::otel::BackendCall::start(&mut message);
        }
        self.conn.outgoing.send(message).await.map_err(|_| ())
    }

    /// The span of the call going on after the client's retry answered the
    /// backend's request for input (see
    /// [`BackendCall::resumed`](crate::otel::BackendCall::resumed)).
    fn trace_resumed(&mut self, call: &Call, params: Option<&Value>) {
        self.backend_call =
            crate::otel::BackendCall::resumed(&call.method, params, &call.backend_id);
    }

    /// `initialize` at [`BACKEND_VERSION`] with the capabilities the client
    /// declared that a backend's requests need, then
    /// `notifications/initialized`.
    async fn initialize(&mut self, client_info: Value) -> Result<Map<String, Value>, LinkError> {
        let init_id = RequestId::String(INIT_ID.into());
        let capabilities: Map<String, Value> = self
            .declared
            .iter()
            .filter(|(name, _)| rules::BACKEND_CAPABILITIES.contains(&name.as_str()))
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect();
        let params = json!({
            "protocolVersion": BACKEND_VERSION.as_str(),
            "capabilities": capabilities,
            "clientInfo": client_info,
        });
        self.send(Message::Request(jsonrpc::Request {
            id: init_id.clone(),
            method: "initialize".into(),
            params: Some(params),
        }))
        .await
        .map_err(|()| LinkError::Closed)?;
        let call = Call {
            backend_id: init_id.clone(),
            client_id: init_id,
            method: "initialize".into(),
            target: None,
            principal: Default::default(),
        };
        let Some(End::Response(response)) = self.until_end(&call, None).await else {
            return Err(LinkError::Closed);
        };
        let result = match response.outcome {
            Ok(Value::Object(result)) => result,
            Ok(_) => {
                return Err(LinkError::Refused(ErrorObject::new(
                    codes::INTERNAL_ERROR,
                    "MCP backend sent a malformed InitializeResult",
                )));
            }
            Err(err) => return Err(LinkError::Refused(err)),
        };
        self.send(Message::Notification(Notification {
            method: "notifications/initialized".into(),
            params: None,
        }))
        .await
        .map_err(|()| LinkError::Closed)?;
        Ok(result)
    }

    /// Reads backend messages until the end of `call`, relaying
    /// notifications to `events` (an SSE reply) or dropping them (a JSON
    /// reply). `None` when the link ended first: the backend went away, or
    /// the client closed its stream.
    async fn until_end(
        &mut self,
        call: &Call,
        events: Option<&mpsc::Sender<Bytes>>,
    ) -> Option<End> {
        loop {
            match self.next(call, events).await? {
                Next::End(end) => return Some(end),
                Next::Event(n) => {
                    if let Some(tx) = events {
                        let _ = tx.send(event(&Message::Notification(n))).await;
                    }
                }
            }
        }
    }

    /// The next backend message for `call`: a notification, its response
    /// (with the id of the client's latest request), or a request for client
    /// input that the client declared it can give (when the client's method
    /// can take an `InputRequiredResult`). The backend's other requests are
    /// answered here: ping, and a refusal of the others, which also fail the
    /// client's request with `-32021` when they need a capability the
    /// client did not declare. `None` when the link ended first.
    async fn next(&mut self, call: &Call, events: Option<&mpsc::Sender<Bytes>>) -> Option<Next> {
        loop {
            let next = match events {
                Some(tx) => tokio::select! {
                    m = self.conn.incoming.recv() => m,
                    () = tx.closed() => {
                        tracing::debug!(target: TARGET, "client closed a sessionless stream: request cancelled");
                        return None;
                    }
                },
                None => self.conn.incoming.recv().await,
            };
            let Some(message) = next else {
                tracing::warn!(target: TARGET, "backend closed during a sessionless request");
                return None;
            };
            match message {
                Message::Response(mut r) if r.id.as_ref() == Some(&call.backend_id) => {
                    self.answered = true;
                    std::mem::take(&mut self.backend_call).finish(&r);
                    if let Ok(result) = &mut r.outcome {
                        mark_result(&call.method, result);
                    }
                    r.id = Some(call.client_id.clone());
                    return Some(Next::End(End::Response(r)));
                }
                Message::Response(_) => {}
                // only what belongs on this request's stream (see `rules`)
                Message::Notification(n)
                    if rules::relayed_on_request(
                        &n.method,
                        n.params.as_ref(),
                        self.log_threshold,
                    ) =>
                {
                    return Some(Next::Event(n));
                }
                Message::Notification(_) => {}
                Message::Request(r) => {
                    let missing = rules::missing_capability(&self.declared, &r.method);
                    if missing.is_none()
                        && call.takes_input()
                        && INPUT_REQUESTS.contains(&r.method.as_str())
                    {
                        // this round's backend call ends here: the call is
                        // parked, and the retry gets a span of its own
                        self.backend_call = crate::otel::BackendCall::default();
                        return Some(Next::End(End::Input(r)));
                    }
                    let answer = if r.method == "ping" {
                        jsonrpc::Response::result(r.id, json!({}))
                    } else {
                        jsonrpc::Response::error(
                            Some(r.id),
                            missing.clone().unwrap_or_else(|| {
                                ErrorObject::new(
                                    codes::METHOD_NOT_FOUND,
                                    "a sessionless (2026-07-28) client cannot be reached for server requests",
                                )
                            }),
                        )
                    };
                    let _ = self.send(Message::Response(answer)).await;
                    if let Some(err) = missing {
                        let response = jsonrpc::Response::error(Some(call.client_id.clone()), err);
                        std::mem::take(&mut self.backend_call).finish(&response);
                        return Some(Next::End(End::Response(response)));
                    }
                }
            }
        }
    }
}

/// The answer to a request whose backend connection ended first.
fn closed_response(id: &RequestId) -> jsonrpc::Response {
    jsonrpc::Response::error(
        Some(id.clone()),
        ErrorObject::new(codes::INTERNAL_ERROR, "MCP backend closed"),
    )
}

/// Adds the fields a 2026-07-28 result requires and a handshake-era backend
/// does not send: `resultType`, and caching directives where they apply.
fn mark_result(method: &str, result: &mut Value) {
    let Value::Object(map) = result else { return };
    map.entry("resultType").or_insert_with(|| json!("complete"));
    if CACHEABLE.contains(&method) {
        map.entry("ttlMs").or_insert_with(|| json!(0));
        map.entry("cacheScope").or_insert_with(|| json!("private"));
    }
}

/// The `server/discover` result built from the backend's `InitializeResult`.
fn discover_result(mut init: Map<String, Value>) -> Value {
    let mut result = Map::new();
    result.insert(
        "supportedVersions".into(),
        json!([ProtocolVersion::V2026_07_28.as_str()]),
    );
    result.insert(
        "capabilities".into(),
        init.remove("capabilities").unwrap_or_else(|| json!({})),
    );
    if let Some(instructions) = init.remove("instructions") {
        result.insert("instructions".into(), instructions);
    }
    if let Some(server_info) = init.remove("serverInfo") {
        result.insert("_meta".into(), json!({ META_SERVER_INFO: server_info }));
    }
    let mut result = Value::Object(result);
    mark_result("server/discover", &mut result);
    result
}

fn event(message: &Message) -> Bytes {
    encode_event(None, None, &message.to_json())
}

/// The single reply to a request answered without forwarding it.
fn reply(config: &TransportConfig, message: &Message) -> Response {
    if config.json_response {
        return json_message(StatusCode::OK, message);
    }
    SseBody::complete([event(message)].into()).into_response()
}

fn json_message(status: StatusCode, message: &Message) -> Response {
    let mut res = Response::new(Body::from(message.to_json()));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

fn backend_unavailable(id: RequestId) -> Response {
    http_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        Some(id),
        ErrorObject::new(codes::INTERNAL_ERROR, "MCP backend unavailable"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bridged_request_loses_the_2026_envelope_and_keeps_the_rest() {
        let mut request = jsonrpc::Request {
            id: RequestId::Number(1),
            method: "tools/call".into(),
            params: Some(
                json!({"name": "echo", "arguments": {"text": "x"}, "_meta": {
                    META_PROTOCOL_VERSION: "2026-07-28",
                    META_CLIENT_INFO: {"name": "c", "version": "1"},
                    META_CLIENT_CAPABILITIES: {},
                    "progressToken": 7,
                }}),
            ),
        };
        strip_envelope(&mut request);
        assert_eq!(
            request.params,
            Some(
                json!({"name": "echo", "arguments": {"text": "x"}, "_meta": {"progressToken": 7}})
            )
        );
        let mut bare = jsonrpc::Request {
            id: RequestId::Number(2),
            method: "tools/list".into(),
            params: Some(json!({"_meta": {META_PROTOCOL_VERSION: "2026-07-28"}})),
        };
        strip_envelope(&mut bare);
        assert_eq!(bare.params, Some(json!({})));
    }

    /// The spans of a link's backend calls (OpenTelemetry).
    #[cfg(feature = "otel")]
    mod otel_spans {
        use opentelemetry::trace::TraceContextExt as _;
        use tokio_util::sync::CancellationToken;
        use tracing::Instrument as _;
        use tracing_opentelemetry::OpenTelemetrySpanExt as _;

        use super::*;
        use crate::{backend::Connection, otel::testing};

        fn span_id(span: &tracing::Span) -> opentelemetry::trace::SpanId {
            span.context().span().span_context().span_id()
        }

        #[tokio::test]
        async fn a_parked_call_ends_its_span_and_the_retry_has_one_of_its_own() {
            let (ended, _guard) = testing::otel_on();
            let (outgoing, mut to_backend) = mpsc::channel(8);
            let (from_backend, incoming) = mpsc::channel(8);
            let conn = Connection::new(outgoing, incoming, CancellationToken::new());
            let declared = json!({"elicitation": {}}).as_object().cloned().unwrap();
            let mut link = Link::new(Pooled::detached(conn), None, declared);
            let call = Call {
                backend_id: RequestId::Number(1),
                client_id: RequestId::Number(1),
                method: "tools/call".into(),
                target: Some("ask".into()),
                principal: Default::default(),
            };

            // the first request: its span's context goes to the backend
            let first = tracing::info_span!("first");
            let request = Message::Request(jsonrpc::Request {
                id: RequestId::Number(1),
                method: "tools/call".into(),
                params: Some(json!({"name": "ask"})),
            });
            link.send(request).instrument(first.clone()).await.unwrap();
            let sent = to_backend.recv().await.unwrap();
            let traceparent = sent.params().unwrap()["_meta"]["traceparent"]
                .as_str()
                .unwrap()
                .to_owned();

            // the backend asks for input: the call parks, and its span ends
            let elicit = jsonrpc::Request {
                id: RequestId::String("e1".into()),
                method: "elicitation/create".into(),
                params: Some(json!({"message": "name?"})),
            };
            from_backend.send(Message::Request(elicit)).await.unwrap();
            assert!(matches!(
                link.next(&call, None).await,
                Some(Next::End(End::Input(_)))
            ));
            let spans = ended.named("tools/call ask");
            assert_eq!(spans.len(), 1, "ended at the park");
            assert_eq!(spans[0].parent_span_id, span_id(&first));
            assert!(traceparent.contains(&format!("-{}-", spans[0].span_context.span_id())));
            link.suspend();

            // the retry: the answer to the backend's request, then its response
            let retry = tracing::info_span!("retry");
            async {
                link.trace_resumed(&call, Some(&json!({"name": "ask"})));
                link.send(Message::Response(jsonrpc::Response::result(
                    RequestId::String("e1".into()),
                    json!({"action": "accept"}),
                )))
                .await
                .unwrap();
            }
            .instrument(retry.clone())
            .await;
            let answer = to_backend.recv().await.unwrap();
            assert!(
                matches!(&answer, Message::Response(r) if r.outcome.as_ref().is_ok_and(|r| r.get("_meta").is_none())),
                "no trace context in a response: {answer:?}"
            );
            assert_eq!(
                ended.named("tools/call ask").len(),
                1,
                "open until answered"
            );
            from_backend
                .send(Message::Response(jsonrpc::Response::result(
                    RequestId::Number(1),
                    json!({"content": []}),
                )))
                .await
                .unwrap();
            assert!(matches!(
                link.next(&call, None).await,
                Some(Next::End(End::Response(_)))
            ));
            let spans = ended.named("tools/call ask");
            assert_eq!(spans.len(), 2);
            assert_eq!(spans[1].parent_span_id, span_id(&retry));
        }
    }
}
