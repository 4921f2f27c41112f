//! [`McpCorsLayer`]: the CORS policy of [`McpCors`](super::McpCors), with
//! every header value computed once, when the layer is built.
//!
//! Per request it reads `Origin`, asks the allowlist, and inserts the
//! precomputed values into the response's own header map: no header map,
//! list or string is built per request.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
};

use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use super::AllowedOrigins;

/// The header values of one policy, computed once.
#[derive(Debug)]
pub(super) struct CorsPolicy {
    pub(super) origins: AllowedOrigins,
    pub(super) allow_methods: HeaderValue,
    pub(super) allow_headers: HeaderValue,
    pub(super) expose_headers: HeaderValue,
    pub(super) max_age: HeaderValue,
    pub(super) credentials: bool,
}

/// `Vary` on every response: the answer depends on these request headers.
const VARY: HeaderValue = HeaderValue::from_static(
    "origin, access-control-request-method, access-control-request-headers",
);

impl CorsPolicy {
    /// The request's `Origin`, when it is present and allowed.
    fn allowed_origin(&self, headers: &HeaderMap) -> Option<HeaderValue> {
        let origin = headers.get(header::ORIGIN)?;
        let text = origin.to_str().ok()?;
        self.origins.is_allowed(text).then(|| origin.clone())
    }

    /// What every response to an allowed origin carries.
    fn grant(&self, headers: &mut HeaderMap, origin: HeaderValue) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        if self.credentials {
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
    }

    /// The answer to a preflight: 200, no body; the grant only for an
    /// allowed origin.
    fn preflight<B: Default>(&self, origin: Option<HeaderValue>) -> Response<B> {
        let mut res = Response::new(B::default());
        *res.status_mut() = StatusCode::OK;
        let headers = res.headers_mut();
        headers.insert(header::VARY, VARY);
        if let Some(origin) = origin {
            self.grant(headers, origin);
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                self.allow_methods.clone(),
            );
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                self.allow_headers.clone(),
            );
            headers.insert(header::ACCESS_CONTROL_MAX_AGE, self.max_age.clone());
        }
        res
    }

    /// Adds the CORS headers to an actual response.
    fn decorate<B>(&self, res: &mut Response<B>, origin: Option<HeaderValue>) {
        let headers = res.headers_mut();
        headers.append(header::VARY, VARY);
        if let Some(origin) = origin {
            self.grant(headers, origin);
            headers.insert(
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                self.expose_headers.clone(),
            );
        }
    }
}

/// A preflight: `OPTIONS` with `Access-Control-Request-Method`.
fn is_preflight<B>(req: &Request<B>) -> bool {
    req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

/// The MCP CORS layer, built by [`mcp_cors`](super::mcp_cors) or
/// [`McpCors::into_layer`](super::McpCors::into_layer). It answers
/// preflights itself (mount it outermost, before authentication) and adds
/// `Access-Control-Allow-Origin` and `Access-Control-Expose-Headers` to the
/// responses to an allowed `Origin`; every response gets `Vary`.
///
/// ```
/// use axum::{body::Body, routing::post, Router};
/// use http::Request;
/// use mcp_bastion::cors::{AllowedOrigins, mcp_cors};
/// use tower::ServiceExt;
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let origins = AllowedOrigins::new().allow("https://app.example.com").unwrap();
/// let app = Router::new()
///     .route("/mcp", post(|| async { "ok" }))
///     .layer(mcp_cors(origins));
/// let req = Request::post("/mcp")
///     .header("origin", "https://app.example.com")
///     .body(Body::empty())
///     .unwrap();
/// let res = app.oneshot(req).await.unwrap();
/// assert_eq!(res.headers()["access-control-allow-origin"], "https://app.example.com");
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct McpCorsLayer {
    policy: Arc<CorsPolicy>,
}

impl McpCorsLayer {
    pub(super) fn new(policy: CorsPolicy) -> Self {
        Self {
            policy: Arc::new(policy),
        }
    }
}

impl<S> Layer<S> for McpCorsLayer {
    type Service = McpCorsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        McpCorsService {
            inner,
            policy: Arc::clone(&self.policy),
        }
    }
}

/// The service built by [`McpCorsLayer`].
#[derive(Debug, Clone)]
pub struct McpCorsService<S> {
    inner: S,
    policy: Arc<CorsPolicy>,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for McpCorsService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Default,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = CorsResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let origin = self.policy.allowed_origin(req.headers());
        if is_preflight(&req) {
            return CorsResponseFuture {
                state: State::Preflight {
                    response: Some(self.policy.preflight(origin)),
                },
            };
        }
        CorsResponseFuture {
            state: State::Inner {
                future: self.inner.call(req),
                origin,
                policy: Arc::clone(&self.policy),
            },
        }
    }
}

pin_project! {
    /// The response future of [`McpCorsService`].
    pub struct CorsResponseFuture<F, B> {
        #[pin]
        state: State<F, B>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, B> {
        Preflight { response: Option<Response<B>> },
        Inner {
            #[pin]
            future: F,
            origin: Option<HeaderValue>,
            policy: Arc<CorsPolicy>,
        },
    }
}

impl<F, B, E> Future for CorsResponseFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Preflight { response } => match response.take() {
                Some(res) => Poll::Ready(Ok(res)),
                // polled again after completion: a contract violation by the caller
                None => Poll::Pending,
            },
            StateProj::Inner {
                future,
                origin,
                policy,
            } => {
                let mut res = ready!(future.poll(cx))?;
                policy.decorate(&mut res, origin.take());
                Poll::Ready(Ok(res))
            }
        }
    }
}

impl<F, B> std::fmt::Debug for CorsResponseFuture<F, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CorsResponseFuture").finish_non_exhaustive()
    }
}
