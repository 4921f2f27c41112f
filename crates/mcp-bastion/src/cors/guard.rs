//! [`OriginGuardLayer`]: 403 for a present `Origin` that is not allowed
//! (DNS-rebinding defence), and an optional `Host` allowlist.

use std::{
    collections::BTreeSet,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
};

use axum::response::{IntoResponse, Response};
use http::{Request, StatusCode, header};
use tower::{Layer, Service};

use super::AllowedOrigins;
use pin_project_lite::pin_project;

use crate::jsonrpc::{ErrorObject, codes, http_error};

/// Why the Origin guard refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OriginRejection {
    /// `Origin` present and not allowed (403).
    #[error("origin not allowed")]
    Origin,
    /// `Host` not in the host allowlist (403).
    #[error("host not allowed")]
    Host,
}

impl IntoResponse for OriginRejection {
    fn into_response(self) -> Response {
        let message = match self {
            Self::Origin => "Forbidden: Origin not allowed",
            Self::Host => "Forbidden: Host not allowed",
        };
        http_error(
            StatusCode::FORBIDDEN,
            None,
            ErrorObject::new(codes::BAD_REQUEST, message),
        )
    }
}

#[derive(Debug, Default)]
struct GuardConfig {
    origins: AllowedOrigins,
    hosts: Option<BTreeSet<String>>,
}

/// Refuses (403, JSON-RPC error body) every request whose `Origin` header is
/// present and not allowed; requests without `Origin` (non-browser clients)
/// pass. With [`allow_hosts`](Self::allow_hosts), a `Host` outside the list
/// is refused too.
///
/// ```
/// use axum::{body::Body, routing::post, Router};
/// use http::{Request, StatusCode};
/// use mcp_bastion::cors::{AllowedOrigins, OriginGuardLayer};
/// use tower::ServiceExt;
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let app = Router::new()
///     .route("/mcp", post(|| async { "ok" }))
///     .layer(OriginGuardLayer::new(AllowedOrigins::loopback()));
/// let req = |origin: Option<&str>| {
///     let mut b = Request::post("/mcp");
///     if let Some(o) = origin { b = b.header("origin", o); }
///     b.body(Body::empty()).unwrap()
/// };
/// assert_eq!(app.clone().oneshot(req(None)).await.unwrap().status(), StatusCode::OK);
/// assert_eq!(app.clone().oneshot(req(Some("http://localhost:3000"))).await.unwrap().status(), StatusCode::OK);
/// assert_eq!(app.oneshot(req(Some("https://evil.example"))).await.unwrap().status(), StatusCode::FORBIDDEN);
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct OriginGuardLayer {
    config: Arc<GuardConfig>,
}

impl OriginGuardLayer {
    /// A guard allowing `origins`.
    pub fn new(origins: AllowedOrigins) -> Self {
        Self {
            config: Arc::new(GuardConfig {
                origins,
                hosts: None,
            }),
        }
    }

    /// Also refuses requests whose `Host` (without port, ignoring case) is
    /// not one of `hosts`.
    pub fn allow_hosts<I, S>(self, hosts: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let hosts = hosts
            .into_iter()
            .map(|h| h.as_ref().to_ascii_lowercase())
            .collect();
        Self {
            config: Arc::new(GuardConfig {
                origins: self.config.origins.clone(),
                hosts: Some(hosts),
            }),
        }
    }
}

impl<S> Layer<S> for OriginGuardLayer {
    type Service = OriginGuard<S>;

    fn layer(&self, inner: S) -> Self::Service {
        OriginGuard {
            inner,
            config: Arc::clone(&self.config),
        }
    }
}

/// The service built by [`OriginGuardLayer`].
#[derive(Debug, Clone)]
pub struct OriginGuard<S> {
    inner: S,
    config: Arc<GuardConfig>,
}

fn host_without_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.split_inclusive(']').next().unwrap_or(host);
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

impl GuardConfig {
    fn check<B>(&self, req: &Request<B>) -> Result<(), OriginRejection> {
        if let Some(origin) = req.headers().get(header::ORIGIN) {
            let ok = origin.to_str().is_ok_and(|o| self.origins.is_allowed(o));
            if !ok {
                tracing::info!(target: "mcp_bastion::cors", origin = ?origin, "refused a request from an origin that is not allowed");
                return Err(OriginRejection::Origin);
            }
        }
        if let Some(hosts) = &self.hosts {
            let host = req
                .headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .or_else(|| req.uri().host())
                .map(|h| host_without_port(h).to_ascii_lowercase());
            if !host.is_some_and(|h| hosts.contains(&h)) {
                return Err(OriginRejection::Host);
            }
        }
        Ok(())
    }
}

impl<S, B, ResBody> Service<Request<B>> for OriginGuard<S>
where
    S: Service<Request<B>, Response = http::Response<ResBody>> + Send + 'static,
    S::Future: Send + 'static,
    ResBody: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    ResBody::Error: Into<axum::BoxError>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = OriginGuardFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let state = match self.config.check(&req) {
            Ok(()) => GuardState::Inner {
                future: self.inner.call(req),
            },
            Err(rejection) => GuardState::Refused {
                response: Some(rejection.into_response()),
            },
        };
        OriginGuardFuture { state }
    }
}

pin_project! {
    /// The response future of [`OriginGuard`]: the inner service's, or the
    /// refusal, ready at once.
    pub struct OriginGuardFuture<F> {
        #[pin]
        state: GuardState<F>,
    }
}

pin_project! {
    #[project = GuardStateProj]
    enum GuardState<F> {
        Inner { #[pin] future: F },
        Refused { response: Option<Response> },
    }
}

impl<F, ResBody, E> Future for OriginGuardFuture<F>
where
    F: Future<Output = Result<http::Response<ResBody>, E>>,
    ResBody: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    ResBody::Error: Into<axum::BoxError>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            GuardStateProj::Inner { future } => {
                let res = ready!(future.poll(cx))?;
                Poll::Ready(Ok(res.map(axum::body::Body::new)))
            }
            // `None` only when polled again after completion
            GuardStateProj::Refused { response } => match response.take() {
                Some(res) => Poll::Ready(Ok(res)),
                None => Poll::Pending,
            },
        }
    }
}

impl<F> std::fmt::Debug for OriginGuardFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OriginGuardFuture").finish_non_exhaustive()
    }
}
