//! One tracing span per MCP request: [`McpTraceLayer`].
//!
//! The span `mcp.request` carries the JSON-RPC method, the tool (for
//! `tools/call`), the session id's [`session_fingerprint`] (the tag the
//! session layer logs too), the client name of a 2026-07-28 request (its
//! `_meta` `clientInfo.name`, at most 64 plain characters, else `other`: a
//! sessionless request has no session tag), and the principal's subject; every event logged
//! while the request is served (by the transport, the backend, a child's
//! stderr) sits inside it, so a JSON log line says which request and which
//! caller it belongs to.
//!
//! Nothing secret enters the span: no header, no query string, no body, and
//! the session id only as a fingerprint (a session id lets whoever holds it
//! speak in that session).
//!
//! With OpenTelemetry on (feature `otel`, `crate::otel::layer`) a second
//! span opens inside it and is exported: a SERVER span named like
//! `tools/call echo`, child of the caller's W3C trace context, with the MCP
//! semantic-convention attributes (see [`crate::otel`]). The log span
//! itself is not exported, and the exported one is not logged: each layer
//! formats only the fields it shows.
//!
//! Mount it inside [`McpInspectLayer`](crate::inspect::McpInspectLayer) and
//! authentication, so that the parsed request and the `Principal` are there,
//! in one `ServiceBuilder` given to one `Router::layer` call.
//! [`McpStack`](crate::stack::McpStack) includes it by default
//! ([`without_trace`](crate::stack::McpStack::without_trace) leaves it out):
//!
//! ```
//! use axum::{Router, routing::post};
//! use mcp_bastion::{inspect::McpInspectLayer, trace::McpTraceLayer};
//! use tower::ServiceBuilder;
//!
//! let app: Router = Router::new()
//!     .route("/mcp", post(|| async { "ok" }))
//!     .layer(ServiceBuilder::new().layer(McpInspectLayer::new()).layer(McpTraceLayer::new()));
//! ```

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll, ready},
};

use http::Request;
use pin_project_lite::pin_project;
use tower::{Layer, Service};
use tracing::{Instrument, instrument::Instrumented};

use crate::{inspect::McpRequest, principal::Principal, session::session_fingerprint};

/// The name of the request span.
pub(crate) const REQUEST_SPAN: &str = "mcp.request";
/// The target of the request span.
pub(crate) const REQUEST_SPAN_TARGET: &str = "mcp_bastion::trace";

/// Adds the `mcp.request` span; see the [module docs](self).
#[derive(Debug, Clone, Copy, Default)]
pub struct McpTraceLayer {
    _priv: (),
}

impl McpTraceLayer {
    /// The layer.
    pub fn new() -> Self {
        Self::default()
    }
}

impl<S> Layer<S> for McpTraceLayer {
    type Service = McpTrace<S>;

    fn layer(&self, inner: S) -> Self::Service {
        McpTrace { inner }
    }
}

/// The service of [`McpTraceLayer`].
#[derive(Debug, Clone)]
pub struct McpTrace<S> {
    inner: S,
}

impl<S, B, RB> Service<Request<B>> for McpTrace<S>
where
    S: Service<Request<B>, Response = http::Response<RB>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = TraceFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        // Every value is known before the span opens, so it is created with
        // them: one pass over the fields for each subscriber layer, where
        // recording them one by one costs a pass (and a format) each.
        let mcp = req.extensions().get::<McpRequest>();
        let session = match mcp {
            Some(mcp) => mcp.session_id(),
            None => req
                .headers()
                .get(crate::protocol::HEADER_SESSION_ID)
                .and_then(|v| v.to_str().ok()),
        }
        .map(session_fingerprint);
        let principal = req.extensions().get::<Principal>().map(Principal::subject);
        let client = mcp.and_then(client_name);
        let span = tracing::info_span!(
            target: REQUEST_SPAN_TARGET,
            REQUEST_SPAN,
            http.method = %req.method(),
            method = mcp.and_then(McpRequest::method),
            tool = mcp.and_then(McpRequest::tool_name),
            session = session.as_deref(),
            client = client,
            principal = principal,
        );
        #[cfg(feature = "otel")]
        let export = if crate::otel::is_enabled() {
            crate::otel::server_span(
                &span,
                req.method(),
                req.headers(),
                mcp,
                [session.as_deref(), principal, client],
            )
        } else {
            tracing::Span::none()
        };
        #[cfg(not(feature = "otel"))]
        let export = tracing::Span::none();
        TraceFuture {
            inner: self.inner.call(req).instrument(export).instrument(span),
        }
    }
}

pin_project! {
    /// The future of [`McpTrace`]: the inner service's, inside the request
    /// span (and, with OpenTelemetry on, inside the exported SERVER span,
    /// which records a failed HTTP answer, status 400 and up).
    pub struct TraceFuture<F> {
        #[pin]
        inner: Instrumented<Instrumented<F>>,
    }
}

impl<F, RB, E> Future for TraceFuture<F>
where
    F: Future<Output = Result<http::Response<RB>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let out = ready!(this.inner.as_mut().poll(cx));
        #[cfg(feature = "otel")]
        if crate::otel::is_enabled()
            && let Ok(res) = &out
            && res.status().as_u16() >= 400
        {
            crate::otel::fail(this.inner.inner().span(), res.status().as_u16().to_string());
        }
        Poll::Ready(out)
    }
}

/// The `clientInfo.name` in a request's `_meta` (2026-07-28 requests carry
/// it on every request), or `other` when it is longer than 64 bytes or has
/// characters other than letters, digits and `_-./ `.
fn client_name(mcp: &McpRequest) -> Option<&str> {
    let name = mcp.meta_client_name()?;
    let plain = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'/' | b' '));
    Some(if plain { name } else { "other" })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use std::sync::{Arc, Mutex};

    use axum::{Router, body::Body, routing::post};
    use tower::ServiceExt;

    use super::*;
    use crate::inspect::McpInspectLayer;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// This thread's log lines from now on, in a buffer (until the guard drops).
    fn captured_logs() -> (Buf, tracing::subscriber::DefaultGuard) {
        let buf = Buf::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        (buf, tracing::subscriber::set_default(subscriber))
    }

    /// `POST /mcp` logging "handled" inside whatever span the layers opened.
    fn handled_route() -> Router {
        Router::new().route(
            "/mcp",
            post(|| async {
                tracing::info!("handled");
                "ok"
            }),
        )
    }

    #[tokio::test]
    async fn events_inside_a_request_carry_method_tool_session_tag_and_principal() {
        let (buf, _guard) = captured_logs();
        let app: Router = handled_route()
            .layer(McpTraceLayer::new())
            .layer(axum::middleware::map_request(
                |mut req: Request<Body>| async move {
                    req.extensions_mut().insert(Principal::new("alice"));
                    req
                },
            ))
            .layer(McpInspectLayer::new());
        let sid = "0123456789abcdef0123456789abcdef";
        let req = Request::post("/mcp")
            .header("content-type", "application/json")
            .header("mcp-session-id", sid)
            .body(Body::from(
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"secret":"hunter2"}}}"#,
            ))
            .unwrap();
        let res = app.oneshot(req).await.unwrap();
        assert_eq!(res.status(), 200);
        let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let line = out.lines().find(|l| l.contains("handled")).unwrap();
        assert!(line.contains(r#"method="tools/call""#), "{line}");
        assert!(line.contains(r#"tool="echo""#), "{line}");
        assert!(line.contains(r#"principal="alice""#), "{line}");
        let tag = session_fingerprint(sid);
        assert!(line.contains(&format!(r#"session="{tag}""#)), "{line}");
        assert!(
            !out.contains(sid),
            "the session id itself is never logged: {out}"
        );
        assert!(
            !out.contains("hunter2"),
            "arguments are never logged: {out}"
        );
    }

    #[tokio::test]
    async fn a_sessionless_request_is_traced_with_its_client_name_from_meta() {
        let (buf, _guard) = captured_logs();
        let app: Router = handled_route()
            .layer(McpTraceLayer::new())
            .layer(McpInspectLayer::new());
        for name in ["inspector-cli", "evil\nname=x"] {
            let body = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": {
                crate::protocol::META_PROTOCOL_VERSION: "2026-07-28",
                crate::protocol::META_CLIENT_CAPABILITIES: {},
                crate::protocol::META_CLIENT_INFO: {"name": name, "version": "1"},
            }}});
            let req = Request::post("/mcp")
                .header("content-type", "application/json")
                .header("mcp-protocol-version", "2026-07-28")
                .header("mcp-method", "tools/list")
                .body(Body::from(body.to_string()))
                .unwrap();
            let res = app.clone().oneshot(req).await.unwrap();
            assert_eq!(res.status(), 200);
        }
        let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<_> = out.lines().filter(|l| l.contains("handled")).collect();
        assert!(lines[0].contains(r#"client="inspector-cli""#), "{out}");
        assert!(lines[1].contains(r#"client="other""#), "{out}");
        assert!(!out.contains("evil"), "{out}");
    }
}
