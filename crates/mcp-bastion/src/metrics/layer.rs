//! The layer, its service and its response future.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::Instant,
};

use http::{Request, Response};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use super::{REQUEST_DURATION_SECONDS, REQUESTS_TOTAL, labels};
use crate::inspect::McpRequest;

/// Counts and times MCP requests; see the [module docs](super).
#[derive(Debug, Clone, Copy, Default)]
pub struct McpMetricsLayer {
    _priv: (),
}

impl McpMetricsLayer {
    /// The layer.
    pub fn new() -> Self {
        Self::default()
    }
}

impl<S> Layer<S> for McpMetricsLayer {
    type Service = McpMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        McpMetrics { inner }
    }
}

/// The service of [`McpMetricsLayer`].
#[derive(Debug, Clone)]
pub struct McpMetrics<S> {
    inner: S,
}

impl<S, B, ResBody> Service<Request<B>> for McpMetrics<S>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let (method, tool, client) = match req.extensions().get::<McpRequest>() {
            Some(mcp) => (
                mcp.method().map_or("response", labels::method),
                mcp.tool_name().map(labels::tool),
                labels::client_of(mcp),
            ),
            None => (
                match *req.method() {
                    http::Method::GET => "http:GET",
                    http::Method::DELETE => "http:DELETE",
                    http::Method::POST => "http:POST",
                    _ => "http:other",
                },
                None,
                None,
            ),
        };
        ResponseFuture {
            inner: self.inner.call(req),
            method,
            tool,
            client,
            started: Instant::now(),
        }
    }
}

pin_project! {
    /// The response future of [`McpMetrics`].
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        method: &'static str,
        tool: Option<String>,
        client: Option<String>,
        started: Instant,
    }
}

impl<F, ResBody, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let out = std::task::ready!(this.inner.poll(cx));
        let status = match &out {
            Ok(res) => res.status().as_u16().to_string(),
            Err(_) => "error".to_owned(),
        };
        let method: &'static str = this.method;
        metrics::counter!(
            REQUESTS_TOTAL,
            "method" => method,
            "tool" => this.tool.take().unwrap_or_default(),
            "client" => this.client.take().unwrap_or_default(),
            "status" => status
        )
        .increment(1);
        metrics::histogram!(REQUEST_DURATION_SECONDS, "method" => method)
            .record(this.started.elapsed().as_secs_f64());
        Poll::Ready(out)
    }
}
