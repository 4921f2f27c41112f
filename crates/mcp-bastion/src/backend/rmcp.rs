//! The in-process rmcp backend: any [`rmcp::ServerHandler`] served over
//! mcp-bastion's transports, with no process boundary and no byte stream in
//! between.
//!
//! ```no_run
//! use mcp_bastion::backend::rmcp::RmcpBackend;
//! use rmcp::{ServerHandler, tool, tool_router};
//!
//! #[derive(Clone, Default)]
//! struct Hello;
//!
//! #[tool_router(server_handler)]
//! impl Hello {
//!     #[tool(description = "Say hello")]
//!     async fn hello(&self) -> String {
//!         "Hello, world!".into()
//!     }
//! }
//!
//! // A fresh handler per session, as rmcp's own `StreamableHttpService` does.
//! let backend = RmcpBackend::new(Hello::default);
//! // Serve it behind every layer: `McpStack::new().serve(backend)`, or hand it
//! // to `transport::StreamableHttp` / `transport::Sse` yourself.
//! ```
//!
//! # How it works
//!
//! [`Backend::connect`] calls the factory, then runs rmcp's own server loop
//! (`serve_server_with_ct`: the `initialize` handshake, or the sessionless
//! 2026-07-28 lifecycle, then request dispatch) over a transport made of the
//! [`Connection`]'s two channels. Messages cross as typed values: a
//! [`Message`] becomes a `serde_json::Value` and then rmcp's
//! `ClientJsonRpcMessage`, and back; nothing is printed or parsed as text.
//!
//! - A client request rmcp cannot type at all (array params, a malformed
//!   `_meta`) is answered with `INVALID_PARAMS`, echoing its id, and the
//!   session goes on. Params that are an object but don't fit a known method
//!   are rmcp's to judge: it hands them to `ServerHandler::on_custom_request`,
//!   which answers `METHOD_NOT_FOUND` unless the handler overrides it.
//! - Messages rmcp sends in causal order (progress notifications, then the
//!   tool's result) arrive on `incoming` in that order: a send completes only
//!   once the message is queued on the channel, and rmcp's peer methods wait
//!   for that before returning to the handler.
//! - Cancelling [`Connection::closed`], dropping `outgoing`, or
//!   [`Backend::shutdown`] stops the rmcp service: its in-flight handlers are
//!   cancelled through their `RequestContext::ct`, the handler is dropped, and
//!   `incoming` ends. When the service ends on its own (the handler failed
//!   `initialize`), `incoming` ends too.
//!
//! # What a tool sees of the session
//!
//! Every request and notification reaching the handler carries, in its rmcp
//! `Extensions` (and so in `RequestContext::extensions`):
//!
//! - an [`http::request::Parts`] whose `extensions` are the
//!   [`SessionContext::extensions`] of the request that opened the session
//!   (the authenticated `Principal`, the captured `SessionParams`). This is
//!   the same place rmcp's own `StreamableHttpService` puts them, so a tool
//!   written this way works behind either. Only the extensions and the
//!   `Mcp-Session-Id` / `MCP-Protocol-Version` headers (when known) are real;
//!   method (`POST`) and URI (`/`) are placeholders.
//! - the [`SessionContext`] itself, for the session id and protocol version.
//!
//! Both are as of session start: a session is bound to one principal.
//!
//! ```no_run
//! use rmcp::handler::server::common::Extension;
//! use rmcp::{tool, tool_router};
//!
//! #[derive(Clone)]
//! struct Tenant(String); // inserted by an outer layer
//!
//! #[derive(Clone, Default)]
//! struct Server;
//!
//! #[tool_router(server_handler)]
//! impl Server {
//!     #[tool(description = "Which tenant is calling?")]
//!     async fn whoami(&self, Extension(parts): Extension<http::request::Parts>) -> String {
//!         match parts.extensions.get::<Tenant>() {
//!             Some(Tenant(t)) => t.clone(),
//!             None => "anonymous".into(),
//!         }
//!     }
//! }
//! ```

use std::{borrow::Cow, sync::Arc};

use rmcp::{
    RoleServer, ServerHandler,
    model::{ClientJsonRpcMessage, GetExtensions, ServerJsonRpcMessage},
    service::{RxJsonRpcMessage, TxJsonRpcMessage, serve_server_with_ct},
    transport::Transport,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Backend, BackendError, Connection, SessionContext};
use crate::boxed::BoxFuture;
use crate::{
    jsonrpc::{ErrorObject, Message, RequestId, Response, codes},
    protocol::{HEADER_PROTOCOL_VERSION, HEADER_SESSION_ID},
};

/// Messages queued in each direction before the sender waits.
const DEFAULT_CHANNEL_CAPACITY: usize = 64;

/// Serves an rmcp [`ServerHandler`] in process, one handler per session.
///
/// See the [module documentation](self) for the lifecycle and for how a tool
/// reads the session's `Principal` and `SessionParams`.
pub struct RmcpBackend<F> {
    factory: Arc<F>,
    channel_capacity: usize,
    shutdown: CancellationToken,
}

impl<F> Clone for RmcpBackend<F> {
    fn clone(&self) -> Self {
        Self {
            factory: Arc::clone(&self.factory),
            channel_capacity: self.channel_capacity,
            shutdown: self.shutdown.clone(),
        }
    }
}

impl<F> std::fmt::Debug for RmcpBackend<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RmcpBackend")
            .field("channel_capacity", &self.channel_capacity)
            .field("shut_down", &self.shutdown.is_cancelled())
            .finish_non_exhaustive()
    }
}

impl<F, H> RmcpBackend<F>
where
    F: Fn() -> H + Send + Sync + 'static,
    H: ServerHandler,
{
    /// A backend that calls `factory` for every new session.
    pub fn new(factory: F) -> Self {
        Self {
            factory: Arc::new(factory),
            channel_capacity: DEFAULT_CHANNEL_CAPACITY,
            shutdown: CancellationToken::new(),
        }
    }

    /// How many messages each direction of a connection buffers before its
    /// sender waits (default 64, minimum 1). A client that stops reading
    /// slows its own handler down, not the process.
    pub fn channel_capacity(mut self, capacity: usize) -> Self {
        self.channel_capacity = capacity.max(1);
        self
    }
}

impl<F, H> Backend for RmcpBackend<F>
where
    F: Fn() -> H + Send + Sync + 'static,
    H: ServerHandler,
{
    fn connect(&self, ctx: SessionContext) -> BoxFuture<'static, Result<Connection, BackendError>> {
        let this = self.clone();
        Box::pin(async move {
            if this.shutdown.is_cancelled() {
                return Err(BackendError::Unavailable(
                    "the rmcp backend is shut down".into(),
                ));
            }
            let (outgoing, from_client) = mpsc::channel(this.channel_capacity);
            let (to_client, incoming) = mpsc::channel(this.channel_capacity);
            // A child of the backend's token, so `shutdown` closes every
            // connection and transports see it on `closed`.
            let closed = this.shutdown.child_token();
            let transport = ChannelTransport::new(from_client, to_client, ctx);
            let handler = (this.factory)();
            tokio::spawn(serve(handler, transport, closed.child_token()));
            Ok(Connection::new(outgoing, incoming, closed))
        })
    }

    fn shutdown(&self) -> BoxFuture<'static, ()> {
        self.shutdown.cancel();
        Box::pin(async {})
    }
}

/// Runs one session to its end.
async fn serve<H: ServerHandler>(handler: H, transport: ChannelTransport, stop: CancellationToken) {
    match serve_server_with_ct(handler, transport, stop).await {
        Ok(running) => match running.waiting().await {
            Ok(reason) => tracing::debug!(?reason, "rmcp session ended"),
            Err(error) => tracing::warn!(%error, "rmcp session task failed"),
        },
        Err(error) => tracing::debug!(%error, "rmcp session ended before it was initialized"),
    }
}

/// rmcp's view of a [`Connection`]: typed messages over the two channels.
struct ChannelTransport {
    from_client: mpsc::Receiver<Message>,
    to_client: mpsc::Sender<Message>,
    /// An error reply to a malformed request, written before the next read.
    pending_reply: Option<Message>,
    session: SessionContext,
    parts: http::request::Parts,
}

impl ChannelTransport {
    fn new(
        from_client: mpsc::Receiver<Message>,
        to_client: mpsc::Sender<Message>,
        session: SessionContext,
    ) -> Self {
        Self {
            parts: session_parts(&session),
            from_client,
            to_client,
            pending_reply: None,
            session,
        }
    }

    /// Puts the session's extensions where rmcp hands them to handlers.
    fn attach_session(&self, message: &mut ClientJsonRpcMessage) {
        let extensions = match message {
            ClientJsonRpcMessage::Request(r) => r.request.extensions_mut(),
            ClientJsonRpcMessage::Notification(n) => n.notification.extensions_mut(),
            ClientJsonRpcMessage::Response(_) | ClientJsonRpcMessage::Error(_) => return,
        };
        extensions.insert(self.parts.clone());
        extensions.insert(self.session.clone());
    }
}

/// The `Parts` a tool finds in its extensions: the session's extensions, and
/// the two MCP headers that are known without the real request.
fn session_parts(session: &SessionContext) -> http::request::Parts {
    let (mut parts, ()) = http::Request::new(()).into_parts();
    parts.method = http::Method::POST;
    parts.extensions = session.extensions.clone();
    let headers = [
        (HEADER_SESSION_ID, &session.session_id),
        (HEADER_PROTOCOL_VERSION, &session.protocol_version),
    ];
    for (name, value) in headers {
        if let Some(value) = value
            .as_deref()
            .and_then(|v| http::HeaderValue::from_str(v).ok())
        {
            parts.headers.insert(name, value);
        }
    }
    parts
}

/// Why a message could not cross the channel transport.
#[derive(Debug, thiserror::Error)]
enum ChannelError {
    #[error("the client side of the connection is closed")]
    Closed,
    #[error("rmcp produced a message that is not JSON-RPC: {0}")]
    Encode(String),
}

impl Transport<RoleServer> for ChannelTransport {
    type Error = ChannelError;

    fn name() -> Cow<'static, str> {
        "mcp-bastion channel".into()
    }

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleServer>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        let to_client = self.to_client.clone();
        let message = to_message(&item);
        async move {
            to_client
                .send(message?)
                .await
                .map_err(|_| ChannelError::Closed)
        }
    }

    async fn receive(&mut self) -> Option<RxJsonRpcMessage<RoleServer>> {
        loop {
            // Cancel-safe: rmcp polls `receive` in a `select!`, so the reply is
            // only taken once a slot for it is reserved.
            if self.pending_reply.is_some() {
                let permit = self.to_client.reserve().await.ok()?;
                if let Some(reply) = self.pending_reply.take() {
                    permit.send(reply);
                }
            }
            let message = self.from_client.recv().await?;
            match from_message(message) {
                Ok(mut message) => {
                    self.attach_session(&mut message);
                    return Some(message);
                }
                Err(reply) => self.pending_reply = reply,
            }
        }
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        self.from_client.close();
        Ok(())
    }
}

/// Our message as rmcp's.
///
/// `Message` has already checked the JSON-RPC envelope, so what rmcp cannot
/// type is the params: an array, or a malformed `_meta`. Such a request gets an
/// `INVALID_PARAMS` reply, returned as the error; such a notification is
/// dropped with a log line, as rmcp's own transports do.
fn from_message(message: Message) -> Result<ClientJsonRpcMessage, Option<Message>> {
    let id = message.id().cloned().filter(|_| message.is_request());
    let method = message.method().unwrap_or_default().to_owned();
    serde_json::from_value(into_value(message)).map_err(|error| {
        tracing::debug!(%method, %error, "message does not fit rmcp's types");
        id.map(|id| {
            let why =
                format!("Invalid params: `{method}` takes an object with a well-formed `_meta`");
            Message::Response(Response::error(
                Some(id),
                ErrorObject::new(codes::INVALID_PARAMS, why),
            ))
        })
    })
}

/// The message as a JSON value, moving its parts rather than copying them
/// (what [`Message::to_value`] gives, without a copy of the params tree).
fn into_value(message: Message) -> serde_json::Value {
    use serde_json::{Map, Value};
    let id_value = |id: Option<RequestId>| match id {
        Some(RequestId::Number(n)) => Value::from(n),
        Some(RequestId::String(s)) => Value::String(s),
        None => Value::Null,
    };
    let mut obj = Map::new();
    obj.insert("jsonrpc".into(), Value::String("2.0".into()));
    match message {
        Message::Request(r) => {
            obj.insert("id".into(), id_value(Some(r.id)));
            obj.insert("method".into(), Value::String(r.method));
            if let Some(p) = r.params {
                obj.insert("params".into(), p);
            }
        }
        Message::Notification(n) => {
            obj.insert("method".into(), Value::String(n.method));
            if let Some(p) = n.params {
                obj.insert("params".into(), p);
            }
        }
        Message::Response(r) => {
            obj.insert("id".into(), id_value(r.id));
            let (key, value) = match r.outcome {
                Ok(v) => ("result", v),
                Err(e) => ("error", serde_json::to_value(e).unwrap_or(Value::Null)),
            };
            obj.insert(key.into(), value);
        }
    }
    Value::Object(obj)
}

/// rmcp's message as ours.
fn to_message(message: &ServerJsonRpcMessage) -> Result<Message, ChannelError> {
    let value = serde_json::to_value(message).map_err(|e| ChannelError::Encode(e.to_string()))?;
    Message::from_value(value).map_err(|e| ChannelError::Encode(e.to_string()))
}

#[cfg(test)]
#[allow(
    deprecated,
    reason = "sampling is deprecated in 2026-07-28 but still spoken by 2025 clients"
)]
mod tests {
    use std::{
        sync::{
            Arc,
            atomic::{AtomicBool, Ordering},
        },
        time::Duration,
    };

    use rmcp::{
        Peer, RoleServer, ServerHandler,
        handler::server::{common::Extension, wrapper::Parameters},
        model::{
            CreateMessageRequestParams, ProgressNotificationParam, RequestMetaObject,
            SamplingMessage,
        },
        schemars, tool, tool_handler, tool_router,
    };
    use serde_json::{Value, json};
    use tokio::time::timeout;

    use super::*;
    use crate::jsonrpc::{Notification, Request, RequestId};

    const WAIT: Duration = Duration::from_secs(5);

    #[derive(Clone)]
    struct Tenant(&'static str);

    #[derive(serde::Deserialize, schemars::JsonSchema)]
    #[schemars(crate = "rmcp::schemars")]
    struct EchoArgs {
        message: String,
    }

    /// Sets its flag when the last clone is dropped, i.e. the session is gone.
    struct DropFlag(Arc<AtomicBool>);

    impl Drop for DropFlag {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[derive(Clone)]
    struct TestServer {
        _alive: Arc<DropFlag>,
    }

    #[tool_router]
    impl TestServer {
        #[tool(description = "Echo the message back")]
        async fn echo(&self, Parameters(args): Parameters<EchoArgs>) -> String {
            format!("Echo: {}", args.message)
        }

        #[tool(description = "The tenant of the session")]
        async fn whoami(
            &self,
            Extension(parts): Extension<http::request::Parts>,
            Extension(session): Extension<SessionContext>,
        ) -> String {
            let tenant = parts
                .extensions
                .get::<Tenant>()
                .map_or("anonymous", |t| t.0);
            format!(
                "{tenant} in {}",
                session.session_id.as_deref().unwrap_or("-")
            )
        }

        #[tool(description = "Report progress three times, then finish")]
        async fn steps(
            &self,
            meta: RequestMetaObject,
            peer: Peer<RoleServer>,
        ) -> Result<String, rmcp::ErrorData> {
            let token = meta
                .get_progress_token()
                .ok_or_else(|| rmcp::ErrorData::invalid_params("no progressToken", None))?;
            for step in 1..=3 {
                let progress = ProgressNotificationParam::new(token.clone(), f64::from(step));
                peer.notify_progress(progress)
                    .await
                    .map_err(|e| rmcp::ErrorData::internal_error(e.to_string(), None))?;
            }
            Ok("done".into())
        }

        #[tool(description = "Ask the client's model")]
        async fn ask(&self, peer: Peer<RoleServer>) -> Result<String, rmcp::ErrorData> {
            let params =
                CreateMessageRequestParams::new(vec![SamplingMessage::user_text("hi")], 10);
            let result = peer
                .create_message(params)
                .await
                .map_err(|e| rmcp::ErrorData::internal_error(e.to_string(), None))?;
            Ok(format!(
                "model said {}",
                serde_json::to_value(&result.message).unwrap_or_default()
            ))
        }
    }

    #[tool_handler]
    impl ServerHandler for TestServer {}

    fn backend() -> (
        RmcpBackend<impl Fn() -> TestServer + Send + Sync + 'static>,
        Arc<AtomicBool>,
    ) {
        let dropped = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&dropped);
        let backend = RmcpBackend::new(move || TestServer {
            _alive: Arc::new(DropFlag(Arc::clone(&flag))),
        });
        (backend, dropped)
    }

    fn request(id: i64, method: &str, params: Value) -> Message {
        Message::Request(Request {
            id: RequestId::Number(id),
            method: method.into(),
            params: Some(params),
        })
    }

    async fn next(conn: &mut Connection) -> Message {
        timeout(WAIT, conn.incoming.recv())
            .await
            .expect("the backend answers in time")
            .expect("the connection is open")
    }

    async fn call(conn: &mut Connection, message: Message) -> Value {
        let id = message.id().cloned();
        conn.outgoing
            .send(message)
            .await
            .expect("backend is listening");
        let Message::Response(Response { id: got, outcome }) = next(conn).await else {
            panic!("expected a response");
        };
        assert_eq!(got, id);
        outcome.expect("a successful result")
    }

    async fn initialize(conn: &mut Connection) -> Value {
        let params = json!({
            "protocolVersion": "2025-06-18",
            "capabilities": {"sampling": {}},
            "clientInfo": {"name": "test", "version": "0"},
        });
        let result = call(conn, request(1, "initialize", params)).await;
        let initialized = Notification {
            method: "notifications/initialized".into(),
            params: None,
        };
        conn.outgoing
            .send(Message::Notification(initialized))
            .await
            .expect("open");
        result
    }

    fn tool_text(result: &Value) -> &str {
        result["content"][0]["text"]
            .as_str()
            .expect("a text result")
    }

    #[tokio::test]
    async fn initialize_list_and_call_through_the_connection() {
        let (backend, _) = backend();
        let mut conn = backend
            .connect(SessionContext::default())
            .await
            .expect("connects");

        let init = initialize(&mut conn).await;
        assert_eq!(init["protocolVersion"], "2025-06-18");
        assert!(init["capabilities"]["tools"].is_object());

        let list = call(&mut conn, request(2, "tools/list", json!({}))).await;
        let mut names: Vec<_> = list["tools"]
            .as_array()
            .expect("a tool list")
            .iter()
            .map(|t| t["name"].as_str().unwrap_or_default())
            .collect();
        names.sort_unstable();
        assert_eq!(names, ["ask", "echo", "steps", "whoami"]);

        let params = json!({"name": "echo", "arguments": {"message": "hi"}});
        let result = call(&mut conn, request(3, "tools/call", params)).await;
        assert_eq!(tool_text(&result), "Echo: hi");
    }

    #[tokio::test]
    async fn session_extensions_reach_the_tool() {
        let (backend, _) = backend();
        let mut ctx = SessionContext {
            session_id: Some("s-1".into()),
            ..SessionContext::default()
        };
        ctx.extensions.insert(Tenant("acme"));
        let mut conn = backend.connect(ctx).await.expect("connects");
        initialize(&mut conn).await;

        let params = json!({"name": "whoami", "arguments": {}});
        let result = call(&mut conn, request(2, "tools/call", params)).await;
        assert_eq!(tool_text(&result), "acme in s-1");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn progress_notifications_arrive_before_the_result() {
        let (backend, _) = backend();
        let mut conn = backend
            .connect(SessionContext::default())
            .await
            .expect("connects");
        initialize(&mut conn).await;

        let params = json!({"name": "steps", "arguments": {}, "_meta": {"progressToken": "p"}});
        conn.outgoing
            .send(request(2, "tools/call", params))
            .await
            .expect("open");
        for step in 1..=3 {
            let Message::Notification(n) = next(&mut conn).await else {
                panic!("expected progress {step} before the result");
            };
            assert_eq!(n.method, "notifications/progress");
            let params = n.params.expect("progress params");
            assert_eq!(
                (&params["progressToken"], &params["progress"]),
                (&json!("p"), &json!(f64::from(step)))
            );
        }
        let Message::Response(Response { outcome, .. }) = next(&mut conn).await else {
            panic!("expected the tool result");
        };
        assert_eq!(tool_text(&outcome.expect("a result")), "done");
    }

    #[tokio::test]
    async fn server_to_client_requests_reach_the_client_and_back() {
        let (backend, _) = backend();
        let mut conn = backend
            .connect(SessionContext::default())
            .await
            .expect("connects");
        initialize(&mut conn).await;

        let call_ask = request(2, "tools/call", json!({"name": "ask", "arguments": {}}));
        conn.outgoing.send(call_ask).await.expect("open");
        let Message::Request(sampling) = next(&mut conn).await else {
            panic!("expected the sampling request");
        };
        assert_eq!(sampling.method, "sampling/createMessage");
        let answer = json!({
            "role": "assistant",
            "content": {"type": "text", "text": "hello"},
            "model": "m",
        });
        let reply = Message::Response(Response::result(sampling.id, answer));
        conn.outgoing.send(reply).await.expect("open");

        let Message::Response(Response { outcome, .. }) = next(&mut conn).await else {
            panic!("expected the tool result");
        };
        let result = outcome.expect("a result");
        assert!(tool_text(&result).contains("hello"), "{result}");
    }

    #[tokio::test]
    async fn malformed_params_get_invalid_params_and_the_session_goes_on() {
        let (backend, _) = backend();
        let mut conn = backend
            .connect(SessionContext::default())
            .await
            .expect("connects");
        initialize(&mut conn).await;

        conn.outgoing
            .send(request(2, "tools/call", json!(["echo"])))
            .await
            .expect("open");
        let Message::Response(Response {
            id,
            outcome: Err(error),
        }) = next(&mut conn).await
        else {
            panic!("expected an error response");
        };
        assert_eq!(id, Some(RequestId::Number(2)));
        assert_eq!(error.code, codes::INVALID_PARAMS);

        let params = json!({"name": "echo", "arguments": {"message": "still here"}});
        let result = call(&mut conn, request(3, "tools/call", params)).await;
        assert_eq!(tool_text(&result), "Echo: still here");
    }

    async fn assert_stopped(mut conn: Connection, dropped: &AtomicBool) {
        let end = timeout(WAIT, async {
            while conn.incoming.recv().await.is_some() {}
        });
        end.await.expect("incoming ends once the service stops");
        timeout(WAIT, async {
            while !dropped.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("the handler is dropped");
    }

    #[tokio::test]
    async fn closing_the_connection_stops_the_service() {
        let (backend, dropped) = backend();
        let mut conn = backend
            .connect(SessionContext::default())
            .await
            .expect("connects");
        initialize(&mut conn).await;
        conn.closed.cancel();
        assert_stopped(conn, &dropped).await;
    }

    #[tokio::test]
    async fn dropping_outgoing_stops_the_service() {
        let (backend, dropped) = backend();
        let mut conn = backend
            .connect(SessionContext::default())
            .await
            .expect("connects");
        initialize(&mut conn).await;
        let (placeholder, _) = mpsc::channel(1);
        drop(std::mem::replace(&mut conn.outgoing, placeholder));
        assert_stopped(conn, &dropped).await;
    }

    #[tokio::test]
    async fn shutdown_closes_every_connection_and_refuses_new_ones() {
        let (backend, dropped) = backend();
        let mut conn = backend
            .connect(SessionContext::default())
            .await
            .expect("connects");
        initialize(&mut conn).await;
        backend.shutdown().await;
        assert!(conn.closed.is_cancelled());
        assert_stopped(conn, &dropped).await;
        let refused = backend.connect(SessionContext::default()).await;
        assert!(matches!(refused, Err(BackendError::Unavailable(_))));
    }

    #[test]
    fn into_value_is_to_value_without_the_copy() {
        let messages = [
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"a":[1,2]}}}"#,
            r#"{"jsonrpc":"2.0","id":"x","method":"ping"}"#,
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
            r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":3}}"#,
            r#"{"jsonrpc":"2.0","id":2,"result":{"content":[]}}"#,
            r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error","data":{"at":1}}}"#,
        ];
        for text in messages {
            let message = Message::from_slice(text.as_bytes()).expect("valid message");
            assert_eq!(into_value(message.clone()), message.to_value(), "{text}");
        }
    }
}
