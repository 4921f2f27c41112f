//! OpenTelemetry: W3C trace context in and out, and the span names, kinds
//! and semantic-convention attributes of an exported trace (feature `otel`).
//!
//! The exporter belongs to the application (the `mcp-bastion` binary builds
//! an OTLP one from `--otlp-endpoint` and the `OTEL_*` variables). Install
//! its tracer with `layer` (a `tracing-opentelemetry` layer that also turns
//! on what this module adds; without it nothing here runs and logs stay as
//! they are):
//!
//! ```
//! # #[cfg(feature = "otel")] {
//! use opentelemetry::trace::TracerProvider as _;
//! use tracing_subscriber::layer::SubscriberExt;
//!
//! let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
//! let subscriber = tracing_subscriber::registry()
//!     .with(mcp_bastion::otel::layer(provider.tracer("mcp-bastion")));
//! # drop(subscriber);
//! # }
//! ```
//!
//! An exporter fails quietly (the SDK's own diagnostics are off): wrap it in
//! `ReportingExporter` to have a failing export warned about in the log
//! and counted in `mcp_otlp_spans_failed_total`, as the binary does.
//!
//! With it on:
//! - beside the log span of `McpTraceLayer` (`mcp.request`, not exported)
//!   a SERVER span opens (`mcp.server`), named `{mcp.method.name} {target}`
//!   (`tools/call echo`), whose parent is the caller's W3C trace context:
//!   `params._meta.traceparent`/`tracestate` of the request (the MCP
//!   semantic conventions and the 2026-07-28 revision put it there), else
//!   the `traceparent`/`tracestate` HTTP headers;
//! - it carries `mcp.method.name`, `gen_ai.tool.name` (with
//!   `gen_ai.operation.name = execute_tool`) or `gen_ai.prompt.name`,
//!   `jsonrpc.request.id`, `mcp.protocol.version`, `mcp.session.id` (the
//!   session id's fingerprint, never the id: it is a bearer of the session),
//!   `network.transport`, and on failure `error.type` with the span status
//!   ERROR;
//! - every request sent to a backend for a client's request gets a CLIENT
//!   span `mcp.backend` (child of the request span, from the send to the
//!   answer, with `error.type` and `rpc.response.status_code` when the
//!   answer is a JSON-RPC error, `tool_error` for a tool result with
//!   `isError`), whose context is written into the message's
//!   `params._meta` (`traceparent`, `tracestate`), so a stdio child or an
//!   upstream server can continue the trace; the upstream backend also
//!   sends it as HTTP headers. That holds for a session's requests, and for
//!   2026-07-28 requests served without a session: passed through to an
//!   upstream that speaks it, sent as they are to a stdio child that speaks
//!   it, or bridged over a pooled handshake link (the call, and the
//!   `initialize` that opens a new link).
//!
//! A bridged call that waits for its client's input (multi-round-trip: the
//! backend asked for elicitation, sampling or roots) ends its CLIENT span
//! when the backend asks, and the client's retry gets one of its own, child
//! of the retry's request span, from the answer to the backend's request to
//! the call's result (named like the call, with the id the backend knows the
//! call by). Each request's spans so end within it: a parked call keeping
//! its span open would end it under a request span long closed, minutes
//! later or never (the retry may not come). Nothing is written into the
//! answer to the backend's request (a response has no `params._meta`); the
//! backend goes on in the trace of the call's first request. The backend's
//! own requests (elicitation, sampling, roots, ping) and the answers to them
//! are not backend calls.
//!
//! A long-lived stream keeps no span open either: a 2026-07-28
//! `subscriptions/listen` sent as it is to a backend ends its CLIENT span
//! when the backend's first frame (the acknowledgement) arrives, and a
//! bridged one's (the `initialize` and `resources/subscribe` of its own
//! connection) end before the stream opens; so the request span ends when
//! the stream opens. The notifications a stream relays get no span.
//!
//! One type opens, propagates and ends these spans for all paths but the
//! pass-through (`BackendCall`; a session keeps one per request in flight,
//! a sessionless link one, as it serves one request at a time); with
//! OpenTelemetry off it holds nothing.
//!
//! Nothing from the request's credentials, headers (other than the trace
//! context), arguments or results becomes an attribute.
// The propagation helpers serve the transports and the upstream backend: a
// build without them uses only the request span's part.
#![cfg_attr(
    not(all(
        any(feature = "streamable-http", feature = "sse", feature = "auth"),
        feature = "upstream"
    )),
    allow(dead_code, unused_imports)
)]

use crate::jsonrpc::{Message, RequestId, Response};

#[cfg(feature = "otel")]
pub use enabled::layer;
#[cfg(feature = "otel")]
pub use report::{OTLP_SPANS_FAILED, ReportingExporter};

#[cfg(feature = "otel")]
mod report;

/// Whether `layer` (feature `otel`) was installed in this process.
pub fn is_enabled() -> bool {
    #[cfg(feature = "otel")]
    {
        enabled::ENABLED.load(std::sync::atomic::Ordering::Relaxed)
    }
    #[cfg(not(feature = "otel"))]
    {
        false
    }
}

/// The CLIENT span of one request sent to a backend, from the send to the
/// answer: the one place that opens such a span, writes its context into
/// the message and records the answer on it (a session's [`BackendCalls`]
/// keep one per request in flight; a sessionless backend link, which serves
/// one request at a time, holds one). Empty, and nothing allocated, unless
/// OpenTelemetry is on.
#[derive(Default)]
pub(crate) struct BackendCall {
    /// The call's span and the request's span (which an error answer marks
    /// failed too).
    #[cfg(feature = "otel")]
    spans: Option<(tracing::Span, tracing::Span)>,
}

impl BackendCall {
    /// Called, inside the request's span, just before `message` goes to the
    /// backend: opens its `mcp.backend` span (a child of the current span)
    /// and writes its context into `params._meta`. Empty for a message other
    /// than a request.
    pub(crate) fn start(message: &mut Message) -> Self {
        #[cfg(feature = "otel")]
        if is_enabled() && matches!(message, Message::Request(_)) {
            let span = enabled::backend_span(message);
            enabled::inject_meta(&span, message);
            return Self {
                spans: Some((span, tracing::Span::current())),
            };
        }
        let _ = message;
        Self::default()
    }

    /// The span of a call that goes on after its client's retry (a
    /// multi-round-trip input: what goes to the backend then is the
    /// answer to its own request, not a request): a CLIENT span like
    /// [`start`](Self::start)'s for `method` with `params` under the
    /// backend's request id `id`, child of the current (retry's) span. No
    /// trace context is written: a response has no `params._meta`, and the
    /// backend continues the trace of the call's first request.
    pub(crate) fn resumed(
        method: &str,
        params: Option<&serde_json::Value>,
        id: &RequestId,
    ) -> Self {
        #[cfg(feature = "otel")]
        if is_enabled() {
            return Self {
                spans: Some((
                    enabled::backend_span_of(method, params, Some(id)),
                    tracing::Span::current(),
                )),
            };
        }
        let _ = (method, params, id);
        Self::default()
    }

    /// Ends the span with the backend's `response` recorded on it (and on
    /// the request's span when it is an error).
    pub(crate) fn finish(self, response: &Response) {
        #[cfg(feature = "otel")]
        if let Some((span, request_span)) = self.spans {
            enabled::record_answer(&span, &request_span, response);
        }
        #[cfg(not(feature = "otel"))]
        let _ = response;
    }
}

/// The CLIENT spans of the requests a session has sent to its backend and
/// not yet seen answered (empty unless OpenTelemetry is on).
#[derive(Default)]
pub(crate) struct BackendCalls {
    #[cfg(feature = "otel")]
    calls: std::sync::Mutex<std::collections::HashMap<RequestId, BackendCall>>,
}

/// Most calls one session keeps a span for; beyond it a call is still
/// traced through `_meta` but its span ends at once.
#[cfg(feature = "otel")]
const MAX_OPEN_CALLS: usize = 1024;

impl BackendCalls {
    /// Called, inside the request's span, just before `message` goes to the
    /// backend: see [`BackendCall::start`].
    pub(crate) fn start(&self, message: &mut Message) {
        #[cfg(feature = "otel")]
        if is_enabled() {
            let Message::Request(request) = &*message else {
                return;
            };
            let id = request.id.clone();
            let call = BackendCall::start(message);
            let mut calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
            if calls.len() < MAX_OPEN_CALLS {
                calls.insert(id, call);
            }
        }
        #[cfg(not(feature = "otel"))]
        let _ = message;
    }

    /// Called with each message from the backend: a response ends the span
    /// of the request it answers (see [`BackendCall::finish`]).
    pub(crate) fn finish(&self, message: &Message) {
        #[cfg(feature = "otel")]
        if is_enabled()
            && let Message::Response(response @ Response { id: Some(id), .. }) = message
        {
            let call = {
                let mut calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
                if calls.is_empty() {
                    return;
                }
                calls.remove(id)
            };
            if let Some(call) = call {
                call.finish(response);
            }
        }
        #[cfg(not(feature = "otel"))]
        let _ = message;
    }
}

/// The `traceparent` and `tracestate` of a message's `params._meta`, as
/// HTTP headers for the request that carries it upstream.
pub(crate) fn meta_headers(message: &Message) -> Vec<(&'static str, http::HeaderValue)> {
    if !is_enabled() {
        return Vec::new();
    }
    let Some(meta) = message
        .params()
        .and_then(|p| p.get("_meta"))
        .and_then(|m| m.as_object())
    else {
        return Vec::new();
    };
    [TRACEPARENT, TRACESTATE]
        .into_iter()
        .filter_map(|key| {
            let value = meta.get(key)?.as_str()?;
            Some((key, http::HeaderValue::from_str(value).ok()?))
        })
        .collect()
}

/// The target of the spans made for export only (the SERVER span of a
/// request, the CLIENT spans of backend calls): their fields are the
/// semantic conventions' attributes, and the request's log span beside them
/// says the same for the logs, so an application's log layer can leave them
/// out (the `mcp-bastion` binary does: `target != EXPORT_ONLY_TARGET`).
pub const EXPORT_ONLY_TARGET: &str = "mcp_bastion::otel";

/// The W3C trace context keys, in headers and in `_meta` alike.
const TRACEPARENT: &str = "traceparent";
const TRACESTATE: &str = "tracestate";

#[cfg(feature = "otel")]
pub(crate) use enabled::{Outbound, fail, server_span};

#[cfg(feature = "otel")]
mod enabled {
    use std::sync::atomic::{AtomicBool, Ordering};

    use opentelemetry::{
        Context,
        propagation::{Extractor, TextMapPropagator},
        trace::{Status, TraceContextExt, TraceFlags},
    };
    use opentelemetry_sdk::propagation::TraceContextPropagator;
    use serde_json::{Map, Value};
    use tracing::Span;
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    use super::{TRACEPARENT, TRACESTATE};
    use crate::{inspect::McpRequest, jsonrpc::Message};

    pub(super) static ENABLED: AtomicBool = AtomicBool::new(false);

    /// The `tracing-opentelemetry` layer exporting spans to `tracer`, which
    /// also turns on the names, kinds, attributes and trace context
    /// propagation of this crate (see the [module docs](super)). It exports
    /// what is at level INFO and above, except the log span of
    /// [`McpTraceLayer`](crate::trace::McpTraceLayer) (`mcp.request`: the
    /// exported SERVER span beside it carries the conventions' names instead).
    /// The spans and events of rmcp's own session loop are not exported
    /// (those of the tools an rmcp server runs are). Source locations,
    /// thread ids and `tracing` targets are left out of the spans.
    pub fn layer<S, T>(tracer: T) -> impl tracing_subscriber::Layer<S> + Send + Sync + 'static
    where
        S: tracing::Subscriber
            + for<'span> tracing_subscriber::registry::LookupSpan<'span>
            + Send
            + Sync
            + 'static,
        T: opentelemetry::trace::Tracer + Send + Sync + 'static,
        T::Span: Send + Sync,
    {
        use tracing_subscriber::Layer as _;
        ENABLED.store(true, Ordering::Relaxed);
        tracing_opentelemetry::layer()
            .with_location(false)
            .with_threads(false)
            .with_tracked_inactivity(false)
            .with_target(false)
            // the trace context travels in `_meta` and headers, written
            // here; no OpenTelemetry-instrumented code runs inside a span
            .with_context_activation(false)
            .with_tracer(tracer)
            .with_filter(tracing_subscriber::filter::filter_fn(
                exported as fn(&tracing::Metadata<'_>) -> bool,
            ))
    }

    /// Crates whose spans and events [`layer`] leaves out: rmcp's session
    /// loop opens one span per session (`serve_inner`, a root span as long
    /// as the session, with no attributes) and enters it around every
    /// message it sends, so exporting it would add a trace per session and
    /// work to every call while saying nothing the request spans do not.
    const NOT_EXPORTED: &[&str] = &["rmcp"];

    /// What [`layer`] exports.
    fn exported(meta: &tracing::Metadata<'_>) -> bool {
        let from_crate = |name: &str| {
            meta.target()
                .strip_prefix(name)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
        };
        *meta.level() <= tracing::Level::INFO
            && !NOT_EXPORTED.iter().any(|name| from_crate(name))
            && !(meta.is_span()
                && meta.name() == crate::trace::REQUEST_SPAN
                && meta.target() == crate::trace::REQUEST_SPAN_TARGET)
    }

    struct MetaCarrier<'a>(&'a Map<String, Value>);

    impl Extractor for MetaCarrier<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            self.0.get(key)?.as_str()
        }
        fn keys(&self) -> Vec<&str> {
            self.0.keys().map(String::as_str).collect()
        }
    }

    struct HeaderCarrier<'a>(&'a http::HeaderMap);

    impl Extractor for HeaderCarrier<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            self.0.get(key)?.to_str().ok()
        }
        fn keys(&self) -> Vec<&str> {
            self.0.keys().map(http::HeaderName::as_str).collect()
        }
    }

    /// The W3C trace context fields of a span, as `(key, value)`.
    pub(super) struct Fields(pub(super) Vec<(&'static str, String)>);

    #[cfg(test)]
    pub(super) fn remote_parent_for_tests(
        headers: &http::HeaderMap,
        mcp: Option<&McpRequest>,
    ) -> Option<Context> {
        remote_parent(headers, mcp)
    }

    /// The caller's span context: `_meta` first (the MCP conventions), then
    /// the HTTP headers; `None` when neither holds a valid `traceparent`.
    fn remote_parent(headers: &http::HeaderMap, mcp: Option<&McpRequest>) -> Option<Context> {
        let propagator = TraceContextPropagator::new();
        let from_meta = mcp
            .and_then(McpRequest::request_meta)
            .filter(|meta| meta.contains_key(TRACEPARENT))
            .map(|meta| propagator.extract(&MetaCarrier(meta)));
        let valid = |cx: &Context| cx.span().span_context().is_valid();
        from_meta.filter(valid).or_else(|| {
            headers
                .contains_key(TRACEPARENT)
                .then(|| propagator.extract(&HeaderCarrier(headers)))
                .filter(valid)
        })
    }

    /// The conventions' span name: `{method} {tool or prompt}`.
    fn span_name(method: &str, target: Option<&str>) -> String {
        match target {
            Some(target) => format!("{method} {target}"),
            None => method.to_owned(),
        }
    }

    /// A client-chosen value bounded before it becomes an attribute.
    fn bounded(value: &str) -> String {
        value.chars().take(128).collect()
    }

    /// The request span's name: `{method} {tool or prompt}` of its
    /// JSON-RPC request, else (a GET stream, a DELETE) the HTTP method.
    fn server_span_name(http_method: &http::Method, mcp: Option<&McpRequest>) -> String {
        match mcp {
            Some(mcp) => span_name(
                mcp.method().unwrap_or("batch"),
                mcp.tool_name()
                    .or_else(|| mcp.prompt_name())
                    .map(bounded)
                    .as_deref(),
            ),
            None => http_method.as_str().to_owned(),
        }
    }

    /// The exported SERVER span of one request (see the
    /// [module docs](super)), inside `request` (the log span, which is not
    /// exported) and child of the caller's trace context, else of the
    /// exported span around the request, if any; it carries the session
    /// id's fingerprint, the principal's subject and the client's name as
    /// the log span does. Its attributes are its fields, given when it opens:
    /// one pass for the exporting layer, where each `set_attribute` would
    /// look the span up again.
    pub(crate) fn server_span(
        request: &Span,
        http_method: &http::Method,
        headers: &http::HeaderMap,
        mcp: Option<&McpRequest>,
        [session, principal, client]: [Option<&str>; 3],
    ) -> Span {
        let tool = mcp.and_then(McpRequest::tool_name);
        let prompt = mcp.and_then(McpRequest::prompt_name);
        let span = tracing::info_span!(
            target: super::EXPORT_ONLY_TARGET,
            parent: request,
            "mcp.server",
            otel.name = server_span_name(http_method, mcp),
            otel.kind = "server",
            network.transport = "tcp",
            network.protocol.name = "http",
            mcp.method.name = mcp.map(|m| m.method().unwrap_or("batch")),
            gen_ai.tool.name = tool.map(bounded),
            gen_ai.operation.name = tool.map(|_| "execute_tool"),
            gen_ai.prompt.name = prompt.map(bounded),
            jsonrpc.request.id = mcp.and_then(McpRequest::id).map(|id| bounded(&request_id(id))),
            mcp.protocol.version = mcp.and_then(McpRequest::protocol_version).map(|v| v.as_str()),
            mcp.session.id = session,
            principal = principal,
            client = client,
        );
        match remote_parent(headers, mcp) {
            Some(parent) => {
                let _ = span.set_parent(parent);
            }
            None => {
                // the log span, its parent here, is not exported: the
                // exported span around the request (a library user's HTTP
                // span), if there is one, is the parent instead
                let around = Span::current();
                if !around.is_none() {
                    let _ = span.set_parent(around.context());
                }
            }
        }
        span
    }

    /// A request id as the conventions write it: a number, or the string
    /// itself (not quoted).
    fn request_id(id: &crate::jsonrpc::RequestId) -> String {
        match id {
            crate::jsonrpc::RequestId::Number(n) => n.to_string(),
            crate::jsonrpc::RequestId::String(s) => s.clone(),
        }
    }

    /// Marks a span failed with `error_type` (an HTTP status, a JSON-RPC
    /// code or `tool_error`).
    pub(crate) fn fail(span: &Span, error_type: String) {
        span.set_attribute("error.type", error_type.clone());
        span.set_status(Status::error(error_type));
    }

    /// The CLIENT span of one request sent to the backend, a child of the
    /// current (request) span.
    pub(super) fn backend_span(message: &Message) -> Span {
        backend_span_of(
            message.method().unwrap_or("-"),
            message.params(),
            message.id(),
        )
    }

    /// The CLIENT span of a request of `method` with `params` and `id`, a
    /// child of the current span.
    pub(super) fn backend_span_of(
        method: &str,
        params: Option<&Value>,
        id: Option<&crate::jsonrpc::RequestId>,
    ) -> Span {
        let target = params.and_then(|p| match method {
            "tools/call" | "prompts/get" => p.get("name")?.as_str(),
            _ => None,
        });
        let tool = target.filter(|_| method == "tools/call");
        client_span(method, target, tool, id)
    }

    /// A CLIENT span `mcp.backend` for `method` on `target` (the tool or
    /// prompt named in the span's name), with the tool and request id as
    /// attributes when given; a child of the current span.
    fn client_span(
        method: &str,
        target: Option<&str>,
        tool: Option<&str>,
        id: Option<&crate::jsonrpc::RequestId>,
    ) -> Span {
        tracing::info_span!(
            target: super::EXPORT_ONLY_TARGET,
            "mcp.backend",
            otel.name = span_name(method, target.map(bounded).as_deref()),
            otel.kind = "client",
            mcp.method.name = method,
            gen_ai.tool.name = tool.map(bounded),
            gen_ai.operation.name = tool.map(|_| "execute_tool"),
            jsonrpc.request.id = id.map(|id| bounded(&request_id(id))),
        )
    }

    /// Writes `span`'s context into `message`'s `params._meta` (replacing
    /// a `traceparent`/`tracestate` the client put there: the backend's
    /// parent is this proxy's span, itself a child of the client's).
    pub(super) fn inject_meta(span: &Span, message: &mut Message) {
        let fields = context_fields(span);
        if fields.0.is_empty() {
            return;
        }
        let params = match message {
            Message::Request(r) => &mut r.params,
            Message::Notification(n) => &mut n.params,
            _ => return,
        };
        let params = params.get_or_insert_with(|| Value::Object(Map::new()));
        let Some(params) = params.as_object_mut() else {
            return;
        };
        let meta = params
            .entry("_meta")
            .or_insert_with(|| Value::Object(Map::new()));
        let Some(meta) = meta.as_object_mut() else {
            return;
        };
        write_fields(meta, fields);
    }

    /// Puts `fields` into a `_meta` object in place of the trace context
    /// it held.
    fn write_fields(meta: &mut Map<String, Value>, fields: Fields) {
        meta.remove(TRACESTATE);
        for (key, value) in fields.0 {
            meta.insert(key.to_owned(), Value::String(value));
        }
    }

    /// The W3C fields of `span`'s context (empty when it has none):
    /// `traceparent` as the W3C Trace Context propagator writes it (version
    /// `00`, the sampled flag only), and `tracestate` unless it is empty.
    pub(super) fn context_fields(span: &Span) -> Fields {
        let cx = span.context();
        let otel_span = cx.span();
        let context = otel_span.span_context();
        let mut fields = Vec::new();
        if context.is_valid() {
            let flags = context.trace_flags() & TraceFlags::SAMPLED;
            let mut traceparent = String::with_capacity(55);
            traceparent.push_str("00-");
            push_hex(&mut traceparent, &context.trace_id().to_bytes());
            traceparent.push('-');
            push_hex(&mut traceparent, &context.span_id().to_bytes());
            traceparent.push('-');
            push_hex(&mut traceparent, &[flags.to_u8()]);
            fields.push((TRACEPARENT, traceparent));
            let state = context.trace_state().header();
            if !state.is_empty() {
                fields.push((TRACESTATE, state));
            }
        }
        Fields(fields)
    }

    /// Appends `bytes` in lowercase hex.
    fn push_hex(out: &mut String, bytes: &[u8]) {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        for b in bytes {
            out.push(char::from(DIGITS[usize::from(b >> 4)]));
            out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
        }
    }

    /// Records the backend's answer on the call's span and, when it is an
    /// error, on the request's span; the call's span ends when dropped here.
    pub(super) fn record_answer(
        span: &Span,
        request_span: &Span,
        response: &crate::jsonrpc::Response,
    ) {
        let error_type = match &response.outcome {
            Err(error) => {
                let code = error.code.to_string();
                for span in [span, request_span] {
                    span.set_attribute("rpc.response.status_code", code.clone());
                    span.set_attribute("rpc.jsonrpc.error_code", i64::from(error.code));
                }
                Some(code)
            }
            Ok(result) if result.get("isError").and_then(Value::as_bool) == Some(true) => {
                Some("tool_error".to_owned())
            }
            Ok(_) => None,
        };
        if let Some(error_type) = error_type {
            fail(span, error_type.clone());
            fail(request_span, error_type);
        }
    }

    /// A span sending one HTTP request on: its context as `traceparent`
    /// and `tracestate` headers.
    pub(crate) struct Outbound {
        /// The CLIENT span of the call; it ends when this is dropped.
        pub(crate) span: Span,
    }

    impl Outbound {
        /// A CLIENT span for a pass-through of `method`, child of the
        /// current span.
        pub(crate) fn start(method: Option<&str>, name: Option<&str>) -> Option<Self> {
            if !super::is_enabled() {
                return None;
            }
            Some(Self {
                span: client_span(method.unwrap_or("-"), name, None, None),
            })
        }

        /// The headers carrying this span's context.
        pub(crate) fn headers(&self) -> Vec<(&'static str, http::HeaderValue)> {
            context_fields(&self.span)
                .0
                .into_iter()
                .filter_map(|(k, v)| Some((k, http::HeaderValue::from_str(&v).ok()?)))
                .collect()
        }

        /// Replaces the trace context in a JSON-RPC request body's
        /// `params._meta` with this span's; `None` when the body is not one
        /// request object (it then goes as it is).
        pub(crate) fn rewrite_body(&self, body: &[u8]) -> Option<Vec<u8>> {
            let mut value: Value = serde_json::from_slice(body).ok()?;
            let params = value
                .as_object_mut()?
                .entry("params")
                .or_insert_with(|| Value::Object(Map::new()))
                .as_object_mut()?;
            let meta = params
                .entry("_meta")
                .or_insert_with(|| Value::Object(Map::new()))
                .as_object_mut()?;
            write_fields(meta, context_fields(&self.span));
            serde_json::to_vec(&value).ok()
        }

        /// Records the HTTP status of the answer (a failure from 400 on).
        pub(crate) fn status(&self, status: http::StatusCode) {
            if status.as_u16() >= 400 {
                fail(&self.span, status.as_u16().to_string());
            }
        }
    }
}

/// A tracer whose spans are kept in memory, for the unit tests of the
/// modules that open spans.
#[cfg(all(test, feature = "otel"))]
pub(crate) mod testing {
    use std::sync::{Arc, Mutex};

    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_sdk::{
        error::OTelSdkResult,
        trace::{SpanData, SpanExporter},
    };
    use tracing_subscriber::layer::SubscriberExt;

    /// The spans ended so far.
    #[derive(Debug, Clone, Default)]
    pub(crate) struct Ended(Arc<Mutex<Vec<SpanData>>>);

    impl Ended {
        /// Those ended so far, by name.
        pub(crate) fn named(&self, name: &str) -> Vec<SpanData> {
            let spans = self.0.lock().unwrap_or_else(|e| e.into_inner());
            spans.iter().filter(|s| s.name == name).cloned().collect()
        }
    }

    impl SpanExporter for Ended {
        fn export(
            &self,
            batch: Vec<SpanData>,
        ) -> impl std::future::Future<Output = OTelSdkResult> + Send {
            self.0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend(batch);
            std::future::ready(Ok(()))
        }
    }

    /// [`layer`](super::layer) installed on this thread, exporting each
    /// span to the returned [`Ended`] as it ends.
    pub(crate) fn otel_on() -> (Ended, tracing::subscriber::DefaultGuard) {
        let ended = Ended::default();
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_simple_exporter(ended.clone())
            .build();
        let subscriber = tracing_subscriber::registry().with(super::layer(provider.tracer("test")));
        (ended, tracing::subscriber::set_default(subscriber))
    }
}

#[cfg(all(test, feature = "otel"))]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
    use serde_json::json;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;
    use crate::jsonrpc::{ErrorObject, Request, RequestId, Response};

    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

    /// A subscriber exporting nowhere, but giving spans real contexts.
    fn otel_on() -> tracing::subscriber::DefaultGuard {
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry().with(layer(provider.tracer("test")));
        tracing::subscriber::set_default(subscriber)
    }

    fn tool_call(meta: serde_json::Value) -> Message {
        Message::Request(Request {
            id: RequestId::Number(7),
            method: "tools/call".into(),
            params: Some(json!({"name": "echo", "_meta": meta})),
        })
    }

    fn meta_traceparent(message: &Message) -> String {
        message.params().unwrap()["_meta"]["traceparent"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    #[test]
    fn a_backend_call_carries_its_own_span_of_the_request_trace_in_meta() {
        let _guard = otel_on();
        let headers = http::HeaderMap::from_iter([(
            http::header::HeaderName::from_static("traceparent"),
            http::HeaderValue::from_str(&format!("00-{TRACE}-00f067aa0ba902b7-01")).unwrap(),
        )]);
        let request = server_span(
            &tracing::Span::none(),
            &http::Method::POST,
            &headers,
            None,
            [None; 3],
        );
        assert_eq!(
            format!("{}", request.context().span().span_context().trace_id()),
            TRACE
        );
        let calls = BackendCalls::default();
        // the client's own `_meta` trace context is replaced, other keys stay
        let mut message = tool_call(json!({"traceparent": "00-x-y-01", "progressToken": 1}));
        request.in_scope(|| calls.start(&mut message));
        let traceparent = meta_traceparent(&message);
        let parts: Vec<&str> = traceparent.split('-').collect();
        assert_eq!(parts[1], TRACE);
        let request_span_id = format!("{}", request.context().span().span_context().span_id());
        assert_ne!(
            parts[2], request_span_id,
            "the backend call has a span of its own"
        );
        assert_eq!(message.params().unwrap()["_meta"]["progressToken"], 1);
        assert_eq!(calls.calls.lock().unwrap().len(), 1);
        // the answer ends it
        calls.finish(&Message::Response(Response {
            id: Some(RequestId::Number(7)),
            outcome: Err(ErrorObject::new(-32602, "bad")),
        }));
        assert!(calls.calls.lock().unwrap().is_empty());
        // and the upstream sends the same context as headers
        let headers = meta_headers(&message);
        assert_eq!(headers[0].0, "traceparent");
        assert_eq!(headers[0].1.to_str().unwrap(), traceparent);
    }

    #[test]
    fn spans_of_rmcps_session_loop_are_not_exported_and_others_at_info_are() {
        let _guard = otel_on();
        let exported = |span: tracing::Span| span.context().span().span_context().is_valid();
        assert!(!exported(
            tracing::info_span!(target: "rmcp::service", "serve_inner")
        ));
        assert!(!exported(tracing::info_span!(target: "rmcp", "serve")));
        assert!(exported(
            tracing::info_span!(target: "rmcpx::tools", "a crate named alike")
        ));
        assert!(exported(tracing::info_span!(target: "my_app", "work")));
        assert!(!exported(tracing::debug_span!(target: "my_app", "detail")));
        assert!(!exported(tracing::info_span!(
            target: crate::trace::REQUEST_SPAN_TARGET,
            "mcp.request"
        )));
    }

    #[test]
    fn the_trace_context_written_is_what_the_w3c_propagator_writes() {
        use opentelemetry::propagation::TextMapPropagator as _;
        let _guard = otel_on();
        for header in [
            format!("00-{TRACE}-00f067aa0ba902b7-01"),
            format!("00-{TRACE}-00f067aa0ba902b7-00"),
        ] {
            let mut headers = http::HeaderMap::new();
            headers.insert("traceparent", header.parse().unwrap());
            headers.insert("tracestate", "vendor=a,other=b".parse().unwrap());
            let span = server_span(
                &tracing::Span::none(),
                &http::Method::POST,
                &headers,
                None,
                [None; 3],
            );
            let mut expected = std::collections::HashMap::new();
            opentelemetry_sdk::propagation::TraceContextPropagator::new()
                .inject_context(&span.context(), &mut expected);
            let written: std::collections::HashMap<String, String> = enabled::context_fields(&span)
                .0
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect();
            assert_eq!(written, expected);
            assert!(written["traceparent"].starts_with(&format!("00-{TRACE}-")));
            assert_eq!(written["tracestate"], "vendor=a,other=b");
        }
    }

    #[test]
    fn a_pass_through_body_gets_the_calls_trace_context_in_meta_and_nothing_else() {
        let _guard = otel_on();
        let request = tracing::info_span!("mcp.request");
        let call = request
            .in_scope(|| Outbound::start(Some("tools/call"), Some("echo")))
            .unwrap();
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
            "name": "echo", "arguments": {"a": 1},
            "_meta": {"traceparent": "00-client-trace-01", "tracestate": "c=1", "k": "v"}}});
        let out: serde_json::Value =
            serde_json::from_slice(&call.rewrite_body(body.to_string().as_bytes()).unwrap())
                .unwrap();
        let (headers, mut expected) = (call.headers(), body.clone());
        let traceparent = headers.iter().find(|(k, _)| *k == "traceparent").unwrap();
        expected["params"]["_meta"] =
            json!({"k": "v", "traceparent": traceparent.1.to_str().unwrap()});
        assert_eq!(out, expected);
        assert!(
            call.rewrite_body(b"[1, 2]").is_none(),
            "a batch goes as it is"
        );
    }

    #[test]
    fn meta_wins_over_the_header_and_a_malformed_traceparent_is_no_parent() {
        let header = http::HeaderMap::from_iter([(
            http::header::HeaderName::from_static("traceparent"),
            http::HeaderValue::from_static(
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            ),
        )]);
        let mcp = |meta: serde_json::Value| {
            let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": meta}});
            crate::inspect::McpRequest::parse(
                &http::HeaderMap::new(),
                None,
                bytes::Bytes::from(body.to_string()),
            )
            .unwrap()
        };
        let from_meta = mcp(json!({"traceparent": format!("00-{TRACE}-00f067aa0ba902b7-01")}));
        let cx = enabled::remote_parent_for_tests(&header, Some(&from_meta)).unwrap();
        assert_eq!(format!("{}", cx.span().span_context().trace_id()), TRACE);
        let malformed = mcp(json!({"traceparent": "not-a-trace"}));
        let cx = enabled::remote_parent_for_tests(&header, Some(&malformed)).unwrap();
        assert_eq!(
            format!("{}", cx.span().span_context().trace_id()),
            "0af7651916cd43dd8448eb211c80319c",
            "a malformed _meta falls back to the header"
        );
        assert!(
            enabled::remote_parent_for_tests(&http::HeaderMap::new(), Some(&malformed)).is_none()
        );
    }

    #[test]
    fn a_backend_call_is_a_client_span_of_its_own_ended_by_its_answer() {
        use opentelemetry::trace::{SpanKind, Status};
        let (ended, _guard) = testing::otel_on();
        let request = tracing::info_span!("request");
        let mut message = tool_call(json!({"progressToken": 1}));
        let call = request.in_scope(|| BackendCall::start(&mut message));
        let (trace, parent) = {
            let traceparent = meta_traceparent(&message);
            let parts: Vec<String> = traceparent.split('-').map(str::to_owned).collect();
            (parts[1].clone(), parts[2].clone())
        };
        assert!(
            ended.named("tools/call echo").is_empty(),
            "open until answered"
        );
        call.finish(&Response {
            id: Some(RequestId::Number(7)),
            outcome: Err(ErrorObject::new(-32602, "bad")),
        });
        let spans = ended.named("tools/call echo");
        assert_eq!(spans.len(), 1);
        let span = &spans[0];
        assert_eq!(span.span_kind, SpanKind::Client);
        // the backend got this span's context, a child of the request's
        assert_eq!(format!("{}", span.span_context.trace_id()), trace);
        assert_eq!(format!("{}", span.span_context.span_id()), parent);
        assert_eq!(
            span.parent_span_id,
            request.context().span().span_context().span_id()
        );
        assert!(matches!(&span.status, Status::Error { .. }), "{span:?}");
        assert!(
            span.attributes
                .iter()
                .any(|kv| kv.key.as_str() == "error.type" && kv.value.as_str() == "-32602")
        );
        // a notification, or a response, is no backend call
        let mut notification = Message::Notification(crate::jsonrpc::Notification {
            method: "notifications/progress".into(),
            params: Some(json!({})),
        });
        let none = request.in_scope(|| BackendCall::start(&mut notification));
        assert!(none.spans.is_none());
        assert_eq!(notification.params(), Some(&json!({})));
    }

    #[test]
    fn a_resumed_call_is_a_span_of_the_retry_under_the_backends_id() {
        use opentelemetry::trace::SpanKind;
        let (ended, _guard) = testing::otel_on();
        let retry = tracing::info_span!("retry");
        let call = retry.in_scope(|| {
            BackendCall::resumed(
                "tools/call",
                Some(&json!({"name": "ask", "inputResponses": {}})),
                &RequestId::Number(3),
            )
        });
        call.finish(&Response {
            id: Some(RequestId::Number(3)),
            outcome: Ok(json!({"content": []})),
        });
        let spans = ended.named("tools/call ask");
        assert_eq!(spans.len(), 1);
        assert_eq!(spans[0].span_kind, SpanKind::Client);
        assert_eq!(
            spans[0].parent_span_id,
            retry.context().span().span_context().span_id()
        );
        assert!(
            spans[0]
                .attributes
                .iter()
                .any(|kv| kv.key.as_str() == "jsonrpc.request.id" && kv.value.as_str() == "3")
        );
    }
}
