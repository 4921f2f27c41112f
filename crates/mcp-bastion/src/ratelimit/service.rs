use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
    task::{Context, Poll},
};

use axum::{
    extract::ConnectInfo,
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use http::{Request, request::Parts};
use http_body::Body as HttpBody;
use tower::Service;

use super::{
    RateLimitRejection,
    concurrency::Permit,
    engine::{Engine, Outcome},
    future::{Held, ResponseFuture, finish},
};
use crate::{
    decided::{Decided, take_ready},
    inspect::McpRequest,
};

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
    type Future = ResponseFuture<S::Future, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let (parts, body) = req.into_parts();
        let ip = client_ip(&self.engine, &parts);
        let decisions = match self.engine.check_now(&parts, ip) {
            Some(Outcome::Allowed(decisions)) => decisions,
            Some(Outcome::Refused(rejection)) => {
                return Decided::ready(rejection.into_response()).into();
            }
            None => {
                // A rule waits for the shared store, so the inner service is
                // called from the future.
                let mut inner = take_ready(&mut self.inner);
                let engine = self.engine.clone();
                return Decided::boxed(async move {
                    let headers = match engine.check(&parts, ip).await {
                        Outcome::Allowed(d) => engine.headers.then(|| d.headers()).flatten(),
                        Outcome::Refused(rejection) => return Ok(rejection.into_response()),
                    };
                    let permit = match admit(&engine, &parts, ip) {
                        Ok(permit) => permit,
                        Err(rejection) => return Ok(rejection.into_response()),
                    };
                    let res = inner.call(Request::from_parts(parts, body)).await?;
                    Ok(finish(res, permit, headers))
                })
                .into();
            }
        };
        let permit = match admit(&self.engine, &parts, ip) {
            Ok(permit) => permit,
            Err(rejection) => return Decided::ready(rejection.into_response()).into(),
        };
        // made now: `decisions` borrows the engine, the future must not
        let headers = self.engine.headers.then(|| decisions.headers()).flatten();
        // `poll_ready` drove this very service ready: call it in place
        let future = self.inner.call(Request::from_parts(parts, body));
        Decided::inner(future, Held { permit, headers }).into()
    }
}

/// The client's address: the peer's, or what a trusted proxy forwarded.
fn client_ip(engine: &Engine, parts: &Parts) -> Option<IpAddr> {
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    engine.proxies.client_ip(peer, &parts.headers)
}

/// A concurrency slot when a cap applies to the request; the refusal when its
/// key is over the cap.
fn admit(
    engine: &Engine,
    parts: &Parts,
    ip: Option<IpAddr>,
) -> Result<Option<Permit>, RateLimitRejection> {
    let Some(concurrency) = &engine.concurrency else {
        return Ok(None);
    };
    concurrency.acquire(parts, ip).map_err(|name| {
        let mcp = parts.extensions.get::<McpRequest>();
        RateLimitRejection::concurrency(name, mcp)
    })
}
