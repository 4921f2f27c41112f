//! [`McpAuditLayer`] (outer: times the request, writes the record) and
//! [`AuditCaptureLayer`] (inner: what was parsed and who is calling).

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::{Instant, SystemTime},
};

use axum::BoxError;
use bytes::Bytes;
use http::{Request, Response, header::CONTENT_LENGTH};
use http_body::Body as HttpBody;
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use super::{
    AuditBody, AuditRecord, AuditWriter,
    record::{AuditSlot, ClientNames, classify, rfc3339},
};
use crate::{
    protocol::HEADER_SESSION_ID,
    session::{route_key_of, session_fingerprint},
};

/// Writes one audit record per request; see the [module docs](super).
#[derive(Debug, Clone)]
pub struct McpAuditLayer {
    writer: AuditWriter,
    hash_arguments: bool,
    pub(super) clients: Arc<ClientNames>,
}

impl McpAuditLayer {
    /// Records go to `writer`; arguments are not hashed.
    pub fn new(writer: AuditWriter) -> Self {
        Self {
            writer,
            hash_arguments: false,
            clients: Arc::default(),
        }
    }

    /// Adds the SHA-256 of the canonical (sorted keys) arguments of each
    /// `tools/call` to its record (`arguments_sha256`). The arguments
    /// themselves are never logged.
    pub fn hash_arguments(mut self, on: bool) -> Self {
        self.hash_arguments = on;
        self
    }

    /// The writer, for [`reopen`](AuditWriter::reopen) on `SIGHUP`.
    pub fn writer(&self) -> &AuditWriter {
        &self.writer
    }

    /// The capture point to mount inside authentication and
    /// [`McpInspectLayer`](crate::inspect::McpInspectLayer).
    pub fn capture(&self) -> AuditCaptureLayer {
        AuditCaptureLayer {
            hash_arguments: self.hash_arguments,
            clients: self.clients.clone(),
        }
    }
}

impl<S> Layer<S> for McpAuditLayer {
    type Service = McpAudit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        McpAudit {
            inner,
            writer: Arc::new(self.writer.clone()),
            clients: self.clients.clone(),
        }
    }
}

/// The service of [`McpAuditLayer`].
#[derive(Debug, Clone)]
pub struct McpAudit<S> {
    inner: S,
    writer: Arc<AuditWriter>,
    clients: Arc<ClientNames>,
}

impl<S, B, ResBody> Service<Request<B>> for McpAudit<S>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    ResBody: HttpBody<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response<axum::body::Body>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let slot = AuditSlot::default();
        {
            let mut seen = slot.0.lock().unwrap_or_else(|e| e.into_inner());
            seen.record.time = rfc3339(SystemTime::now());
            seen.record.bytes_in = content_length(req.headers());
        }
        // the method of a request the capture point does not name (it names
        // every request with a parsed body)
        let http_method = match *req.method() {
            http::Method::GET => "http:GET",
            http::Method::DELETE => "http:DELETE",
            http::Method::POST => "http:POST",
            _ => "http:other",
        };
        req.extensions_mut().insert(slot.clone());
        let session_header = req.headers().get(HEADER_SESSION_ID).cloned();
        ResponseFuture {
            session_header,
            http_method,
            inner: self.inner.call(req),
            slot: Some(slot),
            writer: self.writer.clone(),
            clients: self.clients.clone(),
            started: Instant::now(),
        }
    }
}

fn content_length(headers: &http::HeaderMap) -> Option<u64> {
    headers.get(CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

pin_project! {
    /// The response future of [`McpAudit`].
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        slot: Option<AuditSlot>,
        // the request's session id, for a record the capture point never saw
        session_header: Option<http::HeaderValue>,
        http_method: &'static str,
        writer: Arc<AuditWriter>,
        clients: Arc<ClientNames>,
        started: Instant,
    }
}

impl<F, ResBody, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
    ResBody: HttpBody<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Output = Result<Response<axum::body::Body>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let out = std::task::ready!(this.inner.poll(cx));
        let (reached, mut rec) = match this.slot.take() {
            Some(slot) => {
                let mut seen = slot.0.lock().unwrap_or_else(|e| e.into_inner());
                (seen.reached, std::mem::take(&mut seen.record))
            }
            None => (false, AuditRecord::default()),
        };
        // to the microsecond: `0.125`, not `0.12545699999999999`
        rec.latency_ms = this.started.elapsed().as_micros() as f64 / 1000.0;
        if rec.method.is_empty() {
            rec.method = (*this.http_method).to_owned();
        }
        if !reached && let Some(id) = this.session_header.as_ref().and_then(|v| v.to_str().ok()) {
            // refused before the capture point (Origin, authentication, size):
            // the session and the client it named, never a principal
            rec.route_key = route_key_of(id).map(str::to_owned);
            this.clients.fill(id, &mut rec);
        }
        Poll::Ready(match out {
            Ok(res) => {
                rec.status = res.status().as_u16();
                (rec.outcome, rec.refused_by) = classify(rec.status, reached);
                if rec.method == "initialize"
                    && let Some(id) = res
                        .headers()
                        .get(HEADER_SESSION_ID)
                        .and_then(|v| v.to_str().ok())
                {
                    // the session it opened: its records name this client
                    rec.session = Some(session_fingerprint(id));
                    rec.route_key = route_key_of(id).map(str::to_owned);
                    let info = (rec.client_name.clone(), rec.client_version.clone());
                    this.clients.remember(id, info);
                }
                let writer = this.writer.clone();
                Ok(res.map(|body| axum::body::Body::new(AuditBody::new(body, rec, writer))))
            }
            Err(e) => {
                rec.status = 500;
                rec.outcome = super::Outcome::Failed;
                this.writer.write_record(rec);
                Err(e)
            }
        })
    }
}

/// Fills the audit record with the parsed request and the principal; see
/// [`McpAuditLayer::capture`].
#[derive(Debug, Clone)]
pub struct AuditCaptureLayer {
    hash_arguments: bool,
    clients: Arc<ClientNames>,
}

impl<S> Layer<S> for AuditCaptureLayer {
    type Service = AuditCapture<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuditCapture {
            inner,
            hash_arguments: self.hash_arguments,
            clients: self.clients.clone(),
        }
    }
}

/// The service of [`AuditCaptureLayer`].
#[derive(Debug, Clone)]
pub struct AuditCapture<S> {
    inner: S,
    hash_arguments: bool,
    clients: Arc<ClientNames>,
}

impl<S, B> Service<Request<B>> for AuditCapture<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let (parts, body) = req.into_parts();
        if let Some(slot) = parts.extensions.get::<AuditSlot>() {
            slot.capture(&parts, &self.clients, self.hash_arguments);
        }
        self.inner.call(Request::from_parts(parts, body))
    }
}
