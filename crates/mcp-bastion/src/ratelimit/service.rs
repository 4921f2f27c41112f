use std::{
    net::SocketAddr,
    sync::Arc,
    task::{Context, Poll},
};

use axum::{
    body::Body,
    extract::ConnectInfo,
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use http::Request;
use http_body::Body as HttpBody;
use http_body_util::BodyExt;
use tower::Service;

use super::{
    RateLimitRejection,
    engine::{Engine, Outcome},
    future::ResponseFuture,
};
use crate::inspect::McpRequest;

/// The service built by [`McpRateLimitLayer`](super::McpRateLimitLayer).
#[derive(Clone)]
pub struct McpRateLimit<S> {
    pub(super) inner: S,
    pub(super) engine: Arc<Engine>,
}

impl<S: std::fmt::Debug> std::fmt::Debug for McpRateLimit<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpRateLimit")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, B, ResBody> Service<Request<B>> for McpRateLimit<S>
where
    S: Service<Request<B>, Response = http::Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Send,
    B: Send + 'static,
    ResBody: HttpBody<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<axum::BoxError>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        // Keep the service that was driven to readiness; leave a clone behind.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let engine = self.engine.clone();
        ResponseFuture {
            inner: Box::pin(async move {
                let (parts, body) = req.into_parts();
                let peer = parts
                    .extensions
                    .get::<ConnectInfo<SocketAddr>>()
                    .map(|c| c.0.ip());
                let ip = engine.proxies.client_ip(peer, &parts.headers);
                let decisions = match engine.check(&parts, ip).await {
                    Outcome::Allowed(d) => d,
                    Outcome::Refused(rejection) => return Ok(rejection.into_response()),
                };
                let permit = match engine.concurrency.as_ref().map(|c| c.acquire(&parts, ip)) {
                    None | Some(Ok(None)) => None,
                    Some(Ok(Some(p))) => Some(p),
                    Some(Err(name)) => {
                        let mcp = parts.extensions.get::<McpRequest>();
                        return Ok(RateLimitRejection::concurrency(name, mcp).into_response());
                    }
                };
                let res = inner.call(Request::from_parts(parts, body)).await?;
                let mut res = match permit {
                    // the slot is freed when the body is dropped: at its end,
                    // or when the client goes away
                    Some(permit) => res.map(|b| {
                        Body::new(b.map_frame(move |frame| {
                            let _held = &permit;
                            frame
                        }))
                    }),
                    None => res.map(Body::new),
                };
                if engine.headers {
                    decisions.insert_headers(res.headers_mut());
                }
                Ok(res)
            }),
        }
    }
}
